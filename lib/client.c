/* client.c - the public API of the client library: creation (options copied, CONNECT encoded
 * once), publish/subscribe/unsubscribe (encoded at the call into owned out_msg records), the
 * caller's-loop functions (fd, timeout, step) and the network thread (start/stop).
 *
 * Every public entry takes c->lock (recursive: callbacks run under it and may call back in).
 * Waiting (poll) happens without the lock, on the socket plus an eventfd that API calls from
 * other threads signal, so a publish from any thread is sent without waiting for a timer. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "client_internal.h"
#include "common/clock.h"
#include "common/utf8.h"

#define MAX_USER_PROPS 256

TERN_API void tern_client_options_init(struct tern_client_options *o)
{
    memset(o, 0, sizeof *o);
    o->host = "localhost";
    o->port = 1883;
    o->protocol = TERN_MQTT_5;
    o->keep_alive = 60;
    o->clean_start = true;
    o->reconnect_min_ms = 500;
    o->reconnect_max_ms = 30000;
    o->connect_timeout_ms = 10000;
    o->max_inflight = 20;
    o->max_queued = 10000;
}

static bool str_ok(const char *s)
{
    return s && strlen(s) <= 65535 && utf8_valid_mqtt((const uint8_t *)s, strlen(s));
}

static bool props_ok(const struct tern_properties *p)
{
    if (!p)
        return true;
    if ((p->has & TERN_PROP_CONTENT_TYPE) && p->content_type && !str_ok(p->content_type))
        return false;
    if ((p->has & TERN_PROP_RESPONSE_TOPIC) && p->response_topic &&
        (!str_ok(p->response_topic) || !p->response_topic[0] || strpbrk(p->response_topic, "+#")))
        return false;
    if ((p->has & TERN_PROP_CORRELATION_DATA) && p->correlation_len > 65535)
        return false;
    if (p->n_user > MAX_USER_PROPS)
        return false;
    for (size_t i = 0; i < p->n_user; i++)
        if (!str_ok(p->user[i].key) || !str_ok(p->user[i].value))
            return false;
    return true;
}

static struct mqtt_str cstr(const char *s)
{
    struct mqtt_str m = {(const uint8_t *)s, s ? (uint32_t)strlen(s) : 0};
    return m;
}

/* Encodes the CONNECT packet from the options into c->connect_packet. */
static int encode_connect(struct tern_client *c, const struct tern_client_options *o)
{
    struct mqtt_user_prop up[MAX_USER_PROPS], wup[MAX_USER_PROPS];
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_CONNECT;
    struct mqtt_connect *k = &p.u.connect;
    k->clean = o->clean_start;
    k->keep_alive = o->keep_alive;
    k->client_id = cstr(o->client_id);
    if (o->username) {
        k->has_username = true;
        k->username = cstr(o->username);
    }
    if (o->password) {
        k->has_password = true;
        k->password.p = o->password;
        k->password.len = (uint32_t)o->password_len;
    }
    if (o->will_topic) {
        k->will = true;
        k->will_qos = (uint8_t)o->will_qos;
        k->will_retain = o->will_retain;
        k->will_topic = cstr(o->will_topic);
        k->will_payload.p = o->will_payload;
        k->will_payload.len = (uint32_t)o->will_payload_len;
        client_props_to_codec(o->will_props, &k->will_props, wup);
    }
    if (o->session_expiry) {
        k->props.has |= MQTT_PROP_BIT(MQTT_PROP_SESSION_EXPIRY_INTERVAL);
        k->props.session_expiry = o->session_expiry;
    }
    if (o->receive_maximum && o->receive_maximum != 65535) {
        k->props.has |= MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM);
        k->props.receive_maximum = o->receive_maximum;
    }
    if (o->max_packet_size) {
        k->props.has |= MQTT_PROP_BIT(MQTT_PROP_MAXIMUM_PACKET_SIZE);
        k->props.maximum_packet_size = o->max_packet_size;
    }
    for (size_t i = 0; i < o->n_connect_user; i++) {
        up[i].key = cstr(o->connect_user[i].key);
        up[i].value = cstr(o->connect_user[i].value);
    }
    k->props.user = up;
    k->props.n_user = (uint32_t)o->n_connect_user;
    size_t n = codec_encoded_size(&p, c->version);
    if (n == 0)
        return TERN_EINVAL;
    c->connect_packet = mem_alloc(&c->mem, MEM_MISC, n);
    if (!c->connect_packet)
        return TERN_ENOMEM;
    struct buf b = {c->connect_packet, 0, n, n, &c->mem, MEM_MISC};
    int rc = codec_encode(&p, c->version, &b);
    if (rc)
        return rc;
    uint8_t tf;
    uint32_t rem, hl;
    rc = codec_peek_header(c->connect_packet, n, 0, &tf, &rem, &hl);
    if (rc)
        return rc;
    c->connect_len = (uint32_t)n;
    c->connect_flags_off = hl + 2 + 4 + 1; /* name length, "MQTT", level */
    return 0;
}

