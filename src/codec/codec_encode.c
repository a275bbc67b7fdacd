/* codec_encode.c - encoding of MQTT 3.1 / 3.1.1 / 5.0 packets.
 *
 * Each packet layout is written once, as a function over a struct wr that either counts (p ==
 * NULL) or writes; codec_encoded_size() runs it counting and codec_encode() runs it twice
 * (count, then write into space reserved in the caller's bounded buf), so the two always agree
 * and the buf is never left half-written. The encoder refuses (TERN_EINVAL) what the decoder
 * would refuse from the packet's fields: QoS 3, zero packet ids where one is required, strings
 * over 65535 bytes, empty SUBSCRIBE, AUTH before v5, packets over MQTT_MAX_REMAINING.
 * UTF-8 validity of strings is the caller's responsibility (they come from decoded packets or
 * from the broker itself).
 *
 * codec_encode_publish_head() is the fan-out fast path: straight stores into the caller's
 * array, no buf and no second pass over the layout. */
#include "codec/codec_internal.h"

size_t codec_varint_encode(uint8_t *out, uint32_t v)
{
    if (v > MQTT_MAX_REMAINING)
        return 0;
    size_t n = 0;
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        out[n++] = v ? (uint8_t)(b | 0x80) : b;
    } while (v);
    return n;
}

static bool str_ok(const struct mqtt_str *s)
{
    return s->len <= 65535 && (s->len == 0 || s->p != NULL);
}

static bool props_ok(uint8_t v, const struct mqtt_props *p)
{
    return v != MQTT_V5 || codec_props_check(p) == 0;
}

/* v5 property block, nothing before v5. */
static void wr_props(struct wr *w, uint8_t v, const struct mqtt_props *p)
{
    if (v == MQTT_V5)
        codec_props_write(w, p);
}

static int layout_connect(struct wr *w, uint8_t v, const struct mqtt_connect *c)
{
    if (c->will_qos > 2 || (!c->will && (c->will_qos || c->will_retain)))
        return TERN_EINVAL; /* [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-14] [MQTT-3.1.2-15] */
    if (v == MQTT_V311 && c->has_password && !c->has_username) /* [MQTT-3.1.2-22] */
        return TERN_EINVAL;
    if (!str_ok(&c->client_id) || !props_ok(v, &c->props))
        return TERN_EINVAL;
    if (c->will &&
        (!str_ok(&c->will_topic) || !str_ok(&c->will_payload) || !props_ok(v, &c->will_props)))
        return TERN_EINVAL;
    if ((c->has_username && !str_ok(&c->username)) || (c->has_password && !str_ok(&c->password)))
        return TERN_EINVAL;
    static const struct mqtt_str mqisdp = {(const uint8_t *)"MQIsdp", 6};
    static const struct mqtt_str mqtt = {(const uint8_t *)"MQTT", 4};
    wr_str(w, v == MQTT_V31 ? &mqisdp : &mqtt);
    wr_u8(w, v);
    uint8_t f = (uint8_t)((c->clean ? 0x02 : 0) | (c->will ? 0x04 : 0) | (c->will_qos << 3) |
                          (c->will_retain ? 0x20 : 0) | (c->has_password ? 0x40 : 0) |
                          (c->has_username ? 0x80 : 0));
    wr_u8(w, f);
    wr_u16(w, c->keep_alive);
    wr_props(w, v, &c->props);
    wr_str(w, &c->client_id);
    if (c->will) {
        wr_props(w, v, &c->will_props);
        wr_str(w, &c->will_topic);
        wr_str(w, &c->will_payload);
    }
    if (c->has_username)
        wr_str(w, &c->username);
    if (c->has_password)
        wr_str(w, &c->password);
    return 0;
}

static int layout_connack(struct wr *w, uint8_t v, const struct mqtt_connack *c)
{
    if (!props_ok(v, &c->props))
        return TERN_EINVAL;
    wr_u8(w, c->session_present ? 1 : 0);
    wr_u8(w, c->rc);
    wr_props(w, v, &c->props); /* v5 always carries the property length */
    return 0;
}

