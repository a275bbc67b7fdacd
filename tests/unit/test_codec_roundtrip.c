/* test_codec_roundtrip.c - encoder tests: decode(encode(x)) == x for every packet type in each
 * protocol version with every property, codec_encoded_size() == bytes appended, exact bytes of
 * the short forms, codec_encode_publish_head() + payload == codec_encode() of the same PUBLISH,
 * encoder refusals, varints, fixed-header peeking and names. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/codec.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "test_codec_util.h"
#include "unit.h"

#define S(lit) ((struct mqtt_str){(const uint8_t *)(lit), (uint32_t)(sizeof(lit) - 1)})

static const struct mqtt_user_prop users[] = {
    {S("key"), S("value")}, {S("key"), S("value2")}, {S(""), S("")}, {S("\xc3\xa9"), S("x")}};
static const uint32_t sub_ids[] = {1, 127, 128, 16384, 268435455};

/* Every single-valued property allowed in packet `type` (0 = will properties), with values. */
static void fill_props(struct mqtt_props *p, uint8_t type)
{
    memset(p, 0, sizeof *p);
    p->payload_format = 1;
    p->request_problem_info = 0;
    p->request_response_info = 1;
    p->maximum_qos = 1;
    p->retain_available = 0;
    p->wildcard_sub_available = 1;
    p->sub_id_available = 0;
    p->shared_sub_available = 1;
    p->receive_maximum = 65535;
    p->topic_alias_maximum = 7;
    p->topic_alias = 3;
    p->server_keep_alive = 120;
    p->message_expiry = 0xFFFFFFFFu;
    p->session_expiry = 86400;
    p->will_delay = 9;
    p->maximum_packet_size = 268435460u;
    p->content_type = S("text/plain; charset=utf-8");
    p->response_topic = S("reply/\xe4\xb8\xad");
    p->correlation_data = S("\x00\x01\x02\xff");
    p->assigned_client_id = S("auto-0001");
    p->auth_method = S("SCRAM-SHA-256");
    p->auth_data = S("\x00secret\x00");
    p->response_info = S("resp/");
    p->server_reference = S("other.example:1883");
    p->reason_string = S("because");
    uint64_t allowed = type ? 0 : MQTT_PROPS_WILL;
    /* the allowed sets of MQTT 5.0 table 2.2.2.2, restated here independently of the codec */
    switch (type) {
    case MQTT_CONNECT: allowed = (1ull << 0x11) | (1ull << 0x15) | (1ull << 0x16) |
                                 (1ull << 0x17) | (1ull << 0x19) | (1ull << 0x21) |
                                 (1ull << 0x22) | (1ull << 0x27);
        break;
    case MQTT_CONNACK: allowed = (1ull << 0x11) | (1ull << 0x12) | (1ull << 0x13) |
                                 (1ull << 0x15) | (1ull << 0x16) | (1ull << 0x1A) |
                                 (1ull << 0x1C) | (1ull << 0x1F) | (1ull << 0x21) |
                                 (1ull << 0x22) | (1ull << 0x24) | (1ull << 0x25) |
                                 (1ull << 0x27) | (1ull << 0x28) | (1ull << 0x29) | (1ull << 0x2A);
        break;
    case MQTT_PUBLISH: allowed = (1ull << 0x01) | (1ull << 0x02) | (1ull << 0x03) |
                                 (1ull << 0x08) | (1ull << 0x09) | (1ull << 0x23);
        break;
    case MQTT_PUBACK: case MQTT_PUBREC: case MQTT_PUBREL: case MQTT_PUBCOMP:
    case MQTT_SUBACK: case MQTT_UNSUBACK: allowed = 1ull << 0x1F; break;
    case MQTT_DISCONNECT: allowed = (1ull << 0x11) | (1ull << 0x1C) | (1ull << 0x1F); break;
    case MQTT_AUTH: allowed = (1ull << 0x15) | (1ull << 0x16) | (1ull << 0x1F); break;
    default: break;
    }
    p->has = allowed & ~MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY);
    if (type != MQTT_PINGREQ) {
        p->user = users;
        p->n_user = 4;
    }
    if (type == MQTT_PUBLISH) {
        p->sub_ids = sub_ids;
        p->n_sub_ids = 5;
    } else if (type == MQTT_SUBSCRIBE) {
        p->sub_ids = &sub_ids[3];
        p->n_sub_ids = 1;
    }
}

