/* hmap.h - open-addressing hash map from byte-string keys to pointers.
 *
 * Keys are NOT copied: the caller guarantees the key bytes stay valid and unchanged while the
 * entry exists (typically the key lives in the value, e.g. a session's client id). Linear
 * probing with backward-shift deletion (no tombstones), load factor <= 0.5. One owner thread. */
#ifndef TERN_COMMON_HMAP_H
#define TERN_COMMON_HMAP_H

#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "common/err.h"

struct hmap_slot {
    const void *key;
    uint32_t len;
    uint32_t hash; /* 0 = empty slot (real hashes are forced non-zero) */
    void *value;
};

struct hmap {
    struct hmap_slot *slots;
    size_t cap; /* power of two */
    size_t count;
    struct mem *mem;
};

void hmap_init(struct hmap *h, struct mem *mem);
void hmap_free(struct hmap *h);
/* Returns the value for key, or NULL. */
void *hmap_get(const struct hmap *h, const void *key, size_t len);
/* Inserts or replaces. 0 or TERN_ENOMEM. */
int hmap_put(struct hmap *h, const void *key, size_t len, void *value) TERN_MUST_CHECK;
/* Removes key; returns its value or NULL. */
void *hmap_del(struct hmap *h, const void *key, size_t len);
/* FNV-1a 32-bit (used for client id -> home thread too). */
uint32_t hmap_hash(const void *key, size_t len);

/* Iteration: for (size_t i = 0; i < h->cap; i++) if (h->slots[i].hash) ... (do not modify). */

#endif
