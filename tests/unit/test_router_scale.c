/* test_router_scale.c - the router at sizes the small tests of test_router.c never reach:
 * wide nodes (the level map switching between its dense and hashed forms), filters with
 * thousands of subscribers (the session_id index), share groups with many members, topics of
 * tens of thousands of levels (no per-level recursion), and memory accounted under MEM_ROUTER
 * only. The randomized test uses a wide alphabet and interleaves subscribe/unsubscribe with
 * matching, checked against rec_match below: a naive recursive matcher written for this file
 * (it shares no code with the router nor with test_router.c's reference). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "router/retain.h"
#include "router/topic.h"
#include "router/trie.h"
#include "unit.h"

#define S(lit) (const uint8_t *)(lit), strlen(lit)

/* ---- naive recursive reference (MQTT 3.1.1 section 4.7) over NUL-terminated strings ---- */

static size_t level_end(const char *s)
{
    const char *slash = strchr(s, '/');
    return slash ? (size_t)(slash - s) : strlen(s);
}

/* f and t are at the start of a level each; t_more says t still has a level there (after a
 * trailing '/', the empty last level still counts). */
static bool rec_levels(const char *f, const char *t, bool t_more)
{
    size_t fl = level_end(f), tl = level_end(t);
    if (fl == 1 && f[0] == '#')
        return true;
    if (!t_more)
        return false;
    if (!(fl == 1 && f[0] == '+') && (fl != tl || memcmp(f, t, fl) != 0))
        return false;
    bool f_next = f[fl] == '/', t_next = t[tl] == '/';
    if (!f_next)
        return !t_next;
    if (!t_next) /* topic done: only a following "#" matches (the parent-level rule) */
        return strcmp(f + fl + 1, "#") == 0;
    return rec_levels(f + fl + 1, t + tl + 1, true);
}

static bool rec_match(const char *f, const char *t)
{
    if (t[0] == '$' && (f[0] == '+' || f[0] == '#')) /* [MQTT-4.7.2-1] */
        return false;
    return rec_levels(f, t, true);
}

/* ---- PRNG (splitmix64, fixed seed) ---- */

static uint64_t rng = 12345;

static uint32_t rnd(uint32_t n)
{
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)((z ^ (z >> 31)) % n);
}

/* 40 words: enough for nodes of more than ROUTER_MAP_SMALL children, plus empty and '$'. */
static void word(char *out, size_t cap)
{
    uint32_t k = rnd(42);
    if (k == 40)
        snprintf(out, cap, "%s", "");
    else if (k == 41)
        snprintf(out, cap, "$w%u", rnd(3));
    else
        snprintf(out, cap, "w%u", k);
}

static void random_name(char *buf, size_t cap, bool filter)
{
    size_t len = 0;
    uint32_t n = 1 + rnd(4);
    buf[0] = '\0';
    for (uint32_t i = 0; i < n; i++) {
        char w[16];
        word(w, sizeof w);
        if (filter && rnd(5) == 0)
            snprintf(w, sizeof w, "+");
        if (filter && i + 1 == n && rnd(5) == 0)
            snprintf(w, sizeof w, "#");
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? "/" : "", w);
    }
    if (!buf[0])
        snprintf(buf, cap, "/"); /* a lone empty level is not a valid name: use two */
}

/* ---- match collection ---- */

#define MAX_IDS 4096

struct hits {
    int n[MAX_IDS];
    int groups;
};

static void on_sub(void *ctx, const struct sub_entry *e)
{
    struct hits *h = ctx;
    CHECK(e->session_id < MAX_IDS);
    if (e->session_id < MAX_IDS)
        h->n[e->session_id]++;
}

static void on_share(void *ctx, const uint8_t *g, size_t gl, const struct sub_entry *members,
                     size_t n, _Atomic uint32_t *cursor)
{
    struct hits *h = ctx;
    CHECK(n >= 1 && cursor != NULL);
    h->groups++;
    for (size_t i = 0; i < n; i++)
        if (members[i].session_id < MAX_IDS)
            h->n[members[i].session_id]++;
}

