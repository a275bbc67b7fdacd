/* store_mem.c - in-memory store backend: the retained-message tree behind a mutex.
 *
 * Owns the tree and one reference per retained message. The mutex is held only for tree
 * operations (no syscalls, no allocation-free promise needed: allocation does not block on I/O). */
#include <pthread.h>
#include <stddef.h>

#include "router/retain.h"
#include "store/store.h"

struct store_mem {
    struct store base;
    struct mem *mem;
    pthread_mutex_t lock;
    struct retain *tree; /* guarded by lock */
    uint64_t bytes;      /* guarded by lock */
};

static struct store_mem *sm(struct store *st)
{
    return (struct store_mem *)st;
}

static int mem_retain_put(struct store *st, struct msg *m)
{
    struct store_mem *s = sm(st);
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    struct msg *old = retain_get(s->tree, msg_topic(m), m->topic_len);
    uint64_t old_bytes = old ? msg_size(old) : 0;
    if (m->payload_len == 0) {
        rc = retain_set(s->tree, msg_topic(m), m->topic_len, NULL);
        if (!rc)
            s->bytes -= old_bytes;
    } else {
        rc = retain_set(s->tree, msg_topic(m), m->topic_len, msg_ref(m));
        if (rc)
            msg_unref(m);
        else
            s->bytes += msg_size(m) - old_bytes;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

struct visit_ctx {
    store_visit_fn fn;
    void *ctx;
};

static bool visit(void *ctx, const uint8_t *topic, size_t tn, void *value)
{
    struct visit_ctx *v = ctx;
    v->fn(v->ctx, value);
    return true;
}

static void mem_retain_match(struct store *st, const uint8_t *f, size_t n, store_visit_fn fn,
                             void *ctx)
{
    struct store_mem *s = sm(st);
    struct visit_ctx v = {fn, ctx};
    pthread_mutex_lock(&s->lock);
    retain_match(s->tree, f, n, visit, &v);
    pthread_mutex_unlock(&s->lock);
}

static size_t mem_retain_count(struct store *st, uint64_t *bytes)
{
    struct store_mem *s = sm(st);
    pthread_mutex_lock(&s->lock);
    size_t n = retain_count(s->tree);
    if (bytes)
        *bytes = s->bytes;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static void mem_destroy(struct store *st)
{
    struct store_mem *s = sm(st);
    retain_destroy(s->tree);
    pthread_mutex_destroy(&s->lock);
    mem_free(s->mem, MEM_MISC, s);
}

static const struct store_ops mem_ops = {
    .retain_put = mem_retain_put,
    .retain_match = mem_retain_match,
    .retain_count = mem_retain_count,
    .destroy = mem_destroy,
};

struct store *store_mem_create(struct mem *mem)
{
    struct store_mem *s = mem_calloc(mem, MEM_MISC, sizeof *s);
    if (!s)
        return NULL;
    s->tree = retain_create(mem, msg_unref_void);
    if (!s->tree) {
        mem_free(mem, MEM_MISC, s);
        return NULL;
    }
    pthread_mutex_init(&s->lock, NULL);
    s->base.ops = &mem_ops;
    s->mem = mem;
    return &s->base;
}
