/* codec_decode.c - decoding of MQTT 3.1 / 3.1.1 / 5.0 packets from one contiguous buffer.
 *
 * Invariants: decode never reads outside buf[0..len) (every read goes through struct rd,
 * which checks the bytes left), never allocates, and keeps no state; results are views into
 * buf. The fixed header is checked (type, reserved flags, size limit) as soon as it is
 * complete, before the body is available, so an oversized or bogus packet is refused without
 * buffering it. Then a packet must be whole (TERN_EAGAIN otherwise) and is parsed in one pass;
 * a body must be consumed exactly: trailing or missing bytes are TERN_EMALFORMED.
 *
 * Error choice: grammar violations (reserved bits, truncation, bad UTF-8, bad varint, invalid
 * property identifier) are TERN_EMALFORMED; well-formed but forbidden content (zero packet id,
 * empty SUBSCRIBE, duplicate property, out-of-range property, unknown protocol name, v5
 * subscription QoS 3 or retain handling 3) is TERN_EPROTO. */
#include "codec/codec_internal.h"
#include "common/utf8.h"

int codec_varint_decode(const uint8_t *p, size_t len, uint32_t *v)
{
    uint32_t value = 0;
    for (size_t i = 0; i < 4; i++) {
        if (i >= len)
            return 0;
        value |= (uint32_t)(p[i] & 0x7F) << (7 * i);
        if (!(p[i] & 0x80)) {
            if (i > 0 && p[i] == 0) /* a trailing zero group: not minimal [MQTT-1.5.5-1] */
                return TERN_EMALFORMED;
            *v = value;
            return (int)i + 1;
        }
    }
    return TERN_EMALFORMED; /* a fifth byte would be needed (2.2.3 / 1.5.5) */
}

int codec_peek_header(const uint8_t *buf, size_t len, uint32_t max_packet, uint8_t *type_flags,
                      uint32_t *remaining, uint32_t *header_len)
{
    if (len < 1)
        return TERN_EAGAIN;
    if ((buf[0] >> 4) == 0) /* type 0 is reserved (Forbidden) */
        return TERN_EMALFORMED;
    uint32_t rem;
    int n = codec_varint_decode(buf + 1, len - 1, &rem);
    if (n < 0)
        return n;
    if (n == 0)
        return TERN_EAGAIN;
    /* refuse from the header alone, before the body is buffered */
    if (max_packet && (uint64_t)rem + 1 + (uint64_t)n > max_packet)
        return TERN_ETOOBIG;
    *type_flags = buf[0];
    *remaining = rem;
    *header_len = 1 + (uint32_t)n;
    return 0;
}

/* Fixed-header flags (table 2.2 of 3.1.1, 2.1.3 of 5.0) [MQTT-2.2.2-1] [MQTT-2.2.2-2]: invalid
 * flags are malformed. PUBLISH: QoS 3 [MQTT-3.3.1-4] and DUP on QoS 0 [MQTT-3.3.1-2]. MQTT 3.1
 * sent PUBREL/SUBSCRIBE/UNSUBSCRIBE as QoS 1 with DUP set on retries, so its DUP bit is let
 * through there. AUTH exists only in v5 (a reserved type before). */
static int check_fixed(uint8_t type, uint8_t flags, uint8_t version)
{
    switch (type) {
    case MQTT_PUBLISH:
        if (((flags >> 1) & 3) == 3)
            return TERN_EMALFORMED;
        if ((flags & 0x8) && !(flags & 0x6))
            return TERN_EMALFORMED;
        return 0;
    case MQTT_PUBREL:
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: /* 0b0010 [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1] */
        if (version == MQTT_V31)
            flags &= 0x7;
        return flags == 0x2 ? 0 : TERN_EMALFORMED;
    case MQTT_AUTH:
        if (version != MQTT_V5)
            return TERN_EMALFORMED;
        return flags == 0 ? 0 : TERN_EMALFORMED;
    default: /* [MQTT-3.14.1-1] for DISCONNECT, and every other type */
        return flags == 0 ? 0 : TERN_EMALFORMED;
    }
}

/* A UTF-8 string field [MQTT-1.5.3-1] [MQTT-1.5.3-2]: malformed when truncated or invalid. */
static int rd_utf8(struct rd *r, struct mqtt_str *s)
{
    if (rd_bin(r, s) || !utf8_valid_mqtt(s->p, s->len))
        return TERN_EMALFORMED;
    return 0;
}

