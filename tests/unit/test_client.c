/* test_client.c - the client library's protocol core without sockets: packet identifier
 * allocation, reconnect backoff, CONNECT/PUBLISH encoding, the send window, retransmission with
 * DUP after a resumed session, incoming QoS 2 de-duplication, keep-alive. A memory transport
 * (the transport vtable) stands in for TCP and time is passed to client_process directly. */
#include <string.h>

#include "../../lib/client_internal.h"
#include "unit.h"

/* ---- memory transport ---- */

struct memt {
    uint8_t out[65536]; /* what the client wrote */
    size_t out_len;
    uint8_t in[65536]; /* what the client will read */
    size_t in_len, in_off;
    bool peer_closed;
    int opens;
};

static int mt_open(struct transport *t, const char *host, uint16_t port, const char *bind)
{
    struct memt *m = t->ctx;
    m->opens++;
    m->peer_closed = false;
    t->fd = 1000;
    return 0;
}

static int mt_finish(struct transport *t)
{
    return 0;
}

static long mt_read(struct transport *t, void *p, size_t n)
{
    struct memt *m = t->ctx;
    if (m->in_off == m->in_len)
        return m->peer_closed ? TERN_ECLOSED : TERN_EAGAIN;
    size_t k = m->in_len - m->in_off < n ? m->in_len - m->in_off : n;
    memcpy(p, m->in + m->in_off, k);
    m->in_off += k;
    return (long)k;
}

static long mt_write(struct transport *t, const void *p, size_t n)
{
    struct memt *m = t->ctx;
    if (n > sizeof m->out - m->out_len)
        n = sizeof m->out - m->out_len;
    memcpy(m->out + m->out_len, p, n);
    m->out_len += n;
    return (long)n;
}

static void mt_close(struct transport *t)
{
    t->fd = -1;
}

static const struct transport_ops memt_ops = {"mem",   mt_open,  mt_finish,
                                              mt_read, mt_write, mt_close};

/* Queues an encoded packet for the client to read. */
static void feed(struct memt *m, const struct mqtt_packet *p, uint8_t v)
{
    struct mem mem;
    mem_init(&mem);
    struct buf b;
    buf_init(&b, &mem, MEM_MISC, 65536);
    CHECK_EQ(codec_encode(p, v, &b), 0);
    memcpy(m->in + m->in_len, b.data, b.len);
    m->in_len += b.len;
    buf_free(&b);
}

static void feed_ack(struct memt *m, uint8_t type, uint16_t pid, uint8_t v)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = type;
    p.u.ack.packet_id = pid;
    feed(m, &p, v);
}

static void feed_connack(struct memt *m, bool session_present, uint8_t v)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_CONNACK;
    p.u.connack.session_present = session_present;
    feed(m, &p, v);
}

/* Decodes the packets written so far into out[] (views into m->out) and clears the output. */
static size_t written(struct memt *m, uint8_t v, struct mqtt_packet *out, size_t max,
                      uint8_t *first_bytes)
{
    static uint8_t copy[65536]; /* views stay valid until the next call (test only) */
    memcpy(copy, m->out, m->out_len);
    size_t off = 0, n = 0, len = m->out_len;
    m->out_len = 0;
    while (off < len && n < max) {
        size_t used;
        int rc = codec_decode(copy + off, len - off, v, 0, &out[n], &used);
        CHECK_EQ(rc, 0);
        if (rc)
            break;
        if (first_bytes)
            first_bytes[n] = copy[off];
        off += used;
        n++;
    }
    return n;
}

/* ---- callbacks recording what happened ---- */

struct events {
    int connects, disconnects, messages, published;
    int last_publish_rc;
    uint16_t last_publish_pid;
    char last_payload[64];
    char user_key[16], user_value[16];
};

static void ev_connect(tern_client *c, const struct tern_connack *a, void *u)
{
    ((struct events *)u)->connects++;
}
static void ev_disconnect(tern_client *c, const struct tern_disconnect *d, void *u)
{
    ((struct events *)u)->disconnects++;
}
static void ev_message(tern_client *c, const struct tern_message *m, void *u)
{
    struct events *e = u;
    e->messages++;
    snprintf(e->last_payload, sizeof e->last_payload, "%.*s", (int)m->payload_len,
             (const char *)m->payload);
    if (m->props->n_user) {
        snprintf(e->user_key, sizeof e->user_key, "%s", m->props->user[0].key);
        snprintf(e->user_value, sizeof e->user_value, "%s", m->props->user[0].value);
    }
}
static void ev_publish(tern_client *c, uint16_t pid, int rc, void *u)
{
    struct events *e = u;
    e->published++;
    e->last_publish_rc = rc;
    e->last_publish_pid = pid;
}