static struct hits hits; /* large: keep it off the stack */

static void match(struct trie *t, const char *topic)
{
    memset(&hits, 0, sizeof hits);
    trie_match(t, S(topic), on_sub, on_share, &hits);
}

static int sub(struct trie *t, const char *f, uint64_t id, uint8_t qos, bool *replaced)
{
    struct sub_entry e = {.session_id = id, .options = qos};
    return trie_subscribe(t, S(f), &e, replaced);
}

/* Everything the router allocates is MEM_ROUTER (its child maps included). */
static void check_router_only(struct mem *m)
{
    CHECK_MSG(mem_cat_bytes(m, MEM_ROUTER) == mem_total(m), "router %lld of %lld bytes",
              mem_cat_bytes(m, MEM_ROUTER), mem_total(m));
}

/* ---- tests ---- */

/* devices/<id>/t for 10,000 ids: a node with 10,000 children, then shrinking back. */
static void test_trie_wide_node(void)
{
    enum { N = 10000 };
    struct mem m;
    mem_init(&m);
    struct trie *t = trie_create(&m);
    CHECK(t != NULL);
    if (!t)
        return;
    long long base = mem_total(&m);
    bool rep;
    char f[64];
    for (int i = 0; i < N; i++) {
        snprintf(f, sizeof f, "devices/%d/t", i);
        CHECK_EQ(sub(t, f, (uint64_t)(i % MAX_IDS), 1, &rep), 0);
    }
    CHECK_EQ(sub(t, "devices/+/t", 1, 0, &rep), 0);
    CHECK_EQ(trie_count(t), (size_t)N + 1);
    check_router_only(&m);
    for (int i = 0; i < N; i += 97) {
        snprintf(f, sizeof f, "devices/%d/t", i);
        match(t, f);
        CHECK_MSG(hits.n[i % MAX_IDS] == 1 + (i % MAX_IDS == 1), "'%s' delivered %d", f,
                  hits.n[i % MAX_IDS]);
    }
    match(t, "devices/10000/t");
    CHECK_EQ(hits.n[1], 1); /* only through devices/+/t */
    match(t, "devices/5/t/x");
    CHECK_EQ(hits.n[5], 0);
    /* remove all but 3: the map turns dense again and still finds the survivors */
    for (int i = 3; i < N; i++) {
        snprintf(f, sizeof f, "devices/%d/t", i);
        CHECK_EQ(trie_unsubscribe(t, S(f), (uint64_t)(i % MAX_IDS)), 0);
    }
    CHECK_EQ(trie_count(t), 4u);
    for (int i = 0; i < 3; i++) {
        snprintf(f, sizeof f, "devices/%d/t", i);
        match(t, f);
        CHECK_EQ(hits.n[i], 1 + (i == 1));
    }
    for (int i = 0; i < 3; i++) {
        snprintf(f, sizeof f, "devices/%d/t", i);
        CHECK_EQ(trie_unsubscribe(t, S(f), (uint64_t)i), 0);
    }
    CHECK_EQ(trie_unsubscribe(t, S("devices/+/t"), 1), 0);
    CHECK_EQ(trie_count(t), 0u);
    CHECK_MSG(mem_total(&m) == base, "%lld bytes left", mem_total(&m) - base);

    /* grow wide, shrink to a few children, then destroy with them still in: destruction
     * iterates the shrunk map and must see each child exactly once (ASan catches a double) */
    for (int i = 0; i < 100; i++) {
        snprintf(f, sizeof f, "devices/%d/t", i);
        CHECK_EQ(sub(t, f, (uint64_t)i, 1, &rep), 0);
    }
    for (int i = 0; i < 97; i++) {
        snprintf(f, sizeof f, "devices/%d/t", i);
        CHECK_EQ(trie_unsubscribe(t, S(f), (uint64_t)i), 0);
    }
    CHECK_EQ(trie_count(t), 3u);
    trie_destroy(t);
    CHECK_EQ(mem_total(&m), 0);
}

