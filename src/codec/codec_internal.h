/* codec_internal.h - private helpers shared by the codec's .c files (not part of the module API).
 *
 * A `struct rd` is a bounds-checked cursor over one packet body: every read checks the bytes
 * left first, so decode can never read outside the buffer it was given. A `struct wr` is the
 * encoder's cursor: with p == NULL it only counts, so one function per layout gives both
 * codec_encoded_size() and codec_encode() and the two can never disagree. */
#ifndef TERN_CODEC_INTERNAL_H
#define TERN_CODEC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "codec/codec.h"

/* Decode cursor: body bytes p[0..len), next byte at off. Owned by the decode call (stack). */
struct rd {
    const uint8_t *p;
    uint32_t len;
    uint32_t off;
};

static inline uint32_t rd_left(const struct rd *r)
{
    return r->len - r->off;
}

static inline int rd_u8(struct rd *r, uint8_t *v)
{
    if (rd_left(r) < 1)
        return TERN_EMALFORMED;
    *v = r->p[r->off++];
    return 0;
}

static inline int rd_u16(struct rd *r, uint16_t *v)
{
    if (rd_left(r) < 2)
        return TERN_EMALFORMED;
    *v = (uint16_t)((r->p[r->off] << 8) | r->p[r->off + 1]);
    r->off += 2;
    return 0;
}

static inline int rd_u32(struct rd *r, uint32_t *v)
{
    if (rd_left(r) < 4)
        return TERN_EMALFORMED;
    const uint8_t *s = r->p + r->off;
    *v = ((uint32_t)s[0] << 24) | ((uint32_t)s[1] << 16) | ((uint32_t)s[2] << 8) | s[3];
    r->off += 4;
    return 0;
}

/* Binary data: two-byte length then that many bytes (a view into the input). */
static inline int rd_bin(struct rd *r, struct mqtt_str *s)
{
    uint16_t n;
    if (rd_u16(r, &n))
        return TERN_EMALFORMED;
    if (rd_left(r) < n)
        return TERN_EMALFORMED;
    s->p = r->p + r->off;
    s->len = n;
    r->off += n;
    return 0;
}

/* Decodes a variable byte integer from p[0..len) into *v. Returns bytes used (1-4),
 * 0 when more bytes are needed, or TERN_EMALFORMED for more than 4 bytes or a non-minimal
 * encoding [MQTT-1.5.5-1] (v5; applied to every version: no real sender pads). */
int codec_varint_decode(const uint8_t *p, size_t len, uint32_t *v);

/* Decodes and validates a v5 property block (length varint + properties) at the cursor.
 * allowed: MQTT_PROP_BIT mask of identifiers valid here; multi_sub_id: Subscription
 * Identifier may repeat (PUBLISH only). Fills *out (zeroed first); raw views the input. */
int codec_props_decode(struct rd *r, uint64_t allowed, bool multi_sub_id, struct mqtt_props *out);

/* Property identifiers valid in each packet type (index enum mqtt_type; 0 = none). */
uint64_t codec_props_allowed(uint8_t type);

/* Encode cursor: p == NULL counts only. n is the number of bytes produced so far. */
struct wr {
    uint8_t *p;
    size_t n;
};

static inline void wr_u8(struct wr *w, uint8_t v)
{
    if (w->p)
        w->p[w->n] = v;
    w->n += 1;
}

static inline void wr_u16(struct wr *w, uint16_t v)
{
    if (w->p) {
        w->p[w->n] = (uint8_t)(v >> 8);
        w->p[w->n + 1] = (uint8_t)v;
    }
    w->n += 2;
}

static inline void wr_u32(struct wr *w, uint32_t v)
{
    if (w->p) {
        w->p[w->n] = (uint8_t)(v >> 24);
        w->p[w->n + 1] = (uint8_t)(v >> 16);
        w->p[w->n + 2] = (uint8_t)(v >> 8);
        w->p[w->n + 3] = (uint8_t)v;
    }
    w->n += 4;
}

static inline void wr_bytes(struct wr *w, const uint8_t *s, size_t n)
{
    if (w->p && n)
        memcpy(w->p + w->n, s, n);
    w->n += n;
}

/* Two-byte length + bytes; the caller has checked len <= 65535. */
static inline void wr_str(struct wr *w, const struct mqtt_str *s)
{
    wr_u16(w, (uint16_t)s->len);
    wr_bytes(w, s->p, s->len);
}

static inline size_t varint_size(uint32_t v)
{
    return v < 128u ? 1 : v < 16384u ? 2 : v < 2097152u ? 3 : 4;
}

static inline void wr_varint(struct wr *w, uint32_t v)
{
    if (w->p)
        codec_varint_encode(w->p + w->n, v);
    w->n += varint_size(v);
}

/* Returns 0 when props can be encoded (strings <= 65535 bytes, subscription identifiers in
 * 1..268435455, block size within MQTT_MAX_REMAINING), else TERN_EINVAL. */
int codec_props_check(const struct mqtt_props *props);

/* Writes the property block (length varint + properties) of checked props. */
void codec_props_write(struct wr *w, const struct mqtt_props *props);

#endif
