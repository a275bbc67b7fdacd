/* sock.h - sockets for the event loops: listeners (one per I/O thread with SO_REUSEPORT so the
 * kernel spreads accepted connections over threads), accept, socket options, fd limits.
 * Only net/ and broker/ touch file descriptors. */
#ifndef TERN_NET_SOCK_H
#define TERN_NET_SOCK_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

#define SOCK_ADDR_LEN 64

/* Opens a non-blocking listening TCP socket on bind_addr (NULL or "" = all addresses, IPv6
 * dual-stack when available) and port (0 = pick a free one). With reuseport, several sockets
 * may share the port. *actual_port receives the bound port. Returns 0 or TERN_EIO, with a
 * description in err. */
int sock_listen(const char *bind_addr, int port, bool reuseport, int *fd_out, int *actual_port,
                char *err, size_t errlen) TERN_MUST_CHECK;
/* Accepts one connection (non-blocking, close-on-exec). Returns 0 and the fd with the peer
 * address as text ("1.2.3.4:5678"), TERN_EAGAIN when none is pending, TERN_ELIMIT when out of
 * file descriptors, TERN_EIO otherwise. */
int sock_accept(int lfd, int *fd_out, char *addr, size_t addrlen) TERN_MUST_CHECK;
/* Sets TCP_NODELAY (latency: small PUBLISH packets must not wait for Nagle). */
void sock_nodelay(int fd);
/* Raises the soft RLIMIT_NOFILE to the hard limit; returns the resulting soft limit. */
long sock_raise_nofile(void);
/* True when the text address is a loopback address (127.0.0.0/8, ::1, "localhost"). */
bool sock_is_loopback(const char *addr);

#endif
