/* config.c - the directive table and the Mosquitto-syntax parser (see config.h).
 *
 * Every directive is one row of conf_directives[] (nginx ngx_command_t, Redis standardConfig):
 * the parser, conf_defaults (which feeds each row's `def` text through the parser), bounds
 * checks, conf_apply_reloadable, conf_free and `ternd --help-config` (docs/CONFIG.md) all walk
 * these rows. Rows whose value is not one plain number/boolean/string carry a handler.
 *
 * Syntax (Mosquitto's): one `name value...` per line, at most CONF_MAX_LINE bytes; blank lines
 * and lines whose first non-blank character is '#' are ignored; blanks are space, tab, CR, VT,
 * FF. A string value is the rest of the line (paths may contain spaces); numbers, booleans and
 * keywords are single words. A later value replaces an earlier one, except log_dest/log_type,
 * which accumulate.
 *
 * Listeners: `listener PORT [ADDRESS]` opens a listener; per-listener directives after it apply
 * to it. A per-listener directive (or `port`) before any `listener` creates listener 0, the
 * "default listener", on 127.0.0.1:1883 unless `port`/`bind_address` say otherwise (Mosquitto
 * binds its default listener to all addresses; Tern stays on loopback unless told).
 *
 * Ownership: strings are NULL, heap (MEM_CONFIG, owned by the struct config) or the row's static
 * `def` text / the static default bind address; owned_string() tells them apart. Nothing here
 * keeps state between calls: the parse state is a struct conf_parse on the caller's stack. */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/file.h"
#include "common/log.h"

#define CONF_MAX_LINE  4096       /* bytes per line, without the newline */
#define CONF_MAX_WORDS 16         /* words in one value (log_type levels) */
#define CONF_MAX_FILE  (16 << 20) /* a configuration file larger than this is a mistake */
#define DEFAULT_PORT   1883
#define DEFAULT_BIND   "127.0.0.1"

/* The default listener's address: static, so conf_finish cannot fail (an allocation failure
 * there must not leave the listener bound to all addresses). */
static const char default_bind[] = DEFAULT_BIND;

struct conf_parse {
    struct mem *mem; /* NULL while applying defaults (defaults allocate nothing) */
    struct config *c;
    const char *name; /* file name for messages */
    int line;
    char *err;
    size_t errlen;
    bool defaults;          /* applying `def` texts: string rows take the static text */
    bool log_dest_seen;     /* the first log_dest of a parse replaces the default */
    bool log_type_seen;     /* same for log_type */
    bool implicit_listener; /* listener 0 was created by `port` or a listener setting */
};

/* ---- field offsets, checked against the field's type at compile time ---- */

/* offsetof(S, f), or a compile error (negative array size) when S.f is not of type T: a row
 * declaring CONF_INT must not point at a bool. */
#define TYPED_OFFSET(S, f, T)                                                                      \
    (offsetof(S, f) +                                                                              \
     0 * sizeof(char[__builtin_types_compatible_p(__typeof__(((S *)0)->f), T) ? 1 : -1]))
#define G_INT(f)  TYPED_OFFSET(struct config, f, int)
#define G_LL(f)   TYPED_OFFSET(struct config, f, long long)
#define G_BOOL(f) TYPED_OFFSET(struct config, f, bool)
#define G_STR(f)  TYPED_OFFSET(struct config, f, char *)
#define L_INT(f)  TYPED_OFFSET(struct conf_listener, f, int)
#define L_BOOL(f) TYPED_OFFSET(struct conf_listener, f, bool)
#define L_STR(f)  TYPED_OFFSET(struct conf_listener, f, char *)
#define NOLIMIT   0, 0
#define GLOBAL    false
#define LISTENER  true
#define RELOAD    true
#define RESTART   false

static int h_listener(struct conf_parse *p, const struct conf_directive *d, char *value);
static int h_port(struct conf_parse *p, const struct conf_directive *d, char *value);
static int h_protocol(struct conf_parse *p, const struct conf_directive *d, char *value);
static int h_max_connections(struct conf_parse *p, const struct conf_directive *d, char *value);
static int h_allow_anonymous(struct conf_parse *p, const struct conf_directive *d, char *value);
static int h_duration(struct conf_parse *p, const struct conf_directive *d, char *value);
static int h_log_dest(struct conf_parse *p, const struct conf_directive *d, char *value);
static int h_log_type(struct conf_parse *p, const struct conf_directive *d, char *value);
static int h_redirect(struct conf_parse *p, const struct conf_directive *d, char *value);
static int h_shared_policy(struct conf_parse *p, const struct conf_directive *d, char *value);