/* The decoded block carries exactly what the encode-side block asked for. */
static bool props_match(const struct mqtt_props *in, const struct mqtt_props *d)
{
    uint64_t want = in->has & ~(MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY) |
                                MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER));
    if (in->n_sub_ids)
        want |= MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
    if (d->has != want || d->user_count != in->n_user || d->sub_id_count != in->n_sub_ids)
        return false;
    if (d->sub_id != (in->n_sub_ids ? in->sub_ids[0] : 0))
        return false;
#define NUM(f, id) ((want & MQTT_PROP_BIT(id)) ? d->f == in->f : d->f == 0)
#define STR(f, id) ((want & MQTT_PROP_BIT(id)) ? str_eq(&d->f, &in->f) : d->f.len == 0)
    bool ok = NUM(payload_format, 0x01) && NUM(message_expiry, 0x02) &&
              STR(content_type, 0x03) && STR(response_topic, 0x08) &&
              STR(correlation_data, 0x09) && NUM(session_expiry, 0x11) &&
              STR(assigned_client_id, 0x12) && NUM(server_keep_alive, 0x13) &&
              STR(auth_method, 0x15) && STR(auth_data, 0x16) &&
              NUM(request_problem_info, 0x17) && NUM(will_delay, 0x18) &&
              NUM(request_response_info, 0x19) && STR(response_info, 0x1A) &&
              STR(server_reference, 0x1C) && STR(reason_string, 0x1F) &&
              NUM(receive_maximum, 0x21) && NUM(topic_alias_maximum, 0x22) &&
              NUM(topic_alias, 0x23) && NUM(maximum_qos, 0x24) && NUM(retain_available, 0x25) &&
              NUM(maximum_packet_size, 0x27) && NUM(wildcard_sub_available, 0x28) &&
              NUM(sub_id_available, 0x29) && NUM(shared_sub_available, 0x2A);
#undef NUM
#undef STR
    if (!ok)
        return false;
    uint32_t off = 0, nu = 0, ns = 0;
    struct mqtt_prop pr;
    while (codec_props_next(d->raw, d->raw_len, &off, &pr) == 1) {
        if (pr.id == MQTT_PROP_USER_PROPERTY) {
            if (nu >= in->n_user || !str_eq(&pr.str, &in->user[nu].key) ||
                !str_eq(&pr.str2, &in->user[nu].value))
                return false;
            nu++;
        } else if (pr.id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER) {
            if (ns >= in->n_sub_ids || pr.num != in->sub_ids[ns])
                return false;
            ns++;
        }
    }
    return off == d->raw_len && nu == in->n_user && ns == in->n_sub_ids;
}

struct enc {
    struct mem m;
    struct buf b;
};

/* Encodes pkt at version into e->b (reset first), checks codec_encoded_size, then decodes it
 * into *out. Returns the decode result (or the encode error). */
static int enc_dec(struct enc *e, const struct mqtt_packet *pkt, uint8_t version,
                   struct mqtt_packet *out)
{
    e->b.len = 0;
    int rc = codec_encode(pkt, version, &e->b);
    if (rc)
        return rc;
    CHECK_EQ(codec_encoded_size(pkt, version), e->b.len);
    size_t used = 0;
    rc = codec_decode(e->b.data, e->b.len, version, 0, out, &used);
    if (rc == 0)
        CHECK_EQ(used, e->b.len);
    return rc;
}

static void enc_init(struct enc *e)
{
    mem_init(&e->m);
    buf_init(&e->b, &e->m, MEM_MISC, 64u << 20);
}

static void enc_free(struct enc *e)
{
    buf_free(&e->b);
    CHECK_EQ(mem_total(&e->m), 0);
}

static bool bytes_are(const struct buf *b, const char *hex_bytes, size_t n)
{
    return b->len == n && memcmp(b->data, hex_bytes, n) == 0;
}

