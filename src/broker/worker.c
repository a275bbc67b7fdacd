/* worker.c - the I/O workers: one epoll loop per thread, owning its listeners' accepted
 * connections, its inbox, and the sessions homed on it.
 *
 * One loop iteration:
 *   epoll_wait -> accept / read+decode+handle (publishes routed immediately: local subscribers
 *   get output appended, remote ones an outbox item) / inbox items / EPOLLOUT
 *   -> timers (keep-alive, expiry, wills) -> $SYS (worker 0)
 *   -> reaper: detach closed connections (wills) -> outboxes to other workers' inboxes
 *   -> one writev per dirty connection -> free closed connections.
 * So a burst of packets read together is routed together and each subscriber gets one write
 * per iteration however many messages it received ("batching").
 *
 * epoll data: a client pointer, or a small tagged integer for listeners ((i << 2) | 1) and
 * the eventfd (2). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "broker/broker.h"
#include "common/clock.h"
#include "net/sock.h"
#include "net/tls.h"

#define TAG_EVENTFD     2u
#define SCRATCH_SIZE    65536
#define READS_PER_EVENT 4
#define OUT_MAX_BYTES   (64u << 20)

const char *client_name(const struct client *c, char *buf, size_t len)
{
    if (c->sess) {
        snprintf(buf, len, "'%.*s' (%s)", (int)c->sess->client_id_len,
                 (const char *)c->sess->client_id, c->addr);
        return buf;
    }
    snprintf(buf, len, "%s", c->addr);
    return buf;
}

void client_close(struct client *c, enum log_level lvl, const char *reason)
{
    if (c->state == CS_CLOSED)
        return;
    if (reason) {
        char name[160];
        log_write(&c->w->b->log, lvl, "client %s disconnected: %s",
                  client_name(c, name, sizeof name), reason);
    }
    c->state = CS_CLOSED;
    c->next_close = c->w->closing;
    c->w->closing = c;
}

void client_mark_dirty(struct client *c)
{
    if (c->in_dirty || c->state == CS_CLOSED)
        return;
    c->in_dirty = true;
    c->next_dirty = c->w->dirty;
    c->w->dirty = c;
}

static int xvec_push(struct mem *mem, struct xvec *v, const struct xitem *it)
{
    if (v->n == v->cap) {
        uint32_t ncap = v->cap ? v->cap * 2 : 64;
        struct xitem *ni = mem_realloc(mem, MEM_MISC, v->items, ncap * sizeof *ni);
        if (!ni)
            return TERN_ENOMEM;
        v->items = ni;
        v->cap = ncap;
    }
    v->items[v->n++] = *it;
    return 0;
}

int worker_post(struct worker *w, uint32_t to, const struct xitem *it)
{
    return xvec_push(&w->b->mem, &w->outbox[to], it);
}

/* ---- epoll registration ---- */

static void ep_set(struct client *c, bool add)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (c->want_out ? EPOLLOUT : 0),
                             .data.ptr = c};
    epoll_ctl(c->w->epfd, add ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, c->fd, &ev);
}

static void link_client(struct worker *w, struct client *c)
{
    c->w = w;
    c->prev = NULL;
    c->next = w->clients;
    if (w->clients)
        w->clients->prev = c;
    w->clients = c;
    STAT_ADD(w, sockets, 1);
}

static void unlink_client(struct worker *w, struct client *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        w->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->next = c->prev = NULL;
    atomic_fetch_sub_explicit(&w->st.sockets, 1, memory_order_relaxed);
}

/* ---- limits ---- */

const char *const limit_names[LIMIT_COUNT] = {
    "connections",  "connections_per_ip", "connection_rate", "subscriptions", "topic",
    "publish_rate", "retained",           "memory",          "queue",         "slow_consumer",
};

