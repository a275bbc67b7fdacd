/* alloc.c - counting allocation wrappers (see alloc.h).
 *
 * Each block carries a 16-byte header holding its size, so frees can be counted without the
 * caller passing the size. Header alignment keeps max_align_t alignment for the payload. */
#include "common/alloc.h"

#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HDR 16

static const char *const cat_names[MEM_CAT_COUNT] = {
    "misc", "connections", "sessions", "messages", "router", "config", "auth",
};

void mem_init(struct mem *m)
{
    for (int s = 0; s < MEM_SHARDS; s++)
        for (int i = 0; i < MEM_CAT_COUNT; i++)
            atomic_store_explicit(&m->shard[s].bytes[i], 0, memory_order_relaxed);
    atomic_store_explicit(&m->peak, 0, memory_order_relaxed);
    atomic_store_explicit(&m->fail_after, -1, memory_order_relaxed);
    atomic_store_explicit(&m->limit, 0, memory_order_relaxed);
}

/* Consumes one step of the failure hook; true when this allocation must fail. */
static bool hook_fires(struct mem *m)
{
    long long v = atomic_load_explicit(&m->fail_after, memory_order_relaxed);
    if (v < 0)
        return false;
    return atomic_fetch_sub_explicit(&m->fail_after, 1, memory_order_relaxed) == 0;
}

static void account(struct mem *m, enum mem_cat cat, long long delta)
{
    int cpu = sched_getcpu();
    struct mem_shard *s = &m->shard[(unsigned)(cpu < 0 ? 0 : cpu) % MEM_SHARDS];
    atomic_fetch_add_explicit(&s->bytes[cat], delta, memory_order_relaxed);
}

void *mem_alloc(struct mem *m, enum mem_cat cat, size_t n)
{
    if (n > SIZE_MAX - HDR || hook_fires(m))
        return NULL;
    unsigned char *b = malloc(n + HDR);
    if (!b)
        return NULL;
    memcpy(b, &n, sizeof n);
    account(m, cat, (long long)n);
    return b + HDR;
}

void *mem_calloc(struct mem *m, enum mem_cat cat, size_t n)
{
    void *p = mem_alloc(m, cat, n);
    if (p)
        memset(p, 0, n);
    return p;
}

void *mem_realloc(struct mem *m, enum mem_cat cat, void *p, size_t n)
{
    if (!p)
        return mem_alloc(m, cat, n);
    if (n > SIZE_MAX - HDR || hook_fires(m))
        return NULL;
    unsigned char *b = (unsigned char *)p - HDR;
    size_t old;
    memcpy(&old, b, sizeof old);
    unsigned char *nb = realloc(b, n + HDR);
    if (!nb)
        return NULL;
    memcpy(nb, &n, sizeof n);
    account(m, cat, (long long)n - (long long)old);
    return nb + HDR;
}

void mem_free(struct mem *m, enum mem_cat cat, void *p)
{
    if (!p)
        return;
    unsigned char *b = (unsigned char *)p - HDR;
    size_t n;
    memcpy(&n, b, sizeof n);
    account(m, cat, -(long long)n);
    free(b);
}

char *mem_strndup(struct mem *m, enum mem_cat cat, const char *s, size_t n)
{
    char *d = mem_alloc(m, cat, n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

bool mem_over_limit(struct mem *m)
{
    size_t limit = atomic_load_explicit(&m->limit, memory_order_relaxed);
    return limit && (size_t)mem_total(m) >= limit;
}

long long mem_cat_bytes(const struct mem *m, enum mem_cat cat)
{
    long long t = 0;
    for (int s = 0; s < MEM_SHARDS; s++)
        t += atomic_load_explicit(&m->shard[s].bytes[cat], memory_order_relaxed);
    return t;
}

long long mem_total(struct mem *m)
{
    long long t = 0;
    for (int i = 0; i < MEM_CAT_COUNT; i++)
        t += mem_cat_bytes(m, (enum mem_cat)i);
    long long p = atomic_load_explicit(&m->peak, memory_order_relaxed);
    while (t > p && !atomic_compare_exchange_weak_explicit(&m->peak, &p, t, memory_order_relaxed,
                                                           memory_order_relaxed)) {
    }
    return t;
}

const char *mem_cat_name(enum mem_cat cat)
{
    return (unsigned)cat < MEM_CAT_COUNT ? cat_names[cat] : "?";
}
