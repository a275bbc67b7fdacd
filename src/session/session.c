/* session.c - MQTT session state and QoS state machine (see session.h).
 *
 * Invariants:
 *  - inflight holds at most lim.max_inflight entries, in the order they were first sent, each
 *    with a distinct non-zero packet id [MQTT-2.3.1-2] [MQTT-2.3.1-4];
 *  - messages wait in `queue` only while the window is full or the client is offline, and leave
 *    it in order, so per-topic order is kept [MQTT-4.6.0-5];
 *  - q_count/q_bytes never exceed lim.max_queued / lim.max_queued_bytes (when set).
 * Owned by the session's home thread. */
#include "session/session.h"

#include "router/topic.h"

#include <stdint.h>
#include <string.h>

struct session *sess_new(struct mem *mem, uint64_t id, const uint8_t *cid, uint16_t cid_len,
                         uint32_t thread)
{
    struct session *s = mem_calloc(mem, MEM_SESSION, sizeof *s);
    if (!s)
        return NULL;
    s->client_id = mem_alloc(mem, MEM_SESSION, cid_len ? cid_len : 1);
    if (!s->client_id) {
        mem_free(mem, MEM_SESSION, s);
        return NULL;
    }
    memcpy(s->client_id, cid, cid_len);
    s->client_id_len = cid_len;
    s->id = id;
    s->thread = thread;
    s->mem = mem;
    s->next_pid = 1;
    s->lim.max_inflight = 20;
    hmap_init(&s->aliases, mem);
    return s;
}

void sess_clear_messages(struct session *s)
{
    for (uint32_t i = 0; i < s->in_count; i++)
        msg_unref(s->inflight[(s->in_head + i) % s->in_cap].m);
    s->in_count = s->in_head = 0;
    for (uint32_t i = 0; i < s->q_count; i++)
        msg_unref(s->queue[(s->q_head + i) % s->q_cap].m);
    s->q_count = s->q_head = 0;
    s->q_bytes = 0;
    s->n_qos2_in = 0;
}

void sess_free(struct session *s)
{
    if (!s)
        return;
    sess_clear_messages(s);
    for (uint32_t i = 0; i < s->nsubs; i++)
        mem_free(s->mem, MEM_SESSION, s->subs[i].filter);
    mem_free(s->mem, MEM_SESSION, s->subs);
    mem_free(s->mem, MEM_SESSION, s->inflight);
    mem_free(s->mem, MEM_SESSION, s->queue);
    mem_free(s->mem, MEM_SESSION, s->qos2_in);
    msg_unref(s->will);
    mem_free(s->mem, MEM_SESSION, s->username);
    sess_reset_aliases(s, 0);
    hmap_free(&s->aliases);
    mem_free(s->mem, MEM_SESSION, s->client_id);
    mem_free(s->mem, MEM_SESSION, s);
}

int sess_sub_add(struct session *s, const uint8_t *f, uint16_t n, uint8_t options, uint32_t sub_id)
{
    for (uint32_t i = 0; i < s->nsubs; i++) {
        if (s->subs[i].len == n && memcmp(s->subs[i].filter, f, n) == 0) {
            s->subs[i].options = options;
            s->n_sub_ids += (sub_id != 0) - (s->subs[i].sub_id != 0);
            s->subs[i].sub_id = sub_id;
            return 0;
        }
    }
    if (s->nsubs == s->capsubs) {
        uint32_t ncap = s->capsubs ? s->capsubs * 2 : 4;
        struct sess_sub *ns = mem_realloc(s->mem, MEM_SESSION, s->subs, ncap * sizeof *ns);
        if (!ns)
            return TERN_ENOMEM;
        s->subs = ns;
        s->capsubs = ncap;
    }
    uint8_t *copy = mem_alloc(s->mem, MEM_SESSION, n ? n : 1);
    if (!copy)
        return TERN_ENOMEM;
    memcpy(copy, f, n);
    s->subs[s->nsubs++] = (struct sess_sub){copy, n, options, sub_id};
    s->n_sub_ids += sub_id != 0;
    return 0;
}

bool sess_has_sub(const struct session *s, const uint8_t *f, size_t n)
{
    for (uint32_t i = 0; i < s->nsubs; i++)
        if (s->subs[i].len == n && memcmp(s->subs[i].filter, f, n) == 0)
            return true;
    return false;
}

