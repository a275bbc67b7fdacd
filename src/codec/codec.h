/* codec.h - sans-IO MQTT 3.1 / 3.1.1 / 5.0 packet codec.
 *
 * Decoding works on one contiguous buffer: it never allocates, never reads clocks or sockets,
 * and hands back views (pointers into the input) that stay valid while the input buffer does.
 * A decode call returns 0 and the bytes consumed, TERN_EAGAIN when the packet is incomplete
 * ("need more", distinct from every error), or an error:
 *   TERN_ETOOBIG     the remaining length says the packet exceeds max_packet (checked from the
 *                    fixed header alone, before the body is buffered)
 *   TERN_EMALFORMED  bytes violate the packet grammar: v5 reason 0x81. Bad or non-minimal
 *                    varint, truncated field, trailing bytes, reserved fixed-header or CONNECT/
 *                    CONNACK/SUBSCRIBE-option bits, PUBLISH QoS 3 or DUP on QoS 0, will QoS 3 or
 *                    will QoS/retain without the will flag, 3.1.1 password without user name,
 *                    bad UTF-8, unknown property or property not valid in this packet type,
 *                    3.1/3.1.1 SUBSCRIBE QoS 3, AUTH before v5, PINGs/v3 DISCONNECT with a body
 *   TERN_EPROTO      well-formed but forbidden: v5 reason 0x82. Unknown protocol name, packet
 *                    id 0, SUBSCRIBE/UNSUBSCRIBE without filters, SUBACK without codes (3.1.1:
 *                    or a code other than 0/1/2/0x80), v5 SUBSCRIBE QoS 3 or retain handling 3,
 *                    duplicate single-valued property, out-of-range property value, CONNACK
 *                    session present with a non-zero code
 *
 * Encoding appends to a struct buf (bounded), so the caller controls memory. For fan-out, the
 * PUBLISH head (fixed header, topic, packet id, properties) is encoded separately from the
 * payload so the payload can be written by reference (writev).
 *
 * Everything here is pure and thread-safe (no state). */
#ifndef TERN_CODEC_CODEC_H
#define TERN_CODEC_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

enum mqtt_version {
    MQTT_V31 = 3,  /* protocol name "MQIsdp" */
    MQTT_V311 = 4, /* protocol name "MQTT" */
    MQTT_V5 = 5,
};

enum mqtt_type {
    MQTT_CONNECT = 1,
    MQTT_CONNACK = 2,
    MQTT_PUBLISH = 3,
    MQTT_PUBACK = 4,
    MQTT_PUBREC = 5,
    MQTT_PUBREL = 6,
    MQTT_PUBCOMP = 7,
    MQTT_SUBSCRIBE = 8,
    MQTT_SUBACK = 9,
    MQTT_UNSUBSCRIBE = 10,
    MQTT_UNSUBACK = 11,
    MQTT_PINGREQ = 12,
    MQTT_PINGRESP = 13,
    MQTT_DISCONNECT = 14,
    MQTT_AUTH = 15,
};

