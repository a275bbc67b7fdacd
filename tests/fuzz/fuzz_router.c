/* fuzz_router.c - libFuzzer target for topic validation, matching, the trie and the retained tree.
 *
 * Input: FILTER '\n' TOPIC (no '\n' = the whole input is both), or more generally
 * FILTER_1 '\n' ... FILTER_k '\n' TOPIC. The validity functions must not crash on any bytes.
 * For each FILTER_i that is valid with a valid TOPIC:
 *   - topic_matches(filter, topic) equals ref_match below, a naive level-array matcher written
 *     from MQTT 3.1.1 section 4.7 that shares no code with the router;
 *   - a trie holding only that filter (ordinary or $share) delivers to its one subscriber iff
 *     topic_matches; unsubscribing empties it back to its baseline memory;
 *   - a retained tree holding only that topic visits it from retain_match(filter) iff
 *     topic_matches, releases it once when cleared, and returns to its baseline memory.
 * With several filters, one trie holds all of them (subscriber i at FILTER_i, so they share
 * nodes, fill wide levels and prune next to each other): TOPIC reaches exactly the subscribers
 * whose filter ref_match accepts; unsubscribing them in reverse order empties the trie.
 * Seeds: tests/fuzz/corpus/router. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "router/retain.h"
#include "router/topic.h"
#include "router/trie.h"

#define ASSERT(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct level {
    const uint8_t *p;
    size_t n;
};

/* Splits s[0..n) at every '/' into a new array (free it); *count gets the number of levels. */
static struct level *split(const uint8_t *s, size_t n, size_t *count)
{
    size_t k = 1;
    for (size_t i = 0; i < n; i++)
        k += s[i] == '/';
    struct level *l = malloc(k * sizeof *l);
    ASSERT(l);
    size_t start = 0, j = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '/') {
            l[j].p = s + start;
            l[j].n = i - start;
            j++;
            start = i + 1;
        }
    }
    *count = k;
    return l;
}

static bool is(const struct level *l, char c)
{
    return l->n == 1 && l->p[0] == c;
}

static bool ref_match(const uint8_t *f, size_t fn, const uint8_t *t, size_t tn)
{
    size_t nf, nt;
    struct level *F = split(f, fn, &nf), *T = split(t, tn, &nt);
    bool m;
    if (T[0].n && T[0].p[0] == '$' && (is(&F[0], '+') || is(&F[0], '#'))) {
        m = false; /* [MQTT-4.7.2-1] */
        goto out;
    }
    for (size_t i = 0;; i++) {
        if (i < nf && is(&F[i], '#')) {
            m = true;
            break;
        }
        if (i == nf || i == nt) {
            m = i == nf && i == nt;
            break;
        }
        if (!is(&F[i], '+') && (F[i].n != T[i].n || memcmp(F[i].p, T[i].p, F[i].n) != 0)) {
            m = false;
            break;
        }
    }
out:
    free(F);
    free(T);
    return m;
}

struct hits {
    int subs, shares;
};

static void on_sub(void *ctx, const struct sub_entry *e)
{
    ASSERT(e->session_id == 7);
    ((struct hits *)ctx)->subs++;
}

static void on_share(void *ctx, const uint8_t *g, size_t gl, const struct sub_entry *members,
                     size_t n, _Atomic uint32_t *cursor)
{
    ASSERT(n == 1 && members[0].session_id == 7 && cursor);
    ((struct hits *)ctx)->shares++;
}

static int unrefs;
static int value_slot;

static void on_unref(void *v)
{
    ASSERT(v == &value_slot);
    unrefs++;
}

struct visit {
    int n;
    const uint8_t *t;
    size_t tn;
};

static bool on_visit(void *ctx, const uint8_t *topic, size_t tn, void *v)
{
    struct visit *s = ctx;
    ASSERT(v == &value_slot && tn == s->tn && memcmp(topic, s->t, tn) == 0);
    s->n++;
    return true;
}

/* Replaces a "$share/g/filter" view by its filter part; true when it was shared. */
static bool plain_filter(const uint8_t **f, size_t *fn)
{
    const uint8_t *g, *sf;
    size_t gl, sfl;
    if (topic_share_split(*f, *fn, &g, &gl, &sf, &sfl) != 1)
        return false;
    ASSERT(gl > 0 && !memchr(g, '/', gl));
    *f = sf;
    *fn = sfl;
    return true;
}

static void check_trie(const uint8_t *f, size_t fn, const uint8_t *t, size_t tn, bool want)
{
    struct mem m;
    mem_init(&m);
    struct trie *tr = trie_create(&m);
    ASSERT(tr);
    long long base = mem_total(&m);
    struct sub_entry e = {.session_id = 7, .options = 1};
    bool replaced;
    ASSERT(trie_subscribe(tr, f, fn, &e, &replaced) == 0 && !replaced);
    ASSERT(trie_subscribe(tr, f, fn, &e, &replaced) == 0 && replaced);
    ASSERT(trie_count(tr) == 1);
    struct hits h = {0, 0};
    trie_match(tr, t, tn, on_sub, on_share, &h);
    ASSERT(h.subs + h.shares == (want ? 1 : 0));
    ASSERT(trie_unsubscribe(tr, f, fn, 8) == TERN_ENOTFOUND);
    ASSERT(trie_unsubscribe(tr, f, fn, 7) == 0);
    ASSERT(trie_count(tr) == 0);
    ASSERT(mem_total(&m) == base);
    h.subs = h.shares = 0;
    trie_match(tr, t, tn, on_sub, on_share, &h);
    ASSERT(h.subs + h.shares == 0);
    trie_destroy(tr);
    ASSERT(mem_total(&m) == 0);
}

