/* sock.c - listening/accepting sockets and options (see sock.h). */
#include "net/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static int try_listen(const struct sockaddr *sa, socklen_t salen, int family, bool reuseport,
                      int *fd_out)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (bind(fd, sa, salen) < 0 || listen(fd, 1024) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    *fd_out = fd;
    return 0;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

int sock_listen(const char *bind_addr, int port, bool reuseport, int *fd_out, int *actual_port,
                char *err, size_t errlen)
{
    if (!bind_addr || !*bind_addr) {
        struct sockaddr_in6 a6 = {.sin6_family = AF_INET6,
                                  .sin6_port = htons((uint16_t)port),
                                  .sin6_addr = IN6ADDR_ANY_INIT};
        if (try_listen((struct sockaddr *)&a6, sizeof a6, AF_INET6, reuseport, fd_out) == 0)
            goto ok;
        struct sockaddr_in a4 = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_ANY)};
        if (try_listen((struct sockaddr *)&a4, sizeof a4, AF_INET, reuseport, fd_out) == 0)
            goto ok;
        snprintf(err, errlen, "cannot listen on port %d: %s", port, strerror(errno));
        return TERN_EIO;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int gai = getaddrinfo(bind_addr, portstr, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve bind address '%s': %s", bind_addr, gai_strerror(gai));
        return TERN_EIO;
    }
    int e = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if (try_listen(ai->ai_addr, ai->ai_addrlen, ai->ai_family, reuseport, fd_out) == 0) {
            freeaddrinfo(res);
            goto ok;
        }
        e = errno;
    }
    freeaddrinfo(res);
    snprintf(err, errlen, "cannot listen on %s:%d: %s", bind_addr, port, strerror(e));
    return TERN_EIO;
ok:
    *actual_port = bound_port(*fd_out);
    return 0;
}

int sock_accept(int lfd, int *fd_out, char *addr, size_t addrlen)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)
            return TERN_EAGAIN;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            return TERN_ELIMIT;
        return TERN_EIO;
    }
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
    }
    const char *h = strncmp(host, "::ffff:", 7) == 0 ? host + 7 : host;
    snprintf(addr, addrlen, "%s:%d", h, port);
    *fd_out = fd;
    return 0;
}

void sock_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

long sock_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}

bool sock_is_loopback(const char *addr)
{
    if (!addr || !*addr)
        return false;
    if (strcmp(addr, "localhost") == 0 || strcmp(addr, "::1") == 0)
        return true;
    struct in_addr a;
    if (inet_pton(AF_INET, addr, &a) == 1)
        return (ntohl(a.s_addr) >> 24) == 127;
    return false;
}
