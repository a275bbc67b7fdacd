/* tern.h - the Tern MQTT client library (MQTT 3.1.1 and 5.0).
 *
 * One opaque handle, tern_client, holds one logical MQTT session: its connection (re-made with
 * backoff when it drops), its outgoing QoS 1/2 messages in flight (re-sent with DUP after a
 * reconnect that resumes the session), incoming QoS 2 state, and its callbacks. There is no
 * global state; clients are independent of each other.
 *
 * Two ways to run a client:
 *   1. Own network thread: tern_client_start() ... tern_client_stop(). Every function may then be
 *      called from any thread; callbacks run on the network thread and may call back into the
 *      client (the lock is recursive).
 *   2. Caller's loop: tern_client_connect(), then poll tern_client_fd() for POLLIN (and POLLOUT
 *      when tern_client_wants_write()) with at most tern_client_next_timeout_ms(), and call
 *      tern_client_step(c, 0) after each wake-up. tern_client_step(c, ms) may also do the
 *      waiting itself. The fd can change at every step (reconnects): read it again each time.
 *      Callbacks run inside tern_client_step().
 *
 * Errors: fallible functions return 0 or a negative TERN_E* value (below);
 * tern_client_last_error() gives a sentence for the last failure, including the broker's
 * reason code name when the broker refused something. MQTT reason codes are data, passed to
 * callbacks, never returned as errors.
 *
 * Ownership: every pointer passed in is borrowed for the duration of the call (the client copies
 * what it keeps). Pointers handed to callbacks are views valid until the callback returns. */
#ifndef TERN_TERN_H
#define TERN_TERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_API __attribute__((visibility("default")))

/* The error enum is the one of src/common/err.h, repeated here under the same include guard so
 * that either header may come first inside the Tern tree (keep the two copies identical). */
#ifndef TERN_COMMON_ERR_H
#define TERN_COMMON_ERR_H
enum tern_err {
    TERN_OK = 0,
    TERN_EAGAIN = -1,     /* try again later (would block, window full) */
    TERN_EMALFORMED = -2, /* the broker sent bytes that are not a valid packet */
    TERN_EPROTO = -3,     /* protocol violation (by the broker, or a refused CONNECT) */
    TERN_ETOOBIG = -4,    /* over a size limit (packet size, string length) */
    TERN_ENOMEM = -5,     /* allocation failed */
    TERN_EPERM = -6,      /* not authorised */
    TERN_EINVAL = -7,     /* invalid argument */
    TERN_EIO = -8,        /* system call failed (see tern_client_last_error) */
    TERN_ENOTFOUND = -9,  /* no such item */
    TERN_EEXIST = -10,    /* already exists (client already started) */
    TERN_ELIMIT = -11,    /* queue limit reached */
    TERN_ECLOSED = -12,   /* connection closed */
};
const char *tern_strerror(int err); /* in-tree name of tern_error_text() */
#define TERN_MUST_CHECK __attribute__((warn_unused_result))
#endif

enum tern_protocol {
    TERN_MQTT_311 = 4,
    TERN_MQTT_5 = 5,
};

enum tern_state {
    TERN_STATE_IDLE = 0,     /* not connected, no reconnect pending (new, or after disconnect) */
    TERN_STATE_CONNECTING,   /* TCP (and later TLS) connection in progress */
    TERN_STATE_WAIT_CONNACK, /* CONNECT sent */
    TERN_STATE_CONNECTED,    /* CONNACK accepted */
    TERN_STATE_BACKOFF,      /* connection lost, waiting to reconnect */
    TERN_STATE_CLOSING,      /* DISCONNECT queued, flushing */
};

/* Subscription option bits for struct tern_subscription.options (MQTT 5 only). */
#define TERN_SUB_NO_LOCAL            0x04u
#define TERN_SUB_RETAIN_AS_PUBLISHED 0x08u
#define TERN_SUB_RETAIN_SEND_NEW     0x10u /* retain handling 1: only for new subscriptions */
#define TERN_SUB_RETAIN_NEVER        0x20u /* retain handling 2 */

/* Bits of struct tern_properties.has for the single-valued properties. */
#define TERN_PROP_PAYLOAD_FORMAT   0x01u
#define TERN_PROP_MESSAGE_EXPIRY   0x02u
#define TERN_PROP_CONTENT_TYPE     0x04u
#define TERN_PROP_RESPONSE_TOPIC   0x08u
#define TERN_PROP_CORRELATION_DATA 0x10u
#define TERN_PROP_SUBSCRIPTION_ID  0x20u /* received messages only */
#define TERN_PROP_WILL_DELAY       0x40u /* will only */

