/* client_proto.c - the protocol core of a client: connection state machine, packet handling,
 * send window, retransmission after reconnect, keep-alive and reconnect timers.
 *
 * Everything here runs with c->lock held and takes the time as an argument (client_process), so
 * the unit tests drive it with a memory transport and a fake clock. I/O goes through the
 * transport vtable; callbacks are called last in each handler, after the state is consistent,
 * because they may call back into the client (publish, disconnect, even connect). A connection
 * generation counter lets loops notice that a callback ended the connection under them. */
#include <stdio.h>
#include <string.h>

#include "client_internal.h"
#include "common/utf8.h"

#define WRITE_BATCH (64 * 1024) /* stop moving queued messages into wbuf past this */
#define READ_CHUNK  (64 * 1024)

static void list_push(struct out_list *l, struct out_msg *m)
{
    m->next = NULL;
    if (l->tail)
        l->tail->next = m;
    else
        l->head = m;
    l->tail = m;
    l->count++;
}

static struct out_msg *list_pop(struct out_list *l)
{
    struct out_msg *m = l->head;
    if (!m)
        return NULL;
    l->head = m->next;
    if (!l->head)
        l->tail = NULL;
    l->count--;
    m->next = NULL;
    return m;
}

/* Removes and returns the message of `type` with packet_id pid, or NULL. */
static struct out_msg *list_take(struct out_list *l, uint8_t type, uint16_t pid)
{
    struct out_msg *prev = NULL;
    for (struct out_msg *m = l->head; m; prev = m, m = m->next) {
        if (m->packet_id != pid || m->type != type)
            continue;
        if (prev)
            prev->next = m->next;
        else
            l->head = m->next;
        if (l->tail == m)
            l->tail = prev;
        l->count--;
        m->next = NULL;
        return m;
    }
    return NULL;
}

static struct out_msg *list_find(struct out_list *l, uint8_t type, uint16_t pid)
{
    for (struct out_msg *m = l->head; m; m = m->next)
        if (m->packet_id == pid && m->type == type)
            return m;
    return NULL;
}

static void msg_free(struct tern_client *c, struct out_msg *m)
{
    if (m->packet_id)
        client_pid_release(c->pid_used, m->packet_id);
    mem_free(&c->mem, MEM_SESSION, m);
}

/* Appends a control packet to wbuf. */
static int send_packet(struct tern_client *c, const struct mqtt_packet *p)
{
    int rc = codec_encode(p, c->version, &c->wbuf);
    if (rc)
        client_set_error(c, "cannot queue %s: %s", codec_type_name(p->type), tern_strerror(rc));
    return rc;
}

static int send_ack(struct tern_client *c, uint8_t type, uint16_t pid, uint8_t reason)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = type;
    p.u.ack.packet_id = pid;
    p.u.ack.rc = c->version == MQTT_V5 ? reason : 0;
    return send_packet(c, &p);
}

static void close_transport(struct tern_client *c)
{
    c->tr.ops->close(&c->tr);
    c->wbuf.len = 0;
    c->rbuf.len = 0;
    buf_shrink(&c->wbuf, 0);
    buf_shrink(&c->rbuf, 0);
    c->ping_outstanding = false;
    c->generation++;
}

/* SUBSCRIBE/UNSUBSCRIBE awaiting their ack go back to the front of the queue, in order, to be
 * sent again on the next connection (their ack was lost with this one). */
static void requeue_requests(struct tern_client *c)
{
    struct out_list keep = {0}, again = {0};
    struct out_msg *m;
    while ((m = list_pop(&c->inflight)))
        list_push(m->type == MQTT_PUBLISH ? &keep : &again, m);
    while ((m = list_pop(&c->queue)))
        list_push(&again, m);
    c->inflight = keep;
    c->queue = again;
}

/* Ends the current connection: err 0 for a requested close. reason_code is the broker's v5
 * DISCONNECT reason or -1. c->error must already describe the cause. */