/* 3,000 subscribers on one filter (the session_id index), replaced, removed in random order. */
static void test_trie_many_subscribers(void)
{
    enum { N = 3000 };
    struct mem m;
    mem_init(&m);
    struct trie *t = trie_create(&m);
    CHECK(t != NULL);
    if (!t)
        return;
    long long base = mem_total(&m);
    bool rep;
    for (uint64_t i = 0; i < N; i++) {
        CHECK_EQ(sub(t, "fan/out", i, 0, &rep), 0);
        CHECK(!rep);
    }
    for (uint64_t i = 0; i < N; i += 7) {
        CHECK_EQ(sub(t, "fan/out", i, 2, &rep), 0);
        CHECK(rep);
    }
    CHECK_EQ(trie_count(t), (size_t)N);
    match(t, "fan/out");
    for (int i = 0; i < N; i++)
        CHECK_EQ(hits.n[i], 1);
    static bool live[N];
    for (int i = 0; i < N; i++)
        live[i] = true;
    size_t left = N;
    while (left > 5) {
        uint32_t i = rnd(N);
        CHECK_EQ(trie_unsubscribe(t, S("fan/out"), i), live[i] ? 0 : TERN_ENOTFOUND);
        left -= live[i];
        live[i] = false;
    }
    CHECK_EQ(trie_count(t), left);
    match(t, "fan/out");
    for (int i = 0; i < N; i++)
        CHECK_EQ(hits.n[i], live[i] ? 1 : 0);
    for (uint32_t i = 0; i < N; i++)
        if (live[i])
            CHECK_EQ(trie_unsubscribe(t, S("fan/out"), i), 0);
    CHECK_MSG(mem_total(&m) == base, "%lld bytes left", mem_total(&m) - base);
    trie_destroy(t);
    CHECK_EQ(mem_total(&m), 0);
}

/* A share group of 200 members: trie_share_pick goes round the members, skips `exclude`. */
static void test_trie_share_pick(void)
{
    enum { N = 200 };
    struct mem m;
    mem_init(&m);
    struct trie *t = trie_create(&m);
    CHECK(t != NULL);
    if (!t)
        return;
    bool rep;
    struct sub_entry e;
    CHECK_EQ(trie_share_pick(t, S("g"), S("job/+"), 0, &e), TERN_ENOTFOUND);
    CHECK_EQ(sub(t, "$share/g/job/+", 7, 1, &rep), 0);
    CHECK_EQ(trie_share_pick(t, S("g"), S("job/+"), 7, &e), TERN_ENOTFOUND); /* only 7 */
    CHECK_EQ(trie_share_pick(t, S("g"), S("job/+"), 0, &e), 0);
    CHECK_EQ(e.session_id, 7u);
    for (uint64_t i = 0; i < N; i++)
        CHECK_EQ(sub(t, "$share/g/job/+", i, 1, &rep), 0);
    CHECK_EQ(trie_count(t), (size_t)N);
    static int picked[N];
    memset(picked, 0, sizeof picked);
    for (int k = 0; k < 3 * N; k++) {
        CHECK_EQ(trie_share_pick(t, S("g"), S("job/+"), 3, &e), 0);
        CHECK(e.session_id != 3 && e.session_id < N);
        if (e.session_id < N)
            picked[e.session_id]++;
    }
    for (int i = 0; i < N; i++)
        CHECK_MSG(picked[i] == (i == 3 ? 0 : 3) || (i != 3 && picked[i] >= 2 && picked[i] <= 4),
                  "member %d picked %d times", i, picked[i]);
    CHECK_EQ(trie_share_pick(t, S("h"), S("job/+"), 0, &e), TERN_ENOTFOUND);
    CHECK_EQ(trie_share_pick(t, S("g"), S("job/x"), 0, &e), TERN_ENOTFOUND);
    match(t, "job/1");
    CHECK_EQ(hits.groups, 1);
    match(t, "$job/1"); /* not a wildcard at the first level: '$' is fine here */
    CHECK_EQ(hits.groups, 0);
    trie_destroy(t);
    CHECK_EQ(mem_total(&m), 0);
}