/* A packet identifier, non-zero [MQTT-2.3.1-1] (v5 [MQTT-2.2.1-3]); a zero id is TERN_EPROTO
 * in every packet that carries one, since no acknowledgement can match it. */
static int rd_packet_id(struct rd *r, uint16_t *id)
{
    if (rd_u16(r, id))
        return TERN_EMALFORMED;
    return *id ? 0 : TERN_EPROTO;
}

static int done(const struct rd *r)
{
    return rd_left(r) ? TERN_EMALFORMED : 0; /* trailing bytes */
}

static bool name_is(const struct mqtt_str *s, const char *lit, uint32_t n)
{
    return s->len == n && memcmp(s->p, lit, n) == 0;
}

/* CONNECT (3.1.2, 3.1.3). The packet's own level selects the grammar. */
static int decode_connect(struct rd *r, struct mqtt_connect *c)
{
    int rc;
    if (rd_bin(r, &c->protocol_name) || rd_u8(r, &c->level))
        return TERN_EMALFORMED;
    bool mqtt = name_is(&c->protocol_name, "MQTT", 4);
    bool mqisdp = name_is(&c->protocol_name, "MQIsdp", 6);
    if (!mqtt && !mqisdp)
        return TERN_EPROTO; /* [MQTT-3.1.2-1] */
    if ((mqisdp && c->level != MQTT_V31) || (mqtt && c->level != MQTT_V311 && c->level != MQTT_V5))
        return 0; /* only name and level: the session answers 0x01 / 0x84 [MQTT-3.1.2-2] */
    uint8_t v = c->level;
    if (rd_u8(r, &c->flags) || rd_u16(r, &c->keep_alive))
        return TERN_EMALFORMED;
    uint8_t f = c->flags;
    if (f & 0x01) /* reserved [MQTT-3.1.2-3] */
        return TERN_EMALFORMED;
    c->clean = (f & 0x02) != 0;
    c->will = (f & 0x04) != 0;
    c->will_qos = (f >> 3) & 3;
    c->will_retain = (f & 0x20) != 0;
    c->has_password = (f & 0x40) != 0;
    c->has_username = (f & 0x80) != 0;
    if (c->will_qos == 3) /* [MQTT-3.1.2-14] (v5: 3.1.2.6 "Malformed Packet") */
        return TERN_EMALFORMED;
    if (!c->will && (c->will_qos || c->will_retain))           /* [MQTT-3.1.2-11] [MQTT-3.1.2-13] */
        return TERN_EMALFORMED;                                /* [MQTT-3.1.2-15] */
    if (v == MQTT_V311 && c->has_password && !c->has_username) /* [MQTT-3.1.2-22] */
        return TERN_EMALFORMED;
    if (v == MQTT_V5) {
        rc = codec_props_decode(r, codec_props_allowed(MQTT_CONNECT), false, &c->props);
        if (rc)
            return rc;
    }
    if (rd_utf8(r, &c->client_id)) /* [MQTT-3.1.3-4] */
        return TERN_EMALFORMED;
    if (c->will) { /* [MQTT-3.1.2-9]: will fields present */
        if (v == MQTT_V5) {
            rc = codec_props_decode(r, MQTT_PROPS_WILL, false, &c->will_props);
            if (rc)
                return rc;
        }
        if (rd_utf8(r, &c->will_topic) || rd_bin(r, &c->will_payload))
            return TERN_EMALFORMED;
    }
    if (c->has_username && rd_utf8(r, &c->username)) /* [MQTT-3.1.2-19] [MQTT-3.1.3-11] */
        return TERN_EMALFORMED;
    if (c->has_password && rd_bin(r, &c->password)) /* [MQTT-3.1.2-21] */
        return TERN_EMALFORMED;
    return done(r); /* fields not announced by the flags must be absent [MQTT-3.1.2-18/20] */
}

/* CONNACK (3.2). v5 without a property length (remaining 2) is accepted: a v3 server refusing
 * a v5 client answers that way, and the client must still see the return code. */