static void conn_lost(struct tern_client *c, int64_t now, int err, int reason_code,
                      const char *reason_string)
{
    close_transport(c);
    requeue_requests(c);
    bool again = c->opt.auto_reconnect && !c->user_closing;
    if (again) {
        c->state = TERN_STATE_BACKOFF;
        c->deadline_ms = now + client_backoff_ms(c->attempt, c->opt.reconnect_min_ms,
                                                 c->opt.reconnect_max_ms, &c->rng);
        c->attempt++;
    } else {
        c->state = TERN_STATE_IDLE;
    }
    if (c->opt.cb.on_disconnect) {
        struct tern_disconnect d = {err, reason_code, reason_string, c->error, again};
        c->opt.cb.on_disconnect(c, &d, c->opt.cb.user);
    }
}

/* Writes the CONNECT packet; clean start as configured on the first connection, and off on
 * reconnects when the session outlives the connection, to resume it. */
static int send_connect(struct tern_client *c, int64_t now)
{
    bool resume = c->ever_connected &&
                  (c->version == MQTT_V5 ? c->opt.session_expiry > 0 : !c->opt.clean_start);
    bool clean = c->opt.clean_start && !resume;
    int rc = buf_append(&c->wbuf, c->connect_packet, c->connect_len);
    if (rc)
        return rc;
    uint8_t *flags = c->wbuf.data + c->wbuf.len - c->connect_len + c->connect_flags_off;
    *flags = (uint8_t)(clean ? (*flags | 0x02) : (*flags & ~0x02));
    c->state = TERN_STATE_WAIT_CONNACK;
    c->last_send_ms = now;
    return 0;
}

int client_begin_connect(struct tern_client *c, int64_t now_ms)
{
    close_transport(c);
    c->user_closing = false;
    c->error[0] = 0;
    c->state = TERN_STATE_CONNECTING;
    c->deadline_ms = now_ms + c->opt.connect_timeout_ms;
    int rc = c->tr.ops->open(&c->tr, c->host, c->opt.port, c->bind_address);
    if (rc == 0)
        rc = send_connect(c, now_ms);
    if (rc == 0 || rc == TERN_EAGAIN)
        return 0;
    client_set_error(c, "%s", c->tr.error[0] ? c->tr.error : tern_strerror(rc));
    conn_lost(c, now_ms, rc, -1, NULL);
    return rc;
}

static int map_v3_connack(uint8_t rc)
{
    static const uint8_t map[6] = {0,
                                   MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION,
                                   MQTT_RC_CLIENT_IDENTIFIER_NOT_VALID,
                                   MQTT_RC_SERVER_UNAVAILABLE,
                                   MQTT_RC_BAD_USER_NAME_OR_PASSWORD,
                                   MQTT_RC_NOT_AUTHORIZED};
    return rc < 6 ? map[rc] : MQTT_RC_UNSPECIFIED_ERROR;
}

/* Copies a decoded string into scratch as a C string (space reserved by the caller). */
static const char *scratch_cstr(struct tern_client *c, struct mqtt_str s)
{
    char *out = (char *)c->scratch.data + c->scratch.len;
    if (s.len)
        memcpy(out, s.p, s.len);
    out[s.len] = 0;
    c->scratch.len += s.len + 1;
    return out;
}

static void resend_inflight(struct tern_client *c)
{
    for (struct out_msg *m = c->inflight.head; m; m = m->next) {
        if (m->state == OUT_WAIT_COMP) {
            if (send_ack(c, MQTT_PUBREL, m->packet_id, 0))
                return;
            continue;
        }
        if (buf_append(&c->wbuf, m->data, m->len))
            return;
        c->wbuf.data[c->wbuf.len - m->len] |= 0x08; /* DUP [MQTT-3.3.1-1] */
    }
}

