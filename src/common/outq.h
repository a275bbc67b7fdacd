/* outq.h - a connection's pending output: small bytes copied into one bounded buffer, large
 * payloads referenced (zero-copy) from refcounted owners, flushed with one writev per loop
 * iteration.
 *
 *   segs (FIFO):  [bytes 57] [ref msg#1 4096 B] [bytes 21] ...
 *   bytes buffer: |---- written ----|bytes_off|---- pending small bytes ----|
 *
 * A BYTES segment takes its bytes from the buffer at the running cursor, so consecutive
 * appends merge into one segment. Owned by one connection on one thread. */
#ifndef TERN_COMMON_OUTQ_H
#define TERN_COMMON_OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "common/buf.h"

/* Payloads at least this large are sent by reference instead of being copied. */
#define OUTQ_REF_MIN 2048

typedef void (*outq_release_fn)(void *owner);

struct outq_seg {
    const uint8_t *p; /* NULL: bytes from the buffer; else points into owner */
    uint32_t len;     /* bytes not yet written */
    void *owner;      /* reference released when the segment is written or dropped */
};

struct outq {
    struct buf bytes;
    size_t bytes_off; /* first unwritten byte in bytes */
    struct outq_seg *segs;
    uint32_t head, count, cap; /* ring of segments */
    size_t pending;            /* total unwritten bytes */
    outq_release_fn release;
    struct mem *mem;
};

/* Initialises an empty queue whose small-bytes buffer holds at most max_bytes. */
void outq_init(struct outq *q, struct mem *mem, size_t max_bytes, outq_release_fn release);
/* Drops everything pending (releasing references) and frees storage. */
void outq_free(struct outq *q);
/* Appends a copy of p[0..n). 0, TERN_ETOOBIG or TERN_ENOMEM (queue unchanged on error). */
int outq_append(struct outq *q, const void *p, size_t n);
/* Appends p[0..n) by reference: takes ownership of one reference on owner (released after the
 * bytes are written or dropped, also on error). */
int outq_append_ref(struct outq *q, const uint8_t *p, size_t n, void *owner);
/* Reserves n contiguous bytes at the tail of the small-bytes buffer for the caller to fill, then
 * outq_commit(q, used) (used <= n). NULL on error. Avoids a copy when encoding in place. */
uint8_t *outq_reserve(struct outq *q, size_t n);
void outq_commit(struct outq *q, size_t used);
/* Writes as much as possible to fd with writev. Returns 0 when everything was written,
 * TERN_EAGAIN when the socket is full (wait for EPOLLOUT), TERN_EIO/TERN_ECLOSED on failure.
 * *written receives bytes written. */
int outq_flush(struct outq *q, int fd, size_t *written);
/* Fills up to max iovecs with pending data (for transports that cannot writev, e.g. TLS).
 * Returns the count. */
int outq_peek(const struct outq *q, struct iovec *iov, int max);
/* Marks n bytes as written (after outq_peek + a successful transport write). */
void outq_advance(struct outq *q, size_t n);
/* Gives the storage of an empty queue back (idle connections then hold no output memory). */
void outq_trim(struct outq *q);
static inline bool outq_empty(const struct outq *q)
{
    return q->pending == 0;
}

#endif