struct tern_user_property {
    const char *key; /* NUL-terminated UTF-8 */
    const char *value;
};

/* MQTT 5 properties of a PUBLISH or will message (ignored under 3.1.1). */
struct tern_properties {
    unsigned has;             /* TERN_PROP_* bits for the fields below that are set */
    uint8_t payload_format;   /* 0 bytes, 1 UTF-8 */
    uint32_t message_expiry;  /* seconds */
    uint32_t will_delay;      /* seconds, will only */
    uint32_t subscription_id; /* received only: the first subscription identifier */
    const char *content_type;
    const char *response_topic;
    const void *correlation_data; /* binary */
    size_t correlation_len;
    const struct tern_user_property *user; /* in order; keys may repeat */
    size_t n_user;
};

/* A message handed to on_message: views valid until the callback returns. */
struct tern_message {
    const char *topic; /* NUL-terminated */
    size_t topic_len;
    const void *payload;
    size_t payload_len;
    int qos;
    bool retain;
    bool dup;
    uint16_t packet_id;
    const struct tern_properties *props; /* never NULL; all empty under 3.1.1 */
};

/* Outcome of a connection attempt, handed to on_connect (also for refusals). */
struct tern_connack {
    int reason_code; /* v5 reason code; a 3.1.1 return code is mapped to its v5 equivalent */
    bool session_present;
    const char *reason_string;      /* v5, may be NULL */
    const char *assigned_client_id; /* v5, may be NULL */
    uint16_t server_keep_alive;     /* keep-alive in use (the broker's when it set one) */
    uint16_t receive_maximum;       /* broker's receive maximum (65535 when absent) */
    uint32_t session_expiry;        /* session expiry in use */
};

/* Why a connection ended, handed to on_disconnect. */
struct tern_disconnect {
    int error;                 /* 0 after tern_client_disconnect, else a TERN_E* value */
    int reason_code;           /* v5 reason code of a DISCONNECT from the broker, or -1 */
    const char *reason_string; /* v5, may be NULL */
    const char *text;          /* a sentence describing the cause (tern_client_last_error) */
    bool will_reconnect;       /* auto-reconnect is on and will try again */
};

typedef struct tern_client tern_client;

struct tern_callbacks {
    void (*on_connect)(tern_client *c, const struct tern_connack *ack, void *user);
    void (*on_disconnect)(tern_client *c, const struct tern_disconnect *why, void *user);
    void (*on_message)(tern_client *c, const struct tern_message *m, void *user);
    /* A QoS 1/2 publish finished: PUBACK or PUBCOMP received (reason_code >= 0x80 = refused), or
     * the message was dropped (reason_code -1: too big for the broker, or client freed). */
    void (*on_publish)(tern_client *c, uint16_t packet_id, int reason_code, void *user);
    /* SUBACK (one reason code per filter: granted QoS or an error >= 0x80) and UNSUBACK (v5
     * reason codes; none under 3.1.1: n == 0). */
    void (*on_subscribe)(tern_client *c, uint16_t packet_id, const uint8_t *codes, size_t n,
                         void *user);
    void (*on_unsubscribe)(tern_client *c, uint16_t packet_id, const uint8_t *codes, size_t n,
                           void *user);
    void *user;
};

struct tern_client_options {
    const char *host;         /* default "localhost" */
    uint16_t port;            /* default 1883 */
    const char *bind_address; /* local source address (NULL: any) */
    int protocol;             /* TERN_MQTT_311 or TERN_MQTT_5 (default) */
    const char *client_id;    /* NULL or "": broker-assigned (requires clean start in 3.1.1) */
    const char *username;     /* NULL: none */
    const void *password;     /* NULL: none */
    size_t password_len;
    uint16_t keep_alive;      /* seconds, default 60, 0 = off */
    bool clean_start;         /* default true; later reconnects resume when a session is kept */
    uint32_t session_expiry;  /* v5 seconds (0xFFFFFFFF: never) */
    uint16_t receive_maximum; /* v5: how many QoS 1/2 messages the broker may send unacked */
    uint32_t max_packet_size; /* largest packet accepted from the broker (0: protocol maximum) */
    const struct tern_user_property *connect_user; /* v5 CONNECT user properties */
    size_t n_connect_user;

    const char *will_topic; /* NULL: no will */
    const void *will_payload;
    size_t will_payload_len;
    int will_qos;
    bool will_retain;
    const struct tern_properties *will_props; /* v5, may be NULL */