void limit_hit(struct worker *w, enum limit_kind k, const char *who, const char *detail)
{
    atomic_fetch_add_explicit(&w->b->limit_hits[k], 1, memory_order_relaxed);
    unsigned supp;
    if (log_ratelimit_ok(&w->drop_log, w->now_s, 5, &supp))
        log_write(&w->b->log, LOG_WARN, "limit %s: %s: %s%s", limit_names[k], who, detail,
                  supp ? " (earlier lines suppressed)" : "");
}

/* The IP part of "ip:port" / "v6:addr:port". */
static void ip_of(const char *addr, char *ip, size_t cap)
{
    const char *colon = strrchr(addr, ':');
    size_t n = colon ? (size_t)(colon - addr) : strlen(addr);
    if (n >= cap)
        n = cap - 1;
    memcpy(ip, addr, n);
    ip[n] = '\0';
}

/* Per-IP admission: connection count and rate. Returns NULL when admitted, else the limit. */
static const char *ip_admit(struct worker *w, const char *addr, const struct config *conf,
                            enum limit_kind *kind)
{
    if (!conf->max_connections_per_ip && !conf->connection_rate_per_ip)
        return NULL;
    struct broker *b = w->b;
    char ip[48];
    ip_of(addr, ip, sizeof ip);
    const char *refused = NULL;
    pthread_mutex_lock(&b->ip_lock);
    struct ip_entry *e = hmap_get(&b->ips, ip, strlen(ip));
    if (!e && b->ips.count < 1000000) {
        e = mem_calloc(&b->mem, MEM_CONN, sizeof *e);
        if (e) {
            memcpy(e->ip, ip, strlen(ip) + 1);
            if (hmap_put(&b->ips, e->ip, strlen(e->ip), e)) {
                mem_free(&b->mem, MEM_CONN, e);
                e = NULL;
            }
        }
    }
    if (e) {
        if (e->window_s != w->now_s) {
            e->window_s = w->now_s;
            e->attempts = 0;
        }
        e->attempts++;
        if (conf->connection_rate_per_ip && e->attempts > (uint32_t)conf->connection_rate_per_ip) {
            refused = "connection rate from this address over connection_rate_per_ip";
            *kind = LIMIT_CONN_RATE;
        } else if (conf->max_connections_per_ip &&
                   e->open >= (uint32_t)conf->max_connections_per_ip) {
            refused = "too many connections from this address (max_connections_per_ip)";
            *kind = LIMIT_CONN_PER_IP;
        } else {
            e->open++;
        }
    }
    pthread_mutex_unlock(&b->ip_lock);
    return refused;
}

static void ip_release(struct worker *w, const char *addr)
{
    struct broker *b = w->b;
    char ip[48];
    ip_of(addr, ip, sizeof ip);
    pthread_mutex_lock(&b->ip_lock);
    struct ip_entry *e = hmap_get(&b->ips, ip, strlen(ip));
    if (e && e->open)
        e->open--;
    if (e && !e->open && e->window_s != w->now_s) {
        hmap_del(&b->ips, e->ip, strlen(e->ip));
        mem_free(&b->mem, MEM_CONN, e);
    }
    pthread_mutex_unlock(&b->ip_lock);
}

/* ---- accept ---- */