static int decode_connack(struct rd *r, uint8_t v, struct mqtt_connack *c)
{
    uint8_t flags;
    if (rd_u8(r, &flags) || rd_u8(r, &c->rc))
        return TERN_EMALFORMED;
    if (v != MQTT_V31 && (flags & 0xFE)) /* [MQTT-3.2.2-1] (v5) / 3.2.2.1 (3.1.1) */
        return TERN_EMALFORMED;
    c->session_present = (flags & 1) != 0;
    if (v != MQTT_V31 && c->session_present && c->rc) /* [MQTT-3.2.2-4] (3.1.1) */
        return TERN_EPROTO;                           /* [MQTT-3.2.2-6] (v5) */
    if (v == MQTT_V5 && rd_left(r)) {
        int rc = codec_props_decode(r, codec_props_allowed(MQTT_CONNACK), false, &c->props);
        if (rc)
            return rc;
    }
    return done(r);
}

/* PUBLISH (3.3). Flags were checked by check_fixed(). */
static int decode_publish(struct rd *r, uint8_t v, uint8_t flags, struct mqtt_publish *p)
{
    p->dup = (flags & 0x8) != 0;
    p->qos = (flags >> 1) & 3;
    p->retain = (flags & 1) != 0;
    if (rd_utf8(r, &p->topic)) /* [MQTT-3.3.2-1] */
        return TERN_EMALFORMED;
    if (p->qos) { /* QoS 0 has no packet identifier [MQTT-2.3.1-5] */
        int rc = rd_packet_id(r, &p->packet_id);
        if (rc)
            return rc;
    }
    if (v == MQTT_V5) {
        int rc = codec_props_decode(r, codec_props_allowed(MQTT_PUBLISH), true, &p->props);
        if (rc)
            return rc;
    }
    p->payload.p = r->p + r->off;
    p->payload.len = rd_left(r);
    r->off = r->len;
    return 0;
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP (3.4-3.7). v5: reason code omitted when remaining is 2
 * (0x00), property length omitted when remaining is 3 (3.4.2.1). */
static int decode_ack(struct rd *r, uint8_t v, uint8_t type, struct mqtt_ack *a)
{
    int rc = rd_packet_id(r, &a->packet_id);
    if (rc)
        return rc;
    if (v == MQTT_V5 && rd_left(r)) {
        (void)rd_u8(r, &a->rc);
        if (rd_left(r)) {
            rc = codec_props_decode(r, codec_props_allowed(type), false, &a->props);
            if (rc)
                return rc;
        }
    }
    return done(r);
}

/* Validates one SUBSCRIBE entry's options byte (3.8.3.1). */
static int check_sub_options(uint8_t o, uint8_t v)
{
    if (v != MQTT_V5) {
        /* reserved upper 6 bits, QoS not 0/1/2: malformed [MQTT-3.8.3-4] (3.1.1) */
        return (o & 0xFC) || (o & 3) == 3 ? TERN_EMALFORMED : 0;
    }
    if (o & 0xC0) /* reserved bits 6-7 [MQTT-3.8.3-5] (v5) */
        return TERN_EMALFORMED;
    if ((o & 3) == 3) /* v5 3.8.3.1: "It is a Protocol Error if the Maximum QoS field has 3" */
        return TERN_EPROTO;
    if (((o >> 4) & 3) == 3) /* v5 3.8.3.1: Retain Handling 3 is a Protocol Error */
        return TERN_EPROTO;
    return 0;
}

/* SUBSCRIBE (3.8) and UNSUBSCRIBE (3.10): validates and counts the entries. */
static int decode_subscribe(struct rd *r, uint8_t v, uint8_t type, struct mqtt_subscribe *s)
{
    int rc = rd_packet_id(r, &s->packet_id);
    if (rc)
        return rc;
    if (v == MQTT_V5) {
        rc = codec_props_decode(r, codec_props_allowed(type), false, &s->props);
        if (rc)
            return rc;
    }
    s->entries = r->p + r->off;
    s->entries_len = rd_left(r);
    while (rd_left(r)) {
        struct mqtt_str filter;
        /* [MQTT-3.8.3-1] [MQTT-3.10.3-1] */
        if (rd_utf8(r, &filter))
            return TERN_EMALFORMED;
        if (type == MQTT_SUBSCRIBE) {
            uint8_t o;
            if (rd_u8(r, &o))
                return TERN_EMALFORMED;
            rc = check_sub_options(o, v);
            if (rc)
                return rc;
        }
        s->count++;
    }
    /* at least one filter [MQTT-3.8.3-3] [MQTT-3.10.3-2] (v5 [MQTT-3.8.3-2] [MQTT-3.10.3-2]) */
    return s->count ? 0 : TERN_EPROTO;
}

/* SUBACK (3.9) and UNSUBACK (3.11): the reason codes are the rest of the packet. v3 UNSUBACK
 * is the packet identifier alone. */
static int decode_suback(struct rd *r, uint8_t v, uint8_t type, struct mqtt_suback *s)
{
    int rc = rd_packet_id(r, &s->packet_id);
    if (rc)
        return rc;
    if (v == MQTT_V5) {
        rc = codec_props_decode(r, codec_props_allowed(type), false, &s->props);
        if (rc)
            return rc;
    } else if (type == MQTT_UNSUBACK) {
        return done(r);
    }
    s->rcs = r->p + r->off;
    s->count = rd_left(r);
    r->off = r->len;
    if (!s->count) /* one code per filter, and a SUBSCRIBE has at least one */
        return TERN_EPROTO;
    if (v != MQTT_V5) {
        for (uint32_t i = 0; i < s->count; i++) /* [MQTT-3.9.3-2] (3.1.1) */
            if (s->rcs[i] > 2 && s->rcs[i] != 0x80)
                return TERN_EPROTO;
    }
    return 0;
}

/* DISCONNECT and AUTH (3.14, 3.15). v3 DISCONNECT has no body. v5: remaining 0 means reason
 * 0x00 and no properties, remaining 1 means no property length (3.14.2.2.1, 3.15.2.2.1). */
static int decode_reason(struct rd *r, uint8_t v, uint8_t type, struct mqtt_reason *m)
{
    if (v != MQTT_V5)
        return done(r);
    if (!rd_left(r))
        return 0;
    (void)rd_u8(r, &m->rc);
    if (rd_left(r)) {
        int rc = codec_props_decode(r, codec_props_allowed(type), false, &m->props);
        if (rc)
            return rc;
    }
    return done(r);
}

static int decode_body(struct rd *r, uint8_t version, struct mqtt_packet *out)
{
    uint8_t type = out->type;
    switch (type) {
    case MQTT_CONNECT: return decode_connect(r, &out->u.connect);
    case MQTT_CONNACK: return decode_connack(r, version, &out->u.connack);
    case MQTT_PUBLISH: return decode_publish(r, version, out->flags, &out->u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: return decode_ack(r, version, type, &out->u.ack);
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: return decode_subscribe(r, version, type, &out->u.subscribe);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK: return decode_suback(r, version, type, &out->u.suback);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP: return done(r); /* no variable header or payload (3.12, 3.13) */
    case MQTT_DISCONNECT:
    case MQTT_AUTH: return decode_reason(r, version, type, &out->u.reason);
    default: return TERN_EMALFORMED;
    }
}

int codec_decode(const uint8_t *buf, size_t len, uint8_t version, uint32_t max_packet,
                 struct mqtt_packet *out, size_t *consumed)
{
    uint8_t tf;
    uint32_t rem, hl;
    int rc = codec_peek_header(buf, len, max_packet, &tf, &rem, &hl);
    if (rc)
        return rc;
    uint8_t type = tf >> 4, flags = tf & 0x0F;
    if (type != MQTT_CONNECT && version != MQTT_V31 && version != MQTT_V311 && version != MQTT_V5)
        return TERN_EINVAL;
    rc = check_fixed(type, flags, version);
    if (rc)
        return rc;
    if (len - hl < rem)
        return TERN_EAGAIN;
    memset(out, 0, sizeof *out);
    out->type = type;
    out->flags = flags;
    out->remaining = rem;
    struct rd r = {.p = buf + hl, .len = rem, .off = 0};
    rc = decode_body(&r, version, out);
    if (rc)
        return rc;
    *consumed = (size_t)hl + rem;
    return 0;
}

int codec_subscribe_next(const struct mqtt_subscribe *s, bool unsubscribe, uint32_t *off,
                         struct mqtt_sub_entry *e)
{
    if (!s->entries || *off >= s->entries_len)
        return 0;
    struct rd r = {.p = s->entries, .len = s->entries_len, .off = *off};
    memset(e, 0, sizeof *e);
    /* validated by decode; the checks keep a misuse from reading out of bounds */
    if (rd_bin(&r, &e->filter))
        return 0;
    if (!unsubscribe) {
        uint8_t o;
        if (rd_u8(&r, &o))
            return 0;
        e->qos = o & 3;
        e->no_local = (o & 0x04) != 0;
        e->retain_as_published = (o & 0x08) != 0;
        e->retain_handling = (o >> 4) & 3;
    }
    *off = r.off;
    return 1;
}
