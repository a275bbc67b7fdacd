/* config.c - the directive table and the Mosquitto-syntax parser (see config.h).
 *
 * Every directive is one row of conf_directives[]: parsing, defaults, bounds, reload and
 * `ternd --help-config` all read these rows (nginx ngx_command_t, Redis standardConfig).
 * Rows of type CONF_SPECIAL carry a handler for their argument syntax (listener, log_dest,
 * log_type, durations). */
#include "config/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/file.h"
#include "common/log.h"

#define G(field) offsetof(struct config, field)
#define L(field) offsetof(struct conf_listener, field)
#define NOLIMIT  0, 0

struct parse_ctx {
    struct mem *mem;
    struct config *c;
    const char *name;
    int line;
    char *err;
    size_t errlen;
    bool log_dest_seen, log_type_seen;
    bool
        implicit_listener; /* listener 0 was made by `port` or a listener setting, not `listener` */
};

static int perr(struct parse_ctx *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct parse_ctx *p, const char *fmt, ...)
{
    int n = snprintf(p->err, p->errlen, "%s:%d: ", p->name, p->line);
    if (n < 0 || (size_t)n >= p->errlen)
        return TERN_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return TERN_EINVAL;
}

static int h_listener(struct parse_ctx *p, const struct conf_directive *d, char **argv, int argc);
static int h_port(struct parse_ctx *p, const struct conf_directive *d, char **argv, int argc);
static int h_bind(struct parse_ctx *p, const struct conf_directive *d, char **argv, int argc);
static int h_protocol(struct parse_ctx *p, const struct conf_directive *d, char **argv, int argc);
static int h_log_dest(struct parse_ctx *p, const struct conf_directive *d, char **argv, int argc);
static int h_log_type(struct parse_ctx *p, const struct conf_directive *d, char **argv, int argc);
static int h_duration(struct parse_ctx *p, const struct conf_directive *d, char **argv, int argc);
static int h_max_connections(struct parse_ctx *p, const struct conf_directive *d, char **argv,
                             int argc);
static int h_allow_anonymous(struct parse_ctx *p, const struct conf_directive *d, char **argv,
                             int argc);

static int h_redirect(struct parse_ctx *p, const struct conf_directive *d, char **argv, int argc);
static int h_shared_policy(struct parse_ctx *p, const struct conf_directive *d, char **argv,
                           int argc);

typedef int (*conf_handler)(struct parse_ctx *, const struct conf_directive *, char **, int);

/* Handlers of CONF_SPECIAL rows, indexed in the same order as the rows that use them. */
struct special {
    const char *name;
    conf_handler fn;
};
static const struct special specials[] = {
    {"listener", h_listener},
    {"port", h_port},
    {"bind_address", h_bind},
    {"protocol", h_protocol},
    {"log_dest", h_log_dest},
    {"log_type", h_log_type},
    {"persistent_client_expiration", h_duration},
    {"max_connections", h_max_connections},
    {"allow_anonymous", h_allow_anonymous},
    {"server_redirect", h_redirect},
    {"shared_subscription_policy", h_shared_policy},
};