/* clang-format off */
const struct conf_directive conf_directives[] = {
    /* listeners */
    {"listener", CONF_SPECIAL, GLOBAL, 0, 0, 65535, "1883 " DEFAULT_BIND, RESTART,
     "listener PORT [ADDRESS]: open a listener (no ADDRESS: all addresses; PORT 0: any free "
     "port); the per-listener directives after it apply to it. The default is used only when the "
     "file has none", h_listener},
    {"port", CONF_SPECIAL, GLOBAL, 0, 0, 65535, "1883", RESTART,
     "port of the default listener (deprecated in Mosquitto; prefer listener); an error when a "
     "listener line comes before any port or per-listener directive", h_port},
    {"bind_address", CONF_STRING, LISTENER, L_STR(bind_address), NOLIMIT, NULL, RESTART,
     "address of the current listener; the default listener uses " DEFAULT_BIND, NULL},
    {"protocol", CONF_INT, LISTENER, L_INT(protocol), NOLIMIT, "mqtt", RESTART,
     "mqtt or websockets: protocol of the current listener (websockets is refused: not "
     "supported yet)", h_protocol},
    {"mount_point", CONF_STRING, LISTENER, L_STR(mount_point), NOLIMIT, NULL, RESTART,
     "topic prefix for clients of the current listener (parsed; not applied by the broker yet)",
     NULL},
    {"certfile", CONF_STRING, LISTENER, L_STR(certfile), NOLIMIT, NULL, RESTART,
     "PEM certificate (chain) of the current listener; with keyfile, makes it a TLS listener "
     "(the files are read again on SIGHUP for new connections)", NULL},
    {"keyfile", CONF_STRING, LISTENER, L_STR(keyfile), NOLIMIT, NULL, RESTART,
     "PEM private key of the current TLS listener", NULL},
    {"cafile", CONF_STRING, LISTENER, L_STR(cafile), NOLIMIT, NULL, RESTART,
     "PEM CA certificates that sign client certificates", NULL},
    {"capath", CONF_STRING, LISTENER, L_STR(capath), NOLIMIT, NULL, RESTART,
     "directory of hashed CA certificates (c_rehash) for client certificates", NULL},
    {"crlfile", CONF_STRING, LISTENER, L_STR(crlfile), NOLIMIT, NULL, RESTART,
     "PEM certificate revocation list checked against client certificates", NULL},
    {"tls_version", CONF_STRING, LISTENER, L_STR(tls_version), NOLIMIT, "tlsv1.2", RESTART,
     "lowest TLS version accepted: tlsv1.2 or tlsv1.3", NULL},
    {"ciphers", CONF_STRING, LISTENER, L_STR(ciphers), NOLIMIT, NULL, RESTART,
     "OpenSSL cipher list for TLS 1.2", NULL},
    {"ciphersuites", CONF_STRING, LISTENER, L_STR(ciphersuites), NOLIMIT, NULL, RESTART,
     "OpenSSL TLS 1.3 cipher suites", NULL},
    {"require_certificate", CONF_BOOL, LISTENER, L_BOOL(require_certificate), NOLIMIT, "false",
     RESTART, "TLS clients must present a certificate signed by cafile/capath (mTLS)", NULL},
    {"use_identity_as_username", CONF_BOOL, LISTENER, L_BOOL(use_identity_as_username), NOLIMIT,
     "false", RESTART,
     "use the client certificate's CN (or first DNS SAN) as the user name (for ACLs); such "
     "clients need no password", NULL},
    {"max_connections", CONF_INT, GLOBAL, G_INT(max_connections), -1, 100000000, "-1", RELOAD,
     "client connections: for the whole broker before any listener, for the current listener "
     "after one (as Mosquitto); -1 = unlimited (bounded by the file descriptor limit)",
     h_max_connections},
    {"allow_anonymous", CONF_INT, GLOBAL, G_INT(allow_anonymous), NOLIMIT, NULL, RELOAD,
     "true or false: allow clients without a user name; global before any listener, for the "
     "current listener after one. Not set: only listeners bound to a loopback address allow them",
     h_allow_anonymous},
    /* broker */
    {"threads", CONF_INT, GLOBAL, G_INT(threads), 0, 1024, "0", RESTART,
     "I/O threads (event loops); 0 = number of CPU cores", NULL},
    {"max_inflight_messages", CONF_INT, GLOBAL, G_INT(max_inflight_messages), 1, 65535, "20",
     RELOAD, "outgoing QoS 1/2 messages in flight per client", NULL},
    {"max_inflight_bytes", CONF_LLONG, GLOBAL, G_LL(max_inflight_bytes), 0, 1LL << 40, "0", RELOAD,
     "outgoing QoS 1/2 bytes in flight per client; 0 = unlimited (parsed; not applied by the "
     "broker yet)", NULL},
    {"max_queued_messages", CONF_INT, GLOBAL, G_INT(max_queued_messages), 0, 100000000, "1000",
     RELOAD, "messages queued per client beyond the inflight window or while offline; "
     "0 = unlimited", NULL},
    {"max_queued_bytes", CONF_LLONG, GLOBAL, G_LL(max_queued_bytes), 0, 1LL << 40, "0", RELOAD,
     "bytes queued per client; 0 = unlimited", NULL},
    {"queue_qos0_messages", CONF_BOOL, GLOBAL, G_BOOL(queue_qos0_messages), NOLIMIT, "false",
     RELOAD, "queue QoS 0 messages for offline persistent clients", NULL},
    {"message_size_limit", CONF_LLONG, GLOBAL, G_LL(message_size_limit), 0, 268435455, "0",
     RELOAD, "largest PUBLISH payload accepted (bytes); 0 = protocol maximum", NULL},
    {"max_packet_size", CONF_LLONG, GLOBAL, G_LL(max_packet_size), 0, 268435460, "0", RELOAD,
     "largest incoming packet (bytes), checked from the fixed header; 0 = protocol maximum", NULL},
    {"allow_zero_length_clientid", CONF_BOOL, GLOBAL, G_BOOL(allow_zero_length_clientid), NOLIMIT,
     "true", RELOAD, "accept an empty client id (with clean session) and assign one", NULL},
    {"auto_id_prefix", CONF_STRING, GLOBAL, G_STR(auto_id_prefix), NOLIMIT, "auto-", RELOAD,
     "prefix of assigned client ids", NULL},
    {"persistent_client_expiration", CONF_LLONG, GLOBAL, G_LL(persistent_client_expiration), 0,
     1LL << 40, "14d", RELOAD,
     "remove persistent sessions offline this long: seconds, or N followed by h (hours), d "
     "(days), w (weeks), m (30 days) or y (365 days); 0 = never", h_duration},
    {"sys_interval", CONF_INT, GLOBAL, G_INT(sys_interval), 0, 86400, "10", RELOAD,
     "seconds between $SYS/broker updates; 0 = none", NULL},
    {"max_keepalive", CONF_INT, GLOBAL, G_INT(max_keepalive), 0, 65535, "65535", RELOAD,
     "largest keep-alive granted to v5 clients (Server Keep Alive)", NULL},
    {"connect_timeout", CONF_INT, GLOBAL, G_INT(connect_timeout), 1, 3600, "10", RELOAD,
     "seconds a new connection may take to send CONNECT", NULL},
    {"retain_available", CONF_BOOL, GLOBAL, G_BOOL(retain_available), NOLIMIT, "true", RELOAD,
     "accept retained messages", NULL},
    {"max_qos", CONF_INT, GLOBAL, G_INT(max_qos), 0, 2, "2", RELOAD, "highest QoS granted", NULL},
    {"set_tcp_nodelay", CONF_BOOL, GLOBAL, G_BOOL(set_tcp_nodelay), NOLIMIT, "true", RESTART,
     "disable Nagle on client sockets (low latency)", NULL},
    {"password_file", CONF_STRING, GLOBAL, G_STR(password_file), NOLIMIT, NULL, RELOAD,
     "mosquitto_passwd-compatible password file (tern passwd writes it); read again on SIGHUP",
     NULL},
    {"acl_file", CONF_STRING, GLOBAL, G_STR(acl_file), NOLIMIT, NULL, RELOAD,
     "Mosquitto-format ACL file; read again on SIGHUP", NULL},
    {"persistence", CONF_BOOL, GLOBAL, G_BOOL(persistence), NOLIMIT, "false", RESTART,
     "durable sessions and retained messages (parsed; not supported by the broker yet)", NULL},
    {"persistence_location", CONF_STRING, GLOBAL, G_STR(persistence_location), NOLIMIT, NULL,
     RESTART, "directory of the durable store (parsed; not supported by the broker yet)", NULL},
    {"pid_file", CONF_STRING, GLOBAL, G_STR(pid_file), NOLIMIT, NULL, RESTART,
     "write the process id to this file", NULL},
    /* MQTT 5.0 */
    {"max_topic_alias", CONF_INT, GLOBAL, G_INT(max_topic_alias), 0, 65535, "10", RESTART,
     "Topic Alias Maximum offered to v5 clients (client-to-server aliases); 0 = none", NULL},
    {"topic_alias_out", CONF_BOOL, GLOBAL, G_BOOL(topic_alias_out), NOLIMIT, "true", RESTART,
     "use server-to-client topic aliases, up to the client's Topic Alias Maximum", NULL},
    {"receive_maximum", CONF_INT, GLOBAL, G_INT(receive_maximum), 1, 65535, "65535", RESTART,
     "Receive Maximum offered to v5 clients: unreleased incoming QoS 2 messages; more is "
     "disconnected with 0x93", NULL},
    {"response_info_prefix", CONF_STRING, GLOBAL, G_STR(response_info_prefix), NOLIMIT,
     "responses/", RELOAD,
     "Response Information sent to v5 clients that request it (followed by the client id)", NULL},
    {"check_payload_format", CONF_BOOL, GLOBAL, G_BOOL(check_payload_format), NOLIMIT, "true",
     RELOAD, "refuse (0x99) v5 messages whose Payload Format Indicator says UTF-8 but are not",
     NULL},
    {"server_reference", CONF_STRING, GLOBAL, G_STR(server_reference), NOLIMIT, NULL, RELOAD,
     "Server Reference sent with server_redirect", NULL},
    {"server_redirect", CONF_INT, GLOBAL, G_INT(server_redirect), NOLIMIT, "none", RELOAD,
     "none, use_another (CONNACK 0x9C) or moved (0x9D): redirect v5 clients to "
     "server_reference; v3 clients get CONNACK 3", h_redirect},
    {"shared_subscription_policy", CONF_INT, GLOBAL, G_INT(shared_policy), NOLIMIT, "round_robin",
     RELOAD, "round_robin, random or hash_topic (one member per topic, keeping per-topic order): "
     "how a shared subscription group picks the member for each message", h_shared_policy},
    /* quotas and flood protection */
    {"max_connections_per_ip", CONF_INT, GLOBAL, G_INT(max_connections_per_ip), 0, 100000000, "0",
     RELOAD, "open connections from one IP address; 0 = unlimited", NULL},
    {"connection_rate_per_ip", CONF_INT, GLOBAL, G_INT(connection_rate_per_ip), 0, 100000000, "0",
     RELOAD, "new connections per second from one IP address (more are closed at once); "
     "0 = unlimited", NULL},
    {"max_subscriptions_per_client", CONF_INT, GLOBAL, G_INT(max_subscriptions_per_client), 0,
     100000000, "10000", RELOAD,
     "subscriptions one session may hold (SUBACK 0x80/0x97 beyond); 0 = unlimited", NULL},
    {"max_topic_length", CONF_INT, GLOBAL, G_INT(max_topic_length), 1, 65535, "65535", RELOAD,
     "longest topic name or filter accepted (bytes)", NULL},
    {"max_topic_levels", CONF_INT, GLOBAL, G_INT(max_topic_levels), 1, 65535, "128", RELOAD,
     "most levels in a topic name or filter", NULL},
    {"publish_rate_messages", CONF_INT, GLOBAL, G_INT(publish_rate_messages), 0, 100000000, "0",
     RELOAD, "PUBLISH packets per second per client (token bucket, burst of one second); v5 over "
     "it gets 0x96, v3 is disconnected; 0 = unlimited", NULL},
    {"publish_rate_bytes", CONF_LLONG, GLOBAL, G_LL(publish_rate_bytes), 0, 1LL << 40, "0", RELOAD,
     "PUBLISH payload bytes per second per client (token bucket); 0 = unlimited", NULL},
    {"max_retained_messages", CONF_INT, GLOBAL, G_INT(max_retained_messages), 0, 100000000, "0",
     RELOAD, "retained messages stored; new retained topics beyond are refused (v5 0x97); "
     "0 = unlimited", NULL},
    {"max_retained_bytes", CONF_LLONG, GLOBAL, G_LL(max_retained_bytes), 0, 1LL << 40, "0", RELOAD,
     "bytes of retained messages stored; 0 = unlimited", NULL},
    {"memory_limit", CONF_LLONG, GLOBAL, G_LL(memory_limit), 0, 1LL << 50, "0", RELOAD,
     "broker heap bytes above which new publishes are refused (v5 0x97, v3 dropped) rather than "
     "the broker dying; 0 = none", NULL},
    /* logging */
    {"log_dest", CONF_INT, GLOBAL, G_INT(log_dest), NOLIMIT, "stderr", RELOAD,
     "stderr, stdout, file PATH, syslog or none; repeat to log to several (the first one "
     "replaces the default)", h_log_dest},
    {"log_type", CONF_INT, GLOBAL, G_INT(log_type), NOLIMIT, "error warning notice information",
     RELOAD, "error, warning, notice, information, debug, subscribe, unsubscribe, all or none; "
     "several per line and repeatable (the first one replaces the default)", h_log_type},
    {"log_timestamp", CONF_BOOL, GLOBAL, G_BOOL(log_timestamp), NOLIMIT, "true", RELOAD,
     "prefix log lines with an ISO 8601 UTC timestamp", NULL},
};
/* clang-format on */
const size_t conf_directive_count = sizeof conf_directives / sizeof conf_directives[0];

