/* client.c - the MQTT protocol on one connection: CONNECT and session attach/takeover,
 * PUBLISH in (QoS 0/1/2), acknowledgements, SUBSCRIBE/UNSUBSCRIBE with retained delivery,
 * PINGREQ, DISCONNECT, keep-alive, wills and session expiry.
 *
 * Runs on the worker that owns the connection; after CONNECT that is always the session's home
 * worker (connections migrate there first), so sessions are touched by one thread only.
 * Every protocol violation ends in client_close() with a log line naming the client, after a
 * v5 DISCONNECT with the matching reason code where the spec asks for one. */
#include <stdio.h>
#include <string.h>

#include "broker/broker.h"
#include "common/utf8.h"
#include "router/topic.h"

#define OUT_HIGH_WATER (1u << 20) /* above this much pending output, QoS 0 is dropped */
#define MAX_QOS2_IN    65535

void worker_request_migration(struct client *c, uint32_t to);
size_t client_process(struct client *c, const uint8_t *data, size_t len);
void client_on_drained(struct client *c);

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* ---- output helpers ---- */

static void send_packet(struct client *c, const struct mqtt_packet *p)
{
    if (sess_write_packet(&c->out, c->version ? c->version : MQTT_V311, p)) {
        client_close(c, LOG_WARN, "output buffer full");
        return;
    }
    client_mark_dirty(c);
}

static void send_ack(struct client *c, uint8_t type, uint16_t pid, uint8_t rc)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = type;
    p.u.ack.packet_id = pid;
    p.u.ack.rc = rc;
    send_packet(c, &p);
}

static void send_connack(struct client *c, bool present, uint8_t rc, const struct mqtt_props *props)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_CONNACK;
    p.u.connack.session_present = present;
    p.u.connack.rc = rc;
    if (props)
        p.u.connack.props = *props;
    send_packet(c, &p);
}

/* Ends the connection for a protocol problem: v5 clients get a DISCONNECT with rc first
 * [MQTT-4.13.1-1]; v3 connections are just closed [MQTT-4.8.0-1]. */
static void fail(struct client *c, uint8_t rc, const char *why)
{
    if (c->state == CS_CONNECTED && c->version == MQTT_V5) {
        struct mqtt_packet p;
        memset(&p, 0, sizeof p);
        p.type = MQTT_DISCONNECT;
        p.u.reason.rc = rc;
        send_packet(c, &p);
    }
    client_close(c, LOG_NOTICE, why);
}

/* Queues a v5 DISCONNECT with reason rc (no close). */
void client_send_disconnect(struct client *c, uint8_t rc);
void client_send_disconnect(struct client *c, uint8_t rc)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_DISCONNECT;
    p.u.reason.rc = rc;
    send_packet(c, &p);
}

static uint8_t v3_or_v5(struct client *c, uint8_t v3, uint8_t v5)
{
    return c->version == MQTT_V5 ? v5 : v3;
}

/* ---- sessions ---- */

static void unsubscribe_all(struct worker *w, struct session *s)
{
    if (!s->nsubs)
        return;
    subs_wrlock(w);
    for (uint32_t i = 0; i < s->nsubs; i++)
        trie_unsubscribe(w->b->subs, s->subs[i].filter, s->subs[i].len, s->id);
    subs_wrunlock(w);
}

static void publish_will(struct worker *w, struct session *s)
{
    struct msg *m = s->will;
    if (!m)
        return;
    s->will = NULL;
    wheel_del(&s->will_timer);
    struct acl *acl = atomic_load_explicit(&w->b->acl, memory_order_acquire);
    if (acl && !acl_allows(acl, s->username, s->client_id, s->client_id_len, msg_topic(m),
                           m->topic_len, ACL_WRITE)) {
        log_write(&w->b->log, LOG_NOTICE, "will of '%.*s' on '%.*s' denied by ACL",
                  (int)s->client_id_len, (const char *)s->client_id, (int)m->topic_len,
                  (const char *)msg_topic(m));
        msg_unref(m);
        return;
    }
    if (m->retain && store_retain_put(w->b->store, m))
        log_write(&w->b->log, LOG_WARN, "out of memory storing a retained will");
    route_publish(w, m);
    msg_unref(m);
}

static void destroy_session(struct worker *w, struct session *s)
{
    publish_will(w, s); /* a delayed will goes out when the session ends first */
    unsubscribe_all(w, s);
    hmap_del(&w->sessions, s->client_id, s->client_id_len);
    hmap_del(&w->session_ids, &s->id, sizeof s->id);
    wheel_del(&s->expiry_timer);
    wheel_del(&s->will_timer);
    atomic_fetch_sub_explicit(&w->st.clients_total, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&w->st.queued, s->q_count, memory_order_relaxed);
    sess_free(s);
}

void client_free_sessions(struct worker *w)
{
    for (size_t i = 0; i < w->sessions.cap; i++) {
        if (!w->sessions.slots[i].hash)
            continue;
        struct session *s = w->sessions.slots[i].value;
        msg_unref(s->will);
        s->will = NULL;
        sess_free(s);
    }
}

static bool has_shared_subs(const struct session *s)
{
    for (uint32_t i = 0; i < s->nsubs; i++)
        if (s->subs[i].len > 7 && memcmp(s->subs[i].filter, "$share/", 7) == 0)
            return true;
    return false;
}

void client_detach(struct client *c)
{
    struct session *s = c->sess;
    if (!s)
        return;
    struct worker *w = c->w;
    c->sess = NULL;
    s->client = NULL;
    atomic_fetch_sub_explicit(&w->st.clients_connected, 1, memory_order_relaxed);
    s->disconnected_s = w->now_s;
    if (has_shared_subs(s)) {
        /* a shared subscription's messages go to the members still connected */
        uint32_t before = s->q_count;
        uint32_t moved = route_share_release(w, s);
        atomic_fetch_sub_explicit(&w->st.queued, before > s->q_count ? before - s->q_count : 0,
                                  memory_order_relaxed);
        if (moved)
            log_write(&w->b->log, LOG_INFO,
                      "session '%.*s': %u shared-subscription messages "
                      "passed to other group members",
                      (int)s->client_id_len, (const char *)s->client_id, moved);
    }
    if (!c->send_will) {
        sess_set_will(s, NULL, 0); /* DISCONNECT deletes the will [MQTT-3.1.2-10] */
    } else if (s->will) {
        if (s->will_delay_s && s->expiry_s) {
            s->will_timer.kind = 3;
            /* one-second ticks: +1 so it never fires before the full delay [MQTT-3.1.3-9] */
            wheel_add(&w->wheel, &s->will_timer, w->now_s + s->will_delay_s + 1);
        } else {
            publish_will(w, s); /* [MQTT-3.1.2-8] */
        }
    }
    if (s->expiry_s == 0) {
        destroy_session(w, s); /* clean session ends with the connection [MQTT-3.1.2-6] */
        return;
    }
    if (s->expiry_s != UINT32_MAX) {
        s->expiry_timer.kind = 2;
        /* +1: the session lives at least its whole expiry interval */
        wheel_add(&w->wheel, &s->expiry_timer, w->now_s + (int64_t)s->expiry_s + 1);
    }
}

void client_on_timer(struct worker *w, struct timer *t)
{
    if (t->kind == 1) {
        struct client *c = container_of(t, struct client, ka_timer);
        if (c->state == CS_NEW || c->state == CS_AUTH) {
            client_close(c, LOG_NOTICE,
                         c->state == CS_NEW
                             ? "no CONNECT received within connect_timeout"
                             : "authentication not completed within connect_timeout");
            return;
        }
        if (c->state != CS_CONNECTED || !c->keepalive)
            return;
        /* closed after 1.5 times the keep-alive without a packet [MQTT-3.1.2-24] */
        int64_t deadline = c->last_rx_ms + (int64_t)c->keepalive * 1500;
        if (w->now_ms >= deadline) {
            fail(c, MQTT_RC_KEEP_ALIVE_TIMEOUT, "keep-alive timeout");
            return;
        }
        wheel_add(&w->wheel, t, (deadline + 999) / 1000);
    } else if (t->kind == 2) {
        struct session *s = container_of(t, struct session, expiry_timer);
        if (s->client)
            return;
        log_write(&w->b->log, LOG_NOTICE, "session '%.*s' expired after %u s offline",
                  (int)s->client_id_len, (const char *)s->client_id, s->expiry_s);
        STAT_ADD(w, clients_expired, 1);
        destroy_session(w, s);
    } else if (t->kind == 3) {
        struct session *s = container_of(t, struct session, will_timer);
        publish_will(w, s);
    }
}

