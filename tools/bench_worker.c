/* bench_worker.c - one load-generator thread: an epoll loop over many non-blocking connections.
 *
 * Per loop iteration: handle socket events (connect completion, reads parsed with the codec),
 * then, in the RUN phase, let every publisher append as many PUBLISH packets as its window (and
 * rate, for the latency scenario) allows to its write buffer with a minimal dedicated encoder
 * (a precomputed fixed header + topic, then packet id and payload fields), then write each
 * dirty connection once. EPOLLOUT is registered only while a write is incomplete. Nothing
 * sleeps: the only waiting is epoll_wait with a timeout (1 ms while a window is closed or the
 * rate pacing has nothing due yet). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "codec/codec.h"

#define PUB_BATCH    256       /* messages per publisher per iteration */
#define WBUF_BACKLOG (1 << 20) /* stop encoding while this much is unwritten */
#define RBUF_MIN     (256 * 1024)

int64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

uint32_t bench_hist_index(uint64_t v)
{
    if (v < 128)
        return (uint32_t)v;
    int e = 63 - __builtin_clzll(v); /* >= 7 */
    uint64_t m = v >> (e - 6);       /* 64..127 */
    return 128 + (uint32_t)(e - 7) * 64 + (uint32_t)(m - 64);
}

uint64_t bench_hist_value(uint32_t idx)
{
    if (idx < 128)
        return idx;
    uint32_t e = 7 + (idx - 128) / 64, m = 64 + (idx - 128) % 64;
    return ((uint64_t)m << (e - 6)) + ((uint64_t)1 << (e - 7)); /* middle of the bucket */
}