bool sess_sub_del(struct session *s, const uint8_t *f, uint16_t n)
{
    for (uint32_t i = 0; i < s->nsubs; i++) {
        if (s->subs[i].len == n && memcmp(s->subs[i].filter, f, n) == 0) {
            mem_free(s->mem, MEM_SESSION, s->subs[i].filter);
            s->n_sub_ids -= s->subs[i].sub_id != 0;
            s->subs[i] = s->subs[--s->nsubs];
            return true;
        }
    }
    return false;
}

void sess_set_will(struct session *s, struct msg *m, uint32_t delay_s)
{
    msg_unref(s->will);
    s->will = m;
    s->will_delay_s = delay_s;
}

/* ---- encoding helpers ---- */

int sess_write_packet(struct outq *out, uint8_t version, const struct mqtt_packet *p)
{
    size_t need = codec_encoded_size(p, version);
    uint8_t *dst = outq_reserve(out, need);
    if (!dst)
        return TERN_ENOMEM;
    /* encode through a buf view over the reserved space: bounded to exactly `need` bytes */
    struct buf b = {
        .data = dst, .len = 0, .cap = need, .max = need, .mem = out->mem, .cat = MEM_CONN};
    int rc = codec_encode(p, version, &b);
    if (rc)
        return rc;
    outq_commit(out, b.len);
    return 0;
}

void sess_reset_aliases(struct session *s, uint16_t alias_max)
{
    for (uint32_t i = 0; i < s->alias_used; i++)
        mem_free(s->mem, MEM_SESSION, s->alias_topics[i]);
    mem_free(s->mem, MEM_SESSION, s->alias_topics);
    s->alias_topics = NULL;
    s->alias_used = 0;
    hmap_free(&s->aliases);
    hmap_init(&s->aliases, s->mem);
    s->alias_max = alias_max;
}

/* Alias for topic: *existing tells whether the client already knows it. 0 = none. */
static uint16_t topic_alias(struct session *s, const struct msg *m, bool *existing)
{
    *existing = false;
    if (!s->alias_max)
        return 0;
    void *v = hmap_get(&s->aliases, msg_topic(m), m->topic_len);
    if (v) {
        *existing = true;
        return (uint16_t)(uintptr_t)v;
    }
    if (s->alias_used >= s->alias_max)
        return 0;
    if (!s->alias_topics) {
        s->alias_topics = mem_alloc(s->mem, MEM_SESSION, s->alias_max * sizeof *s->alias_topics);
        if (!s->alias_topics)
            return 0;
    }
    uint8_t *copy = mem_alloc(s->mem, MEM_SESSION, m->topic_len);
    if (!copy)
        return 0;
    memcpy(copy, msg_topic(m), m->topic_len);
    uint16_t alias = (uint16_t)(s->alias_used + 1);
    if (hmap_put(&s->aliases, copy, m->topic_len, (void *)(uintptr_t)alias)) {
        mem_free(s->mem, MEM_SESSION, copy);
        return 0;
    }
    s->alias_topics[s->alias_used++] = copy;
    return alias;
}

#define MAX_SUB_IDS 32

/* Builds the PUBLISH of m for s's client into *pk (views into m and ids[MAX_SUB_IDS]), without
 * topic alias. */
static void build_publish(struct session *s, struct msg *m, uint8_t qos, bool retain, bool dup,
                          uint16_t pid, int64_t now_ms, struct mqtt_packet *pkp, uint32_t *ids)
{
    struct mqtt_packet pk;
    memset(&pk, 0, sizeof pk);
    pk.type = MQTT_PUBLISH;
    struct mqtt_publish *p = &pk.u.publish;
    p->dup = dup;
    p->qos = qos;
    p->retain = retain;
    p->topic.p = msg_topic(m);
    p->topic.len = m->topic_len;
    p->packet_id = pid;
    p->payload.p = msg_payload(m);
    p->payload.len = m->payload_len;
    if (s->version == MQTT_V5) {
        if (m->expiry_at_ms) {
            /* the interval sent on is what is left of it [MQTT-3.3.2-6] */
            int64_t left = (m->expiry_at_ms - now_ms + 999) / 1000;
            p->props.has |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
            p->props.message_expiry = left > 0 ? (uint32_t)left : 0;
        }
        uint32_t n = 0;
        for (uint32_t i = 0; s->n_sub_ids && i < s->nsubs && n < MAX_SUB_IDS; i++) {
            const struct sess_sub *sub = &s->subs[i];
            const uint8_t *g, *f = sub->filter;
            size_t gl, fl = sub->len;
            if (!sub->sub_id)
                continue;
            if (topic_share_split(sub->filter, sub->len, &g, &gl, &f, &fl) != 1) {
                f = sub->filter;
                fl = sub->len;
            }
            if (topic_matches(f, fl, msg_topic(m), m->topic_len))
                ids[n++] = sub->sub_id;
        }
        if (n) {
            p->props.sub_ids = ids;
            p->props.n_sub_ids = n;
        }
        p->props.extra = msg_props(m);
        p->props.extra_len = m->props_len;
    }
    *pkp = pk;
}

