/* fuzz_codec.c - libFuzzer target for the sans-IO codec.
 *
 * The input is a byte stream of packets. It is decoded at each protocol version (3, 4, 5) and
 * with several max_packet limits, packet after packet like a connection would. For each
 * packet that decodes: the result codes are the documented ones, the size limit holds, a
 * prefix one byte short is "need more", every property block and SUBSCRIBE entry list is
 * walked, and the packet is re-encoded (size must match codec_encoded_size) and decoded again,
 * which must succeed and give an equal packet. The PUBLISH head encoder must agree with the
 * full encoder. Seeds: tests/fuzz/corpus/codec (tests/fuzz/make_corpus.py). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/test_codec_util.h"
#include "codec/codec.h"
#include "common/alloc.h"
#include "common/buf.h"

#define ASSERT(c)                                                                                  \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk_props(const struct mqtt_props *p)
{
    uint32_t off = 0, users = 0, subs = 0;
    struct mqtt_prop pr;
    while (codec_props_next(p->raw, p->raw_len, &off, &pr) == 1) {
        users += pr.id == MQTT_PROP_USER_PROPERTY;
        subs += pr.id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER;
    }
    ASSERT(off == p->raw_len && users == p->user_count && subs == p->sub_id_count);
}

static void walk(const struct mqtt_packet *p)
{
    switch (p->type) {
    case MQTT_CONNECT:
        walk_props(&p->u.connect.props);
        walk_props(&p->u.connect.will_props);
        break;
    case MQTT_CONNACK: walk_props(&p->u.connack.props); break;
    case MQTT_PUBLISH: walk_props(&p->u.publish.props); break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: {
        uint32_t off = 0, n = 0;
        struct mqtt_sub_entry e;
        while (codec_subscribe_next(&p->u.subscribe, p->type == MQTT_UNSUBSCRIBE, &off, &e) == 1) {
            ASSERT(e.qos <= 2 && e.retain_handling <= 2);
            n++;
        }
        ASSERT(n == p->u.subscribe.count && n > 0 && off == p->u.subscribe.entries_len);
        walk_props(&p->u.subscribe.props);
        break;
    }
    case MQTT_SUBACK:
    case MQTT_UNSUBACK: walk_props(&p->u.suback.props); break;
    case MQTT_DISCONNECT:
    case MQTT_AUTH: walk_props(&p->u.reason.props); break;
    default: walk_props(&p->u.ack.props); break;
    }
}

static void reencode(const struct mqtt_packet *orig, uint8_t version, struct reenc *st)
{
    struct mqtt_packet p = *orig;
    if (!reenc_packet(&p, st, &version))
        return;
    struct mem m;
    mem_init(&m);
    struct buf b;
    buf_init(&b, &m, MEM_MISC, (size_t)MQTT_MAX_REMAINING + 5);
    ASSERT(codec_encode(&p, version, &b) == 0);
    ASSERT(codec_encoded_size(&p, version) == b.len);
    struct mqtt_packet q;
    size_t used = 0;
    ASSERT(codec_decode(b.data, b.len, version, 0, &q, &used) == 0);
    ASSERT(used == b.len);
    ASSERT(packet_eq(orig, &q));
    if (p.type == MQTT_PUBLISH) {
        const struct mqtt_publish *pub = &p.u.publish;
        size_t cap = 64 + pub->topic.len + (version == MQTT_V5 ? codec_props_size(&pub->props) : 0);
        uint8_t *head = malloc(cap);
        size_t hl = codec_encode_publish_head(head, cap, pub, pub->payload.len, version);
        ASSERT(hl > 0 && hl + pub->payload.len == b.len && memcmp(head, b.data, hl) == 0);
        free(head);
    }
    buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint32_t maxes[] = {0, 16, 300};
    struct reenc *st = malloc(sizeof *st);
    for (uint8_t v = MQTT_V31; v <= MQTT_V5; v++) {
        for (size_t mi = 0; mi < sizeof maxes / sizeof maxes[0]; mi++) {
            size_t off = 0;
            while (off < size) {
                struct mqtt_packet p;
                size_t used = 0;
                int rc = codec_decode(data + off, size - off, v, maxes[mi], &p, &used);
                ASSERT(rc == 0 || rc == TERN_EAGAIN || rc == TERN_EMALFORMED ||
                       rc == TERN_EPROTO || rc == TERN_ETOOBIG);
                if (rc)
                    break;
                ASSERT(used >= 2 && used <= size - off);
                ASSERT(!maxes[mi] || used <= maxes[mi]);
                ASSERT(used == 1 + (p.remaining < 128 ? 1 : p.remaining < 16384 ? 2
                                        : p.remaining < 2097152 ? 3 : 4) + (size_t)p.remaining);
                struct mqtt_packet q;
                size_t u2;
                ASSERT(codec_decode(data + off, used - 1, v, maxes[mi], &q, &u2) == TERN_EAGAIN);
                walk(&p);
                if (mi == 0)
                    reencode(&p, v, st);
                off += used;
            }
        }
    }
    free(st);
    return 0;
}
