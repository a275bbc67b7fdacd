/* retain.c - retained-message tree (see retain.h).
 *
 * One node per topic level, children in a hash map keyed by level text; a node holds at most
 * one value (one reference owned by the tree). Lookup by filter walks exact children for plain
 * levels, all children for '+', and whole subtrees for '#'. Empty nodes are pruned on clear.
 * Owned by the store, which locks around every call. */
#include "router/retain.h"

#include <string.h>

#include "common/hmap.h"

struct rnode {
    uint8_t *level;
    uint32_t len;
    struct rnode *parent;
    struct hmap children;
    void *value;
    uint8_t *topic; /* full topic of value (owned), for the visit callback */
    uint32_t topic_len;
};

struct retain {
    struct mem *mem;
    retain_unref_fn unref;
    struct rnode *root;
    size_t count;
};

static struct rnode *rnode_new(struct retain *r, struct rnode *parent, const uint8_t *l,
                               uint32_t len)
{
    struct rnode *n = mem_calloc(r->mem, MEM_ROUTER, sizeof *n);
    if (!n)
        return NULL;
    n->level = mem_alloc(r->mem, MEM_ROUTER, len ? len : 1);
    if (!n->level) {
        mem_free(r->mem, MEM_ROUTER, n);
        return NULL;
    }
    memcpy(n->level, l, len);
    n->len = len;
    n->parent = parent;
    hmap_init(&n->children, r->mem);
    return n;
}

static void rnode_free(struct retain *r, struct rnode *n)
{
    for (size_t i = 0; i < n->children.cap; i++)
        if (n->children.slots[i].hash)
            rnode_free(r, n->children.slots[i].value);
    hmap_free(&n->children);
    if (n->value)
        r->unref(n->value);
    mem_free(r->mem, MEM_ROUTER, n->topic);
    mem_free(r->mem, MEM_ROUTER, n->level);
    mem_free(r->mem, MEM_ROUTER, n);
}

struct retain *retain_create(struct mem *mem, retain_unref_fn unref)
{
    struct retain *r = mem_calloc(mem, MEM_ROUTER, sizeof *r);
    if (!r)
        return NULL;
    r->mem = mem;
    r->unref = unref;
    r->root = rnode_new(r, NULL, (const uint8_t *)"", 0);
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
    rnode_free(r, r->root);
    mem_free(r->mem, MEM_ROUTER, r);
}

size_t retain_count(const struct retain *r)
{
    return r->count;
}

static void prune(struct retain *r, struct rnode *n);

static struct rnode *find(struct retain *r, const uint8_t *t, size_t n, bool create)
{
    struct rnode *cur = r->root;
    size_t i = 0;
    for (;;) {
        size_t e = i;
        while (e < n && t[e] != '/')
            e++;
        struct rnode *c = hmap_get(&cur->children, t + i, e - i);
        if (!c) {
            if (!create)
                return NULL;
            c = rnode_new(r, cur, t + i, (uint32_t)(e - i));
            if (c && hmap_put(&cur->children, c->level, c->len, c)) {
                rnode_free(r, c);
                c = NULL;
            }
            if (!c) { /* out of memory: drop the levels created so far */
                prune(r, cur);
                return NULL;
            }
        }
        cur = c;
        if (e >= n)
            return cur;
        i = e + 1;
    }
}

static void prune(struct retain *r, struct rnode *n)
{
    while (n && n->parent && !n->value && !n->children.count) {
        struct rnode *p = n->parent;
        hmap_del(&p->children, n->level, n->len);
        rnode_free(r, n);
        n = p;
    }
    /* an emptied child map releases its slots: clearing everything returns the memory */
    if (n && !n->children.count && n->children.slots)
        hmap_free(&n->children);
}

int retain_set(struct retain *r, const uint8_t *t, size_t n, void *value)
{
    struct rnode *node = find(r, t, n, value != NULL);
    if (!node)
        return value ? TERN_ENOMEM : 0;
    if (value && !node->topic) {
        node->topic = mem_alloc(r->mem, MEM_ROUTER, n ? n : 1);
        if (!node->topic) {
            prune(r, node);
            return TERN_ENOMEM;
        }
        memcpy(node->topic, t, n);
        node->topic_len = (uint32_t)n;
    }
    if (node->value) {
        r->unref(node->value);
        r->count--;
    }
    node->value = value;
    if (value) {
        r->count++;
    } else {
        mem_free(r->mem, MEM_ROUTER, node->topic);
        node->topic = NULL;
        prune(r, node);
    }
    return 0;
}

void *retain_get(struct retain *r, const uint8_t *t, size_t n)
{
    struct rnode *node = find(r, t, n, false);
    return node ? node->value : NULL;
}

/* Visits n and everything below it; false when the visitor asked to stop. */
static bool walk(struct rnode *n, bool skip_dollar, retain_visit_fn fn, void *ctx)
{
    if (n->value && !fn(ctx, n->topic, n->topic_len, n->value))
        return false;
    for (size_t i = 0; i < n->children.cap; i++) {
        if (!n->children.slots[i].hash)
            continue;
        struct rnode *c = n->children.slots[i].value;
        if (skip_dollar && c->len && c->level[0] == '$')
            continue;
        if (!walk(c, false, fn, ctx))
            return false;
    }
    return true;
}

static bool match(struct rnode *n, const uint8_t *f, size_t fn, size_t pos, retain_visit_fn vf,
                  void *ctx)
{
    bool at_root = n->parent == NULL;
    size_t e = pos;
    while (e < fn && f[e] != '/')
        e++;
    bool last = e >= fn;
    if (e - pos == 1 && f[pos] == '#') {
        /* this node's value ("a/#" matches "a") and the whole subtree; at the root a
         * wildcard does not match '$' topics [MQTT-4.7.2-1] */
        if (!at_root && n->value && !vf(ctx, n->topic, n->topic_len, n->value))
            return false;
        for (size_t i = 0; i < n->children.cap; i++) {
            if (!n->children.slots[i].hash)
                continue;
            struct rnode *c = n->children.slots[i].value;
            if (at_root && c->len && c->level[0] == '$')
                continue;
            if (!walk(c, false, vf, ctx))
                return false;
        }
        return true;
    }
    if (e - pos == 1 && f[pos] == '+') {
        for (size_t i = 0; i < n->children.cap; i++) {
            if (!n->children.slots[i].hash)
                continue;
            struct rnode *c = n->children.slots[i].value;
            if (at_root && c->len && c->level[0] == '$')
                continue;
            if (last) {
                if (c->value && !vf(ctx, c->topic, c->topic_len, c->value))
                    return false;
                /* "+/#"-style parent match: "a/+/#" handled by recursion below */
            } else if (!match(c, f, fn, e + 1, vf, ctx)) {
                return false;
            }
        }
        return true;
    }
    struct rnode *c = hmap_get(&n->children, f + pos, e - pos);
    if (!c)
        return true;
    if (last)
        return !c->value || vf(ctx, c->topic, c->topic_len, c->value);
    return match(c, f, fn, e + 1, vf, ctx);
}

void retain_match(struct retain *r, const uint8_t *f, size_t n, retain_visit_fn fn, void *ctx)
{
    if (n == 0)
        return;
    match(r->root, f, n, 0, fn, ctx);
}

void retain_walk(struct retain *r, retain_visit_fn fn, void *ctx)
{
    walk(r->root, false, fn, ctx);
}