static void test_roundtrip_connect(void)
{
    struct enc e;
    enc_init(&e);
    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++) {
        for (int variant = 0; variant < 3; variant++) {
            struct mqtt_packet p, d;
            memset(&p, 0, sizeof p);
            p.type = MQTT_CONNECT;
            struct mqtt_connect *c = &p.u.connect;
            c->clean = variant != 1;
            c->keep_alive = (uint16_t)(variant * 1000 + 7);
            c->client_id = variant == 2 ? S("") : S("client-\xe2\x82\xac");
            if (variant != 2) {
                c->will = true;
                c->will_qos = (uint8_t)(variant + 1);
                c->will_retain = variant == 0;
                c->will_topic = S("will/topic");
                c->will_payload = S("\x00gone\xff");
                c->has_username = true;
                c->username = S("user");
                c->has_password = true;
                c->password = S("\x00\x01pw");
            }
            if (v == MQTT_V5) {
                fill_props(&c->props, MQTT_CONNECT);
                if (c->will)
                    fill_props(&c->will_props, 0);
            }
            int rc = enc_dec(&e, &p, v, &d);
            CHECK_EQ(rc, 0);
            if (rc)
                continue;
            const struct mqtt_connect *x = &d.u.connect;
            CHECK(str_eq(&x->protocol_name, v == MQTT_V31 ? &S("MQIsdp") : &S("MQTT")));
            CHECK_EQ(x->level, v);
            CHECK(x->clean == c->clean && x->will == c->will && x->will_qos == c->will_qos);
            CHECK(x->will_retain == c->will_retain && x->keep_alive == c->keep_alive);
            CHECK(x->has_username == c->has_username && x->has_password == c->has_password);
            CHECK(str_eq(&x->client_id, &c->client_id) && str_eq(&x->will_topic, &c->will_topic));
            CHECK(str_eq(&x->will_payload, &c->will_payload));
            CHECK(str_eq(&x->username, &c->username) && str_eq(&x->password, &c->password));
            CHECK(props_match(&c->props, &x->props));
            CHECK(props_match(&c->will_props, &x->will_props));
        }
    }
    enc_free(&e);
}

static void test_roundtrip_connack(void)
{
    struct enc e;
    enc_init(&e);
    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++) {
        struct mqtt_packet p, d;
        memset(&p, 0, sizeof p);
        p.type = MQTT_CONNACK;
        p.u.connack.session_present = true;
        if (v == MQTT_V5)
            fill_props(&p.u.connack.props, MQTT_CONNACK);
        CHECK_EQ(enc_dec(&e, &p, v, &d), 0);
        CHECK(d.u.connack.session_present && d.u.connack.rc == 0);
        CHECK(props_match(&p.u.connack.props, &d.u.connack.props));
        p.u.connack.session_present = false;
        p.u.connack.rc = v == MQTT_V5 ? MQTT_RC_BANNED : MQTT3_CONNACK_NOT_AUTHORIZED;
        memset(&p.u.connack.props, 0, sizeof p.u.connack.props);
        CHECK_EQ(enc_dec(&e, &p, v, &d), 0);
        if (v == MQTT_V5)
            CHECK(bytes_are(&e.b, "\x20\x03\x00\x8a\x00", 5));
        else
            CHECK(bytes_are(&e.b, "\x20\x02\x00\x05", 4));
    }
    enc_free(&e);
}

static void test_roundtrip_publish(void)
{
    struct enc e;
    enc_init(&e);
    static const uint32_t sizes[] = {0, 1, 127, 16384, 2097152};
    uint8_t *payload = malloc(2097152);
    for (uint32_t i = 0; i < 2097152; i++)
        payload[i] = (uint8_t)(i * 31 + 7);
    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++)
        for (uint8_t qos = 0; qos <= 2; qos++)
            for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                struct mqtt_packet p, d;
                memset(&p, 0, sizeof p);
                p.type = MQTT_PUBLISH;
                struct mqtt_publish *pub = &p.u.publish;
                pub->qos = qos;
                pub->dup = qos > 0 && (si & 1);
                pub->retain = (si & 2) != 0;
                pub->topic = S("sensors/\xf0\x9f\x98\x80/temp");
                pub->packet_id = qos ? (uint16_t)(0xFFF0 + si) : 0;
                pub->payload = (struct mqtt_str){payload, sizes[si]};
                if (v == MQTT_V5 && si != 1)
                    fill_props(&pub->props, MQTT_PUBLISH);
                CHECK_EQ(enc_dec(&e, &p, v, &d), 0);
                const struct mqtt_publish *x = &d.u.publish;
                CHECK(x->qos == qos && x->dup == pub->dup && x->retain == pub->retain);
                CHECK(x->packet_id == pub->packet_id && str_eq(&x->topic, &pub->topic));
                CHECK(str_eq(&x->payload, &pub->payload));
                CHECK(props_match(&pub->props, &x->props));
            }
    free(payload);
    enc_free(&e);
}

