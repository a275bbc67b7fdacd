/* transport_tcp.c - plain TCP transport: getaddrinfo, non-blocking connect that falls through
 * the resolved addresses in order, read/write with errno mapped to TERN_E*.
 * Owns the socket and the addrinfo list stored in its struct transport. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "transport.h"

static void tcp_close(struct transport *t)
{
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
    if (t->addrs)
        freeaddrinfo(t->addrs);
    t->addrs = NULL;
    t->next_addr = NULL;
}

static void addr_text(const struct addrinfo *ai, char *out, size_t cap)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV)) {
        snprintf(out, cap, "?");
        return;
    }
    snprintf(out, cap, ai->ai_family == AF_INET6 ? "[%s]:%s" : "%s:%s", host, serv);
}

static int bind_source(struct transport *t, int fd, int family)
{
    if (!t->bind_addr[0])
        return 0;
    struct addrinfo hints = {.ai_family = family, .ai_flags = AI_NUMERICHOST | AI_PASSIVE};
    struct addrinfo *res = NULL;
    if (getaddrinfo(t->bind_addr, "0", &hints, &res) || !res) {
        snprintf(t->error, sizeof t->error, "bad bind address %s", t->bind_addr);
        return TERN_EINVAL;
    }
    int rc = bind(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    if (rc) {
        snprintf(t->error, sizeof t->error, "bind %s: %s", t->bind_addr, strerror(errno));
        return TERN_EIO;
    }
    return 0;
}

/* Starts a connect to t->next_addr and the following ones until one is in progress or done. */
static int try_next(struct transport *t)
{
    int last_errno = 0;
    while (t->next_addr) {
        struct addrinfo *ai = t->next_addr;
        t->next_addr = ai->ai_next;
        addr_text(ai, t->peer, sizeof t->peer);
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int rc = bind_source(t, fd, ai->ai_family);
        if (rc) {
            close(fd);
            return rc;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            t->fd = fd;
            return 0;
        }
        if (errno == EINPROGRESS) {
            t->fd = fd;
            return TERN_EAGAIN;
        }
        last_errno = errno;
        close(fd);
    }
    snprintf(t->error, sizeof t->error, "connect to %s: %s", t->peer[0] ? t->peer : "?",
             strerror(last_errno ? last_errno : ECONNREFUSED));
    return TERN_EIO;
}

static int tcp_open(struct transport *t, const char *host, uint16_t port, const char *bind_addr)
{
    tcp_close(t);
    t->error[0] = 0;
    snprintf(t->bind_addr, sizeof t->bind_addr, "%s", bind_addr ? bind_addr : "");
    char serv[8];
    snprintf(serv, sizeof serv, "%u", (unsigned)port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(host, serv, &hints, &res);
    if (g) {
        snprintf(t->error, sizeof t->error, "cannot resolve %s: %s", host, gai_strerror(g));
        return TERN_EIO;
    }
    t->addrs = res;
    t->next_addr = res;
    return try_next(t);
}

static int tcp_finish(struct transport *t)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &err, &len))
        err = errno;
    if (err == 0)
        return 0;
    if (err == EINPROGRESS || err == EALREADY)
        return TERN_EAGAIN;
    close(t->fd);
    t->fd = -1;
    snprintf(t->error, sizeof t->error, "connect to %s: %s", t->peer, strerror(err));
    if (t->next_addr)
        return try_next(t); /* rewrites t->error when every address fails */
    return TERN_EIO;
}

static long tcp_read(struct transport *t, void *p, size_t n)
{
    ssize_t r = recv(t->fd, p, n, 0);
    if (r > 0)
        return (long)r;
    if (r == 0)
        return TERN_ECLOSED;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return TERN_EAGAIN;
    snprintf(t->error, sizeof t->error, "read: %s", strerror(errno));
    return TERN_EIO;
}

static long tcp_write(struct transport *t, const void *p, size_t n)
{
    ssize_t r = send(t->fd, p, n, MSG_NOSIGNAL);
    if (r >= 0)
        return (long)r;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return TERN_EAGAIN;
    snprintf(t->error, sizeof t->error, "write: %s", strerror(errno));
    return TERN_EIO;
}

const struct transport_ops transport_tcp_ops = {
    .name = "tcp",
    .open = tcp_open,
    .finish = tcp_finish,
    .read = tcp_read,
    .write = tcp_write,
    .close = tcp_close,
};
