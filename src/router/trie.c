/* trie.c - subscription trie (see trie.h for the picture) and the router's level map.
 *
 * One node per filter level. A node finds its exact-level children through a struct router_map
 * (dense array up to ROUTER_MAP_SMALL children, open-addressing table beyond: O(1) for wide
 * nodes such as devices/<id>); '+' and '#' children have their own pointers. A node's level
 * text is stored inline after the struct (one allocation per node).
 *
 *   struct node ── children: router_map "a" -> node, "b" -> node ...
 *              ├── plus  -> node of level "+"
 *              ├── hash  -> node of level "#" (a leaf: '#' is always last)
 *              ├── subs:   entry_set of ordinary subscriptions
 *              └── shares: array of share_group {cursor, members: entry_set, name}
 *
 * An entry_set is a compact array of struct sub_entry (what trie_match hands out) plus, once it
 * holds more than INDEX_MIN entries, an open-addressing index session_id -> array position, so
 * subscribe/unsubscribe stay O(1) on a filter with 100,000 subscribers. Removal moves the last
 * entry into the hole (delivery order within one filter is not significant).
 *
 * Invariants: every node except the root is non-empty (has entries, groups or children): an
 * unsubscribe or a failed subscribe prunes up to the root; empty containers hold no memory, so
 * unsubscribing everything returns the trie to its creation-time footprint. Share groups have
 * at least one member. trie->count = ordinary entries + share members.
 *
 * Threads: owned by the broker and guarded by its rwlock. trie_match and trie_share_pick run
 * under the read lock from many threads: they write nothing but the atomic share cursors.
 * Nothing here recurses once per level: deep filters (up to 32,768 levels) use bounded stacks. */
#include "router/trie.h"

#include <string.h>

#include "common/hmap.h"
#include "router/topic.h"

/* ---- level map ---- */

uint32_t router_level_hash(const uint8_t *key, size_t len)
{
    return hmap_hash(key, len); /* FNV-1a with a final avalanche, never 0 */
}

static bool slot_is(const struct router_map_slot *s, const uint8_t *key, size_t len, uint32_t hash)
{
    return s->hash == hash && s->len == len && memcmp(s->key, key, len) == 0;
}

/* Index of key's slot in a wide map, or of the empty slot where it would go. */
static uint32_t wide_find(const struct router_map *m, const uint8_t *key, size_t len, uint32_t hash)
{
    uint32_t mask = m->cap - 1;
    uint32_t i = hash & mask;
    while (m->slots[i].hash && !slot_is(&m->slots[i], key, len, hash))
        i = (i + 1) & mask;
    return i;
}

void *router_map_get(const struct router_map *m, const uint8_t *key, size_t len, uint32_t hash)
{
    if (!m->count)
        return NULL;
    if (m->wide) {
        const struct router_map_slot *s = &m->slots[wide_find(m, key, len, hash)];
        return s->hash ? s->value : NULL;
    }
    for (uint32_t i = 0; i < m->count; i++)
        if (slot_is(&m->slots[i], key, len, hash))
            return m->slots[i].value;
    return NULL;
}

/* Moves every entry into a new wide table of ncap slots. 0 or TERN_ENOMEM (map unchanged). */
static int wide_rehash(struct router_map *m, struct mem *mem, uint32_t ncap)
{
    struct router_map_slot *ns = mem_calloc(mem, MEM_ROUTER, (size_t)ncap * sizeof *ns);
    if (!ns)
        return TERN_ENOMEM;
    struct router_map old = *m;
    m->slots = ns;
    m->cap = ncap;
    m->wide = true;
    for (uint32_t i = 0; i < old.cap; i++)
        if (old.slots[i].hash)
            m->slots[wide_find(m, old.slots[i].key, old.slots[i].len, old.slots[i].hash)] =
                old.slots[i];
    mem_free(mem, MEM_ROUTER, old.slots);
    return 0;
}