static void test_roundtrip_acks(void)
{
    struct enc e;
    enc_init(&e);
    static const uint8_t types[] = {MQTT_PUBACK, MQTT_PUBREC, MQTT_PUBREL, MQTT_PUBCOMP};
    for (size_t t = 0; t < 4; t++)
        for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++)
            for (int variant = 0; variant < 3; variant++) {
                struct mqtt_packet p, d;
                memset(&p, 0, sizeof p);
                p.type = types[t];
                p.u.ack.packet_id = 0x0102;
                if (variant >= 1)
                    p.u.ack.rc = v == MQTT_V5 ? MQTT_RC_PACKET_IDENTIFIER_NOT_FOUND : 0;
                if (variant == 2 && v == MQTT_V5)
                    fill_props(&p.u.ack.props, types[t]);
                CHECK_EQ(enc_dec(&e, &p, v, &d), 0);
                CHECK(d.u.ack.packet_id == 0x0102 && d.u.ack.rc == p.u.ack.rc);
                CHECK(props_match(&p.u.ack.props, &d.u.ack.props));
                uint8_t b0 = (uint8_t)(types[t] << 4 | (types[t] == MQTT_PUBREL ? 2 : 0));
                CHECK_EQ(e.b.data[0], b0);
                if (variant == 0 || v != MQTT_V5) /* short form: id only */
                    CHECK(e.b.len == 4 && e.b.data[1] == 2 && e.b.data[2] == 1 &&
                          e.b.data[3] == 2);
                else if (variant == 1) /* reason code, no property length */
                    CHECK(e.b.len == 5 && e.b.data[1] == 3 && e.b.data[4] == 0x92);
            }
    enc_free(&e);
}

static void test_roundtrip_subscribe(void)
{
    struct enc e;
    enc_init(&e);
    struct mqtt_sub_entry list[3] = {
        {.filter = S("a/+/c"), .qos = 0},
        {.filter = S("#"), .qos = 1, .no_local = true, .retain_handling = 2},
        {.filter = S("$share/g/x"), .qos = 2, .retain_as_published = true, .retain_handling = 1},
    };
    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++)
        for (int unsub = 0; unsub <= 1; unsub++) {
            struct mqtt_packet p, d;
            memset(&p, 0, sizeof p);
            p.type = unsub ? MQTT_UNSUBSCRIBE : MQTT_SUBSCRIBE;
            p.u.subscribe.packet_id = 77;
            p.u.subscribe.list = list;
            p.u.subscribe.count = 3;
            if (v == MQTT_V5)
                fill_props(&p.u.subscribe.props, p.type);
            CHECK_EQ(enc_dec(&e, &p, v, &d), 0);
            CHECK_EQ(e.b.data[0], (uint8_t)(p.type << 4 | 2));
            CHECK(d.u.subscribe.packet_id == 77 && d.u.subscribe.count == 3);
            CHECK(props_match(&p.u.subscribe.props, &d.u.subscribe.props));
            uint32_t off = 0, i = 0;
            struct mqtt_sub_entry x;
            while (codec_subscribe_next(&d.u.subscribe, unsub, &off, &x) == 1 && i < 3) {
                const struct mqtt_sub_entry *w = &list[i++];
                CHECK(str_eq(&x.filter, &w->filter));
                if (unsub)
                    continue;
                CHECK_EQ(x.qos, w->qos);
                bool v5 = v == MQTT_V5; /* v3 has only the QoS */
                CHECK(x.no_local == (v5 && w->no_local));
                CHECK(x.retain_as_published == (v5 && w->retain_as_published));
                CHECK(x.retain_handling == (v5 ? w->retain_handling : 0));
            }
            CHECK_EQ(i, 3u);
            /* re-encoding a decoded packet with list == NULL copies the entries verbatim */
            struct mqtt_packet again = d, d2;
            struct reenc *st = calloc(1, sizeof *st);
            uint8_t ver = v;
            CHECK(reenc_packet(&again, st, &ver));
            again.u.subscribe.list = NULL;
            struct enc e2;
            enc_init(&e2);
            CHECK_EQ(enc_dec(&e2, &again, v, &d2), 0);
            CHECK(e2.b.len == e.b.len && memcmp(e2.b.data, e.b.data, e.b.len) == 0);
            CHECK(packet_eq(&d, &d2));
            enc_free(&e2);
            free(st);
        }
    enc_free(&e);
}