/* ---- CONNECT ---- */

/* Copies the will properties that travel with the message (all but Will Delay Interval and
 * Message Expiry Interval, which become fields of the msg). */
static int forwardable_props(const struct mqtt_props *pr, uint8_t *dst, uint32_t *dst_len)
{
    uint32_t off = 0, n = 0;
    struct mqtt_prop prop;
    for (;;) {
        uint32_t start = off;
        if (codec_props_next(pr->raw, pr->raw_len, &off, &prop) != 1)
            break;
        if (prop.id == MQTT_PROP_WILL_DELAY_INTERVAL ||
            prop.id == MQTT_PROP_MESSAGE_EXPIRY_INTERVAL || prop.id == MQTT_PROP_TOPIC_ALIAS ||
            prop.id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER)
            continue;
        memcpy(dst + n, pr->raw + start, off - start);
        n += off - start;
    }
    *dst_len = n;
    return 0;
}

static struct msg *make_msg(struct worker *w, const struct mqtt_str *topic,
                            const struct mqtt_str *payload, const struct mqtt_props *props,
                            uint8_t version, uint8_t qos, bool retain, uint64_t origin)
{
    uint8_t stackbuf[1024];
    uint8_t *fp = stackbuf;
    uint32_t fl = 0;
    if (version == MQTT_V5 && props->raw_len) {
        if (props->raw_len > sizeof stackbuf) {
            fp = mem_alloc(&w->b->mem, MEM_MSG, props->raw_len);
            if (!fp)
                return NULL;
        }
        forwardable_props(props, fp, &fl);
    }
    struct msg *m = msg_new(&w->b->mem, &w->pool, topic->p, (uint16_t)topic->len, fl ? fp : NULL,
                            fl, payload->p, payload->len, qos, retain);
    if (fp != stackbuf)
        mem_free(&w->b->mem, MEM_MSG, fp);
    if (!m)
        return NULL;
    m->origin_session = origin;
    if (version == MQTT_V5 && (props->has & MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL)))
        m->expiry_at_ms = w->now_ms + (int64_t)props->message_expiry * 1000;
    return m;
}

/* Picks "<prefix><n>" ids until one is homed on this worker, so the session needs no move. */
static int assign_client_id(struct client *c, char *out, size_t outlen)
{
    struct broker *b = c->w->b;
    const char *prefix = broker_conf(b)->auto_id_prefix ? broker_conf(b)->auto_id_prefix : "auto-";
    for (;;) {
        uint64_t n = atomic_fetch_add(&b->next_auto_id, 1);
        int len = snprintf(out, outlen, "%s%016llx", prefix,
                           (unsigned long long)(n * 0x9E3779B97F4A7C15ull));
        if (len <= 0 || (size_t)len >= outlen)
            return -1;
        if (hmap_hash(out, (size_t)len) % b->nworkers == c->w->index)
            return len;
    }
}

static void refuse(struct client *c, uint8_t v3rc, uint8_t v5rc, const char *why)
{
    send_connack(c, false, v3_or_v5(c, v3rc, v5rc), NULL);
    client_close(c, LOG_NOTICE, why);
}

static struct session *attach_session(struct client *c, const uint8_t *cid, uint16_t cid_len,
                                      bool clean, bool *present)
{
    struct worker *w = c->w;
    struct session *s = hmap_get(&w->sessions, cid, cid_len);
    if (s && s->client) {
        /* takeover: the older connection is closed and its will published [MQTT-3.1.4-2] */
        struct client *old = s->client;
        if (old->version == MQTT_V5 && old->state == CS_CONNECTED) {
            struct mqtt_packet p;
            memset(&p, 0, sizeof p);
            p.type = MQTT_DISCONNECT;
            p.u.reason.rc = MQTT_RC_SESSION_TAKEN_OVER;
            send_packet(old, &p);
        }
        client_close(old, LOG_NOTICE, "session taken over by a new connection");
        client_detach(old);
        s = hmap_get(&w->sessions, cid, cid_len); /* detach may have ended it */
    }
    if (s && clean) {
        destroy_session(w, s); /* [MQTT-3.1.2-6] */
        s = NULL;
    }
    *present = s != NULL; /* [MQTT-3.2.2-1] [MQTT-3.2.2-2] */
    if (s) {
        wheel_del(&s->expiry_timer);
        if (s->will) { /* a delayed will is cancelled by the session resuming */
            sess_set_will(s, NULL, 0);
            wheel_del(&s->will_timer);
        }
        return s;
    }
    s = sess_new(&w->b->mem, atomic_fetch_add(&w->b->next_session_id, 1), cid, cid_len, w->index);
    if (!s)
        return NULL;
    if (hmap_put(&w->sessions, s->client_id, s->client_id_len, s) ||
        hmap_put(&w->session_ids, &s->id, sizeof s->id, s)) {
        hmap_del(&w->sessions, s->client_id, s->client_id_len);
        sess_free(s);
        return NULL;
    }
    STAT_ADD(w, clients_total, 1);
    return s;
}

static bool name_is(const struct mqtt_str *s, const char *lit);

void client_free_auth(struct client *c)
{
    scram_free(c->scram);
    c->scram = NULL;
    c->scram_final = NULL;
    buf_free(&c->pending_connect);
    mem_free(&c->w->b->mem, MEM_AUTH, c->auth_user);
    c->auth_user = NULL;
}

static void send_auth(struct client *c, uint8_t rc, const uint8_t *data, size_t len)
{
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_AUTH;
    p.u.reason.rc = rc;
    p.u.reason.props.has = MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD);
    p.u.reason.props.auth_method.p = (const uint8_t *)AUTH_SCRAM_METHOD;
    p.u.reason.props.auth_method.len = (uint32_t)strlen(AUTH_SCRAM_METHOD);
    if (data) {
        p.u.reason.props.has |= MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_DATA);
        p.u.reason.props.auth_data.p = data;
        p.u.reason.props.auth_data.len = (uint32_t)len;
    }
    send_packet(c, &p);
}

/* CONNECT-time authentication. Returns true to go on with the CONNECT; false when the client
 * was refused (CONNACK sent, connection closing) or an AUTH exchange started. */