/* Interleaved subscribe/unsubscribe/match over a 42-word alphabet against rec_match. */
static void test_trie_random_wide(void)
{
    enum { NS = 1500, OPS = 20000 };
    struct mem m;
    mem_init(&m);
    struct trie *t = trie_create(&m);
    CHECK(t != NULL);
    if (!t)
        return;
    long long base = mem_total(&m);
    static char filters[NS][96];
    static const char *plain[NS];
    static bool live[NS];
    for (int i = 0; i < NS; i++) {
        char f[64];
        random_name(f, sizeof f, true);
        if (rnd(5) == 0)
            snprintf(filters[i], sizeof filters[i], "$share/s%u/%s", rnd(2), f);
        else
            snprintf(filters[i], sizeof filters[i], "%s", f);
        plain[i] = filters[i][0] == '$' && strncmp(filters[i], "$share/", 7) == 0
                       ? filters[i] + strlen("$share/sN/")
                       : filters[i];
        CHECK_MSG(topic_filter_valid(S(filters[i])), "generated filter '%s'", filters[i]);
        live[i] = false;
    }
    size_t count = 0;
    for (int op = 0; op < OPS && !unit_state.cur_failures; op++) {
        uint32_t k = rnd(10);
        if (k < 4) {
            uint32_t i = rnd(NS);
            bool rep;
            CHECK_EQ(sub(t, filters[i], i, 1, &rep), 0);
            CHECK(rep == live[i]);
            count += !live[i];
            live[i] = true;
        } else if (k < 6) {
            uint32_t i = rnd(NS);
            CHECK_EQ(trie_unsubscribe(t, S(filters[i]), i), live[i] ? 0 : TERN_ENOTFOUND);
            count -= live[i];
            live[i] = false;
        } else {
            char topic[64];
            random_name(topic, sizeof topic, false);
            CHECK(topic_name_valid(S(topic)));
            match(t, topic);
            for (int i = 0; i < NS; i++) {
                int want = live[i] && rec_match(plain[i], topic);
                if (hits.n[i] != want) {
                    CHECK_MSG(hits.n[i] == want, "'%s' on '%s': %d deliveries, want %d", filters[i],
                              topic, hits.n[i], want);
                    break;
                }
            }
        }
        CHECK_EQ(trie_count(t), count);
    }
    check_router_only(&m);
    for (uint32_t i = 0; i < NS; i++)
        if (live[i])
            CHECK_EQ(trie_unsubscribe(t, S(filters[i]), i), 0);
    CHECK_EQ(trie_count(t), 0u);
    CHECK_MSG(mem_total(&m) == base, "%lld bytes left", mem_total(&m) - base);
    trie_destroy(t);
    CHECK_EQ(mem_total(&m), 0);
}

/* rec_match agrees with the spec examples and with topic_matches on random pairs. */
static void test_rec_match_sanity(void)
{
    CHECK(rec_match("sport/tennis/player1/#", "sport/tennis/player1"));
    CHECK(rec_match("sport/+", "sport/"));
    CHECK(!rec_match("sport/+", "sport"));
    CHECK(rec_match("+/+", "/finance"));
    CHECK(!rec_match("#", "$SYS/x"));
    CHECK(rec_match("a/#", "a"));
    CHECK(!rec_match("a/+/#", "a"));
    CHECK(!rec_match("a/", "a"));
    for (int i = 0; i < 20000; i++) {
        char f[64], tp[64];
        random_name(f, sizeof f, true);
        random_name(tp, sizeof tp, false);
        bool want = rec_match(f, tp);
        if (topic_matches(S(f), S(tp)) != want) {
            CHECK_MSG(false, "topic_matches('%s', '%s') != %d", f, tp, want);
            return;
        }
    }
}