static void test_roundtrip_subacks(void)
{
    struct enc e;
    enc_init(&e);
    static const uint8_t rcs[] = {0x00, 0x01, 0x02, 0x80};
    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++)
        for (int unsub = 0; unsub <= 1; unsub++) {
            struct mqtt_packet p, d;
            memset(&p, 0, sizeof p);
            p.type = unsub ? MQTT_UNSUBACK : MQTT_SUBACK;
            p.u.suback.packet_id = 9;
            p.u.suback.rcs = rcs;
            p.u.suback.count = 4;
            if (v == MQTT_V5)
                fill_props(&p.u.suback.props, p.type);
            CHECK_EQ(enc_dec(&e, &p, v, &d), 0);
            CHECK_EQ(d.u.suback.packet_id, 9);
            if (unsub && v != MQTT_V5) { /* v3 UNSUBACK: no reason codes */
                CHECK(bytes_are(&e.b, "\xb0\x02\x00\x09", 4));
                CHECK_EQ(d.u.suback.count, 0u);
                continue;
            }
            CHECK(d.u.suback.count == 4 && memcmp(d.u.suback.rcs, rcs, 4) == 0);
            CHECK(props_match(&p.u.suback.props, &d.u.suback.props));
        }
    enc_free(&e);
}

static void test_roundtrip_control(void)
{
    struct enc e;
    enc_init(&e);
    struct mqtt_packet p, d;
    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++) {
        memset(&p, 0, sizeof p);
        p.type = MQTT_PINGREQ;
        CHECK_EQ(enc_dec(&e, &p, v, &d), 0);
        CHECK(bytes_are(&e.b, "\xc0\x00", 2) && d.type == MQTT_PINGREQ);
        p.type = MQTT_PINGRESP;
        CHECK_EQ(enc_dec(&e, &p, v, &d), 0);
        CHECK(bytes_are(&e.b, "\xd0\x00", 2) && d.type == MQTT_PINGRESP);
        p.type = MQTT_DISCONNECT;
        CHECK_EQ(enc_dec(&e, &p, v, &d), 0);
        CHECK(bytes_are(&e.b, "\xe0\x00", 2) && d.u.reason.rc == 0);
    }
    for (int t = 0; t < 2; t++) {
        memset(&p, 0, sizeof p);
        p.type = t ? MQTT_AUTH : MQTT_DISCONNECT;
        p.u.reason.rc = t ? MQTT_RC_CONTINUE_AUTHENTICATION : MQTT_RC_DISCONNECT_WITH_WILL;
        CHECK_EQ(enc_dec(&e, &p, MQTT_V5, &d), 0);
        CHECK(e.b.len == 3 && e.b.data[1] == 1 && e.b.data[2] == p.u.reason.rc);
        fill_props(&p.u.reason.props, p.type);
        CHECK_EQ(enc_dec(&e, &p, MQTT_V5, &d), 0);
        CHECK(d.type == p.type && d.u.reason.rc == p.u.reason.rc);
        CHECK(props_match(&p.u.reason.props, &d.u.reason.props));
        p.u.reason.rc = 0; /* success with properties keeps the reason code byte */
        CHECK_EQ(enc_dec(&e, &p, MQTT_V5, &d), 0);
        CHECK(e.b.data[e.b.data[1] < 128 ? 2 : 3] == 0);
        CHECK(props_match(&p.u.reason.props, &d.u.reason.props));
    }
    enc_free(&e);
}