static bool authenticate(struct client *c, const struct mqtt_connect *cn)
{
    struct broker *b = c->w->b;
    struct config *conf = broker_conf(b);
    struct auth_db *db = atomic_load_explicit(&b->auth, memory_order_acquire);
    if (b->listeners[c->listener].conf->use_identity_as_username) {
        /* the verified certificate is the identity; the CONNECT user name is ignored */
        if (!c->cert_user) {
            refuse(c, MQTT3_CONNACK_NOT_AUTHORIZED, MQTT_RC_NOT_AUTHORIZED,
                   "no verified client certificate (use_identity_as_username)");
            return false;
        }
        mem_free(&b->mem, MEM_AUTH, c->auth_user);
        c->auth_user = mem_strndup(&b->mem, MEM_AUTH, c->cert_user, strlen(c->cert_user));
        return true;
    }
    if (c->version == MQTT_V5 && (cn->props.has & MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD))) {
        if (c->auth_done)
            return true; /* the CONNECT again, after a successful AUTH exchange */
        if (!db || !name_is(&cn->props.auth_method, AUTH_SCRAM_METHOD)) {
            refuse(c, MQTT3_CONNACK_NOT_AUTHORIZED, MQTT_RC_BAD_AUTHENTICATION_METHOD,
                   "unsupported authentication method"); /* [MQTT-4.12.0-1] */
            return false;
        }
        const uint8_t *out;
        size_t outlen;
        int rc = scram_start(&b->mem, db, cn->props.auth_data.p, cn->props.auth_data.len, &c->scram,
                             &out, &outlen);
        if (rc) {
            refuse(c, MQTT3_CONNACK_NOT_AUTHORIZED, MQTT_RC_NOT_AUTHORIZED,
                   "malformed SCRAM client-first-message");
            return false;
        }
        if (buf_append(&c->pending_connect, c->cur_pkt, c->cur_len)) {
            refuse(c, MQTT3_CONNACK_SERVER_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE,
                   "out of memory");
            return false;
        }
        c->state = CS_AUTH;
        c->auth_scram = true;
        send_auth(c, MQTT_RC_CONTINUE_AUTHENTICATION, out, outlen); /* [MQTT-4.12.0-2] */
        return false;
    }
    if (cn->has_username && db) {
        if (!cn->has_password || !auth_check_password(db, cn->username.p, cn->username.len,
                                                      cn->password.p, cn->password.len)) {
            char why[320];
            snprintf(why, sizeof why, "bad user name or password for user '%.*s'",
                     (int)(cn->username.len > 256 ? 256 : cn->username.len),
                     (const char *)cn->username.p);
            refuse(c, MQTT3_CONNACK_BAD_USERNAME_PASSWORD, MQTT_RC_BAD_USER_NAME_OR_PASSWORD, why);
            return false;
        }
        c->auth_user =
            mem_strndup(&b->mem, MEM_AUTH, (const char *)cn->username.p, cn->username.len);
        return true;
    }
    /* without a password database a user name proves nothing: the client is anonymous */
    if (!conf_listener_anonymous(conf, c->listener)) {
        refuse(c, MQTT3_CONNACK_NOT_AUTHORIZED, MQTT_RC_NOT_AUTHORIZED,
               cn->has_username ? "not authorised: no password_file to check the user name"
                                : "anonymous clients are not allowed on this listener");
        return false;
    }
    return true;
}

static void on_connect(struct client *c, const struct mqtt_packet *pk);

/* AUTH: continues the SCRAM exchange of a CONNECT, or re-authentication [MQTT-4.12.1-1]. */
static void on_auth(struct client *c, const struct mqtt_packet *p)
{
    const struct mqtt_reason *r = &p->u.reason;
    struct auth_db *db = atomic_load_explicit(&c->w->b->auth, memory_order_acquire);
    if (!c->auth_scram || !(r->props.has & MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD)) ||
        !name_is(&r->props.auth_method, AUTH_SCRAM_METHOD)) {
        /* AUTH without the method of the CONNECT [MQTT-4.12.0-5] [MQTT-4.12.1-1] */
        if (c->state == CS_AUTH) {
            refuse(c, 0, MQTT_RC_PROTOCOL_ERROR, "AUTH with a different method");
            return;
        }
        fail(c, MQTT_RC_PROTOCOL_ERROR, "AUTH without the connection's authentication method");
        return;
    }
    const uint8_t *out;
    size_t outlen;
    if (c->state == CS_AUTH) {
        if (r->rc != MQTT_RC_CONTINUE_AUTHENTICATION || !c->scram) {
            refuse(c, 0, MQTT_RC_PROTOCOL_ERROR, "unexpected AUTH reason code");
            return;
        }
        if (scram_finish(c->scram, r->props.auth_data.p, r->props.auth_data.len, &out, &outlen)) {
            refuse(c, 0, MQTT_RC_BAD_USER_NAME_OR_PASSWORD, "SCRAM authentication failed");
            return;
        }
        c->auth_done = true;
        c->scram_final = out;
        c->scram_final_len = outlen;
        c->auth_user = mem_strndup(&c->w->b->mem, MEM_AUTH, scram_user(c->scram),
                                   strlen(scram_user(c->scram)));
        /* continue the CONNECT that started the exchange */
        struct mqtt_packet pk;
        size_t used;
        if (codec_decode(c->pending_connect.data, c->pending_connect.len, MQTT_V5, 0, &pk, &used)) {
            refuse(c, 0, MQTT_RC_UNSPECIFIED_ERROR, "stored CONNECT no longer decodes");
            return;
        }
        c->state = CS_NEW;
        on_connect(c, &pk);
        scram_free(c->scram);
        c->scram = NULL;
        c->scram_final = NULL;
        return;
    }
    /* re-authentication on a connected client */
    if (r->rc == MQTT_RC_REAUTHENTICATE) {
        scram_free(c->scram);
        c->scram = NULL;
        if (!db || scram_start(&c->w->b->mem, db, r->props.auth_data.p, r->props.auth_data.len,
                               &c->scram, &out, &outlen)) {
            fail(c, MQTT_RC_NOT_AUTHORIZED, "re-authentication refused");
            return;
        }
        send_auth(c, MQTT_RC_CONTINUE_AUTHENTICATION, out, outlen);
        return;
    }
    if (r->rc == MQTT_RC_CONTINUE_AUTHENTICATION && c->scram) {
        if (scram_finish(c->scram, r->props.auth_data.p, r->props.auth_data.len, &out, &outlen)) {
            fail(c, MQTT_RC_NOT_AUTHORIZED, "re-authentication failed"); /* [MQTT-4.12.1-2] */
            return;
        }
        send_auth(c, MQTT_RC_SUCCESS, out, outlen);
        scram_free(c->scram);
        c->scram = NULL;
        return;
    }
    fail(c, MQTT_RC_PROTOCOL_ERROR, "unexpected AUTH reason code");
}

static bool name_is(const struct mqtt_str *s, const char *lit)
{
    return s->len == strlen(lit) && memcmp(s->p, lit, s->len) == 0;
}