/* MQTT 5.0 reason codes (v3 CONNACK return codes 0..5 are separate, see enum mqtt3_connack). */
enum mqtt_rc {
    MQTT_RC_SUCCESS = 0x00, /* also Normal disconnection, Granted QoS 0 */
    MQTT_RC_GRANTED_QOS1 = 0x01,
    MQTT_RC_GRANTED_QOS2 = 0x02,
    MQTT_RC_DISCONNECT_WITH_WILL = 0x04,
    MQTT_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
    MQTT_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
    MQTT_RC_CONTINUE_AUTHENTICATION = 0x18,
    MQTT_RC_REAUTHENTICATE = 0x19,
    MQTT_RC_UNSPECIFIED_ERROR = 0x80,
    MQTT_RC_MALFORMED_PACKET = 0x81,
    MQTT_RC_PROTOCOL_ERROR = 0x82,
    MQTT_RC_IMPLEMENTATION_SPECIFIC_ERROR = 0x83,
    MQTT_RC_UNSUPPORTED_PROTOCOL_VERSION = 0x84,
    MQTT_RC_CLIENT_IDENTIFIER_NOT_VALID = 0x85,
    MQTT_RC_BAD_USER_NAME_OR_PASSWORD = 0x86,
    MQTT_RC_NOT_AUTHORIZED = 0x87,
    MQTT_RC_SERVER_UNAVAILABLE = 0x88,
    MQTT_RC_SERVER_BUSY = 0x89,
    MQTT_RC_BANNED = 0x8A,
    MQTT_RC_SERVER_SHUTTING_DOWN = 0x8B,
    MQTT_RC_BAD_AUTHENTICATION_METHOD = 0x8C,
    MQTT_RC_KEEP_ALIVE_TIMEOUT = 0x8D,
    MQTT_RC_SESSION_TAKEN_OVER = 0x8E,
    MQTT_RC_TOPIC_FILTER_INVALID = 0x8F,
    MQTT_RC_TOPIC_NAME_INVALID = 0x90,
    MQTT_RC_PACKET_IDENTIFIER_IN_USE = 0x91,
    MQTT_RC_PACKET_IDENTIFIER_NOT_FOUND = 0x92,
    MQTT_RC_RECEIVE_MAXIMUM_EXCEEDED = 0x93,
    MQTT_RC_TOPIC_ALIAS_INVALID = 0x94,
    MQTT_RC_PACKET_TOO_LARGE = 0x95,
    MQTT_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
    MQTT_RC_QUOTA_EXCEEDED = 0x97,
    MQTT_RC_ADMINISTRATIVE_ACTION = 0x98,
    MQTT_RC_PAYLOAD_FORMAT_INVALID = 0x99,
    MQTT_RC_RETAIN_NOT_SUPPORTED = 0x9A,
    MQTT_RC_QOS_NOT_SUPPORTED = 0x9B,
    MQTT_RC_USE_ANOTHER_SERVER = 0x9C,
    MQTT_RC_SERVER_MOVED = 0x9D,
    MQTT_RC_SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E,
    MQTT_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
    MQTT_RC_MAXIMUM_CONNECT_TIME = 0xA0,
    MQTT_RC_SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1,
    MQTT_RC_WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2,
};

/* MQTT 3.1 / 3.1.1 CONNACK return codes. */
enum mqtt3_connack {
    MQTT3_CONNACK_ACCEPTED = 0,
    MQTT3_CONNACK_BAD_PROTOCOL_VERSION = 1,
    MQTT3_CONNACK_IDENTIFIER_REJECTED = 2,
    MQTT3_CONNACK_SERVER_UNAVAILABLE = 3,
    MQTT3_CONNACK_BAD_USERNAME_PASSWORD = 4,
    MQTT3_CONNACK_NOT_AUTHORIZED = 5,
};