static void on_accept(struct worker *w, int li)
{
    struct broker *b = w->b;
    struct config *conf = broker_conf(b);
    for (int i = 0; i < 64; i++) {
        int fd;
        char addr[SOCK_ADDR_LEN];
        int rc = sock_accept(w->lfds[li], &fd, addr, sizeof addr);
        if (rc == TERN_EAGAIN)
            return;
        if (rc) {
            if (log_ratelimit_ok(&w->drop_log, w->now_s, 5, &(unsigned){0}))
                log_write(&b->log, LOG_WARN, "accept failed on port %d: %s", b->listeners[li].port,
                          strerror(errno));
            return;
        }
        int64_t open = atomic_fetch_add(&b->connections, 1) + 1;
        int lmax = b->listeners[li].conf->max_connections;
        if ((conf->max_connections >= 0 && open > conf->max_connections) ||
            (lmax >= 0 && open > lmax)) {
            atomic_fetch_sub(&b->connections, 1);
            /* logged before the close, so whoever sees the close can also see why */
            limit_hit(w, LIMIT_CONNECTIONS, addr, "connection refused: max_connections reached");
            close(fd);
            continue;
        }
        enum limit_kind lk;
        const char *ipwhy = ip_admit(w, addr, conf, &lk);
        if (ipwhy) {
            atomic_fetch_sub(&b->connections, 1);
            limit_hit(w, lk, addr, ipwhy);
            close(fd);
            continue;
        }
        bool ip_counted = conf->max_connections_per_ip || conf->connection_rate_per_ip;
        struct client *c = mem_calloc(&b->mem, MEM_CONN, sizeof *c);
        if (!c) {
            atomic_fetch_sub(&b->connections, 1);
            if (ip_counted)
                ip_release(w, addr);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->ip_counted = ip_counted;
        c->listener = li;
        c->send_will = true;
        uint32_t maxp =
            conf->max_packet_size ? (uint32_t)conf->max_packet_size : MQTT_MAX_REMAINING + 5;
        c->max_packet = maxp;
        buf_init(&c->rbuf, &b->mem, MEM_CONN, (size_t)maxp + 8);
        buf_init(&c->pending_connect, &b->mem, MEM_CONN, (size_t)maxp + 8);
        outq_init(&c->out, &b->mem, OUT_MAX_BYTES, msg_unref_void);
        snprintf(c->addr, sizeof c->addr, "%s", addr);
        c->last_rx_ms = w->now_ms;
        if (conf->set_tcp_nodelay)
            sock_nodelay(fd);
        SSL_CTX *tls = atomic_load_explicit(&b->listeners[li].tls, memory_order_acquire);
        if (tls) {
            c->ssl = tls_new(tls, fd);
            c->tls_hs = true;
            if (!c->ssl) {
                atomic_fetch_sub(&b->connections, 1);
                if (ip_counted)
                    ip_release(w, addr);
                buf_free(&c->rbuf);
                outq_free(&c->out);
                mem_free(&b->mem, MEM_CONN, c);
                close(fd);
                continue;
            }
        }
        link_client(w, c);
        ep_set(c, true);
        c->ka_timer.kind = 1;
        /* a socket that sends no CONNECT in time is closed */
        wheel_add(&w->wheel, &c->ka_timer,
                  w->now_s + (conf->connect_timeout > 0 ? conf->connect_timeout : 10));
        log_write(&b->log, LOG_DEBUG, "new connection from %s on port %d", addr,
                  b->listeners[li].port);
    }
}

/* ---- migration to the session's home worker ---- */

static void migrate_out(struct client *c, uint32_t to)
{
    struct worker *w = c->w;
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    wheel_del(&c->ka_timer);
    if (c->in_dirty) {
        /* unlink from the dirty list: nothing was written for it yet (no session) */
        struct client **pp = &w->dirty;
        while (*pp && *pp != c)
            pp = &(*pp)->next_dirty;
        if (*pp)
            *pp = c->next_dirty;
        c->in_dirty = false;
    }
    unlink_client(w, c);
    struct xitem it = {.kind = XI_MIGRATE, .ptr = c};
    if (worker_post(w, to, &it)) {
        /* cannot hand it over: keep it and refuse the connection */
        link_client(w, c);
        ep_set(c, true);
        c->migrated = false;
        client_close(c, LOG_WARN, "out of memory during migration");
    }
}

/* ---- reading ---- */

/* Feeds data to the protocol handler; returns bytes consumed. */
size_t client_process(struct client *c, const uint8_t *data, size_t len);

static void keep_rest(struct client *c, const uint8_t *data, size_t len)
{
    if (!len)
        return;
    if (buf_append(&c->rbuf, data, len))
        client_close(c, LOG_WARN, "out of memory for the receive buffer");
}

/* read(2) or TLS: > 0 bytes, 0 closed, -1 with errno (EAGAIN: wait). */
static ssize_t conn_read(struct client *c, void *buf, size_t n)
{
    if (!c->ssl)
        return read(c->fd, buf, n);
    ssize_t r = tls_read(c->ssl, buf, n);
    if (r == TERN_EAGAIN || r == TERN_EIO) {
        errno = r == TERN_EAGAIN ? EAGAIN : EIO;
        return -1;
    }
    return r;
}

/* Drives a TLS handshake; false while it is not finished (or failed: closed). */
static bool tls_progress(struct client *c)
{
    char err[300];
    enum tls_want st = tls_handshake(c->ssl, err, sizeof err);
    if (st == TLS_FAILED) {
        client_close(c, LOG_NOTICE, err);
        return false;
    }
    bool want_out = st == TLS_WANT_WRITE;
    if (want_out != c->want_out) {
        c->want_out = want_out;
        ep_set(c, false);
    }
    if (st != TLS_DONE)
        return false;
    c->tls_hs = false;
    char ident[256];
    if (tls_peer_identity(c->ssl, ident, sizeof ident))
        c->cert_user = mem_strndup(&c->w->b->mem, MEM_AUTH, ident, strlen(ident));
    log_write(&c->w->b->log, LOG_DEBUG, "TLS handshake with %s done (%s%s%s)", c->addr,
              tls_version_name(c->ssl), c->cert_user ? ", certificate " : "",
              c->cert_user ? c->cert_user : "");
    return true;
}

static void on_readable(struct client *c)
{
    struct worker *w = c->w;
    if (c->tls_hs && !tls_progress(c))
        return;
    /* TLS may hold decrypted bytes the socket no longer signals: read those to the end */
    int rounds = c->ssl ? 1 << 20 : READS_PER_EVENT;
    for (int round = 0; round < rounds && c->state != CS_CLOSED && !c->migrated; round++) {
        ssize_t n;
        size_t asked;
        if (c->rbuf.len == 0) {
            asked = SCRATCH_SIZE;
            n = conn_read(c, w->scratch, asked);
            if (n > 0) {
                STAT_ADD(w, bytes_received, (uint64_t)n);
                size_t used = client_process(c, w->scratch, (size_t)n);
                if (c->state != CS_CLOSED)
                    keep_rest(c, w->scratch + used, (size_t)n - used);
            }
        } else {
            size_t room = c->rbuf.max - c->rbuf.len;
            asked = room < SCRATCH_SIZE ? room : SCRATCH_SIZE;
            if (asked == 0 || buf_reserve(&c->rbuf, asked)) {
                client_close(c, LOG_WARN, "receive buffer limit reached");
                return;
            }
            n = conn_read(c, c->rbuf.data + c->rbuf.len, asked);
            if (n > 0) {
                STAT_ADD(w, bytes_received, (uint64_t)n);
                c->rbuf.len += (size_t)n;
                size_t used = client_process(c, c->rbuf.data, c->rbuf.len);
                if (c->state != CS_CLOSED) {
                    buf_consume(&c->rbuf, used);
                    buf_shrink(&c->rbuf, 0);
                }
            }
        }
        if (n == 0) {
            client_close(c, LOG_NOTICE,
                         c->state == CS_CONNECTED ? "connection closed by peer"
                                                  : "closed before CONNECT");
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            client_close(c, LOG_NOTICE, strerror(errno));
            return;
        }
        if ((size_t)n < asked && !c->ssl)
            break;
    }
}

/* Called by client.c when CONNECT names a session homed on worker `to`. */
void worker_request_migration(struct client *c, uint32_t to);
void worker_request_migration(struct client *c, uint32_t to)
{
    c->migrated = true;
    c->migrate_to = to; /* acted on once the read handler has buffered the unread bytes */
}

static void finish_migration(struct client *c)
{
    migrate_out(c, c->migrate_to);
}

static void free_client(struct worker *w, struct client *c);

static void adopt(struct worker *w, struct client *c)
{
    c->migrated = false;
    link_client(w, c);
    if (atomic_load(&w->b->stopping)) {
        /* arrived after shutdown began: nothing to serve it with */
        free_client(w, c);
        return;
    }
    ep_set(c, true);
    c->ka_timer.kind = 1;
    struct config *conf = broker_conf(w->b);
    wheel_add(&w->wheel, &c->ka_timer,
              w->now_s + (conf->connect_timeout > 0 ? conf->connect_timeout : 10));
    size_t used = client_process(c, c->rbuf.data, c->rbuf.len);
    if (c->state != CS_CLOSED && !c->migrated) {
        buf_consume(&c->rbuf, used);
        buf_shrink(&c->rbuf, 0);
    }
    if (c->migrated) {
        buf_consume(&c->rbuf, used);
        finish_migration(c);
    }
}

/* ---- writing ---- */

/* TLS output: small segments are coalesced (one record instead of one per packet); after
 * WANT_WRITE the same length is written again, as OpenSSL requires. */
static int tls_flush(struct client *c, size_t *written)
{
    *written = 0;
    while (!outq_empty(&c->out)) {
        struct iovec iov[64];
        int n = outq_peek(&c->out, iov, 64);
        size_t len = 0;
        const uint8_t *src;
        size_t want = c->tls_retry ? c->tls_retry : 16384;
        if (iov[0].iov_len >= want || n == 1) {
            src = iov[0].iov_base;
            len = iov[0].iov_len < want ? iov[0].iov_len : want;
        } else {
            for (int i = 0; i < n && len < want; i++) {
                size_t take = iov[i].iov_len < want - len ? iov[i].iov_len : want - len;
                memcpy(c->w->scratch + len, iov[i].iov_base, take);
                len += take;
            }
            src = c->w->scratch;
        }
        ssize_t r = tls_write(c->ssl, src, len);
        if (r == TERN_EAGAIN) {
            c->tls_retry = len;
            return TERN_EAGAIN;
        }
        if (r < 0)
            return TERN_EIO;
        c->tls_retry = 0;
        outq_advance(&c->out, (size_t)r);
        *written += (size_t)r;
    }
    return 0;
}

static void flush_client(struct client *c)
{
    size_t written;
    if (c->tls_hs)
        return; /* nothing is sent before the handshake completes */
    int rc = c->ssl ? tls_flush(c, &written) : outq_flush(&c->out, c->fd, &written);
    STAT_ADD(c->w, bytes_sent, written);
    if (rc == TERN_EAGAIN) {
        if (!c->want_out) {
            c->want_out = true;
            ep_set(c, false);
        }
        return;
    }
    if (rc) {
        client_close(c, LOG_NOTICE, "write failed");
        return;
    }
    if (c->want_out) {
        c->want_out = false;
        ep_set(c, false);
    }
    /* a small write (CONNACK, PINGRESP, SUBACK, a trickle of messages) leaves the connection
     * idle: give its output storage back; busy connections keep theirs between iterations */
    if (written < 1024)
        outq_trim(&c->out);
}

void client_on_drained(struct client *c);
void client_free_aliases(struct client *c);
void client_free_auth(struct client *c);
void client_send_disconnect(struct client *c, uint8_t rc);

static void on_writable(struct client *c)
{
    if (c->tls_hs) {
        if (tls_progress(c) && c->state != CS_CLOSED)
            on_readable(c); /* data may have arrived with the last handshake flight */
        return;
    }
    flush_client(c);
    if (c->state != CS_CLOSED && outq_empty(&c->out))
        client_on_drained(c);
}

/* ---- inbox ---- */

static void drain_inbox(struct worker *w)
{
    uint64_t v;
    ssize_t r = read(w->evfd, &v, sizeof v);
    (void)r;
    pthread_mutex_lock(&w->inbox_lock);
    struct xvec tmp = w->inbox;
    w->inbox = w->work;
    w->work = tmp;
    w->inbox_signalled = false;
    pthread_mutex_unlock(&w->inbox_lock);
    for (uint32_t i = 0; i < w->work.n; i++) {
        struct xitem *it = &w->work.items[i];
        if (it->kind == XI_DELIVER) {
            struct session *s = hmap_get(&w->session_ids, &it->session_id, sizeof it->session_id);
            if (s && s == it->ptr)
                client_deliver(w, s, it->m, it->qos, it->retain, it->flags);
            msg_unref(it->m);
        } else if (it->kind == XI_MIGRATE) {
            adopt(w, it->ptr);
        }
    }
    w->work.n = 0;
}

static void flush_outboxes(struct worker *w)
{
    struct broker *b = w->b;
    for (uint32_t t = 0; t < b->nworkers; t++) {
        struct xvec *o = &w->outbox[t];
        if (!o->n)
            continue;
        struct worker *to = &b->workers[t];
        bool signal;
        pthread_mutex_lock(&to->inbox_lock);
        uint32_t done = 0;
        for (; done < o->n; done++)
            if (xvec_push(&b->mem, &to->inbox, &o->items[done]))
                break;
        signal = !to->inbox_signalled;
        to->inbox_signalled = true;
        pthread_mutex_unlock(&to->inbox_lock);
        /* the eventfd write happens after the unlock: no lock across a syscall */
        if (signal) {
            uint64_t one = 1;
            ssize_t r = write(to->evfd, &one, sizeof one);
            (void)r;
        }
        for (uint32_t k = done; k < o->n; k++) {
            /* inbox allocation failed: these deliveries are lost; count them */
            if (o->items[k].kind == XI_DELIVER) {
                msg_unref(o->items[k].m);
                STAT_ADD(w, msgs_dropped, 1);
            }
        }
        o->n = 0;
    }
}

/* ---- end of iteration ---- */

static void free_client(struct worker *w, struct client *c)
{
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    /* last chance for a final CONNACK/DISCONNECT to leave */
    size_t written;
    if (c->ssl && !c->tls_hs)
        (void)tls_flush(c, &written);
    else if (!c->ssl)
        (void)outq_flush(&c->out, c->fd, &written);
    tls_free(c->ssl);
    c->ssl = NULL;
    mem_free(&w->b->mem, MEM_AUTH, c->cert_user);
    c->cert_user = NULL;
    close(c->fd);
    atomic_fetch_sub(&w->b->connections, 1);
    if (c->ip_counted)
        ip_release(w, c->addr);
    wheel_del(&c->ka_timer);
    unlink_client(w, c);
    client_free_aliases(c);
    client_free_auth(c);
    buf_free(&c->rbuf);
    outq_free(&c->out);
    mem_free(&w->b->mem, MEM_CONN, c);
}

static void end_iteration(struct worker *w)
{
    subs_unlock(w); /* timers, $SYS and inbox deliveries may have read-locked it */
    /* detaching may publish wills, which may close nothing but may dirty others */
    struct client *closed = NULL;
    while (w->closing) {
        struct client *list = w->closing;
        /* wills published below route under the read lock; released before flushing */
        w->closing = NULL;
        while (list) {
            struct client *c = list;
            list = c->next_close;
            client_detach(c);
            c->next_close = closed;
            closed = c;
        }
    }
    subs_unlock(w);
    flush_outboxes(w);
    while (w->dirty) {
        struct client *c = w->dirty;
        w->dirty = c->next_dirty;
        c->in_dirty = false;
        if (c->state != CS_CLOSED)
            flush_client(c);
    }
    while (closed) {
        struct client *c = closed;
        closed = c->next_close;
        free_client(w, c);
    }
    /* clients closed while flushing */
    while (w->closing) {
        struct client *c = w->closing;
        w->closing = c->next_close;
        client_detach(c);
        subs_unlock(w);
        free_client(w, c);
    }
}

static void on_timer(void *ctx, struct timer *t)
{
    client_on_timer(ctx, t);
}

/* Stop: no new connections, flush what is queued to connected clients (bounded), close all. */
static void shutdown_worker(struct worker *w)
{
    for (int i = 0; i < w->b->n_listeners; i++) {
        if (w->lfds[i] >= 0) {
            epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->lfds[i], NULL);
            close(w->lfds[i]);
            w->lfds[i] = -1;
        }
    }
    for (struct client *c = w->clients; c; c = c->next)
        if (c->state == CS_CONNECTED && c->version == MQTT_V5)
            client_send_disconnect(c, MQTT_RC_SERVER_SHUTTING_DOWN);
    int64_t deadline = clock_mono_ms() + 2000;
    for (;;) {
        bool pending = false;
        for (struct client *c = w->clients; c; c = c->next) {
            if (c->state == CS_CLOSED || outq_empty(&c->out))
                continue;
            flush_client(c);
            if (c->state != CS_CLOSED && !outq_empty(&c->out))
                pending = true;
        }
        int64_t now = clock_mono_ms();
        if (!pending || now >= deadline)
            break;
        struct epoll_event evs[64];
        epoll_wait(w->epfd, evs, 64, (int)(deadline - now));
    }
    while (w->clients) {
        struct client *c = w->clients;
        c->send_will = false; /* server shutdown is not the client's failure */
        if (c->state != CS_CLOSED)
            client_close(c, LOG_DEBUG, "server shutting down");
        w->closing = NULL;
        client_detach(c);
        subs_unlock(w);
        free_client(w, c);
    }
    w->dirty = NULL; /* every client in it was just freed */
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct broker *b = w->b;
    w->scratch = mem_alloc(&b->mem, MEM_CONN, SCRATCH_SIZE);
    if (!w->scratch) {
        log_write(&b->log, LOG_ERR, "worker %u: out of memory", w->index);
        return NULL;
    }
    w->now_ms = clock_mono_ms();
    w->now_s = w->now_ms / 1000;
    wheel_init(&w->wheel, w->now_s);
    struct epoll_event evs[256];
    while (!atomic_load_explicit(&b->stopping, memory_order_acquire)) {
        int timeout = (int)(1000 - w->now_ms % 1000) + 1;
        int n = epoll_wait(w->epfd, evs, 256, timeout);
        w->now_ms = clock_mono_ms();
        w->now_s = w->now_ms / 1000;
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TAG_EVENTFD) {
                drain_inbox(w);
            } else if (tag & 1) {
                on_accept(w, (int)(tag >> 2));
            } else {
                struct client *c = evs[i].data.ptr;
                if (c->state == CS_CLOSED || c->migrated)
                    continue;
                if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP))
                    on_readable(c);
                if (c->migrated) {
                    finish_migration(c);
                    continue;
                }
                if (c->state != CS_CLOSED && (evs[i].events & EPOLLOUT))
                    on_writable(c);
            }
        }
        wheel_advance(&w->wheel, w->now_s, on_timer, w);
        if (w->index == 0)
            sys_tick(w);
        end_iteration(w);
    }
    shutdown_worker(w);
    drain_inbox(w); /* release references still in transit */
    end_iteration(w);
    mem_free(&b->mem, MEM_CONN, w->scratch);
    w->scratch = NULL;
    return NULL;
}