static void on_connect(struct client *c, const struct mqtt_packet *pk)
{
    struct worker *w = c->w;
    struct broker *b = w->b;
    struct config *conf = broker_conf(b);
    const struct mqtt_connect *cn = &pk->u.connect;
    bool v31 = name_is(&cn->protocol_name, "MQIsdp") && cn->level == MQTT_V31;
    bool v311 =
        name_is(&cn->protocol_name, "MQTT") && (cn->level == MQTT_V311 || cn->level == MQTT_V5);
    if (!v31 && !v311) {
        /* [MQTT-3.1.2-2] unacceptable protocol level, then close */
        c->version = cn->level == MQTT_V5 ? MQTT_V5 : MQTT_V311;
        refuse(c, MQTT3_CONNACK_BAD_PROTOCOL_VERSION, MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION,
               "unsupported protocol version");
        return;
    }
    c->version = cn->level;
    char idbuf[128];
    const uint8_t *cid = cn->client_id.p;
    uint16_t cid_len = (uint16_t)cn->client_id.len;
    bool assigned = false;
    if (cid_len == 0) {
        /* 3.1 requires 1-23 characters; 3.1.1 needs clean session for an empty id
         * [MQTT-3.1.3-7] [MQTT-3.1.3-8]; v5 always assigns one [MQTT-3.1.3-6] */
        if (c->version == MQTT_V31 || (c->version == MQTT_V311 && !cn->clean) ||
            !conf->allow_zero_length_clientid) {
            refuse(c, MQTT3_CONNACK_IDENTIFIER_REJECTED, MQTT_RC_CLIENT_IDENTIFIER_NOT_VALID,
                   "empty client id refused");
            return;
        }
        int n = assign_client_id(c, idbuf, sizeof idbuf);
        if (n < 0) {
            refuse(c, MQTT3_CONNACK_SERVER_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE,
                   "cannot assign a client id");
            return;
        }
        cid = (const uint8_t *)idbuf;
        cid_len = (uint16_t)n;
        assigned = true;
    } else if (c->version == MQTT_V31 && cid_len > 23) {
        refuse(c, MQTT3_CONNACK_IDENTIFIER_REJECTED, MQTT_RC_CLIENT_IDENTIFIER_NOT_VALID,
               "MQTT 3.1 client id longer than 23 characters");
        return;
    }
    if (conf->server_redirect) {
        /* planned migration: v5 clients are told where to go [MQTT-4.11] */
        struct mqtt_props rp;
        memset(&rp, 0, sizeof rp);
        if (conf->server_reference && c->version == MQTT_V5) {
            rp.has |= MQTT_PROP_BIT(MQTT_PROP_SERVER_REFERENCE);
            rp.server_reference.p = (const uint8_t *)conf->server_reference;
            rp.server_reference.len = (uint32_t)strlen(conf->server_reference);
        }
        send_connack(c, false,
                     v3_or_v5(c, MQTT3_CONNACK_SERVER_UNAVAILABLE,
                              conf->server_redirect == 2 ? MQTT_RC_SERVER_MOVED
                                                         : MQTT_RC_USE_ANOTHER_SERVER),
                     &rp);
        client_close(c, LOG_INFO, "redirected to another server (server_redirect)");
        return;
    }
    if (cn->will) {
        if (!topic_name_valid(cn->will_topic.p, cn->will_topic.len)) {
            /* a CONNECT that does not conform: v3 closes without CONNACK [MQTT-3.1.4-1];
             * v5 may say why first */
            if (c->version == MQTT_V5)
                refuse(c, 0, MQTT_RC_TOPIC_NAME_INVALID, "invalid will topic");
            else
                client_close(c, LOG_NOTICE, "invalid will topic (wildcard or empty)");
            return;
        }
        if ((cn->will_props.has & MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC)) &&
            !topic_name_valid(cn->will_props.response_topic.p, cn->will_props.response_topic.len)) {
            refuse(c, MQTT3_CONNACK_IDENTIFIER_REJECTED, MQTT_RC_PROTOCOL_ERROR,
                   "will Response Topic with wildcards"); /* [MQTT-3.3.2-14] */
            return;
        }
        if (cn->will_qos > conf->max_qos) {
            refuse(c, MQTT3_CONNACK_SERVER_UNAVAILABLE, MQTT_RC_QOS_NOT_SUPPORTED,
                   "will QoS above max_qos"); /* [MQTT-3.2.2-12] */
            return;
        }
        if (cn->will_retain && !conf->retain_available) {
            refuse(c, MQTT3_CONNACK_SERVER_UNAVAILABLE, MQTT_RC_RETAIN_NOT_SUPPORTED,
                   "retained will but retain_available is false");
            return;
        }
    }
    /* the session lives on the worker its client id hashes to */
    uint32_t home = hmap_hash(cid, cid_len) % b->nworkers;
    if (home != w->index) {
        worker_request_migration(c, home);
        return;
    }
    if (!authenticate(c, cn))
        return; /* refused, or an AUTH exchange is now in progress */
    bool present;
    struct session *s = attach_session(c, cid, cid_len, cn->clean, &present);
    if (!s) {
        refuse(c, MQTT3_CONNACK_SERVER_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE, "out of memory");
        return;
    }
    s->version = c->version;
    if (c->version == MQTT_V5) {
        uint32_t e = (cn->props.has & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL))
                         ? cn->props.session_expiry
                         : 0;
        if (e == UINT32_MAX && conf->persistent_client_expiration > 0)
            e = (uint32_t)conf->persistent_client_expiration;
        s->expiry_s = e;
        s->clean = false;
    } else {
        s->clean = cn->clean;
        s->expiry_s = cn->clean ? 0
                      : conf->persistent_client_expiration > 0
                          ? (uint32_t)(conf->persistent_client_expiration > UINT32_MAX - 1
                                           ? UINT32_MAX - 1
                                           : conf->persistent_client_expiration)
                          : UINT32_MAX;
    }
    s->lim.max_inflight = (uint16_t)conf->max_inflight_messages;
    if (c->version == MQTT_V5 && (cn->props.has & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM)) &&
        cn->props.receive_maximum < s->lim.max_inflight)
        s->lim.max_inflight = cn->props.receive_maximum; /* [MQTT-3.3.4-9] */
    if (s->lim.max_inflight == 0)
        s->lim.max_inflight = 1;
    s->lim.max_queued = conf->max_queued_messages > 0 ? (uint32_t)conf->max_queued_messages : 0;
    s->lim.max_queued_bytes = conf->max_queued_bytes > 0 ? (uint64_t)conf->max_queued_bytes : 0;
    s->lim.queue_qos0 = conf->queue_qos0_messages;
    s->lim.max_packet_out = 0;
    uint16_t client_alias_max = 0;
    if (c->version == MQTT_V5) {
        if (cn->props.has & MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE))
            s->lim.max_packet_out = cn->props.maximum_packet_size;
        if (conf->topic_alias_out && (cn->props.has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM)))
            client_alias_max = cn->props.topic_alias_maximum;
        c->alias_max = (uint16_t)conf->max_topic_alias;
        c->recv_max = (uint16_t)conf->receive_maximum;
    }
    sess_reset_aliases(s, client_alias_max);
    if (cn->will) {
        struct msg *m = make_msg(w, &cn->will_topic, &cn->will_payload, &cn->will_props, c->version,
                                 cn->will_qos, cn->will_retain, s->id);
        if (!m) {
            refuse(c, MQTT3_CONNACK_SERVER_UNAVAILABLE, MQTT_RC_SERVER_UNAVAILABLE,
                   "out of memory");
            return;
        }
        uint32_t delay = (c->version == MQTT_V5 &&
                          (cn->will_props.has & MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY_INTERVAL)))
                             ? cn->will_props.will_delay
                             : 0;
        sess_set_will(s, m, delay);
    }
    mem_free(&b->mem, MEM_SESSION, s->username);
    s->username =
        c->auth_user ? mem_strndup(&b->mem, MEM_SESSION, c->auth_user, strlen(c->auth_user)) : NULL;
    c->sess = s;
    s->client = c;
    c->state = CS_CONNECTED;
    c->keepalive = cn->keep_alive;
    STAT_ADD(w, clients_connected, 1);
    uint64_t online = 0;
    for (uint32_t i = 0; i < b->nworkers; i++)
        online += atomic_load_explicit(&b->workers[i].st.clients_connected, memory_order_relaxed);
    uint64_t max = atomic_load(&b->clients_maximum);
    while (online > max && !atomic_compare_exchange_weak(&b->clients_maximum, &max, online)) {
    }

    struct mqtt_props props;
    char respinfo[512];
    memset(&props, 0, sizeof props);
    if (c->version == MQTT_V5) {
        if (assigned) {
            props.has |= MQTT_PROP_BIT(MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER);
            props.assigned_client_id.p = s->client_id;
            props.assigned_client_id.len = s->client_id_len;
        }
        if (conf->max_keepalive > 0 && c->keepalive > conf->max_keepalive) {
            c->keepalive = (uint16_t)conf->max_keepalive;
            props.has |= MQTT_PROP_BIT(MQTT_PROP_SERVER_KEEP_ALIVE);
            props.server_keep_alive = c->keepalive;
        }
        if (!conf->retain_available) {
            props.has |= MQTT_PROP_BIT(MQTT_PROP_RETAIN_AVAILABLE);
            props.retain_available = 0;
        }
        if (conf->max_qos < 2) {
            props.has |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_QOS);
            props.maximum_qos = (uint8_t)conf->max_qos;
        }
        if (conf->max_packet_size > 0) {
            props.has |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
            props.maximum_packet_size = (uint32_t)conf->max_packet_size;
        }
        if (c->alias_max) {
            props.has |= MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS_MAXIMUM);
            props.topic_alias_maximum = c->alias_max;
        }
        if (c->recv_max < 65535) {
            props.has |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM);
            props.receive_maximum = c->recv_max;
        }
        if ((cn->props.has & MQTT_PROP_BIT(MQTT_PROP_REQUEST_RESPONSE_INFORMATION)) &&
            cn->props.request_response_info) {
            /* Response Information: a topic prefix this client may use for responses */
            const char *pfx =
                conf->response_info_prefix ? conf->response_info_prefix : "responses/";
            int rn = snprintf(respinfo, sizeof respinfo, "%s%.*s", pfx, (int)s->client_id_len,
                              (const char *)s->client_id);
            if (rn > 0 && (size_t)rn < sizeof respinfo) {
                props.has |= MQTT_PROP_BIT(MQTT_PROP_RESPONSE_INFORMATION);
                props.response_info.p = (const uint8_t *)respinfo;
                props.response_info.len = (uint32_t)rn;
            }
        }
    }
    const uint8_t *ad = NULL;
    size_t adl = 0;
    if (c->scram) {
        /* enhanced authentication succeeded: method echoed, server-final in Authentication
         * Data [MQTT-4.12.0-?] */
        props.has |= MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_METHOD) |
                     MQTT_PROP_BIT(MQTT_PROP_AUTHENTICATION_DATA);
        props.auth_method.p = (const uint8_t *)AUTH_SCRAM_METHOD;
        props.auth_method.len = (uint32_t)strlen(AUTH_SCRAM_METHOD);
        ad = c->scram_final;
        adl = c->scram_final_len;
        props.auth_data.p = ad;
        props.auth_data.len = (uint32_t)adl;
    }
    send_connack(c, present, 0, &props);
    buf_free(&c->pending_connect);
    wheel_del(&c->ka_timer);
    if (c->keepalive)
        wheel_add(&w->wheel, &c->ka_timer, w->now_s + (c->keepalive * 3 + 1) / 2);
    char name[160];
    log_write(&b->log, LOG_INFO, "client %s connected (protocol %u, clean %d, keep-alive %u)%s",
              client_name(c, name, sizeof name), c->version, cn->clean, c->keepalive,
              present ? ", session resumed" : "");
    /* resend what was in flight and what queued while offline [MQTT-4.4.0-1] */
    uint32_t queued_before = s->q_count;
    if (sess_resume(s, &c->out, w->now_ms))
        client_close(c, LOG_WARN, "output buffer full while resuming the session");
    atomic_fetch_sub_explicit(&w->st.queued, queued_before - s->q_count, memory_order_relaxed);
    client_mark_dirty(c);
}

