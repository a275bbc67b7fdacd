/* client_internal.h - the inside of a tern_client, shared by the lib/ sources and
 * tests/unit/test_client.c.
 *
 * Layout of one client:
 *
 *   queue:    out_msg -> out_msg -> ...   encoded, not yet written (FIFO, caller order)
 *   inflight: out_msg -> out_msg -> ...   written QoS 1/2 PUBLISH (and SUBSCRIBE/UNSUBSCRIBE)
 *                                         awaiting their ack, in send order
 *   wbuf:     bytes handed to the transport but not yet accepted by it
 *   rbuf:     bytes read, not yet a whole packet
 *   pid_used: bitmap of packet identifiers held by queue + inflight
 *   qos2_in:  bitmap of incoming QoS 2 identifiers delivered and awaiting PUBREL
 *
 * A QoS 1/2 PUBLISH leaves `queue` when it is written and waits in `inflight` until PUBACK or
 * PUBCOMP; on a reconnect the inflight list is written again first, PUBLISH with DUP set and
 * PUBREL for those past PUBREC [MQTT-4.4.0-1]. The send window (max_inflight, capped by the
 * broker's Receive Maximum) counts only QoS 1/2 PUBLISH in flight [MQTT-3.3.4-7].
 *
 * Threads: all fields are guarded by `lock` (recursive, so callbacks may call the API). The
 * network thread (tern_client_start) or the caller's loop drives I/O; both poll without the lock.
 * Time enters the protocol core (client_process) as an argument, so tests run without clocks. */
#ifndef TERN_LIB_CLIENT_INTERNAL_H
#define TERN_LIB_CLIENT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "codec/codec.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "tern/tern.h"
#include "transport.h"

enum out_state {
    OUT_QUEUED = 0, /* in queue */
    OUT_WAIT_ACK,   /* PUBLISH written: PUBACK/PUBREC due; SUBSCRIBE: SUBACK due */
    OUT_WAIT_COMP,  /* PUBREL written: PUBCOMP due */
};

/* One outgoing PUBLISH, SUBSCRIBE or UNSUBSCRIBE, encoded once at enqueue. */
struct out_msg {
    struct out_msg *next;
    uint16_t packet_id; /* 0 for QoS 0 */
    uint8_t type;       /* MQTT_PUBLISH, MQTT_SUBSCRIBE, MQTT_UNSUBSCRIBE */
    uint8_t qos;
    uint8_t state; /* enum out_state */
    uint32_t len;
    uint8_t data[]; /* the whole packet; data[0] gets DUP (0x08) when re-sent */
};

struct out_list {
    struct out_msg *head, *tail;
    size_t count;
};

struct tern_client {
    pthread_mutex_t lock; /* recursive */
    struct mem mem;       /* this client's allocation accounting */

    /* options (copied) */
    struct tern_client_options opt;
    char *host, *bind_address, *client_id, *username;
    uint8_t *password;
    uint8_t *connect_packet; /* encoded CONNECT; the clean start bit is set per attempt */
    uint32_t connect_len;
    uint32_t connect_flags_off; /* offset of the connect flags byte in connect_packet */
    uint8_t version;

    /* connection */
    struct transport tr;
    enum tern_state state;
    bool user_closing;   /* tern_client_disconnect was called: no reconnect */
    bool ever_connected; /* a CONNACK was accepted once: reconnects resume the session */
    int64_t deadline_ms; /* connect/CONNACK or closing deadline; reconnect time in BACKOFF */
    int64_t last_send_ms, last_recv_ms;
    bool ping_outstanding;
    uint64_t generation;        /* +1 whenever a connection ends (loops detect it under them) */
    uint16_t keep_alive;        /* in use (server keep alive wins) */
    uint16_t send_window;       /* min(max_inflight, broker receive maximum) */
    uint32_t broker_max_packet; /* 0: unknown / no limit */
    uint32_t attempt;           /* consecutive failed connection attempts */
    uint64_t rng;               /* xorshift state for backoff jitter */

    struct buf wbuf, rbuf;
    struct out_list queue, inflight;
    size_t pub_inflight; /* QoS 1/2 PUBLISH in inflight (the window count) */
    uint64_t pid_used[1024];
    uint64_t qos2_in[1024];
    uint16_t next_pid;

    /* scratch for building struct tern_message views */
    struct buf scratch;
    struct tern_user_property *up;
    size_t up_cap;

    char error[256];

    /* network thread */
    int wake_fd; /* eventfd: API calls from other threads interrupt the poll */
    pthread_t thread;
    bool thread_running;
    _Atomic bool stop_requested;
};

/* Protocol core: runs one round at time now_ms, with `readable`/`writable` telling what the
 * poll saw (tests pass true for both with a memory transport). Reads, decodes and handles
 * packets, moves queued messages into the write buffer within the window, writes, and runs
 * timers. Caller holds c->lock. */
void client_process(struct tern_client *c, int64_t now_ms, bool readable, bool writable);
/* Starts a connection attempt at now_ms (the transport's open). Caller holds c->lock. */
int client_begin_connect(struct tern_client *c, int64_t now_ms);
/* Milliseconds from now_ms to the next timer, -1 when none. */
int client_timeout_at(const struct tern_client *c, int64_t now_ms);
/* Replaces the transport (tests: a memory double). Caller holds c->lock; not connected. */
void client_set_transport(struct tern_client *c, const struct transport_ops *ops, void *ctx);

/* Packet identifiers: the lowest free identifier at or after next_pid (wrapping, never 0); 0
 * when all 65535 are taken. Marks it used. */
uint16_t client_pid_alloc(uint64_t used[1024], uint16_t *next_pid);
void client_pid_release(uint64_t used[1024], uint16_t pid);
bool client_pid_in_use(const uint64_t used[1024], uint16_t pid);

/* Reconnect delay before attempt number `attempt` (0-based): min_ms doubled per attempt, capped
 * at max_ms, then jittered into [d/2, d] with the xorshift state *rng. */
uint32_t client_backoff_ms(uint32_t attempt, uint32_t min_ms, uint32_t max_ms, uint64_t *rng);

/* Converts public properties into codec properties for a PUBLISH or will (user properties are
 * written into the caller's array `user` of at least p->n_user entries). */
void client_props_to_codec(const struct tern_properties *p, struct mqtt_props *out,
                           struct mqtt_user_prop *user);

/* Queues a DISCONNECT (CONNECTED) or just closes (other states); no reconnect follows. */
int client_begin_close(struct tern_client *c, int64_t now_ms, int reason_code);
/* Frees every queued and inflight message (teardown). */
void client_drop_messages(struct tern_client *c);
/* Appends an encoded message to the send queue; takes ownership of m. */
void client_enqueue(struct tern_client *c, struct out_msg *m);
/* True when the next client_process would write (poll for POLLOUT). */
bool client_wants_write(const struct tern_client *c);

/* Sets c->error from a printf format. */
void client_set_error(struct tern_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