int worker_start_all(struct broker *b)
{
    for (uint32_t i = 0; i < b->nworkers; i++) {
        struct worker *w = &b->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            log_write(&b->log, LOG_ERR, "cannot start worker thread %u", i);
            atomic_store(&b->stopping, true);
            for (uint32_t k = 0; k < i; k++) {
                uint64_t one = 1;
                ssize_t r = write(b->workers[k].evfd, &one, sizeof one);
                (void)r;
                pthread_join(b->workers[k].thread, NULL);
            }
            return TERN_EIO;
        }
    }
    return 0;
}

void worker_stop_all(struct broker *b)
{
    atomic_store_explicit(&b->stopping, true, memory_order_release);
    for (uint32_t i = 0; i < b->nworkers; i++) {
        uint64_t one = 1;
        ssize_t r = write(b->workers[i].evfd, &one, sizeof one);
        (void)r;
    }
    for (uint32_t i = 0; i < b->nworkers; i++)
        pthread_join(b->workers[i].thread, NULL);
}

/* Creates worker i's epoll, eventfd and listening sockets (listener ports already resolved in
 * b->listeners[].port). */
int worker_init(struct broker *b, struct worker *w, uint32_t i, char *err, size_t errlen);
int worker_init(struct broker *b, struct worker *w, uint32_t i, char *err, size_t errlen)
{
    memset(w, 0, sizeof *w);
    w->b = b;
    w->index = i;
    for (int k = 0; k < CONF_MAX_LISTENERS; k++)
        w->lfds[k] = -1;
    pthread_mutex_init(&w->inbox_lock, NULL);
    msg_pool_init(&w->pool, &b->mem);
    w->rng = 0x9E3779B97F4A7C15ull ^ ((uint64_t)(i + 1) << 32) ^ (uint64_t)clock_mono_ms();
    hmap_init(&w->sessions, &b->mem);
    hmap_init(&w->session_ids, &b->mem);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->outbox = mem_calloc(&b->mem, MEM_MISC, b->nworkers * sizeof *w->outbox);
    if (w->epfd < 0 || w->evfd < 0 || !w->outbox) {
        snprintf(err, errlen, "cannot create event loop: %s", strerror(errno));
        return TERN_EIO;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = TAG_EVENTFD};
    epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev);
    for (int k = 0; k < b->n_listeners; k++) {
        int port;
        int rc = sock_listen(b->listeners[k].conf->bind_address, b->listeners[k].port, true,
                             &w->lfds[k], &port, err, errlen);
        if (rc)
            return rc;
        b->listeners[k].port = port; /* the first bind resolves port 0 for the others */
        struct epoll_event lev = {.events = EPOLLIN, .data.u64 = ((uint64_t)k << 2) | 1};
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->lfds[k], &lev);
    }
    return 0;
}

