/* config.h - broker configuration: a Mosquitto-syntax file driven by ONE table of directives.
 *
 * The table (config.c) lists for every directive its name, type, field offset, default, bounds,
 * whether SIGHUP reloads it, and its documentation. Parsing, defaults, bounds checks,
 * `ternd --help-config` and reload all read the same rows. A struct config is plain data owned
 * by its creator; the broker swaps a new one in on reload (only reloadable fields are copied). */
#ifndef TERN_CONFIG_CONFIG_H
#define TERN_CONFIG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/alloc.h"
#include "common/err.h"

#define CONF_MAX_LISTENERS 16

enum conf_protocol { CONF_PROTO_MQTT = 0, CONF_PROTO_WEBSOCKETS = 1 };

/* One `listener PORT [BIND_ADDRESS]` block; the directives after it until the next listener
 * apply to it. A listener bound to a loopback address (or the default, localhost) allows
 * anonymous clients by default; any other listener does not unless allow_anonymous says so. */
struct conf_listener {
    int port;            /* 0..65535; 0 = pick a free port (tests) */
    char *bind_address;  /* NULL = all addresses ("listener 1883" in mosquitto) */
    int protocol;        /* enum conf_protocol */
    int allow_anonymous; /* -1 = not set (use the global/default rule), 0, 1 */
    int max_connections; /* -1 = unlimited */
    char *mount_point;   /* NULL = none */
    /* TLS (issue #6): kept here so the file format is stable */
    char *certfile, *keyfile, *cafile, *capath, *crlfile;
    char *tls_version;             /* minimum: "tlsv1.2" (default) or "tlsv1.3" */
    char *ciphers, *ciphersuites;  /* TLS 1.2 cipher list / TLS 1.3 suites, NULL = OpenSSL's */
    bool require_certificate;      /* clients must present a certificate signed by cafile */
    bool use_identity_as_username; /* the certificate's CN (or first DNS SAN) is the user */
};

struct config {
    /* listeners: when the file has none, one default listener on 127.0.0.1:1883 */
    struct conf_listener listeners[CONF_MAX_LISTENERS];
    int n_listeners;

    int threads;                            /* I/O threads; 0 = number of cores */
    int max_connections;                    /* -1 = unlimited (bounded by the fd limit) */
    int max_inflight_messages;              /* outgoing QoS 1/2 window per client (1..65535), 20 */
    long long max_inflight_bytes;           /* 0 = unlimited */
    int max_queued_messages;                /* per client, 1000; 0 = unlimited */
    long long max_queued_bytes;             /* per client, 0 = unlimited */
    bool queue_qos0_messages;               /* queue QoS 0 for offline persistent sessions, false */
    long long message_size_limit;           /* max PUBLISH payload, 0 = protocol max */
    long long max_packet_size;              /* max incoming packet, 0 = protocol max */
    int allow_anonymous;                    /* -1 = not set: localhost listeners only */
    bool allow_zero_length_clientid;        /* true */
    char *auto_id_prefix;                   /* "auto-" */
    long long persistent_client_expiration; /* seconds; default 14 days; 0 = never */
    int sys_interval;                       /* seconds, 10; 0 = no $SYS */
    int max_keepalive;                      /* seconds, 65535 */
    int connect_timeout;                    /* seconds to receive CONNECT, 10 */
    bool retain_available;                  /* true */
    int max_qos;                            /* 2 */
    bool set_tcp_nodelay;                   /* true */
    char *password_file;                    /* issue #6 */
    char *acl_file;                         /* issue #6 */
    bool persistence;                       /* durable store (later), false */
    char *persistence_location;
    int log_dest;       /* enum log_dest bits, stderr */
    char *log_file;     /* for log_dest file */
    int log_type;       /* enum log_level bits */
    bool log_timestamp; /* true */
    char *pid_file;     /* NULL */
    /* MQTT 5.0 */
    int max_topic_alias;        /* Topic Alias Maximum offered to clients, 10 */
    bool topic_alias_out;       /* use server-to-client aliases when allowed, true */
    int receive_maximum;        /* Receive Maximum offered (incoming QoS 2 window), 65535 */
    char *response_info_prefix; /* Response Information base ("responses/") */
    bool check_payload_format;  /* refuse non-UTF-8 payloads flagged UTF-8 (0x99), true */
    char *server_reference;     /* redirect v5 clients (with server_redirect) */
    int server_redirect;        /* 0 none, 1 use another server (0x9C), 2 moved (0x9D) */
    int shared_policy;          /* 0 round_robin, 1 random, 2 hash_topic */
    /* quotas and flood protection (0 = unlimited unless said otherwise) */
    int max_connections_per_ip;       /* open connections from one address */
    int connection_rate_per_ip;       /* new connections per second from one address */
    int max_subscriptions_per_client; /* 10000 */
    int max_topic_length;             /* bytes, 65535 */
    int max_topic_levels;             /* 128 */
    int publish_rate_messages;        /* per client per second (token bucket) */
    long long publish_rate_bytes;     /* payload bytes per client per second */
    int max_retained_messages;
    long long max_retained_bytes;
    long long memory_limit; /* bytes of broker heap above which publishes are refused */
};