/* ---- messages and small helpers ---- */

/* The row named name, or NULL. */
static const struct conf_directive *lookup(const char *name)
{
    for (size_t i = 0; i < conf_directive_count; i++)
        if (strcmp(conf_directives[i].name, name) == 0)
            return &conf_directives[i];
    return NULL;
}

/* Writes "FILE:LINE: message" into p->err (truncated to fit) and returns TERN_EINVAL. */
static int perr(struct conf_parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct conf_parse *p, const char *fmt, ...)
{
    if (!p->err || !p->errlen)
        return TERN_EINVAL;
    int n = snprintf(p->err, p->errlen, "%s:%d: ", p->name, p->line);
    if (n < 0 || (size_t)n >= p->errlen)
        return TERN_EINVAL;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return TERN_EINVAL;
}

static int enomem(struct conf_parse *p)
{
    (void)perr(p, "out of memory");
    return TERN_ENOMEM;
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* Trims blanks at both ends of s (in place); returns the first non-blank character. */
static char *trim(char *s)
{
    while (is_blank(*s))
        s++;
    size_t n = strlen(s);
    while (n && is_blank(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Splits s (modified in place) into at most max words. Returns the count, or max + 1 when there
 * are more (argv then holds the first max). */
static int split_words(char *s, char **argv, int max)
{
    int argc = 0;
    for (;;) {
        while (is_blank(*s))
            s++;
        if (!*s)
            return argc;
        if (argc == max)
            return max + 1;
        argv[argc++] = s;
        while (*s && !is_blank(*s))
            s++;
        if (*s)
            *s++ = '\0';
    }
}

/* The single word of value in *word; an error naming d and `expected` when there is none or
 * more than one. */
static int one_word(struct conf_parse *p, const struct conf_directive *d, char *value,
                    const char *expected, char **word)
{
    char *argv[1];
    int argc = split_words(value, argv, 1);
    if (argc == 0)
        return perr(p, "%s: missing value (expected %s)", d->name, expected);
    if (argc > 1)
        return perr(p, "%s: too many values (expected one: %s)", d->name, expected);
    *word = argv[0];
    return 0;
}

/* Parses a whole decimal number; -1 when s is not one, -2 when it overflows long long. */
static int parse_ll(const char *s, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || is_blank(*s))
        return -1;
    if (errno == ERANGE)
        return -2;
    *out = v;
    return 0;
}

/* Parses word as a number within d's bounds, with the error message. */
static int number_in_range(struct conf_parse *p, const struct conf_directive *d, const char *word,
                           long long *out)
{
    int rc = parse_ll(word, out);
    if (rc == -1)
        return perr(p, "%s: '%s' is not a number (expected %lld..%lld)", d->name, word, d->min,
                    d->max);
    if (rc == -2 || *out < d->min || *out > d->max)
        return perr(p, "%s: %s is out of range (%lld..%lld)", d->name, word, d->min, d->max);
    return 0;
}

static int parse_bool(struct conf_parse *p, const struct conf_directive *d, const char *word,
                      bool *out)
{
    if (strcmp(word, "true") == 0)
        *out = true;
    else if (strcmp(word, "false") == 0)
        *out = false;
    else
        return perr(p, "%s: '%s' is not a boolean (expected true or false)", d->name, word);
    return 0;
}

/* True when s is heap memory owned by the config, false for NULL and the static defaults. */
static bool owned_string(const struct conf_directive *d, const char *s)
{
    return s && s != d->def && s != default_bind;
}

static void free_string(struct mem *mem, const struct conf_directive *d, char **s)
{
    if (owned_string(d, *s))
        mem_free(mem, MEM_CONFIG, *s);
    *s = NULL;
}

/* Replaces *dst (a string field of row d) with a copy of value; while applying defaults, with
 * the row's static default text instead (defaults allocate nothing). */
static int set_string(struct conf_parse *p, const struct conf_directive *d, char **dst,
                      const char *value)
{
    if (p->defaults) {
        *dst = (char *)d->def; /* static; owned_string() never frees it */
        return 0;
    }
    char *s = mem_strndup(p->mem, MEM_CONFIG, value, strlen(value));
    if (!s)
        return enomem(p);
    free_string(p->mem, d, dst);
    *dst = s;
    return 0;
}

/* ---- listeners ---- */

static int apply_text(struct conf_parse *p, const struct conf_directive *d, const char *text);

/* Appends a listener on port with the per-listener defaults; returns it, or NULL (message
 * written) when CONF_MAX_LISTENERS are already open. */
static struct conf_listener *listener_add(struct conf_parse *p, int port)
{
    struct config *c = p->c;
    if (c->n_listeners >= CONF_MAX_LISTENERS) {
        (void)perr(p, "listener: too many listeners (at most %d)", CONF_MAX_LISTENERS);
        return NULL;
    }
    struct conf_listener *l = &c->listeners[c->n_listeners++];
    memset(l, 0, sizeof *l);
    l->port = port;
    l->allow_anonymous = -1; /* not set: the global value or the loopback rule decides */
    l->max_connections = -1;
    struct conf_parse dp = {.c = c, .name = "defaults", .defaults = true};
    for (size_t i = 0; i < conf_directive_count; i++)
        if (conf_directives[i].per_listener && conf_directives[i].def)
            (void)apply_text(&dp, &conf_directives[i], conf_directives[i].def);
    return l;
}

/* The default listener (listener 0), created on first use by a directive before any
 * `listener`; NULL when listener 0 is an explicit `listener` (or a previous parse's). */
static struct conf_listener *default_listener(struct conf_parse *p)
{
    if (p->c->n_listeners == 0) {
        p->implicit_listener = true;
        return listener_add(p, DEFAULT_PORT); /* cannot fail: none open yet */
    }
    return p->implicit_listener ? &p->c->listeners[0] : NULL;
}

/* Address of row d's field: in c, or in the current listener for per-listener rows (the default
 * listener before any `listener` line). */
static void *field(struct conf_parse *p, const struct conf_directive *d)
{
    if (!d->per_listener)
        return (char *)p->c + d->offset;
    if (p->c->n_listeners == 0)
        (void)default_listener(p);
    return (char *)&p->c->listeners[p->c->n_listeners - 1] + d->offset;
}

/* ---- handlers of special rows ---- */

/* listener PORT [ADDRESS] */
static int h_listener(struct conf_parse *p, const struct conf_directive *d, char *value)
{
    char *argv[2];
    int argc = split_words(value, argv, 2);
    if (argc < 1 || argc > 2)
        return perr(p, "listener: expected PORT [ADDRESS] (PORT %lld..%lld)", d->min, d->max);
    long long port;
    int rc = number_in_range(p, d, argv[0], &port);
    if (rc)
        return rc;
    struct conf_listener *l = listener_add(p, (int)port);
    if (!l)
        return TERN_EINVAL;
    if (argc == 2)
        return set_string(p, lookup("bind_address"), &l->bind_address, argv[1]);
    return 0;
}

/* port N: the default listener's port. When the file opened its listeners with `listener` and
 * made no default listener, `port` would have to change one of them (or add a hidden one), so it
 * is refused there. */
static int h_port(struct conf_parse *p, const struct conf_directive *d, char *value)
{
    char *word = NULL;
    long long port;
    int rc = one_word(p, d, value, "a port number in 0..65535", &word);
    if (rc || (rc = number_in_range(p, d, word, &port)))
        return rc;
    struct conf_listener *l = default_listener(p);
    if (!l)
        return perr(p,
                    "port: sets the default listener, so it must come before the first "
                    "listener line (or write `listener %lld`)",
                    port);
    l->port = (int)port;
    return 0;
}

static int h_protocol(struct conf_parse *p, const struct conf_directive *d, char *value)
{
    char *word = NULL;
    int rc = one_word(p, d, value, "mqtt or websockets", &word);
    if (rc)
        return rc;
    if (strcmp(word, "websockets") == 0)
        return perr(p, "protocol: websockets is not supported yet (expected mqtt)");
    if (strcmp(word, "mqtt") != 0)
        return perr(p, "protocol: '%s' is not mqtt or websockets", word);
    *(int *)field(p, d) = CONF_PROTO_MQTT;
    return 0;
}

/* Stores v for a directive that is global before any listener and the current listener's after
 * one (Mosquitto without per_listener_settings does this for max_connections). */
static void store_scoped(struct conf_parse *p, const struct conf_directive *d,
                         size_t listener_offset, int v)
{
    char *base = (char *)p->c + d->offset;
    if (p->c->n_listeners > 0)
        base = (char *)&p->c->listeners[p->c->n_listeners - 1] + listener_offset;
    *(int *)base = v;
}

static int h_max_connections(struct conf_parse *p, const struct conf_directive *d, char *value)
{
    char *word = NULL;
    long long v = 0;
    int rc = one_word(p, d, value, "a number in -1..100000000", &word);
    if (rc || (rc = number_in_range(p, d, word, &v)))
        return rc;
    store_scoped(p, d, L_INT(max_connections), (int)v);
    return 0;
}

static int h_allow_anonymous(struct conf_parse *p, const struct conf_directive *d, char *value)
{
    char *word = NULL;
    bool v = false;
    int rc = one_word(p, d, value, "true or false", &word);
    if (rc || (rc = parse_bool(p, d, word, &v)))
        return rc;
    store_scoped(p, d, L_INT(allow_anonymous), v);
    return 0;
}

/* Mosquitto durations: N followed by h, d, w, m (30 days) or y (365 days); plain N is seconds. */
static int h_duration(struct conf_parse *p, const struct conf_directive *d, char *value)
{
    static const char expected[] = "seconds, or N followed by h, d, w, m or y";
    char *word = NULL;
    int rc = one_word(p, d, value, expected, &word);
    if (rc)
        return rc;
    size_t n = strlen(word);
    char unit = word[n - 1];
    long long mult = 1;
    switch (unit) {
    case 'h': mult = 3600; break;
    case 'd': mult = 86400; break;
    case 'w': mult = 7 * 86400; break;
    case 'm': mult = 30 * 86400; break;
    case 'y': mult = 365 * 86400; break;
    default: break;
    }
    if (mult != 1)
        word[n - 1] = '\0'; /* cut the unit off, parse the number, put it back for messages */
    long long v = 0;
    rc = parse_ll(word, &v);
    word[n - 1] = unit;
    if (rc == -1 || (rc == 0 && v < 0))
        return perr(p, "%s: '%s' is not a duration (expected %s)", d->name, word, expected);
    if (rc == -2 || v > d->max / mult)
        return perr(p, "%s: %s is out of range (%lld..%lld seconds)", d->name, word, d->min,
                    d->max);
    *(long long *)field(p, d) = v * mult;
    return 0;
}

/* log_dest stderr|stdout|syslog|none, or log_dest file PATH (PATH: the rest of the line).
 * The first log_dest of a parse replaces the default; later ones add; `none` clears. */
static int h_log_dest(struct conf_parse *p, const struct conf_directive *d, char *value)
{
    static const char expected[] = "stderr, stdout, file PATH, syslog or none";
    static const struct {
        const char *word;
        int bit;
    } dests[] = {{"stderr", LOG_DEST_STDERR},
                 {"stdout", LOG_DEST_STDOUT},
                 {"syslog", LOG_DEST_SYSLOG},
                 {"none", LOG_DEST_NONE}};
    char *word = value;
    size_t n = strcspn(value, " \t\r\v\f");
    char *rest = trim(value + n);
    if (value[n])
        value[n] = '\0';
    if (!*word)
        return perr(p, "log_dest: missing value (expected %s)", expected);
    int bit = 0;
    if (strcmp(word, "file") == 0) {
        if (!*rest)
            return perr(p, "log_dest file: missing PATH");
        bit = LOG_DEST_FILE;
    }
    for (size_t i = 0; !bit && i < sizeof dests / sizeof dests[0]; i++)
        if (strcmp(word, dests[i].word) == 0)
            bit = dests[i].bit;
    if (!bit && (strcmp(word, "topic") == 0 || strcmp(word, "dlt") == 0))
        return perr(p, "log_dest: '%s' is not supported (expected %s)", word, expected);
    if (!bit)
        return perr(p, "log_dest: '%s' is not %s", word, expected);
    if (bit != LOG_DEST_FILE && *rest)
        return perr(p, "log_dest %s: unexpected value '%s' (expected %s)", word, rest, expected);
    int *dst = field(p, d);
    if (!p->log_dest_seen) {
        *dst = 0;
        p->log_dest_seen = true;
    }
    if (bit == LOG_DEST_FILE) {
        int rc = set_string(p, d, &p->c->log_file, rest);
        if (rc)
            return rc;
    }
    /* "none" then "stderr" logs to stderr only; "stderr" then "none" logs nowhere */
    *dst = bit == LOG_DEST_NONE ? LOG_DEST_NONE : (*dst & ~LOG_DEST_NONE) | bit;
    return 0;
}

/* log_type LEVEL...: levels (log_level_parse) accumulate; `none` clears what came before. */
static int h_log_type(struct conf_parse *p, const struct conf_directive *d, char *value)
{
    char *argv[CONF_MAX_WORDS];
    int argc = split_words(value, argv, CONF_MAX_WORDS);
    if (argc == 0)
        return perr(p, "log_type: missing value (expected error, warning, notice, information, "
                       "debug, subscribe, unsubscribe, all or none)");
    if (argc > CONF_MAX_WORDS)
        return perr(p, "log_type: too many values (at most %d per line)", CONF_MAX_WORDS);
    int bits[CONF_MAX_WORDS];
    for (int i = 0; i < argc; i++) /* all checked before anything changes */
        if ((bits[i] = log_level_parse(argv[i])) < 0)
            return perr(p,
                        "log_type: '%s' is not error, warning, notice, information, debug, "
                        "subscribe, unsubscribe, all or none",
                        argv[i]);
    int *dst = field(p, d);
    if (!p->log_type_seen) {
        *dst = 0;
        p->log_type_seen = true;
    }
    for (int i = 0; i < argc; i++)
        *dst = bits[i] ? *dst | bits[i] : 0;
    return 0;
}

/* Stores into d's int field the index of value in names[0..n), with the error message. */
static int keyword(struct conf_parse *p, const struct conf_directive *d, char *value,
                   const char *const *names, int n, const char *expected)
{
    char *word = NULL;
    int rc = one_word(p, d, value, expected, &word);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++) {
        if (strcmp(word, names[i]) == 0) {
            *(int *)field(p, d) = i;
            return 0;
        }
    }
    return perr(p, "%s: '%s' is not %s", d->name, word, expected);
}

static int h_redirect(struct conf_parse *p, const struct conf_directive *d, char *value)
{
    static const char *const names[] = {"none", "use_another", "moved"};
    return keyword(p, d, value, names, 3, "none, use_another or moved");
}

static int h_shared_policy(struct conf_parse *p, const struct conf_directive *d, char *value)
{
    static const char *const names[] = {"round_robin", "random", "hash_topic"};
    return keyword(p, d, value, names, 3, "round_robin, random or hash_topic");
}

/* ---- generic rows and the parser ---- */

/* Parses value (trimmed rest of the line, modifiable) for row d into the config. */
static int apply_value(struct conf_parse *p, const struct conf_directive *d, char *value)
{
    if (d->handler)
        return d->handler(p, d, value);
    if (d->type == CONF_STRING) {
        if (!*value)
            return perr(p, "%s: missing value (expected a string)", d->name);
        return set_string(p, d, (char **)field(p, d), value);
    }
    char expected[64];
    if (d->type == CONF_BOOL)
        snprintf(expected, sizeof expected, "true or false");
    else
        snprintf(expected, sizeof expected, "a number in %lld..%lld", d->min, d->max);
    char *word = NULL;
    int rc = one_word(p, d, value, expected, &word);
    if (rc)
        return rc;
    if (d->type == CONF_BOOL)
        return parse_bool(p, d, word, (bool *)field(p, d));
    long long v = 0;
    if ((rc = number_in_range(p, d, word, &v)))
        return rc;
    if (d->type == CONF_INT)
        *(int *)field(p, d) = (int)v; /* bounds of CONF_INT rows fit an int */
    else
        *(long long *)field(p, d) = v;
    return 0;
}

/* Applies a constant text (a row's `def`) through the parser. */
static int apply_text(struct conf_parse *p, const struct conf_directive *d, const char *text)
{
    char buf[128];
    size_t n = strlen(text);
    if (n >= sizeof buf)
        return perr(p, "%s: default text too long", d->name);
    memcpy(buf, text, n + 1);
    return apply_value(p, d, trim(buf));
}

/* One line (modified in place): blank, comment or `name value...`. */
static int parse_line(struct conf_parse *p, char *line)
{
    line = trim(line);
    if (!*line || *line == '#')
        return 0;
    size_t n = strcspn(line, " \t\r\v\f");
    char *value = line + n;
    if (*value)
        *value++ = '\0';
    value = trim(value);
    const struct conf_directive *d = lookup(line);
    if (!d)
        return perr(p, "unknown directive '%.64s' (ternd --help-config lists them)", line);
    return apply_value(p, d, value);
}

static int parse_text(struct conf_parse *p, const char *text)
{
    char line[CONF_MAX_LINE + 1];
    for (const char *s = text; *s;) {
        p->line++;
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n > CONF_MAX_LINE)
            return perr(p, "line longer than %d bytes", CONF_MAX_LINE);
        memcpy(line, s, n);
        line[n] = '\0';
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
    struct conf_parse p = {.mem = mem, .c = c, .name = name, .err = err, .errlen = errlen};
    if (err && errlen)
        err[0] = '\0';
    int rc = parse_text(&p, text);
    /* the default listener stays on loopback unless bind_address moved it (even after an
     * error: the caller may still look at c) */
    if (p.implicit_listener && !c->listeners[0].bind_address)
        c->listeners[0].bind_address = (char *)default_bind;
    return rc;
}

int conf_load_file(struct mem *mem, struct config *c, const char *path, char *err, size_t errlen)
{
    char *text;
    int rc = file_read_text(mem, MEM_CONFIG, path, CONF_MAX_FILE, &text, err, errlen);
    if (rc) /* err starts with the path; an unreadable file is a configuration error */
        return rc == TERN_ENOMEM ? TERN_ENOMEM : TERN_EINVAL;
    rc = conf_load_string(mem, c, path, text, err, errlen);
    mem_free(mem, MEM_CONFIG, text);
    return rc;
}

/* ---- defaults, finish, free, reload ---- */

void conf_defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    struct conf_parse p = {.c = c, .name = "defaults", .defaults = true};
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        /* per-listener defaults are applied by listener_add; listener/port by conf_finish */
        if (d->def && !d->per_listener && d->type != CONF_SPECIAL)
            (void)apply_text(&p, d, d->def); /* test_config checks every def text parses */
    }
    c->allow_anonymous = -1; /* no default text: "not set" lets the loopback rule decide */
}