/* ---- delivery ---- */

void client_deliver(struct worker *w, struct session *s, struct msg *m, uint8_t qos, bool retain,
                    uint32_t flags)
{
    struct client *c = s->client;
    struct acl *acl = atomic_load_explicit(&w->b->acl, memory_order_acquire);
    if (acl && !acl_allows(acl, s->username, s->client_id, s->client_id_len, msg_topic(m),
                           m->topic_len, ACL_READ))
        return; /* never delivered where the subscriber may not read, wildcards included */
    struct outq *out = c && c->state == CS_CONNECTED ? &c->out : NULL;
    if (out && out->pending > OUT_HIGH_WATER) {
        /* slow consumer: QoS 0 is dropped for it alone; QoS 1/2 waits in its queue */
        if (qos == 0) {
            STAT_ADD(w, msgs_dropped, 1);
            atomic_fetch_add_explicit(&w->b->limit_hits[LIMIT_SLOW_CONSUMER], 1,
                                      memory_order_relaxed);
            s->dropped++;
            return;
        }
        out = NULL;
    }
    uint32_t qbefore = s->q_count;
    enum sess_deliver_result r = sess_deliver(s, out, m, qos, retain, flags, w->now_ms);
    if (s->q_count > qbefore)
        STAT_ADD(w, queued, s->q_count - qbefore);
    if (r == SESS_SENT && out) {
        STAT_ADD(w, msgs_sent, 1);
        STAT_ADD(w, pub_sent, 1);
        client_mark_dirty(c);
    } else if (r == SESS_DROPPED) {
        STAT_ADD(w, msgs_dropped, 1);
        atomic_fetch_add_explicit(&w->b->limit_hits[LIMIT_QUEUE], 1, memory_order_relaxed);
        unsigned supp;
        if (log_ratelimit_ok(&w->drop_log, w->now_s, 5, &supp))
            log_write(&w->b->log, LOG_WARN,
                      "queue of client '%.*s' full (%u messages): message on '%.*s' dropped "
                      "(%llu dropped for this client so far)",
                      (int)s->client_id_len, (const char *)s->client_id, s->q_count,
                      (int)m->topic_len, (const char *)msg_topic(m),
                      (unsigned long long)s->dropped);
    }
}

void client_on_drained(struct client *c)
{
    struct session *s = c->sess;
    if (!s || !s->q_count)
        return;
    uint32_t before = s->q_count;
    if (sess_pump(s, &c->out, c->w->now_ms))
        client_close(c, LOG_WARN, "output buffer full");
    atomic_fetch_sub_explicit(&c->w->st.queued, before - s->q_count, memory_order_relaxed);
    client_mark_dirty(c);
}

/* ---- PUBLISH and acknowledgements ---- */

/* Publish rate token buckets (burst: one second's worth). True when the PUBLISH may go. */
static bool rate_ok(struct client *c, const struct config *conf, uint32_t bytes)
{
    if (!conf->publish_rate_messages && !conf->publish_rate_bytes)
        return true;
    int64_t now = c->w->now_ms;
    double dt = c->tokens_ms ? (double)(now - c->tokens_ms) / 1000.0 : 1.0;
    c->tokens_ms = now;
    if (conf->publish_rate_messages) {
        double cap = conf->publish_rate_messages;
        c->pub_tokens += dt * cap;
        if (c->pub_tokens > cap)
            c->pub_tokens = cap;
        if (c->pub_tokens < 1.0)
            return false;
        c->pub_tokens -= 1.0;
    }
    if (conf->publish_rate_bytes) {
        double cap = (double)conf->publish_rate_bytes;
        c->byte_tokens += dt * cap;
        if (c->byte_tokens > cap)
            c->byte_tokens = cap;
        if (c->byte_tokens < bytes)
            return false;
        c->byte_tokens -= bytes;
    }
    return true;
}

/* True when one more retained message of n payload bytes fits the retained limits. */
static bool retained_room(struct worker *w, const struct config *conf, uint32_t n)
{
    if (!conf->max_retained_messages && !conf->max_retained_bytes)
        return true;
    uint64_t bytes = 0;
    size_t count = store_retain_count(w->b->store, &bytes);
    if (conf->max_retained_messages && count >= (size_t)conf->max_retained_messages)
        return false;
    return !conf->max_retained_bytes || bytes + n <= (uint64_t)conf->max_retained_bytes;
}

/* Records client-to-server topic alias a (1..alias_max) for topic (copied). */
static int set_alias(struct client *c, uint16_t a, const struct mqtt_str *topic)
{
    struct mem *mem = &c->w->b->mem;
    if (!c->in_alias) {
        c->in_alias = mem_calloc(mem, MEM_CONN, ((size_t)c->alias_max + 1) * sizeof *c->in_alias);
        if (!c->in_alias)
            return TERN_ENOMEM;
    }
    uint8_t *copy = mem_alloc(mem, MEM_CONN, topic->len);
    if (!copy)
        return TERN_ENOMEM;
    memcpy(copy, topic->p, topic->len);
    mem_free(mem, MEM_CONN, (void *)c->in_alias[a].p);
    c->in_alias[a].p = copy;
    c->in_alias[a].len = topic->len;
    return 0;
}

/* Frees the alias table of a connection (called when it is freed). */
void client_free_aliases(struct client *c);
void client_free_aliases(struct client *c)
{
    if (!c->in_alias)
        return;
    for (uint32_t i = 0; i <= c->alias_max; i++)
        mem_free(&c->w->b->mem, MEM_CONN, (void *)c->in_alias[i].p);
    mem_free(&c->w->b->mem, MEM_CONN, c->in_alias);
    c->in_alias = NULL;
}