/* One directive row (exposed for --help-config, reload and tests).
 * `type` is how the field is stored (int, long long, bool, char *); CONF_SPECIAL rows
 * (listener, port) have no single field. A row with a handler parses its own value syntax
 * (durations, keywords, log_dest/log_type accumulation, global-or-listener scope); every other
 * row is parsed generically from its type and bounds. */
enum conf_type { CONF_INT, CONF_LLONG, CONF_BOOL, CONF_STRING, CONF_SPECIAL };
struct conf_directive;
/* Parser state handed to row handlers (private to config.c). */
struct conf_parse;
/* Parses `value` (the rest of the line after the directive name, trimmed; the handler may modify
 * it) into the config being loaded. Returns 0, TERN_EINVAL (message "FILE:LINE: ..." written
 * through p) or TERN_ENOMEM. */
typedef int (*conf_handler)(struct conf_parse *p, const struct conf_directive *d, char *value);
struct conf_directive {
    const char *name;
    enum conf_type type;
    bool per_listener;  /* field lives in struct conf_listener */
    size_t offset;      /* offsetof the field */
    long long min, max; /* bounds for numbers */
    const char *def;    /* default, as text (shown by --help-config and applied by conf_defaults) */
    bool reloadable;    /* applied on SIGHUP */
    const char *doc;    /* one-line description */
    conf_handler handler; /* NULL: generic parsing by type */
};
/* The table and its length. */
extern const struct conf_directive conf_directives[];
extern const size_t conf_directive_count;

/* String fields of struct config and struct conf_listener are NULL, a heap copy owned by the
 * config (MEM_CONFIG), or the row's default text itself (static, never freed): conf_defaults
 * sets e.g. auto_id_prefix to the table's "auto-". Only conf_free/conf_apply_reloadable free. */

/* Fills c with defaults (no listeners yet): every row's `def` text goes through the same parser
 * as the file (allow_anonymous has no default text: -1, "not set"). Allocates nothing. */
void conf_defaults(struct config *c);
/* Parses the file at path into c (which must hold defaults). On error returns TERN_EINVAL
 * (TERN_ENOMEM when out of memory) and writes "FILE:LINE: message" into err[0..errlen); c then
 * holds what was parsed before the error and must still be conf_free'd. Call conf_finish after
 * to add the default listener when none was given. */
int conf_load_file(struct mem *mem, struct config *c, const char *path, char *err,
                   size_t errlen) TERN_MUST_CHECK;
/* As conf_load_file, from a string; `name` is used in error messages. */
int conf_load_string(struct mem *mem, struct config *c, const char *name, const char *text,
                     char *err, size_t errlen) TERN_MUST_CHECK;
/* Adds the default listener (127.0.0.1:1883) if c has none. Allocates nothing. */
void conf_finish(struct mem *mem, struct config *c);
/* Frees the strings owned by c (the struct itself belongs to the caller). */
void conf_free(struct mem *mem, struct config *c);
/* Copies the reloadable fields of src into dst (dst keeps its listeners and non-reloadable
 * fields). String fields are moved: src loses them. */
void conf_apply_reloadable(struct mem *mem, struct config *dst, struct config *src);
/* Writes the directive reference (name, type, default, bounds, reloadable, doc) to f as the
 * Markdown of docs/CONFIG.md (a unit test keeps that file equal to this output). */
void conf_print_help(FILE *f);
/* Effective allow_anonymous for listener i (explicit listener value, else global, else true only
 * for loopback bind addresses: 127.0.0.0/8, ::1, ::ffff:127.x.x.x, "localhost"; a listener on all
 * addresses (NULL) is not loopback). False for i outside 0..n_listeners-1. */
bool conf_listener_anonymous(const struct config *c, int i);

#endif