/* True when the PUBLISH would exceed the client's Maximum Packet Size [MQTT-3.1.2-25]. */
static bool too_big(struct session *s, struct msg *m, uint8_t qos, int64_t now_ms)
{
    if (!s->lim.max_packet_out)
        return false;
    struct mqtt_packet pk;
    uint32_t ids[MAX_SUB_IDS];
    build_publish(s, m, qos, false, false, qos ? 1 : 0, now_ms, &pk, ids);
    return codec_encoded_size(&pk, s->version) > s->lim.max_packet_out;
}

/* The shared QoS 0 wire image of m for s's protocol, built on first use (see struct msg).
 * NULL when s's client needs per-subscriber properties (v5 subscription identifiers, topic
 * aliases, a remaining Message Expiry) or on allocation failure. */
static const uint8_t *wire_image(struct session *s, struct msg *m, bool retain, int64_t now_ms,
                                 uint32_t *len)
{
    bool v5 = s->version == MQTT_V5;
    if (v5 && (s->n_sub_ids || s->alias_max || m->expiry_at_ms))
        return NULL;
    _Atomic(uint8_t *) *slot = &m->wire[(v5 ? 2 : 0) + (retain ? 1 : 0)];
    uint8_t *img = atomic_load_explicit(slot, memory_order_acquire);
    if (!img) {
        struct mqtt_packet pk;
        uint32_t ids[MAX_SUB_IDS];
        build_publish(s, m, 0, retain, false, 0, now_ms, &pk, ids);
        size_t cap = codec_encoded_size(&pk, s->version);
        uint8_t *fresh = mem_alloc(m->mem, MEM_MSG, cap + sizeof(uint32_t));
        if (!fresh)
            return NULL;
        struct buf b = {.data = fresh + sizeof(uint32_t), .len = 0, .cap = cap, .max = cap,
                        .mem = m->mem, .cat = MEM_MSG};
        if (codec_encode(&pk, s->version, &b)) {
            mem_free(m->mem, MEM_MSG, fresh);
            return NULL;
        }
        uint32_t l = (uint32_t)b.len;
        memcpy(fresh, &l, sizeof l);
        img = NULL;
        /* another worker may have built it at the same moment: keep theirs */
        if (!atomic_compare_exchange_strong_explicit(slot, &img, fresh, memory_order_acq_rel,
                                                     memory_order_acquire))
            mem_free(m->mem, MEM_MSG, fresh);
        else
            img = fresh;
    }
    memcpy(len, img, sizeof *len);
    return img + sizeof(uint32_t);
}