void conf_finish(struct mem *mem, struct config *c)
{
    if (c->n_listeners > 0)
        return;
    struct conf_parse p = {.mem = mem, .c = c, .name = "defaults", .defaults = true};
    struct conf_listener *l = listener_add(&p, DEFAULT_PORT);
    l->bind_address = (char *)default_bind;
}

void conf_free(struct mem *mem, struct config *c)
{
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (d->type != CONF_STRING)
            continue;
        if (!d->per_listener) {
            free_string(mem, d, (char **)((char *)c + d->offset));
            continue;
        }
        for (int k = 0; k < CONF_MAX_LISTENERS; k++)
            free_string(mem, d, (char **)((char *)&c->listeners[k] + d->offset));
    }
    free_string(mem, lookup("log_dest"), &c->log_file); /* log_file belongs to log_dest */
    memset(c->listeners, 0, sizeof c->listeners);
    c->n_listeners = 0;
}

void conf_apply_reloadable(struct mem *mem, struct config *dst, struct config *src)
{
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (!d->reloadable || d->per_listener || d->type == CONF_SPECIAL)
            continue;
        char *a = (char *)dst + d->offset, *b = (char *)src + d->offset;
        switch (d->type) {
        case CONF_INT: memcpy(a, b, sizeof(int)); break;
        case CONF_LLONG: memcpy(a, b, sizeof(long long)); break;
        case CONF_BOOL: memcpy(a, b, sizeof(bool)); break;
        case CONF_STRING:
            free_string(mem, d, (char **)a);
            *(char **)a = *(char **)b; /* moved: src no longer owns it */
            *(char **)b = NULL;
            break;
        case CONF_SPECIAL: break;
        }
    }
    /* log_file is the PATH of the (reloadable) log_dest row */
    free_string(mem, lookup("log_dest"), &dst->log_file);
    dst->log_file = src->log_file;
    src->log_file = NULL;
}