static void on_publish(struct client *c, const struct mqtt_packet *pk)
{
    struct worker *w = c->w;
    struct config *conf = broker_conf(w->b);
    const struct mqtt_publish *p = &pk->u.publish;
    struct session *s = c->sess;
    struct mqtt_str topic = p->topic;
    if (c->version == MQTT_V5 && (p->props.has & MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC)) &&
        !topic_name_valid(p->props.response_topic.p, p->props.response_topic.len)) {
        fail(c, MQTT_RC_PROTOCOL_ERROR, "Response Topic with wildcards"); /* [MQTT-3.3.2-14] */
        return;
    }
    if (c->version == MQTT_V5 && p->props.sub_id_count) {
        /* only the server sends Subscription Identifiers [MQTT-3.3.4-6] */
        fail(c, MQTT_RC_PROTOCOL_ERROR, "Subscription Identifier in a client PUBLISH");
        return;
    }
    if (c->version == MQTT_V5 && (p->props.has & MQTT_PROP_BIT(MQTT_PROP_TOPIC_ALIAS))) {
        uint16_t a = p->props.topic_alias;
        if (a == 0 || a > c->alias_max) { /* [MQTT-3.3.2-9] [MQTT-3.3.2-10] */
            fail(c, MQTT_RC_TOPIC_ALIAS_INVALID, "topic alias out of range");
            return;
        }
        if (topic.len) {
            if (!topic_name_valid(topic.p, topic.len)) {
                fail(c, MQTT_RC_TOPIC_NAME_INVALID, "invalid topic name in PUBLISH");
                return;
            }
            if (set_alias(c, a, &topic)) {
                fail(c, MQTT_RC_QUOTA_EXCEEDED, "out of memory for a topic alias");
                return;
            }
        } else if (!c->in_alias || !c->in_alias[a].len) {
            fail(c, MQTT_RC_PROTOCOL_ERROR, "unknown topic alias"); /* [MQTT-3.3.4-?] */
            return;
        } else {
            topic = c->in_alias[a];
        }
    } else if (topic.len == 0) {
        fail(c, MQTT_RC_PROTOCOL_ERROR, "empty topic without a topic alias"); /* [MQTT-3.3.2-1] */
        return;
    }
    if (!topic_name_valid(topic.p, topic.len)) {
        /* empty, wildcard or NUL in a topic name [MQTT-3.3.2-2] [MQTT-4.7.3-1] */
        fail(c, MQTT_RC_TOPIC_NAME_INVALID, "invalid topic name in PUBLISH");
        return;
    }
    if (p->qos > conf->max_qos) {
        fail(c, MQTT_RC_QOS_NOT_SUPPORTED, "PUBLISH QoS above max_qos");
        return;
    }
    char who[160];
    if (!rate_ok(c, conf, p->payload.len)) {
        /* publish flood: v5 is told 0x96, v3 is disconnected */
        limit_hit(w, LIMIT_PUBLISH_RATE, client_name(c, who, sizeof who),
                  "publish rate over publish_rate_messages/publish_rate_bytes");
        if (c->version == MQTT_V5 && p->qos)
            send_ack(c, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id,
                     MQTT_RC_MESSAGE_RATE_TOO_HIGH);
        else
            fail(c, MQTT_RC_MESSAGE_RATE_TOO_HIGH, "publish rate limit exceeded");
        return;
    }
    uint8_t refuse_rc = 0;
    if ((int)topic.len > conf->max_topic_length ||
        (int)topic_levels(topic.p, topic.len) > conf->max_topic_levels) {
        limit_hit(w, LIMIT_TOPIC, client_name(c, who, sizeof who),
                  "topic over max_topic_length/max_topic_levels: PUBLISH refused");
        refuse_rc = MQTT_RC_TOPIC_NAME_INVALID;
    } else if (mem_over_limit(&w->b->mem)) {
        limit_hit(w, LIMIT_MEMORY, client_name(c, who, sizeof who),
                  "memory_limit reached: PUBLISH refused");
        refuse_rc = MQTT_RC_QUOTA_EXCEEDED;
    } else if (p->retain && p->payload.len && !retained_room(w, conf, p->payload.len)) {
        limit_hit(w, LIMIT_RETAINED, client_name(c, who, sizeof who),
                  "max_retained_messages/max_retained_bytes reached: retained PUBLISH refused");
        refuse_rc = MQTT_RC_QUOTA_EXCEEDED;
    }
    if (refuse_rc) {
        /* v5 says why; v3 is acknowledged, as Mosquitto does when it drops */
        STAT_ADD(w, msgs_dropped, 1);
        if (p->qos == 1)
            send_ack(c, MQTT_PUBACK, p->packet_id, refuse_rc);
        else if (p->qos == 2)
            send_ack(c, MQTT_PUBREC, p->packet_id, refuse_rc);
        return;
    }
    if (p->retain && !conf->retain_available) {
        fail(c, MQTT_RC_RETAIN_NOT_SUPPORTED, "retained PUBLISH but retain_available is false");
        return;
    }
    STAT_ADD(w, msgs_received, 1);
    STAT_ADD(w, pub_received, 1);
    if (conf->message_size_limit > 0 && p->payload.len > (uint64_t)conf->message_size_limit) {
        /* acknowledged but not delivered, as Mosquitto does; v5 says why */
        char name[160];
        log_write(&w->b->log, LOG_NOTICE,
                  "client %s: PUBLISH of %u bytes on '%.*s' over "
                  "message_size_limit dropped",
                  client_name(c, name, sizeof name), p->payload.len, (int)topic.len,
                  (const char *)topic.p);
        STAT_ADD(w, msgs_dropped, 1);
        if (p->qos == 1)
            send_ack(c, MQTT_PUBACK, p->packet_id, MQTT_RC_PACKET_TOO_LARGE);
        else if (p->qos == 2)
            send_ack(c, MQTT_PUBREC, p->packet_id, MQTT_RC_PACKET_TOO_LARGE);
        return;
    }
    struct acl *acl = atomic_load_explicit(&w->b->acl, memory_order_acquire);
    if (acl && !acl_allows(acl, s->username, s->client_id, s->client_id_len, topic.p, topic.len,
                           ACL_WRITE)) {
        /* v5: 0x87 in the ack; v3: acknowledged but not delivered, as Mosquitto does */
        unsigned supp;
        if (log_ratelimit_ok(&w->drop_log, w->now_s, 5, &supp)) {
            char name[160];
            log_write(&w->b->log, LOG_NOTICE, "client %s: PUBLISH to '%.*s' denied by ACL",
                      client_name(c, name, sizeof name), (int)topic.len, (const char *)topic.p);
        }
        STAT_ADD(w, msgs_dropped, 1);
        if (p->qos == 1)
            send_ack(c, MQTT_PUBACK, p->packet_id, MQTT_RC_NOT_AUTHORIZED);
        else if (p->qos == 2)
            send_ack(c, MQTT_PUBREC, p->packet_id, MQTT_RC_NOT_AUTHORIZED);
        return;
    }
    if (p->qos == 2) {
        int dup =
            sess_qos2_in_begin(s, p->packet_id, c->version == MQTT_V5 ? c->recv_max : MAX_QOS2_IN);
        if (dup < 0) {
            fail(c, MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED, "too many QoS 2 messages awaiting PUBREL");
            return;
        }
        if (dup == 1) {
            /* already received, not yet released: acknowledge again, deliver once
             * [MQTT-4.3.3-2] */
            send_ack(c, MQTT_PUBREC, p->packet_id, 0);
            return;
        }
    }
    if (c->version == MQTT_V5 && conf->check_payload_format &&
        (p->props.has & MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR)) &&
        p->props.payload_format == 1 && !utf8_valid(p->payload.p, p->payload.len)) {
        if (p->qos == 2)
            sess_qos2_in_end(s, p->packet_id);
        if (p->qos)
            send_ack(c, p->qos == 1 ? MQTT_PUBACK : MQTT_PUBREC, p->packet_id,
                     MQTT_RC_PAYLOAD_FORMAT_INVALID);
        return;
    }
    struct msg *m =
        make_msg(w, &topic, &p->payload, &p->props, c->version, p->qos, p->retain, s->id);
    if (!m) {
        if (p->qos == 2)
            sess_qos2_in_end(s, p->packet_id);
        fail(c, MQTT_RC_QUOTA_EXCEEDED, "out of memory for a message");
        return;
    }
    if (p->retain && store_retain_put(w->b->store, m))
        log_write(&w->b->log, LOG_WARN, "out of memory storing a retained message");
    uint32_t matched = route_publish(w, m);
    msg_unref(m);
    /* v5: tell the publisher when nobody was subscribed (0x10) */
    uint8_t rc = matched == 0 ? MQTT_RC_NO_MATCHING_SUBSCRIBERS : 0;
    if (p->qos == 1)
        send_ack(c, MQTT_PUBACK, p->packet_id, v3_or_v5(c, 0, rc));
    else if (p->qos == 2)
        send_ack(c, MQTT_PUBREC, p->packet_id, v3_or_v5(c, 0, rc));
}