static void on_connack(struct tern_client *c, int64_t now, const struct mqtt_connack *a)
{
    const struct mqtt_props *p = &a->props;
    size_t need = p->reason_string.len + p->assigned_client_id.len + 2;
    if (c->state != TERN_STATE_WAIT_CONNACK || buf_reserve(&c->scratch, need)) {
        client_set_error(c, "unexpected CONNACK");
        conn_lost(c, now, TERN_EPROTO, -1, NULL);
        return;
    }
    c->scratch.len = 0;
    struct tern_connack ack = {
        .reason_code = c->version == MQTT_V5 ? a->rc : map_v3_connack(a->rc),
        .session_present = a->session_present,
        .server_keep_alive = c->opt.keep_alive,
        .receive_maximum = 65535,
        .session_expiry = c->opt.session_expiry,
    };
    if (p->has & MQTT_PROP_BIT(MQTT_PROP_REASON_STRING))
        ack.reason_string = scratch_cstr(c, p->reason_string);
    if (p->has & MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER))
        ack.assigned_client_id = scratch_cstr(c, p->assigned_client_id);
    if (p->has & MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE))
        ack.server_keep_alive = p->server_keep_alive;
    if (p->has & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM))
        ack.receive_maximum = p->receive_maximum;
    if (p->has & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL))
        ack.session_expiry = p->session_expiry;
    if (ack.reason_code != 0) {
        client_set_error(c, "connection refused: %s (0x%02x)%s%s",
                         codec_rc_name((uint8_t)ack.reason_code), ack.reason_code,
                         ack.reason_string ? ": " : "", ack.reason_string ? ack.reason_string : "");
        if (c->opt.cb.on_connect)
            c->opt.cb.on_connect(c, &ack, c->opt.cb.user);
        if (c->state == TERN_STATE_WAIT_CONNACK)
            conn_lost(c, now, TERN_EPERM, ack.reason_code, ack.reason_string);
        return;
    }
    c->state = TERN_STATE_CONNECTED;
    c->ever_connected = true;
    c->attempt = 0;
    c->keep_alive = ack.server_keep_alive;
    c->send_window =
        c->opt.max_inflight < ack.receive_maximum ? c->opt.max_inflight : ack.receive_maximum;
    c->broker_max_packet =
        (p->has & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE)) ? p->maximum_packet_size : 0;
    if (!a->session_present)
        memset(c->qos2_in, 0, sizeof c->qos2_in); /* the broker forgot its half too */
    c->last_recv_ms = now;
    resend_inflight(c);
    if (c->opt.cb.on_connect)
        c->opt.cb.on_connect(c, &ack, c->opt.cb.user);
}

/* Builds the public view of a received PUBLISH in scratch and calls on_message. */
static int deliver(struct tern_client *c, const struct mqtt_publish *pub)
{
    const struct mqtt_props *p = &pub->props;
    size_t need = pub->topic.len + 1 + p->content_type.len + 1 + p->response_topic.len + 1;
    uint32_t off = 0;
    struct mqtt_prop prop;
    if (p->user_count) {
        while (codec_props_next(p->raw, p->raw_len, &off, &prop) == 1)
            if (prop.id == MQTT_PROP_USER_PROPERTY)
                need += prop.str.len + prop.str2.len + 2;
        if (p->user_count > c->up_cap) {
            void *n = mem_realloc(&c->mem, MEM_MISC, c->up, p->user_count * sizeof *c->up);
            if (!n)
                return TERN_ENOMEM;
            c->up = n;
            c->up_cap = p->user_count;
        }
    }
    c->scratch.len = 0;
    if (buf_reserve(&c->scratch, need))
        return TERN_ENOMEM;
    struct tern_properties tp = {0};
    struct tern_message m = {
        .topic = scratch_cstr(c, pub->topic),
        .topic_len = pub->topic.len,
        .payload = pub->payload.p,
        .payload_len = pub->payload.len,
        .qos = pub->qos,
        .retain = pub->retain,
        .dup = pub->dup,
        .packet_id = pub->packet_id,
        .props = &tp,
    };
    if (p->has & MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR)) {
        tp.has |= TERN_PROP_PAYLOAD_FORMAT;
        tp.payload_format = p->payload_format;
    }
    if (p->has & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL)) {
        tp.has |= TERN_PROP_MESSAGE_EXPIRY;
        tp.message_expiry = p->message_expiry;
    }
    if (p->has & MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE)) {
        tp.has |= TERN_PROP_CONTENT_TYPE;
        tp.content_type = scratch_cstr(c, p->content_type);
    }
    if (p->has & MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC)) {
        tp.has |= TERN_PROP_RESPONSE_TOPIC;
        tp.response_topic = scratch_cstr(c, p->response_topic);
    }
    if (p->has & MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA)) {
        tp.has |= TERN_PROP_CORRELATION_DATA;
        tp.correlation_data = p->correlation_data.p;
        tp.correlation_len = p->correlation_data.len;
    }
    if (p->sub_id_count) {
        tp.has |= TERN_PROP_SUBSCRIPTION_ID;
        tp.subscription_id = p->sub_id;
    }
    off = 0;
    while (p->user_count && codec_props_next(p->raw, p->raw_len, &off, &prop) == 1) {
        if (prop.id != MQTT_PROP_USER_PROPERTY)
            continue;
        c->up[tp.n_user].key = scratch_cstr(c, prop.str);
        c->up[tp.n_user].value = scratch_cstr(c, prop.str2);
        tp.n_user++;
    }
    tp.user = c->up;
    if (c->opt.cb.on_message)
        c->opt.cb.on_message(c, &m, c->opt.cb.user);
    return 0;
}

