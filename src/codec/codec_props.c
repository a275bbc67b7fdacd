/* codec_props.c - MQTT 5.0 properties: validation on decode, walking, size and encoding.
 *
 * One const table describes every property identifier: its value type and the packets it may
 * appear in (MQTT 5.0 section 2.2.2.2). Decode walks a block once, checking each identifier
 * against the packet's mask, rejecting duplicates of single-valued properties and out-of-range
 * values, and filling struct mqtt_props with views into the input. Repeatable properties
 * (User Property, Subscription Identifier in PUBLISH) stay in `raw` and are walked later with
 * codec_props_next(). Nothing here allocates or keeps state.
 *
 * Error mapping (see codec.h): unknown identifier, identifier not valid for the packet type,
 * truncated value, bad UTF-8 -> TERN_EMALFORMED; duplicate single-valued property or a value
 * out of its allowed range -> TERN_EPROTO. */
#include "codec/codec_internal.h"
#include "common/utf8.h"

enum prop_type {
    PT_NONE = 0, /* unknown identifier */
    PT_BYTE,
    PT_U16,
    PT_U32,
    PT_VARINT,
    PT_STR,  /* UTF-8 string */
    PT_BIN,  /* binary data */
    PT_PAIR, /* UTF-8 string pair */
};

#define B(id) MQTT_PROP_BIT(MQTT_PROP_##id)
#define T(t)  (UINT64_C(1) << (t))
/* Bit 0 of a packet mask stands for the will properties (packet type 0 is unused). */
#define WILL_ONLY T(0)

struct prop_desc {
    uint8_t type;     /* enum prop_type */
    uint16_t packets; /* T(enum mqtt_type) of the packets where it may appear; T(0) = will */
};