static void on_ack(struct client *c, const struct mqtt_packet *pk)
{
    struct session *s = c->sess;
    uint16_t pid = pk->u.ack.packet_id;
    uint32_t before = s->q_count;
    int rc = 0;
    switch (pk->type) {
    case MQTT_PUBACK: rc = sess_on_puback(s, &c->out, pid, c->w->now_ms); break;
    case MQTT_PUBREC: rc = sess_on_pubrec(s, &c->out, pid, pk->u.ack.rc, c->w->now_ms); break;
    case MQTT_PUBCOMP: rc = sess_on_pubcomp(s, &c->out, pid, c->w->now_ms); break;
    case MQTT_PUBREL:
        /* release of an incoming QoS 2 message: always answered [MQTT-4.3.3-11] */
        send_ack(c, MQTT_PUBCOMP, pid,
                 sess_qos2_in_end(s, pid) ? 0 : MQTT_RC_PACKET_IDENTIFIER_NOT_FOUND);
        return;
    }
    atomic_fetch_sub_explicit(&c->w->st.queued, before - s->q_count, memory_order_relaxed);
    if (rc == TERN_ENOTFOUND) {
        char name[160];
        log_write(&c->w->b->log, LOG_DEBUG, "client %s: %s for unknown packet id %u ignored",
                  client_name(c, name, sizeof name), codec_type_name(pk->type), pid);
    } else if (rc) {
        client_close(c, LOG_WARN, "output buffer full");
        return;
    }
    client_mark_dirty(c);
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ---- */

static void collect_retained(void *ctx, struct msg *m)
{
    struct worker *w = ctx;
    if (w->n_rmsgs == w->cap_rmsgs) {
        uint32_t ncap = w->cap_rmsgs ? w->cap_rmsgs * 2 : 64;
        struct msg **n = mem_realloc(&w->b->mem, MEM_MISC, w->rmsgs, ncap * sizeof *n);
        if (!n)
            return; /* under memory pressure some retained messages are not sent */
        w->rmsgs = n;
        w->cap_rmsgs = ncap;
    }
    w->rmsgs[w->n_rmsgs++] = msg_ref(m);
}

static void send_retained(struct client *c, const uint8_t *f, size_t n, uint8_t granted)
{
    struct worker *w = c->w;
    w->n_rmsgs = 0;
    store_retain_match(w->b->store, f, n, collect_retained, w);
    for (uint32_t i = 0; i < w->n_rmsgs; i++) {
        struct msg *m = w->rmsgs[i];
        uint8_t q = m->qos < granted ? m->qos : granted;
        /* retained messages sent because of a new subscription keep RETAIN=1 [MQTT-3.3.1-8] */
        client_deliver(w, c->sess, m, q, true, 0);
        msg_unref(m);
    }
    w->n_rmsgs = 0;
}

static void on_subscribe(struct client *c, const struct mqtt_packet *pk)
{
    struct worker *w = c->w;
    struct broker *b = w->b;
    struct config *conf = broker_conf(b);
    const struct mqtt_subscribe *sub = &pk->u.subscribe;
    struct session *s = c->sess;
    uint8_t rcs[256];
    bool isnew[256]; /* per filter: the subscription did not exist before (Retain Handling 1) */
    uint8_t *rcv = sub->count <= sizeof rcs ? rcs : mem_alloc(&b->mem, MEM_MISC, sub->count);
    if (!rcv) {
        fail(c, MQTT_RC_QUOTA_EXCEEDED, "out of memory for SUBACK");
        return;
    }
    uint32_t sub_id = (sub->props.has & MQTT_PROP_BIT(MQTT_PROP_SUBSCRIPTION_IDENTIFIER)) ||
                              sub->props.sub_id_count
                          ? sub->props.sub_id
                          : 0;
    uint32_t off = 0, i = 0;
    struct mqtt_sub_entry e;
    char name[160];
    client_name(c, name, sizeof name);
    while (codec_subscribe_next(sub, false, &off, &e) == 1 && i < sub->count) {
        uint8_t rc;
        bool existed = false;
        uint8_t granted = e.qos < conf->max_qos ? e.qos : (uint8_t)conf->max_qos;
        const uint8_t *g, *sf;
        size_t gl, sfl;
        bool shared = topic_share_split(e.filter.p, e.filter.len, &g, &gl, &sf, &sfl) == 1;
        if (!topic_filter_valid(e.filter.p, e.filter.len)) {
            rc = v3_or_v5(c, 0x80, MQTT_RC_TOPIC_FILTER_INVALID); /* [MQTT-3.9.3-2] */
        } else if ((int)e.filter.len > conf->max_topic_length ||
                   (int)topic_levels(e.filter.p, e.filter.len) > conf->max_topic_levels) {
            limit_hit(w, LIMIT_TOPIC, name, "filter over max_topic_length/max_topic_levels");
            rc = v3_or_v5(c, 0x80, MQTT_RC_TOPIC_FILTER_INVALID);
        } else if (conf->max_subscriptions_per_client &&
                   s->nsubs >= (uint32_t)conf->max_subscriptions_per_client &&
                   !sess_has_sub(s, e.filter.p, e.filter.len)) {
            limit_hit(w, LIMIT_SUBSCRIPTIONS, name, "max_subscriptions_per_client reached");
            rc = v3_or_v5(c, 0x80, MQTT_RC_QUOTA_EXCEEDED);
        } else if (!acl_allows_subscribe(atomic_load_explicit(&b->acl, memory_order_acquire),
                                         s->username, s->client_id, s->client_id_len, e.filter.p,
                                         e.filter.len)) {
            rc = v3_or_v5(c, 0x80, MQTT_RC_NOT_AUTHORIZED);
            log_write(&b->log, LOG_NOTICE, "client %s: SUBSCRIBE to '%.*s' denied by ACL", name,
                      (int)e.filter.len, (const char *)e.filter.p);
        } else if (shared && c->version == MQTT_V5 && e.no_local) {
            fail(c, MQTT_RC_PROTOCOL_ERROR,
                 "No Local on a shared subscription"); /* [MQTT-3.8.3-4] */
            goto out;
        } else {
            uint8_t opts =
                (uint8_t)(granted | (e.no_local ? 0x04 : 0) | (e.retain_as_published ? 0x08 : 0) |
                          (uint8_t)(e.retain_handling << 4));
            struct sub_entry se = {s->id, s, w->index, opts, sub_id};
            subs_wrlock(w);
            int r = trie_subscribe(b->subs, e.filter.p, e.filter.len, &se, &existed);
            subs_wrunlock(w);
            if (r == 0 && sess_sub_add(s, e.filter.p, (uint16_t)e.filter.len, opts, sub_id)) {
                subs_wrlock(w);
                trie_unsubscribe(b->subs, e.filter.p, e.filter.len, s->id);
                subs_wrunlock(w);
                r = TERN_ENOMEM;
            }
            rc = r ? v3_or_v5(c, 0x80, MQTT_RC_UNSPECIFIED_ERROR) : granted;
            if (!r)
                log_write(&b->log, LOG_SUB, "client %s subscribed to '%.*s' (QoS %u)", name,
                          (int)e.filter.len, (const char *)e.filter.p, granted);
        }
        if (i < sizeof isnew)
            isnew[i] = !existed;
        rcv[i++] = rc;
    }
    {
        struct mqtt_packet ack;
        memset(&ack, 0, sizeof ack);
        ack.type = MQTT_SUBACK;
        ack.u.suback.packet_id = sub->packet_id; /* [MQTT-3.8.4-2] */
        ack.u.suback.rcs = rcv;
        ack.u.suback.count = i; /* one per filter, in order [MQTT-3.8.4-5] [MQTT-3.9.3-1] */
        send_packet(c, &ack);
    }
    /* retained messages after the SUBACK [MQTT-3.3.1-6] */
    off = 0;
    for (uint32_t k = 0; k < i && codec_subscribe_next(sub, false, &off, &e) == 1; k++) {
        if (rcv[k] >= 0x80 || c->state != CS_CONNECTED)
            continue;
        const uint8_t *g, *sf;
        size_t gl, sfl;
        if (topic_share_split(e.filter.p, e.filter.len, &g, &gl, &sf, &sfl) == 1)
            continue; /* not sent for shared subscriptions [MQTT-3.8.4-?] */
        /* Retain Handling 2: never; 1: only for a new subscription [MQTT-3.3.1-10..11 v5] */
        if (e.retain_handling == 2 || (e.retain_handling == 1 && k < sizeof isnew && !isnew[k]))
            continue;
        send_retained(c, e.filter.p, e.filter.len, rcv[k]);
    }
out:
    if (rcv != rcs)
        mem_free(&b->mem, MEM_MISC, rcv);
}

static void on_unsubscribe(struct client *c, const struct mqtt_packet *pk)
{
    struct worker *w = c->w;
    struct broker *b = w->b;
    const struct mqtt_subscribe *u = &pk->u.subscribe;
    struct session *s = c->sess;
    uint8_t rcs[256];
    uint8_t *rcv = u->count <= sizeof rcs ? rcs : mem_alloc(&b->mem, MEM_MISC, u->count);
    if (!rcv) {
        fail(c, MQTT_RC_QUOTA_EXCEEDED, "out of memory for UNSUBACK");
        return;
    }
    uint32_t off = 0, i = 0;
    struct mqtt_sub_entry e;
    while (codec_subscribe_next(u, true, &off, &e) == 1 && i < u->count) {
        bool had = sess_sub_del(s, e.filter.p, (uint16_t)e.filter.len);
        if (had) {
            subs_wrlock(w);
            trie_unsubscribe(b->subs, e.filter.p, e.filter.len, s->id);
            subs_wrunlock(w);
        }
        rcv[i++] = had ? MQTT_RC_SUCCESS : MQTT_RC_NO_SUBSCRIPTION_EXISTED;
    }
    struct mqtt_packet ack;
    memset(&ack, 0, sizeof ack);
    ack.type = MQTT_UNSUBACK;
    ack.u.suback.packet_id = u->packet_id; /* [MQTT-3.10.4-4] */
    ack.u.suback.rcs = rcv;
    ack.u.suback.count = c->version == MQTT_V5 ? i : 0;
    send_packet(c, &ack);
    if (rcv != rcs)
        mem_free(&b->mem, MEM_MISC, rcv);
}

static void on_disconnect(struct client *c, const struct mqtt_packet *pk)
{
    struct session *s = c->sess;
    if (c->version == MQTT_V5) {
        const struct mqtt_props *pr = &pk->u.reason.props;
        if (pr->has & MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL)) {
            if (s->expiry_s == 0 && pr->session_expiry != 0) {
                /* [MQTT-3.14.2-2] */
                fail(c, MQTT_RC_PROTOCOL_ERROR, "session expiry set at DISCONNECT after 0");
                return;
            }
            s->expiry_s = pr->session_expiry;
        }
        c->send_will = pk->u.reason.rc == MQTT_RC_DISCONNECT_WITH_WILL;
    } else {
        c->send_will = false; /* [MQTT-3.1.2-10] [MQTT-3.14.4-3] */
    }
    client_close(c, LOG_INFO, "DISCONNECT received");
}