/* Frees worker resources after its thread ended. */
void worker_fini(struct worker *w);
void worker_fini(struct worker *w)
{
    struct broker *b = w->b;
    hmap_free(&w->sessions);
    hmap_free(&w->session_ids);
    if (w->outbox) {
        for (uint32_t t = 0; t < b->nworkers; t++) {
            for (uint32_t k = 0; k < w->outbox[t].n; k++)
                msg_unref(w->outbox[t].items[k].m);
            mem_free(&b->mem, MEM_MISC, w->outbox[t].items);
        }
        mem_free(&b->mem, MEM_MISC, w->outbox);
    }
    for (uint32_t k = 0; k < w->inbox.n; k++)
        msg_unref(w->inbox.items[k].m);
    mem_free(&b->mem, MEM_MISC, w->inbox.items);
    mem_free(&b->mem, MEM_MISC, w->work.items);
    mem_free(&b->mem, MEM_MISC, w->matches);
    mem_free(&b->mem, MEM_MISC, w->rmsgs);
    for (int k = 0; k < CONF_MAX_LISTENERS; k++)
        if (w->lfds[k] >= 0)
            close(w->lfds[k]);
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->evfd >= 0)
        close(w->evfd);
    pthread_mutex_destroy(&w->inbox_lock);
}
