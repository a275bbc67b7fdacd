/* msg.c - refcounted message allocation (see msg.h). */
#include "store/msg.h"

#include <string.h>

void msg_pool_init(struct msg_pool *p, struct mem *mem)
{
    p->local = NULL;
    p->nlocal = 0;
    atomic_init(&p->remote, NULL);
    p->mem = mem;
}

void msg_pool_fini(struct msg_pool *p)
{
    struct msg_pool_block *b = atomic_exchange(&p->remote, NULL);
    while (b) {
        struct msg_pool_block *n = b->next;
        mem_free(p->mem, MEM_MSG, b);
        b = n;
    }
    while (p->local) {
        struct msg_pool_block *n = p->local->next;
        mem_free(p->mem, MEM_MSG, p->local);
        p->local = n;
    }
    p->nlocal = 0;
}

static void *pool_get(struct msg_pool *p)
{
    if (!p->local) {
        /* acquire: the blocks' previous contents were released by the freeing threads */
        p->local = atomic_exchange_explicit(&p->remote, NULL, memory_order_acquire);
        p->nlocal = 0;
        for (struct msg_pool_block *b = p->local; b; b = b->next)
            p->nlocal++;
        while (p->nlocal > MSG_POOL_MAX) {
            struct msg_pool_block *n = p->local->next;
            mem_free(p->mem, MEM_MSG, p->local);
            p->local = n;
            p->nlocal--;
        }
    }
    struct msg_pool_block *b = p->local;
    if (b) {
        p->local = b->next;
        p->nlocal--;
        return b;
    }
    return mem_alloc(p->mem, MEM_MSG, MSG_POOL_BLOCK);
}

static void pool_put(struct msg_pool *p, void *blk)
{
    struct msg_pool_block *b = blk;
    b->next = atomic_load_explicit(&p->remote, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&p->remote, &b->next, b, memory_order_release,
                                                  memory_order_relaxed)) {
    }
}

struct msg *msg_new(struct mem *mem, struct msg_pool *pool, const uint8_t *topic,
                    uint16_t topic_len, const uint8_t *props, uint32_t props_len,
                    const uint8_t *payload, uint32_t payload_len, uint8_t qos, bool retain)
{
    size_t size = sizeof(struct msg) + (size_t)topic_len + props_len + payload_len;
    bool pooled = pool && size <= MSG_POOL_BLOCK;
    struct msg *m = pooled ? pool_get(pool) : mem_alloc(mem, MEM_MSG, size);
    if (!m)
        return NULL;
    m->pool = pooled ? pool : NULL;
    for (int i = 0; i < 4; i++)
        atomic_init(&m->wire[i], NULL);
    atomic_init(&m->refs, 1);
    m->qos = qos;
    m->retain = retain;
    m->topic_len = topic_len;
    m->props_len = props_len;
    m->payload_len = payload_len;
    m->expiry_at_ms = 0;
    m->origin_session = 0;
    m->mem = mem;
    if (topic_len)
        memcpy(m->data, topic, topic_len);
    if (props_len)
        memcpy(m->data + topic_len, props, props_len);
    if (payload_len)
        memcpy(m->data + topic_len + props_len, payload, payload_len);
    return m;
}

void msg_unref(struct msg *m)
{
    if (!m)
        return;
    /* acq_rel: the freeing thread must see every write made before other threads' unref */
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1) {
        for (int i = 0; i < 4; i++)
            mem_free(m->mem, MEM_MSG, atomic_load_explicit(&m->wire[i], memory_order_relaxed));
        if (m->pool)
            pool_put(m->pool, m);
        else
            mem_free(m->mem, MEM_MSG, m);
    }
}

void msg_unref_void(void *m)
{
    msg_unref(m);
}
