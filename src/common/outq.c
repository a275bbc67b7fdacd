/* outq.c - pending output of one connection (see outq.h). */
#include "common/outq.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#define OUTQ_IOV_MAX 64

void outq_init(struct outq *q, struct mem *mem, size_t max_bytes, outq_release_fn release)
{
    memset(q, 0, sizeof *q);
    buf_init(&q->bytes, mem, MEM_CONN, max_bytes);
    q->release = release;
    q->mem = mem;
}

static struct outq_seg *seg_at(const struct outq *q, uint32_t i)
{
    return &q->segs[(q->head + i) % q->cap];
}

void outq_free(struct outq *q)
{
    for (uint32_t i = 0; i < q->count; i++) {
        struct outq_seg *s = seg_at(q, i);
        if (s->owner)
            q->release(s->owner);
    }
    mem_free(q->mem, MEM_CONN, q->segs);
    q->segs = NULL;
    q->head = q->count = q->cap = 0;
    buf_free(&q->bytes);
    q->bytes_off = 0;
    q->pending = 0;
}

/* Makes room for one more segment. */
static int seg_grow(struct outq *q)
{
    if (q->count < q->cap)
        return 0;
    uint32_t ncap = q->cap ? q->cap * 2 : 8;
    struct outq_seg *ns = mem_alloc(q->mem, MEM_CONN, (size_t)ncap * sizeof *ns);
    if (!ns)
        return TERN_ENOMEM;
    for (uint32_t i = 0; i < q->count; i++)
        ns[i] = *seg_at(q, i);
    mem_free(q->mem, MEM_CONN, q->segs);
    q->segs = ns;
    q->cap = ncap;
    q->head = 0;
    return 0;
}

/* Accounts n freshly appended buffer bytes to the tail BYTES segment (or a new one). */
static int add_bytes_seg(struct outq *q, size_t n)
{
    if (q->count) {
        struct outq_seg *t = seg_at(q, q->count - 1);
        if (!t->p && t->len <= UINT32_MAX - n) {
            t->len += (uint32_t)n;
            q->pending += n;
            return 0;
        }
    }
    int rc = seg_grow(q);
    if (rc)
        return rc;
    struct outq_seg *s = seg_at(q, q->count++);
    s->p = NULL;
    s->len = (uint32_t)n;
    s->owner = NULL;
    q->pending += n;
    return 0;
}

/* Reclaims the written prefix of the bytes buffer when it is large (keeps appends amortised). */
static void compact(struct outq *q)
{
    if (q->bytes_off && q->bytes_off == q->bytes.len) {
        q->bytes.len = 0;
        q->bytes_off = 0;
    } else if (q->bytes_off > 65536 && q->bytes_off * 2 > q->bytes.len) {
        buf_consume(&q->bytes, q->bytes_off);
        q->bytes_off = 0;
    }
}

uint8_t *outq_reserve(struct outq *q, size_t n)
{
    compact(q);
    if (seg_grow(q) || buf_reserve(&q->bytes, n))
        return NULL;
    return q->bytes.data + q->bytes.len;
}

void outq_commit(struct outq *q, size_t used)
{
    if (!used)
        return;
    q->bytes.len += used;
    /* seg_grow already succeeded in outq_reserve, so this cannot fail */
    (void)add_bytes_seg(q, used);
}

int outq_append(struct outq *q, const void *p, size_t n)
{
    uint8_t *dst = outq_reserve(q, n);
    if (!dst)
        return q->bytes.len + n > q->bytes.max ? TERN_ETOOBIG : TERN_ENOMEM;
    memcpy(dst, p, n);
    outq_commit(q, n);
    return 0;
}

int outq_append_ref(struct outq *q, const uint8_t *p, size_t n, void *owner)
{
    if (n == 0 || n > UINT32_MAX) {
        q->release(owner);
        return n ? TERN_ETOOBIG : 0;
    }
    int rc = seg_grow(q);
    if (rc) {
        q->release(owner);
        return rc;
    }
    struct outq_seg *s = seg_at(q, q->count++);
    s->p = p;
    s->len = (uint32_t)n;
    s->owner = owner;
    q->pending += n;
    return 0;
}

int outq_peek(const struct outq *q, struct iovec *iov, int max)
{
    int n = 0;
    size_t boff = q->bytes_off;
    for (uint32_t i = 0; i < q->count && n < max; i++) {
        const struct outq_seg *s = seg_at(q, i);
        if (s->p) {
            iov[n].iov_base = (void *)s->p;
        } else {
            iov[n].iov_base = q->bytes.data + boff;
            boff += s->len;
        }
        iov[n].iov_len = s->len;
        n++;
    }
    return n;
}

void outq_advance(struct outq *q, size_t n)
{
    q->pending -= n;
    while (n && q->count) {
        struct outq_seg *s = seg_at(q, 0);
        size_t take = n < s->len ? n : s->len;
        if (s->p)
            s->p += take;
        else
            q->bytes_off += take;
        s->len -= (uint32_t)take;
        n -= take;
        if (s->len == 0) {
            if (s->owner)
                q->release(s->owner);
            q->head = (q->head + 1) % q->cap;
            q->count--;
        }
    }
    /* drop zero-length segments left at the head */
    while (q->count && seg_at(q, 0)->len == 0) {
        struct outq_seg *s = seg_at(q, 0);
        if (s->owner)
            q->release(s->owner);
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    if (q->count == 0) {
        q->bytes.len = 0;
        q->bytes_off = 0;
        q->head = 0;
    }
}

int outq_flush(struct outq *q, int fd, size_t *written)
{
    *written = 0;
    while (q->pending) {
        struct iovec iov[OUTQ_IOV_MAX];
        int n = outq_peek(q, iov, OUTQ_IOV_MAX);
        ssize_t w = writev(fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return TERN_EAGAIN;
            return errno == EPIPE || errno == ECONNRESET ? TERN_ECLOSED : TERN_EIO;
        }
        outq_advance(q, (size_t)w);
        *written += (size_t)w;
    }
    return 0;
}

void outq_trim(struct outq *q)
{
    if (q->count)
        return;
    buf_free(&q->bytes);
    q->bytes_off = 0;
    mem_free(q->mem, MEM_CONN, q->segs);
    q->segs = NULL;
    q->head = q->cap = 0;
}