int sess_write_publish(struct session *s, struct outq *out, struct msg *m, uint8_t qos, bool retain,
                       bool dup, uint16_t pid, int64_t now_ms)
{
    if (qos == 0 && m->payload_len < OUTQ_REF_MIN && !too_big(s, m, 0, now_ms)) {
        uint32_t len;
        const uint8_t *img = wire_image(s, m, retain, now_ms, &len);
        if (img)
            return outq_append(out, img, len); /* encoded once, copied per subscriber */
    }
    struct mqtt_packet pk;
    uint32_t ids[MAX_SUB_IDS];
    bool alias_known = false;
    uint16_t alias = 0;
    build_publish(s, m, qos, retain, dup, pid, now_ms, &pk, ids);
    struct mqtt_publish *p = &pk.u.publish;
    if (too_big(s, m, qos, now_ms))
        return TERN_ETOOBIG; /* not sent to this client [MQTT-3.1.2-25] */
    if (s->version == MQTT_V5 && (alias = topic_alias(s, m, &alias_known)) != 0) {
        p->props.has |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS);
        p->props.topic_alias = alias;
        if (alias_known)
            p->topic.len = 0; /* the client maps the alias back [MQTT-3.3.2-12] */
    }
    size_t cap = 16 + (size_t)m->topic_len + m->props_len + 16 + 5 * MAX_SUB_IDS + 16;
    uint8_t *head = outq_reserve(out, cap + (m->payload_len < OUTQ_REF_MIN ? m->payload_len : 0));
    if (!head)
        return TERN_ENOMEM;
    size_t hl = codec_encode_publish_head(head, cap, p, m->payload_len, s->version);
    if (!hl)
        return TERN_ETOOBIG;
    if (m->payload_len < OUTQ_REF_MIN) {
        /* small payloads are copied right behind the head: one contiguous write */
        memcpy(head + hl, msg_payload(m), m->payload_len);
        outq_commit(out, hl + m->payload_len);
        return 0;
    }
    outq_commit(out, hl);
    return outq_append_ref(out, msg_payload(m), m->payload_len, msg_ref(m));
}

static int write_ack(struct outq *out, uint8_t version, uint8_t type, uint16_t pid)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = type;
    p.u.ack.packet_id = pid;
    return sess_write_packet(out, version, &p);
}

/* ---- inflight window ---- */

static struct sess_out *in_at(struct session *s, uint32_t i)
{
    return &s->inflight[(s->in_head + i) % s->in_cap];
}

static bool pid_in_use(struct session *s, uint16_t pid)
{
    for (uint32_t i = 0; i < s->in_count; i++)
        if (in_at(s, i)->pid == pid)
            return true;
    return false;
}

/* Next free packet id: ids cycle 1..65535 and skip those still in flight. */
static uint16_t alloc_pid(struct session *s)
{
    for (;;) {
        uint16_t pid = s->next_pid++;
        if (s->next_pid == 0)
            s->next_pid = 1;
        if (pid && !pid_in_use(s, pid))
            return pid;
    }
}

static int in_push(struct session *s, const struct sess_out *o)
{
    if (s->in_count == s->in_cap) {
        uint32_t ncap = s->in_cap ? s->in_cap * 2 : 8;
        struct sess_out *n = mem_alloc(s->mem, MEM_SESSION, ncap * sizeof *n);
        if (!n)
            return TERN_ENOMEM;
        for (uint32_t i = 0; i < s->in_count; i++)
            n[i] = *in_at(s, i);
        mem_free(s->mem, MEM_SESSION, s->inflight);
        s->inflight = n;
        s->in_cap = ncap;
        s->in_head = 0;
    }
    s->inflight[(s->in_head + s->in_count++) % s->in_cap] = *o;
    return 0;
}

/* Removes entry i of the window keeping the order of the others. */
static void in_remove(struct session *s, uint32_t i)
{
    msg_unref(in_at(s, i)->m);
    if (i == 0) {
        s->in_head = (s->in_head + 1) % s->in_cap;
    } else {
        for (uint32_t k = i; k + 1 < s->in_count; k++)
            *in_at(s, k) = *in_at(s, k + 1);
    }
    s->in_count--;
}

static int in_find(struct session *s, uint16_t pid, uint8_t state)
{
    for (uint32_t i = 0; i < s->in_count; i++) {
        struct sess_out *o = in_at(s, i);
        if (o->pid == pid && o->state == state)
            return (int)i;
    }
    return -1;
}

static bool expired(const struct msg *m, int64_t now_ms)
{
    return m->expiry_at_ms && m->expiry_at_ms <= now_ms;
}

/* Sends m with a new packet id and records it in the window. */
static int send_new(struct session *s, struct outq *out, struct msg *m, uint8_t qos, bool retain,
                    uint32_t flags, int64_t now_ms)
{
    struct sess_out o = {msg_ref(m), alloc_pid(s),
                         qos,        qos == 1 ? SESS_WAIT_PUBACK : SESS_WAIT_PUBREC,
                         retain,     flags};
    int rc = in_push(s, &o);
    if (rc) {
        msg_unref(m);
        return rc;
    }
    rc = sess_write_publish(s, out, m, qos, retain, false, o.pid, now_ms);
    if (rc)
        in_remove(s, s->in_count - 1); /* not sent: not in flight either */
    return rc;
}

