/* trie.c - subscription trie (see trie.h for the picture).
 *
 * A node per topic level. Exact children are found through a hash map keyed by the level text
 * (wide nodes such as devices/<id> stay O(1)); '+' and '#' children have their own pointers.
 * Each node keeps its ordinary subscriptions in an array and its shared-subscription groups in
 * another. Matching visits, per topic level, at most the exact child, the '+' child and the '#'
 * child. Nodes left empty by an unsubscribe are pruned up to the root.
 * Owned by the broker, guarded by its rwlock; trie_match only reads (and advances atomic
 * share cursors). */
#include "router/trie.h"

#include <string.h>

#include "common/hmap.h"
#include "router/topic.h"

struct share_group {
    uint8_t *name;
    size_t len;
    struct sub_entry *members;
    uint32_t n, cap;
    _Atomic uint32_t cursor;
};

struct node {
    uint8_t *level; /* owned copy of this node's level text */
    uint32_t len;
    struct node *parent;
    struct hmap children; /* level text -> struct node* */
    struct node *plus, *hash;
    struct sub_entry *subs;
    uint32_t nsubs, capsubs;
    struct share_group **shares;
    uint32_t nshares;
};

struct trie {
    struct mem *mem;
    struct node *root;
    size_t count;
};

static struct node *node_new(struct trie *t, struct node *parent, const uint8_t *lvl, uint32_t len)
{
    struct node *n = mem_calloc(t->mem, MEM_ROUTER, sizeof *n);
    if (!n)
        return NULL;
    n->level = mem_alloc(t->mem, MEM_ROUTER, len ? len : 1);
    if (!n->level) {
        mem_free(t->mem, MEM_ROUTER, n);
        return NULL;
    }
    memcpy(n->level, lvl, len);
    n->len = len;
    n->parent = parent;
    hmap_init(&n->children, t->mem);
    return n;
}

static void node_free(struct trie *t, struct node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->children.cap; i++)
        if (n->children.slots[i].hash)
            node_free(t, n->children.slots[i].value);
    hmap_free(&n->children);
    node_free(t, n->plus);
    node_free(t, n->hash);
    for (uint32_t i = 0; i < n->nshares; i++) {
        mem_free(t->mem, MEM_ROUTER, n->shares[i]->name);
        mem_free(t->mem, MEM_ROUTER, n->shares[i]->members);
        mem_free(t->mem, MEM_ROUTER, n->shares[i]);
    }
    mem_free(t->mem, MEM_ROUTER, n->shares);
    mem_free(t->mem, MEM_ROUTER, n->subs);
    mem_free(t->mem, MEM_ROUTER, n->level);
    mem_free(t->mem, MEM_ROUTER, n);
}

struct trie *trie_create(struct mem *mem)
{
    struct trie *t = mem_calloc(mem, MEM_ROUTER, sizeof *t);
    if (!t)
        return NULL;
    t->mem = mem;
    t->root = node_new(t, NULL, (const uint8_t *)"", 0);
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
    node_free(t, t->root);
    mem_free(t->mem, MEM_ROUTER, t);
}

size_t trie_count(const struct trie *t)
{
    return t->count;
}

/* Child of n for level text l[0..len) (exact, '+' or '#'); created when create is set. */
static struct node *child(struct trie *t, struct node *n, const uint8_t *l, uint32_t len,
                          bool create)
{
    struct node **slot = NULL;
    if (len == 1 && l[0] == '+')
        slot = &n->plus;
    else if (len == 1 && l[0] == '#')
        slot = &n->hash;
    if (slot) {
        if (!*slot && create)
            *slot = node_new(t, n, l, len);
        return *slot;
    }
    struct node *c = hmap_get(&n->children, l, len);
    if (c || !create)
        return c;
    c = node_new(t, n, l, len);
    if (c && hmap_put(&n->children, c->level, c->len, c)) {
        node_free(t, c);
        return NULL;
    }
    return c;
}

static bool node_empty(const struct node *n)
{
    return !n->nsubs && !n->nshares && !n->plus && !n->hash && !n->children.count;
}

/* Releases the storage of n's containers once they are empty, so that unsubscribing
 * everything brings memory back to what an empty trie uses. */