static int on_publish(struct tern_client *c, const struct mqtt_publish *pub)
{
    if (pub->topic.len == 0) /* we never allow topic aliases (Topic Alias Maximum 0) */
        return TERN_EPROTO;
    if (pub->qos == 2) {
        /* method B of 4.3.3: deliver on PUBLISH, remember the id until PUBREL so a DUP re-send
         * is not delivered twice [MQTT-4.3.3-9] */
        bool seen = client_pid_in_use(c->qos2_in, pub->packet_id);
        if (!seen) {
            c->qos2_in[pub->packet_id >> 6] |= UINT64_C(1) << (pub->packet_id & 63);
            uint64_t gen = c->generation;
            int rc = deliver(c, pub);
            if (rc || gen != c->generation)
                return rc;
        }
        return send_ack(c, MQTT_PUBREC, pub->packet_id, 0);
    }
    uint64_t gen = c->generation;
    int rc = deliver(c, pub);
    if (rc || gen != c->generation || pub->qos == 0)
        return rc;
    return send_ack(c, MQTT_PUBACK, pub->packet_id, 0);
}

static void publish_done(struct tern_client *c, struct out_msg *m, int reason)
{
    uint16_t pid = m->packet_id;
    c->pub_inflight--;
    msg_free(c, m);
    if (c->opt.cb.on_publish)
        c->opt.cb.on_publish(c, pid, reason, c->opt.cb.user);
}

static int on_ack(struct tern_client *c, uint8_t type, const struct mqtt_ack *a)
{
    struct out_msg *m;
    switch (type) {
    case MQTT_PUBACK:
        m = list_find(&c->inflight, MQTT_PUBLISH, a->packet_id);
        if (m && m->qos == 1 && m->state == OUT_WAIT_ACK)
            publish_done(c, list_take(&c->inflight, MQTT_PUBLISH, a->packet_id), a->rc);
        return 0; /* an unknown id is ignored: it may be a late ack of a re-sent message */
    case MQTT_PUBREC:
        m = list_find(&c->inflight, MQTT_PUBLISH, a->packet_id);
        if (!m || m->qos != 2)
            return send_ack(c, MQTT_PUBREL, a->packet_id, MQTT_RC_PACKET_IDENTIFIER_NOT_FOUND);
        if (a->rc >= 0x80) { /* refused: the exchange ends here [MQTT-4.3.3-4] */
            publish_done(c, list_take(&c->inflight, MQTT_PUBLISH, a->packet_id), a->rc);
            return 0;
        }
        m->state = OUT_WAIT_COMP;
        return send_ack(c, MQTT_PUBREL, a->packet_id, 0);
    case MQTT_PUBCOMP:
        m = list_find(&c->inflight, MQTT_PUBLISH, a->packet_id);
        if (m && m->state == OUT_WAIT_COMP)
            publish_done(c, list_take(&c->inflight, MQTT_PUBLISH, a->packet_id), a->rc);
        return 0;
    case MQTT_PUBREL: {
        bool known = client_pid_in_use(c->qos2_in, a->packet_id);
        client_pid_release(c->qos2_in, a->packet_id);
        return send_ack(c, MQTT_PUBCOMP, a->packet_id,
                        known ? 0 : MQTT_RC_PACKET_IDENTIFIER_NOT_FOUND);
    }
    }
    return 0;
}

