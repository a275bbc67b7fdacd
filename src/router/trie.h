/* trie.h - subscription trie: one node per topic level, with '+' and '#' child slots, so a match
 * explores at most three branches per level. Shared subscriptions ($share/group/filter) are
 * stored at the node of their filter as groups of members.
 *
 * The trie stores subscription entries and nothing else: no sending, ACL or persistence.
 * Not thread-safe: the broker guards it with a rwlock (match under the read lock; the share
 * cursor is atomic so concurrent matchers may advance it). trie_match and trie_share_pick write
 * nothing else.
 *
 * Cost (L = levels of the topic/filter, M = matching subscriptions): exact children are found
 * in O(1) (dense array up to ROUTER_MAP_SMALL, hash table beyond, so wide levels such as
 * devices/<id> cost the same as narrow ones); trie_match is O(nodes visited + M), at most three
 * branches per topic level; subscribe/unsubscribe are O(L) plus O(1) in the number of
 * sessions at that filter (an index by session_id once a filter has more than 16). No call
 * recurses once per level, so topics of 65535 bytes are fine on small thread stacks.
 *
 *   root ── "a" ── "b"   [subs: s1 qos1]
 *      │      └── "+" ── "c" [subs: s2]
 *      └── "#"  [subs: s3]   share groups: {"g1": [s4, s5], cursor}
 */
#ifndef TERN_ROUTER_TRIE_H
#define TERN_ROUTER_TRIE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "common/err.h"

/* One subscription as stored in the trie (copied in; the trie owns its copy). */
struct sub_entry {
    uint64_t session_id; /* unique id of the subscribing session (key within a filter/group) */
    void *session;       /* opaque to the router; owned by the broker */
    uint32_t thread;     /* home I/O thread of the session */
    uint8_t options;     /* v5 subscription options byte: bits 0-1 QoS, 2 No Local,
                            3 Retain As Published, 4-5 Retain Handling */
    uint32_t sub_id;     /* v5 subscription identifier, 0 when none */
};

struct trie;

/* Called for each matching ordinary subscription. e is borrowed for the call only. */
typedef void (*trie_sub_fn)(void *ctx, const struct sub_entry *e);
/* Called once per matching shared-subscription group: members[0..n) (n >= 1) borrowed for the
 * call; *cursor is the group's round-robin cursor, which the callee may advance atomically. */
typedef void (*trie_share_fn)(void *ctx, const uint8_t *group, size_t group_len,
                              const struct sub_entry *members, size_t n, _Atomic uint32_t *cursor);

/* Creates an empty trie allocating from mem (borrowed, must outlive the trie). NULL on ENOMEM. */
struct trie *trie_create(struct mem *mem);
/* Frees the trie and all its entries. */
void trie_destroy(struct trie *t);

/* Adds or replaces (same session_id at the same filter, or in the same share group) a
 * subscription. f must be a valid filter (topic_filter_valid), may be "$share/g/filter".
 * *replaced tells whether an existing entry was updated. 0 or TERN_ENOMEM. */
int trie_subscribe(struct trie *t, const uint8_t *f, size_t n, const struct sub_entry *e,
                   bool *replaced) TERN_MUST_CHECK;
/* Removes session_id's subscription at filter f (or from the share group). Prunes empty nodes.
 * 0 or TERN_ENOTFOUND. */
int trie_unsubscribe(struct trie *t, const uint8_t *f, size_t n, uint64_t session_id);
/* Calls sub_fn for each ordinary subscription and share_fn for each share group whose filter
 * matches topic name tn (which must be valid). Filters starting with '+' or '#' do not match
 * topics starting with '$' [MQTT-4.7.2-1]. Either callback may be NULL. */
void trie_match(struct trie *t, const uint8_t *topic, size_t tn, trie_sub_fn sub_fn,
                trie_share_fn share_fn, void *ctx);
/* Picks the next member (round-robin) of share group g at ordinary filter f, other than
 * session `exclude`, copying it to *out. 0 or TERN_ENOTFOUND. Read-only except the cursor. */
int trie_share_pick(struct trie *t, const uint8_t *g, size_t gl, const uint8_t *f, size_t fl,
                    uint64_t exclude, struct sub_entry *out);
/* Number of subscriptions stored (ordinary entries + share members). */
size_t trie_count(const struct trie *t);

/* ---- Router-internal: the level -> child map of trie and retained-tree nodes ----
 *
 * Maps the text of one topic level to a child node. Also used by retain.c, so it lives here.
 * Up to ROUTER_MAP_SMALL children the slots are a dense array scanned by hash (no pointer chase
 * until a hash matches); past that an open-addressing table (linear probing, load <= 1/2,
 * backward-shift deletion), so a node with 10,000 children (devices/<id>/...) stays O(1). A wide
 * map that shrinks to ROUTER_MAP_SMALL/2 children becomes dense again; an empty map holds no
 * memory. Keys are not copied: they point at the child's own level text. All memory is
 * MEM_ROUTER. Same thread rules as the tree that owns it.
 *
 *   dense:  [h1 "a" *] [h2 "b" *] [0] ...           wide:  [0] [h7 "x" *] [0] [h3 "y" *] ...
 */
#define ROUTER_MAP_SMALL 8

struct router_map_slot {
    const uint8_t *key; /* borrowed from the child */
    uint32_t len;
    uint32_t hash; /* 0 = empty slot (router_level_hash never returns 0) */
    void *value;
};

struct router_map {
    struct router_map_slot *slots; /* cap slots; empty ones have hash 0 */
    uint32_t count, cap;
    bool wide; /* open-addressing table rather than a dense array */
};

/* Iteration: for (i = 0; i < m->cap; i++) if (m->slots[i].hash) ... (do not modify meanwhile). */

/* Hash of one level's text, never 0. */
uint32_t router_level_hash(const uint8_t *key, size_t len);
/* Returns the child stored under key (hash = router_level_hash(key, len)), or NULL. */
void *router_map_get(const struct router_map *m, const uint8_t *key, size_t len, uint32_t hash);
/* Adds child value under key, which must not be present yet; key must stay valid and unchanged
 * while the entry exists. 0 or TERN_ENOMEM (then the map is unchanged). */
int router_map_put(struct router_map *m, struct mem *mem, const uint8_t *key, size_t len,
                   uint32_t hash, void *value) TERN_MUST_CHECK;
/* Removes key if present (never allocates, never fails). */
void router_map_del(struct router_map *m, struct mem *mem, const uint8_t *key, size_t len,
                    uint32_t hash);
/* Frees the slots (not the children). The map is empty and reusable afterwards. */
void router_map_free(struct router_map *m, struct mem *mem);

#endif