static void node_trim(struct trie *t, struct node *n)
{
    if (!n->children.count && n->children.slots)
        hmap_free(&n->children);
    if (!n->nsubs && n->subs) {
        mem_free(t->mem, MEM_ROUTER, n->subs);
        n->subs = NULL;
        n->capsubs = 0;
    }
    if (!n->nshares && n->shares) {
        mem_free(t->mem, MEM_ROUTER, n->shares);
        n->shares = NULL;
    }
}

/* Removes empty nodes from n up to (not including) the root, and trims the first node kept. */
static void prune(struct trie *t, struct node *n)
{
    while (n && n->parent && node_empty(n)) {
        struct node *p = n->parent;
        if (p->plus == n)
            p->plus = NULL;
        else if (p->hash == n)
            p->hash = NULL;
        else
            hmap_del(&p->children, n->level, n->len);
        node_free(t, n);
        n = p;
    }
    if (n)
        node_trim(t, n);
}

/* Walks/creates the node of ordinary filter f. */
static struct node *filter_node(struct trie *t, const uint8_t *f, size_t n, bool create)
{
    struct node *cur = t->root;
    size_t i = 0;
    for (;;) {
        size_t e = i;
        while (e < n && f[e] != '/')
            e++;
        struct node *next = child(t, cur, f + i, (uint32_t)(e - i), create);
        if (!next) {
            if (create) /* out of memory: drop the levels created so far */
                prune(t, cur);
            return NULL;
        }
        cur = next;
        if (e >= n)
            return cur;
        i = e + 1;
    }
}

static int add_entry(struct mem *mem, struct sub_entry **arr, uint32_t *count, uint32_t *cap,
                     const struct sub_entry *e, bool *replaced)
{
    for (uint32_t i = 0; i < *count; i++) {
        if ((*arr)[i].session_id == e->session_id) {
            (*arr)[i] = *e;
            *replaced = true;
            return 0;
        }
    }
    if (*count == *cap) {
        uint32_t ncap = *cap ? *cap * 2 : 2;
        struct sub_entry *na = mem_realloc(mem, MEM_ROUTER, *arr, ncap * sizeof *na);
        if (!na)
            return TERN_ENOMEM;
        *arr = na;
        *cap = ncap;
    }
    (*arr)[(*count)++] = *e;
    *replaced = false;
    return 0;
}

static bool del_entry(struct sub_entry *arr, uint32_t *count, uint64_t session_id)
{
    for (uint32_t i = 0; i < *count; i++) {
        if (arr[i].session_id == session_id) {
            /* keep order: the share cursor and delivery order stay predictable */
            memmove(&arr[i], &arr[i + 1], (*count - i - 1) * sizeof *arr);
            (*count)--;
            return true;
        }
    }
    return false;
}

static struct share_group *find_group(struct node *n, const uint8_t *g, size_t gl, uint32_t *idx)
{
    for (uint32_t i = 0; i < n->nshares; i++) {
        if (n->shares[i]->len == gl && memcmp(n->shares[i]->name, g, gl) == 0) {
            if (idx)
                *idx = i;
            return n->shares[i];
        }
    }
    return NULL;
}

/* Frees share group idx of n (moving the last group into its slot). */
static void remove_group(struct trie *t, struct node *n, uint32_t idx)
{
    struct share_group *grp = n->shares[idx];
    mem_free(t->mem, MEM_ROUTER, grp->name);
    mem_free(t->mem, MEM_ROUTER, grp->members);
    mem_free(t->mem, MEM_ROUTER, grp);
    n->shares[idx] = n->shares[--n->nshares];
}

static int share_subscribe(struct trie *t, struct node *n, const uint8_t *g, size_t gl,
                           const struct sub_entry *e, bool *replaced)
{
    struct share_group *grp = find_group(n, g, gl, NULL);
    if (!grp) {
        struct share_group **ns =
            mem_realloc(t->mem, MEM_ROUTER, n->shares, (n->nshares + 1) * sizeof *ns);
        if (!ns)
            return TERN_ENOMEM;
        n->shares = ns;
        grp = mem_calloc(t->mem, MEM_ROUTER, sizeof *grp);
        if (!grp)
            return TERN_ENOMEM;
        grp->name = mem_alloc(t->mem, MEM_ROUTER, gl);
        if (!grp->name) {
            mem_free(t->mem, MEM_ROUTER, grp);
            return TERN_ENOMEM;
        }
        memcpy(grp->name, g, gl);
        grp->len = gl;
        atomic_init(&grp->cursor, 0);
        n->shares[n->nshares++] = grp;
    }
    int rc = add_entry(t->mem, &grp->members, &grp->n, &grp->cap, e, replaced);
    if (rc && grp->n == 0) /* a new group that got no member: never leave it empty */
        remove_group(t, n, n->nshares - 1);
    return rc;
}

