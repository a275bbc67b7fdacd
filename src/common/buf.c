/* buf.c - bounded growable byte buffer (see buf.h). */
#include "common/buf.h"

#include <string.h>

void buf_init(struct buf *b, struct mem *mem, enum mem_cat cat, size_t max)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->max = max;
    b->mem = mem;
    b->cat = cat;
}

void buf_free(struct buf *b)
{
    mem_free(b->mem, b->cat, b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int buf_reserve(struct buf *b, size_t n)
{
    if (n > b->max || b->len > b->max - n)
        return TERN_ETOOBIG;
    size_t need = b->len + n;
    if (need <= b->cap)
        return 0;
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < need)
        ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
    if (ncap > b->max)
        ncap = b->max > need ? b->max : need;
    uint8_t *nd = mem_realloc(b->mem, b->cat, b->data, ncap);
    if (!nd)
        return TERN_ENOMEM;
    b->data = nd;
    b->cap = ncap;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    int rc = buf_reserve(b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int buf_putc(struct buf *b, uint8_t c)
{
    return buf_append(b, &c, 1);
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void buf_shrink(struct buf *b, size_t keep)
{
    if (b->len == 0 && b->cap > keep)
        buf_free(b);
}