/* MQTT 5.0 property identifiers. All are < 64, so a uint64_t bitmask records presence. */
enum mqtt_prop_id {
    MQTT_PROP_PAYLOAD_FORMAT_INDICATOR = 0x01,
    MQTT_PROP_MESSAGE_EXPIRY_INTERVAL = 0x02,
    MQTT_PROP_CONTENT_TYPE = 0x03,
    MQTT_PROP_RESPONSE_TOPIC = 0x08,
    MQTT_PROP_CORRELATION_DATA = 0x09,
    MQTT_PROP_SUBSCRIPTION_IDENTIFIER = 0x0B,
    MQTT_PROP_SESSION_EXPIRY_INTERVAL = 0x11,
    MQTT_PROP_ASSIGNED_CLIENT_IDENTIFIER = 0x12,
    MQTT_PROP_SERVER_KEEP_ALIVE = 0x13,
    MQTT_PROP_AUTHENTICATION_METHOD = 0x15,
    MQTT_PROP_AUTHENTICATION_DATA = 0x16,
    MQTT_PROP_REQUEST_PROBLEM_INFORMATION = 0x17,
    MQTT_PROP_WILL_DELAY_INTERVAL = 0x18,
    MQTT_PROP_REQUEST_RESPONSE_INFORMATION = 0x19,
    MQTT_PROP_RESPONSE_INFORMATION = 0x1A,
    MQTT_PROP_SERVER_REFERENCE = 0x1C,
    MQTT_PROP_REASON_STRING = 0x1F,
    MQTT_PROP_RECEIVE_MAXIMUM = 0x21,
    MQTT_PROP_TOPIC_ALIAS_MAXIMUM = 0x22,
    MQTT_PROP_TOPIC_ALIAS = 0x23,
    MQTT_PROP_MAXIMUM_QOS = 0x24,
    MQTT_PROP_RETAIN_AVAILABLE = 0x25,
    MQTT_PROP_USER_PROPERTY = 0x26,
    MQTT_PROP_MAXIMUM_PACKET_SIZE = 0x27,
    MQTT_PROP_WILDCARD_SUBSCRIPTION_AVAILABLE = 0x28,
    MQTT_PROP_SUBSCRIPTION_IDENTIFIER_AVAILABLE = 0x29,
    MQTT_PROP_SHARED_SUBSCRIPTION_AVAILABLE = 0x2A,
};

#define MQTT_PROP_BIT(id) (UINT64_C(1) << (id))
/* Properties allowed to appear in the "will properties" block of CONNECT. */
#define MQTT_PROPS_WILL                                                                            \
    (MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR) |                                           \
     MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL) | MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE) |    \
     MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC) | MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA) |         \
     MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY_INTERVAL) | MQTT_PROP_BIT(MQTT_PROP_USER_PROPERTY))

/* Largest remaining length the protocol can express (4-byte varint). */
#define MQTT_MAX_REMAINING 268435455u

/* A length-prefixed string or binary field: a view into the decoded buffer (or, for encoding,
 * into caller memory). p may be NULL when len == 0. Strings are validated UTF-8 on decode. */
struct mqtt_str {
    const uint8_t *p;
    uint32_t len;
};

struct mqtt_user_prop {
    struct mqtt_str key, value;
};

/* A property block. On decode, `has` tells which single-valued properties were present, their
 * values are filled in, and raw/raw_len view the whole block so user properties and
 * subscription identifiers can be walked in order with codec_props_next() (decode also sets the
 * Subscription Identifier bit in `has` when one is present; encode ignores that bit and the User
 * Property bit, and writes sub_ids/user instead). On encode, set `has`
 * and values for the single-valued properties, user/n_user and sub_ids/n_sub_ids for the
 * repeatable ones; `extra` bytes (already-encoded properties) are appended verbatim last. */
struct mqtt_props {
    uint64_t has; /* MQTT_PROP_BIT(id) for each single-valued property present */
    uint8_t payload_format;
    uint8_t request_problem_info;
    uint8_t request_response_info;
    uint8_t maximum_qos;
    uint8_t retain_available;
    uint8_t wildcard_sub_available;
    uint8_t sub_id_available;
    uint8_t shared_sub_available;
    uint16_t receive_maximum;
    uint16_t topic_alias_maximum;
    uint16_t topic_alias;
    uint16_t server_keep_alive;
    uint32_t message_expiry;
    uint32_t session_expiry;
    uint32_t will_delay;
    uint32_t maximum_packet_size;
    struct mqtt_str content_type;
    struct mqtt_str response_topic;
    struct mqtt_str correlation_data; /* binary */
    struct mqtt_str assigned_client_id;
    struct mqtt_str auth_method;
    struct mqtt_str auth_data; /* binary */
    struct mqtt_str response_info;
    struct mqtt_str server_reference;
    struct mqtt_str reason_string;

    /* decode: counts of repeatable properties; first subscription identifier (0 when none) */
    uint32_t user_count;
    uint32_t sub_id_count;
    uint32_t sub_id;
    /* decode: the whole property block as received (after the length varint) */
    const uint8_t *raw;
    uint32_t raw_len;

