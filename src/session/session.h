/* session.h - per-client MQTT session state and the QoS delivery state machine.
 *
 * A session holds what MQTT says survives a connection: subscriptions, the outgoing inflight
 * window (QoS 1/2 messages sent and not yet acknowledged), the queue of messages waiting for the
 * window or for the client to come back, the packet ids of incoming QoS 2 messages awaiting
 * PUBREL, and the will. It never touches sockets: output is appended to a struct outq given by
 * the caller (NULL while the client is offline) and time comes in as arguments.
 *
 * Threads: a session belongs to its home I/O thread (chosen from its client id) and is only ever
 * read or written there. Other threads reach it by posting to that thread's inbox.
 *
 * Ownership: the session owns one reference on every message in its inflight window, queue and
 * will. */
#ifndef TERN_SESSION_SESSION_H
#define TERN_SESSION_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "codec/codec.h"
#include "common/alloc.h"
#include "common/hmap.h"
#include "common/outq.h"
#include "common/timer.h"
#include "store/msg.h"

/* Limits applied to a session, from the configuration (copied when the client connects). */
struct sess_limits {
    uint16_t max_inflight;     /* outgoing QoS 1/2 window (1..65535) */
    uint32_t max_queued;       /* messages, 0 = unlimited */
    uint64_t max_queued_bytes; /* 0 = unlimited */
    bool queue_qos0;           /* queue QoS 0 while offline */
    uint32_t max_packet_out;   /* client's Maximum Packet Size (v5), 0 = none */
};

enum sess_out_state {
    SESS_WAIT_PUBACK = 1, /* QoS 1 PUBLISH sent */
    SESS_WAIT_PUBREC,     /* QoS 2 PUBLISH sent */
    SESS_WAIT_PUBCOMP,    /* PUBREL sent */
};

struct sess_out {
    struct msg *m;
    uint16_t pid;
    uint8_t qos;
    uint8_t state;  /* enum sess_out_state */
    bool retain;    /* RETAIN flag to send */
    uint32_t flags; /* SESS_F_* */
};

struct sess_qent {
    struct msg *m;
    uint8_t qos;
    bool retain;
    uint32_t flags; /* SESS_F_* */
};

/* Delivery flags. */
#define SESS_F_SHARED 1u /* came through a shared subscription: may move to another member */

struct sess_sub {
    uint8_t *filter; /* as given by the client, including any "$share/g/" prefix */
    uint16_t len;
    uint8_t options; /* v5 subscription options byte (bits 0-1: granted QoS) */
    uint32_t sub_id;
};

struct session {
    uint64_t id;        /* unique for the broker's lifetime; never reused */
    uint8_t *client_id; /* owned, not NUL-terminated */
    char *username;     /* authenticated user of the last connection (owned), NULL anonymous */
    uint16_t client_id_len;
    uint32_t thread;        /* home I/O thread */
    void *client;           /* the broker's connection while online, NULL offline (borrowed) */
    uint8_t version;        /* protocol level of the last connection */
    bool clean;             /* v3 clean session: discard at disconnect */
    uint32_t expiry_s;      /* seconds kept after disconnect; UINT32_MAX = never */
    int64_t disconnected_s; /* monotonic seconds of the last disconnect */
    struct timer expiry_timer;

    struct sess_sub *subs;
    uint32_t nsubs, capsubs;

    struct sess_out *inflight; /* ring in send order */
    uint32_t in_head, in_count, in_cap;
    uint16_t next_pid;

    struct sess_qent *queue; /* ring */
    uint32_t q_head, q_count, q_cap;
    uint64_t q_bytes;

    uint16_t *qos2_in; /* incoming QoS 2 packet ids awaiting PUBREL */
    uint32_t n_qos2_in, cap_qos2_in;

    struct msg *will;      /* NULL when none */
    uint32_t will_delay_s; /* v5 Will Delay Interval */
    struct timer will_timer;

    /* server-to-client topic aliases of the current connection (v5): the first alias_max
     * distinct topics get an alias; later messages on them are sent with an empty topic */
    uint16_t alias_max; /* client's Topic Alias Maximum (0: aliases off) */
    uint16_t alias_used;
    struct hmap aliases;    /* topic bytes -> alias number (keys owned: alias_topics) */
    uint8_t **alias_topics; /* [alias_used] owned copies of the aliased topics */
    uint32_t n_sub_ids;     /* subscriptions that carry a subscription identifier */

    struct sess_limits lim;
    uint64_t dropped; /* messages dropped for this session (queue full, too large) */
    struct mem *mem;
};