void bench_worker_wake(struct worker *w)
{
    uint64_t one = 1;
    (void)!write(w->wake_fd, &one, sizeof one);
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void conn_error(struct bconn *c, const char *what, int err)
{
    struct worker *w = c->w;
    if (!w->first_error[0])
        snprintf(w->first_error, sizeof w->first_error, "connection %u: %s%s%s", c->index, what,
                 err ? ": " : "", err ? strerror(err) : "");
    atomic_fetch_add_explicit(&w->errors, 1, memory_order_relaxed);
    if (c->fd >= 0) {
        epoll_ctl(w->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    if (c->state == BC_CONNECTING || c->state == BC_WAIT_CONNACK)
        w->connecting--;
    c->fd = -1;
    c->state = BC_DEAD;
}

/* Makes room for n more bytes in the write buffer. */
static bool wreserve(struct bconn *c, size_t n)
{
    if (c->woff && c->woff == c->wlen)
        c->woff = c->wlen = 0;
    if (c->wlen + n <= c->wcap)
        return true;
    if (c->woff) { /* compact before growing */
        memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
        c->wlen -= c->woff;
        c->woff = 0;
        if (c->wlen + n <= c->wcap)
            return true;
    }
    size_t cap = c->wcap ? c->wcap : 65536;
    while (cap < c->wlen + n)
        cap *= 2;
    uint8_t *nb = realloc(c->wbuf, cap);
    if (!nb)
        return false;
    c->wbuf = nb;
    c->wcap = cap;
    return true;
}

static void mark_dirty(struct bconn *c)
{
    if (c->dirty)
        return;
    c->dirty = true;
    c->w->dirty[c->w->n_dirty++] = c;
}

/* Encodes a control packet with the codec (setup path; not the hot path). */
static bool send_packet(struct bconn *c, const struct mqtt_packet *p)
{
    size_t n = codec_encoded_size(p, c->w->b->o.version);
    struct mem mem; /* unused by a buf over preallocated space; kept for the interface */
    mem_init(&mem);
    if (!n || !wreserve(c, n))
        return false;
    struct buf b = {c->wbuf + c->wlen, 0, n, n, &mem, MEM_MISC};
    if (codec_encode(p, c->w->b->o.version, &b))
        return false;
    c->wlen += n;
    mark_dirty(c);
    return true;
}

static void send_ack(struct bconn *c, uint8_t first, uint16_t pid)
{
    if (!wreserve(c, 4))
        return;
    uint8_t *p = c->wbuf + c->wlen;
    p[0] = first;
    p[1] = 2;
    p[2] = (uint8_t)(pid >> 8);
    p[3] = (uint8_t)pid;
    c->wlen += 4;
    mark_dirty(c);
}

static void set_out(struct bconn *c, bool on)
{
    if (c->want_out == on || c->fd < 0)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = on;
}

/* One write of whatever is buffered. */
static void flush(struct bconn *c)
{
    c->dirty = false;
    if (c->fd < 0 || c->state == BC_CONNECTING || c->woff == c->wlen)
        return;
    ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        conn_error(c, "write", errno);
        return;
    }
    if (n > 0)
        c->woff += (size_t)n;
    if (c->woff == c->wlen)
        c->woff = c->wlen = 0;
    set_out(c, c->wlen != 0);
}

static void send_connect(struct bconn *c)
{
    const struct bench_opts *o = &c->w->b->o;
    char id[64];
    snprintf(id, sizeof id, "tb%d-%u", (int)getpid(), c->index);
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_CONNECT;
    p.u.connect.clean = true;
    uint32_t ka = (uint32_t)(o->duration_s * 2 + 60);
    p.u.connect.keep_alive = (uint16_t)(ka > 65535 ? 65535 : ka);
    p.u.connect.client_id = (struct mqtt_str){(const uint8_t *)id, (uint32_t)strlen(id)};
    if (!send_packet(c, &p)) {
        conn_error(c, "encode CONNECT", 0);
        return;
    }
    c->state = BC_WAIT_CONNACK;
}

static void send_subscribe(struct bconn *c)
{
    struct mqtt_sub_entry e = {0};
    e.filter = (struct mqtt_str){(const uint8_t *)c->topic, (uint32_t)strlen(c->topic)};
    e.qos = (uint8_t)c->w->b->o.qos;
    struct mqtt_packet p;
    memset(&p, 0, sizeof p);
    p.type = MQTT_SUBSCRIBE;
    p.u.subscribe.packet_id = 1;
    p.u.subscribe.list = &e;
    p.u.subscribe.count = 1;
    if (!send_packet(c, &p)) {
        conn_error(c, "encode SUBSCRIBE", 0);
        return;
    }
    c->state = BC_WAIT_SUBACK;
}

static void became_ready(struct bconn *c)
{
    c->state = BC_READY;
    atomic_fetch_add_explicit(&c->w->ready, 1, memory_order_relaxed);
    atomic_store_explicit(&c->w->last_ready_ns, bench_now_ns(), memory_order_relaxed);
    if (c->w->b->o.scenario == B_CONNECTIONS)
        c->w->connecting--;
}

/* Starts a non-blocking connect for c (bound to a 127.0.0.x source when spreading). */
static void start_connect(struct bconn *c, const struct addrinfo *ai)
{
    struct worker *w = c->w;
    const struct bench_opts *o = &w->b->o;
    w->connecting++;
    c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = BC_CONNECTING;
        conn_error(c, "socket", errno);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o->spread_src && ai->ai_family == AF_INET) {
        /* few connections per source address keep the kernel's ephemeral port search short */
        struct sockaddr_in src = {.sin_family = AF_INET};
        src.sin_addr.s_addr = htonl(0x7F000001u + c->index / BENCH_PER_SOURCE);
        setsockopt(c->fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(c->fd, (struct sockaddr *)&src, sizeof src)) {
            c->state = BC_CONNECTING;
            conn_error(c, "bind 127.0.0.x", errno);
            return;
        }
    }
    c->state = BC_CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->want_out = true;
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev)) {
        conn_error(c, "epoll_ctl", errno);
        return;
    }
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS)
        conn_error(c, "connect", errno);
}

static void finish_connect(struct bconn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
        conn_error(c, "connect", err);
        return;
    }
    send_connect(c);
    set_out(c, false);
}