const struct conf_directive conf_directives[] = {
    /* listeners */
    {"listener", CONF_SPECIAL, false, 0, 0, 65535, NULL, false,
     "listener PORT [BIND_ADDRESS]: start a listener; the directives after it apply to it"},
    {"port", CONF_SPECIAL, false, 0, 0, 65535, "1883", false,
     "port of the default listener (deprecated in Mosquitto; use listener)"},
    {"bind_address", CONF_SPECIAL, true, L(bind_address), NOLIMIT, "127.0.0.1", false,
     "address the current listener binds to"},
    {"protocol", CONF_SPECIAL, true, L(protocol), NOLIMIT, "mqtt", false,
     "protocol of the current listener: mqtt or websockets (websockets: not yet supported)"},
    {"mount_point", CONF_STRING, true, L(mount_point), NOLIMIT, NULL, false,
     "topic prefix for clients of the current listener (not yet applied)"},
    {"certfile", CONF_STRING, true, L(certfile), NOLIMIT, NULL, false,
     "PEM certificate (chain) of the current listener; with keyfile, makes it a TLS listener "
     "(reloaded on SIGHUP for new connections)"},
    {"keyfile", CONF_STRING, true, L(keyfile), NOLIMIT, NULL, false,
     "PEM private key of the current TLS listener"},
    {"cafile", CONF_STRING, true, L(cafile), NOLIMIT, NULL, false,
     "PEM CA certificates that sign client certificates"},
    {"capath", CONF_STRING, true, L(capath), NOLIMIT, NULL, false,
     "directory of hashed CA certificates (c_rehash) for client certificates"},
    {"crlfile", CONF_STRING, true, L(crlfile), NOLIMIT, NULL, false,
     "PEM certificate revocation list checked against client certificates"},
    {"tls_version", CONF_STRING, true, L(tls_version), NOLIMIT, "tlsv1.2", false,
     "lowest TLS version accepted: tlsv1.2 or tlsv1.3"},
    {"ciphers", CONF_STRING, true, L(ciphers), NOLIMIT, NULL, false,
     "OpenSSL cipher list for TLS 1.2"},
    {"ciphersuites", CONF_STRING, true, L(ciphersuites), NOLIMIT, NULL, false,
     "OpenSSL TLS 1.3 cipher suites"},
    {"require_certificate", CONF_BOOL, true, L(require_certificate), 0, 1, "false", false,
     "TLS clients must present a certificate signed by cafile/capath (mTLS)"},
    {"use_identity_as_username", CONF_BOOL, true, L(use_identity_as_username), 0, 1, "false", false,
     "use the client certificate's CN (or first DNS SAN) as the user name (for ACLs); "
     "such clients need no password"},
    {"max_connections", CONF_SPECIAL, false, G(max_connections), -1, 100000000, "-1", true,
     "maximum client connections, global before any listener, per listener after one; -1 = "
     "unlimited (bounded by the file descriptor limit)"},
    {"allow_anonymous", CONF_SPECIAL, false, G(allow_anonymous), 0, 1, NULL, true,
     "allow clients without a username; default: only on listeners bound to loopback"},
    /* broker */
    {"threads", CONF_INT, false, G(threads), 0, 1024, "0", false,
     "I/O threads (event loops); 0 = number of CPU cores"},
    {"max_inflight_messages", CONF_INT, false, G(max_inflight_messages), 1, 65535, "20", true,
     "outgoing QoS 1/2 messages in flight per client"},
    {"max_inflight_bytes", CONF_LLONG, false, G(max_inflight_bytes), 0, 1LL << 40, "0", true,
     "outgoing QoS 1/2 bytes in flight per client; 0 = unlimited (not yet applied)"},
    {"max_queued_messages", CONF_INT, false, G(max_queued_messages), 0, 100000000, "1000", true,
     "messages queued per client beyond the inflight window or while offline; 0 = unlimited"},
    {"max_queued_bytes", CONF_LLONG, false, G(max_queued_bytes), 0, 1LL << 40, "0", true,
     "bytes queued per client; 0 = unlimited"},
    {"queue_qos0_messages", CONF_BOOL, false, G(queue_qos0_messages), 0, 1, "false", true,
     "queue QoS 0 messages for offline persistent clients"},
    {"message_size_limit", CONF_LLONG, false, G(message_size_limit), 0, 268435455, "0", true,
     "largest PUBLISH payload accepted (bytes); 0 = protocol maximum"},
    {"max_packet_size", CONF_LLONG, false, G(max_packet_size), 0, 268435460, "0", true,
     "largest incoming packet (bytes), checked from the fixed header; 0 = protocol maximum"},
    {"allow_zero_length_clientid", CONF_BOOL, false, G(allow_zero_length_clientid), 0, 1, "true",
     true, "accept an empty client id (with clean session) and assign one"},
    {"auto_id_prefix", CONF_STRING, false, G(auto_id_prefix), NOLIMIT, "auto-", true,
     "prefix of assigned client ids"},
    {"persistent_client_expiration", CONF_SPECIAL, false, G(persistent_client_expiration), 0,
     1LL << 40, "14d", true,
     "remove persistent sessions offline this long: seconds or N followed by h, d, w, m, y; 0 = "
     "never"},
    {"sys_interval", CONF_INT, false, G(sys_interval), 0, 86400, "10", true,
     "seconds between $SYS/broker updates; 0 = none"},
    {"max_keepalive", CONF_INT, false, G(max_keepalive), 0, 65535, "65535", true,
     "largest keep-alive granted to v5 clients (Server Keep Alive)"},
    {"connect_timeout", CONF_INT, false, G(connect_timeout), 1, 3600, "10", true,
     "seconds a new connection may take to send CONNECT"},
    {"retain_available", CONF_BOOL, false, G(retain_available), 0, 1, "true", true,
     "accept retained messages"},
    {"max_qos", CONF_INT, false, G(max_qos), 0, 2, "2", true, "highest QoS granted"},
    {"set_tcp_nodelay", CONF_BOOL, false, G(set_tcp_nodelay), 0, 1, "true", false,
     "disable Nagle on client sockets (low latency)"},
    {"password_file", CONF_STRING, false, G(password_file), NOLIMIT, NULL, true,
     "mosquitto_passwd-compatible password file (not yet supported)"},
    {"acl_file", CONF_STRING, false, G(acl_file), NOLIMIT, NULL, true,
     "Mosquitto-format ACL file (not yet supported)"},
    {"persistence", CONF_BOOL, false, G(persistence), 0, 1, "false", false,
     "durable sessions and retained messages (not yet supported)"},
    {"persistence_location", CONF_STRING, false, G(persistence_location), NOLIMIT, NULL, false,
     "directory of the durable store (not yet supported)"},
    {"pid_file", CONF_STRING, false, G(pid_file), NOLIMIT, NULL, false,
     "write the process id to this file"},
    /* MQTT 5.0 */
    {"max_topic_alias", CONF_INT, false, G(max_topic_alias), 0, 65535, "10", false,
     "Topic Alias Maximum offered to v5 clients (client-to-server aliases); 0 = none"},
    {"topic_alias_out", CONF_BOOL, false, G(topic_alias_out), 0, 1, "true", false,
     "use server-to-client topic aliases, up to the client's Topic Alias Maximum"},
    {"receive_maximum", CONF_INT, false, G(receive_maximum), 1, 65535, "65535", false,
     "Receive Maximum offered to v5 clients: unreleased incoming QoS 2 messages; more is "
     "disconnected with 0x93"},
    {"response_info_prefix", CONF_STRING, false, G(response_info_prefix), NOLIMIT, "responses/",
     true, "Response Information sent to v5 clients that request it (followed by the client id)"},
    {"check_payload_format", CONF_BOOL, false, G(check_payload_format), 0, 1, "true", true,
     "refuse (0x99) v5 messages whose Payload Format Indicator says UTF-8 but are not"},
    {"server_reference", CONF_STRING, false, G(server_reference), NOLIMIT, NULL, true,
     "Server Reference sent with server_redirect"},
    {"server_redirect", CONF_SPECIAL, false, G(server_redirect), 0, 2, "none", true,
     "none | use_another (CONNACK 0x9C) | moved (0x9D): redirect v5 clients to server_reference; "
     "v3 clients get CONNACK 3"},
    {"shared_subscription_policy", CONF_SPECIAL, false, G(shared_policy), 0, 2, "round_robin",
     true, "round_robin | random | hash_topic (one member per topic, keeping per-topic order): "
           "how a shared subscription group picks the member for each message"},
    /* quotas and flood protection */
    {"max_connections_per_ip", CONF_INT, false, G(max_connections_per_ip), 0, 100000000, "0", true,
     "open connections from one IP address; 0 = unlimited"},
    {"connection_rate_per_ip", CONF_INT, false, G(connection_rate_per_ip), 0, 100000000, "0", true,
     "new connections per second from one IP address (more are closed at once); 0 = unlimited"},
    {"max_subscriptions_per_client", CONF_INT, false, G(max_subscriptions_per_client), 0, 100000000,
     "10000", true,
     "subscriptions one session may hold (SUBACK 0x80/0x97 beyond); 0 "
     "= unlimited"},
    {"max_topic_length", CONF_INT, false, G(max_topic_length), 1, 65535, "65535", true,
     "longest topic name or filter accepted (bytes)"},
    {"max_topic_levels", CONF_INT, false, G(max_topic_levels), 1, 65535, "128", true,
     "most levels in a topic name or filter"},
    {"publish_rate_messages", CONF_INT, false, G(publish_rate_messages), 0, 100000000, "0", true,
     "PUBLISH packets per second per client (token bucket, burst of one second); v5 over it gets "
     "0x96, v3 is disconnected; 0 = unlimited"},
    {"publish_rate_bytes", CONF_LLONG, false, G(publish_rate_bytes), 0, 1LL << 40, "0", true,
     "PUBLISH payload bytes per second per client (token bucket); 0 = unlimited"},
    {"max_retained_messages", CONF_INT, false, G(max_retained_messages), 0, 100000000, "0", true,
     "retained messages stored; new retained topics beyond are refused (v5 0x97); 0 = unlimited"},
    {"max_retained_bytes", CONF_LLONG, false, G(max_retained_bytes), 0, 1LL << 40, "0", true,
     "bytes of retained messages stored; 0 = unlimited"},
    {"memory_limit", CONF_LLONG, false, G(memory_limit), 0, 1LL << 50, "0", true,
     "broker heap bytes above which new publishes are refused (v5 0x97, v3 dropped) rather than "
     "the broker dying; 0 = none"},
    /* logging */
    {"log_dest", CONF_SPECIAL, false, G(log_dest), NOLIMIT, "stderr", true,
     "stderr | stdout | file PATH | syslog | none (repeatable)"},
    {"log_type", CONF_SPECIAL, false, G(log_type), NOLIMIT, "error warning notice information",
     true,
     "error | warning | notice | information | debug | subscribe | unsubscribe | all | none "
     "(repeatable)"},
    {"log_timestamp", CONF_BOOL, false, G(log_timestamp), 0, 1, "true", true,
     "prefix log lines with an ISO 8601 UTC timestamp"},
};
const size_t conf_directive_count = sizeof conf_directives / sizeof conf_directives[0];