static int unrefs;
static void on_unref(void *v)
{
    (void)v;
    unrefs++;
}

static bool count_visit(void *ctx, const uint8_t *topic, size_t tn, void *value)
{
    (*(int *)ctx)++;
    return true;
}

/* A topic of 30,000 levels and a filter of '+' levels as deep: neither the trie, the retained
 * tree nor their destruction may recurse once per level. */
static void test_deep_topics(void)
{
    enum { LEVELS = 30000 };
    size_t n = 2 * LEVELS - 1;
    char *topic = malloc(n + 1), *filter = malloc(n + 1);
    CHECK(topic && filter);
    if (!topic || !filter)
        goto out;
    for (size_t i = 0; i < n; i++) {
        topic[i] = i % 2 ? '/' : 'x';
        filter[i] = i % 2 ? '/' : '+';
    }
    topic[n] = filter[n] = '\0';
    CHECK_EQ(topic_levels((const uint8_t *)topic, n), (size_t)LEVELS);
    CHECK(topic_matches((const uint8_t *)filter, n, (const uint8_t *)topic, n));

    struct mem m;
    mem_init(&m);
    struct trie *t = trie_create(&m);
    CHECK(t != NULL);
    if (t) {
        bool rep;
        CHECK_EQ(sub(t, filter, 1, 0, &rep), 0);
        CHECK_EQ(sub(t, topic, 2, 0, &rep), 0);
        memset(&hits, 0, sizeof hits);
        trie_match(t, (const uint8_t *)topic, n, on_sub, on_share, &hits);
        CHECK(hits.n[1] == 1 && hits.n[2] == 1);
        trie_destroy(t); /* with subscriptions still in */
    }
    struct retain *r = retain_create(&m, on_unref);
    CHECK(r != NULL);
    if (r) {
        static int v1, v2;
        unrefs = 0;
        CHECK_EQ(retain_set(r, (const uint8_t *)topic, n, &v1), 0);
        CHECK_EQ(retain_set(r, (const uint8_t *)topic, 3, &v2), 0); /* "x/x" */
        int seen = 0;
        retain_match(r, (const uint8_t *)filter, n, count_visit, &seen);
        CHECK_EQ(seen, 1);
        seen = 0;
        retain_match(r, S("x/#"), count_visit, &seen);
        CHECK_EQ(seen, 2);
        seen = 0;
        retain_walk(r, count_visit, &seen);
        CHECK_EQ(seen, 2);
        retain_destroy(r);
        CHECK_EQ(unrefs, 2);
    }
    CHECK_EQ(mem_total(&m), 0);
out:
    free(topic);
    free(filter);
}