    /* encode only */
    const struct mqtt_user_prop *user;
    uint32_t n_user;
    const uint32_t *sub_ids;
    uint32_t n_sub_ids;
    const uint8_t *extra;
    uint32_t extra_len;
};

/* One property as walked by codec_props_next(). */
struct mqtt_prop {
    uint8_t id;
    uint32_t num;         /* byte, two-byte, four-byte and varint values */
    struct mqtt_str str;  /* string / binary values; for user properties: the key */
    struct mqtt_str str2; /* user properties: the value */
};

/* Walks a decoded property block: *off starts at 0. Returns 1 and fills *out for the next
 * property, 0 at the end. The block must have been validated by a decode call. */
int codec_props_next(const uint8_t *raw, uint32_t raw_len, uint32_t *off, struct mqtt_prop *out);

struct mqtt_connect {
    struct mqtt_str protocol_name;
    uint8_t level; /* 3, 4 or 5 */
    uint8_t flags; /* raw connect flags byte */
    bool clean;    /* clean session (v3) / clean start (v5) */
    bool will;
    uint8_t will_qos;
    bool will_retain;
    bool has_username;
    bool has_password;
    uint16_t keep_alive;
    struct mqtt_props props;
    struct mqtt_str client_id;
    struct mqtt_props will_props;
    struct mqtt_str will_topic;
    struct mqtt_str will_payload; /* binary */
    struct mqtt_str username;
    struct mqtt_str password; /* binary */
};

struct mqtt_connack {
    bool session_present;
    uint8_t rc; /* v3: enum mqtt3_connack; v5: enum mqtt_rc */
    struct mqtt_props props;
};

struct mqtt_publish {
    bool dup;
    uint8_t qos;
    bool retain;
    struct mqtt_str topic; /* may be empty in v5 when a topic alias is used */
    uint16_t packet_id;    /* 0 for QoS 0 */
    struct mqtt_props props;
    struct mqtt_str payload; /* binary */
};

/* PUBACK, PUBREC, PUBREL, PUBCOMP. In v5 the reason code and properties may be omitted on the
 * wire; decode fills rc = 0 then. Encode omits them when rc == 0 and there are no properties. */
struct mqtt_ack {
    uint16_t packet_id;
    uint8_t rc;
    struct mqtt_props props;
};

/* One SUBSCRIBE entry as walked by codec_subscribe_next(). */
struct mqtt_sub_entry {
    struct mqtt_str filter;
    uint8_t qos;
    bool no_local;            /* v5 */
    bool retain_as_published; /* v5 */
    uint8_t retain_handling;  /* v5: 0, 1, 2 */
};

/* SUBSCRIBE and UNSUBSCRIBE: entries are validated on decode and walked afterwards with
 * codec_subscribe_next(). To encode, set list/count (entries is ignored then). */
struct mqtt_subscribe {
    uint16_t packet_id;
    struct mqtt_props props;
    const uint8_t *entries; /* decode: the payload */
    uint32_t entries_len;
    uint32_t count;                    /* number of topic filters (at least 1) */
    const struct mqtt_sub_entry *list; /* encode: count entries */
};

/* SUBACK and UNSUBACK: one reason code per filter (v3 UNSUBACK has none: count 0). */
struct mqtt_suback {
    uint16_t packet_id;
    struct mqtt_props props;
    const uint8_t *rcs;
    uint32_t count;
};

/* DISCONNECT and AUTH. */
struct mqtt_reason {
    uint8_t rc;
    struct mqtt_props props;
};

struct mqtt_packet {
    uint8_t type;  /* enum mqtt_type */
    uint8_t flags; /* low nibble of the fixed header */
    uint32_t remaining;
    union {
        struct mqtt_connect connect;
        struct mqtt_connack connack;
        struct mqtt_publish publish;
        struct mqtt_ack ack;
        struct mqtt_subscribe subscribe; /* SUBSCRIBE, UNSUBSCRIBE */
        struct mqtt_suback suback;       /* SUBACK, UNSUBACK */
        struct mqtt_reason reason;       /* DISCONNECT, AUTH */
    } u;
};

