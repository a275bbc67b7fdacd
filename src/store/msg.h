/* msg.h - the immutable, refcounted application message.
 *
 * An incoming PUBLISH (or a will, or a $SYS update) becomes one struct msg; the retained tree,
 * every subscriber queue and every inflight window hold references to it, and output writes its
 * topic and payload by reference. Nothing in a msg changes after msg_new() returns except the
 * reference count (atomic: references cross I/O threads), so any thread may read it.
 *
 *   struct msg | topic bytes | v5 forwardable properties | payload bytes
 */
#ifndef TERN_STORE_MSG_H
#define TERN_STORE_MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/alloc.h"

/* A per-worker cache of small message blocks. Messages are allocated by the publisher's worker
 * and usually freed by a subscriber's: a free from any thread pushes the block on the pool's
 * lock-free `remote` stack (one CAS); the owner takes the whole stack back (one exchange) when
 * its local list runs dry. This keeps malloc's per-arena locks off the fan-out path.
 *
 *   owner:   alloc -> local list -> (empty) local = exchange(remote, NULL) -> (empty) malloc
 *   anyone:  free  -> CAS push on remote
 */
#define MSG_POOL_BLOCK 256  /* struct msg + topic + props + payload that fit use the pool */
#define MSG_POOL_MAX   8192 /* blocks kept per pool; more are given back to malloc */
struct msg_pool_block {
    struct msg_pool_block *next;
};
struct msg_pool {
    struct msg_pool_block *local; /* owner thread only */
    uint32_t nlocal;              /* owner thread only */
    _Atomic(struct msg_pool_block *) remote;
    struct mem *mem;
};
/* Initialises an empty pool (owned by one worker). */
void msg_pool_init(struct msg_pool *p, struct mem *mem);
/* Frees every cached block. Call after no message of this pool can still be alive. */
void msg_pool_fini(struct msg_pool *p);

struct msg {
    _Atomic uint32_t refs;
    uint8_t qos; /* QoS it was published with */
    bool retain; /* RETAIN flag it was published with */
    uint16_t topic_len;
    uint32_t props_len; /* forwardable v5 properties (already encoded) */
    uint32_t payload_len;
    int64_t expiry_at_ms;    /* monotonic ms when it expires (v5), 0 = never */
    uint64_t origin_session; /* publishing session id (No Local), 0 = the broker */
    struct mem *mem;         /* allocator it came from (borrowed) */
    struct msg_pool *pool;   /* pool of its block, NULL when it came from mem_alloc */
    /* Encode once per protocol version: the complete QoS 0 PUBLISH as sent to v3.1/3.1.1
     * ([0], [1]: RETAIN 0/1) and to v5 clients without per-subscriber properties ([2], [3]),
     * built by the first delivery and shared by every later one. Each buffer starts with its
     * length (uint32_t). Published with release, read with acquire; freed with the message. */
    _Atomic(uint8_t *) wire[4];
    uint8_t data[];          /* topic, properties, payload */
};

/* Creates a message with one reference held by the caller. Copies topic, props and payload.
 * pool: the calling worker's pool (its owner thread only), or NULL. NULL on ENOMEM. */
struct msg *msg_new(struct mem *mem, struct msg_pool *pool, const uint8_t *topic,
                    uint16_t topic_len, const uint8_t *props, uint32_t props_len,
                    const uint8_t *payload, uint32_t payload_len, uint8_t qos, bool retain);
/* Adds a reference; returns m. */
static inline struct msg *msg_ref(struct msg *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}
/* Drops a reference; frees the message when it was the last. NULL is fine. */
void msg_unref(struct msg *m);
/* Same as msg_unref with a void pointer (callback form for the retained tree and outq). */
void msg_unref_void(void *m);

static inline const uint8_t *msg_topic(const struct msg *m)
{
    return m->data;
}
static inline const uint8_t *msg_props(const struct msg *m)
{
    return m->data + m->topic_len;
}
static inline const uint8_t *msg_payload(const struct msg *m)
{
    return m->data + m->topic_len + m->props_len;
}
/* Bytes of heap the message occupies (for queue byte limits and $SYS). */
static inline uint64_t msg_size(const struct msg *m)
{
    return sizeof *m + m->topic_len + m->props_len + m->payload_len;
}

#endif