int trie_subscribe(struct trie *t, const uint8_t *f, size_t n, const struct sub_entry *e,
                   bool *replaced)
{
    const uint8_t *g, *sf;
    size_t gl, sfl;
    bool shared = topic_share_split(f, n, &g, &gl, &sf, &sfl) == 1;
    struct node *node = shared ? filter_node(t, sf, sfl, true) : filter_node(t, f, n, true);
    if (!node)
        return TERN_ENOMEM;
    int rc = shared ? share_subscribe(t, node, g, gl, e, replaced)
                    : add_entry(t->mem, &node->subs, &node->nsubs, &node->capsubs, e, replaced);
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
    const uint8_t *g, *sf;
    size_t gl, sfl;
    bool shared = topic_share_split(f, n, &g, &gl, &sf, &sfl) == 1;
    struct node *node = shared ? filter_node(t, sf, sfl, false) : filter_node(t, f, n, false);
    if (!node)
        return TERN_ENOTFOUND;
    bool found;
    if (shared) {
        uint32_t idx;
        struct share_group *grp = find_group(node, g, gl, &idx);
        found = grp && del_entry(grp->members, &grp->n, session_id);
        if (grp && grp->n == 0)
            remove_group(t, node, idx);
    } else {
        found = del_entry(node->subs, &node->nsubs, session_id);
    }
    if (found)
        t->count--;
    prune(t, node);
    return found ? 0 : TERN_ENOTFOUND;
}

struct match_ctx {
    const uint8_t *topic;
    size_t tn;
    trie_sub_fn sub_fn;
    trie_share_fn share_fn;
    void *ctx;
};

static void emit(const struct match_ctx *m, struct node *n)
{
    if (m->sub_fn)
        for (uint32_t i = 0; i < n->nsubs; i++)
            m->sub_fn(m->ctx, &n->subs[i]);
    if (m->share_fn)
        for (uint32_t i = 0; i < n->nshares; i++) {
            struct share_group *g = n->shares[i];
            if (g->n)
                m->share_fn(m->ctx, g->name, g->len, g->members, g->n, &g->cursor);
        }
}

/* n matched the levels before pos; pos > tn means every topic level was consumed. */
static void match_node(const struct match_ctx *m, struct node *n, size_t pos)
{
    bool at_root = n->parent == NULL;
    bool dollar = at_root && m->tn && m->topic[0] == '$'; /* [MQTT-4.7.2-1] */
    if (pos > m->tn) {
        emit(m, n);
        if (n->hash) /* "a/#" also matches "a" */
            emit(m, n->hash);
        return;
    }
    if (n->hash && !dollar)
        emit(m, n->hash);
    size_t e = pos;
    while (e < m->tn && m->topic[e] != '/')
        e++;
    struct node *c = hmap_get(&n->children, m->topic + pos, e - pos);
    if (c)
        match_node(m, c, e + 1);
    if (n->plus && !dollar)
        match_node(m, n->plus, e + 1);
}

void trie_match(struct trie *t, const uint8_t *topic, size_t tn, trie_sub_fn sub_fn,
                trie_share_fn share_fn, void *ctx)
{
    struct match_ctx m = {topic, tn, sub_fn, share_fn, ctx};
    match_node(&m, t->root, 0);
}

int trie_share_pick(struct trie *t, const uint8_t *g, size_t gl, const uint8_t *f, size_t fl,
                    uint64_t exclude, struct sub_entry *out)
{
    struct node *node = filter_node(t, f, fl, false);
    struct share_group *grp = node ? find_group(node, g, gl, NULL) : NULL;
    if (!grp)
        return TERN_ENOTFOUND;
    for (uint32_t tries = 0; tries < grp->n; tries++) {
        uint32_t k = atomic_fetch_add_explicit(&grp->cursor, 1, memory_order_relaxed);
        const struct sub_entry *e = &grp->members[k % grp->n];
        if (e->session_id != exclude) {
            *out = *e;
            return 0;
        }
    }
    return TERN_ENOTFOUND;
}