/* Extra (already-encoded) properties are appended verbatim after the others. */
static void test_props_extra(void)
{
    struct enc e;
    enc_init(&e);
    static const uint8_t extra[] = {0x03, 0x00, 0x01, 'j', 0x26, 0x00, 0x01, 'a', 0x00, 0x00};
    struct mqtt_packet p, d;
    memset(&p, 0, sizeof p);
    p.type = MQTT_PUBLISH;
    p.u.publish.topic = S("t");
    p.u.publish.props.has = MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
    p.u.publish.props.message_expiry = 5;
    p.u.publish.props.sub_ids = &sub_ids[1];
    p.u.publish.props.n_sub_ids = 1;
    p.u.publish.props.extra = extra;
    p.u.publish.props.extra_len = sizeof extra;
    CHECK_EQ(codec_props_size(&p.u.publish.props), 5u + 2u + sizeof extra);
    CHECK_EQ(enc_dec(&e, &p, MQTT_V5, &d), 0);
    static const uint8_t want[] = {0x30, 0x15, 0x00, 0x01, 't', 0x11, 0x02, 0, 0, 0, 5,
                                   0x0B, 0x7F, 0x03, 0x00, 0x01, 'j', 0x26, 0x00, 0x01,
                                   'a',  0x00, 0x00};
    CHECK(e.b.len == sizeof want && memcmp(e.b.data, want, sizeof want) == 0);
    const struct mqtt_props *x = &d.u.publish.props;
    CHECK(x->message_expiry == 5 && str_eq(&x->content_type, &S("j")));
    CHECK(x->user_count == 1 && x->sub_id == 127 && x->sub_id_count == 1);
    enc_free(&e);
}

static void test_publish_head(void)
{
    struct enc e;
    enc_init(&e);
    uint8_t *payload = malloc(70000);
    memset(payload, 0xA5, 70000);
    uint8_t head[1024];
    static const uint32_t sizes[] = {0, 5, 121, 122, 200, 16383, 70000};
    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++)
        for (uint8_t qos = 0; qos <= 2; qos++)
            for (int withprops = 0; withprops <= 1; withprops++)
                for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                    struct mqtt_publish pub;
                    memset(&pub, 0, sizeof pub);
                    pub.qos = qos;
                    pub.dup = qos == 2;
                    pub.retain = qos == 1;
                    pub.topic = S("a/b/c");
                    pub.packet_id = qos ? 513 : 0;
                    if (withprops)
                        fill_props(&pub.props, MQTT_PUBLISH);
                    struct mqtt_packet p;
                    memset(&p, 0, sizeof p);
                    p.type = MQTT_PUBLISH;
                    p.u.publish = pub;
                    p.u.publish.payload = (struct mqtt_str){payload, sizes[si]};
                    e.b.len = 0;
                    CHECK_EQ(codec_encode(&p, v, &e.b), 0);
                    size_t hl = codec_encode_publish_head(head, sizeof head, &pub, sizes[si], v);
                    CHECK(hl > 0 && hl + sizes[si] == e.b.len);
                    CHECK(memcmp(head, e.b.data, hl) == 0);
                    CHECK(memcmp(payload, e.b.data + hl, sizes[si]) == 0);
                    /* exactly the head fits; one byte less does not */
                    CHECK_EQ(codec_encode_publish_head(head, hl, &pub, sizes[si], v), hl);
                    CHECK_EQ(codec_encode_publish_head(head, hl - 1, &pub, sizes[si], v), 0u);
                    /* 64 bytes + topic + properties always suffice (codec.h) */
                    size_t bound = 64 + pub.topic.len +
                                   (v == MQTT_V5 ? codec_props_size(&pub.props) : 0);
                    CHECK(hl <= bound);
                }
    struct mqtt_publish pub;
    memset(&pub, 0, sizeof pub);
    pub.topic = S("t");
    CHECK_EQ(codec_encode_publish_head(head, sizeof head, &pub, MQTT_MAX_REMAINING - 3, 4), 8u);
    CHECK_EQ(codec_encode_publish_head(head, sizeof head, &pub, MQTT_MAX_REMAINING - 2, 4), 0u);
    pub.qos = 3;
    CHECK_EQ(codec_encode_publish_head(head, sizeof head, &pub, 1, 4), 0u);
    free(payload);
    enc_free(&e);
}