/* ---- queue ---- */

static bool queue_full(const struct session *s, const struct msg *m)
{
    return (s->lim.max_queued && s->q_count >= s->lim.max_queued) ||
           (s->lim.max_queued_bytes && s->q_bytes + msg_size(m) > s->lim.max_queued_bytes);
}

static int q_push(struct session *s, struct msg *m, uint8_t qos, bool retain, uint32_t flags)
{
    if (s->q_count == s->q_cap) {
        uint32_t ncap = s->q_cap ? s->q_cap * 2 : 8;
        struct sess_qent *n = mem_alloc(s->mem, MEM_SESSION, ncap * sizeof *n);
        if (!n)
            return TERN_ENOMEM;
        for (uint32_t i = 0; i < s->q_count; i++)
            n[i] = s->queue[(s->q_head + i) % s->q_cap];
        mem_free(s->mem, MEM_SESSION, s->queue);
        s->queue = n;
        s->q_cap = ncap;
        s->q_head = 0;
    }
    s->queue[(s->q_head + s->q_count++) % s->q_cap] =
        (struct sess_qent){msg_ref(m), qos, retain, flags};
    s->q_bytes += msg_size(m);
    return 0;
}

static struct sess_qent q_pop(struct session *s)
{
    struct sess_qent e = s->queue[s->q_head];
    s->q_head = (s->q_head + 1) % s->q_cap;
    s->q_count--;
    s->q_bytes -= msg_size(e.m);
    return e;
}

enum sess_deliver_result sess_deliver(struct session *s, struct outq *out, struct msg *m,
                                      uint8_t qos, bool retain, uint32_t flags, int64_t now_ms)
{
    if (expired(m, now_ms))
        return SESS_SKIPPED;
    if (qos == 0) {
        if (out)
            return sess_write_publish(s, out, m, 0, retain, false, 0, now_ms)
                       ? (s->dropped++, SESS_DROPPED)
                       : SESS_SENT;
        if (!s->lim.queue_qos0 || s->clean)
            return SESS_SKIPPED;
    }
    if (out && s->q_count == 0 && s->in_count < s->lim.max_inflight)
        return send_new(s, out, m, qos, retain, flags, now_ms) ? (s->dropped++, SESS_DROPPED)
                                                               : SESS_SENT;
    if (queue_full(s, m) || q_push(s, m, qos, retain, flags)) {
        s->dropped++;
        return SESS_DROPPED;
    }
    return out ? SESS_SENT : SESS_QUEUED;
}

int sess_pump(struct session *s, struct outq *out, int64_t now_ms)
{
    while (s->q_count && s->in_count < s->lim.max_inflight) {
        struct sess_qent e = q_pop(s);
        int rc = 0;
        if (expired(e.m, now_ms))
            rc = 0;
        else if (e.qos == 0)
            rc = sess_write_publish(s, out, e.m, 0, e.retain, false, 0, now_ms);
        else
            rc = send_new(s, out, e.m, e.qos, e.retain, e.flags, now_ms);
        msg_unref(e.m);
        if (rc == TERN_ETOOBIG) {
            s->dropped++; /* too large for this client: discarded [MQTT-3.1.2-25] */
            continue;
        }
        if (rc)
            return rc;
    }
    return 0;
}

int sess_on_puback(struct session *s, struct outq *out, uint16_t pid, int64_t now_ms)
{
    int i = in_find(s, pid, SESS_WAIT_PUBACK);
    if (i < 0)
        return TERN_ENOTFOUND;
    in_remove(s, (uint32_t)i);
    return sess_pump(s, out, now_ms);
}

