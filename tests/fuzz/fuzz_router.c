/* fuzz_router.c - libFuzzer target for topic validation, matching, the trie and the retained tree.
 *
 * Input: FILTER '\n' TOPIC (no '\n' = the whole input is both). The validity functions must not
 * crash on any bytes. When the filter and the topic are both valid:
 *   - topic_matches(filter, topic) equals ref_match below, a naive level-array matcher written
 *     from MQTT 3.1.1 section 4.7 that shares no code with the router;
 *   - a trie holding only that filter (ordinary or $share) delivers to its one subscriber iff
 *     topic_matches; unsubscribing empties it back to its baseline memory;
 *   - a retained tree holding only that topic visits it from retain_match(filter) iff
 *     topic_matches, releases it once when cleared, and returns to its baseline memory.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    const uint8_t *f = data, *t = nl ? nl + 1 : data;
    size_t fn = nl ? (size_t)(nl - data) : size, tn = nl ? size - fn - 1 : size;

    bool fv = topic_filter_valid(f, fn), tv = topic_name_valid(t, tn);
    (void)topic_filter_valid(t, tn);
    (void)topic_name_valid(f, fn);
    ASSERT(topic_levels(f, fn) >= 1);
    /* a valid topic name is a valid filter matching itself */
    if (tv && !(tn >= 7 && memcmp(t, "$share/", 7) == 0))
        ASSERT(topic_filter_valid(t, tn) && topic_matches(t, tn, t, tn));
    if (!fv || !tv)
        return 0;

    const uint8_t *g, *sf;
    size_t gl, sfl;
    bool shared = topic_share_split(f, fn, &g, &gl, &sf, &sfl) == 1;
    if (!shared) {
        sf = f;
        sfl = fn;
    } else {
        ASSERT(gl > 0 && sfl > 0 && !memchr(g, '/', gl));
    }
    bool want = topic_matches(sf, sfl, t, tn);
    ASSERT(want == ref_match(sf, sfl, t, tn));
    check_trie(f, fn, t, tn, want);
    check_retain(sf, sfl, t, tn, want);
    return 0;
}
