/* test_router.c - topic validation and matching, the subscription trie and the retained tree.
 *
 * Table tests carry the [MQTT-x.y.z-n] tag of the statement they prove. The randomized tests
 * compare trie_match, topic_matches and retain_match with ref_match below: a deliberately naive
 * matcher that splits both strings into level arrays and walks them, sharing no code with the
 * router. The PRNG is seeded with a constant so failures reproduce. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "router/retain.h"
#include "router/topic.h"
#include "router/trie.h"
#include "unit.h"

#define S(lit) (const uint8_t *)(lit), strlen(lit)

/* ---- naive reference matcher ---- */

#define REF_MAX_LEVELS 16

struct levels {
    const char *p[REF_MAX_LEVELS];
    size_t len[REF_MAX_LEVELS];
    size_t n;
};

/* Splits s at every '/' ("a//" -> "a", "", ""). At most REF_MAX_LEVELS levels (tests stay below). */
static void split_levels(const char *s, struct levels *out)
{
    out->n = 0;
    const char *start = s;
    for (const char *c = s;; c++) {
        if (*c == '/' || *c == '\0') {
            out->p[out->n] = start;
            out->len[out->n] = (size_t)(c - start);
            out->n++;
            if (*c == '\0')
                return;
            start = c + 1;
        }
    }
}

static bool level_is(const struct levels *l, size_t i, const char *w)
{
    return l->len[i] == strlen(w) && memcmp(l->p[i], w, l->len[i]) == 0;
}

/* MQTT 3.1.1 section 4.7 matching of a valid ordinary filter against a valid topic name. */
static bool ref_match(const char *filter, const char *topic)
{
    struct levels f, t;
    split_levels(filter, &f);
    split_levels(topic, &t);
    /* [MQTT-4.7.2-1] */
    if (t.len[0] > 0 && t.p[0][0] == '$' && (level_is(&f, 0, "+") || level_is(&f, 0, "#")))
        return false;
    for (size_t i = 0;; i++) {
        if (i < f.n && level_is(&f, i, "#"))
            return true;
        if (i == f.n || i == t.n)
            return i == f.n && i == t.n;
        if (level_is(&f, i, "+"))
            continue;
        if (f.len[i] != t.len[i] || memcmp(f.p[i], t.p[i], f.len[i]) != 0)
            return false;
    }
}

/* ---- small deterministic PRNG (xorshift64*) ---- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 33) % n;
}

static const char *const topic_words[] = {"a", "b", "c", "", "$s", "$SYS", "ab"};
#define N_TOPIC_WORDS (sizeof topic_words / sizeof topic_words[0])

/* Random valid topic name of 1..4 levels into buf. */
static void random_topic(char *buf, size_t cap)
{
    do {
        buf[0] = '\0';
        uint32_t n = 1 + rnd(4);
        for (uint32_t i = 0; i < n; i++) {
            if (i)
                strncat(buf, "/", cap - strlen(buf) - 1);
            strncat(buf, topic_words[rnd(N_TOPIC_WORDS)], cap - strlen(buf) - 1);
        }
    } while (buf[0] == '\0');
}

/* Random valid ordinary filter of 1..4 levels: words, '+', and '#' only as the last level. */
static void random_filter(char *buf, size_t cap)
{
    do {
        buf[0] = '\0';
        uint32_t n = 1 + rnd(4);
        for (uint32_t i = 0; i < n; i++) {
            if (i)
                strncat(buf, "/", cap - strlen(buf) - 1);
            uint32_t k = rnd(N_TOPIC_WORDS + 3);
            const char *w = k < N_TOPIC_WORDS ? topic_words[k] : "+";
            if (i + 1 == n && rnd(4) == 0)
                w = "#";
            strncat(buf, w, cap - strlen(buf) - 1);
        }
    } while (buf[0] == '\0');
}

/* ---- topic validation ---- */

struct vcase {
    const char *s;
    bool valid;
    const char *tag;
};