/* ---- --help-config / docs/CONFIG.md ---- */

static const char *type_name(const struct conf_directive *d)
{
    if (d->handler)
        return "see text";
    switch (d->type) {
    case CONF_INT:
    case CONF_LLONG: return "number";
    case CONF_BOOL: return "true/false"; /* no '|': it would split the Markdown cell */
    case CONF_STRING: return "string";
    case CONF_SPECIAL: return "see text";
    }
    return "?";
}

/* Writes s with '|' escaped so that it stays in one Markdown table cell. */
static void put_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', f);
        fputc(*s, f);
    }
}

void conf_print_help(FILE *f)
{
    fputs("# ternd configuration directives\n\n"
          "Generated from the directive table in src/config/config.c by `ternd --help-config`;\n"
          "do not edit. tests/unit/test_config.c fails when this file differs; regenerate it "
          "with\n`TERN_UPDATE_DOCS=1 build/test_config` (or `ternd --help-config > "
          "docs/CONFIG.md`).\n\n"
          "Syntax (Mosquitto's): one `name value` per line; lines starting with `#` and blank "
          "lines\nare ignored; at most 4096 bytes per line. A string value is the rest of the "
          "line. Booleans\nare `true` or `false`. A later line replaces an earlier value, except "
          "`log_dest` and\n`log_type`, which accumulate. Scope `listener`: the directive applies "
          "to the listener opened\nby the last `listener` line; before any, to the default "
          "listener (127.0.0.1:1883 unless\n`port`/`bind_address` change it). Reload `SIGHUP`: "
          "a reload applies the new value; `restart`:\nonly a restart does.\n\n",
          f);
    fputs("| directive | type | default | range | reload | scope | description |\n", f);
    fputs("| --- | --- | --- | --- | --- | --- | --- |\n", f);
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        char range[64] = "";
        if (d->type != CONF_BOOL && d->type != CONF_STRING && (d->min || d->max))
            snprintf(range, sizeof range, "%lld..%lld", d->min, d->max);
        fprintf(f, "| `%s` | %s | %s | %s | %s | %s | ", d->name, type_name(d),
                d->def ? d->def : "-", range, d->reloadable ? "SIGHUP" : "restart",
                d->per_listener ? "listener" : "global");
        put_cell(f, d->doc);
        fputs(" |\n", f);
    }
}

/* ---- anonymous access ---- */

/* True for 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104 and "localhost" (the address a listener binds
 * to is a literal or a name; only these count as loopback, never a prefix such as "127.x.com"). */
static bool is_loopback(const char *a)
{
    if (!a)
        return false; /* all addresses */
    if (strcasecmp(a, "localhost") == 0)
        return true;
    unsigned char ip[16];
    if (inet_pton(AF_INET, a, ip) == 1)
        return ip[0] == 127;
    if (inet_pton(AF_INET6, a, ip) != 1)
        return false;
    static const unsigned char v6_loopback[16] = {[15] = 1};
    static const unsigned char v4_mapped[12] = {[10] = 0xff, [11] = 0xff};
    if (memcmp(ip, v6_loopback, 16) == 0)
        return true;
    return memcmp(ip, v4_mapped, 12) == 0 && ip[12] == 127;
}

bool conf_listener_anonymous(const struct config *c, int i)
{
    if (i < 0 || i >= c->n_listeners)
        return false;
    const struct conf_listener *l = &c->listeners[i];
    if (l->allow_anonymous >= 0)
        return l->allow_anonymous != 0;
    if (c->allow_anonymous >= 0)
        return c->allow_anonymous != 0;
    return is_loopback(l->bind_address);
}