static void test_encode_refusals(void)
{
    struct enc e;
    enc_init(&e);
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_PUBLISH;
    p.u.publish.topic = S("t");
    p.u.publish.qos = 3;
    CHECK_EQ(codec_encode(&p, 4, &e.b), TERN_EINVAL);
    CHECK_EQ(codec_encoded_size(&p, 4), 0u);
    p.u.publish.qos = 1; /* packet id 0 [MQTT-2.3.1-1] */
    CHECK_EQ(codec_encode(&p, 4, &e.b), TERN_EINVAL);
    p.u.publish.packet_id = 1;
    CHECK_EQ(codec_encode(&p, 7, &e.b), TERN_EINVAL); /* unknown version */
    p.u.publish.topic.len = 65536;
    CHECK_EQ(codec_encode(&p, 4, &e.b), TERN_EINVAL);
    p.u.publish.topic = S("t");
    uint32_t zero = 0;
    p.u.publish.props.sub_ids = &zero;
    p.u.publish.props.n_sub_ids = 1;
    CHECK_EQ(codec_encode(&p, 5, &e.b), TERN_EINVAL);
    CHECK_EQ(codec_encode(&p, 4, &e.b), 0); /* properties are not written before v5 */
    CHECK(bytes_are(&e.b, "\x32\x05\x00\x01t\x00\x01", 7));
    e.b.len = 0;

    memset(&p, 0, sizeof p);
    p.type = MQTT_SUBSCRIBE;
    p.u.subscribe.packet_id = 1;
    CHECK_EQ(codec_encode(&p, 4, &e.b), TERN_EINVAL); /* no filters [MQTT-3.8.3-3] */
    struct mqtt_sub_entry bad = {.filter = S("a"), .qos = 3};
    p.u.subscribe.list = &bad;
    p.u.subscribe.count = 1;
    CHECK_EQ(codec_encode(&p, 4, &e.b), TERN_EINVAL);
    bad.qos = 0;
    bad.retain_handling = 3;
    CHECK_EQ(codec_encode(&p, 5, &e.b), TERN_EINVAL);

    memset(&p, 0, sizeof p);
    p.type = MQTT_AUTH;
    CHECK_EQ(codec_encode(&p, 4, &e.b), TERN_EINVAL); /* AUTH is v5 only */
    p.type = MQTT_CONNECT;
    p.u.connect.has_password = true; /* [MQTT-3.1.2-22] */
    CHECK_EQ(codec_encode(&p, 4, &e.b), TERN_EINVAL);
    CHECK_EQ(codec_encode(&p, 5, &e.b), 0);
    e.b.len = 0;
    p.u.connect.has_password = false;
    p.u.connect.will_qos = 1; /* without the will flag [MQTT-3.1.2-13] */
    CHECK_EQ(codec_encode(&p, 4, &e.b), TERN_EINVAL);
    p.type = 0;
    CHECK_EQ(codec_encode(&p, 4, &e.b), TERN_EINVAL);
    memset(&p, 0, sizeof p);
    p.type = MQTT_PUBACK;
    CHECK_EQ(codec_encode(&p, 4, &e.b), TERN_EINVAL); /* packet id 0 */
    CHECK_EQ(e.b.len, 0u);

    /* a full buffer: TERN_ETOOBIG and nothing appended */
    p.u.ack.packet_id = 1;
    struct buf small;
    buf_init(&small, &e.m, MEM_MISC, 3);
    CHECK_EQ(codec_encode(&p, 4, &small), TERN_ETOOBIG);
    CHECK_EQ(small.len, 0u);
    /* the session's pattern: a buf view over exactly codec_encoded_size() bytes */
    uint8_t space[4];
    struct buf view = {.data = space, .len = 0, .cap = 4, .max = 4, .mem = &e.m,
                       .cat = MEM_MISC};
    CHECK_EQ(codec_encoded_size(&p, 4), 4u);
    CHECK_EQ(codec_encode(&p, 4, &view), 0);
    CHECK(view.len == 4 && memcmp(space, "\x40\x02\x00\x01", 4) == 0);
    enc_free(&e);
}

