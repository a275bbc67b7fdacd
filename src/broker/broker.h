/* broker.h - the broker: one struct broker made in main() and passed down, N I/O workers.
 *
 * Threads (docs/ARCHITECTURE.md has the full picture):
 *  - main thread: parses configuration, starts workers, then waits for signals (SIGTERM/SIGINT:
 *    graceful stop; SIGHUP: reload) and joins the workers.
 *  - N workers (struct worker), each with its own epoll loop, its own listening sockets
 *    (SO_REUSEPORT) and the connections it accepted. A session lives on the worker chosen by the
 *    hash of its client id (its "home"); a connection whose CONNECT names a session homed
 *    elsewhere migrates there, so session state is only touched by one thread, without locks.
 *  - Messages for subscribers on another worker cross through that worker's inbox (mutex +
 *    eventfd), batched per loop iteration; the inbox lock is never held across a syscall.
 *
 * Shared state and its guards:
 *  - subs (subscription trie): subs_lock rwlock; publish matching takes it for reading.
 *  - store (retained messages): locked inside the store.
 *  - conf: atomic pointer to the current configuration; replaced (never mutated) on reload.
 *  - stats: per-worker relaxed atomics summed by $SYS. */
#ifndef TERN_BROKER_BROKER_H
#define TERN_BROKER_BROKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth/acl.h"
#include "auth/auth.h"
#include "codec/codec.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "common/hmap.h"
#include "common/log.h"
#include "common/outq.h"
#include "common/timer.h"
#include "config/config.h"
#include "net/tls.h"
#include "router/trie.h"
#include "session/session.h"
#include "store/store.h"

struct worker;
struct client;

/* Limits whose hits are counted in $SYS/broker/limits/<name> and logged (rate-limited). */
enum limit_kind {
    LIMIT_CONNECTIONS = 0, /* max_connections (global or listener) */
    LIMIT_CONN_PER_IP,
    LIMIT_CONN_RATE,
    LIMIT_SUBSCRIPTIONS,
    LIMIT_TOPIC, /* max_topic_length / max_topic_levels */
    LIMIT_PUBLISH_RATE,
    LIMIT_RETAINED,
    LIMIT_MEMORY,
    LIMIT_QUEUE,         /* max_queued_messages / bytes */
    LIMIT_SLOW_CONSUMER, /* QoS 0 dropped for a client not reading */
    LIMIT_COUNT
};
extern const char *const limit_names[LIMIT_COUNT];

/* Connections and recent connection attempts from one IP address. */
struct ip_entry {
    char ip[48];
    uint32_t open;
    int64_t window_s;
    uint32_t attempts; /* in window_s */
};

/* Counters of one worker; written by it, read by $SYS (relaxed). */
struct stats {
    _Atomic uint64_t msgs_received, msgs_sent, msgs_dropped;
    _Atomic uint64_t pub_received, pub_sent;
    _Atomic uint64_t bytes_received, bytes_sent;
    _Atomic uint64_t clients_connected; /* current, with a session on this worker */
    _Atomic uint64_t clients_total;     /* sessions homed here (online + offline) */
    _Atomic uint64_t clients_expired;
    _Atomic uint64_t sockets; /* open connections owned by this worker */
    _Atomic uint64_t queued;  /* messages waiting in offline/backlog queues */
};

/* Item crossing from one worker to another through an inbox. */
enum xitem_kind {
    XI_DELIVER = 1, /* deliver msg to session (id, ptr) at qos */
    XI_MIGRATE,     /* a connection whose session lives on the target worker */
};
struct xitem {
    uint8_t kind;
    uint8_t qos;
    bool retain;
    uint32_t flags; /* SESS_F_* */
    uint64_t session_id;
    void *ptr; /* XI_DELIVER: struct session* (validated by id); XI_MIGRATE: struct client* */
    struct msg *m;
};
struct xvec {
    struct xitem *items;
    uint32_t n, cap;
};

/* One listener as bound (port resolved when 0 was asked). */
struct listener_info {
    int port;
    const struct conf_listener *conf;
    bool anonymous;         /* effective allow_anonymous */
    _Atomic(SSL_CTX *) tls; /* TLS context (NULL: plain MQTT); swapped by SIGHUP */
    SSL_CTX *old_tls[32];   /* replaced contexts, freed at exit */
    int n_old_tls;
};