/* Records one received benchmark message on subscriber c. */
static void on_message(struct bconn *c, const struct mqtt_publish *p, int64_t now)
{
    struct worker *w = c->w;
    atomic_fetch_add_explicit(&w->recv, 1, memory_order_relaxed);
    if (p->payload.len < BENCH_PAYLOAD_MIN) {
        w->foreign++;
        return;
    }
    uint32_t pub = (uint32_t)get_be(p->payload.p, 4);
    uint64_t seq = get_be(p->payload.p + 4, 8);
    int64_t ts = (int64_t)get_be(p->payload.p + 12, 8);
    if (pub < c->pub_base || pub - c->pub_base >= c->pub_count) {
        w->foreign++;
        return;
    }
    uint64_t lat = now > ts ? (uint64_t)(now - ts) : 0;
    w->hist[bench_hist_index(lat)]++;
    w->lat_count++;
    if (lat > w->lat_max)
        w->lat_max = lat;
    struct track *t = &c->tracks[pub - c->pub_base];
    if (seq / 8 >= t->seen_bytes) {
        size_t n = t->seen_bytes ? t->seen_bytes : 4096;
        while (seq / 8 >= n)
            n *= 2;
        uint8_t *s = realloc(t->seen, n);
        if (!s)
            return;
        memset(s + t->seen_bytes, 0, n - t->seen_bytes);
        t->seen = s;
        t->seen_bytes = n;
    }
    uint8_t bit = (uint8_t)(1u << (seq & 7));
    if (t->seen[seq / 8] & bit) {
        t->dups++;
        return;
    }
    t->seen[seq / 8] |= bit;
    t->unique++;
    if (seq + 1 < t->max_seq1)
        t->out_of_order++;
    else
        t->max_seq1 = seq + 1;
    if (t->pending++ == 0)
        c->touched[c->n_touched++] = pub - c->pub_base;
}

static void pid_release(struct bconn *c, uint16_t pid)
{
    if (c->pid_used && (c->pid_used[pid >> 6] >> (pid & 63) & 1)) {
        c->pid_used[pid >> 6] &= ~(UINT64_C(1) << (pid & 63));
        c->unacked--;
    }
}

static void handle_packet(struct bconn *c, const struct mqtt_packet *p, int64_t now)
{
    switch (p->type) {
    case MQTT_CONNACK:
        if (c->state != BC_WAIT_CONNACK)
            break;
        if (p->u.connack.rc) {
            atomic_fetch_add_explicit(&c->w->refused, 1, memory_order_relaxed);
            char what[96];
            snprintf(what, sizeof what, "CONNACK refused: %s (0x%02x)",
                     c->w->b->o.version == 5 ? codec_rc_name(p->u.connack.rc) : "v3 code",
                     p->u.connack.rc);
            conn_error(c, what, 0);
            return;
        }
        if (p->u.connack.props.has & MQTT_PROP_BIT(MQTT_PROP_RECEIVE_MAXIMUM))
            c->recv_max = p->u.connack.props.receive_maximum;
        if (c->role == ROLE_SUB)
            send_subscribe(c);
        else
            became_ready(c);
        break;
    case MQTT_SUBACK:
        if (c->state != BC_WAIT_SUBACK)
            break;
        if (p->u.suback.count < 1 || p->u.suback.rcs[0] >= 0x80) {
            conn_error(c, "SUBSCRIBE refused", 0);
            return;
        }
        became_ready(c);
        break;
    case MQTT_PUBLISH:
        on_message(c, &p->u.publish, now);
        if (p->u.publish.qos == 1)
            send_ack(c, 0x40, p->u.publish.packet_id);
        else if (p->u.publish.qos == 2)
            send_ack(c, 0x50, p->u.publish.packet_id);
        break;
    case MQTT_PUBACK:
    case MQTT_PUBCOMP: pid_release(c, p->u.ack.packet_id); break;
    case MQTT_PUBREC:
        if (p->u.ack.rc >= 0x80)
            pid_release(c, p->u.ack.packet_id);
        else
            send_ack(c, 0x62, p->u.ack.packet_id);
        break;
    case MQTT_PUBREL: send_ack(c, 0x70, p->u.ack.packet_id); break;
    case MQTT_DISCONNECT: conn_error(c, "DISCONNECT from the broker", 0); return;
    default: break;
    }
}