/* ---- value parsing ---- */

static int parse_ll(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return -1;
    *out = v;
    return 0;
}

static void *field(struct parse_ctx *p, const struct conf_directive *d)
{
    if (!d->per_listener)
        return (char *)p->c + d->offset;
    /* before any listener: the default listener (created on demand) */
    if (p->c->n_listeners == 0) {
        p->c->n_listeners = 1;
        p->c->listeners[0].port = 1883;
        p->c->listeners[0].allow_anonymous = -1; /* not set: the loopback rule applies */
        p->c->listeners[0].max_connections = -1;
        p->implicit_listener = true;
    }
    return (char *)&p->c->listeners[p->c->n_listeners - 1] + d->offset;
}

static int set_string(struct parse_ctx *p, char **dst, const char *v)
{
    char *s = mem_strndup(p->mem, MEM_CONFIG, v, strlen(v));
    if (!s)
        return perr(p, "out of memory");
    mem_free(p->mem, MEM_CONFIG, *dst);
    *dst = s;
    return 0;
}

static int set_value(struct parse_ctx *p, const struct conf_directive *d, const char *v)
{
    void *f = field(p, d);
    switch (d->type) {
    case CONF_INT:
    case CONF_LLONG: {
        long long x;
        if (parse_ll(v, &x))
            return perr(p, "%s: '%s' is not a number", d->name, v);
        if (x < d->min || x > d->max)
            return perr(p, "%s: %lld is out of range (%lld..%lld)", d->name, x, d->min, d->max);
        if (d->type == CONF_INT)
            *(int *)f = (int)x;
        else
            *(long long *)f = x;
        return 0;
    }
    case CONF_BOOL:
        if (strcmp(v, "true") == 0)
            *(bool *)f = true;
        else if (strcmp(v, "false") == 0)
            *(bool *)f = false;
        else
            return perr(p, "%s: '%s' is not a boolean (true or false)", d->name, v);
        return 0;
    case CONF_STRING: return set_string(p, (char **)f, v);
    case CONF_SPECIAL: break;
    }
    return perr(p, "%s: internal error", d->name);
}