int sess_on_pubrec(struct session *s, struct outq *out, uint16_t pid, uint8_t rc, int64_t now_ms)
{
    int i = in_find(s, pid, SESS_WAIT_PUBREC);
    if (i < 0) {
        /* a PUBREC for a flow already past PUBREC: answer PUBREL again */
        if (in_find(s, pid, SESS_WAIT_PUBCOMP) >= 0)
            return write_ack(out, s->version, MQTT_PUBREL, pid);
        return TERN_ENOTFOUND;
    }
    if (rc >= 0x80) {
        /* v5: an error PUBREC ends the flow [MQTT-4.3.3-4] */
        in_remove(s, (uint32_t)i);
        return sess_pump(s, out, now_ms);
    }
    struct sess_out *o = in_at(s, (uint32_t)i);
    o->state = SESS_WAIT_PUBCOMP;
    /* the message itself is no longer needed once PUBREC arrived */
    return write_ack(out, s->version, MQTT_PUBREL, pid);
}

int sess_on_pubcomp(struct session *s, struct outq *out, uint16_t pid, int64_t now_ms)
{
    int i = in_find(s, pid, SESS_WAIT_PUBCOMP);
    if (i < 0)
        return TERN_ENOTFOUND;
    in_remove(s, (uint32_t)i);
    return sess_pump(s, out, now_ms);
}

int sess_qos2_in_begin(struct session *s, uint16_t pid, uint16_t max)
{
    for (uint32_t i = 0; i < s->n_qos2_in; i++)
        if (s->qos2_in[i] == pid)
            return 1;
    if (max && s->n_qos2_in >= max)
        return TERN_ELIMIT;
    if (s->n_qos2_in == s->cap_qos2_in) {
        uint32_t ncap = s->cap_qos2_in ? s->cap_qos2_in * 2 : 8;
        uint16_t *n = mem_realloc(s->mem, MEM_SESSION, s->qos2_in, ncap * sizeof *n);
        if (!n)
            return TERN_ENOMEM;
        s->qos2_in = n;
        s->cap_qos2_in = ncap;
    }
    s->qos2_in[s->n_qos2_in++] = pid;
    return 0;
}

bool sess_qos2_in_end(struct session *s, uint16_t pid)
{
    for (uint32_t i = 0; i < s->n_qos2_in; i++) {
        if (s->qos2_in[i] == pid) {
            s->qos2_in[i] = s->qos2_in[--s->n_qos2_in];
            return true;
        }
    }
    return false;
}

int sess_resume(struct session *s, struct outq *out, int64_t now_ms)
{
    for (uint32_t i = 0; i < s->in_count; i++) {
        struct sess_out *o = in_at(s, i);
        int rc;
        if (o->state != SESS_WAIT_PUBCOMP && s->lim.max_packet_out) {
            /* the new connection may allow smaller packets than the old one */
            if (too_big(s, o->m, o->qos, now_ms)) {
                in_remove(s, i--);
                s->dropped++;
                continue;
            }
        }
        if (o->state == SESS_WAIT_PUBCOMP)
            rc = write_ack(out, s->version, MQTT_PUBREL, o->pid);
        else /* resent with DUP=1 and the same packet id [MQTT-4.4.0-1] [MQTT-3.3.1-1] */
            rc = sess_write_publish(s, out, o->m, o->qos, o->retain, true, o->pid, now_ms);
        if (rc)
            return rc;
    }
    return sess_pump(s, out, now_ms);
}

uint32_t sess_take_shared(struct session *s, sess_move_fn fn, void *ctx)
{
    uint32_t moved = 0;
    for (uint32_t i = 0; i < s->in_count; i++) {
        struct sess_out *o = in_at(s, i);
        /* QoS 2 already sent to this member must be completed with it when it reconnects,
         * never given to another [MQTT-4.8.2-4] [MQTT-4.8.2-5]; QoS 1 may move [MQTT-4.8.2-?] */
        if (!(o->flags & SESS_F_SHARED) || o->qos == 2)
            continue;
        fn(ctx, o->m, o->qos);
        in_remove(s, i--);
        moved++;
    }
    uint32_t n = s->q_count;
    for (uint32_t k = 0; k < n; k++) {
        struct sess_qent e = q_pop(s);
        if ((e.flags & SESS_F_SHARED) && e.qos) {
            fn(ctx, e.m, e.qos);
            msg_unref(e.m);
            moved++;
            continue;
        }
        /* keep the others, in order: q_push cannot fail here (capacity is unchanged) */
        (void)q_push(s, e.m, e.qos, e.retain, e.flags);
        msg_unref(e.m);
    }
    return moved;
}
