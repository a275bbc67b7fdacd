/* retain.c - retained-message tree (see retain.h).
 *
 * One node per topic level; children in a struct router_map (trie.h: dense array for a few
 * children, open-addressing table for wide nodes). A node holds at most one value: one reference
 * owned by the tree, released exactly once through r->unref when replaced, cleared or destroyed.
 * A node with a value also owns a copy of its full topic, handed to visitors.
 *
 *   root ── "a" [v1, "a"] ── "b" [v2, "a/b"]
 *      │            └──── "" [v3, "a/"]
 *      └── "$SYS" ── "up" [v4, "$SYS/up"]
 *
 * Invariants: every node except the root has a value or children (clearing prunes up to the
 * root); the root never has a value (topic names are non-empty, so they have at least one
 * level below the root); an empty child map holds no memory, so clearing every topic returns
 * the tree to its creation-time footprint. r->count = nodes with a value.
 *
 * Matching by filter walks exact children for literal levels, every child for '+', the whole
 * subtree for '#' (including the node itself: "a/#" matches "a"), and skips children of the
 * root whose level starts with '$' when the first filter level is a wildcard [MQTT-4.7.2-1].
 * The walk keeps its pending iterations on a bounded local stack and only recurses when that
 * is full, so topics of tens of thousands of levels do not exhaust the C stack.
 *
 * Threads: owned by the store, which serialises every call. Visitors must not modify the tree. */
#include "router/retain.h"

#include <string.h>

#include "router/trie.h"

struct rnode {
    struct rnode *parent; /* NULL for the root */
    struct router_map children;
    void *value;    /* one reference owned by the tree, or NULL */
    uint8_t *topic; /* full topic of value (owned) when value is set */
    uint32_t topic_len;
    uint32_t len;   /* level text length */
    uint32_t lhash; /* router_level_hash of the level text */
    uint8_t text[]; /* level text, len bytes */
};

struct retain {
    struct mem *mem;
    retain_unref_fn unref;
    struct rnode *root;
    size_t count;
};

static struct rnode *rnode_new(struct retain *r, struct rnode *parent, const uint8_t *l, size_t len,
                               uint32_t lhash)
{
    struct rnode *n = mem_calloc(r->mem, MEM_ROUTER, sizeof *n + len);
    if (!n)
        return NULL;
    memcpy(n->text, l, len);
    n->len = (uint32_t)len;
    n->lhash = lhash;
    n->parent = parent;
    return n;
}

/* Frees n's own storage (not its children), releasing its value. */
static void rnode_release(struct retain *r, struct rnode *n)
{
    if (n->value)
        r->unref(n->value);
    router_map_free(&n->children, r->mem);
    mem_free(r->mem, MEM_ROUTER, n->topic);
    mem_free(r->mem, MEM_ROUTER, n);
}

struct retain *retain_create(struct mem *mem, retain_unref_fn unref)
{
    struct retain *r = mem_calloc(mem, MEM_ROUTER, sizeof *r);
    if (!r)
        return NULL;
    r->mem = mem;
    r->unref = unref;
    r->root = rnode_new(r, NULL, (const uint8_t *)"", 0, 0);
    if (!r->root) {
        mem_free(mem, MEM_ROUTER, r);
        return NULL;
    }
    return r;
}

void retain_destroy(struct retain *r)
{
    if (!r)
        return;
    /* no recursion: `parent` becomes the link of a work list of nodes still to free */
    struct rnode *n = r->root;
    n->parent = NULL;
    while (n) {
        struct rnode *next = n->parent;
        for (uint32_t i = 0; i < n->children.cap; i++) {
            if (n->children.slots[i].hash) {
                struct rnode *c = n->children.slots[i].value;
                c->parent = next;
                next = c;
            }
        }
        rnode_release(r, n);
        n = next;
    }
    mem_free(r->mem, MEM_ROUTER, r);
}

size_t retain_count(const struct retain *r)
{
    return r->count;
}

/* Removes nodes without value or children from n up to (not including) the root. */
static void prune(struct retain *r, struct rnode *n)
{
    while (n->parent && !n->value && !n->children.count) {
        struct rnode *p = n->parent;
        router_map_del(&p->children, r->mem, n->text, n->len, n->lhash);
        rnode_release(r, n);
        n = p;
    }
}

/* Node of topic t, created (with the levels above it) when create is set. NULL when absent or
 * out of memory; levels created before a failure are pruned again. */
static struct rnode *find(struct retain *r, const uint8_t *t, size_t n, bool create)
{
    struct rnode *cur = r->root;
    for (size_t i = 0;;) {
        const uint8_t *slash = memchr(t + i, '/', n - i);
        size_t e = slash ? (size_t)(slash - t) : n;
        uint32_t h = router_level_hash(t + i, e - i);
        struct rnode *c = router_map_get(&cur->children, t + i, e - i, h);
        if (!c && create) {
            c = rnode_new(r, cur, t + i, e - i, h);
            if (c && router_map_put(&cur->children, r->mem, c->text, c->len, h, c)) {
                rnode_release(r, c);
                c = NULL;
            }
            if (!c)
                prune(r, cur);
        }
        if (!c)
            return NULL;
        cur = c;
        if (e >= n)
            return cur;
        i = e + 1;
    }
}