/* ---- special handlers ---- */

static int h_listener(struct parse_ctx *p, const struct conf_directive *d, char **argv, int argc)
{
    if (argc < 1 || argc > 2)
        return perr(p, "listener: expected PORT [BIND_ADDRESS]");
    long long port;
    if (parse_ll(argv[0], &port) || port < 0 || port > 65535)
        return perr(p, "listener: port '%s' is not in 0..65535", argv[0]);
    if (p->c->n_listeners >= CONF_MAX_LISTENERS)
        return perr(p, "listener: too many listeners (at most %d)", CONF_MAX_LISTENERS);
    struct conf_listener *l = &p->c->listeners[p->c->n_listeners++];
    memset(l, 0, sizeof *l);
    l->port = (int)port;
    l->allow_anonymous = -1;
    l->max_connections = -1;
    if (argc == 2)
        return set_string(p, &l->bind_address, argv[1]);
    return 0;
}

static int h_port(struct parse_ctx *p, const struct conf_directive *d, char **argv, int argc)
{
    long long port;
    if (argc != 1 || parse_ll(argv[0], &port) || port < 0 || port > 65535)
        return perr(p, "port: expected one port number in 0..65535");
    if (p->c->n_listeners == 0) {
        p->c->n_listeners = 1;
        p->c->listeners[0].allow_anonymous = -1;
        p->c->listeners[0].max_connections = -1;
        p->implicit_listener = true;
    }
    p->c->listeners[0].port = (int)port;
    return 0;
}

