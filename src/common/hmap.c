/* hmap.c - open-addressing hash map (see hmap.h). */
#include "common/hmap.h"

#include <string.h>

void hmap_init(struct hmap *h, struct mem *mem)
{
    h->slots = NULL;
    h->cap = h->count = 0;
    h->mem = mem;
}

void hmap_free(struct hmap *h)
{
    mem_free(h->mem, MEM_MISC, h->slots);
    h->slots = NULL;
    h->cap = h->count = 0;
}

uint32_t hmap_hash(const void *key, size_t len)
{
    const uint8_t *p = key;
    uint32_t x = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        x ^= p[i];
        x *= 16777619u;
    }
    /* final avalanche so low bits (used for the slot and home thread) depend on every byte */
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    return x ? x : 1;
}

static size_t find(const struct hmap *h, const void *key, size_t len, uint32_t hash, int *found)
{
    size_t mask = h->cap - 1;
    size_t i = hash & mask;
    for (;;) {
        const struct hmap_slot *s = &h->slots[i];
        if (!s->hash) {
            *found = 0;
            return i;
        }
        if (s->hash == hash && s->len == len && memcmp(s->key, key, len) == 0) {
            *found = 1;
            return i;
        }
        i = (i + 1) & mask;
    }
}

void *hmap_get(const struct hmap *h, const void *key, size_t len)
{
    if (!h->count)
        return NULL;
    int found;
    size_t i = find(h, key, len, hmap_hash(key, len), &found);
    return found ? h->slots[i].value : NULL;
}

static int grow(struct hmap *h)
{
    size_t ncap = h->cap ? h->cap * 2 : 16;
    struct hmap_slot *ns = mem_calloc(h->mem, MEM_MISC, ncap * sizeof *ns);
    if (!ns)
        return TERN_ENOMEM;
    struct hmap old = *h;
    h->slots = ns;
    h->cap = ncap;
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.slots[i].hash)
            continue;
        int found;
        size_t j = find(h, old.slots[i].key, old.slots[i].len, old.slots[i].hash, &found);
        h->slots[j] = old.slots[i];
    }
    mem_free(h->mem, MEM_MISC, old.slots);
    return 0;
}

int hmap_put(struct hmap *h, const void *key, size_t len, void *value)
{
    if ((h->count + 1) * 2 > h->cap) {
        int rc = grow(h);
        if (rc)
            return rc;
    }
    uint32_t hash = hmap_hash(key, len);
    int found;
    size_t i = find(h, key, len, hash, &found);
    struct hmap_slot *s = &h->slots[i];
    if (!found)
        h->count++;
    s->key = key;
    s->len = (uint32_t)len;
    s->hash = hash;
    s->value = value;
    return 0;
}

void *hmap_del(struct hmap *h, const void *key, size_t len)
{
    if (!h->count)
        return NULL;
    int found;
    size_t i = find(h, key, len, hmap_hash(key, len), &found);
    if (!found)
        return NULL;
    void *v = h->slots[i].value;
    size_t mask = h->cap - 1;
    /* backward-shift deletion keeps probe chains intact without tombstones */
    size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        struct hmap_slot *s = &h->slots[j];
        if (!s->hash)
            break;
        size_t home = s->hash & mask;
        /* move s into the hole at i when its home is not in (i, j] cyclically */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            h->slots[i] = *s;
            i = j;
        }
    }
    memset(&h->slots[i], 0, sizeof h->slots[i]);
    if (--h->count == 0)
        hmap_free(h); /* an emptied map gives its memory back */
    return v;
}