/* ---- dispatch ---- */

static void on_packet(struct client *c, const struct mqtt_packet *p)
{
    if (c->state == CS_AUTH) {
        if (p->type == MQTT_AUTH)
            on_auth(c, p);
        else if (p->type == MQTT_DISCONNECT)
            client_close(c, LOG_INFO, "DISCONNECT during authentication");
        else
            refuse(c, 0, MQTT_RC_PROTOCOL_ERROR, "packet other than AUTH during authentication");
        return;
    }
    if (c->state == CS_NEW) {
        if (p->type != MQTT_CONNECT) {
            client_close(c, LOG_NOTICE, "first packet is not CONNECT"); /* [MQTT-3.1.0-1] */
            return;
        }
        on_connect(c, p);
        return;
    }
    switch (p->type) {
    case MQTT_CONNECT:
        fail(c, MQTT_RC_PROTOCOL_ERROR, "second CONNECT"); /* [MQTT-3.1.0-2] */
        return;
    case MQTT_PUBLISH: on_publish(c, p); return;
    case MQTT_PUBACK:
    case MQTT_PUBREC:
    case MQTT_PUBREL:
    case MQTT_PUBCOMP: on_ack(c, p); return;
    case MQTT_SUBSCRIBE: on_subscribe(c, p); return;
    case MQTT_UNSUBSCRIBE: on_unsubscribe(c, p); return;
    case MQTT_PINGREQ: {
        struct mqtt_packet r;
        memset(&r, 0, sizeof r);
        r.type = MQTT_PINGRESP; /* [MQTT-3.12.4-1] */
        send_packet(c, &r);
        return;
    }
    case MQTT_DISCONNECT: on_disconnect(c, p); return;
    case MQTT_AUTH: on_auth(c, p); return;
    default: fail(c, MQTT_RC_PROTOCOL_ERROR, "unexpected packet type from a client"); return;
    }
}

size_t client_process(struct client *c, const uint8_t *data, size_t len)
{
    size_t off = 0;
    while (off < len && c->state != CS_CLOSED && !c->migrated) {
        struct mqtt_packet p;
        size_t used;
        uint8_t ver = c->state == CS_NEW ? MQTT_V311 : c->version;
        int rc = codec_decode(data + off, len - off, ver, c->max_packet, &p, &used);
        if (rc == TERN_EAGAIN)
            break;
        if (rc) {
            char why[96];
            snprintf(why, sizeof why, "%s",
                     rc == TERN_ETOOBIG ? "packet too large (over max_packet_size)"
                     : rc == TERN_EPROTO ? "protocol error in packet"
                                         : "malformed packet");
            fail(c,
                 rc == TERN_ETOOBIG  ? MQTT_RC_PACKET_TOO_LARGE
                 : rc == TERN_EPROTO ? MQTT_RC_PROTOCOL_ERROR
                                     : MQTT_RC_MALFORMED_PACKET,
                 why);
            break;
        }
        c->cur_pkt = data + off;
        c->cur_len = used;
        /* keep-alive counts complete Control Packets, not bytes: a client trickling a partial
         * packet is not alive [MQTT-3.1.2-24] */
        c->last_rx_ms = c->w->now_ms;
        on_packet(c, &p);
        if (c->migrated)
            break; /* the CONNECT is handled again on the session's home worker */
        off += used;
    }
    subs_unlock(c->w); /* the caller may now make syscalls */
    return off;
}