static int h_bind(struct parse_ctx *p, const struct conf_directive *d, char **argv, int argc)
{
    if (argc != 1)
        return perr(p, "bind_address: expected one address");
    return set_string(p, (char **)field(p, d), argv[0]);
}

static int h_protocol(struct parse_ctx *p, const struct conf_directive *d, char **argv, int argc)
{
    if (argc != 1)
        return perr(p, "protocol: expected mqtt or websockets");
    int *f = field(p, d);
    if (strcmp(argv[0], "mqtt") == 0)
        *f = CONF_PROTO_MQTT;
    else if (strcmp(argv[0], "websockets") == 0)
        return perr(p, "protocol: websockets is not supported yet");
    else
        return perr(p, "protocol: '%s' is not mqtt or websockets", argv[0]);
    return 0;
}

static int h_log_dest(struct parse_ctx *p, const struct conf_directive *d, char **argv, int argc)
{
    if (argc < 1)
        return perr(p, "log_dest: expected stderr, stdout, file PATH, syslog or none");
    if (!p->log_dest_seen) {
        p->c->log_dest = 0; /* the first log_dest replaces the default */
        p->log_dest_seen = true;
    }
    const char *w = argv[0];
    if (strcmp(w, "file") == 0) {
        if (argc != 2)
            return perr(p, "log_dest file: expected a path");
        p->c->log_dest = (p->c->log_dest & ~LOG_DEST_NONE) | LOG_DEST_FILE;
        return set_string(p, &p->c->log_file, argv[1]);
    }
    if (argc != 1)
        return perr(p, "log_dest %s: unexpected argument '%s'", w, argv[1]);
    if (strcmp(w, "none") != 0)
        p->c->log_dest &= ~LOG_DEST_NONE; /* "none" then "stderr" logs to stderr */
    if (strcmp(w, "stderr") == 0)
        p->c->log_dest |= LOG_DEST_STDERR;
    else if (strcmp(w, "stdout") == 0)
        p->c->log_dest |= LOG_DEST_STDOUT;
    else if (strcmp(w, "syslog") == 0)
        p->c->log_dest |= LOG_DEST_SYSLOG;
    else if (strcmp(w, "none") == 0)
        p->c->log_dest = LOG_DEST_NONE;
    else if (strcmp(w, "topic") == 0 || strcmp(w, "dlt") == 0)
        return perr(p, "log_dest: '%s' is not supported", w);
    else
        return perr(p, "log_dest: '%s' is not stderr, stdout, file, syslog or none", w);
    return 0;
}

static int h_log_type(struct parse_ctx *p, const struct conf_directive *d, char **argv, int argc)
{
    if (argc < 1)
        return perr(p, "log_type: expected a level");
    if (!p->log_type_seen) {
        p->c->log_type = 0;
        p->log_type_seen = true;
    }
    for (int i = 0; i < argc; i++) {
        int bits = log_level_parse(argv[i]);
        if (bits < 0)
            return perr(p,
                        "log_type: '%s' is not error, warning, notice, information, debug, "
                        "subscribe, unsubscribe, all or none",
                        argv[i]);
        if (bits == 0)
            p->c->log_type = 0;
        else
            p->c->log_type |= bits;
    }
    return 0;
}