static void check_retain(const uint8_t *f, size_t fn, const uint8_t *t, size_t tn, bool want)
{
    struct mem m;
    mem_init(&m);
    unrefs = 0;
    struct retain *r = retain_create(&m, on_unref);
    ASSERT(r);
    long long base = mem_total(&m);
    ASSERT(retain_set(r, t, tn, &value_slot) == 0);
    ASSERT(retain_get(r, t, tn) == &value_slot && retain_count(r) == 1);
    struct visit s = {0, t, tn};
    retain_match(r, f, fn, on_visit, &s);
    ASSERT(s.n == (want ? 1 : 0));
    ASSERT(retain_set(r, t, tn, NULL) == 0);
    ASSERT(unrefs == 1 && retain_count(r) == 0 && retain_get(r, t, tn) == NULL);
    ASSERT(mem_total(&m) == base);
    ASSERT(retain_set(r, t, tn, &value_slot) == 0);
    retain_destroy(r);
    ASSERT(unrefs == 2 && mem_total(&m) == 0);
}

/* Checks one filter against the topic (both may be invalid). */
static void check_pair(const uint8_t *f, size_t fn, const uint8_t *t, size_t tn)
{
    bool fv = topic_filter_valid(f, fn), tv = topic_name_valid(t, tn);
    (void)topic_filter_valid(t, tn);
    (void)topic_name_valid(f, fn);
    ASSERT(topic_levels(f, fn) >= 1);
    /* a valid topic name is a valid filter matching itself */
    if (tv && !(tn >= 7 && memcmp(t, "$share/", 7) == 0))
        ASSERT(topic_filter_valid(t, tn) && topic_matches(t, tn, t, tn));
    if (!fv || !tv)
        return;
    const uint8_t *sf = f;
    size_t sfl = fn;
    if (plain_filter(&sf, &sfl))
        ASSERT(sfl > 0);
    bool want = topic_matches(sf, sfl, t, tn);
    ASSERT(want == ref_match(sf, sfl, t, tn));
    check_trie(f, fn, t, tn, want);
    check_retain(sf, sfl, t, tn, want);
}

#define MAX_FILTERS 64

struct multi_hits {
    int n[MAX_FILTERS];
};

static void on_multi(void *ctx, const struct sub_entry *e)
{
    ASSERT(e->session_id < MAX_FILTERS);
    ((struct multi_hits *)ctx)->n[e->session_id]++;
}

static void on_multi_share(void *ctx, const uint8_t *g, size_t gl, const struct sub_entry *members,
                           size_t n, _Atomic uint32_t *cursor)
{
    ASSERT(n >= 1 && cursor);
    for (size_t i = 0; i < n; i++)
        on_multi(ctx, &members[i]);
}

/* One trie holding every valid filter line; the topic reaches exactly the matching ones. */
static void check_multi(const uint8_t *const *fs, const size_t *fls, size_t k, const uint8_t *t,
                        size_t tn)
{
    if (!topic_name_valid(t, tn))
        return;
    struct mem m;
    mem_init(&m);
    struct trie *tr = trie_create(&m);
    ASSERT(tr);
    long long base = mem_total(&m);
    bool ok[MAX_FILTERS];
    size_t live = 0;
    for (size_t i = 0; i < k; i++) {
        ok[i] = topic_filter_valid(fs[i], fls[i]);
        if (!ok[i])
            continue;
        struct sub_entry e = {.session_id = i};
        bool replaced;
        ASSERT(trie_subscribe(tr, fs[i], fls[i], &e, &replaced) == 0 && !replaced);
        live++;
    }
    ASSERT(trie_count(tr) == live);
    struct multi_hits h;
    memset(&h, 0, sizeof h);
    trie_match(tr, t, tn, on_multi, on_multi_share, &h);
    for (size_t i = 0; i < k; i++) {
        const uint8_t *sf = fs[i];
        size_t sfl = fls[i];
        if (ok[i])
            plain_filter(&sf, &sfl);
        ASSERT(h.n[i] == (ok[i] && ref_match(sf, sfl, t, tn) ? 1 : 0));
    }
    for (size_t i = k; i-- > 0;)
        if (ok[i])
            ASSERT(trie_unsubscribe(tr, fs[i], fls[i], i) == 0);
    ASSERT(trie_count(tr) == 0 && mem_total(&m) == base);
    trie_destroy(tr);
    ASSERT(mem_total(&m) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *lines[MAX_FILTERS + 1];
    size_t lens[MAX_FILTERS + 1], k = 0, start = 0;
    for (size_t i = 0; i <= size && k < MAX_FILTERS + 1; i++) {
        if (i == size || data[i] == '\n') {
            lines[k] = data + start;
            lens[k++] = i - start;
            start = i + 1;
        }
    }
    if (k == 1) { /* no newline: the input is both the filter and the topic */
        check_pair(data, size, data, size);
        return 0;
    }
    const uint8_t *t = lines[k - 1];
    size_t tn = lens[k - 1];
    for (size_t i = 0; i + 1 < k; i++)
        check_pair(lines[i], lens[i], t, tn);
    if (k > 2)
        check_multi(lines, lens, k - 1, t, tn);
    return 0;
}
