/* test_codec_util.h - helpers shared by tests/unit/test_codec*.c and tests/fuzz/fuzz_codec.c:
 * semantic equality of decoded packets, and turning a decoded packet into an encodable one
 * (decode leaves user properties, subscription identifiers and SUBSCRIBE entries in raw views;
 * encode takes them as arrays). Header-only so the fuzzer needs no test harness. */
#ifndef TERN_TESTS_CODEC_UTIL_H
#define TERN_TESTS_CODEC_UTIL_H

#include <stdbool.h>
#include <string.h>

#include "codec/codec.h"

#define REENC_MAX_ITEMS 2048u

/* Arrays a decoded packet's repeatable items are copied into for re-encoding. Large: allocate
 * it on the heap. Owned by the caller; the packet prepared with it borrows it. */
struct reenc {
    struct mqtt_user_prop user[2][REENC_MAX_ITEMS];
    uint32_t sub_ids[2][REENC_MAX_ITEMS];
    struct mqtt_sub_entry entries[REENC_MAX_ITEMS];
};

static inline bool str_eq(const struct mqtt_str *a, const struct mqtt_str *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

/* Fills the encode-side fields of a decoded property block. False when it has too many items. */
static inline bool reenc_props(struct mqtt_props *p, struct mqtt_user_prop *user, uint32_t *subs)
{
    uint32_t off = 0, nu = 0, ns = 0;
    struct mqtt_prop pr;
    while (codec_props_next(p->raw, p->raw_len, &off, &pr) == 1) {
        if (pr.id == MQTT_PROP_USER_PROPERTY) {
            if (nu == REENC_MAX_ITEMS)
                return false;
            user[nu].key = pr.str;
            user[nu++].value = pr.str2;
        } else if (pr.id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER) {
            if (ns == REENC_MAX_ITEMS)
                return false;
            subs[ns++] = pr.num;
        }
    }
    p->user = user;
    p->n_user = nu;
    p->sub_ids = subs;
    p->n_sub_ids = ns;
    p->extra = NULL;
    p->extra_len = 0;
    return true;
}

/* True when a decoded CONNECT carried only protocol name and level (unsupported level). */
static inline bool connect_partial(const struct mqtt_connect *c)
{
    if (c->protocol_name.len == 6 && memcmp(c->protocol_name.p, "MQIsdp", 6) == 0)
        return c->level != MQTT_V31;
    return c->level != MQTT_V311 && c->level != MQTT_V5;
}

/* Makes decoded *p encodable in place (arrays in *st). False when it cannot be re-encoded:
 * partial CONNECT or too many items. *version becomes the level to encode with. */
static inline bool reenc_packet(struct mqtt_packet *p, struct reenc *st, uint8_t *version)
{
    switch (p->type) {
    case MQTT_CONNECT:
        if (connect_partial(&p->u.connect))
            return false;
        *version = p->u.connect.level;
        return reenc_props(&p->u.connect.props, st->user[0], st->sub_ids[0]) &&
               reenc_props(&p->u.connect.will_props, st->user[1], st->sub_ids[1]);
    case MQTT_CONNACK:
        return reenc_props(&p->u.connack.props, st->user[0], st->sub_ids[0]);
    case MQTT_PUBLISH:
        return reenc_props(&p->u.publish.props, st->user[0], st->sub_ids[0]);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return reenc_props(&p->u.ack.props, st->user[0], st->sub_ids[0]);
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: {
        struct mqtt_subscribe *s = &p->u.subscribe;
        uint32_t off = 0, n = 0;
        while (n < REENC_MAX_ITEMS &&
               codec_subscribe_next(s, p->type == MQTT_UNSUBSCRIBE, &off, &st->entries[n]) == 1)
            n++;
        if (n != s->count)
            return false;
        s->list = st->entries;
        return reenc_props(&s->props, st->user[0], st->sub_ids[0]);
    }
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return reenc_props(&p->u.suback.props, st->user[0], st->sub_ids[0]);
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        return reenc_props(&p->u.reason.props, st->user[0], st->sub_ids[0]);
    default:
        return true;
    }
}

/* The properties with identifier id of two decoded blocks, in order. */
static inline bool props_items_eq(const struct mqtt_props *a, const struct mqtt_props *b,
                                  uint8_t id)
{
    uint32_t oa = 0, ob = 0;
    struct mqtt_prop pa, pb;
    for (;;) {
        int ra, rb;
        do
            ra = codec_props_next(a->raw, a->raw_len, &oa, &pa);
        while (ra == 1 && pa.id != id);
        do
            rb = codec_props_next(b->raw, b->raw_len, &ob, &pb);
        while (rb == 1 && pb.id != id);
        if (ra != rb)
            return false;
        if (ra != 1)
            return true;
        if (pa.num != pb.num || !str_eq(&pa.str, &pb.str) || !str_eq(&pa.str2, &pb.str2))
            return false;
    }
}

/* Decoded property blocks carry the same properties (single-valued ones in any order;
 * user properties in the same order, subscription identifiers in the same order). */
static inline bool props_eq(const struct mqtt_props *a, const struct mqtt_props *b)
{
    return a->has == b->has && a->payload_format == b->payload_format &&
           a->request_problem_info == b->request_problem_info &&
           a->request_response_info == b->request_response_info &&
           a->maximum_qos == b->maximum_qos && a->retain_available == b->retain_available &&
           a->wildcard_sub_available == b->wildcard_sub_available &&
           a->sub_id_available == b->sub_id_available &&
           a->shared_sub_available == b->shared_sub_available &&
           a->receive_maximum == b->receive_maximum &&
           a->topic_alias_maximum == b->topic_alias_maximum && a->topic_alias == b->topic_alias &&
           a->server_keep_alive == b->server_keep_alive &&
           a->message_expiry == b->message_expiry && a->session_expiry == b->session_expiry &&
           a->will_delay == b->will_delay && a->maximum_packet_size == b->maximum_packet_size &&
           str_eq(&a->content_type, &b->content_type) &&
           str_eq(&a->response_topic, &b->response_topic) &&
           str_eq(&a->correlation_data, &b->correlation_data) &&
           str_eq(&a->assigned_client_id, &b->assigned_client_id) &&
           str_eq(&a->auth_method, &b->auth_method) && str_eq(&a->auth_data, &b->auth_data) &&
           str_eq(&a->response_info, &b->response_info) &&
           str_eq(&a->server_reference, &b->server_reference) &&
           str_eq(&a->reason_string, &b->reason_string) && a->user_count == b->user_count &&
           a->sub_id_count == b->sub_id_count && a->sub_id == b->sub_id &&
           props_items_eq(a, b, MQTT_PROP_USER_PROPERTY) &&
           props_items_eq(a, b, MQTT_PROP_SUBSCRIPTION_IDENTIFIER);
}

static inline bool sub_entries_eq(const struct mqtt_subscribe *a, const struct mqtt_subscribe *b,
                                  bool unsub)
{
    uint32_t oa = 0, ob = 0;
    struct mqtt_sub_entry ea, eb;
    for (;;) {
        int ra = codec_subscribe_next(a, unsub, &oa, &ea);
        int rb = codec_subscribe_next(b, unsub, &ob, &eb);
        if (ra != rb)
            return false;
        if (ra != 1)
            return true;
        if (!str_eq(&ea.filter, &eb.filter) || ea.qos != eb.qos || ea.no_local != eb.no_local ||
            ea.retain_as_published != eb.retain_as_published ||
            ea.retain_handling != eb.retain_handling)
            return false;
    }
}

/* Two decoded packets are the same packet (the fixed header's remaining length may differ). */
static inline bool packet_eq(const struct mqtt_packet *a, const struct mqtt_packet *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case MQTT_CONNECT: {
        const struct mqtt_connect *x = &a->u.connect, *y = &b->u.connect;
        return str_eq(&x->protocol_name, &y->protocol_name) && x->level == y->level &&
               x->flags == y->flags && x->clean == y->clean && x->will == y->will &&
               x->will_qos == y->will_qos && x->will_retain == y->will_retain &&
               x->has_username == y->has_username && x->has_password == y->has_password &&
               x->keep_alive == y->keep_alive && props_eq(&x->props, &y->props) &&
               str_eq(&x->client_id, &y->client_id) && props_eq(&x->will_props, &y->will_props) &&
               str_eq(&x->will_topic, &y->will_topic) &&
               str_eq(&x->will_payload, &y->will_payload) && str_eq(&x->username, &y->username) &&
               str_eq(&x->password, &y->password);
    }
    case MQTT_CONNACK:
        return a->u.connack.session_present == b->u.connack.session_present &&
               a->u.connack.rc == b->u.connack.rc &&
               props_eq(&a->u.connack.props, &b->u.connack.props);
    case MQTT_PUBLISH: {
        const struct mqtt_publish *x = &a->u.publish, *y = &b->u.publish;
        return x->dup == y->dup && x->qos == y->qos && x->retain == y->retain &&
               str_eq(&x->topic, &y->topic) && x->packet_id == y->packet_id &&
               props_eq(&x->props, &y->props) && str_eq(&x->payload, &y->payload);
    }
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP:
        return a->u.ack.packet_id == b->u.ack.packet_id && a->u.ack.rc == b->u.ack.rc &&
               props_eq(&a->u.ack.props, &b->u.ack.props);
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE:
        return a->u.subscribe.packet_id == b->u.subscribe.packet_id &&
               a->u.subscribe.count == b->u.subscribe.count &&
               props_eq(&a->u.subscribe.props, &b->u.subscribe.props) &&
               sub_entries_eq(&a->u.subscribe, &b->u.subscribe, a->type == MQTT_UNSUBSCRIBE);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK:
        return a->u.suback.packet_id == b->u.suback.packet_id &&
               a->u.suback.count == b->u.suback.count &&
               (a->u.suback.count == 0 ||
                memcmp(a->u.suback.rcs, b->u.suback.rcs, a->u.suback.count) == 0) &&
               props_eq(&a->u.suback.props, &b->u.suback.props);
    case MQTT_DISCONNECT:
    case MQTT_AUTH:
        return a->u.reason.rc == b->u.reason.rc &&
               props_eq(&a->u.reason.props, &b->u.reason.props);
    default:
        return true;
    }
}

#endif