int retain_set(struct retain *r, const uint8_t *t, size_t n, void *value)
{
    struct rnode *node = find(r, t, n, value != NULL);
    if (!node)
        return value ? TERN_ENOMEM : 0;
    void *old = node->value;
    if (!value) {
        if (!old)
            return 0;
        node->value = NULL;
        mem_free(r->mem, MEM_ROUTER, node->topic);
        node->topic = NULL;
        r->count--;
        prune(r, node);
        r->unref(old);
        return 0;
    }
    if (!old) {
        node->topic = mem_alloc(r->mem, MEM_ROUTER, n);
        if (!node->topic) {
            prune(r, node);
            return TERN_ENOMEM;
        }
        memcpy(node->topic, t, n);
        node->topic_len = (uint32_t)n;
        r->count++;
    }
    node->value = value;
    if (old)
        r->unref(old);
    return 0;
}

void *retain_get(struct retain *r, const uint8_t *t, size_t n)
{
    if (n == 0)
        return NULL;
    struct rnode *node = find(r, t, n, false);
    return node ? node->value : NULL;
}

/* ---- matching and walking ---- */

#define ALL_BELOW  SIZE_MAX /* filter position meaning "everything below matches" ('#') */
#define WALK_STACK 32       /* pending child iterations per frame; deeper ones recurse */

struct rmatch {
    const uint8_t *f;
    size_t fn;
    bool skip_dollar; /* wildcards at the root skip '$' levels [MQTT-4.7.2-1] */
    retain_visit_fn visit;
    void *ctx;
};

/* An iteration over the children of n, each entered at filter position pos. */
struct rframe {
    const struct rnode *n;
    size_t pos;
    uint32_t slot; /* next slot of n->children to look at */
};

static bool visit(const struct rmatch *m, const struct rnode *n)
{
    return !n->value || m->visit(m->ctx, n->topic, n->topic_len, n->value);
}

/* Next child of the iteration, or NULL when it is done. */
static const struct rnode *next_child(const struct rmatch *m, struct rframe *fr)
{
    const struct router_map *c = &fr->n->children;
    while (fr->slot < c->cap) {
        const struct router_map_slot *s = &c->slots[fr->slot++];
        if (!s->hash)
            continue;
        if (m->skip_dollar && !fr->n->parent && s->len && s->key[0] == '$')
            continue;
        return s->value;
    }
    return NULL;
}

static bool match_from(const struct rmatch *m, const struct rnode *n, size_t pos);

/* Enters every child of n at pos by recursion (used when the local stack is full). */
static bool match_children(const struct rmatch *m, const struct rnode *n, size_t pos)
{
    struct rframe fr = {n, pos, 0};
    const struct rnode *c;
    while ((c = next_child(m, &fr)))
        if (!match_from(m, c, pos))
            return false;
    return true;
}

/* Visits the values at or below n that match, given that n matched the filter levels before
 * pos (pos > fn: the filter is consumed; ALL_BELOW: inside a '#'). False when stopped. */
static bool match_from(const struct rmatch *m, const struct rnode *n, size_t pos)
{
    struct rframe stack[WALK_STACK];
    size_t sp = 0;
    for (;;) {
        size_t child_pos = ALL_BELOW;
        bool expand = false;
        if (pos == ALL_BELOW || pos > m->fn) {
            if (!visit(m, n))
                return false;
            expand = pos == ALL_BELOW;
        } else {
            const uint8_t *slash = memchr(m->f + pos, '/', m->fn - pos);
            size_t e = slash ? (size_t)(slash - m->f) : m->fn;
            bool single = e - pos == 1;
            if (single && m->f[pos] == '#') { /* n itself ("a/#" matches "a") and all below */
                if (!visit(m, n))
                    return false;
                expand = true;
            } else if (single && m->f[pos] == '+') {
                expand = true;
                child_pos = e + 1;
            } else {
                const struct rnode *c = router_map_get(&n->children, m->f + pos, e - pos,
                                                       router_level_hash(m->f + pos, e - pos));
                if (c) { /* a literal level: follow it without a frame */
                    n = c;
                    pos = e + 1;
                    continue;
                }
            }
        }
        if (expand && n->children.count) {
            if (sp < WALK_STACK)
                stack[sp++] = (struct rframe){n, child_pos, 0};
            else if (!match_children(m, n, child_pos))
                return false;
        }
        const struct rnode *c = NULL;
        while (sp && !(c = next_child(m, &stack[sp - 1])))
            sp--;
        if (!c)
            return true;
        n = c;
        pos = stack[sp - 1].pos;
    }
}

void retain_match(struct retain *r, const uint8_t *f, size_t n, retain_visit_fn fn, void *ctx)
{
    if (n == 0)
        return;
    struct rmatch m = {f, n, true, fn, ctx};
    match_from(&m, r->root, 0);
}

void retain_walk(struct retain *r, retain_visit_fn fn, void *ctx)
{
    struct rmatch m = {NULL, 0, false, fn, ctx};
    match_from(&m, r->root, ALL_BELOW);
}