static int layout_publish(struct wr *w, uint8_t v, const struct mqtt_publish *p)
{
    if (p->qos > 2 || (p->qos && !p->packet_id) || !str_ok(&p->topic) || !props_ok(v, &p->props) ||
        (p->payload.len && !p->payload.p))
        return TERN_EINVAL;
    wr_str(w, &p->topic);
    if (p->qos)
        wr_u16(w, p->packet_id);
    wr_props(w, v, &p->props);
    wr_bytes(w, p->payload.p, p->payload.len);
    return 0;
}

static int layout_ack(struct wr *w, uint8_t v, const struct mqtt_ack *a)
{
    if (!a->packet_id || !props_ok(v, &a->props))
        return TERN_EINVAL;
    wr_u16(w, a->packet_id);
    if (v != MQTT_V5)
        return 0;
    size_t ps = codec_props_size(&a->props);
    if (a->rc == 0 && ps == 0) /* both omitted (3.4.2.1) */
        return 0;
    wr_u8(w, a->rc);
    if (ps)
        codec_props_write(w, &a->props);
    return 0;
}

static int layout_subscribe(struct wr *w, uint8_t v, bool unsub, const struct mqtt_subscribe *s)
{
    if (!s->packet_id || !props_ok(v, &s->props))
        return TERN_EINVAL;
    if (!s->list && (!s->entries || !s->entries_len))
        return TERN_EINVAL; /* at least one filter [MQTT-3.8.3-3] [MQTT-3.10.3-2] */
    if (s->list && !s->count)
        return TERN_EINVAL;
    wr_u16(w, s->packet_id);
    wr_props(w, v, &s->props);
    if (!s->list) { /* re-encoding a decoded packet: entries verbatim */
        wr_bytes(w, s->entries, s->entries_len);
        return 0;
    }
    for (uint32_t i = 0; i < s->count; i++) {
        const struct mqtt_sub_entry *e = &s->list[i];
        if (!str_ok(&e->filter) || e->qos > 2 || e->retain_handling > 2)
            return TERN_EINVAL;
        wr_str(w, &e->filter);
        if (unsub)
            continue;
        uint8_t o = e->qos;
        if (v == MQTT_V5)
            o |= (uint8_t)((e->no_local ? 0x04 : 0) | (e->retain_as_published ? 0x08 : 0) |
                           (e->retain_handling << 4));
        wr_u8(w, o);
    }
    return 0;
}

static int layout_suback(struct wr *w, uint8_t v, bool unsub, const struct mqtt_suback *s)
{
    if (!s->packet_id || !props_ok(v, &s->props))
        return TERN_EINVAL;
    wr_u16(w, s->packet_id);
    if (unsub && v != MQTT_V5)
        return 0; /* v3 UNSUBACK: packet identifier only */
    if (!s->count || !s->rcs)
        return TERN_EINVAL;
    wr_props(w, v, &s->props);
    wr_bytes(w, s->rcs, s->count);
    return 0;
}

static int layout_reason(struct wr *w, uint8_t v, const struct mqtt_reason *m)
{
    if (v != MQTT_V5)
        return 0;
    if (!props_ok(v, &m->props))
        return TERN_EINVAL;
    size_t ps = codec_props_size(&m->props);
    if (m->rc == 0 && ps == 0) /* remaining length 0 (3.14.2.1, 3.15.2.1) */
        return 0;
    wr_u8(w, m->rc);
    if (ps)
        codec_props_write(w, &m->props);
    return 0;
}