static void test_topic_name_valid(void)
{
    static const struct vcase cases[] = {
        {"a", true, ""},
        {"a/b/c", true, ""},
        {"/", true, "[MQTT-4.7.3-1] one byte, two empty levels"},
        {"a//b", true, ""},
        {"/a", true, ""},
        {"a/", true, ""},
        {" ", true, "spaces are allowed"},
        {"$SYS/broker", true, ""},
        {"$share/g/a", true, "a topic name may look like a share"},
        {"", false, "[MQTT-4.7.3-1]"},
        {"+", false, "[MQTT-4.7.1-1]"},
        {"a/+", false, "[MQTT-4.7.1-1]"},
        {"a+", false, "[MQTT-4.7.1-1]"},
        {"#", false, "[MQTT-4.7.1-1]"},
        {"a/#", false, "[MQTT-4.7.1-1]"},
        {"a#b", false, "[MQTT-4.7.1-1]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(topic_name_valid(S(cases[i].s)) == cases[i].valid, "topic name '%s' %s",
                  cases[i].s, cases[i].tag);
    /* [MQTT-4.7.3-2] U+0000 */
    CHECK(!topic_name_valid((const uint8_t *)"a\0b", 3));
    CHECK(!topic_name_valid((const uint8_t *)"\0", 1));
    /* [MQTT-4.7.3-3] at most 65535 bytes */
    uint8_t *big = malloc(65536);
    CHECK(big != NULL);
    if (!big)
        return;
    memset(big, 'x', 65536);
    big[100] = '/';
    CHECK(topic_name_valid(big, 65535));
    CHECK(!topic_name_valid(big, 65536));
    CHECK(topic_filter_valid(big, 65535));
    CHECK(!topic_filter_valid(big, 65536));
    /* the limit is on the whole shared filter, not on the part after the group */
    memcpy(big, "$share/g/", 9);
    CHECK(topic_filter_valid(big, 65535));
    CHECK(!topic_filter_valid(big, 65536));
    free(big);
}

static void test_topic_filter_valid(void)
{
    static const struct vcase cases[] = {
        {"a", true, ""},
        {"#", true, "[MQTT-4.7.1-2]"},
        {"a/#", true, "[MQTT-4.7.1-2]"},
        {"/#", true, "[MQTT-4.7.1-2]"},
        {"+", true, "[MQTT-4.7.1-3]"},
        {"+/+", true, "[MQTT-4.7.1-3]"},
        {"/+", true, "[MQTT-4.7.1-3]"},
        {"+/", true, "[MQTT-4.7.1-3]"},
        {"a/+/b", true, "[MQTT-4.7.1-3]"},
        {"+/#", true, "[MQTT-4.7.1-2] [MQTT-4.7.1-3]"},
        {"sport/tennis/+", true, ""},
        {"a//b", true, ""},
        {"/", true, ""},
        {"$SYS/#", true, ""},
        {"$share/g/a/b", true, "shared subscription"},
        {"$share/g/#", true, ""},
        {"$share/g/+/x", true, ""},
        {"$sharex/a", true, "not a share prefix: an ordinary filter"},
        {"", false, "[MQTT-4.7.3-1]"},
        {"a#", false, "[MQTT-4.7.1-2]"},
        {"a/#/b", false, "[MQTT-4.7.1-2]"},
        {"#/", false, "[MQTT-4.7.1-2]"},
        {"##", false, "[MQTT-4.7.1-2]"},
        {"a/b#", false, "[MQTT-4.7.1-2]"},
        {"a+", false, "[MQTT-4.7.1-3]"},
        {"+a", false, "[MQTT-4.7.1-3]"},
        {"a/+b", false, "[MQTT-4.7.1-3]"},
        {"sport+", false, "[MQTT-4.7.1-3]"},
        {"++", false, "[MQTT-4.7.1-3]"},
        {"+#", false, "[MQTT-4.7.1-2] [MQTT-4.7.1-3]"},
        {"$share//a", false, "empty share group"},
        {"$share/g", false, "share without filter"},
        {"$share/g/", false, "share with empty filter"},
        {"$share/g+/a", false, "'+' in share group"},
        {"$share/g#/a", false, "'#' in share group"},
        {"$share/+/a", false, "'+' as share group"},
        {"$share/g/a#", false, "invalid filter after the group"},
        {"$share/", false, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(topic_filter_valid(S(cases[i].s)) == cases[i].valid, "filter '%s' %s",
                  cases[i].s, cases[i].tag);
    /* [MQTT-4.7.3-2] */
    CHECK(!topic_filter_valid((const uint8_t *)"a/\0", 3));
    CHECK(!topic_filter_valid((const uint8_t *)"$share/g\0/a", 11));
    CHECK(!topic_filter_valid((const uint8_t *)"$share/g/a\0", 11));
}

static void test_topic_share_split_and_levels(void)
{
    const uint8_t *g, *f;
    size_t gl, fl;
    CHECK_EQ(topic_share_split(S("$share/grp/a/b"), &g, &gl, &f, &fl), 1);
    CHECK(gl == 3 && memcmp(g, "grp", 3) == 0);
    CHECK(fl == 3 && memcmp(f, "a/b", 3) == 0);
    CHECK_EQ(topic_share_split(S("$share/g"), &g, &gl, &f, &fl), 1);
    CHECK(gl == 1 && fl == 0);
    CHECK_EQ(topic_share_split(S("a/b"), &g, &gl, &f, &fl), 0);
    CHECK_EQ(topic_share_split(S("$shar"), &g, &gl, &f, &fl), 0);
    CHECK_EQ(topic_levels(S("a")), 1u);
    CHECK_EQ(topic_levels(S("a/b")), 2u);
    CHECK_EQ(topic_levels(S("/")), 2u);
    CHECK_EQ(topic_levels(S("a//b/")), 4u);
}

/* ---- topic_matches ---- */

struct mcase {
    const char *f, *t;
    bool match;
};

static void test_topic_matches_spec(void)
{
    static const struct mcase cases[] = {
        /* 4.7.1.2 multi-level wildcard */
        {"sport/tennis/player1/#", "sport/tennis/player1", true},
        {"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
        {"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
        {"sport/tennis/player1/#", "sport/tennis/player2", false},
        {"sport/#", "sport", true},
        {"sport/#", "sport/", true},
        {"sport/#", "sports", false},
        {"a/#", "a", true},
        {"a/#", "a/b/c", true},
        {"a/#", "b", false},
        {"a/b/#", "a", false},
        {"#", "a", true},
        {"#", "/", true},
        {"#", "a/b/c", true},
        {"/#", "/a", true},
        {"/#", "a", false},
        /* 4.7.1.3 single-level wildcard */
        {"sport/tennis/+", "sport/tennis/player1", true},
        {"sport/tennis/+", "sport/tennis/player2", true},
        {"sport/tennis/+", "sport/tennis/player1/ranking", false},
        {"sport/+", "sport", false},
        {"sport/+", "sport/", true},
        {"+", "a", true},
        {"+", "/a", false},
        {"+", "a/", false},
        {"+", "/", false},
        {"+/+", "/finance", true},
        {"+/+", "a/b", true},
        {"+/+", "a", false},
        {"/+", "/finance", true},
        {"/+", "finance", false},
        {"+/tennis/#", "sport/tennis", true},
        {"+/tennis/#", "sport/tennis/x/y", true},
        {"a/+/#", "a", false},
        {"a/+/#", "a/b", true},
        /* [MQTT-4.7.2-1] wildcards at the first level do not match '$' topics */
        {"#", "$SYS", false},
        {"#", "$SYS/broker/uptime", false},
        {"+/monitor/Clients", "$SYS/monitor/Clients", false},
        {"+", "$x", false},
        {"$SYS/#", "$SYS/monitor/Clients", true},
        {"$SYS/#", "$SYS", true},
        {"$SYS/monitor/+", "$SYS/monitor/Clients", true},
        {"a/+", "a/$x", true},
        {"a/#", "a/$x", true},
        {"+", "x$", true},
        /* empty levels [MQTT-4.7.3-4] no normalisation */
        {"a//b", "a//b", true},
        {"a//b", "a/b", false},
        {"a/+/b", "a//b", true},
        {"/a", "/a", true},
        {"/a", "a", false},
        {"a/", "a/", true},
        {"a/", "a", false},
        {"a", "a/", false},
        {"+/", "a/", true},
        {"//", "//", true},
        {"+/+/+", "//", true},
        /* plain */
        {"a/b", "a/b", true},
        {"a/b", "a/bc", false},
        {"a/bc", "a/b", false},
        {"A", "a", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got = topic_matches(S(cases[i].f), S(cases[i].t));
        CHECK_MSG(got == cases[i].match, "topic_matches('%s', '%s') = %d", cases[i].f, cases[i].t,
                  got);
        CHECK_MSG(ref_match(cases[i].f, cases[i].t) == cases[i].match,
                  "reference matcher disagrees on ('%s', '%s')", cases[i].f, cases[i].t);
    }
}

static void test_topic_matches_random(void)
{
    char f[64], t[64];
    for (int i = 0; i < 20000; i++) {
        random_filter(f, sizeof f);
        random_topic(t, sizeof t);
        CHECK(topic_filter_valid(S(f)));
        CHECK(topic_name_valid(S(t)));
        bool want = ref_match(f, t);
        bool got = topic_matches(S(f), S(t));
        if (got != want) {
            CHECK_MSG(got == want, "topic_matches('%s', '%s') = %d, reference %d", f, t, got, want);
            return;
        }
        /* a topic name is also a filter that matches exactly itself */
        CHECK(topic_matches(S(t), S(t)));
    }
}

/* ---- trie ---- */

#define MAX_IDS 512

struct hits {
    int n[MAX_IDS];            /* deliveries per session id */
    int share_calls;           /* share_fn calls */
    int share_members;         /* members seen over all share_fn calls */
    char group[8][16];         /* group names seen, in call order */
    uint64_t first_member[8];  /* members[0].session_id per call */
    _Atomic uint32_t *cursor[8];
};

static void on_sub(void *ctx, const struct sub_entry *e)
{
    struct hits *h = ctx;
    if (e->session_id < MAX_IDS)
        h->n[e->session_id]++;
}

static void on_share(void *ctx, const uint8_t *group, size_t gl, const struct sub_entry *members,
                     size_t n, _Atomic uint32_t *cursor)
{
    struct hits *h = ctx;
    CHECK(n >= 1);
    CHECK(cursor != NULL);
    if (h->share_calls < 8) {
        size_t k = gl < 15 ? gl : 15;
        memcpy(h->group[h->share_calls], group, k);
        h->group[h->share_calls][k] = '\0';
        h->first_member[h->share_calls] = members[0].session_id;
        h->cursor[h->share_calls] = cursor;
    }
    h->share_calls++;
    for (size_t i = 0; i < n; i++) {
        h->share_members++;
        if (members[i].session_id < MAX_IDS)
            h->n[members[i].session_id]++;
    }
}

static struct sub_entry entry(uint64_t id, uint8_t qos)
{
    struct sub_entry e = {.session_id = id, .session = NULL, .thread = 0, .options = qos,
                          .sub_id = 0};
    return e;
}

static int sub(struct trie *t, const char *f, uint64_t id, bool *replaced)
{
    struct sub_entry e = entry(id, 1);
    return trie_subscribe(t, S(f), &e, replaced);
}

static void match(struct trie *t, const char *topic, struct hits *h)
{
    memset(h, 0, sizeof *h);
    trie_match(t, S(topic), on_sub, on_share, h);
}

static void test_trie_basic(void)
{
    struct mem m;
    mem_init(&m);
    struct trie *t = trie_create(&m);
    CHECK(t != NULL);
    if (!t)
        return;
    long long base = mem_total(&m);
    bool rep = true;
    CHECK_EQ(sub(t, "sport/tennis/+", 1, &rep), 0);
    CHECK(!rep);
    CHECK_EQ(sub(t, "sport/#", 2, &rep), 0);
    CHECK_EQ(sub(t, "#", 3, &rep), 0);
    CHECK_EQ(sub(t, "+/+", 4, &rep), 0);
    CHECK_EQ(sub(t, "/+", 5, &rep), 0);
    CHECK_EQ(sub(t, "$SYS/#", 6, &rep), 0);
    CHECK_EQ(sub(t, "a//b", 7, &rep), 0);
    CHECK_EQ(sub(t, "a/", 8, &rep), 0);
    CHECK_EQ(trie_count(t), 8u);

    struct hits h;
    match(t, "sport/tennis/player1", &h);
    CHECK(h.n[1] == 1 && h.n[2] == 1 && h.n[3] == 1 && h.n[4] == 0);
    match(t, "sport", &h);
    CHECK(h.n[1] == 0 && h.n[2] == 1 && h.n[3] == 1);
    match(t, "/finance", &h);
    CHECK(h.n[4] == 1 && h.n[5] == 1 && h.n[3] == 1 && h.n[2] == 0);
    match(t, "$SYS/broker", &h); /* [MQTT-4.7.2-1] */
    CHECK(h.n[6] == 1 && h.n[3] == 0 && h.n[4] == 0);
    match(t, "a//b", &h);
    CHECK(h.n[7] == 1 && h.n[3] == 1 && h.n[8] == 0);
    match(t, "a/", &h);
    CHECK(h.n[8] == 1 && h.n[4] == 1 && h.n[7] == 0);

    /* replace: same session at the same filter updates the entry, count unchanged */
    struct sub_entry e = entry(1, 2);
    e.sub_id = 42;
    CHECK_EQ(trie_subscribe(t, S("sport/tennis/+"), &e, &rep), 0);
    CHECK(rep);
    CHECK_EQ(trie_count(t), 8u);
    match(t, "sport/tennis/x", &h);
    CHECK_EQ(h.n[1], 1);

    /* the same session on another filter is another subscription */
    CHECK_EQ(sub(t, "sport/tennis/x", 1, &rep), 0);
    CHECK(!rep);
    CHECK_EQ(trie_count(t), 9u);
    match(t, "sport/tennis/x", &h);
    CHECK_EQ(h.n[1], 2);

    CHECK_EQ(trie_unsubscribe(t, S("sport/tennis/x"), 1), 0);
    CHECK_EQ(trie_unsubscribe(t, S("sport/tennis/x"), 1), TERN_ENOTFOUND);
    CHECK_EQ(trie_unsubscribe(t, S("sport/tennis/+"), 99), TERN_ENOTFOUND);
    CHECK_EQ(trie_unsubscribe(t, S("no/such/filter"), 1), TERN_ENOTFOUND);
    CHECK_EQ(trie_count(t), 8u);

    static const char *const all[] = {"sport/tennis/+", "sport/#", "#", "+/+",
                                      "/+",             "$SYS/#",  "a//b", "a/"};
    for (uint64_t i = 0; i < 8; i++)
        CHECK_EQ(trie_unsubscribe(t, S(all[i]), i + 1), 0);
    CHECK_EQ(trie_count(t), 0u);
    match(t, "sport/tennis/x", &h);
    CHECK_EQ(h.n[1] + h.n[2] + h.n[3], 0);
    CHECK_MSG(mem_total(&m) == base, "trie memory %lld after unsubscribing all, baseline %lld",
              mem_total(&m), base);
    trie_destroy(t);
    CHECK_EQ(mem_total(&m), 0);
}

static void test_trie_share_groups(void)
{
    struct mem m;
    mem_init(&m);
    struct trie *t = trie_create(&m);
    CHECK(t != NULL);
    if (!t)
        return;
    long long base = mem_total(&m);
    bool rep;
    CHECK_EQ(sub(t, "$share/g1/a/+", 1, &rep), 0);
    CHECK_EQ(sub(t, "$share/g1/a/+", 2, &rep), 0);
    CHECK(!rep);
    CHECK_EQ(sub(t, "$share/g2/a/+", 3, &rep), 0);
    CHECK_EQ(sub(t, "a/+", 4, &rep), 0);
    CHECK_EQ(sub(t, "$share/g1/a/b", 5, &rep), 0); /* same group name, other filter */
    CHECK_EQ(trie_count(t), 5u);

    struct hits h;
    match(t, "a/x", &h);
    CHECK_EQ(h.n[4], 1);
    CHECK_EQ(h.share_calls, 2);
    CHECK_EQ(h.share_members, 3);
    CHECK(h.n[1] == 1 && h.n[2] == 1 && h.n[3] == 1 && h.n[5] == 0);
    int i1 = strcmp(h.group[0], "g1") == 0 ? 0 : 1;
    CHECK_EQ(strcmp(h.group[i1], "g1"), 0);
    CHECK_EQ(strcmp(h.group[1 - i1], "g2"), 0);
    CHECK_EQ(h.first_member[i1], 1u);
    /* the cursor belongs to the group: advanced by one match, seen by the next */
    _Atomic uint32_t *cur = h.cursor[i1];
    atomic_fetch_add(cur, 1);
    match(t, "a/y", &h);
    i1 = strcmp(h.group[0], "g1") == 0 ? 0 : 1;
    CHECK(h.cursor[i1] == cur);
    CHECK_EQ(atomic_load(h.cursor[i1]), 1u);

    /* a/b matches two g1 groups (filters a/+ and a/b) and g2 */
    match(t, "a/b", &h);
    CHECK_EQ(h.share_calls, 3);
    CHECK(h.n[5] == 1 && h.n[1] == 1);

    /* replace inside a group */
    struct sub_entry e = entry(2, 0);
    CHECK_EQ(trie_subscribe(t, S("$share/g1/a/+"), &e, &rep), 0);
    CHECK(rep);
    CHECK_EQ(trie_count(t), 5u);

    /* ordinary and shared subscriptions of one session are distinct */
    CHECK_EQ(sub(t, "$share/g2/a/+", 4, &rep), 0);
    CHECK(!rep);
    CHECK_EQ(trie_count(t), 6u);
    match(t, "a/x", &h);
    CHECK_EQ(h.n[4], 2);

    /* members leave; the last one removes the group */
    CHECK_EQ(trie_unsubscribe(t, S("$share/g1/a/+"), 1), 0);
    match(t, "a/x", &h);
    CHECK_EQ(h.share_calls, 2);
    CHECK(h.n[1] == 0 && h.n[2] == 1);
    CHECK_EQ(trie_unsubscribe(t, S("$share/g1/a/+"), 2), 0);
    match(t, "a/x", &h);
    CHECK_EQ(h.share_calls, 1);
    CHECK_EQ(strcmp(h.group[0], "g2"), 0);
    CHECK_EQ(trie_unsubscribe(t, S("$share/g1/a/+"), 2), TERN_ENOTFOUND);
    CHECK_EQ(trie_unsubscribe(t, S("$share/g9/a/+"), 3), TERN_ENOTFOUND);
    CHECK_EQ(trie_unsubscribe(t, S("$share/g2/a/+"), 3), 0);
    CHECK_EQ(trie_unsubscribe(t, S("$share/g2/a/+"), 4), 0);
    CHECK_EQ(trie_unsubscribe(t, S("a/+"), 4), 0);
    CHECK_EQ(trie_unsubscribe(t, S("$share/g1/a/b"), 5), 0);
    CHECK_EQ(trie_count(t), 0u);
    match(t, "a/b", &h);
    CHECK_EQ(h.share_calls, 0);
    CHECK_MSG(mem_total(&m) == base, "trie memory %lld after unsubscribing all, baseline %lld",
              mem_total(&m), base);

    /* '$' rule applies to shared filters too */
    CHECK_EQ(sub(t, "$share/g/#", 1, &rep), 0);
    CHECK_EQ(sub(t, "$share/g/$SYS/#", 2, &rep), 0);
    match(t, "$SYS/x", &h);
    CHECK(h.n[1] == 0 && h.n[2] == 1);
    trie_destroy(t);
    CHECK_EQ(mem_total(&m), 0);
}

struct rsub {
    char filter[80]; /* as subscribed (maybe "$share/gN/...") */
    const char *plain; /* the ordinary filter inside */
    uint64_t id;
    bool live;
};

static void test_trie_random(void)
{
    enum { NSUBS = 300, NTOPICS = 3000 };
    struct mem m;
    mem_init(&m);
    struct trie *t = trie_create(&m);
    CHECK(t != NULL);
    if (!t)
        return;
    long long base = mem_total(&m);
    static struct rsub subs[NSUBS];
    size_t live = 0;
    for (uint64_t i = 0; i < NSUBS; i++) {
        struct rsub *s = &subs[i];
        char f[64];
        random_filter(f, sizeof f);
        s->id = i;
        if (rnd(4) == 0) {
            snprintf(s->filter, sizeof s->filter, "$share/g%u/%s", rnd(3), f);
            s->plain = s->filter + strlen("$share/gN/");
        } else {
            snprintf(s->filter, sizeof s->filter, "%s", f);
            s->plain = s->filter;
        }
        CHECK(topic_filter_valid(S(s->filter)));
        bool rep;
        CHECK_EQ(trie_subscribe(t, S(s->filter), &(struct sub_entry){.session_id = i}, &rep), 0);
        CHECK(!rep); /* ids are unique */
        s->live = true;
        live++;
    }
    CHECK_EQ(trie_count(t), live);

    for (int round = 0; round < 2; round++) {
        for (int k = 0; k < NTOPICS; k++) {
            char topic[64];
            random_topic(topic, sizeof topic);
            struct hits h;
            match(t, topic, &h);
            for (size_t i = 0; i < NSUBS; i++) {
                int want = subs[i].live && ref_match(subs[i].plain, topic);
                if (h.n[i] != want) {
                    CHECK_MSG(h.n[i] == want, "trie_match('%s'): '%s' delivered %d times, want %d",
                              topic, subs[i].filter, h.n[i], want);
                    goto out;
                }
            }
        }
        /* second round: unsubscribe about half, in random order, then match again */
        for (size_t i = 0; i < NSUBS; i++) {
            size_t j = rnd(NSUBS);
            if (!subs[j].live)
                continue;
            CHECK_EQ(trie_unsubscribe(t, S(subs[j].filter), subs[j].id), 0);
            subs[j].live = false;
            live--;
            CHECK_EQ(trie_count(t), live);
        }
    }
    for (size_t i = 0; i < NSUBS; i++) {
        if (subs[i].live) {
            CHECK_EQ(trie_unsubscribe(t, S(subs[i].filter), subs[i].id), 0);
            subs[i].live = false;
        } else {
            CHECK_EQ(trie_unsubscribe(t, S(subs[i].filter), subs[i].id), TERN_ENOTFOUND);
        }
    }
    CHECK_EQ(trie_count(t), 0u);
    CHECK_MSG(mem_total(&m) == base, "trie memory %lld after unsubscribing all, baseline %lld",
              mem_total(&m), base);
out:
    trie_destroy(t);
    CHECK_EQ(mem_total(&m), 0);
}

/* Every allocation of a subscribe fails in turn: the trie stays consistent and unchanged. */
static void test_trie_enomem(void)
{
    struct mem m;
    mem_init(&m);
    struct trie *t = trie_create(&m);
    CHECK(t != NULL);
    if (!t)
        return;
    bool rep;
    CHECK_EQ(sub(t, "x/y", 1, &rep), 0);
    long long base = mem_total(&m);
    static const char *const filters[] = {"a/b/c/d", "$share/g/a/b/c", "x/y/z", "x/+/#"};
    for (size_t f = 0; f < sizeof filters / sizeof filters[0]; f++) {
        int rc = TERN_ENOMEM;
        for (long long n = 0; rc == TERN_ENOMEM && n < 64; n++) {
            atomic_store(&m.fail_after, n);
            rc = sub(t, filters[f], 2, &rep);
            atomic_store(&m.fail_after, -1);
            if (rc == TERN_ENOMEM) {
                CHECK_EQ(trie_count(t), 1u);
                CHECK_MSG(mem_total(&m) == base, "'%s' failing allocation %lld leaks %lld bytes",
                          filters[f], n, mem_total(&m) - base);
            }
        }
        CHECK_EQ(rc, 0);
        struct hits h;
        match(t, "x/y", &h);
        CHECK_EQ(h.n[1], 1);
        CHECK_EQ(trie_unsubscribe(t, S(filters[f]), 2), 0);
        CHECK_MSG(mem_total(&m) == base, "'%s': %lld bytes left after unsubscribe", filters[f],
                  mem_total(&m) - base);
    }
    trie_destroy(t);
    CHECK_EQ(mem_total(&m), 0);
}

/* ---- retained tree ---- */

#define MAX_VALUES 1024

struct rvals {
    int unrefs[MAX_VALUES]; /* unref calls per value */
    int slots[MAX_VALUES];  /* value i is &slots[i] */
};
static struct rvals rv; /* the unref callback has no context argument */

static void on_unref(void *value)
{
    int *p = value;
    rv.unrefs[p - rv.slots]++;
}

static void *val(int i)
{
    return &rv.slots[i];
}

struct seen {
    int n;
    char topics[256][64];
    void *values[256];
    int stop_after; /* 0 = never */
};

static bool on_visit(void *ctx, const uint8_t *topic, size_t tn, void *value)
{
    struct seen *s = ctx;
    if (s->n < 256) {
        size_t k = tn < 63 ? tn : 63;
        memcpy(s->topics[s->n], topic, k);
        s->topics[s->n][k] = '\0';
        s->values[s->n] = value;
    }
    s->n++;
    return !(s->stop_after && s->n >= s->stop_after);
}

static bool seen_has(const struct seen *s, const char *topic)
{
    for (int i = 0; i < s->n && i < 256; i++)
        if (strcmp(s->topics[i], topic) == 0)
            return true;
    return false;
}

static void rmatch(struct retain *r, const char *f, struct seen *s)
{
    memset(s, 0, sizeof *s);
    retain_match(r, S(f), on_visit, s);
}

static void test_retain_basic(void)
{
    memset(&rv, 0, sizeof rv);
    struct mem m;
    mem_init(&m);
    struct retain *r = retain_create(&m, on_unref);
    CHECK(r != NULL);
    if (!r)
        return;
    long long base = mem_total(&m);
    static const char *const topics[] = {"a", "a/b", "a/b/c", "a/c", "b", "/x", "$SYS/up",
                                         "a//b", "a/"};
    enum { NT = sizeof topics / sizeof topics[0] };
    for (int i = 0; i < NT; i++)
        CHECK_EQ(retain_set(r, S(topics[i]), val(i)), 0);
    CHECK_EQ(retain_count(r), (size_t)NT);
    for (int i = 0; i < NT; i++)
        CHECK(retain_get(r, S(topics[i])) == val(i));
    CHECK(retain_get(r, S("a/b/c/d")) == NULL);
    CHECK(retain_get(r, S("zz")) == NULL);

    struct seen s;
    rmatch(r, "#", &s);
    CHECK_EQ(s.n, NT - 1); /* all but $SYS/up [MQTT-4.7.2-1] */
    CHECK(!seen_has(&s, "$SYS/up"));
    rmatch(r, "a/#", &s); /* includes "a" itself */
    CHECK_EQ(s.n, 6);
    CHECK(seen_has(&s, "a") && seen_has(&s, "a/b/c") && seen_has(&s, "a//b") &&
          seen_has(&s, "a/"));
    rmatch(r, "+", &s);
    CHECK(s.n == 2 && seen_has(&s, "a") && seen_has(&s, "b"));
    rmatch(r, "+/+", &s);
    CHECK(s.n == 4 && seen_has(&s, "a/b") && seen_has(&s, "a/c") && seen_has(&s, "/x") &&
          seen_has(&s, "a/"));
    rmatch(r, "+/up", &s);
    CHECK_EQ(s.n, 0);
    rmatch(r, "$SYS/#", &s);
    CHECK(s.n == 1 && seen_has(&s, "$SYS/up") && s.values[0] == val(6));
    rmatch(r, "$SYS/+", &s);
    CHECK_EQ(s.n, 1);
    rmatch(r, "a/b", &s);
    CHECK(s.n == 1 && s.values[0] == val(1));
    rmatch(r, "a/+/c", &s);
    CHECK(s.n == 1 && seen_has(&s, "a/b/c"));
    rmatch(r, "a/b/c/#", &s);
    CHECK(s.n == 1 && seen_has(&s, "a/b/c"));
    rmatch(r, "nothing/#", &s);
    CHECK_EQ(s.n, 0);
    /* the visitor can stop the walk */
    memset(&s, 0, sizeof s);
    s.stop_after = 2;
    retain_match(r, S("#"), on_visit, &s);
    CHECK_EQ(s.n, 2);
    memset(&s, 0, sizeof s);
    retain_walk(r, on_visit, &s);
    CHECK_EQ(s.n, NT);

    /* replace releases the old value once */
    CHECK_EQ(retain_set(r, S("a/b"), val(100)), 0);
    CHECK_EQ(rv.unrefs[1], 1);
    CHECK_EQ(retain_count(r), (size_t)NT);
    CHECK(retain_get(r, S("a/b")) == val(100));
    /* clear releases it and prunes; clearing again or a missing topic is a no-op */
    CHECK_EQ(retain_set(r, S("a/b/c"), NULL), 0);
    CHECK_EQ(rv.unrefs[2], 1);
    CHECK_EQ(retain_set(r, S("a/b/c"), NULL), 0);
    CHECK_EQ(retain_set(r, S("q/r/s"), NULL), 0);
    CHECK_EQ(rv.unrefs[2], 1);
    CHECK_EQ(retain_count(r), (size_t)NT - 1);
    CHECK(retain_get(r, S("a/b/c")) == NULL);
    rmatch(r, "a/b/#", &s);
    CHECK(s.n == 1 && s.values[0] == val(100));
    /* clearing a parent keeps its children */
    CHECK_EQ(retain_set(r, S("a"), NULL), 0);
    CHECK(retain_get(r, S("a/c")) == val(3));

    /* clear everything: memory back to the empty tree's */
    for (int i = 0; i < NT; i++)
        CHECK_EQ(retain_set(r, S(topics[i]), NULL), 0);
    CHECK_EQ(retain_count(r), 0u);
    CHECK_MSG(mem_total(&m) == base, "retain memory %lld after clearing all, baseline %lld",
              mem_total(&m), base);
    for (int i = 0; i < NT; i++)
        CHECK_MSG(rv.unrefs[i] == 1, "value %d released %d times", i, rv.unrefs[i]);
    CHECK_EQ(rv.unrefs[100], 1);

    /* destroy releases what is left, once each */
    CHECK_EQ(retain_set(r, S("k/1"), val(200)), 0);
    CHECK_EQ(retain_set(r, S("k"), val(201)), 0);
    CHECK_EQ(retain_set(r, S("$k"), val(202)), 0);
    retain_destroy(r);
    CHECK(rv.unrefs[200] == 1 && rv.unrefs[201] == 1 && rv.unrefs[202] == 1);
    CHECK_EQ(mem_total(&m), 0);
}

static void test_retain_random(void)
{
    enum { NTOP = 200, NOPS = 600, NFILTERS = 3000 };
    memset(&rv, 0, sizeof rv);
    struct mem m;
    mem_init(&m);
    struct retain *r = retain_create(&m, on_unref);
    CHECK(r != NULL);
    if (!r)
        return;
    /* model: distinct topics, each with a current value index or -1 */
    static char topics[NTOP][64];
    static int cur[NTOP];
    int ntop = 0, sets = 0;
    while (ntop < NTOP) {
        random_topic(topics[ntop], sizeof topics[ntop]);
        bool dup = false;
        for (int i = 0; i < ntop; i++)
            dup = dup || strcmp(topics[i], topics[ntop]) == 0;
        if (!dup)
            cur[ntop++] = -1;
        if (++sets > 100000)
            break; /* small alphabet: fewer distinct topics than asked */
    }
    int next_val = 0;
    size_t count = 0;
    for (int op = 0; op < NOPS && next_val < MAX_VALUES; op++) {
        int i = (int)rnd((uint32_t)ntop);
        if (rnd(3) == 0) {
            CHECK_EQ(retain_set(r, S(topics[i]), NULL), 0);
            if (cur[i] >= 0)
                count--;
            cur[i] = -1;
        } else {
            int v = next_val++;
            CHECK_EQ(retain_set(r, S(topics[i]), val(v)), 0);
            if (cur[i] < 0)
                count++;
            cur[i] = v;
        }
        CHECK_EQ(retain_count(r), count);
    }
    for (int i = 0; i < ntop; i++)
        CHECK(retain_get(r, S(topics[i])) == (cur[i] >= 0 ? val(cur[i]) : NULL));
    for (int k = 0; k < NFILTERS; k++) {
        char f[64];
        random_filter(f, sizeof f);
        struct seen s;
        rmatch(r, f, &s);
        int want = 0;
        for (int i = 0; i < ntop; i++) {
            if (cur[i] < 0 || !ref_match(f, topics[i]))
                continue;
            want++;
            CHECK_MSG(seen_has(&s, topics[i]), "retain_match('%s') misses '%s'", f, topics[i]);
        }
        CHECK_MSG(s.n == want, "retain_match('%s') visited %d, reference %d", f, s.n, want);
        for (int j = 0; j < s.n && j < 256; j++) {
            bool ok = false;
            for (int i = 0; i < ntop; i++)
                if (strcmp(topics[i], s.topics[j]) == 0)
                    ok = cur[i] >= 0 && s.values[j] == val(cur[i]) && ref_match(f, topics[i]);
            CHECK_MSG(ok, "retain_match('%s') visited '%s' wrongly", f, s.topics[j]);
        }
        if (unit_state.cur_failures)
            break;
    }
    retain_destroy(r);
    CHECK_EQ(mem_total(&m), 0);
    for (int v = 0; v < next_val; v++)
        CHECK_MSG(rv.unrefs[v] == 1, "value %d released %d times", v, rv.unrefs[v]);
}

static void test_retain_enomem(void)
{
    memset(&rv, 0, sizeof rv);
    struct mem m;
    mem_init(&m);
    struct retain *r = retain_create(&m, on_unref);
    CHECK(r != NULL);
    if (!r)
        return;
    CHECK_EQ(retain_set(r, S("x"), val(0)), 0);
    long long base = mem_total(&m);
    int rc = TERN_ENOMEM;
    for (long long n = 0; rc == TERN_ENOMEM && n < 64; n++) {
        atomic_store(&m.fail_after, n);
        rc = retain_set(r, S("a/b/c/d"), val(1));
        atomic_store(&m.fail_after, -1);
        if (rc == TERN_ENOMEM) {
            CHECK_EQ(rv.unrefs[1], 0); /* the reference is still ours */
            CHECK_EQ(retain_count(r), 1u);
            CHECK_MSG(mem_total(&m) == base, "failing allocation %lld leaks %lld bytes", n,
                      mem_total(&m) - base);
        }
    }
    CHECK_EQ(rc, 0);
    CHECK(retain_get(r, S("a/b/c/d")) == val(1));
    retain_destroy(r);
    CHECK(rv.unrefs[0] == 1 && rv.unrefs[1] == 1);
    CHECK_EQ(mem_total(&m), 0);
}

void unit_main(void)
{
    UNIT_RUN(test_topic_name_valid);
    UNIT_RUN(test_topic_filter_valid);
    UNIT_RUN(test_topic_share_split_and_levels);
    UNIT_RUN(test_topic_matches_spec);
    UNIT_RUN(test_topic_matches_random);
    UNIT_RUN(test_trie_basic);
    UNIT_RUN(test_trie_share_groups);
    UNIT_RUN(test_trie_random);
    UNIT_RUN(test_trie_enomem);
    UNIT_RUN(test_retain_basic);
    UNIT_RUN(test_retain_random);
    UNIT_RUN(test_retain_enomem);
}