struct broker {
    struct mem mem;
    struct log log;
    _Atomic(struct config *) conf;
    _Atomic(struct auth_db *) auth; /* password database (NULL: no password_file) */
    _Atomic(struct acl *) acl;      /* access control list (NULL: no acl_file, all allowed) */
    struct auth_db *old_auth[32];   /* replaced by reloads, freed at exit */
    struct acl *old_acl[32];
    int n_old_auth;
    /* each reload keeps, until exit (workers may still read them): the parsed file (owns its
     * strings) and the published copy (shares strings, freed with mem_free only) */
    struct config *reload_parsed[32];
    struct config *reload_published[32];
    int n_reloads;
    struct store *store;
    pthread_rwlock_t subs_lock;
    struct trie *subs; /* guarded by subs_lock */
    struct worker *workers;
    uint32_t nworkers;
    struct listener_info listeners[CONF_MAX_LISTENERS];
    int n_listeners;
    _Atomic uint64_t next_session_id;
    _Atomic uint64_t next_auto_id;
    _Atomic bool stopping;
    _Atomic int64_t connections; /* open sockets, all workers */
    pthread_mutex_t ip_lock;     /* guards ips (accept and close paths only, never publish) */
    struct hmap ips;             /* peer IP text -> struct ip_entry* */
    _Atomic uint64_t limit_hits[LIMIT_COUNT]; /* times each limit refused something */
    _Atomic uint64_t clients_maximum;
    int64_t start_s; /* monotonic start second */
    long fd_limit;
};

struct worker {
    struct broker *b;
    uint32_t index;
    pthread_t thread;
    int epfd, evfd;
    int lfds[CONF_MAX_LISTENERS];

    pthread_mutex_t inbox_lock;
    struct xvec inbox;    /* guarded by inbox_lock */
    bool inbox_signalled; /* guarded by inbox_lock: eventfd already written */
    struct xvec *outbox;  /* per target worker, flushed at the end of each iteration */
    struct xvec work;     /* swapped with inbox for processing */

    struct hmap sessions;    /* client id -> struct session* (homed here) */
    struct hmap session_ids; /* 8-byte id -> struct session* */
    struct client *clients;  /* all connections owned here (doubly linked) */
    struct client *closing;  /* closed this iteration, freed by the reaper */
    struct client *dirty;    /* with output to flush this iteration */
    struct wheel wheel;
    int64_t now_ms, now_s;

    struct msg *routing; /* message being routed (for the shared-subscription policy) */
    uint64_t rng;        /* xorshift state for the random shared policy */
    bool subs_read;            /* this worker holds subs_lock for reading (see subs_rdlock) */
    struct sub_entry *matches; /* routing scratch */
    uint32_t n_matches, cap_matches;
    struct msg **rmsgs; /* retained-on-subscribe scratch */
    uint32_t n_rmsgs, cap_rmsgs;

    struct msg_pool pool; /* small messages published on this worker */
    uint8_t *scratch; /* read buffer: packets are decoded in place, only partial ones are copied */
    struct log_ratelimit drop_log;
    struct stats st;
    int64_t next_sys_s;
};

/* CS_AUTH: CONNECT received, enhanced authentication (AUTH packets) in progress */
enum client_state { CS_NEW = 0, CS_AUTH, CS_CONNECTED, CS_CLOSED };

