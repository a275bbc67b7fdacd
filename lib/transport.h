/* transport.h - the byte stream under a client connection, behind a small vtable (after Redis
 * ConnectionType): TCP now (transport_tcp.c), TLS later as another file with the same ops.
 *
 * A transport is embedded in its client (single owner, used only by the thread that drives the
 * client). All calls are non-blocking. */
#ifndef TERN_LIB_TRANSPORT_H
#define TERN_LIB_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

struct transport;

struct transport_ops {
    const char *name;
    /* Resolves host and starts connecting (the first address that accepts a socket). Returns 0
     * when connected already, TERN_EAGAIN when in progress (wait for writability, then call
     * finish), or an error with t->error filled. */
    int (*open)(struct transport *t, const char *host, uint16_t port, const char *bind_addr);
    /* Completes a connection in progress: 0 done, TERN_EAGAIN still in progress (possibly on
     * the next address: the fd may have changed), or an error with t->error filled. */
    int (*finish)(struct transport *t);
    /* Reads up to n bytes: the count (> 0), TERN_EAGAIN, TERN_ECLOSED (orderly end) or
     * TERN_EIO with t->error filled. */
    long (*read)(struct transport *t, void *p, size_t n);
    /* Writes up to n bytes: the count (>= 0), TERN_EAGAIN or TERN_EIO. */
    long (*write)(struct transport *t, const void *p, size_t n);
    /* Closes the connection (idempotent); fd becomes -1. */
    void (*close)(struct transport *t);
};

struct transport {
    const struct transport_ops *ops;
    int fd;          /* -1 when closed; what the caller polls */
    void *ctx;       /* backend state (TLS session, test double) */
    void *addrs;     /* TCP: struct addrinfo list being tried (owned) */
    void *next_addr; /* TCP: next struct addrinfo to try */
    char bind_addr[64];
    char peer[80];   /* address being connected to, for messages */
    char error[160]; /* last failure as a sentence */
};

extern const struct transport_ops transport_tcp_ops;

#endif