/* Mosquitto durations: plain seconds, or N followed by h, d, w, m (30 days) or y (365 days). */
static int parse_duration(const char *s, long long *out)
{
    size_t n = strlen(s);
    if (n == 0)
        return -1;
    long long mult = 1;
    char unit = s[n - 1];
    char num[32];
    if (unit >= '0' && unit <= '9') {
        return parse_ll(s, out);
    }
    switch (unit) {
    case 'h': mult = 3600; break;
    case 'd': mult = 86400; break;
    case 'w': mult = 7 * 86400; break;
    case 'm': mult = 30 * 86400; break;
    case 'y': mult = 365 * 86400; break;
    default: return -1;
    }
    if (n - 1 >= sizeof num || n == 1)
        return -1;
    memcpy(num, s, n - 1);
    num[n - 1] = '\0';
    long long v;
    if (parse_ll(num, &v) || v < 0 || v > (1LL << 40) / mult)
        return -1;
    *out = v * mult;
    return 0;
}

static int h_duration(struct parse_ctx *p, const struct conf_directive *d, char **argv, int argc)
{
    long long v;
    if (argc != 1 || parse_duration(argv[0], &v) || v < d->min || v > d->max)
        return perr(p, "%s: '%s' is not a duration (seconds, or N followed by h, d, w, m or y)",
                    d->name, argc ? argv[0] : "");
    *(long long *)field(p, d) = v;
    return 0;
}

static int h_max_connections(struct parse_ctx *p, const struct conf_directive *d, char **argv,
                             int argc)
{
    long long v;
    if (argc != 1 || parse_ll(argv[0], &v) || v < d->min || v > d->max)
        return perr(p, "max_connections: expected a number in -1..%lld", d->max);
    if (p->c->n_listeners > 0)
        p->c->listeners[p->c->n_listeners - 1].max_connections = (int)v;
    else
        p->c->max_connections = (int)v;
    return 0;
}

static int h_allow_anonymous(struct parse_ctx *p, const struct conf_directive *d, char **argv,
                             int argc)
{
    if (argc != 1 || (strcmp(argv[0], "true") != 0 && strcmp(argv[0], "false") != 0))
        return perr(p, "allow_anonymous: expected true or false");
    int v = strcmp(argv[0], "true") == 0;
    /* like max_connections: global before any listener, per listener after one */
    if (p->c->n_listeners > 0)
        p->c->listeners[p->c->n_listeners - 1].allow_anonymous = v;
    else
        p->c->allow_anonymous = v;
    return 0;
}

static int h_redirect(struct parse_ctx *p, const struct conf_directive *d, char **argv, int argc)
{
    static const char *const modes[] = {"none", "use_another", "moved"};
    for (int i = 0; argc == 1 && i < 3; i++) {
        if (strcmp(argv[0], modes[i]) == 0) {
            p->c->server_redirect = i;
            return 0;
        }
    }
    return perr(p, "server_redirect: expected none, use_another or moved");
}

static int h_shared_policy(struct parse_ctx *p, const struct conf_directive *d, char **argv,
                           int argc)
{
    static const char *const names[] = {"round_robin", "random", "hash_topic"};
    for (int i = 0; argc == 1 && i < 3; i++) {
        if (strcmp(argv[0], names[i]) == 0) {
            p->c->shared_policy = i;
            return 0;
        }
    }
    return perr(p, "shared_subscription_policy: expected round_robin, random or hash_topic");
}

/* ---- the parser ---- */

static const struct conf_directive *lookup(const char *name)
{
    for (size_t i = 0; i < conf_directive_count; i++)
        if (strcmp(conf_directives[i].name, name) == 0)
            return &conf_directives[i];
    return NULL;
}

static conf_handler special_of(const char *name)
{
    for (size_t i = 0; i < sizeof specials / sizeof specials[0]; i++)
        if (strcmp(specials[i].name, name) == 0)
            return specials[i].fn;
    return NULL;
}

#define MAX_ARGS 8
#define MAX_LINE 4096

/* Splits line (modified in place) into words; returns the count or -1 when too many. */
static int split(char *line, char **argv)
{
    int argc = 0;
    char *s = line;
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\r')
            s++;
        if (!*s)
            return argc;
        if (argc == MAX_ARGS)
            return -1;
        argv[argc++] = s;
        while (*s && *s != ' ' && *s != '\t' && *s != '\r')
            s++;
        if (*s)
            *s++ = '\0';
    }
}