/* Reads the fixed header at buf[0..len): packet type+flags byte, remaining length and header size.
 * Returns 0, TERN_EAGAIN (header incomplete), TERN_EMALFORMED (varint longer than 4 bytes or
 * type 0), or TERN_ETOOBIG when header + remaining > max_packet (max_packet 0 = no limit). */
int codec_peek_header(const uint8_t *buf, size_t len, uint32_t max_packet, uint8_t *type_flags,
                      uint32_t *remaining, uint32_t *header_len) TERN_MUST_CHECK;

/* Decodes one packet from buf[0..len). version is the connection's negotiated protocol level
 * (3, 4 or 5); for a CONNECT the packet's own level is used. A CONNECT whose protocol name is
 * "MQTT" or "MQIsdp" but whose level is not one this name supports ("MQIsdp"+3, "MQTT"+4/5)
 * decodes successfully with only protocol_name and level set, so the session can answer CONNACK
 * 0x01 / 0x84 [MQTT-3.1.2-2]; any other protocol name is TERN_EPROTO [MQTT-3.1.2-1]. Fixed-header
 * flags are checked [MQTT-2.2.2-1] [MQTT-2.2.2-2], every UTF-8 field is validated [MQTT-1.5.3-1]
 * [MQTT-1.5.3-2]. On 0, *consumed is the packet size and *out holds views into buf. Topic-name
 * rules beyond UTF-8 (wildcards, empty) are left to the router so v5 topic aliases can be resolved
 * first. */
int codec_decode(const uint8_t *buf, size_t len, uint8_t version, uint32_t max_packet,
                 struct mqtt_packet *out, size_t *consumed) TERN_MUST_CHECK;

/* Walks SUBSCRIBE entries (s->entries): *off starts at 0; returns 1 per entry, 0 at the end.
 * For UNSUBSCRIBE only e->filter is set. `unsubscribe` selects the grammar. */
int codec_subscribe_next(const struct mqtt_subscribe *s, bool unsubscribe, uint32_t *off,
                         struct mqtt_sub_entry *e);

/* Appends the encoding of pkt for protocol `version` to out. pkt->type selects the union
 * member; pkt->flags is ignored except for PUBLISH, whose flags come from the publish fields.
 * Returns 0, TERN_ETOOBIG/TERN_ENOMEM from the buffer, or TERN_EINVAL for unencodable input. */
int codec_encode(const struct mqtt_packet *pkt, uint8_t version, struct buf *out) TERN_MUST_CHECK;

/* Size in bytes of the whole encoded packet (what codec_encode would append). */
size_t codec_encoded_size(const struct mqtt_packet *pkt, uint8_t version);

/* Encodes the head of a PUBLISH (fixed header, topic, packet id, v5 properties) into out[0..cap)
 * for a payload of payload_len bytes that the caller writes right after it. Returns the head
 * length, or 0 when cap is too small or the packet would exceed MQTT_MAX_REMAINING.
 * `p->payload` is ignored. 64 bytes + topic + properties always suffice. */
size_t codec_encode_publish_head(uint8_t *out, size_t cap, const struct mqtt_publish *p,
                                 uint32_t payload_len, uint8_t version);

/* Encodes v as an MQTT variable byte integer into out (>= 4 bytes); returns bytes written (1-4),
 * 0 if v > MQTT_MAX_REMAINING. */
size_t codec_varint_encode(uint8_t *out, uint32_t v);
/* Size of the encoded property block (without its length varint) for props. */
size_t codec_props_size(const struct mqtt_props *props);

/* Name of a packet type ("CONNECT", ...) and of a v5 reason code, for logs and the CLI. */
const char *codec_type_name(uint8_t type);
const char *codec_rc_name(uint8_t rc);

#endif