/* A network connection. Owned by one worker (moves once when migrating to its session's home). */
struct client {
    int fd;
    struct worker *w;
    struct client *next, *prev; /* w->clients */
    struct client *next_close;  /* w->closing */
    struct client *next_dirty;  /* w->dirty */
    bool in_dirty, want_out, migrated;
    uint32_t migrate_to; /* target worker while migrated */
    uint8_t state;       /* enum client_state */
    uint8_t version;     /* protocol level after CONNECT */
    int listener;        /* index in broker.listeners */
    struct buf rbuf;     /* received bytes not yet decoded */
    struct outq out;
    struct session *sess; /* after CONNECT */
    uint16_t keepalive;
    int64_t last_rx_ms;
    struct timer ka_timer;     /* keep-alive or CONNECT timeout */
    bool send_will;            /* false after DISCONNECT [MQTT-3.1.2-10] */
    uint32_t max_packet;       /* incoming limit */
    uint16_t alias_max;        /* v5 Topic Alias Maximum we offered */
    uint16_t recv_max;         /* v5 Receive Maximum we offered */
    struct mqtt_str *in_alias; /* [alias_max + 1] client-to-server aliases (owned copies) */
    const uint8_t *cur_pkt;    /* bytes of the packet being handled (valid during it) */
    size_t cur_len;
    struct buf pending_connect; /* CONNECT kept during enhanced authentication */
    struct scram *scram;        /* SCRAM exchange in progress (CONNECT or re-auth) */
    bool auth_done;             /* enhanced authentication succeeded for this CONNECT */
    bool auth_scram;            /* the connection authenticated with SCRAM-SHA-256 */
    const uint8_t *scram_final; /* server-final-message (inside scram) for CONNACK/AUTH */
    size_t scram_final_len;
    char *auth_user; /* authenticated user name (owned), NULL = anonymous */
    char addr[64];
    bool ip_counted;                /* counted in broker.ips */
    SSL *ssl;                       /* TLS connection, NULL for plain TCP */
    bool tls_hs;                    /* TLS handshake in progress */
    size_t tls_retry;               /* length of a TLS write to repeat after WANT_WRITE */
    char *cert_user;                /* verified certificate identity (owned), or NULL */
    double pub_tokens, byte_tokens; /* publish rate token buckets */
    int64_t tokens_ms;              /* last refill */
};

/* ---- worker.c ---- */
int worker_start_all(struct broker *b) TERN_MUST_CHECK;
void worker_stop_all(struct broker *b);
/* Marks c closed (reason logged at `lvl` when non-NULL); it is freed at the end of the loop
 * iteration [close now, free later]. Safe to call more than once. */
void client_close(struct client *c, enum log_level lvl, const char *reason);
/* Schedules c's output to be flushed at the end of this iteration. */
void client_mark_dirty(struct client *c);
/* Adds item to the outbox for worker `to` (this worker's thread only). */
int worker_post(struct worker *w, uint32_t to, const struct xitem *it);
/* Name of a client for logs: its client id when known, else its address. */
const char *client_name(const struct client *c, char *buf, size_t len);
/* Current configuration (valid for the rest of the loop iteration). */
static inline struct config *broker_conf(struct broker *b)
{
    return atomic_load_explicit(&b->conf, memory_order_acquire);
}
#define STAT_ADD(w, field, n) atomic_fetch_add_explicit(&(w)->st.field, (n), memory_order_relaxed)
/* Counts a limit hit and logs it (rate-limited per worker) with the client's name. */
void limit_hit(struct worker *w, enum limit_kind k, const char *who, const char *detail);

/* ---- client.c: MQTT protocol on a connection ---- */
/* Decodes and handles every complete packet in c->rbuf. */
void client_on_readable(struct client *c);
/* Session end bookkeeping when a connection goes away (will, clean session, expiry timer). */
void client_detach(struct client *c);
/* Timer callbacks. */
void client_on_timer(struct worker *w, struct timer *t);
/* Sends (or queues) message m to session s at qos with the retain flag. */
void client_deliver(struct worker *w, struct session *s, struct msg *m, uint8_t qos, bool retain,
                    uint32_t flags);
/* Frees every session of worker w (at exit). */
void client_free_sessions(struct worker *w);

/* ---- route.c ---- */
/* The subscription trie's read lock is taken once and kept for a whole batch of packets (one
 * lock round-trip per read() instead of per PUBLISH); it is released before any syscall and
 * before this worker takes the write lock. The rwlock prefers writers, so a waiting SUBSCRIBE
 * is not starved by batches. */
void subs_rdlock(struct worker *w);
void subs_unlock(struct worker *w);
void subs_wrlock(struct worker *w);
void subs_wrunlock(struct worker *w);

/* Routes m (borrowed) from this worker to every matching subscription (m->origin_session is the
 * publisher, for No Local). Retained handling is the caller's. Returns the number of matching
 * subscriptions. */
uint32_t route_publish(struct worker *w, struct msg *m);

/* Moves the unfinished QoS 1/2 messages s received through shared subscriptions to other
 * members of those groups (s's client went away). Returns how many moved. */
uint32_t route_share_release(struct worker *w, struct session *s);

/* ---- sys.c ---- */
/* Publishes the $SYS topics when due. */
void sys_tick(struct worker *w);

#endif