int router_map_put(struct router_map *m, struct mem *mem, const uint8_t *key, size_t len,
                   uint32_t hash, void *value)
{
    struct router_map_slot s = {key, (uint32_t)len, hash, value};
    if (m->wide) {
        if ((m->count + 1) * 2 > m->cap && wide_rehash(m, mem, m->cap * 2))
            return TERN_ENOMEM;
        m->slots[wide_find(m, key, len, hash)] = s;
        m->count++;
        return 0;
    }
    if (m->count == ROUTER_MAP_SMALL) {
        if (wide_rehash(m, mem, ROUTER_MAP_SMALL * 4))
            return TERN_ENOMEM;
        m->slots[wide_find(m, key, len, hash)] = s;
        m->count++;
        return 0;
    }
    if (m->count == m->cap) {
        uint32_t ncap = m->cap ? m->cap * 2 : 2;
        struct router_map_slot *ns = mem_realloc(mem, MEM_ROUTER, m->slots, ncap * sizeof *ns);
        if (!ns)
            return TERN_ENOMEM;
        memset(ns + m->cap, 0, (ncap - m->cap) * sizeof *ns);
        m->slots = ns;
        m->cap = ncap;
    }
    m->slots[m->count++] = s;
    return 0;
}

/* Turns a wide map that has become small back into a dense array (in place; shrinking the
 * allocation is best effort, so this cannot fail). */
static void wide_to_dense(struct router_map *m, struct mem *mem)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < m->cap; i++)
        if (m->slots[i].hash)
            m->slots[k++] = m->slots[i];
    memset(m->slots + k, 0, (m->cap - k) * sizeof *m->slots);
    m->wide = false;
    struct router_map_slot *ns =
        mem_realloc(mem, MEM_ROUTER, m->slots, ROUTER_MAP_SMALL * sizeof *ns);
    if (ns) {
        m->slots = ns;
        m->cap = ROUTER_MAP_SMALL;
    }
}

void router_map_del(struct router_map *m, struct mem *mem, const uint8_t *key, size_t len,
                    uint32_t hash)
{
    if (!m->count)
        return;
    if (!m->wide) {
        uint32_t i = 0;
        while (i < m->count && !slot_is(&m->slots[i], key, len, hash))
            i++;
        if (i == m->count)
            return;
        m->slots[i] = m->slots[--m->count];
        memset(&m->slots[m->count], 0, sizeof *m->slots);
    } else {
        uint32_t i = wide_find(m, key, len, hash), mask = m->cap - 1;
        if (!m->slots[i].hash)
            return;
        /* backward-shift deletion: keeps probe chains intact without tombstones */
        for (uint32_t j = (i + 1) & mask; m->slots[j].hash; j = (j + 1) & mask) {
            uint32_t home = m->slots[j].hash & mask;
            bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
            if (movable) {
                m->slots[i] = m->slots[j];
                i = j;
            }
        }
        memset(&m->slots[i], 0, sizeof *m->slots);
        m->count--;
        if (m->count && m->count <= ROUTER_MAP_SMALL / 2)
            wide_to_dense(m, mem);
    }
    if (!m->count)
        router_map_free(m, mem);
}