/* Section 2.2.2.2 of MQTT 5.0, table "Properties". */
static const struct prop_desc props_table[64] = {
    [MQTT_PROP_PAYLOAD_FORMAT_INDICATOR] = {PT_BYTE, T(MQTT_PUBLISH) | WILL_ONLY},
    [MQTT_PROP_MESSAGE_EXPIRY_INTERVAL] = {PT_U32, T(MQTT_PUBLISH) | WILL_ONLY},
    [MQTT_PROP_CONTENT_TYPE] = {PT_STR, T(MQTT_PUBLISH) | WILL_ONLY},
    [MQTT_PROP_RESPONSE_TOPIC] = {PT_STR, T(MQTT_PUBLISH) | WILL_ONLY},
    [MQTT_PROP_CORRELATION_DATA] = {PT_BIN, T(MQTT_PUBLISH) | WILL_ONLY},
    [MQTT_PROP_SUBSCRIPTION_IDENTIFIER] = {PT_VARINT, T(MQTT_PUBLISH) | T(MQTT_SUBSCRIBE)},
    [MQTT_PROP_SESSION_EXPIRY_INTERVAL] = {PT_U32,
                                           T(MQTT_CONNECT) | T(MQTT_CONNACK) | T(MQTT_DISCONNECT)},
    [MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER] = {PT_STR, T(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_KEEP_ALIVE] = {PT_U16, T(MQTT_CONNACK)},
    [MQTT_PROP_AUTHENTICATION_METHOD] = {PT_STR, T(MQTT_CONNECT) | T(MQTT_CONNACK) | T(MQTT_AUTH)},
    [MQTT_PROP_AUTHENTICATION_DATA] = {PT_BIN, T(MQTT_CONNECT) | T(MQTT_CONNACK) | T(MQTT_AUTH)},
    [MQTT_PROP_REQUEST_PROBLEM_INFORMATION] = {PT_BYTE, T(MQTT_CONNECT)},
    [MQTT_PROP_WILL_DELAY_INTERVAL] = {PT_U32, WILL_ONLY},
    [MQTT_PROP_REQUEST_RESPONSE_INFORMATION] = {PT_BYTE, T(MQTT_CONNECT)},
    [MQTT_PROP_RESPONSE_INFORMATION] = {PT_STR, T(MQTT_CONNACK)},
    [MQTT_PROP_SERVER_REFERENCE] = {PT_STR, T(MQTT_CONNACK) | T(MQTT_DISCONNECT)},
    [MQTT_PROP_REASON_STRING] = {PT_STR, T(MQTT_CONNACK) | T(MQTT_PUBACK) | T(MQTT_PUBREC) |
                                             T(MQTT_PUBREL) | T(MQTT_PUBCOMP) | T(MQTT_SUBACK) |
                                             T(MQTT_UNSUBACK) | T(MQTT_DISCONNECT) | T(MQTT_AUTH)},
    [MQTT_PROP_RECEIVE_MAXIMUM] = {PT_U16, T(MQTT_CONNECT) | T(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS_MAXIMUM] = {PT_U16, T(MQTT_CONNECT) | T(MQTT_CONNACK)},
    [MQTT_PROP_TOPIC_ALIAS] = {PT_U16, T(MQTT_PUBLISH)},
    [MQTT_PROP_MAXIMUM_QOS] = {PT_BYTE, T(MQTT_CONNACK)},
    [MQTT_PROP_RETAIN_AVAILABLE] = {PT_BYTE, T(MQTT_CONNACK)},
    [MQTT_PROP_USER_PROPERTY] = {PT_PAIR, 0xFFFE | WILL_ONLY}, /* every packet but PINGs */
    [MQTT_PROP_MAXIMUM_PACKET_SIZE] = {PT_U32, T(MQTT_CONNECT) | T(MQTT_CONNACK)},
    [MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE] = {PT_BYTE, T(MQTT_CONNACK)},
    [MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE] = {PT_BYTE, T(MQTT_CONNACK)},
    [MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE] = {PT_BYTE, T(MQTT_CONNACK)},
};

uint64_t codec_props_allowed(uint8_t type)
{
    if (type > MQTT_AUTH || type == MQTT_PINGREQ || type == MQTT_PINGRESP)
        return 0;
    uint64_t mask = 0;
    for (uint8_t id = 1; id < 64; id++)
        if (props_table[id].packets & T(type))
            mask |= MQTT_PROP_BIT(id);
    return mask;
}

/* Reads one value of type t into *p. Strings are validated [MQTT-1.5.4-1] [MQTT-1.5.4-2]
 * [MQTT-1.5.7-1]. Returns 0 or TERN_EMALFORMED. */
static int read_value(struct rd *r, uint8_t t, struct mqtt_prop *p)
{
    uint8_t b;
    uint16_t h;
    int n;
    switch (t) {
    case PT_BYTE:
        if (rd_u8(r, &b))
            return TERN_EMALFORMED;
        p->num = b;
        return 0;
    case PT_U16:
        if (rd_u16(r, &h))
            return TERN_EMALFORMED;
        p->num = h;
        return 0;
    case PT_U32: return rd_u32(r, &p->num);
    case PT_VARINT:
        n = codec_varint_decode(r->p + r->off, rd_left(r), &p->num);
        if (n <= 0)
            return TERN_EMALFORMED;
        r->off += (uint32_t)n;
        return 0;
    case PT_BIN: return rd_bin(r, &p->str);
    case PT_STR:
        if (rd_bin(r, &p->str) || !utf8_valid_mqtt(p->str.p, p->str.len))
            return TERN_EMALFORMED;
        return 0;
    case PT_PAIR:
        if (rd_bin(r, &p->str) || !utf8_valid_mqtt(p->str.p, p->str.len))
            return TERN_EMALFORMED;
        if (rd_bin(r, &p->str2) || !utf8_valid_mqtt(p->str2.p, p->str2.len))
            return TERN_EMALFORMED;
        return 0;
    default: return TERN_EMALFORMED;
    }
}

/* Range rules of section 3 (value must be 0 or 1, non-zero, ...): TERN_EPROTO when violated. */
static int check_range(const struct mqtt_prop *p)
{
    switch (p->id) {
    case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR:     /* 0 or 1 (3.3.2.3.2) */
    case MQTT_PROP_REQUEST_PROBLEM_INFORMATION:  /* 0 or 1 (3.1.2.11.7) */
    case MQTT_PROP_REQUEST_RESPONSE_INFORMATION: /* 0 or 1 (3.1.2.11.6) */
    case MQTT_PROP_MAXIMUM_QOS:                  /* 0 or 1 (3.2.2.3.4) */
    case MQTT_PROP_RETAIN_AVAILABLE:             /* 0 or 1 (3.2.2.3.5) */
    case MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE:
    case MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE:
    case MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE: return p->num > 1 ? TERN_EPROTO : 0;
    case MQTT_PROP_RECEIVE_MAXIMUM:     /* "Protocol Error to include ... value 0" (3.1.2.11.3) */
    case MQTT_PROP_MAXIMUM_PACKET_SIZE: /* idem (3.1.2.11.4) */
    case MQTT_PROP_TOPIC_ALIAS: /* [MQTT-3.3.2-8] */ return p->num == 0 ? TERN_EPROTO : 0;
    case MQTT_PROP_SUBSCRIPTION_IDENTIFIER: /* 1 to 268,435,455 (3.3.2.3.8, 3.8.2.1.2) */
        return p->num == 0 || p->num > MQTT_MAX_REMAINING ? TERN_EPROTO : 0;
    default: return 0;
    }
}

/* Stores a single-valued property into its field of *out. */
static void store(struct mqtt_props *out, const struct mqtt_prop *p)
{
    switch (p->id) {
    case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR: out->payload_format = (uint8_t)p->num; break;
    case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL: out->message_expiry = p->num; break;
    case MQTT_PROP_CONTENT_TYPE: out->content_type = p->str; break;
    case MQTT_PROP_RESPONSE_TOPIC: out->response_topic = p->str; break;
    case MQTT_PROP_CORRELATION_DATA: out->correlation_data = p->str; break;
    case MQTT_PROP_SESSION_EXPIRY_INTERVAL: out->session_expiry = p->num; break;
    case MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER: out->assigned_client_id = p->str; break;
    case MQTT_PROP_SERVER_KEEP_ALIVE: out->server_keep_alive = (uint16_t)p->num; break;
    case MQTT_PROP_AUTHENTICATION_METHOD: out->auth_method = p->str; break;
    case MQTT_PROP_AUTHENTICATION_DATA: out->auth_data = p->str; break;
    case MQTT_PROP_REQUEST_PROBLEM_INFORMATION: out->request_problem_info = (uint8_t)p->num; break;
    case MQTT_PROP_WILL_DELAY_INTERVAL: out->will_delay = p->num; break;
    case MQTT_PROP_REQUEST_RESPONSE_INFORMATION:
        out->request_response_info = (uint8_t)p->num;
        break;
    case MQTT_PROP_RESPONSE_INFORMATION: out->response_info = p->str; break;
    case MQTT_PROP_SERVER_REFERENCE: out->server_reference = p->str; break;
    case MQTT_PROP_REASON_STRING: out->reason_string = p->str; break;
    case MQTT_PROP_RECEIVE_MAXIMUM: out->receive_maximum = (uint16_t)p->num; break;
    case MQTT_PROP_TOPIC_ALIAS_MAXIMUM: out->topic_alias_maximum = (uint16_t)p->num; break;
    case MQTT_PROP_TOPIC_ALIAS: out->topic_alias = (uint16_t)p->num; break;
    case MQTT_PROP_MAXIMUM_QOS: out->maximum_qos = (uint8_t)p->num; break;
    case MQTT_PROP_RETAIN_AVAILABLE: out->retain_available = (uint8_t)p->num; break;
    case MQTT_PROP_MAXIMUM_PACKET_SIZE: out->maximum_packet_size = p->num; break;
    case MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE:
        out->wildcard_sub_available = (uint8_t)p->num;
        break;
    case MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE:
        out->sub_id_available = (uint8_t)p->num;
        break;
    case MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE:
        out->shared_sub_available = (uint8_t)p->num;
        break;
    default: break;
    }
}

int codec_props_decode(struct rd *r, uint64_t allowed, bool multi_sub_id, struct mqtt_props *out)
{
    memset(out, 0, sizeof *out);
    uint32_t blen;
    int n = codec_varint_decode(r->p + r->off, rd_left(r), &blen);
    if (n <= 0) /* 0: the length runs past the packet */
        return TERN_EMALFORMED;
    r->off += (uint32_t)n;
    if (blen > rd_left(r))
        return TERN_EMALFORMED;
    struct rd pr = {.p = r->p + r->off, .len = blen, .off = 0};
    out->raw = pr.p;
    out->raw_len = blen;
    r->off += blen;

    while (rd_left(&pr)) {
        struct mqtt_prop p;
        memset(&p, 0, sizeof p);
        p.id = pr.p[pr.off++];
        /* identifiers are varints but all defined ones fit one byte: >= 0x80 is unknown */
        if (p.id >= 64 || props_table[p.id].type == PT_NONE)
            return TERN_EMALFORMED;
        if (!(allowed & MQTT_PROP_BIT(p.id))) /* not valid in this packet type */
            return TERN_EMALFORMED;
        int rc = read_value(&pr, props_table[p.id].type, &p);
        if (rc)
            return rc;
        rc = check_range(&p);
        if (rc)
            return rc;
        if (p.id == MQTT_PROP_USER_PROPERTY) {
            out->user_count++; /* may repeat anywhere it is allowed (3.1.2.11.8, ...) */
            continue;
        }
        if (p.id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER) {
            /* repeats only in PUBLISH (3.3.2.3.8); once in SUBSCRIBE (3.8.2.1.2) */
            if (out->sub_id_count && !multi_sub_id)
                return TERN_EPROTO;
            if (!out->sub_id_count)
                out->sub_id = p.num;
            out->sub_id_count++;
            out->has |= MQTT_PROP_BIT(p.id);
            continue;
        }
        /* "It is a Protocol Error to include <property> more than once" (2.2.2.2, 3.x.2.x) */
        if (out->has & MQTT_PROP_BIT(p.id))
            return TERN_EPROTO;
        out->has |= MQTT_PROP_BIT(p.id);
        store(out, &p);
    }
    return 0;
}

int codec_props_next(const uint8_t *raw, uint32_t raw_len, uint32_t *off, struct mqtt_prop *out)
{
    if (!raw || *off >= raw_len)
        return 0;
    struct rd r = {.p = raw, .len = raw_len, .off = *off};
    memset(out, 0, sizeof *out);
    out->id = r.p[r.off++];
    /* the block was validated; the checks only keep a misuse from reading out of bounds */
    if (out->id >= 64 || props_table[out->id].type == PT_NONE)
        return 0;
    uint8_t t = props_table[out->id].type;
    if (t == PT_STR)
        t = PT_BIN; /* validated already: skip the UTF-8 pass */
    if (t == PT_PAIR) {
        if (rd_bin(&r, &out->str) || rd_bin(&r, &out->str2))
            return 0;
    } else if (read_value(&r, t, out)) {
        return 0;
    }
    *off = r.off;
    return 1;
}

/* ---- encoding ---- */

/* The string field of a single-valued string/binary property (NULL for other types). */
static const struct mqtt_str *str_field(const struct mqtt_props *p, uint8_t id)
{
    switch (id) {
    case MQTT_PROP_CONTENT_TYPE: return &p->content_type;
    case MQTT_PROP_RESPONSE_TOPIC: return &p->response_topic;
    case MQTT_PROP_CORRELATION_DATA: return &p->correlation_data;
    case MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER: return &p->assigned_client_id;
    case MQTT_PROP_AUTHENTICATION_METHOD: return &p->auth_method;
    case MQTT_PROP_AUTHENTICATION_DATA: return &p->auth_data;
    case MQTT_PROP_RESPONSE_INFORMATION: return &p->response_info;
    case MQTT_PROP_SERVER_REFERENCE: return &p->server_reference;
    case MQTT_PROP_REASON_STRING: return &p->reason_string;
    default: return NULL;
    }
}

/* The numeric value of a single-valued numeric property. */
static uint32_t num_field(const struct mqtt_props *p, uint8_t id)
{
    switch (id) {
    case MQTT_PROP_PAYLOAD_FORMAT_INDICATOR: return p->payload_format;
    case MQTT_PROP_MESSAGE_EXPIRY_INTERVAL: return p->message_expiry;
    case MQTT_PROP_SESSION_EXPIRY_INTERVAL: return p->session_expiry;
    case MQTT_PROP_SERVER_KEEP_ALIVE: return p->server_keep_alive;
    case MQTT_PROP_REQUEST_PROBLEM_INFORMATION: return p->request_problem_info;
    case MQTT_PROP_WILL_DELAY_INTERVAL: return p->will_delay;
    case MQTT_PROP_REQUEST_RESPONSE_INFORMATION: return p->request_response_info;
    case MQTT_PROP_RECEIVE_MAXIMUM: return p->receive_maximum;
    case MQTT_PROP_TOPIC_ALIAS_MAXIMUM: return p->topic_alias_maximum;
    case MQTT_PROP_TOPIC_ALIAS: return p->topic_alias;
    case MQTT_PROP_MAXIMUM_QOS: return p->maximum_qos;
    case MQTT_PROP_RETAIN_AVAILABLE: return p->retain_available;
    case MQTT_PROP_MAXIMUM_PACKET_SIZE: return p->maximum_packet_size;
    case MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE: return p->wildcard_sub_available;
    case MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE: return p->sub_id_available;
    case MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE: return p->shared_sub_available;
    default: return 0;
    }
}

/* True for the identifiers encoded from `has` (known, single-valued). */
static bool single_valued(uint8_t id)
{
    return id < 64 && props_table[id].type != PT_NONE && id != MQTT_PROP_USER_PROPERTY &&
           id != MQTT_PROP_SUBSCRIPTION_IDENTIFIER;
}

/* Writes (or counts) the properties themselves, without the block length. */
static void write_items(struct wr *w, const struct mqtt_props *p)
{
    uint64_t todo = p->has;
    while (todo) {
        uint8_t id = (uint8_t)__builtin_ctzll(todo);
        todo &= todo - 1;
        if (!single_valued(id))
            continue;
        wr_u8(w, id);
        switch (props_table[id].type) {
        case PT_BYTE: wr_u8(w, (uint8_t)num_field(p, id)); break;
        case PT_U16: wr_u16(w, (uint16_t)num_field(p, id)); break;
        case PT_U32: wr_u32(w, num_field(p, id)); break;
        default: wr_str(w, str_field(p, id)); break;
        }
    }
    for (uint32_t i = 0; i < p->n_user; i++) {
        wr_u8(w, MQTT_PROP_USER_PROPERTY);
        wr_str(w, &p->user[i].key);
        wr_str(w, &p->user[i].value);
    }
    for (uint32_t i = 0; i < p->n_sub_ids; i++) {
        wr_u8(w, MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
        wr_varint(w, p->sub_ids[i]);
    }
    wr_bytes(w, p->extra, p->extra_len);
}

size_t codec_props_size(const struct mqtt_props *props)
{
    struct wr w = {NULL, 0};
    write_items(&w, props);
    return w.n;
}

int codec_props_check(const struct mqtt_props *p)
{
    uint64_t todo = p->has;
    while (todo) {
        uint8_t id = (uint8_t)__builtin_ctzll(todo);
        todo &= todo - 1;
        const struct mqtt_str *s = single_valued(id) ? str_field(p, id) : NULL;
        if (s && (s->len > 65535 || (s->len && !s->p)))
            return TERN_EINVAL;
    }
    if (p->n_user && !p->user)
        return TERN_EINVAL;
    for (uint32_t i = 0; i < p->n_user; i++)
        if (p->user[i].key.len > 65535 || p->user[i].value.len > 65535)
            return TERN_EINVAL;
    if (p->n_sub_ids && !p->sub_ids)
        return TERN_EINVAL;
    for (uint32_t i = 0; i < p->n_sub_ids; i++)
        if (p->sub_ids[i] == 0 || p->sub_ids[i] > MQTT_MAX_REMAINING)
            return TERN_EINVAL;
    if (p->extra_len && !p->extra)
        return TERN_EINVAL;
    /* n_user up to 2^32 strings could overflow a 32-bit size_t; on 64-bit this is exact */
    if (codec_props_size(p) > MQTT_MAX_REMAINING)
        return TERN_EINVAL;
    return 0;
}

void codec_props_write(struct wr *w, const struct mqtt_props *props)
{
    wr_varint(w, (uint32_t)codec_props_size(props));
    write_items(w, props);
}