static bool options_ok(const struct tern_client_options *o)
{
    if (o->protocol != TERN_MQTT_311 && o->protocol != TERN_MQTT_5)
        return false;
    if (!o->host || !o->host[0] || (o->client_id && !str_ok(o->client_id)))
        return false;
    if (o->username && !str_ok(o->username))
        return false;
    if (o->n_connect_user > MAX_USER_PROPS)
        return false;
    for (size_t i = 0; i < o->n_connect_user; i++)
        if (!str_ok(o->connect_user[i].key) || !str_ok(o->connect_user[i].value))
            return false;
    if (o->will_topic &&
        (!str_ok(o->will_topic) || !o->will_topic[0] || strpbrk(o->will_topic, "+#") ||
         o->will_qos < 0 || o->will_qos > 2 || !props_ok(o->will_props)))
        return false;
    return true;
}

static char *dup_str(struct tern_client *c, const char *s)
{
    return s ? mem_strndup(&c->mem, MEM_MISC, s, strlen(s)) : NULL;
}

TERN_API int tern_client_new(const struct tern_client_options *o, tern_client **out)
{
    if (!o || !out || !options_ok(o))
        return TERN_EINVAL;
    struct tern_client *c = calloc(1, sizeof *c); /* the accounting struct lives inside */
    if (!c)
        return TERN_ENOMEM;
    mem_init(&c->mem);
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&c->lock, &ma);
    pthread_mutexattr_destroy(&ma);
    c->opt = *o;
    c->version = (uint8_t)o->protocol;
    c->tr.ops = &transport_tcp_ops;
    c->tr.fd = -1;
    c->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    c->next_pid = 1;
    c->state = TERN_STATE_IDLE;
    if (getrandom(&c->rng, sizeof c->rng, GRND_NONBLOCK) != sizeof c->rng)
        c->rng = (uint64_t)clock_mono_ms() ^ (uint64_t)(uintptr_t)c;
    if (c->opt.max_inflight == 0)
        c->opt.max_inflight = 1;
    if (c->opt.max_queued == 0 || c->opt.max_queued > 65535)
        c->opt.max_queued = 65535;
    uint32_t maxp = o->max_packet_size ? o->max_packet_size : MQTT_MAX_REMAINING + 5;
    buf_init(&c->rbuf, &c->mem, MEM_CONN, (size_t)maxp + 64 * 1024);
    buf_init(&c->wbuf, &c->mem, MEM_CONN, (size_t)MQTT_MAX_REMAINING + 256 * 1024);
    buf_init(&c->scratch, &c->mem, MEM_MISC, (size_t)MQTT_MAX_REMAINING);
    c->host = dup_str(c, o->host);
    c->bind_address = dup_str(c, o->bind_address);
    /* the strings of c->opt point to caller memory: clear what is not copied */
    c->opt.host = c->opt.bind_address = c->opt.client_id = c->opt.username = NULL;
    c->opt.password = c->opt.will_topic = c->opt.will_payload = NULL;
    c->opt.will_props = NULL;
    c->opt.connect_user = NULL;
    int rc = TERN_ENOMEM;
    if (c->wake_fd < 0 || !c->host || (o->bind_address && !c->bind_address))
        goto fail;
    rc = encode_connect(c, o);
    if (rc)
        goto fail;
    *out = c;
    return 0;
fail:
    tern_client_free(c);
    return rc;
}