void router_map_free(struct router_map *m, struct mem *mem)
{
    mem_free(mem, MEM_ROUTER, m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- entry sets: compact arrays of sub_entry with an index when large ---- */

#define INDEX_MIN 16 /* sets above this size get a session_id index */

struct entry_set {
    struct sub_entry *e;
    uint32_t n, cap;
    uint32_t *index; /* NULL, or icap slots holding position + 1 (0 = empty) */
    uint32_t icap;
};

static uint32_t id_slot(uint64_t id, uint32_t icap)
{
    return (uint32_t)((id * 0x9E3779B97F4A7C15ull) >> 32) & (icap - 1);
}

/* Index slot holding session id, or the empty slot where it would go. */
static uint32_t index_find(const struct entry_set *s, uint64_t id)
{
    uint32_t i = id_slot(id, s->icap);
    while (s->index[i] && s->e[s->index[i] - 1].session_id != id)
        i = (i + 1) & (s->icap - 1);
    return i;
}

/* Position of session id in s, or -1. */
static long set_find(const struct entry_set *s, uint64_t id)
{
    if (s->index) {
        uint32_t k = s->index[index_find(s, id)];
        return k ? (long)k - 1 : -1;
    }
    for (uint32_t i = 0; i < s->n; i++)
        if (s->e[i].session_id == id)
            return (long)i;
    return -1;
}

/* Replaces s's index by one of icap slots (0 = drop the index). 0 or TERN_ENOMEM. */
static int index_rebuild(struct mem *mem, struct entry_set *s, uint32_t icap)
{
    uint32_t *ni = NULL;
    if (icap) {
        ni = mem_calloc(mem, MEM_ROUTER, (size_t)icap * sizeof *ni);
        if (!ni)
            return TERN_ENOMEM;
    }
    mem_free(mem, MEM_ROUTER, s->index);
    s->index = ni;
    s->icap = icap;
    for (uint32_t k = 0; ni && k < s->n; k++)
        s->index[index_find(s, s->e[k].session_id)] = k + 1;
    return 0;
}

/* Adds e, or replaces the entry of the same session. 0 or TERN_ENOMEM (s unchanged). */
static int set_add(struct mem *mem, struct entry_set *s, const struct sub_entry *e, bool *replaced)
{
    long k = set_find(s, e->session_id);
    if (k >= 0) {
        s->e[k] = *e;
        *replaced = true;
        return 0;
    }
    if (s->n == UINT32_MAX / 4)
        return TERN_ENOMEM;
    if (s->n == s->cap) {
        uint32_t ncap = s->cap ? s->cap * 2 : 1;
        struct sub_entry *ne = mem_realloc(mem, MEM_ROUTER, s->e, (size_t)ncap * sizeof *ne);
        if (!ne)
            return TERN_ENOMEM;
        s->e = ne;
        s->cap = ncap;
    }
    if (s->n + 1 > INDEX_MIN && (s->n + 1) * 2 > s->icap &&
        index_rebuild(mem, s, s->icap ? s->icap * 2 : 4 * INDEX_MIN))
        return TERN_ENOMEM;
    s->e[s->n] = *e;
    if (s->index)
        s->index[index_find(s, e->session_id)] = s->n + 1;
    s->n++;
    *replaced = false;
    return 0;
}

/* Removes index slot i (backward shift, as in the level map). */
static void index_del(struct entry_set *s, uint32_t i)
{
    uint32_t mask = s->icap - 1;
    for (uint32_t j = (i + 1) & mask; s->index[j]; j = (j + 1) & mask) {
        uint32_t home = id_slot(s->e[s->index[j] - 1].session_id, s->icap);
        if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
            s->index[i] = s->index[j];
            i = j;
        }
    }
    s->index[i] = 0;
}

static void set_free(struct mem *mem, struct entry_set *s)
{
    mem_free(mem, MEM_ROUTER, s->e);
    mem_free(mem, MEM_ROUTER, s->index);
    memset(s, 0, sizeof *s);
}

/* Removes session id's entry; false when absent. Never allocates. */
static bool set_del(struct mem *mem, struct entry_set *s, uint64_t id)
{
    long k = set_find(s, id);
    if (k < 0)
        return false;
    uint32_t last = s->n - 1;
    if (s->index) {
        index_del(s, index_find(s, id));
        if ((uint32_t)k != last)
            s->index[index_find(s, s->e[last].session_id)] = (uint32_t)k + 1;
    }
    s->e[k] = s->e[last];
    s->n--;
    if (!s->n)
        set_free(mem, s);
    else if (s->index && s->n <= INDEX_MIN / 2)
        (void)index_rebuild(mem, s, 0); /* dropping the index cannot fail */
    return true;
}

/* ---- nodes ---- */

struct share_group {
    _Atomic uint32_t cursor; /* round-robin position; advanced by readers */
    struct entry_set members;
    uint32_t len;
    uint8_t name[]; /* group name, len bytes */
};

struct node {
    struct node *parent; /* NULL for the root */
    struct router_map children;
    struct node *plus, *hash;
    struct entry_set subs;
    struct share_group **shares;
    uint32_t nshares;
    uint32_t len;   /* level text length */
    uint32_t lhash; /* router_level_hash of the level text */
    uint8_t text[]; /* level text, len bytes */
};

struct trie {
    struct mem *mem;
    struct node *root;
    size_t count;
};

static struct node *node_new(struct trie *t, struct node *parent, const uint8_t *l, size_t len,
                             uint32_t lhash)
{
    struct node *n = mem_calloc(t->mem, MEM_ROUTER, sizeof *n + len);
    if (!n)
        return NULL;
    memcpy(n->text, l, len);
    n->len = (uint32_t)len;
    n->lhash = lhash;
    n->parent = parent;
    return n;
}

static void group_free(struct trie *t, struct share_group *g)
{
    set_free(t->mem, &g->members);
    mem_free(t->mem, MEM_ROUTER, g);
}

/* Frees n's own storage (not its children). */
static void node_release(struct trie *t, struct node *n)
{
    router_map_free(&n->children, t->mem);
    set_free(t->mem, &n->subs);
    for (uint32_t i = 0; i < n->nshares; i++)
        group_free(t, n->shares[i]);
    mem_free(t->mem, MEM_ROUTER, n->shares);
    mem_free(t->mem, MEM_ROUTER, n);
}

/* Frees n and everything below it without recursion: `parent` is reused as the link of a
 * work list (nothing else reads it any more). */
static void subtree_free(struct trie *t, struct node *n)
{
    n->parent = NULL;
    while (n) {
        struct node *next = n->parent;
        for (uint32_t i = 0; i < n->children.cap; i++) {
            if (n->children.slots[i].hash) {
                struct node *c = n->children.slots[i].value;
                c->parent = next;
                next = c;
            }
        }
        struct node *wild[2] = {n->plus, n->hash};
        for (int i = 0; i < 2; i++) {
            if (wild[i]) {
                wild[i]->parent = next;
                next = wild[i];
            }
        }
        node_release(t, n);
        n = next;
    }
}

struct trie *trie_create(struct mem *mem)
{
    struct trie *t = mem_calloc(mem, MEM_ROUTER, sizeof *t);
    if (!t)
        return NULL;
    t->mem = mem;
    t->root = node_new(t, NULL, (const uint8_t *)"", 0, 0);
    if (!t->root) {
        mem_free(mem, MEM_ROUTER, t);
        return NULL;
    }
    return t;
}

void trie_destroy(struct trie *t)
{
    if (!t)
        return;
    subtree_free(t, t->root);
    mem_free(t->mem, MEM_ROUTER, t);
}

size_t trie_count(const struct trie *t)
{
    return t->count;
}

static bool is_level(const uint8_t *l, size_t len, char c)
{
    return len == 1 && l[0] == (uint8_t)c;
}

/* Child of n for filter level l[0..len): '+', '#' or exact; created when create is set. */
static struct node *child(struct trie *t, struct node *n, const uint8_t *l, size_t len, bool create)
{
    uint32_t h = router_level_hash(l, len);
    struct node **wild = is_level(l, len, '+') ? &n->plus : is_level(l, len, '#') ? &n->hash : NULL;
    if (wild) {
        if (!*wild && create)
            *wild = node_new(t, n, l, len, h);
        return *wild;
    }
    struct node *c = router_map_get(&n->children, l, len, h);
    if (c || !create)
        return c;
    c = node_new(t, n, l, len, h);
    if (c && router_map_put(&n->children, t->mem, c->text, c->len, h, c)) {
        node_release(t, c);
        return NULL;
    }
    return c;
}

static bool node_empty(const struct node *n)
{
    return !n->subs.n && !n->nshares && !n->plus && !n->hash && !n->children.count;
}

/* Removes empty nodes from n up to (not including) the root. */
static void prune(struct trie *t, struct node *n)
{
    while (n->parent && node_empty(n)) {
        struct node *p = n->parent;
        if (p->plus == n)
            p->plus = NULL;
        else if (p->hash == n)
            p->hash = NULL;
        else
            router_map_del(&p->children, t->mem, n->text, n->len, n->lhash);
        node_release(t, n);
        n = p;
    }
}

/* Walks (creating when create is set) to the node of ordinary filter f. NULL when absent or
 * out of memory; nodes created before a failure are pruned again. */
static struct node *filter_node(struct trie *t, const uint8_t *f, size_t n, bool create)
{
    struct node *cur = t->root;
    for (size_t i = 0;;) {
        const uint8_t *slash = memchr(f + i, '/', n - i);
        size_t e = slash ? (size_t)(slash - f) : n;
        struct node *next = child(t, cur, f + i, e - i, create);
        if (!next) {
            if (create)
                prune(t, cur);
            return NULL;
        }
        cur = next;
        if (e >= n)
            return cur;
        i = e + 1;
    }
}

static struct share_group *find_group(const struct node *n, const uint8_t *g, size_t gl,
                                      uint32_t *idx)
{
    for (uint32_t i = 0; i < n->nshares; i++) {
        if (n->shares[i]->len == gl && memcmp(n->shares[i]->name, g, gl) == 0) {
            *idx = i;
            return n->shares[i];
        }
    }
    return NULL;
}

/* Frees share group idx of n, moving the last group into its slot. */
static void remove_group(struct trie *t, struct node *n, uint32_t idx)
{
    group_free(t, n->shares[idx]);
    n->shares[idx] = n->shares[--n->nshares];
    if (!n->nshares) {
        mem_free(t->mem, MEM_ROUTER, n->shares);
        n->shares = NULL;
    }
}

static int share_subscribe(struct trie *t, struct node *n, const uint8_t *g, size_t gl,
                           const struct sub_entry *e, bool *replaced)
{
    uint32_t idx;
    struct share_group *grp = find_group(n, g, gl, &idx);
    if (grp)
        return set_add(t->mem, &grp->members, e, replaced);
    struct share_group **ns =
        mem_realloc(t->mem, MEM_ROUTER, n->shares, (n->nshares + 1) * sizeof *ns);
    if (!ns)
        return TERN_ENOMEM;
    n->shares = ns;
    grp = mem_calloc(t->mem, MEM_ROUTER, sizeof *grp + gl);
    if (!grp)
        goto fail;
    memcpy(grp->name, g, gl);
    grp->len = (uint32_t)gl;
    atomic_init(&grp->cursor, 0);
    if (set_add(t->mem, &grp->members, e, replaced))
        goto fail;
    n->shares[n->nshares++] = grp;
    return 0;
fail:
    /* never leave an empty group; the grown pointer array is harmless but must not outlive
     * an empty node (prune frees the node and it with it) */
    mem_free(t->mem, MEM_ROUTER, grp);
    if (!n->nshares) {
        mem_free(t->mem, MEM_ROUTER, n->shares);
        n->shares = NULL;
    }
    return TERN_ENOMEM;
}

int trie_subscribe(struct trie *t, const uint8_t *f, size_t n, const struct sub_entry *e,
                   bool *replaced)
{
    const uint8_t *g = NULL, *sf = f;
    size_t gl = 0, sfl = n;
    bool shared = topic_share_split(f, n, &g, &gl, &sf, &sfl) == 1;
    struct node *node = filter_node(t, sf, sfl, true);
    if (!node)
        return TERN_ENOMEM;
    int rc = shared ? share_subscribe(t, node, g, gl, e, replaced)
                    : set_add(t->mem, &node->subs, e, replaced);
    if (rc) {
        prune(t, node);
        return rc;
    }
    if (!*replaced)
        t->count++;
    return 0;
}

int trie_unsubscribe(struct trie *t, const uint8_t *f, size_t n, uint64_t session_id)
{
    const uint8_t *g = NULL, *sf = f;
    size_t gl = 0, sfl = n;
    bool shared = topic_share_split(f, n, &g, &gl, &sf, &sfl) == 1;
    struct node *node = filter_node(t, sf, sfl, false);
    if (!node)
        return TERN_ENOTFOUND;
    bool found = false;
    if (shared) {
        uint32_t idx;
        struct share_group *grp = find_group(node, g, gl, &idx);
        found = grp && set_del(t->mem, &grp->members, session_id);
        if (grp && !grp->members.n)
            remove_group(t, node, idx);
    } else {
        found = set_del(t->mem, &node->subs, session_id);
    }
    if (!found)
        return TERN_ENOTFOUND;
    t->count--;
    prune(t, node);
    return 0;
}

/* ---- matching (read-only, many threads at once) ---- */

struct match_ctx {
    const uint8_t *topic;
    size_t tn;
    bool dollar; /* topic starts with '$': no wildcard at the first level [MQTT-4.7.2-1] */
    trie_sub_fn sub_fn;
    trie_share_fn share_fn;
    void *ctx;
};

static void emit(const struct match_ctx *m, const struct node *n)
{
    if (m->sub_fn)
        for (uint32_t i = 0; i < n->subs.n; i++)
            m->sub_fn(m->ctx, &n->subs.e[i]);
    if (m->share_fn)
        for (uint32_t i = 0; i < n->nshares; i++) {
            struct share_group *g = n->shares[i];
            m->share_fn(m->ctx, g->name, g->len, g->members.e, g->members.n, &g->cursor);
        }
}

#define MATCH_STACK 32 /* deferred '+' branches per frame; deeper ones recurse (rarely) */

struct match_frame {
    const struct node *n;
    size_t pos;
};

/* Emits every subscription at or below n whose filter matches the topic, given that n matched
 * the topic levels before pos (pos == tn + 1: all consumed). Follows the exact path in a loop
 * and defers '+' branches on a small stack; recursion happens only when MATCH_STACK branches
 * are pending, so the C stack grows by one frame per MATCH_STACK levels at most. */
static void match_from(const struct match_ctx *m, const struct node *n, size_t pos)
{
    struct match_frame stack[MATCH_STACK];
    size_t sp = 0;
    for (;;) {
        while (n) {
            if (pos > m->tn) { /* all levels consumed: n's own, and "x/#" matches "x" */
                emit(m, n);
                if (n->hash)
                    emit(m, n->hash);
                break;
            }
            bool wild_ok = pos > 0 || !m->dollar;
            if (n->hash && wild_ok)
                emit(m, n->hash);
            const uint8_t *slash = memchr(m->topic + pos, '/', m->tn - pos);
            size_t e = slash ? (size_t)(slash - m->topic) : m->tn;
            if (n->plus && wild_ok) {
                if (sp < MATCH_STACK)
                    stack[sp++] = (struct match_frame){n->plus, e + 1};
                else
                    match_from(m, n->plus, e + 1);
            }
            n = n->children.count ? router_map_get(&n->children, m->topic + pos, e - pos,
                                                   router_level_hash(m->topic + pos, e - pos))
                                  : NULL;
            pos = e + 1;
        }
        if (!sp)
            return;
        sp--;
        n = stack[sp].n;
        pos = stack[sp].pos;
    }
}

void trie_match(struct trie *t, const uint8_t *topic, size_t tn, trie_sub_fn sub_fn,
                trie_share_fn share_fn, void *ctx)
{
    struct match_ctx m = {topic, tn, tn && topic[0] == '$', sub_fn, share_fn, ctx};
    match_from(&m, t->root, 0);
}

int trie_share_pick(struct trie *t, const uint8_t *g, size_t gl, const uint8_t *f, size_t fl,
                    uint64_t exclude, struct sub_entry *out)
{
    uint32_t idx;
    struct node *node = filter_node(t, f, fl, false);
    struct share_group *grp = node ? find_group(node, g, gl, &idx) : NULL;
    if (!grp)
        return TERN_ENOTFOUND;
    for (uint32_t tries = 0; tries < grp->members.n; tries++) {
        uint32_t k = atomic_fetch_add_explicit(&grp->cursor, 1, memory_order_relaxed);
        const struct sub_entry *e = &grp->members.e[k % grp->members.n];
        if (e->session_id != exclude) {
            *out = *e;
            return 0;
        }
    }
    return TERN_ENOTFOUND;
}