/* Writes or counts the body (variable header + payload) of pkt. */
static int layout(struct wr *w, const struct mqtt_packet *pkt, uint8_t v)
{
    switch (pkt->type) {
    case MQTT_CONNECT: return layout_connect(w, v, &pkt->u.connect);
    case MQTT_CONNACK: return layout_connack(w, v, &pkt->u.connack);
    case MQTT_PUBLISH: return layout_publish(w, v, &pkt->u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: return layout_ack(w, v, &pkt->u.ack);
    case MQTT_SUBSCRIBE: return layout_subscribe(w, v, false, &pkt->u.subscribe);
    case MQTT_UNSUBSCRIBE: return layout_subscribe(w, v, true, &pkt->u.subscribe);
    case MQTT_SUBACK: return layout_suback(w, v, false, &pkt->u.suback);
    case MQTT_UNSUBACK: return layout_suback(w, v, true, &pkt->u.suback);
    case MQTT_PINGREQ:
    case MQTT_PINGRESP: return 0;
    case MQTT_DISCONNECT: return layout_reason(w, v, &pkt->u.reason);
    case MQTT_AUTH: return v == MQTT_V5 ? layout_reason(w, v, &pkt->u.reason) : TERN_EINVAL;
    default: return TERN_EINVAL;
    }
}

/* First byte of the fixed header: type and the flags the type requires (table 2.2). */
static uint8_t first_byte(const struct mqtt_packet *pkt)
{
    uint8_t t = (uint8_t)(pkt->type << 4);
    switch (pkt->type) {
    case MQTT_PUBLISH: {
        const struct mqtt_publish *p = &pkt->u.publish;
        /* DUP only means something for QoS > 0 [MQTT-3.3.1-2] */
        return (uint8_t)(t | (p->dup && p->qos ? 0x8 : 0) | (p->qos << 1) | (p->retain ? 1 : 0));
    }
    case MQTT_PUBREL:
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: return t | 0x2;
    default: return t;
    }
}

/* Remaining length of pkt, or TERN_EINVAL. */
static int body_size(const struct mqtt_packet *pkt, uint8_t v, uint32_t *rem)
{
    if (v != MQTT_V31 && v != MQTT_V311 && v != MQTT_V5)
        return TERN_EINVAL;
    struct wr w = {NULL, 0};
    int rc = layout(&w, pkt, v);
    if (rc)
        return rc;
    if (w.n > MQTT_MAX_REMAINING)
        return TERN_EINVAL;
    *rem = (uint32_t)w.n;
    return 0;
}

size_t codec_encoded_size(const struct mqtt_packet *pkt, uint8_t version)
{
    uint32_t rem;
    if (body_size(pkt, version, &rem))
        return 0;
    return 1 + varint_size(rem) + rem;
}

int codec_encode(const struct mqtt_packet *pkt, uint8_t version, struct buf *out)
{
    uint32_t rem;
    int rc = body_size(pkt, version, &rem);
    if (rc)
        return rc;
    size_t total = 1 + varint_size(rem) + rem;
    rc = buf_reserve(out, total);
    if (rc)
        return rc;
    struct wr w = {out->data + out->len, 0};
    wr_u8(&w, first_byte(pkt));
    wr_varint(&w, rem);
    rc = layout(&w, pkt, version);
    if (rc) /* cannot happen: the counting pass accepted the same input */
        return rc;
    out->len += w.n;
    return 0;
}

size_t codec_encode_publish_head(uint8_t *out, size_t cap, const struct mqtt_publish *p,
                                 uint32_t payload_len, uint8_t version)
{
    if (p->qos > 2 || p->topic.len > 65535)
        return 0;
    size_t props_len = 0;
    if (version == MQTT_V5) {
        if (codec_props_check(&p->props))
            return 0;
        props_len = codec_props_size(&p->props);
    }
    size_t var = 2 + (size_t)p->topic.len + (p->qos ? 2 : 0);
    if (version == MQTT_V5)
        var += varint_size((uint32_t)props_len) + props_len;
    size_t rem = var + payload_len;
    if (rem > MQTT_MAX_REMAINING)
        return 0;
    size_t head = 1 + varint_size((uint32_t)rem) + var;
    if (head > cap)
        return 0;
    uint8_t *o = out;
    *o++ = (uint8_t)((MQTT_PUBLISH << 4) | (p->dup && p->qos ? 0x8 : 0) | (p->qos << 1) |
                     (p->retain ? 1 : 0));
    o += codec_varint_encode(o, (uint32_t)rem);
    *o++ = (uint8_t)(p->topic.len >> 8);
    *o++ = (uint8_t)p->topic.len;
    if (p->topic.len)
        memcpy(o, p->topic.p, p->topic.len);
    o += p->topic.len;
    if (p->qos) {
        *o++ = (uint8_t)(p->packet_id >> 8);
        *o++ = (uint8_t)p->packet_id;
    }
    if (version == MQTT_V5) {
        struct wr w = {o, 0};
        codec_props_write(&w, &p->props);
        o += w.n;
    }
    return (size_t)(o - out);
}