/* A retained tree with a wide level (2,000 children) under a '+', and the '$' rule. */
static void test_retain_wide(void)
{
    enum { N = 2000 };
    struct mem m;
    mem_init(&m);
    unrefs = 0;
    struct retain *r = retain_create(&m, on_unref);
    CHECK(r != NULL);
    if (!r)
        return;
    long long base = mem_total(&m);
    static int vals[N];
    char tp[64];
    for (int i = 0; i < N; i++) {
        snprintf(tp, sizeof tp, "%sd/%d/state", i % 10 ? "" : "$", i);
        CHECK_EQ(retain_set(r, S(tp), &vals[i]), 0);
    }
    check_router_only(&m);
    int seen = 0;
    retain_match(r, S("d/+/state"), count_visit, &seen);
    CHECK_EQ(seen, N - N / 10);
    seen = 0;
    retain_match(r, S("+/+/state"), count_visit, &seen); /* [MQTT-4.7.2-1] */
    CHECK_EQ(seen, N - N / 10);
    seen = 0;
    retain_match(r, S("$d/#"), count_visit, &seen);
    CHECK_EQ(seen, N / 10);
    seen = 0;
    retain_match(r, S("d/1234/+"), count_visit, &seen);
    CHECK_EQ(seen, 1);
    CHECK(retain_get(r, S("d/1999/state")) == &vals[1999]);
    /* shrink the wide level to 3 children: '+' still sees exactly those (no stale slots) */
    for (int i = 0; i < N - 3; i++) {
        snprintf(tp, sizeof tp, "%sd/%d/state", i % 10 ? "" : "$", i);
        CHECK_EQ(retain_set(r, S(tp), NULL), 0);
    }
    seen = 0;
    retain_match(r, S("d/+/state"), count_visit, &seen);
    CHECK_EQ(seen, 3);
    seen = 0;
    retain_walk(r, count_visit, &seen);
    CHECK_EQ(seen, 3);
    for (int i = N - 3; i < N; i++) {
        snprintf(tp, sizeof tp, "%sd/%d/state", i % 10 ? "" : "$", i);
        CHECK_EQ(retain_set(r, S(tp), NULL), 0);
    }
    CHECK_EQ(unrefs, N);
    CHECK_EQ(retain_count(r), 0u);
    CHECK_MSG(mem_total(&m) == base, "%lld bytes left", mem_total(&m) - base);
    retain_destroy(r);
    CHECK_EQ(unrefs, N);
    CHECK_EQ(mem_total(&m), 0);
}

/* 60 parents each grow to 100 children (hashed) and shrink to 4 (dense again): iteration of
 * the shrunk maps must see every survivor exactly once. Slot placement depends on the hash,
 * so many parents (with distinct child names) make a stale or duplicated slot show up. */
static void test_retain_shrink_iteration(void)
{
    enum { P = 60, C = 100, KEEP = 4 };
    struct mem m;
    mem_init(&m);
    unrefs = 0;
    struct retain *r = retain_create(&m, on_unref);
    CHECK(r != NULL);
    if (!r)
        return;
    static int v;
    char tp[64];
    for (int p = 0; p < P; p++)
        for (int c = 0; c < C; c++) {
            snprintf(tp, sizeof tp, "p%d/c%d.%d", p, p, c);
            CHECK_EQ(retain_set(r, S(tp), &v), 0);
        }
    for (int p = 0; p < P; p++)
        for (int c = KEEP; c < C; c++) {
            snprintf(tp, sizeof tp, "p%d/c%d.%d", p, p, c);
            CHECK_EQ(retain_set(r, S(tp), NULL), 0);
        }
    int seen = 0;
    retain_walk(r, count_visit, &seen);
    CHECK_EQ(seen, P * KEEP);
    seen = 0;
    retain_match(r, S("+/+"), count_visit, &seen);
    CHECK_EQ(seen, P * KEEP);
    for (int p = 0; p < P; p++)
        for (int c = 0; c < KEEP; c++) {
            snprintf(tp, sizeof tp, "p%d/c%d.%d", p, p, c);
            CHECK(retain_get(r, S(tp)) == &v);
        }
    retain_destroy(r);
    CHECK_EQ(unrefs, P * C);
    CHECK_EQ(mem_total(&m), 0);
}

/* x/+/#, x/x/+/#, ... x^k/+/#: along topic x^60 every level has both an exact and a '+' branch,
 * so more '+' branches are pending than the matcher's local stack holds. */