static void on_suback(struct tern_client *c, uint8_t type, const struct mqtt_suback *s)
{
    uint8_t req = type == MQTT_SUBACK ? MQTT_SUBSCRIBE : MQTT_UNSUBSCRIBE;
    struct out_msg *m = list_take(&c->inflight, req, s->packet_id);
    if (!m)
        return;
    msg_free(c, m);
    void (*cb)(tern_client *, uint16_t, const uint8_t *, size_t, void *) =
        type == MQTT_SUBACK ? c->opt.cb.on_subscribe : c->opt.cb.on_unsubscribe;
    if (cb)
        cb(c, s->packet_id, s->rcs, s->count, c->opt.cb.user);
}

/* Handles one decoded packet. Returns an error to drop the connection. */
static int handle(struct tern_client *c, int64_t now, const struct mqtt_packet *p)
{
    if (c->state == TERN_STATE_WAIT_CONNACK && p->type != MQTT_CONNACK) {
        client_set_error(c, "expected CONNACK, got %s", codec_type_name(p->type));
        return TERN_EPROTO;
    }
    switch (p->type) {
    case MQTT_CONNACK: on_connack(c, now, &p->u.connack); return 0;
    case MQTT_PUBLISH: return on_publish(c, &p->u.publish);
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: return on_ack(c, p->type, &p->u.ack);
    case MQTT_SUBACK:
    case MQTT_UNSUBACK: on_suback(c, p->type, &p->u.suback); return 0;
    case MQTT_PINGRESP: c->ping_outstanding = false; return 0;
    case MQTT_DISCONNECT: {
        const struct mqtt_props *pr = &p->u.reason.props;
        char rs[128] = "";
        if (pr->has & MQTT_PROP_BIT(MQTT_PROP_REASON_STRING))
            snprintf(rs, sizeof rs, "%.*s", (int)pr->reason_string.len,
                     (const char *)pr->reason_string.p);
        client_set_error(c, "disconnected by the broker: %s (0x%02x)%s%s",
                         codec_rc_name(p->u.reason.rc), p->u.reason.rc, rs[0] ? ": " : "", rs);
        conn_lost(c, now, TERN_ECLOSED, p->u.reason.rc, rs[0] ? rs : NULL);
        return 0;
    }
    default:
        client_set_error(c, "unexpected %s from the broker", codec_type_name(p->type));
        return TERN_EPROTO;
    }
}

static void decode_all(struct tern_client *c, int64_t now)
{
    uint64_t gen = c->generation;
    size_t off = 0;
    uint32_t maxp = c->opt.max_packet_size;
    while (off < c->rbuf.len && gen == c->generation) {
        struct mqtt_packet p;
        size_t used = 0;
        int rc = codec_decode(c->rbuf.data + off, c->rbuf.len - off, c->version, maxp, &p, &used);
        if (rc == TERN_EAGAIN)
            break;
        if (rc) {
            client_set_error(c, "bad packet from the broker: %s", tern_strerror(rc));
            conn_lost(c, now, rc, -1, NULL);
            return;
        }
        /* the packet views point into rbuf: consume only after handling it */
        rc = handle(c, now, &p);
        if (gen != c->generation)
            return; /* the connection ended (rbuf was reset) */
        off += used;
        if (rc) {
            if (!c->error[0])
                client_set_error(c, "%s", tern_strerror(rc));
            conn_lost(c, now, rc, -1, NULL);
            return;
        }
    }
    if (gen == c->generation && off)
        buf_consume(&c->rbuf, off);
}

