/* buf.h - bounded growable byte buffer (after curl's dynbuf).
 *
 * A buf has a hard maximum set at init; appends past it fail with TERN_ETOOBIG, so no buffer
 * in the broker can grow without bound. Owned by whoever embeds it; not thread-safe. */
#ifndef TERN_COMMON_BUF_H
#define TERN_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "common/err.h"

struct buf {
    uint8_t *data;
    size_t len;      /* bytes in use */
    size_t cap;      /* bytes allocated */
    size_t max;      /* hard limit on len */
    struct mem *mem; /* allocator (borrowed) */
    enum mem_cat cat;
};

/* Initialises an empty buffer that may hold at most max bytes. Allocates nothing. */
void buf_init(struct buf *b, struct mem *mem, enum mem_cat cat, size_t max);
/* Frees the storage; the buffer is empty and reusable afterwards. */
void buf_free(struct buf *b);
/* Ensures room for n more bytes. TERN_ETOOBIG past max, TERN_ENOMEM on allocation failure. */
int buf_reserve(struct buf *b, size_t n) TERN_MUST_CHECK;
/* Appends n bytes. Same errors as buf_reserve; on error the buffer is unchanged. */
int buf_append(struct buf *b, const void *p, size_t n) TERN_MUST_CHECK;
/* Appends one byte. */
int buf_putc(struct buf *b, uint8_t c) TERN_MUST_CHECK;
/* Removes the first n bytes (n <= len), moving the rest to the front. */
void buf_consume(struct buf *b, size_t n);
/* Releases storage if the buffer is empty and holds more than keep bytes (memory after bursts). */
void buf_shrink(struct buf *b, size_t keep);

#endif