/* Result of offering a message to a session. */
enum sess_deliver_result {
    SESS_SENT = 0, /* written to the client (or queued behind the window while online) */
    SESS_QUEUED,   /* stored for an offline client */
    SESS_SKIPPED,  /* QoS 0 for an offline client without queue_qos0: not an error */
    SESS_DROPPED,  /* a limit was hit: counted in s->dropped */
};

/* Creates a session for client id cid (copied) with one reference owned by the caller (sessions
 * are not refcounted: the home thread's table owns it). NULL on ENOMEM. */
struct session *sess_new(struct mem *mem, uint64_t id, const uint8_t *cid, uint16_t cid_len,
                         uint32_t thread);
/* Frees the session and releases every message it holds. Subscriptions must already be removed
 * from the router by the caller. */
void sess_free(struct session *s);

/* Records subscription filter (replacing the same filter). 0 or TERN_ENOMEM. */
int sess_sub_add(struct session *s, const uint8_t *f, uint16_t n, uint8_t options,
                 uint32_t sub_id) TERN_MUST_CHECK;
/* True when the session holds filter f. */
bool sess_has_sub(const struct session *s, const uint8_t *f, size_t n);
/* Forgets filter f; returns true when it existed. */
bool sess_sub_del(struct session *s, const uint8_t *f, uint16_t n);

/* Offers message m (borrowed; the session takes its own reference when it keeps it) at QoS qos
 * with the RETAIN flag `retain` and SESS_F_* flags. out is the client's output queue or NULL
 * while offline. */
enum sess_deliver_result sess_deliver(struct session *s, struct outq *out, struct msg *m,
                                      uint8_t qos, bool retain, uint32_t flags, int64_t now_ms);

/* Handles PUBACK / PUBREC / PUBCOMP for pid. Returns 0, or TERN_ENOTFOUND for an unknown pid
 * (tolerated: the caller decides whether it is an error). PUBREC answers with PUBREL. After a
 * slot frees, queued messages are sent. */
int sess_on_puback(struct session *s, struct outq *out, uint16_t pid, int64_t now_ms);
int sess_on_pubrec(struct session *s, struct outq *out, uint16_t pid, uint8_t rc, int64_t now_ms);
int sess_on_pubcomp(struct session *s, struct outq *out, uint16_t pid, int64_t now_ms);

/* Incoming QoS 2 bookkeeping: returns true when pid is already awaiting PUBREL (a duplicate that
 * must not be delivered again [MQTT-4.3.3-2]); otherwise records it. TERN_ELIMIT/ENOMEM < 0. */
int sess_qos2_in_begin(struct session *s, uint16_t pid, uint16_t max) TERN_MUST_CHECK;
/* Forgets pid on PUBREL; true when it was known. */
bool sess_qos2_in_end(struct session *s, uint16_t pid);

/* On (re)connection: resends every unacknowledged message with DUP set and PUBREL for those
 * past PUBREC [MQTT-4.4.0-1], then sends queued messages while the window allows. */
int sess_resume(struct session *s, struct outq *out, int64_t now_ms);
/* Sends queued messages while the inflight window has room. */
int sess_pump(struct session *s, struct outq *out, int64_t now_ms);
/* Removes the messages that came through shared subscriptions and may go to another member
 * of the group: QoS 1 in flight or queued, QoS 2 still queued (a QoS 2 PUBLISH already sent
 * stays with this member [MQTT-4.8.2-4] [MQTT-4.8.2-5]). Calls fn for each (fn borrows m).
 * Returns how many were moved. */
typedef void (*sess_move_fn)(void *ctx, struct msg *m, uint8_t qos);
uint32_t sess_take_shared(struct session *s, sess_move_fn fn, void *ctx);
/* Drops every inflight and queued message (clean session end). */
void sess_clear_messages(struct session *s);
/* Sets (taking ownership of m's reference) or clears the will. */
void sess_set_will(struct session *s, struct msg *m, uint32_t delay_s);

/* Encodes an outgoing PUBLISH of m to out for session s's client: protocol version, v5
 * subscription identifiers of every matching subscription of s [MQTT-3.3.4-3], topic alias,
 * remaining Message Expiry [MQTT-3.3.2-6]. TERN_ETOOBIG when the packet would exceed the
 * client's Maximum Packet Size (the caller discards it for this client [MQTT-3.1.2-25]). */
int sess_write_publish(struct session *s, struct outq *out, struct msg *m, uint8_t qos, bool retain,
                       bool dup, uint16_t pid, int64_t now_ms);
/* Forgets the outgoing topic aliases and sets the client's Topic Alias Maximum (new
 * connection). */
void sess_reset_aliases(struct session *s, uint16_t alias_max);
/* Encodes a small packet (acks, CONNACK, SUBACK, PINGRESP, DISCONNECT) to out. */
int sess_write_packet(struct outq *out, uint8_t version, const struct mqtt_packet *p);

#endif