    bool auto_reconnect;         /* default false */
    uint32_t reconnect_min_ms;   /* first backoff delay, default 500 */
    uint32_t reconnect_max_ms;   /* backoff ceiling, default 30000 */
    uint32_t connect_timeout_ms; /* TCP connect + CONNACK, default 10000 */
    uint16_t max_inflight;       /* our QoS 1/2 send window (also capped by the broker's
                                    receive maximum), default 20 */
    uint32_t max_queued;         /* messages queued behind the window, default 10000 */

    struct tern_callbacks cb;
};

/* Fills o with the defaults documented above. */
TERN_API void tern_client_options_init(struct tern_client_options *o);

/* Creates a client (not connected). Copies everything it needs from o. On success *out owns the
 * new client (free with tern_client_free). Returns 0, TERN_EINVAL or TERN_ENOMEM. */
TERN_API int tern_client_new(const struct tern_client_options *o, tern_client **out);
/* Stops the network thread if running, closes the connection without DISCONNECT (so the will
 * is published) and frees everything. c may be NULL. */
TERN_API void tern_client_free(tern_client *c);

/* Starts connecting (non-blocking): the result arrives through on_connect / on_disconnect.
 * Returns 0, or a TERN_E* value when the attempt failed at once (name resolution, socket). */
TERN_API int tern_client_connect(tern_client *c);
/* Queues a DISCONNECT with reason_code (v5; 0 normal, 4 = send the will) and closes once it is
 * written; no reconnect follows. Messages not yet written are kept (they are re-sent if the
 * session is resumed by a later tern_client_connect). */
TERN_API int tern_client_disconnect(tern_client *c, int reason_code);

/* Caller's loop. */
TERN_API int tern_client_fd(const tern_client *c); /* -1 when there is no socket */
TERN_API bool tern_client_wants_write(const tern_client *c);
/* Milliseconds until the next timer (keep-alive, reconnect, timeouts), -1 when none. */
TERN_API int tern_client_next_timeout_ms(const tern_client *c);
/* Waits up to timeout_ms (0: not at all; -1: until something happens) for the socket, then reads,
 * writes and runs due timers, calling callbacks. Returns 0, or TERN_ECLOSED when the client is
 * idle (disconnected, no reconnect pending) so a loop around it can end. */
TERN_API int tern_client_step(tern_client *c, int timeout_ms);

/* Own network thread. start: TERN_EEXIST if already running. stop: waits for a pending
 * DISCONNECT to be written (at most 2 s), then joins the thread. */
TERN_API int tern_client_start(tern_client *c);
TERN_API void tern_client_stop(tern_client *c);

/* Queues a PUBLISH (copied). With QoS 1/2 *packet_id (may be NULL) receives the identifier that
 * on_publish reports later. Messages queue while disconnected. Returns 0, TERN_EINVAL (bad
 * topic/QoS), TERN_ELIMIT (max_queued reached: step and retry) or TERN_ENOMEM. */
TERN_API int tern_client_publish(tern_client *c, const char *topic, const void *payload, size_t len,
                                 int qos, bool retain, const struct tern_properties *props,
                                 uint16_t *packet_id);

struct tern_subscription {
    const char *filter;
    int qos;
    unsigned options; /* TERN_SUB_* (v5) */
};
/* Sends SUBSCRIBE for n filters (queued until connected). subscription_id: v5, 0 = none.
 * Subscriptions are not replayed after a reconnect that did not resume the session: do that in
 * on_connect when session_present is false. */
TERN_API int tern_client_subscribe(tern_client *c, const struct tern_subscription *subs, size_t n,
                                   uint32_t subscription_id, const struct tern_user_property *user,
                                   size_t n_user, uint16_t *packet_id);
TERN_API int tern_client_unsubscribe(tern_client *c, const char *const *filters, size_t n,
                                     uint16_t *packet_id);

TERN_API enum tern_state tern_client_state(const tern_client *c);
/* Messages queued or in flight (QoS 0 counts until written), plus SUBSCRIBE/UNSUBSCRIBE
 * awaiting their ack: 0 means everything asked for is done. */
TERN_API size_t tern_client_pending(const tern_client *c);
/* A sentence about the last failure ("" when none). Valid until the next call on c. */
TERN_API const char *tern_client_last_error(const tern_client *c);
/* Description of a TERN_E* value. */
TERN_API const char *tern_error_text(int err);
/* Name of an MQTT 5 reason code ("Not authorized"). */
TERN_API const char *tern_reason_text(int reason_code);

#ifdef __cplusplus
}
#endif
#endif