static int parse_line(struct parse_ctx *p, char *line)
{
    char *argv[MAX_ARGS];
    int argc = split(line, argv);
    if (argc < 0)
        return perr(p, "too many words on one line");
    if (argc == 0 || argv[0][0] == '#')
        return 0;
    const struct conf_directive *d = lookup(argv[0]);
    if (!d)
        return perr(p, "unknown directive '%s' (see ternd --help-config)", argv[0]);
    if (d->type == CONF_SPECIAL)
        return special_of(d->name)(p, d, argv + 1, argc - 1);
    if (argc != 2)
        return perr(p, "%s: expected exactly one value", d->name);
    return set_value(p, d, argv[1]);
}

static int parse_text(struct parse_ctx *p, const char *text)
{
    char line[MAX_LINE + 1];
    const char *s = text;
    p->line = 0;
    while (*s) {
        p->line++;
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n > MAX_LINE)
            return perr(p, "line longer than %d bytes", MAX_LINE);
        memcpy(line, s, n);
        line[n] = '\0';
        if (memchr(s, '\0', n))
            return perr(p, "NUL byte in line");
        int rc = parse_line(p, line);
        if (rc)
            return rc;
        s = e ? e + 1 : s + n;
    }
    return 0;
}

int conf_load_string(struct mem *mem, struct config *c, const char *name, const char *text,
                     char *err, size_t errlen)
{
    struct parse_ctx p = {mem, c, name, 0, err, errlen, false, false, false};
    if (err && errlen)
        err[0] = '\0';
    int rc = parse_text(&p, text);
    if (rc)
        return rc;
    /* "port N" / listener settings before any `listener` create listener 0 without a bind
     * address; like the embedded default it is on localhost. An explicit `listener PORT`
     * without an address keeps NULL: all addresses. */
    struct conf_listener *l0 = &c->listeners[0];
    if (p.implicit_listener && c->n_listeners == 1 && !l0->bind_address && l0->port == 1883 &&
        !l0->mount_point) {
        l0->bind_address = mem_strndup(mem, MEM_CONFIG, "127.0.0.1", 9);
        if (!l0->bind_address)
            return perr(&p, "out of memory");
    }
    return 0;
}

int conf_load_file(struct mem *mem, struct config *c, const char *path, char *err, size_t errlen)
{
    char *text;
    int rc = file_read_text(mem, MEM_CONFIG, path, 64u << 20, &text, err, errlen);
    if (rc)
        return TERN_EINVAL; /* callers report err; every failure is a configuration error */
    rc = conf_load_string(mem, c, path, text, err, errlen);
    mem_free(mem, MEM_CONFIG, text);
    return rc;
}

void conf_defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    char scratch[8];
    struct parse_ctx p = {NULL, c, "defaults", 0, scratch, sizeof scratch, false, false, false};
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (!d->def || d->per_listener || d->type == CONF_STRING || d->type == CONF_SPECIAL)
            continue;
        (void)set_value(&p, d, d->def);
    }
    c->max_connections = -1;
    c->allow_anonymous = -1;
    c->persistent_client_expiration = 14LL * 86400;
    c->log_dest = LOG_DEST_STDERR;
    c->log_type = LOG_ERR | LOG_WARN | LOG_NOTICE | LOG_INFO;
    c->auto_id_prefix = NULL; /* NULL means the documented default "auto-" */
}

void conf_finish(struct mem *mem, struct config *c)
{
    if (c->n_listeners == 0) {
        c->n_listeners = 1;
        memset(&c->listeners[0], 0, sizeof c->listeners[0]);
        c->listeners[0].port = 1883;
        c->listeners[0].allow_anonymous = -1;
        c->listeners[0].max_connections = -1;
        /* the embedded default is localhost (an implicit listener 0 got it at parse time;
         * an explicit `listener 1883` without an address means all addresses) */
        c->listeners[0].bind_address = mem_strndup(mem, MEM_CONFIG, "127.0.0.1", 9);
    }
}