static void do_read(struct tern_client *c, int64_t now)
{
    uint64_t gen = c->generation;
    for (int i = 0; i < 16 && gen == c->generation; i++) {
        if (buf_reserve(&c->rbuf, READ_CHUNK)) {
            client_set_error(c, "packet from the broker too large");
            conn_lost(c, now, TERN_ETOOBIG, -1, NULL);
            return;
        }
        long n = c->tr.ops->read(&c->tr, c->rbuf.data + c->rbuf.len, READ_CHUNK);
        if (n == TERN_EAGAIN)
            return;
        if (n < 0) {
            if (n == TERN_ECLOSED)
                client_set_error(c, "connection closed by the broker");
            else
                client_set_error(c, "%s", c->tr.error);
            conn_lost(c, now, (int)n, -1, NULL);
            return;
        }
        c->rbuf.len += (size_t)n;
        c->last_recv_ms = now;
        decode_all(c, now);
        if (n < READ_CHUNK)
            return;
    }
}

static bool window_open(const struct tern_client *c, const struct out_msg *m)
{
    return m->type != MQTT_PUBLISH || m->qos == 0 || c->pub_inflight < c->send_window;
}

/* Moves queued messages into wbuf, in order, while the window allows. */
static void pump_queue(struct tern_client *c)
{
    while (c->queue.head && c->wbuf.len < WRITE_BATCH && window_open(c, c->queue.head)) {
        struct out_msg *m = c->queue.head;
        if (m->type == MQTT_PUBLISH && c->broker_max_packet && m->len > c->broker_max_packet) {
            list_pop(&c->queue); /* [MQTT-3.1.2-24]: never send what the broker refuses */
            client_set_error(c, "message of %u bytes exceeds the broker's maximum packet size %u",
                             m->len, c->broker_max_packet);
            uint16_t pid = m->packet_id;
            msg_free(c, m);
            if (pid && c->opt.cb.on_publish)
                c->opt.cb.on_publish(c, pid, -1, c->opt.cb.user);
            continue;
        }
        if (buf_append(&c->wbuf, m->data, m->len))
            return;
        list_pop(&c->queue);
        if (m->type == MQTT_PUBLISH && m->qos == 0) {
            msg_free(c, m);
            continue;
        }
        m->state = OUT_WAIT_ACK;
        if (m->type == MQTT_PUBLISH)
            c->pub_inflight++;
        list_push(&c->inflight, m);
    }
}

static void do_write(struct tern_client *c, int64_t now)
{
    while (c->wbuf.len) {
        long n = c->tr.ops->write(&c->tr, c->wbuf.data, c->wbuf.len);
        if (n == TERN_EAGAIN || n == 0)
            return;
        if (n < 0) {
            client_set_error(c, "%s", c->tr.error);
            conn_lost(c, now, (int)n, -1, NULL);
            return;
        }
        buf_consume(&c->wbuf, (size_t)n);
        c->last_send_ms = now;
    }
}

static void run_timers(struct tern_client *c, int64_t now)
{
    switch (c->state) {
    case TERN_STATE_CONNECTING:
    case TERN_STATE_WAIT_CONNACK:
        if (now >= c->deadline_ms) {
            client_set_error(c, "%s timed out after %u ms",
                             c->state == TERN_STATE_CONNECTING ? "connect" : "waiting for CONNACK",
                             c->opt.connect_timeout_ms);
            conn_lost(c, now, TERN_EIO, -1, NULL);
        }
        return;
    case TERN_STATE_CONNECTED:
        if (!c->keep_alive)
            return;
        if (c->ping_outstanding && now >= c->deadline_ms) {
            client_set_error(c, "no PINGRESP within the keep-alive of %u s", c->keep_alive);
            conn_lost(c, now, TERN_EIO, -1, NULL);
        } else if (!c->ping_outstanding && now - c->last_send_ms >= c->keep_alive * 1000LL) {
            struct mqtt_packet p = {.type = MQTT_PINGREQ};
            if (send_packet(c, &p) == 0) {
                c->ping_outstanding = true;
                c->deadline_ms = now + c->keep_alive * 1000LL;
                c->last_send_ms = now;
            }
        }
        return;
    case TERN_STATE_BACKOFF:
        if (now >= c->deadline_ms)
            (void)client_begin_connect(c, now);
        return;
    case TERN_STATE_CLOSING: /* handled by finish_close after the write */
    case TERN_STATE_IDLE: return;
    }
}

