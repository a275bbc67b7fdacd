/* test_session.c - the session QoS state machine without sockets: output is decoded back from
 * the outq with the codec and checked packet by packet. */
#include <string.h>

#include "codec/codec.h"
#include "session/session.h"
#include "unit.h"

static struct mem m;

/* Decodes every packet pending in q (small bytes and referenced payloads, in order) into out[]. */
static int drain(struct outq *q, uint8_t version, struct mqtt_packet *out, int max, uint8_t *store,
                 size_t storecap)
{
    struct iovec iov[64];
    int n = outq_peek(q, iov, 64);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        memcpy(store + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    CHECK(len <= storecap);
    outq_advance(q, len);
    int k = 0;
    size_t off = 0;
    while (off < len && k < max) {
        size_t used;
        int rc = codec_decode(store + off, len - off, version, 0, &out[k], &used);
        CHECK_EQ(rc, 0);
        if (rc)
            break;
        off += used;
        k++;
    }
    return k;
}

static struct msg *mk(const char *topic, const char *payload, uint8_t qos)
{
    return msg_new(&m, NULL, (const uint8_t *)topic, (uint16_t)strlen(topic), NULL, 0,
                   (const uint8_t *)payload, (uint32_t)strlen(payload), qos, false);
}

static void test_qos1_window_and_queue(void)
{
    mem_init(&m);
    struct session *s = sess_new(&m, 1, (const uint8_t *)"c1", 2, 0);
    s->version = MQTT_V311;
    s->lim.max_inflight = 2;
    s->lim.max_queued = 2;
    struct outq q;
    outq_init(&q, &m, 1 << 20, msg_unref_void);
    struct msg *msgs[5];
    for (int i = 0; i < 5; i++) {
        char p[8] = {'m', (char)('0' + i), 0};
        msgs[i] = mk("t", p, 1);
    }
    CHECK_EQ(sess_deliver(s, &q, msgs[0], 1, false, 0, 0), SESS_SENT);
    CHECK_EQ(sess_deliver(s, &q, msgs[1], 1, false, 0, 0), SESS_SENT);
    CHECK_EQ(sess_deliver(s, &q, msgs[2], 1, false, 0, 0), SESS_SENT); /* queued behind window */
    CHECK_EQ(sess_deliver(s, &q, msgs[3], 1, false, 0, 0), SESS_SENT);
    CHECK_EQ(sess_deliver(s, &q, msgs[4], 1, false, 0, 0), SESS_DROPPED); /* queue full */
    CHECK_EQ(s->dropped, 1u);
    struct mqtt_packet pk[8];
    uint8_t store[4096];
    int n = drain(&q, MQTT_V311, pk, 8, store, sizeof store);
    CHECK_EQ(n, 2); /* only the window goes out */
    CHECK_EQ(pk[0].type, MQTT_PUBLISH);
    CHECK_EQ(pk[0].u.publish.qos, 1);
    uint16_t pid0 = pk[0].u.publish.packet_id, pid1 = pk[1].u.publish.packet_id;
    CHECK(pid0 != 0 && pid1 != 0 && pid0 != pid1); /* [MQTT-2.3.1-1] [MQTT-2.3.1-2] */
    CHECK_EQ(sess_on_puback(s, &q, pid0, 0), 0);
    n = drain(&q, MQTT_V311, pk, 8, store, sizeof store);
    CHECK_EQ(n, 1);
    CHECK(pk[0].u.publish.payload.len == 2 && memcmp(pk[0].u.publish.payload.p, "m2", 2) == 0);
    CHECK_EQ(sess_on_puback(s, &q, 999, 0), TERN_ENOTFOUND);
    /* reconnect: unacknowledged ones are resent with DUP and the same id [MQTT-4.4.0-1] */
    CHECK_EQ(sess_resume(s, &q, 0), 0);
    n = drain(&q, MQTT_V311, pk, 8, store, sizeof store);
    CHECK_EQ(n, 2);
    CHECK(pk[0].u.publish.dup && pk[0].u.publish.packet_id == pid1);
    for (int i = 0; i < 5; i++)
        msg_unref(msgs[i]);
    outq_free(&q);
    sess_free(s);
    CHECK_EQ(mem_total(&m), 0);
}

static void test_qos2_outgoing_flow(void)
{
    mem_init(&m);
    struct session *s = sess_new(&m, 1, (const uint8_t *)"c2", 2, 0);
    s->version = MQTT_V311;
    struct outq q;
    outq_init(&q, &m, 1 << 20, msg_unref_void);
    struct msg *x = mk("a/b", "hello", 2);
    CHECK_EQ(sess_deliver(s, &q, x, 2, true, 0, 0), SESS_SENT);
    struct mqtt_packet pk[4];
    uint8_t store[1024];
    CHECK_EQ(drain(&q, MQTT_V311, pk, 4, store, sizeof store), 1);
    uint16_t pid = pk[0].u.publish.packet_id;
    CHECK(pk[0].u.publish.retain);
    CHECK_EQ(sess_on_pubrec(s, &q, pid, 0, 0), 0);
    CHECK_EQ(drain(&q, MQTT_V311, pk, 4, store, sizeof store), 1);
    CHECK_EQ(pk[0].type, MQTT_PUBREL);
    CHECK_EQ(pk[0].u.ack.packet_id, pid);
    /* resume after PUBREC: PUBREL is resent, not the PUBLISH */
    CHECK_EQ(sess_resume(s, &q, 0), 0);
    CHECK_EQ(drain(&q, MQTT_V311, pk, 4, store, sizeof store), 1);
    CHECK_EQ(pk[0].type, MQTT_PUBREL);
    CHECK_EQ(sess_on_pubcomp(s, &q, pid, 0), 0);
    CHECK_EQ(s->in_count, 0u);
    msg_unref(x);
    outq_free(&q);
    sess_free(s);
    CHECK_EQ(mem_total(&m), 0);
}

static void test_offline_queue_rules(void)
{
    mem_init(&m);
    struct session *s = sess_new(&m, 1, (const uint8_t *)"c3", 2, 0);
    s->version = MQTT_V311;
    s->lim.max_queued = 10;
    struct msg *q0 = mk("t", "zero", 0), *q1 = mk("t", "one", 1);
    CHECK_EQ(sess_deliver(s, NULL, q0, 0, false, 0, 0), SESS_SKIPPED); /* QoS 0 not queued */
    CHECK_EQ(sess_deliver(s, NULL, q1, 1, false, 0, 0), SESS_QUEUED);
    s->lim.queue_qos0 = true;
    CHECK_EQ(sess_deliver(s, NULL, q0, 0, false, 0, 0), SESS_QUEUED);
    CHECK_EQ(s->q_count, 2u);
    s->lim.max_queued_bytes = 1; /* byte bound */
    CHECK_EQ(sess_deliver(s, NULL, q1, 1, false, 0, 0), SESS_DROPPED);
    msg_unref(q0);
    msg_unref(q1);
    sess_free(s);
    CHECK_EQ(mem_total(&m), 0);
}

static void test_qos2_inbound_dedup(void)
{
    mem_init(&m);
    struct session *s = sess_new(&m, 1, (const uint8_t *)"c4", 2, 0);
    CHECK_EQ(sess_qos2_in_begin(s, 7, 10), 0);
    CHECK_EQ(sess_qos2_in_begin(s, 7, 10), 1); /* duplicate before PUBREL [MQTT-4.3.3-2] */
    CHECK(sess_qos2_in_end(s, 7));
    CHECK(!sess_qos2_in_end(s, 7));
    CHECK_EQ(sess_qos2_in_begin(s, 7, 10), 0); /* a new message may reuse the id */
    sess_free(s);
    CHECK_EQ(mem_total(&m), 0);
}

static void test_pid_wraps_and_skips_inflight(void)
{
    mem_init(&m);
    struct session *s = sess_new(&m, 1, (const uint8_t *)"c5", 2, 0);
    s->version = MQTT_V311;
    s->lim.max_inflight = 3;
    struct outq q;
    outq_init(&q, &m, 1 << 20, msg_unref_void);
    s->next_pid = 65535;
    struct msg *x = mk("t", "p", 1);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(sess_deliver(s, &q, x, 1, false, 0, 0), SESS_SENT);
    struct mqtt_packet pk[4];
    uint8_t store[1024];
    CHECK_EQ(drain(&q, MQTT_V311, pk, 4, store, sizeof store), 3);
    CHECK_EQ(pk[0].u.publish.packet_id, 65535);
    CHECK_EQ(pk[1].u.publish.packet_id, 1); /* 0 is never used */
    CHECK_EQ(pk[2].u.publish.packet_id, 2);
    msg_unref(x);
    outq_free(&q);
    sess_free(s);
    CHECK_EQ(mem_total(&m), 0);
}

static void test_large_payload_by_reference(void)
{
    mem_init(&m);
    struct session *s = sess_new(&m, 1, (const uint8_t *)"c6", 2, 0);
    s->version = MQTT_V311;
    struct outq q;
    outq_init(&q, &m, 1 << 20, msg_unref_void);
    static char big[10000];
    memset(big, 'x', sizeof big - 1);
    struct msg *x = mk("big", big, 0);
    CHECK_EQ(sess_deliver(s, &q, x, 0, false, 0, 0), SESS_SENT);
    CHECK_EQ(atomic_load(&x->refs), 2u); /* the outq holds a reference, no copy */
    static uint8_t store[20000];
    struct mqtt_packet pk[2];
    CHECK_EQ(drain(&q, MQTT_V311, pk, 2, store, sizeof store), 1);
    CHECK_EQ(pk[0].u.publish.payload.len, sizeof big - 1);
    CHECK_EQ(atomic_load(&x->refs), 1u);
    msg_unref(x);
    outq_free(&q);
    sess_free(s);
    CHECK_EQ(mem_total(&m), 0);
}

static void test_encode_once_per_version(void)
{
    mem_init(&m);
    struct session *a = sess_new(&m, 1, (const uint8_t *)"a", 1, 0);
    struct session *b = sess_new(&m, 2, (const uint8_t *)"b", 1, 0);
    struct session *c = sess_new(&m, 3, (const uint8_t *)"c", 1, 0);
    a->version = b->version = MQTT_V311;
    c->version = MQTT_V5;
    struct outq qa, qb, qc;
    outq_init(&qa, &m, 1 << 20, msg_unref_void);
    outq_init(&qb, &m, 1 << 20, msg_unref_void);
    outq_init(&qc, &m, 1 << 20, msg_unref_void);
    struct msg *x = mk("t/x", "payload", 0);
    CHECK_EQ(sess_deliver(a, &qa, x, 0, false, 0, 0), SESS_SENT);
    uint8_t *img = atomic_load(&x->wire[0]);
    CHECK(img != NULL); /* built by the first v3 delivery */
    CHECK_EQ(sess_deliver(b, &qb, x, 0, false, 0, 0), SESS_SENT);
    CHECK(atomic_load(&x->wire[0]) == img); /* reused, not rebuilt */
    CHECK(atomic_load(&x->wire[2]) == NULL);
    CHECK_EQ(sess_deliver(c, &qc, x, 0, false, 0, 0), SESS_SENT);
    CHECK(atomic_load(&x->wire[2]) != NULL); /* one image per protocol version */
    struct mqtt_packet pk[2];
    uint8_t sa[256], sb[256], sc[256];
    CHECK_EQ(drain(&qa, MQTT_V311, pk, 2, sa, sizeof sa), 1);
    CHECK_EQ(drain(&qb, MQTT_V311, pk, 2, sb, sizeof sb), 1);
    CHECK(memcmp(sa, sb, 16) == 0);
    CHECK_EQ(drain(&qc, MQTT_V5, pk, 2, sc, sizeof sc), 1);
    CHECK(pk[0].u.publish.payload.len == 7 && memcmp(pk[0].u.publish.payload.p, "payload", 7) == 0);
    /* a v5 client with subscription identifiers gets its own head */
    CHECK_EQ(sess_sub_add(c, (const uint8_t *)"t/#", 3, 0, 42), 0);
    CHECK_EQ(sess_deliver(c, &qc, x, 0, false, 0, 0), SESS_SENT);
    CHECK_EQ(drain(&qc, MQTT_V5, pk, 2, sc, sizeof sc), 1);
    CHECK_EQ(pk[0].u.publish.props.sub_id, 42u);
    msg_unref(x);
    outq_free(&qa);
    outq_free(&qb);
    outq_free(&qc);
    sess_free(a);
    sess_free(b);
    sess_free(c);
    CHECK_EQ(mem_total(&m), 0);
}

void unit_main(void)
{
    UNIT_RUN(test_encode_once_per_version);
    UNIT_RUN(test_qos1_window_and_queue);
    UNIT_RUN(test_qos2_outgoing_flow);
    UNIT_RUN(test_offline_queue_rules);
    UNIT_RUN(test_qos2_inbound_dedup);
    UNIT_RUN(test_pid_wraps_and_skips_inflight);
    UNIT_RUN(test_large_payload_by_reference);
}