void conf_free(struct mem *mem, struct config *c)
{
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (d->type != CONF_STRING || d->per_listener)
            continue;
        char **s = (char **)((char *)c + d->offset);
        mem_free(mem, MEM_CONFIG, *s);
        *s = NULL;
    }
    mem_free(mem, MEM_CONFIG, c->log_file);
    c->log_file = NULL;
    for (int i = 0; i < CONF_MAX_LISTENERS; i++) {
        struct conf_listener *l = &c->listeners[i];
        mem_free(mem, MEM_CONFIG, l->bind_address);
        mem_free(mem, MEM_CONFIG, l->mount_point);
        mem_free(mem, MEM_CONFIG, l->certfile);
        mem_free(mem, MEM_CONFIG, l->keyfile);
        mem_free(mem, MEM_CONFIG, l->cafile);
        mem_free(mem, MEM_CONFIG, l->capath);
        mem_free(mem, MEM_CONFIG, l->crlfile);
        mem_free(mem, MEM_CONFIG, l->tls_version);
        mem_free(mem, MEM_CONFIG, l->ciphers);
        mem_free(mem, MEM_CONFIG, l->ciphersuites);
        memset(l, 0, sizeof *l);
    }
    c->n_listeners = 0;
}

void conf_apply_reloadable(struct mem *mem, struct config *dst, struct config *src)
{
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (!d->reloadable || d->per_listener)
            continue;
        char *a = (char *)dst + d->offset, *b = (char *)src + d->offset;
        switch (d->type) {
        case CONF_INT: memcpy(a, b, sizeof(int)); break;
        case CONF_LLONG: memcpy(a, b, sizeof(long long)); break;
        case CONF_BOOL: memcpy(a, b, sizeof(bool)); break;
        case CONF_STRING:
            mem_free(mem, MEM_CONFIG, *(char **)a);
            *(char **)a = *(char **)b;
            *(char **)b = NULL;
            break;
        case CONF_SPECIAL: break;
        }
    }
    dst->server_redirect = src->server_redirect; /* reloadable CONF_SPECIAL rows */
    dst->shared_policy = src->shared_policy;
    dst->max_connections = src->max_connections;
    dst->allow_anonymous = src->allow_anonymous;
    dst->persistent_client_expiration = src->persistent_client_expiration;
    dst->log_dest = src->log_dest;
    dst->log_type = src->log_type;
    mem_free(mem, MEM_CONFIG, dst->log_file);
    dst->log_file = src->log_file;
    src->log_file = NULL;
}

static const char *type_name(enum conf_type t)
{
    switch (t) {
    case CONF_INT:
    case CONF_LLONG: return "number";
    case CONF_BOOL: return "true/false"; /* no '|': it would split the Markdown cell */
    case CONF_STRING: return "string";
    case CONF_SPECIAL: return "see text";
    }
    return "?";
}

void conf_print_help(FILE *f)
{
    fprintf(f,
            "# ternd configuration directives (Mosquitto syntax: one `name value` per line)\n\n");
    fprintf(f, "| directive | type | default | range | reload | scope | description |\n");
    fprintf(f, "| --- | --- | --- | --- | --- | --- | --- |\n");
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        char range[64] = "";
        if ((d->type == CONF_INT || d->type == CONF_LLONG || d->type == CONF_SPECIAL) &&
            (d->min || d->max))
            snprintf(range, sizeof range, "%lld..%lld", d->min, d->max);
        fprintf(f, "| `%s` | %s | %s | %s | %s | %s | ", d->name, type_name(d->type),
                d->def ? d->def : "-", range, d->reloadable ? "SIGHUP" : "restart",
                d->per_listener ? "listener" : "global");
        /* docs such as "stderr | stdout" must not split the Markdown table cell */
        for (const char *c = d->doc; *c; c++) {
            if (*c == '|')
                fputc('\\', f);
            fputc(*c, f);
        }
        fputs(" |\n", f);
    }
}

static bool is_loopback(const char *a)
{
    if (!a || !*a)
        return false;
    return strcmp(a, "localhost") == 0 || strcmp(a, "::1") == 0 || strncmp(a, "127.", 4) == 0;
}

bool conf_listener_anonymous(const struct config *c, int i)
{
    const struct conf_listener *l = &c->listeners[i];
    if (l->allow_anonymous >= 0)
        return l->allow_anonymous != 0;
    if (c->allow_anonymous >= 0)
        return c->allow_anonymous != 0;
    return is_loopback(l->bind_address);
}