TERN_API void tern_client_free(tern_client *c)
{
    if (!c)
        return;
    if (c->thread_running) {
        atomic_store(&c->stop_requested, true);
        uint64_t one = 1;
        (void)!write(c->wake_fd, &one, sizeof one);
        pthread_join(c->thread, NULL);
    }
    if (c->tr.ops)
        c->tr.ops->close(&c->tr);
    client_drop_messages(c);
    buf_free(&c->rbuf);
    buf_free(&c->wbuf);
    buf_free(&c->scratch);
    mem_free(&c->mem, MEM_MISC, c->up);
    mem_free(&c->mem, MEM_MISC, c->host);
    mem_free(&c->mem, MEM_MISC, c->bind_address);
    mem_free(&c->mem, MEM_MISC, c->connect_packet);
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static void wake(struct tern_client *c)
{
    uint64_t one = 1;
    (void)!write(c->wake_fd, &one, sizeof one);
}

TERN_API int tern_client_connect(tern_client *c)
{
    pthread_mutex_lock(&c->lock);
    int rc = client_begin_connect(c, clock_mono_ms());
    pthread_mutex_unlock(&c->lock);
    wake(c);
    return rc;
}

TERN_API int tern_client_disconnect(tern_client *c, int reason_code)
{
    if (reason_code < 0 || reason_code > 255)
        return TERN_EINVAL;
    pthread_mutex_lock(&c->lock);
    int rc = client_begin_close(c, clock_mono_ms(), reason_code);
    pthread_mutex_unlock(&c->lock);
    wake(c);
    return rc;
}

TERN_API int tern_client_fd(const tern_client *c)
{
    pthread_mutex_lock((pthread_mutex_t *)&c->lock);
    int fd = c->tr.fd;
    pthread_mutex_unlock((pthread_mutex_t *)&c->lock);
    return fd;
}

TERN_API bool tern_client_wants_write(const tern_client *c)
{
    pthread_mutex_lock((pthread_mutex_t *)&c->lock);
    bool w = client_wants_write(c);
    pthread_mutex_unlock((pthread_mutex_t *)&c->lock);
    return w;
}

TERN_API int tern_client_next_timeout_ms(const tern_client *c)
{
    pthread_mutex_lock((pthread_mutex_t *)&c->lock);
    int t = client_timeout_at(c, clock_mono_ms());
    pthread_mutex_unlock((pthread_mutex_t *)&c->lock);
    return t;
}

/* Waits up to timeout_ms (-1: until an event or timer) on the socket and the wake eventfd, then
 * runs one round of the protocol core. */
static void wait_and_process(struct tern_client *c, int timeout_ms)
{
    pthread_mutex_lock(&c->lock);
    int fd = c->tr.fd;
    short events = POLLIN | (client_wants_write(c) ? POLLOUT : 0);
    int t = client_timeout_at(c, clock_mono_ms());
    pthread_mutex_unlock(&c->lock);
    if (t < 0 || (timeout_ms >= 0 && timeout_ms < t))
        t = timeout_ms;
    struct pollfd pf[2] = {{c->wake_fd, POLLIN, 0}, {fd, events, 0}};
    int n = poll(pf, fd >= 0 ? 2 : 1, t);
    if (n < 0 && errno != EINTR)
        n = 0;
    if (pf[0].revents & POLLIN) {
        uint64_t v;
        (void)!read(c->wake_fd, &v, sizeof v);
    }
    short re = fd >= 0 && n > 0 ? pf[1].revents : 0;
    bool err = re & (POLLERR | POLLHUP);
    pthread_mutex_lock(&c->lock);
    if (c->tr.fd == fd) /* an API call may have replaced the connection meanwhile */
        client_process(c, clock_mono_ms(), (re & POLLIN) || err, (re & POLLOUT) || err);
    else
        client_process(c, clock_mono_ms(), false, false);
    pthread_mutex_unlock(&c->lock);
}

TERN_API int tern_client_step(tern_client *c, int timeout_ms)
{
    if (tern_client_state(c) == TERN_STATE_IDLE)
        return TERN_ECLOSED;
    wait_and_process(c, timeout_ms);
    return tern_client_state(c) == TERN_STATE_IDLE ? TERN_ECLOSED : 0;
}

static void *network_thread(void *arg)
{
    struct tern_client *c = arg;
    int64_t stop_deadline = -1;
    for (;;) {
        if (atomic_load(&c->stop_requested)) {
            int64_t now = clock_mono_ms();
            if (stop_deadline < 0)
                stop_deadline = now + 2000;
            enum tern_state s = tern_client_state(c);
            if (s != TERN_STATE_CLOSING || now >= stop_deadline)
                break;
        }
        wait_and_process(c, stop_deadline >= 0 ? 50 : -1);
    }
    return NULL;
}

TERN_API int tern_client_start(tern_client *c)
{
    pthread_mutex_lock(&c->lock);
    int rc = 0;
    if (c->thread_running) {
        rc = TERN_EEXIST;
    } else {
        atomic_store(&c->stop_requested, false);
        if (pthread_create(&c->thread, NULL, network_thread, c))
            rc = TERN_ENOMEM;
        else
            c->thread_running = true;
    }
    pthread_mutex_unlock(&c->lock);
    return rc;
}

TERN_API void tern_client_stop(tern_client *c)
{
    pthread_mutex_lock(&c->lock);
    bool running = c->thread_running;
    c->thread_running = false;
    pthread_mutex_unlock(&c->lock);
    if (!running)
        return;
    atomic_store(&c->stop_requested, true);
    wake(c);
    pthread_join(c->thread, NULL);
}

static bool topic_ok(const char *t)
{
    return str_ok(t) && t[0] && !strpbrk(t, "+#");
}

TERN_API int tern_client_publish(tern_client *c, const char *topic, const void *payload, size_t len,
                                 int qos, bool retain, const struct tern_properties *props,
                                 uint16_t *packet_id)
{
    if (!topic_ok(topic) || qos < 0 || qos > 2 || (len && !payload) || len > MQTT_MAX_REMAINING ||
        !props_ok(props))
        return TERN_EINVAL;
    struct mqtt_user_prop up[MAX_USER_PROPS];
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_PUBLISH;
    p.u.publish.qos = (uint8_t)qos;
    p.u.publish.retain = retain;
    p.u.publish.topic = cstr(topic);
    p.u.publish.payload.p = payload;
    p.u.publish.payload.len = (uint32_t)len;
    if (c->version == MQTT_V5)
        client_props_to_codec(props, &p.u.publish.props, up);
    pthread_mutex_lock(&c->lock);
    int rc = TERN_ELIMIT;
    uint16_t pid = 0;
    struct out_msg *m = NULL;
    if (c->queue.count + c->inflight.count >= c->opt.max_queued)
        goto out;
    if (qos && !(pid = client_pid_alloc(c->pid_used, &c->next_pid)))
        goto out;
    p.u.publish.packet_id = pid;
    rc = TERN_EINVAL;
    size_t n = codec_encoded_size(&p, c->version);
    if (n == 0)
        goto out;
    rc = TERN_ENOMEM;
    m = mem_alloc(&c->mem, MEM_SESSION, sizeof *m + n);
    if (!m)
        goto out;
    struct buf b = {m->data, 0, n, n, &c->mem, MEM_SESSION};
    rc = codec_encode(&p, c->version, &b);
    if (rc)
        goto out;
    m->packet_id = pid;
    m->type = MQTT_PUBLISH;
    m->qos = (uint8_t)qos;
    m->len = (uint32_t)n;
    client_enqueue(c, m);
    m = NULL;
    pid = 0;
    if (packet_id)
        *packet_id = p.u.publish.packet_id;
out:
    if (pid)
        client_pid_release(c->pid_used, pid);
    mem_free(&c->mem, MEM_SESSION, m);
    pthread_mutex_unlock(&c->lock);
    if (rc == 0)
        wake(c);
    return rc;
}

/* Encodes and queues a SUBSCRIBE or UNSUBSCRIBE built in p (packet id assigned here). */
static int queue_request(struct tern_client *c, struct mqtt_packet *p, uint16_t *packet_id)
{
    pthread_mutex_lock(&c->lock);
    int rc = TERN_ELIMIT;
    struct out_msg *m = NULL;
    uint16_t pid = client_pid_alloc(c->pid_used, &c->next_pid);
    if (!pid)
        goto out;
    p->u.subscribe.packet_id = pid;
    rc = TERN_EINVAL;
    size_t n = codec_encoded_size(p, c->version);
    if (n == 0)
        goto out;
    rc = TERN_ENOMEM;
    m = mem_alloc(&c->mem, MEM_SESSION, sizeof *m + n);
    if (!m)
        goto out;
    struct buf b = {m->data, 0, n, n, &c->mem, MEM_SESSION};
    rc = codec_encode(p, c->version, &b);
    if (rc)
        goto out;
    m->packet_id = pid;
    m->type = p->type;
    m->qos = 1;
    m->len = (uint32_t)n;
    client_enqueue(c, m);
    m = NULL;
    if (packet_id)
        *packet_id = pid;
    pid = 0;
out:
    if (pid)
        client_pid_release(c->pid_used, pid);
    mem_free(&c->mem, MEM_SESSION, m);
    pthread_mutex_unlock(&c->lock);
    if (rc == 0)
        wake(c);
    return rc;
}

TERN_API int tern_client_subscribe(tern_client *c, const struct tern_subscription *subs, size_t n,
                                   uint32_t subscription_id, const struct tern_user_property *user,
                                   size_t n_user, uint16_t *packet_id)
{
    if (!subs || n == 0 || n > 1024 || n_user > MAX_USER_PROPS || subscription_id > 268435455)
        return TERN_EINVAL;
    for (size_t i = 0; i < n_user; i++)
        if (!str_ok(user[i].key) || !str_ok(user[i].value))
            return TERN_EINVAL;
    struct mqtt_sub_entry *list = mem_calloc(&c->mem, MEM_MISC, n * sizeof *list);
    struct mqtt_user_prop up[MAX_USER_PROPS];
    if (!list)
        return TERN_ENOMEM;
    int rc = TERN_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!str_ok(subs[i].filter) || !subs[i].filter[0] || subs[i].qos < 0 || subs[i].qos > 2)
            goto out;
        list[i].filter = cstr(subs[i].filter);
        list[i].qos = (uint8_t)subs[i].qos;
        list[i].no_local = subs[i].options & TERN_SUB_NO_LOCAL;
        list[i].retain_as_published = subs[i].options & TERN_SUB_RETAIN_AS_PUBLISHED;
        list[i].retain_handling = (subs[i].options & TERN_SUB_RETAIN_NEVER)      ? 2
                                  : (subs[i].options & TERN_SUB_RETAIN_SEND_NEW) ? 1
                                                                                 : 0;
    }
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_SUBSCRIBE;
    p.u.subscribe.list = list;
    p.u.subscribe.count = (uint32_t)n;
    if (c->version == MQTT_V5) {
        struct tern_properties tp = {.user = user, .n_user = n_user};
        client_props_to_codec(&tp, &p.u.subscribe.props, up);
        if (subscription_id) {
            p.u.subscribe.props.sub_ids = &subscription_id;
            p.u.subscribe.props.n_sub_ids = 1;
        }
    }
    rc = queue_request(c, &p, packet_id);