static void do_read(struct bconn *c)
{
    if (c->rcap - c->rlen < RBUF_MIN / 4) {
        size_t cap = c->rcap ? c->rcap * 2 : RBUF_MIN;
        uint8_t *nb = realloc(c->rbuf, cap);
        if (!nb) {
            conn_error(c, "out of memory", 0);
            return;
        }
        c->rbuf = nb;
        c->rcap = cap;
    }
    ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);
    if (n == 0) {
        conn_error(c, "closed by the broker", 0);
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_error(c, "read", errno);
        return;
    }
    c->rlen += (size_t)n;
    int64_t now = bench_now_ns();
    size_t off = 0;
    while (off < c->rlen && c->state != BC_DEAD) {
        struct mqtt_packet p;
        size_t used;
        int rc = codec_decode(c->rbuf + off, c->rlen - off, c->w->b->o.version, 0, &p, &used);
        if (rc == TERN_EAGAIN)
            break;
        if (rc) {
            conn_error(c, "undecodable packet from the broker", 0);
            return;
        }
        handle_packet(c, &p, now);
        off += used;
    }
    if (c->state == BC_DEAD)
        return;
    if (off) {
        memmove(c->rbuf, c->rbuf + off, c->rlen - off);
        c->rlen -= off;
    }
    /* publish the receipts to the publishers' windows once per read, not per message */
    for (uint32_t i = 0; i < c->n_touched; i++) {
        struct track *t = &c->tracks[c->touched[i]];
        atomic_fetch_add_explicit(&c->w->b->pubs[c->pub_base + c->touched[i]].recv, t->pending,
                                  memory_order_relaxed);
        t->pending = 0;
    }
    c->n_touched = 0;
}

/* Appends up to `n` PUBLISH packets of publisher c; returns how many. */
static uint32_t encode_publishes(struct bconn *c, uint32_t n, int64_t now)
{
    const struct bench *b = c->w->b;
    const struct bench_opts *o = &b->o;
    size_t one = c->prefix_len + (o->qos ? 2 : 0) + (o->version == 5 ? 1 : 0) + o->payload;
    if (!wreserve(c, one * n))
        return 0;
    uint64_t seq = atomic_load_explicit(&c->pub->sent, memory_order_relaxed);
    uint8_t *p = c->wbuf + c->wlen;
    uint32_t done = 0;
    for (; done < n; done++) {
        uint16_t pid = 0;
        if (o->qos) {
            pid = c->next_pid;
            for (int k = 0; k < 65535 && (c->pid_used[pid >> 6] >> (pid & 63) & 1); k++)
                pid = (uint16_t)(pid == 65535 ? 1 : pid + 1);
            if (c->pid_used[pid >> 6] >> (pid & 63) & 1)
                break;
            c->pid_used[pid >> 6] |= UINT64_C(1) << (pid & 63);
            c->next_pid = (uint16_t)(pid == 65535 ? 1 : pid + 1);
            c->unacked++;
        }
        memcpy(p, c->prefix, c->prefix_len);
        p += c->prefix_len;
        if (o->qos) {
            *p++ = (uint8_t)(pid >> 8);
            *p++ = (uint8_t)pid;
        }
        if (o->version == 5)
            *p++ = 0; /* no properties */
        put_be(p, c->pub_id, 4);
        put_be(p + 4, seq + done, 8);
        put_be(p + 12, (uint64_t)now, 8);
        memcpy(p + BENCH_PAYLOAD_MIN, b->pad, o->payload - BENCH_PAYLOAD_MIN);
        p += o->payload;
    }
    c->wlen = (size_t)(p - c->wbuf);
    atomic_store_explicit(&c->pub->sent, seq + done, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->w->sent, done, memory_order_relaxed);
    if (done)
        mark_dirty(c);
    return done;
}