static tern_client *make(struct tern_client_options *o, struct memt *m, struct events *e)
{
    o->cb.on_connect = ev_connect;
    o->cb.on_disconnect = ev_disconnect;
    o->cb.on_message = ev_message;
    o->cb.on_publish = ev_publish;
    o->cb.user = e;
    tern_client *c = NULL;
    CHECK_EQ(tern_client_new(o, &c), 0);
    if (c)
        client_set_transport(c, &memt_ops, m);
    return c;
}

/* Connects at time `now` and answers CONNACK. */
static void connect_now(tern_client *c, struct memt *m, int64_t now, bool session_present)
{
    CHECK_EQ(client_begin_connect(c, now), 0);
    client_process(c, now, true, true);
    feed_connack(m, session_present, c->version);
    client_process(c, now, true, true);
    CHECK_EQ(c->state, TERN_STATE_CONNECTED);
}

static void test_pid_alloc(void)
{
    uint64_t used[1024] = {0};
    uint16_t next = 1;
    CHECK_EQ(client_pid_alloc(used, &next), 1);
    CHECK_EQ(client_pid_alloc(used, &next), 2);
    client_pid_release(used, 1);
    CHECK(!client_pid_in_use(used, 1));
    CHECK(client_pid_in_use(used, 2));
    next = 65535;
    CHECK_EQ(client_pid_alloc(used, &next), 65535);
    CHECK_EQ(client_pid_alloc(used, &next), 1); /* wraps, skipping 0 */
    CHECK_EQ(client_pid_alloc(used, &next), 3); /* 2 is still taken */
    for (uint32_t i = 0; i < 65535; i++)
        (void)client_pid_alloc(used, &next);
    CHECK_EQ(client_pid_alloc(used, &next), 0); /* all taken */
    CHECK(!client_pid_in_use(used, 0));
}

static void test_backoff(void)
{
    uint64_t rng = 42;
    for (uint32_t attempt = 0; attempt < 20; attempt++) {
        uint32_t d = client_backoff_ms(attempt, 500, 30000, &rng);
        uint64_t base = 500ull << (attempt < 10 ? attempt : 10);
        if (base > 30000)
            base = 30000;
        CHECK_MSG(d >= base / 2 && d <= base, "attempt %u: %u not in [%llu, %llu]", attempt, d,
                  (unsigned long long)base / 2, (unsigned long long)base);
    }
    CHECK(client_backoff_ms(100, 500, 30000, &rng) <= 30000);
    CHECK_EQ(client_backoff_ms(0, 0, 0, &rng), 1); /* degenerate bounds: the 1 ms floor */
}

static void test_connect_encoding(void)
{
    struct memt m = {0};
    struct events e = {0};
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.client_id = "cid";
    o.keep_alive = 30;
    o.session_expiry = 120;
    o.will_topic = "w/t";
    o.will_payload = "bye";
    o.will_payload_len = 3;
    o.will_qos = 1;
    struct tern_user_property up = {"k", "v"};
    o.connect_user = &up;
    o.n_connect_user = 1;
    tern_client *c = make(&o, &m, &e);
    CHECK_EQ(client_begin_connect(c, 0), 0);
    client_process(c, 0, true, true);
    struct mqtt_packet p[4];
    CHECK_EQ(written(&m, MQTT_V5, p, 4, NULL), 1);
    CHECK_EQ(p[0].type, MQTT_CONNECT);
    const struct mqtt_connect *k = &p[0].u.connect;
    CHECK_EQ(k->level, 5);
    CHECK(k->clean);
    CHECK_EQ(k->keep_alive, 30);
    CHECK(k->client_id.len == 3 && !memcmp(k->client_id.p, "cid", 3));
    CHECK(k->will && k->will_qos == 1 && k->will_payload.len == 3);
    CHECK_EQ(k->props.session_expiry, 120);
    CHECK_EQ(k->props.user_count, 1);
    tern_client_free(c);
}

