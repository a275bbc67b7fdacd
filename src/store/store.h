/* store.h - the narrow storage interface for retained messages (and, with the durable backend,
 * sessions and queued messages).
 *
 * A backend is a vtable (after Redis ConnectionType / NNG nng_stream): store_mem.c keeps
 * everything in memory; a durable backend will implement the same operations and write
 * records to disk (docs/PERSISTENCE.md). In the memory backend, live sessions stay in their home
 * thread's table (broker/worker.c) and their queues inside struct session.
 *
 * Thread-safety: every operation may be called from any I/O thread; the backend locks. No lock
 * is held while calling back into the caller except the visit callback of retain_match, which
 * must only take references and copy (no syscalls, no locks). */
#ifndef TERN_STORE_STORE_H
#define TERN_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "common/err.h"
#include "store/msg.h"

struct store;

typedef void (*store_visit_fn)(void *ctx, struct msg *m);

struct store_ops {
    /* Stores m (taking a new reference itself) as the retained message of its topic, or clears
     * the topic when m has an empty payload [MQTT-3.3.1-10] [MQTT-3.3.1-11]. */
    int (*retain_put)(struct store *st, struct msg *m);
    /* Calls fn for each retained message matching the valid ordinary filter f. */
    void (*retain_match)(struct store *st, const uint8_t *f, size_t n, store_visit_fn fn,
                         void *ctx);
    /* Number of retained messages and their bytes. */
    size_t (*retain_count)(struct store *st, uint64_t *bytes);
    void (*destroy)(struct store *st);
};

struct store {
    const struct store_ops *ops;
};

/* Creates the in-memory backend. NULL on ENOMEM. */
struct store *store_mem_create(struct mem *mem);

static inline int store_retain_put(struct store *st, struct msg *m)
{
    return st->ops->retain_put(st, m);
}
static inline void store_retain_match(struct store *st, const uint8_t *f, size_t n,
                                      store_visit_fn fn, void *ctx)
{
    st->ops->retain_match(st, f, n, fn, ctx);
}
static inline size_t store_retain_count(struct store *st, uint64_t *bytes)
{
    return st->ops->retain_count(st, bytes);
}
static inline void store_destroy(struct store *st)
{
    if (st)
        st->ops->destroy(st);
}

#endif