/* One publishing round. Returns 1 when some publisher still had more to send right away (loop
 * again without waiting), 0 when all are waiting on their window or the pacing. */
static int publish_round(struct worker *w, int64_t now)
{
    const struct bench_opts *o = &w->b->o;
    int more = 0;
    int64_t start = atomic_load(&w->b->run_start_ns);
    for (size_t i = 0; i < w->n_pubs; i++) {
        struct bconn *c = w->pubs[i];
        if (c->state != BC_READY || c->wlen - c->woff > WBUF_BACKLOG)
            continue;
        struct publisher *pub = c->pub;
        uint64_t sent = atomic_load_explicit(&pub->sent, memory_order_relaxed);
        uint64_t recv = atomic_load_explicit(&pub->recv, memory_order_relaxed);
        uint64_t owed = sent * pub->fan > recv ? sent * pub->fan - recv : 0;
        uint64_t in_flight = (owed + pub->fan - 1) / pub->fan;
        uint64_t allow = in_flight < o->window ? o->window - in_flight : 0;
        if (o->qos) {
            uint32_t room = c->recv_max > c->unacked ? c->recv_max - c->unacked : 0;
            if (allow > room)
                allow = room;
        }
        if (o->scenario == B_LATENCY) {
            double per_pub = o->rate / (double)w->b->n_pubs;
            uint64_t due = (uint64_t)(per_pub * (double)(now - start) / 1e9) + 1;
            uint64_t owe = due > sent ? due - sent : 0;
            if (allow > owe)
                allow = owe;
        }
        if (allow > PUB_BATCH) {
            allow = PUB_BATCH;
            more = 1;
        }
        if (allow)
            encode_publishes(c, (uint32_t)allow, now);
    }
    return more;
}

/* Connections scenario: keeps connect_parallel attempts in flight. */
static void pace_connects(struct worker *w, const struct addrinfo *ai)
{
    while (w->next_connect < w->n_conns && w->connecting < w->b->o.connect_parallel)
        start_connect(w->conns[w->next_connect++], ai);
}

static void on_event(struct worker *w, struct bconn *c, uint32_t ev)
{
    if (c->state == BC_DEAD)
        return;
    if (c->state == BC_CONNECTING && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        finish_connect(c);
        return;
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
        do_read(c);
    if (c->state != BC_DEAD && (ev & EPOLLOUT))
        mark_dirty(c);
}

void *bench_worker_main(void *arg)
{
    struct worker *w = arg;
    struct bench *b = w->b;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char port[8];
    snprintf(port, sizeof port, "%u", b->o.port);
    if (getaddrinfo(b->o.host, port, &hints, &ai) || !ai) {
        snprintf(w->first_error, sizeof w->first_error, "cannot resolve %s", b->o.host);
        atomic_fetch_add(&w->errors, 1);
        return NULL;
    }
    if (b->o.scenario != B_CONNECTIONS)
        for (size_t i = 0; i < w->n_conns; i++)
            start_connect(w->conns[i], ai);
    struct epoll_event evs[256];
    int more = 0;
    for (;;) {
        int phase = atomic_load(&b->phase);
        if (phase == PH_STOP)
            break;
        if (b->o.scenario == B_CONNECTIONS && phase == PH_RUN)
            pace_connects(w, ai);
        int timeout = more ? 0 : (phase == PH_RUN && w->n_pubs) ? 1 : 100;
        int n = epoll_wait(w->ep, evs, 256, timeout);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                uint64_t v;
                (void)!read(w->wake_fd, &v, sizeof v);
                continue;
            }
            on_event(w, evs[i].data.ptr, evs[i].events);
        }
        more = 0;
        if (atomic_load(&b->phase) == PH_RUN && w->n_pubs)
            more = publish_round(w, bench_now_ns());
        for (size_t i = 0; i < w->n_dirty; i++) /* one write per connection per iteration */
            flush(w->dirty[i]);
        w->n_dirty = 0;
    }
    freeaddrinfo(ai);
    return NULL;
}