static void test_publish_window_and_acks(void)
{
    struct memt m = {0};
    struct events e = {0};
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.max_inflight = 2;
    tern_client *c = make(&o, &m, &e);
    connect_now(c, &m, 0, false);
    m.out_len = 0;
    struct tern_user_property up = {"key", "value"};
    struct tern_properties props = {.user = &up, .n_user = 1};
    uint16_t ids[3];
    for (int i = 0; i < 3; i++)
        CHECK_EQ(tern_client_publish(c, "t/x", "abc", 3, 1, false, &props, &ids[i]), 0);
    CHECK(ids[0] != ids[1] && ids[1] != ids[2]);
    client_process(c, 10, true, true);
    struct mqtt_packet p[8];
    CHECK_EQ(written(&m, MQTT_V5, p, 8, NULL), 2); /* window of 2 */
    CHECK_EQ(p[0].u.publish.packet_id, ids[0]);
    CHECK_EQ(p[0].u.publish.props.user_count, 1);
    CHECK_EQ(tern_client_pending(c), 3);
    feed_ack(&m, MQTT_PUBACK, ids[0], MQTT_V5);
    client_process(c, 20, true, true);
    CHECK_EQ(e.published, 1);
    CHECK_EQ(e.last_publish_pid, ids[0]);
    CHECK_EQ(written(&m, MQTT_V5, p, 8, NULL), 1); /* the third one, now that there is room */
    CHECK_EQ(p[0].u.publish.packet_id, ids[2]);
    CHECK(!client_pid_in_use(c->pid_used, ids[0]));
    tern_client_free(c);
}

static void test_retransmit_after_reconnect(void)
{
    struct memt m = {0};
    struct events e = {0};
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.client_id = "resume";
    o.session_expiry = 60;
    o.auto_reconnect = true;
    o.reconnect_min_ms = 100;
    tern_client *c = make(&o, &m, &e);
    connect_now(c, &m, 0, false);
    m.out_len = 0;
    uint16_t a, b;
    CHECK_EQ(tern_client_publish(c, "t/1", "one", 3, 1, false, NULL, &a), 0);
    CHECK_EQ(tern_client_publish(c, "t/2", "two", 3, 2, false, NULL, &b), 0);
    client_process(c, 10, true, true);
    struct mqtt_packet p[8];
    uint8_t fb[8];
    CHECK_EQ(written(&m, MQTT_V5, p, 8, NULL), 2);
    feed_ack(&m, MQTT_PUBREC, b, MQTT_V5); /* QoS 2 reaches PUBREL */
    client_process(c, 20, true, true);
    CHECK_EQ(written(&m, MQTT_V5, p, 8, NULL), 1);
    CHECK_EQ(p[0].type, MQTT_PUBREL);
    m.peer_closed = true; /* connection drops */
    client_process(c, 30, true, true);
    CHECK_EQ(c->state, TERN_STATE_BACKOFF);
    CHECK_EQ(e.disconnects, 1);
    int t = client_timeout_at(c, 30);
    CHECK(t >= 50 && t <= 100);
    client_process(c, 30 + t, false, false); /* backoff over: reconnect */
    CHECK_EQ(m.opens, 2);
    CHECK_EQ(written(&m, MQTT_V5, p, 8, NULL), 1);
    CHECK_EQ(p[0].type, MQTT_CONNECT);
    CHECK(!p[0].u.connect.clean); /* resumes the session */
    feed_connack(&m, true, MQTT_V5);
    client_process(c, 200, true, true);
    CHECK_EQ(written(&m, MQTT_V5, p, 8, fb), 2);
    CHECK_EQ(p[0].type, MQTT_PUBLISH);
    CHECK_EQ(p[0].u.publish.packet_id, a);
    CHECK(p[0].u.publish.dup); /* [MQTT-3.3.1-1] */
    CHECK(fb[0] & 0x08);
    CHECK_EQ(p[1].type, MQTT_PUBREL); /* past PUBREC: only PUBREL again [MQTT-4.4.0-1] */
    CHECK_EQ(p[1].u.ack.packet_id, b);
    feed_ack(&m, MQTT_PUBACK, a, MQTT_V5);
    feed_ack(&m, MQTT_PUBCOMP, b, MQTT_V5);
    client_process(c, 210, true, true);
    CHECK_EQ(e.published, 2);
    CHECK_EQ(tern_client_pending(c), 0);
    tern_client_free(c);
}