static void test_trie_many_pending_branches(void)
{
    enum { K = 60 };
    struct mem m;
    mem_init(&m);
    struct trie *t = trie_create(&m);
    CHECK(t != NULL);
    if (!t)
        return;
    char f[4 * K + 8], topic[2 * K + 2];
    bool rep;
    for (int k = 0; k < K; k++) {
        size_t len = 0;
        for (int i = 0; i < k; i++)
            len += (size_t)snprintf(f + len, sizeof f - len, "x/");
        snprintf(f + len, sizeof f - len, "+/#");
        CHECK_EQ(sub(t, f, (uint64_t)k, 0, &rep), 0);
    }
    size_t len = 0;
    for (int i = 0; i < K; i++)
        len += (size_t)snprintf(topic + len, sizeof topic - len, "%sx", i ? "/" : "");
    match(t, topic);
    for (int k = 0; k < K; k++)
        CHECK_MSG(hits.n[k] == 1, "x^%d/+/# delivered %d times", k, hits.n[k]);
    trie_destroy(t);
    CHECK_EQ(mem_total(&m), 0);
}

/* Allocation failures while a level map turns wide, an entry set gets its index, and the
 * retained tree's map grows: nothing changes, nothing leaks. */
static void test_enomem_growth(void)
{
    struct mem m;
    mem_init(&m);
    struct trie *t = trie_create(&m);
    struct retain *r = retain_create(&m, on_unref);
    CHECK(t && r);
    if (!t || !r)
        goto out;
    static int v;
    char f[32];
    bool rep;
    for (int i = 0; i < ROUTER_MAP_SMALL; i++) {
        snprintf(f, sizeof f, "w/%d", i);
        CHECK_EQ(sub(t, f, 1, 0, &rep), 0);
        CHECK_EQ(retain_set(r, S(f), &v), 0);
    }
    for (uint64_t i = 0; i < 16; i++) /* INDEX_MIN subscribers: the next one needs the index */
        CHECK_EQ(sub(t, "s", 100 + i, 0, &rep), 0);
    unrefs = 0;
    static const char *const grow[] = {"w/new", "s"};
    for (int g = 0; g < 2; g++) {
        int rc = TERN_ENOMEM;
        for (long long n = 0; rc == TERN_ENOMEM && n < 16; n++) {
            atomic_store(&m.fail_after, n);
            rc = sub(t, grow[g], 200, 0, &rep);
            atomic_store(&m.fail_after, -1);
            if (rc == TERN_ENOMEM) {
                CHECK_EQ(trie_count(t), (size_t)(ROUTER_MAP_SMALL + 16 + g));
                match(t, grow[g]);
                CHECK_EQ(hits.n[200], 0);
            }
        }
        CHECK_EQ(rc, 0);
        match(t, grow[g]);
        CHECK_EQ(hits.n[200], 1);
        CHECK_EQ(hits.n[100], g == 1);
    }
    int rc = TERN_ENOMEM;
    for (long long n = 0; rc == TERN_ENOMEM && n < 16; n++) {
        atomic_store(&m.fail_after, n);
        rc = retain_set(r, S("w/new"), &v);
        atomic_store(&m.fail_after, -1);
        if (rc == TERN_ENOMEM) {
            CHECK_EQ(retain_count(r), (size_t)ROUTER_MAP_SMALL);
            CHECK(retain_get(r, S("w/new")) == NULL);
            CHECK_EQ(unrefs, 0);
        }
    }
    CHECK_EQ(rc, 0);
    CHECK(retain_get(r, S("w/new")) == &v && retain_get(r, S("w/3")) == &v);
out:
    trie_destroy(t);
    retain_destroy(r);
    CHECK_EQ(mem_total(&m), 0);
}

void unit_main(void)
{
    UNIT_RUN(test_rec_match_sanity);
    UNIT_RUN(test_trie_wide_node);
    UNIT_RUN(test_trie_many_subscribers);
    UNIT_RUN(test_trie_share_pick);
    UNIT_RUN(test_trie_random_wide);
    UNIT_RUN(test_deep_topics);
    UNIT_RUN(test_retain_wide);
    UNIT_RUN(test_retain_shrink_iteration);
    UNIT_RUN(test_trie_many_pending_branches);
    UNIT_RUN(test_enomem_growth);
}