/* CLOSING ends once the DISCONNECT is written (or the deadline passed). */
static void finish_close(struct tern_client *c, int64_t now)
{
    if (c->state != TERN_STATE_CLOSING || (c->wbuf.len && now < c->deadline_ms))
        return;
    close_transport(c);
    c->state = TERN_STATE_IDLE;
    c->error[0] = 0;
    if (c->opt.cb.on_disconnect) {
        struct tern_disconnect d = {0, -1, NULL, "disconnected", false};
        c->opt.cb.on_disconnect(c, &d, c->opt.cb.user);
    }
}

void client_process(struct tern_client *c, int64_t now_ms, bool readable, bool writable)
{
    if (c->state == TERN_STATE_CONNECTING && writable) {
        int rc = c->tr.ops->finish(&c->tr);
        if (rc == 0)
            rc = send_connect(c, now_ms);
        if (rc && rc != TERN_EAGAIN) {
            client_set_error(c, "%s", c->tr.error[0] ? c->tr.error : tern_strerror(rc));
            conn_lost(c, now_ms, rc, -1, NULL);
        }
    }
    bool live = c->state == TERN_STATE_WAIT_CONNACK || c->state == TERN_STATE_CONNECTED ||
                c->state == TERN_STATE_CLOSING;
    if (live && readable)
        do_read(c, now_ms);
    /* timers before writing, so a PINGREQ or a reconnect's CONNECT goes out in this round */
    run_timers(c, now_ms);
    if (c->state == TERN_STATE_CONNECTED)
        pump_queue(c);
    live = c->state == TERN_STATE_WAIT_CONNACK || c->state == TERN_STATE_CONNECTED ||
           c->state == TERN_STATE_CLOSING;
    if (live && (writable || c->wbuf.len))
        do_write(c, now_ms);
    /* a write may have freed room in wbuf: fill it again for the next round */
    if (c->state == TERN_STATE_CONNECTED)
        pump_queue(c);
    finish_close(c, now_ms);
}

int client_timeout_at(const struct tern_client *c, int64_t now_ms)
{
    int64_t at;
    switch (c->state) {
    case TERN_STATE_IDLE: return -1;
    case TERN_STATE_CONNECTED:
        if (!c->keep_alive)
            return -1;
        at = c->ping_outstanding ? c->deadline_ms : c->last_send_ms + c->keep_alive * 1000LL;
        break;
    default: at = c->deadline_ms; break;
    }
    int64_t d = at - now_ms;
    return d < 0 ? 0 : d > 3600000 ? 3600000 : (int)d;
}

int client_begin_close(struct tern_client *c, int64_t now_ms, int reason_code)
{
    c->user_closing = true;
    if (c->state == TERN_STATE_IDLE)
        return 0;
    if (c->state != TERN_STATE_CONNECTED) {
        close_transport(c);
        c->state = TERN_STATE_IDLE;
        return 0;
    }
    struct mqtt_packet p = {.type = MQTT_DISCONNECT};
    p.u.reason.rc = (uint8_t)reason_code;
    int rc = send_packet(c, &p);
    c->state = TERN_STATE_CLOSING;
    c->deadline_ms = now_ms + 2000;
    return rc;
}

void client_drop_messages(struct tern_client *c)
{
    struct out_msg *m;
    while ((m = list_pop(&c->queue)))
        msg_free(c, m);
    while ((m = list_pop(&c->inflight)))
        msg_free(c, m);
    c->pub_inflight = 0;
}

void client_enqueue(struct tern_client *c, struct out_msg *m)
{
    m->state = OUT_QUEUED;
    list_push(&c->queue, m);
}

bool client_wants_write(const struct tern_client *c)
{
    if (c->state == TERN_STATE_CONNECTING || c->wbuf.len)
        return true;
    return c->state == TERN_STATE_CONNECTED && c->queue.head && window_open(c, c->queue.head);
}