static void test_incoming_qos2_once(void)
{
    struct memt m = {0};
    struct events e = {0};
    struct tern_client_options o;
    tern_client_options_init(&o);
    tern_client *c = make(&o, &m, &e);
    connect_now(c, &m, 0, false);
    m.out_len = 0;
    struct mqtt_user_prop up = {{(const uint8_t *)"uk", 2}, {(const uint8_t *)"uv", 2}};
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_PUBLISH;
    p.u.publish.qos = 2;
    p.u.publish.packet_id = 7;
    p.u.publish.topic = (struct mqtt_str){(const uint8_t *)"in/q2", 5};
    p.u.publish.payload = (struct mqtt_str){(const uint8_t *)"payload", 7};
    p.u.publish.props.user = &up;
    p.u.publish.props.n_user = 1;
    feed(&m, &p, MQTT_V5);
    p.u.publish.dup = true;
    feed(&m, &p, MQTT_V5); /* a re-send before PUBREL: not delivered again */
    client_process(c, 10, true, true);
    CHECK_EQ(e.messages, 1);
    CHECK(!strcmp(e.last_payload, "payload"));
    CHECK(!strcmp(e.user_key, "uk") && !strcmp(e.user_value, "uv"));
    struct mqtt_packet out[4];
    CHECK_EQ(written(&m, MQTT_V5, out, 4, NULL), 2);
    CHECK(out[0].type == MQTT_PUBREC && out[1].type == MQTT_PUBREC);
    feed_ack(&m, MQTT_PUBREL, 7, MQTT_V5);
    client_process(c, 20, true, true);
    CHECK_EQ(written(&m, MQTT_V5, out, 4, NULL), 1);
    CHECK_EQ(out[0].type, MQTT_PUBCOMP);
    CHECK_EQ(out[0].u.ack.rc, 0);
    feed(&m, &p, MQTT_V5); /* after PUBREL the id is free: a new message */
    client_process(c, 30, true, true);
    CHECK_EQ(e.messages, 2);
    tern_client_free(c);
}

static void test_keepalive(void)
{
    struct memt m = {0};
    struct events e = {0};
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.keep_alive = 10;
    o.protocol = TERN_MQTT_311;
    tern_client *c = make(&o, &m, &e);
    connect_now(c, &m, 0, false);
    m.out_len = 0;
    CHECK_EQ(client_timeout_at(c, 0), 10000);
    client_process(c, 10000, true, true);
    struct mqtt_packet p[2];
    CHECK_EQ(written(&m, MQTT_V311, p, 2, NULL), 1);
    CHECK_EQ(p[0].type, MQTT_PINGREQ);
    client_process(c, 19999, true, true);
    CHECK_EQ(c->state, TERN_STATE_CONNECTED);
    client_process(c, 20000, true, true); /* no PINGRESP within the keep-alive */
    CHECK_EQ(c->state, TERN_STATE_IDLE);
    CHECK(strstr(tern_client_last_error(c), "PINGRESP") != NULL);
    tern_client_free(c);
}

static void test_refused_connack_text(void)
{
    struct memt m = {0};
    struct events e = {0};
    struct tern_client_options o;
    tern_client_options_init(&o);
    o.protocol = TERN_MQTT_311;
    tern_client *c = make(&o, &m, &e);
    CHECK_EQ(client_begin_connect(c, 0), 0);
    client_process(c, 0, true, true);
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_CONNACK;
    p.u.connack.rc = MQTT3_CONNACK_NOT_AUTHORIZED;
    feed(&m, &p, MQTT_V311);
    client_process(c, 1, true, true);
    CHECK_EQ(c->state, TERN_STATE_IDLE);
    CHECK_MSG(strstr(tern_client_last_error(c), "Not authorized (0x87)") != NULL, "%s",
              tern_client_last_error(c));
    tern_client_free(c);
}

static void test_invalid_arguments(void)
{
    struct memt m = {0};
    struct events e = {0};
    struct tern_client_options o;
    tern_client_options_init(&o);
    tern_client *c = make(&o, &m, &e);
    CHECK_EQ(tern_client_publish(c, "a/+", "x", 1, 0, false, NULL, NULL), TERN_EINVAL);
    CHECK_EQ(tern_client_publish(c, "", "x", 1, 0, false, NULL, NULL), TERN_EINVAL);
    CHECK_EQ(tern_client_publish(c, "a", "x", 1, 3, false, NULL, NULL), TERN_EINVAL);
    CHECK_EQ(tern_client_publish(c, "a\xff", "x", 1, 0, false, NULL, NULL), TERN_EINVAL);
    struct tern_subscription s = {"", 0, 0};
    CHECK_EQ(tern_client_subscribe(c, &s, 1, 0, NULL, 0, NULL), TERN_EINVAL);
    tern_client_free(c);
    o.protocol = 3;
    CHECK_EQ(tern_client_new(&o, &c), TERN_EINVAL);
}

void unit_main(void)
{
    UNIT_RUN(test_pid_alloc);
    UNIT_RUN(test_backoff);
    UNIT_RUN(test_connect_encoding);
    UNIT_RUN(test_publish_window_and_acks);
    UNIT_RUN(test_retransmit_after_reconnect);
    UNIT_RUN(test_incoming_qos2_once);
    UNIT_RUN(test_keepalive);
    UNIT_RUN(test_refused_connack_text);
    UNIT_RUN(test_invalid_arguments);
}