out:
    mem_free(&c->mem, MEM_MISC, list);
    return rc;
}

TERN_API int tern_client_unsubscribe(tern_client *c, const char *const *filters, size_t n,
                                     uint16_t *packet_id)
{
    if (!filters || n == 0 || n > 1024)
        return TERN_EINVAL;
    struct mqtt_sub_entry *list = mem_calloc(&c->mem, MEM_MISC, n * sizeof *list);
    if (!list)
        return TERN_ENOMEM;
    int rc = TERN_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!str_ok(filters[i]) || !filters[i][0])
            goto out;
        list[i].filter = cstr(filters[i]);
    }
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_UNSUBSCRIBE;
    p.u.subscribe.list = list;
    p.u.subscribe.count = (uint32_t)n;
    rc = queue_request(c, &p, packet_id);
out:
    mem_free(&c->mem, MEM_MISC, list);
    return rc;
}

TERN_API enum tern_state tern_client_state(const tern_client *c)
{
    pthread_mutex_lock((pthread_mutex_t *)&c->lock);
    enum tern_state s = c->state;
    pthread_mutex_unlock((pthread_mutex_t *)&c->lock);
    return s;
}

TERN_API size_t tern_client_pending(const tern_client *c)
{
    pthread_mutex_lock((pthread_mutex_t *)&c->lock);
    size_t n = c->queue.count + c->inflight.count + (c->wbuf.len ? 1 : 0);
    pthread_mutex_unlock((pthread_mutex_t *)&c->lock);
    return n;
}

TERN_API const char *tern_client_last_error(const tern_client *c)
{
    return c->error;
}

TERN_API const char *tern_error_text(int err)
{
    return tern_strerror(err);
}

TERN_API const char *tern_reason_text(int reason_code)
{
    return reason_code < 0 || reason_code > 255 ? "(none)" : codec_rc_name((uint8_t)reason_code);
}

void client_set_transport(struct tern_client *c, const struct transport_ops *ops, void *ctx)
{
    c->tr.ops = ops;
    c->tr.ctx = ctx;
    c->tr.fd = -1;
}