static void test_varint(void)
{
    static const struct {
        uint32_t v;
        uint8_t n;
        uint8_t b[4];
    } cases[] = {
        {0, 1, {0x00}},           {127, 1, {0x7F}},
        {128, 2, {0x80, 0x01}},   {16383, 2, {0xFF, 0x7F}},
        {16384, 3, {0x80, 0x80, 0x01}}, {2097151, 3, {0xFF, 0xFF, 0x7F}},
        {2097152, 4, {0x80, 0x80, 0x80, 0x01}}, {268435455, 4, {0xFF, 0xFF, 0xFF, 0x7F}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t out[5] = {0};
        CHECK_EQ(codec_varint_encode(out, cases[i].v), cases[i].n);
        CHECK(memcmp(out, cases[i].b, cases[i].n) == 0);
        /* and back through the fixed header */
        uint8_t hdr[5] = {0x30};
        memcpy(hdr + 1, out, cases[i].n);
        uint8_t tf;
        uint32_t rem, hl;
        CHECK_EQ(codec_peek_header(hdr, 1u + cases[i].n, 0, &tf, &rem, &hl), 0);
        CHECK(tf == 0x30 && rem == cases[i].v && hl == 1u + cases[i].n);
    }
    uint8_t out[5];
    CHECK_EQ(codec_varint_encode(out, 268435456u), 0u);
}

static void test_peek_header(void)
{
    uint8_t tf;
    uint32_t rem, hl;
    CHECK_EQ(codec_peek_header((const uint8_t *)"", 0, 0, &tf, &rem, &hl), TERN_EAGAIN);
    CHECK_EQ(codec_peek_header((const uint8_t *)"\x30", 1, 0, &tf, &rem, &hl), TERN_EAGAIN);
    CHECK_EQ(codec_peek_header((const uint8_t *)"\x30\x80", 2, 0, &tf, &rem, &hl), TERN_EAGAIN);
    CHECK_EQ(codec_peek_header((const uint8_t *)"\x30\x80\x80\x80", 4, 0, &tf, &rem, &hl),
             TERN_EAGAIN);
    CHECK_EQ(codec_peek_header((const uint8_t *)"\x30\x80\x80\x80\x80", 5, 0, &tf, &rem, &hl),
             TERN_EMALFORMED);
    CHECK_EQ(codec_peek_header((const uint8_t *)"\x00", 1, 0, &tf, &rem, &hl), TERN_EMALFORMED);
    /* 1 + 2 + 200 = 203 bytes: fits 203, not 202 */
    CHECK_EQ(codec_peek_header((const uint8_t *)"\x30\xc8\x01", 3, 203, &tf, &rem, &hl), 0);
    CHECK(rem == 200 && hl == 3);
    CHECK_EQ(codec_peek_header((const uint8_t *)"\x30\xc8\x01", 3, 202, &tf, &rem, &hl),
             TERN_ETOOBIG);
    /* decode agrees, and says so before the body is there */
    struct mqtt_packet p;
    size_t used;
    CHECK_EQ(codec_decode((const uint8_t *)"\x30\xc8\x01\x00", 4, 4, 202, &p, &used),
             TERN_ETOOBIG);
    CHECK_EQ(codec_decode((const uint8_t *)"\x30\xc8\x01\x00", 4, 4, 203, &p, &used), TERN_EAGAIN);
    /* a non-CONNECT packet needs a known connection version */
    CHECK_EQ(codec_decode((const uint8_t *)"\xc0\x00", 2, 9, 0, &p, &used), TERN_EINVAL);
}

static void test_names(void)
{
    CHECK(!strcmp(codec_type_name(MQTT_PUBLISH), "PUBLISH"));
    CHECK(!strcmp(codec_type_name(MQTT_AUTH), "AUTH"));
    CHECK(!strcmp(codec_type_name(0), "RESERVED"));
    CHECK(!strcmp(codec_type_name(16), "UNKNOWN"));
    CHECK(!strcmp(codec_rc_name(MQTT_RC_NOT_AUTHORIZED), "Not authorized"));
    CHECK(!strcmp(codec_rc_name(MQTT_RC_PACKET_TOO_LARGE), "Packet too large"));
    CHECK(!strcmp(codec_rc_name(0x03), "Unknown reason code"));
}

void unit_main(void)
{
    UNIT_RUN(test_roundtrip_connect);
    UNIT_RUN(test_roundtrip_connack);
    UNIT_RUN(test_roundtrip_publish);
    UNIT_RUN(test_roundtrip_acks);
    UNIT_RUN(test_roundtrip_subscribe);
    UNIT_RUN(test_roundtrip_subacks);
    UNIT_RUN(test_roundtrip_control);
    UNIT_RUN(test_props_extra);
    UNIT_RUN(test_publish_head);
    UNIT_RUN(test_encode_refusals);
    UNIT_RUN(test_varint);
    UNIT_RUN(test_peek_header);
    UNIT_RUN(test_names);
}
