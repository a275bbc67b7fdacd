/* alloc.h - counting allocation wrappers.
 *
 * All heap memory of Tern goes through mem_alloc/mem_free with a category, so $SYS can report
 * memory per category and a global limit can refuse new work before the process dies.
 * A struct mem lives inside struct broker (or a test); counters are relaxed atomics because
 * every I/O thread allocates and frees through the same struct. A test hook can make the Nth
 * allocation fail (mem.fail_after). */
#ifndef TERN_COMMON_ALLOC_H
#define TERN_COMMON_ALLOC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

enum mem_cat {
    MEM_MISC = 0,
    MEM_CONN,    /* connections and their buffers */
    MEM_SESSION, /* sessions, inflight windows, queues */
    MEM_MSG,     /* messages (topic + payload + properties) */
    MEM_ROUTER,  /* subscription trie, retained tree */
    MEM_CONFIG,  /* configuration */
    MEM_AUTH,    /* password / ACL data */
    MEM_CAT_COUNT
};

/* Counters are sharded by CPU (sched_getcpu, cheap through rseq) so threads allocating at once
 * do not bounce one cache line: a shard is one line. Readers sum the shards. */
#define MEM_SHARDS 16
struct mem_shard {
    _Atomic long long bytes[MEM_CAT_COUNT];
} __attribute__((aligned(64)));

struct mem {
    struct mem_shard shard[MEM_SHARDS];
    _Atomic long long peak;       /* highest total seen by mem_total() (sampled) */
    _Atomic long long fail_after; /* test hook: <0 off; 0 = fail next allocation */
    _Atomic size_t limit;         /* 0 = none; checked by mem_over_limit(); set on reload */
};

/* Initialises counters to zero, no limit, hook off. */
void mem_init(struct mem *m);

/* Allocates n bytes (uninitialised) counted under cat. Returns NULL on failure or when the
 * test hook fires. Free with mem_free on the same struct mem. */
void *mem_alloc(struct mem *m, enum mem_cat cat, size_t n);
/* As mem_alloc but zeroed. */
void *mem_calloc(struct mem *m, enum mem_cat cat, size_t n);
/* Resizes p (may be NULL) to n bytes; on failure returns NULL and p is untouched. */
void *mem_realloc(struct mem *m, enum mem_cat cat, void *p, size_t n);
/* Frees p (NULL is fine). cat must be the category it was allocated under. */
void mem_free(struct mem *m, enum mem_cat cat, void *p);
/* Returns a new NUL-terminated copy of n bytes at s, or NULL. */
char *mem_strndup(struct mem *m, enum mem_cat cat, const char *s, size_t n);

/* True when the configured global limit is set and current usage is at or above it. */
bool mem_over_limit(struct mem *m);
/* Current total bytes (sums the shards; also raises the sampled peak). */
long long mem_total(struct mem *m);
/* Current bytes of one category. */
long long mem_cat_bytes(const struct mem *m, enum mem_cat cat);
/* Name of a category for $SYS and logs. */
const char *mem_cat_name(enum mem_cat cat);

#endif
