/* test_config.c - the directive table, the parser, listeners, reload and --help-config.
 *
 * Rows parsed generically (no handler) are tested by walking conf_directives[] itself, so a new
 * row is tested without editing this file; rows with a handler (and the CONF_SPECIAL listener
 * rows) each have a named test, and test_every_special_row_tested fails when a new one appears
 * without. Every row's default text must parse to what conf_defaults gives (test_def_texts).
 * docs/CONFIG.md must equal conf_print_help output; `TERN_UPDATE_DOCS=1 test_config` rewrites
 * it. Every test ends with conf_free and checks that mem_total is back to 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/log.h"
#include "config/config.h"
#include "unit.h"

struct fixture {
    struct mem m;
    struct config c;
    char err[256];
};

static void fx_init(struct fixture *fx)
{
    mem_init(&fx->m);
    conf_defaults(&fx->c);
    fx->err[0] = '\0';
}

/* Parses text into fx (which holds defaults or an earlier parse). */
static int load(struct fixture *fx, const char *text)
{
    return conf_load_string(&fx->m, &fx->c, "test.conf", text, fx->err, sizeof fx->err);
}

/* Frees fx and checks that every byte came back. */
static void fx_done(struct fixture *fx)
{
    conf_free(&fx->m, &fx->c);
    CHECK_MSG(mem_total(&fx->m) == 0, "%lld bytes left after conf_free", mem_total(&fx->m));
}

/* conf_free + conf_defaults: a fresh config on the same allocator. */
static void fx_reset(struct fixture *fx)
{
    conf_free(&fx->m, &fx->c);
    conf_defaults(&fx->c);
    fx->err[0] = '\0';
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool str_is(const char *s, const char *want)
{
    return s && strcmp(s, want) == 0;
}

static const struct conf_directive *row(const char *name)
{
    for (size_t i = 0; i < conf_directive_count; i++)
        if (strcmp(conf_directives[i].name, name) == 0)
            return &conf_directives[i];
    return NULL;
}

/* Address of d's field in c (per-listener rows: in the last listener). */
static void *field_of(struct config *c, const struct conf_directive *d)
{
    if (d->per_listener)
        return (char *)&c->listeners[c->n_listeners ? c->n_listeners - 1 : 0] + d->offset;
    return (char *)c + d->offset;
}

/* ---- defaults ---- */

static void test_defaults(void)
{
    struct fixture fx;
    fx_init(&fx);
    struct config *c = &fx.c;
    CHECK_EQ(c->n_listeners, 0);
    CHECK_EQ(c->threads, 0);
    CHECK_EQ(c->max_connections, -1);
    CHECK_EQ(c->max_inflight_messages, 20);
    CHECK_EQ(c->max_inflight_bytes, 0);
    CHECK_EQ(c->max_queued_messages, 1000);
    CHECK_EQ(c->max_queued_bytes, 0);
    CHECK_EQ(c->queue_qos0_messages, false);
    CHECK_EQ(c->message_size_limit, 0);
    CHECK_EQ(c->max_packet_size, 0);
    CHECK_EQ(c->allow_anonymous, -1);
    CHECK_EQ(c->allow_zero_length_clientid, true);
    CHECK(str_is(c->auto_id_prefix, "auto-"));
    CHECK_EQ(c->persistent_client_expiration, 14LL * 86400);
    CHECK_EQ(c->sys_interval, 10);
    CHECK_EQ(c->max_keepalive, 65535);
    CHECK_EQ(c->connect_timeout, 10);
    CHECK_EQ(c->retain_available, true);
    CHECK_EQ(c->max_qos, 2);
    CHECK_EQ(c->set_tcp_nodelay, true);
    CHECK(c->password_file == NULL && c->acl_file == NULL && c->pid_file == NULL);
    CHECK_EQ(c->persistence, false);
    CHECK(c->persistence_location == NULL);
    CHECK_EQ(c->log_dest, LOG_DEST_STDERR);
    CHECK_EQ(c->log_type, LOG_ERR | LOG_WARN | LOG_NOTICE | LOG_INFO);
    CHECK(c->log_file == NULL);
    CHECK_EQ(c->log_timestamp, true);
    CHECK_EQ(c->max_topic_alias, 10);
    CHECK_EQ(c->topic_alias_out, true);
    CHECK_EQ(c->receive_maximum, 65535);
    CHECK(str_is(c->response_info_prefix, "responses/"));
    CHECK_EQ(c->check_payload_format, true);
    CHECK(c->server_reference == NULL);
    CHECK_EQ(c->server_redirect, 0);
    CHECK_EQ(c->shared_policy, 0);
    CHECK_EQ(c->max_subscriptions_per_client, 10000);
    CHECK_EQ(c->max_topic_length, 65535);
    CHECK_EQ(c->max_topic_levels, 128);
    CHECK_EQ(c->memory_limit, 0);
    CHECK_EQ(mem_total(&fx.m), 0); /* defaults allocate nothing */

    /* empty text changes nothing; conf_finish adds 127.0.0.1:1883 */
    CHECK_EQ(load(&fx, ""), 0);
    CHECK_EQ(load(&fx, "\n\n# comment only\n   \n\t\n  # indented comment\n"), 0);
    CHECK_EQ(c->n_listeners, 0);
    conf_finish(&fx.m, c);
    CHECK_EQ(c->n_listeners, 1);
    CHECK_EQ(c->listeners[0].port, 1883);
    CHECK(str_is(c->listeners[0].bind_address, "127.0.0.1"));
    CHECK_EQ(c->listeners[0].allow_anonymous, -1);
    CHECK_EQ(c->listeners[0].max_connections, -1);
    CHECK_EQ(c->listeners[0].protocol, CONF_PROTO_MQTT);
    CHECK(str_is(c->listeners[0].tls_version, "tlsv1.2"));
    CHECK(c->listeners[0].certfile == NULL && c->listeners[0].mount_point == NULL);
    CHECK(!c->listeners[0].require_certificate && !c->listeners[0].use_identity_as_username);
    CHECK(conf_listener_anonymous(c, 0));
    CHECK_EQ(mem_total(&fx.m), 0); /* so does conf_finish */
    conf_finish(&fx.m, c);         /* idempotent */
    CHECK_EQ(c->n_listeners, 1);
    fx_done(&fx);
}

/* Every row's default text, parsed as a line of a file, gives what conf_defaults (or a new
 * listener) holds: the documented default is the applied one. */
static void test_def_texts(void)
{
    char text[256];
    struct fixture want; /* defaults, and one listener with the per-listener defaults */
    fx_init(&want);
    CHECK_EQ(conf_load_string(&want.m, &want.c, "w", "listener 1\n", want.err, sizeof want.err), 0);
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (!d->def || d->type == CONF_SPECIAL)
            continue;
        struct fixture fx;
        fx_init(&fx);
        /* global rows before any listener (max_connections after one is the listener's) */
        CHECK_EQ(load(&fx, d->per_listener ? "listener 1\n" : ""), 0);
        /* scribble over the field, then parse the default text */
        void *f = field_of(&fx.c, d);
        if (d->type == CONF_INT)
            *(int *)f = 12345;
        else if (d->type == CONF_LLONG)
            *(long long *)f = 12345;
        else if (d->type == CONF_BOOL)
            *(bool *)f = !*(bool *)field_of(&want.c, d);
        else
            *(char **)f = NULL; /* a static default: nothing to free */
        snprintf(text, sizeof text, "%s %s\n", d->name, d->def);
        CHECK_MSG(load(&fx, text) == 0, "default of %s does not parse: %s", d->name, fx.err);
        const void *g = field_of(&want.c, d);
        bool same = d->type == CONF_INT     ? *(int *)f == *(const int *)g
                    : d->type == CONF_LLONG ? *(long long *)f == *(const long long *)g
                    : d->type == CONF_BOOL  ? *(bool *)f == *(const bool *)g
                                            : str_is(*(char **)f, *(char *const *)g);
        CHECK_MSG(same, "%s: parsing its default text '%s' differs from conf_defaults", d->name,
                  d->def);
        fx_done(&fx);
    }
    /* rows without a default text start zero/NULL, except allow_anonymous (-1: not set) */
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (d->def || d->type == CONF_SPECIAL || d->offset == row("allow_anonymous")->offset)
            continue;
        const void *g = field_of(&want.c, d);
        bool zero = d->type == CONF_INT     ? *(const int *)g == 0
                    : d->type == CONF_LLONG ? *(const long long *)g == 0
                    : d->type == CONF_BOOL  ? !*(const bool *)g
                                            : *(char *const *)g == NULL;
        CHECK_MSG(zero, "%s has no default text but is not zero", d->name);
    }
    /* the listener row documents the default listener conf_finish adds */
    CHECK(str_is(row("listener")->def, "1883 127.0.0.1"));
    fx_done(&want);
}

/* ---- every generic table row ---- */

static void check_error(struct fixture *fx, const char *text, const char *prefix,
                        const char *contains)
{
    int rc = load(fx, text);
    CHECK_MSG(rc == TERN_EINVAL, "'%s' gave %d", text, rc);
    CHECK_MSG(starts_with(fx->err, prefix) && strstr(fx->err, contains),
              "'%s' gave message '%s' (want '%s...%s')", text, fx->err, prefix, contains);
}

static void test_numbers(const struct conf_directive *d, struct fixture *fx, const char *pre)
{
    char text[256], want[160];
    long long vals[] = {d->min, d->max, d->min + (d->max - d->min) / 2};
    for (int k = 0; k < 3; k++) {
        snprintf(text, sizeof text, "%s%s %lld\n", pre, d->name, vals[k]);
        CHECK_MSG(load(fx, text) == 0, "'%s': %s", text, fx->err);
        long long got =
            d->type == CONF_INT ? *(int *)field_of(&fx->c, d) : *(long long *)field_of(&fx->c, d);
        CHECK_MSG(got == vals[k], "%s: got %lld, want %lld", d->name, got, vals[k]);
        fx_reset(fx);
    }
    /* out of range on both sides: the exact message with FILE:LINE, name and range */
    snprintf(text, sizeof text, "\n%s %lld\n", d->name, d->min - 1);
    snprintf(want, sizeof want, "test.conf:2: %s: %lld is out of range (%lld..%lld)", d->name,
             d->min - 1, d->min, d->max);
    CHECK_EQ(load(fx, text), TERN_EINVAL);
    CHECK_MSG(strcmp(fx->err, want) == 0, "got '%s', want '%s'", fx->err, want);
    snprintf(text, sizeof text, "%s %lld\n", d->name, d->max + 1);
    snprintf(want, sizeof want, "test.conf:1: %s: %lld is out of range (%lld..%lld)", d->name,
             d->max + 1, d->min, d->max);
    CHECK_EQ(load(fx, text), TERN_EINVAL);
    CHECK_MSG(strcmp(fx->err, want) == 0, "got '%s', want '%s'", fx->err, want);
    snprintf(text, sizeof text, "%s 12abc\n", d->name);
    snprintf(want, sizeof want, "test.conf:1: %s: '12abc' is not a number (expected %lld..%lld)",
             d->name, d->min, d->max);
    CHECK_EQ(load(fx, text), TERN_EINVAL);
    CHECK_MSG(strcmp(fx->err, want) == 0, "got '%s', want '%s'", fx->err, want);
    snprintf(text, sizeof text, "%s 99999999999999999999\n", d->name);
    check_error(fx, text, "test.conf:1: ", "out of range");
    snprintf(text, sizeof text, "%s 1.5\n", d->name);
    check_error(fx, text, "test.conf:1: ", "not a number");
    snprintf(text, sizeof text, "%s 1 2\n", d->name);
    snprintf(want, sizeof want,
             "test.conf:1: %s: too many values (expected one: a number in "
             "%lld..%lld)",
             d->name, d->min, d->max);
    CHECK_EQ(load(fx, text), TERN_EINVAL);
    CHECK_MSG(strcmp(fx->err, want) == 0, "got '%s', want '%s'", fx->err, want);
}

static void test_every_generic_directive(void)
{
    char text[256], want[160];
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (d->handler || d->type == CONF_SPECIAL)
            continue;
        struct fixture fx;
        fx_init(&fx);
        const char *pre = d->per_listener ? "listener 1234\n" : "";
        switch (d->type) {
        case CONF_INT:
        case CONF_LLONG: test_numbers(d, &fx, pre); break;
        case CONF_BOOL:
            snprintf(text, sizeof text, "%s%s true\n", pre, d->name);
            CHECK(load(&fx, text) == 0 && *(bool *)field_of(&fx.c, d));
            snprintf(text, sizeof text, "%s false\n", d->name);
            CHECK(load(&fx, text) == 0 && !*(bool *)field_of(&fx.c, d));
            for (int k = 0; k < 4; k++) { /* Mosquitto takes true/false only */
                static const char *const bad[] = {"yes", "1", "TRUE", "on"};
                snprintf(text, sizeof text, "# x\n%s %s\n", d->name, bad[k]);
                snprintf(want, sizeof want,
                         "test.conf:2: %s: '%s' is not a boolean (expected true or false)", d->name,
                         bad[k]);
                CHECK_EQ(load(&fx, text), TERN_EINVAL);
                CHECK_MSG(strcmp(fx.err, want) == 0, "got '%s', want '%s'", fx.err, want);
            }
            snprintf(text, sizeof text, "%s true false\n", d->name);
            check_error(&fx, text,
                        "test.conf:1: ", "too many values (expected one: true or false)");
            break;
        case CONF_STRING:
            /* the second replaces (and frees) the first; the value is the rest of the line */
            snprintf(text, sizeof text, "%s%s first_%s\n\t%s   /some/value with spaces \r\n", pre,
                     d->name, d->name, d->name);
            CHECK_MSG(load(&fx, text) == 0, "%s", fx.err);
            CHECK_MSG(str_is(*(char **)field_of(&fx.c, d), "/some/value with spaces"), "%s",
                      d->name);
            break;
        case CONF_SPECIAL: break;
        }
        /* missing value */
        snprintf(text, sizeof text, "%s%s  \n", pre, d->name);
        snprintf(want, sizeof want, "test.conf:%d: %s: missing value (expected ", *pre ? 2 : 1,
                 d->name);
        CHECK_EQ(load(&fx, text), TERN_EINVAL);
        CHECK_MSG(starts_with(fx.err, want), "got '%s', want '%s...'", fx.err, want);
        fx_done(&fx);
    }
}

static const char *const special_rows[] = {
    "listener",        "port",
    "protocol",        "max_connections",
    "allow_anonymous", "persistent_client_expiration",
    "server_redirect", "log_dest",
    "log_type",        "shared_subscription_policy",
};

static void test_every_special_row_tested(void)
{
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (!d->handler && d->type != CONF_SPECIAL)
            continue;
        bool known = false;
        for (size_t k = 0; k < sizeof special_rows / sizeof special_rows[0]; k++)
            known = known || strcmp(special_rows[k], d->name) == 0;
        CHECK_MSG(known, "special directive '%s' has no test in test_config.c", d->name);
    }
    /* and the table's shape: unique names, a doc, bounds in order, CONF_INT bounds fit int */
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        CHECK_MSG(d->doc && *d->doc, "%s has no doc", d->name);
        CHECK_MSG(d->min <= d->max, "%s bounds", d->name);
        CHECK_MSG(d->type != CONF_INT || (d->min >= -2147483647 - 1 && d->max <= 2147483647),
                  "%s bounds do not fit an int", d->name);
        CHECK_MSG(d->type != CONF_SPECIAL || d->handler, "%s: special row without handler",
                  d->name);
        for (size_t k = 0; k < i; k++)
            CHECK_MSG(strcmp(conf_directives[k].name, d->name) != 0, "%s twice", d->name);
    }
}

/* ---- errors ---- */

struct ecase {
    const char *text;
    const char *message; /* the whole message */
};

static void test_errors(void)
{
    static const struct ecase cases[] = {
        {"nosuch 1\n", "test.conf:1: unknown directive 'nosuch' (ternd --help-config lists them)"},
        {"# c\n\nmax_qos 1\nfoo\n",
         "test.conf:4: unknown directive 'foo' (ternd --help-config lists them)"},
        {"MAX_QOS 1\n",
         "test.conf:1: unknown directive 'MAX_QOS' (ternd --help-config lists them)"},
        {"max_qos 1 # two\n", "test.conf:1: max_qos: too many values (expected one: a number in "
                              "0..2)"},
        {"max_qos 3\n", "test.conf:1: max_qos: 3 is out of range (0..2)"},
        {"max_qos 1\r\nmax_qos 9\r\n", "test.conf:2: max_qos: 9 is out of range (0..2)"},
        {"max_inflight_messages 0\n",
         "test.conf:1: max_inflight_messages: 0 is out of range (1..65535)"},
        {"retain_available 1\n",
         "test.conf:1: retain_available: '1' is not a boolean (expected true or false)"},
        {"sys_interval\n",
         "test.conf:1: sys_interval: missing value (expected a number in 0..86400)"},
        {"pid_file\n", "test.conf:1: pid_file: missing value (expected a string)"},
        {"listener\n", "test.conf:1: listener: expected PORT [ADDRESS] (PORT 0..65535)"},
        {"listener 1 a b\n", "test.conf:1: listener: expected PORT [ADDRESS] (PORT 0..65535)"},
        {"listener 65536\n", "test.conf:1: listener: 65536 is out of range (0..65535)"},
        {"listener -1\n", "test.conf:1: listener: -1 is out of range (0..65535)"},
        {"listener x\n", "test.conf:1: listener: 'x' is not a number (expected 0..65535)"},
        {"port\n", "test.conf:1: port: missing value (expected a port number in 0..65535)"},
        {"port 70000\n", "test.conf:1: port: 70000 is out of range (0..65535)"},
        {"listener 8883\nport 1883\n",
         "test.conf:2: port: sets the default listener, so it must come before the first "
         "listener line (or write `listener 1883`)"},
        {"bind_address\n", "test.conf:1: bind_address: missing value (expected a string)"},
        {"protocol ftp\n", "test.conf:1: protocol: 'ftp' is not mqtt or websockets"},
        {"protocol websockets\n",
         "test.conf:1: protocol: websockets is not supported yet (expected mqtt)"},
        {"protocol\n", "test.conf:1: protocol: missing value (expected mqtt or websockets)"},
        {"max_connections -2\n",
         "test.conf:1: max_connections: -2 is out of range (-1..100000000)"},
        {"max_connections\n",
         "test.conf:1: max_connections: missing value (expected a number in -1..100000000)"},
        {"allow_anonymous maybe\n",
         "test.conf:1: allow_anonymous: 'maybe' is not a boolean (expected true or false)"},
        {"allow_anonymous\n", "test.conf:1: allow_anonymous: missing value (expected true or "
                              "false)"},
        {"log_dest\n", "test.conf:1: log_dest: missing value (expected stderr, stdout, file PATH, "
                       "syslog or none)"},
        {"log_dest nowhere\n",
         "test.conf:1: log_dest: 'nowhere' is not stderr, stdout, file PATH, syslog or none"},
        {"log_dest file\n", "test.conf:1: log_dest file: missing PATH"},
        {"log_dest file   \n", "test.conf:1: log_dest file: missing PATH"},
        {"log_dest stderr extra\n", "test.conf:1: log_dest stderr: unexpected value 'extra' "
                                    "(expected stderr, stdout, file PATH, syslog or none)"},
        {"log_dest topic\n", "test.conf:1: log_dest: 'topic' is not supported (expected stderr, "
                             "stdout, file PATH, syslog or none)"},
        {"log_type\n", "test.conf:1: log_type: missing value (expected error, warning, notice, "
                       "information, debug, subscribe, unsubscribe, all or none)"},
        {"log_type error loud\n", "test.conf:1: log_type: 'loud' is not error, warning, notice, "
                                  "information, debug, subscribe, unsubscribe, all or none"},
        {"log_type a b c d e f g h i j k l m n o p q\n",
         "test.conf:1: log_type: too many values (at most 16 per line)"},
        {"persistent_client_expiration 3x\n",
         "test.conf:1: persistent_client_expiration: '3x' is not a duration (expected seconds, "
         "or N followed by h, d, w, m or y)"},
        {"persistent_client_expiration\n",
         "test.conf:1: persistent_client_expiration: missing value (expected seconds, or N "
         "followed by h, d, w, m or y)"},
        {"persistent_client_expiration 99999999999999d\n",
         "test.conf:1: persistent_client_expiration: 99999999999999d is out of range "
         "(0..1099511627776 seconds)"},
        {"server_redirect elsewhere\n",
         "test.conf:1: server_redirect: 'elsewhere' is not none, use_another or moved"},
        {"shared_subscription_policy sticky\n",
         "test.conf:1: shared_subscription_policy: "
         "'sticky' is not round_robin, random or hash_topic"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fixture fx;
        fx_init(&fx);
        int rc = load(&fx, cases[i].text);
        CHECK_MSG(rc == TERN_EINVAL, "'%s' gave %d", cases[i].text, rc);
        CHECK_MSG(strcmp(fx.err, cases[i].message) == 0,
                  "'%s' gave message\n    '%s', want\n    '%s'", cases[i].text, fx.err,
                  cases[i].message);
        fx_done(&fx);
    }
}

static void test_error_limits(void)
{
    struct fixture fx;
    fx_init(&fx);
    /* 16 listeners fit; the 17th is an error naming its line */
    char text[1024] = "";
    for (int i = 0; i < CONF_MAX_LISTENERS; i++) {
        char line[64];
        snprintf(line, sizeof line, "listener %d 10.0.0.%d\n", 2000 + i, i);
        strncat(text, line, sizeof text - strlen(text) - 1);
    }
    CHECK_EQ(load(&fx, text), 0);
    CHECK_EQ(fx.c.n_listeners, CONF_MAX_LISTENERS);
    fx_reset(&fx);
    strncat(text, "listener 3000\n", sizeof text - strlen(text) - 1);
    CHECK_EQ(load(&fx, text), TERN_EINVAL);
    CHECK_MSG(strcmp(fx.err, "test.conf:17: listener: too many listeners (at most 16)") == 0, "%s",
              fx.err);
    CHECK_EQ(fx.c.n_listeners, CONF_MAX_LISTENERS);
    fx_reset(&fx);
    /* with an implicit default listener, 15 more fit */
    CHECK_EQ(load(&fx, "port 1\nlistener 2\nlistener 3\nlistener 4\nlistener 5\nlistener 6\n"
                       "listener 7\nlistener 8\nlistener 9\nlistener 10\nlistener 11\n"
                       "listener 12\nlistener 13\nlistener 14\nlistener 15\nlistener 16\n"
                       "listener 17\n"),
             TERN_EINVAL);
    CHECK_MSG(starts_with(fx.err, "test.conf:17: listener: too many"), "%s", fx.err);
    fx_done(&fx);

    /* a line of 4096 bytes is fine, 4097 is an error naming the line */
    char *big = malloc(5000);
    CHECK(big != NULL);
    if (!big)
        return;
    fx_init(&fx);
    memset(big, ' ', 5000);
    memcpy(big, "# ok\npid_file /x", 16);
    big[5 + 4096] = '\n';
    big[5 + 4097] = '\0';
    CHECK_MSG(load(&fx, big) == 0, "%s", fx.err);
    CHECK(str_is(fx.c.pid_file, "/x"));
    big[5 + 4096] = ' ';
    big[5 + 4097] = '\n';
    big[5 + 4098] = '\0';
    CHECK_EQ(load(&fx, big), TERN_EINVAL);
    CHECK_MSG(strcmp(fx.err, "test.conf:2: line longer than 4096 bytes") == 0, "%s", fx.err);
    /* the same without a final newline */
    big[5 + 4097] = '\0';
    CHECK_EQ(load(&fx, big), TERN_EINVAL);
    CHECK_MSG(strcmp(fx.err, "test.conf:2: line longer than 4096 bytes") == 0, "%s", fx.err);
    free(big);
    /* a short error buffer truncates but stays a string; no buffer at all is fine */
    char small[12];
    CHECK_EQ(conf_load_string(&fx.m, &fx.c, "test.conf", "nosuch\n", small, sizeof small),
             TERN_EINVAL);
    CHECK_EQ(strlen(small), sizeof small - 1);
    CHECK(starts_with(small, "test.conf:1"));
    CHECK_EQ(conf_load_string(&fx.m, &fx.c, "test.conf", "nosuch\n", NULL, 0), TERN_EINVAL);
    /* a very long unknown name is cut in the message */
    char longname[400];
    memset(longname, 'x', sizeof longname - 2);
    longname[sizeof longname - 2] = '\n';
    longname[sizeof longname - 1] = '\0';
    CHECK_EQ(load(&fx, longname), TERN_EINVAL);
    CHECK(starts_with(fx.err, "test.conf:1: unknown directive 'xxxx"));
    fx_done(&fx);
}

/* ---- listeners ---- */

static void test_listeners(void)
{
    struct fixture fx;
    fx_init(&fx);
    CHECK_MSG(load(&fx, "max_connections 500\n"
                        "allow_anonymous false\n"
                        "listener 1883 127.0.0.1\n"
                        "listener 8883 0.0.0.0\n"
                        "max_connections 10\n"
                        "allow_anonymous true\n"
                        "mount_point tenant/\n"
                        "certfile /etc/tern/server.pem\n"
                        "keyfile /etc/tern/server.key\n"
                        "tls_version tlsv1.3\n"
                        "require_certificate true\n"
                        "listener 0\n"
                        "protocol mqtt\n"
                        "listener 9001 ::1\n"
                        "bind_address 192.168.1.2\n") == 0,
              "%s", fx.err);
    struct config *c = &fx.c;
    conf_finish(&fx.m, c);
    CHECK_EQ(c->n_listeners, 4);
    CHECK_EQ(c->max_connections, 500);
    CHECK_EQ(c->allow_anonymous, 0);
    CHECK(c->listeners[0].port == 1883 && str_is(c->listeners[0].bind_address, "127.0.0.1"));
    CHECK(c->listeners[0].max_connections == -1 && c->listeners[0].allow_anonymous == -1);
    CHECK(c->listeners[0].certfile == NULL && str_is(c->listeners[0].tls_version, "tlsv1.2"));
    CHECK(c->listeners[1].port == 8883 && str_is(c->listeners[1].bind_address, "0.0.0.0"));
    CHECK(c->listeners[1].max_connections == 10 && c->listeners[1].allow_anonymous == 1);
    CHECK(str_is(c->listeners[1].mount_point, "tenant/"));
    CHECK(str_is(c->listeners[1].certfile, "/etc/tern/server.pem"));
    CHECK(str_is(c->listeners[1].keyfile, "/etc/tern/server.key"));
    CHECK(str_is(c->listeners[1].tls_version, "tlsv1.3"));
    CHECK(c->listeners[1].require_certificate);
    CHECK(c->listeners[2].port == 0 && c->listeners[2].bind_address == NULL);
    CHECK(!c->listeners[2].require_certificate && c->listeners[2].certfile == NULL);
    CHECK_EQ(c->listeners[2].protocol, CONF_PROTO_MQTT);
    CHECK(c->listeners[3].port == 9001 && str_is(c->listeners[3].bind_address, "192.168.1.2"));
    /* global false wins over the loopback rule; the listener's own true wins over global */
    CHECK(!conf_listener_anonymous(c, 0));
    CHECK(conf_listener_anonymous(c, 1));
    CHECK(!conf_listener_anonymous(c, 2));
    fx_done(&fx);

    /* an explicit `listener 1883` without an address listens on all addresses: conf_finish
     * must not move it to localhost */
    fx_init(&fx);
    CHECK_EQ(load(&fx, "listener 1883\n"), 0);
    conf_finish(&fx.m, &fx.c);
    CHECK_EQ(fx.c.n_listeners, 1);
    CHECK(fx.c.listeners[0].bind_address == NULL);
    CHECK(!conf_listener_anonymous(&fx.c, 0));
    fx_done(&fx);

    /* `port` without listener: the default listener, on localhost whatever the port */
    static const char *const ports[] = {"port 1883\n", "port 1884\n", "port 0\n"};
    static const int port_values[] = {1883, 1884, 0};
    for (int i = 0; i < 3; i++) {
        fx_init(&fx);
        CHECK_EQ(load(&fx, ports[i]), 0);
        conf_finish(&fx.m, &fx.c);
        CHECK(fx.c.n_listeners == 1 && fx.c.listeners[0].port == port_values[i]);
        CHECK(str_is(fx.c.listeners[0].bind_address, "127.0.0.1"));
        CHECK(conf_listener_anonymous(&fx.c, 0));
        fx_done(&fx);
    }

    /* a listener setting before any listener makes the default listener with "not set" values */
    fx_init(&fx);
    CHECK_EQ(load(&fx, "certfile /etc/cert.pem\nmount_point a/\n"), 0);
    CHECK_EQ(fx.c.n_listeners, 1);
    CHECK_EQ(fx.c.listeners[0].port, 1883);
    CHECK_EQ(fx.c.listeners[0].allow_anonymous, -1);
    CHECK_EQ(fx.c.listeners[0].max_connections, -1);
    CHECK(str_is(fx.c.listeners[0].certfile, "/etc/cert.pem"));
    CHECK(str_is(fx.c.listeners[0].bind_address, "127.0.0.1"));
    conf_finish(&fx.m, &fx.c);
    CHECK_EQ(fx.c.n_listeners, 1);
    CHECK(conf_listener_anonymous(&fx.c, 0));
    fx_done(&fx);

    /* bind_address and port before any listener, in either order; then more listeners, and
     * `port` may still set the default listener after them */
    fx_init(&fx);
    CHECK_EQ(load(&fx, "bind_address 10.1.1.1\nport 1884\nlistener 8883\nkeyfile k\nport 1885\n"),
             0);
    conf_finish(&fx.m, &fx.c);
    CHECK_EQ(fx.c.n_listeners, 2);
    CHECK(fx.c.listeners[0].port == 1885 && str_is(fx.c.listeners[0].bind_address, "10.1.1.1"));
    CHECK(fx.c.listeners[0].keyfile == NULL && str_is(fx.c.listeners[1].keyfile, "k"));
    CHECK(fx.c.listeners[1].port == 8883 && fx.c.listeners[1].bind_address == NULL);
    CHECK(!conf_listener_anonymous(&fx.c, 0));
    fx_done(&fx);

    /* bind_address after a listener changes that listener; the last value wins */
    fx_init(&fx);
    CHECK_EQ(load(&fx, "listener 1 10.0.0.1\nbind_address 10.0.0.2\nbind_address localhost\n"), 0);
    CHECK(str_is(fx.c.listeners[0].bind_address, "localhost"));
    fx_done(&fx);
}

static void test_listener_anonymous_rules(void)
{
    struct fixture fx;
    fx_init(&fx);
    CHECK_EQ(load(&fx, "listener 1 127.0.0.1\nlistener 2 127.1.2.3\nlistener 3 localhost\n"
                       "listener 4 ::1\nlistener 5\nlistener 6 0.0.0.0\nlistener 7 10.0.0.1\n"
                       "listener 8 0.0.0.0\nallow_anonymous true\n"
                       "listener 9 127.0.0.1\nallow_anonymous false\n"
                       "listener 10 127.example.com\nlistener 11 ::ffff:127.0.0.1\n"
                       "listener 12 LOCALHOST\nlistener 13 ::\nlistener 14 0:0:0:0:0:0:0:1\n"
                       "listener 15 128.0.0.1\nlistener 16 localhost.example.com\n"),
             0);
    struct config *c = &fx.c;
    static const bool want[] = {true,  true,  true, true, false, false, false, true,
                                false, false, true, true, false, true,  false, false};
    for (int i = 0; i < 16; i++)
        CHECK_MSG(conf_listener_anonymous(c, i) == want[i], "listener %d", i + 1);
    /* a global value overrides the loopback rule but not a listener's own value */
    c->allow_anonymous = 1;
    CHECK(conf_listener_anonymous(c, 4) && conf_listener_anonymous(c, 6));
    CHECK(!conf_listener_anonymous(c, 8));
    c->allow_anonymous = 0;
    CHECK(!conf_listener_anonymous(c, 0) && !conf_listener_anonymous(c, 3));
    CHECK(conf_listener_anonymous(c, 7));
    /* out of range: refused */
    CHECK(!conf_listener_anonymous(c, -1) && !conf_listener_anonymous(c, 16));
    fx_done(&fx);

    /* the same rules from the file: global before, per listener after */
    fx_init(&fx);
    CHECK_EQ(load(&fx, "allow_anonymous true\nlistener 1 10.0.0.1\nlistener 2 127.0.0.1\n"
                       "allow_anonymous false\n"),
             0);
    CHECK(conf_listener_anonymous(&fx.c, 0) && !conf_listener_anonymous(&fx.c, 1));
    fx_done(&fx);
}

/* ---- special directives ---- */

static void test_durations(void)
{
    static const struct {
        const char *v;
        long long secs;
    } ok[] = {
        {"30", 30},
        {"0", 0},
        {"2h", 7200},
        {"14d", 14 * 86400LL},
        {"1w", 7 * 86400LL},
        {"1m", 30 * 86400LL},
        {"2y", 2 * 365 * 86400LL},
        {"0d", 0},
        {"1099511627776", 1LL << 40},
        {"+3h", 3 * 3600},
        {"007d", 7 * 86400LL},
    };
    static const char *const bad[] = {"3x",
                                      "h",
                                      "d",
                                      "-1",
                                      "-1d",
                                      "1.5h",
                                      "1hd",
                                      "1 h",
                                      "99999999999999d",
                                      "1099511627777",
                                      "12 34",
                                      "1H",
                                      "1s",
                                      "0x10",
                                      "1e3"};
    char text[128];
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct fixture fx;
        fx_init(&fx);
        snprintf(text, sizeof text, "persistent_client_expiration %s\n", ok[i].v);
        CHECK_MSG(load(&fx, text) == 0, "%s: %s", ok[i].v, fx.err);
        CHECK_MSG(fx.c.persistent_client_expiration == ok[i].secs, "%s -> %lld", ok[i].v,
                  fx.c.persistent_client_expiration);
        fx_done(&fx);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct fixture fx;
        fx_init(&fx);
        snprintf(text, sizeof text, "\npersistent_client_expiration %s\n", bad[i]);
        CHECK_MSG(load(&fx, text) == TERN_EINVAL, "'%s' accepted", bad[i]);
        CHECK_MSG(starts_with(fx.err, "test.conf:2: persistent_client_expiration: "), "%s", fx.err);
        CHECK_EQ(fx.c.persistent_client_expiration, 14LL * 86400);
        fx_done(&fx);
    }
}

static void test_log_dest_and_type(void)
{
    struct fixture fx;
    fx_init(&fx);
    /* the first log_dest replaces the default; later ones accumulate; a path may hold spaces */
    CHECK_EQ(load(&fx, "log_dest stdout\nlog_dest syslog\nlog_dest file /var/log/my tern.log \n"),
             0);
    CHECK_EQ(fx.c.log_dest, LOG_DEST_STDOUT | LOG_DEST_SYSLOG | LOG_DEST_FILE);
    CHECK(str_is(fx.c.log_file, "/var/log/my tern.log"));
    fx_reset(&fx);

    CHECK_EQ(load(&fx, "log_dest stderr\nlog_dest none\n"), 0);
    CHECK_EQ(fx.c.log_dest, LOG_DEST_NONE);
    fx_reset(&fx);

    /* "none" then a destination: that destination only */
    CHECK_EQ(load(&fx, "log_dest none\nlog_dest stderr\n"), 0);
    CHECK_EQ(fx.c.log_dest, LOG_DEST_STDERR);
    fx_reset(&fx);
    CHECK_EQ(load(&fx, "log_dest none\nlog_dest file /x\nlog_dest file /y\n"), 0);
    CHECK_EQ(fx.c.log_dest, LOG_DEST_FILE);
    CHECK(str_is(fx.c.log_file, "/y"));
    fx_reset(&fx);
    /* a later parse starts a new accumulation (a reload does not add to the old one) */
    CHECK_EQ(load(&fx, "log_dest stdout\n"), 0);
    CHECK_EQ(load(&fx, "log_dest syslog\n"), 0);
    CHECK_EQ(fx.c.log_dest, LOG_DEST_SYSLOG);
    fx_reset(&fx);

    CHECK_EQ(load(&fx, "log_type error\nlog_type debug subscribe\n"), 0);
    CHECK_EQ(fx.c.log_type, LOG_ERR | LOG_DEBUG | LOG_SUB);
    CHECK_EQ(load(&fx, "log_type all\n"), 0);
    CHECK_EQ(fx.c.log_type, LOG_ALL_LEVELS);
    CHECK_EQ(load(&fx, "log_type warning\nlog_type none\n"), 0);
    CHECK_EQ(fx.c.log_type, 0);
    CHECK_EQ(load(&fx, "log_type none notice information unsubscribe\n"), 0);
    CHECK_EQ(fx.c.log_type, LOG_NOTICE | LOG_INFO | LOG_SUB);
    /* a bad word changes nothing on its line */
    CHECK_EQ(load(&fx, "log_type debug\nlog_type error bogus\n"), TERN_EINVAL);
    CHECK_EQ(fx.c.log_type, LOG_DEBUG);
    fx_done(&fx);
}

static void test_other_specials(void)
{
    struct fixture fx;
    fx_init(&fx);
    CHECK_EQ(load(&fx, "server_redirect moved\n"), 0);
    CHECK_EQ(fx.c.server_redirect, 2);
    CHECK_EQ(load(&fx, "server_redirect use_another\n"), 0);
    CHECK_EQ(fx.c.server_redirect, 1);
    CHECK_EQ(load(&fx, "server_redirect none\n"), 0);
    CHECK_EQ(fx.c.server_redirect, 0);
    CHECK_EQ(load(&fx, "shared_subscription_policy hash_topic\n"), 0);
    CHECK_EQ(fx.c.shared_policy, 2);
    CHECK_EQ(load(&fx, "shared_subscription_policy random\n"), 0);
    CHECK_EQ(fx.c.shared_policy, 1);
    CHECK_EQ(load(&fx, "shared_subscription_policy round_robin\n"), 0);
    CHECK_EQ(fx.c.shared_policy, 0);
    CHECK_EQ(load(&fx, "max_connections -1\nmax_connections 100000000\n"), 0);
    CHECK_EQ(fx.c.max_connections, 100000000);
    CHECK_EQ(load(&fx, "max_connections 100000001\n"), TERN_EINVAL);
    CHECK_EQ(load(&fx, "allow_anonymous true\n"), 0);
    CHECK_EQ(fx.c.allow_anonymous, 1);
    CHECK_EQ(load(&fx, "allow_anonymous false\n"), 0);
    CHECK_EQ(fx.c.allow_anonymous, 0);
    CHECK_EQ(load(&fx, "protocol mqtt\n"), 0); /* before any listener: the default listener */
    CHECK(fx.c.n_listeners == 1 && fx.c.listeners[0].protocol == CONF_PROTO_MQTT);
    CHECK_EQ(load(&fx, "port 65535\n"), TERN_EINVAL); /* a new parse: listener 0 is no default */
    fx_reset(&fx);
    CHECK_EQ(load(&fx, "port 0\nport 65535\n"), 0);
    CHECK(fx.c.n_listeners == 1 && fx.c.listeners[0].port == 65535);
    fx_reset(&fx);
    /* whitespace: tabs, CR, VT, leading blanks; comments only at the start of a line */
    CHECK_EQ(load(&fx, "\t max_qos\t1 \r\n  # max_qos 0\r\n\v\f\n"), 0);
    CHECK_EQ(fx.c.max_qos, 1);
    CHECK_EQ(load(&fx, "max_qos 0"), 0); /* no final newline */
    CHECK_EQ(fx.c.max_qos, 0);
    CHECK_EQ(load(&fx, "max_qos\t2"), 0);
    CHECK_EQ(fx.c.max_qos, 2);
    fx_done(&fx);
}

/* Every directive of a realistic file, read back. */
static void test_full_file(void)
{
    struct fixture fx;
    fx_init(&fx);
    CHECK_MSG(load(&fx, "# Tern\n"
                        "threads 4\nmax_connections 1000\nallow_anonymous false\n"
                        "max_inflight_messages 40\nmax_inflight_bytes 1000000\n"
                        "max_queued_messages 500\nmax_queued_bytes 2000000\n"
                        "queue_qos0_messages true\nmessage_size_limit 1048576\n"
                        "max_packet_size 2097152\nallow_zero_length_clientid false\n"
                        "auto_id_prefix tern-\npersistent_client_expiration 2w\n"
                        "sys_interval 30\nmax_keepalive 600\nconnect_timeout 5\n"
                        "retain_available false\nmax_qos 1\nset_tcp_nodelay false\n"
                        "password_file /etc/tern/passwd\nacl_file /etc/tern/acl\n"
                        "persistence true\npersistence_location /var/lib/tern/\n"
                        "log_dest syslog\nlog_type warning\nlog_timestamp false\n"
                        "pid_file /run/tern.pid\n"
                        "listener 8883\ncafile /ca.pem\ncapath /ca/\ncrlfile /crl.pem\n"
                        "ciphers HIGH\nciphersuites TLS_AES_256_GCM_SHA384\n"
                        "use_identity_as_username true\n") == 0,
              "%s", fx.err);
    struct config *c = &fx.c;
    CHECK_EQ(c->threads, 4);
    CHECK_EQ(c->max_connections, 1000);
    CHECK_EQ(c->allow_anonymous, 0);
    CHECK_EQ(c->max_inflight_messages, 40);
    CHECK_EQ(c->max_inflight_bytes, 1000000);
    CHECK_EQ(c->max_queued_messages, 500);
    CHECK_EQ(c->max_queued_bytes, 2000000);
    CHECK(c->queue_qos0_messages);
    CHECK_EQ(c->message_size_limit, 1048576);
    CHECK_EQ(c->max_packet_size, 2097152);
    CHECK(!c->allow_zero_length_clientid);
    CHECK(str_is(c->auto_id_prefix, "tern-"));
    CHECK_EQ(c->persistent_client_expiration, 14LL * 86400);
    CHECK_EQ(c->sys_interval, 30);
    CHECK_EQ(c->max_keepalive, 600);
    CHECK_EQ(c->connect_timeout, 5);
    CHECK(!c->retain_available);
    CHECK_EQ(c->max_qos, 1);
    CHECK(!c->set_tcp_nodelay);
    CHECK(str_is(c->password_file, "/etc/tern/passwd") && str_is(c->acl_file, "/etc/tern/acl"));
    CHECK(c->persistence && str_is(c->persistence_location, "/var/lib/tern/"));
    CHECK_EQ(c->log_dest, LOG_DEST_SYSLOG);
    CHECK_EQ(c->log_type, LOG_WARN);
    CHECK(!c->log_timestamp);
    CHECK(str_is(c->pid_file, "/run/tern.pid"));
    struct conf_listener *l = &c->listeners[0];
    CHECK(c->n_listeners == 1 && l->port == 8883);
    CHECK(str_is(l->cafile, "/ca.pem") && str_is(l->capath, "/ca/") &&
          str_is(l->crlfile, "/crl.pem"));
    CHECK(str_is(l->ciphers, "HIGH") && str_is(l->ciphersuites, "TLS_AES_256_GCM_SHA384"));
    CHECK(l->use_identity_as_username);
    fx_done(&fx);
}

/* ---- files ---- */

static void test_load_file(void)
{
    struct fixture fx;
    fx_init(&fx);
    char path[] = "/tmp/tern-test-config-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    static const char body[] = "listener 1883\nmax_qos 1\nbogus\n";
    CHECK_EQ(write(fd, body, sizeof body - 1), (ssize_t)(sizeof body - 1));
    close(fd);
    CHECK_EQ(conf_load_file(&fx.m, &fx.c, path, fx.err, sizeof fx.err), TERN_EINVAL);
    char want[128];
    snprintf(want, sizeof want, "%s:3: unknown directive 'bogus'", path);
    CHECK_MSG(starts_with(fx.err, want), "%s", fx.err);
    CHECK_EQ(fx.c.max_qos, 1);
    unlink(path);
    CHECK_EQ(conf_load_file(&fx.m, &fx.c, path, fx.err, sizeof fx.err), TERN_EINVAL);
    CHECK_MSG(starts_with(fx.err, path), "%s", fx.err);
    fx_done(&fx);
}

/* The realistic fuzz seeds are valid configurations (the others start with the out-of-memory
 * marker byte or are deliberate errors). */
static void test_corpus_files(void)
{
    static const char *const valid[] = {
        "all-directives.conf", "crlf.conf",    "default-listener.conf", "durations.conf",
        "many-listeners.conf", "minimal.conf", "mosquitto-style.conf",  "mqtt5.conf",
        "production.conf",     "reload.conf",
    };
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/tests/fuzz/corpus/config/%s", TERN_SOURCE_DIR, valid[i]);
        struct fixture fx;
        fx_init(&fx);
        CHECK_MSG(conf_load_file(&fx.m, &fx.c, path, fx.err, sizeof fx.err) == 0, "%s", fx.err);
        conf_finish(&fx.m, &fx.c);
        CHECK(fx.c.n_listeners >= 1);
        fx_done(&fx);
    }
    /* default-listener.conf: port/bind_address before `listener`, values with spaces, CRLF */
    struct fixture fx;
    fx_init(&fx);
    CHECK_EQ(conf_load_file(&fx.m, &fx.c,
                            TERN_SOURCE_DIR "/tests/fuzz/corpus/config/default-listener.conf",
                            fx.err, sizeof fx.err),
             0);
    CHECK(fx.c.n_listeners == 2 && fx.c.listeners[0].port == 1885);
    CHECK(str_is(fx.c.listeners[0].bind_address, "0.0.0.0"));
    CHECK(str_is(fx.c.listeners[0].mount_point, "a b/"));
    CHECK(str_is(fx.c.password_file, "/etc/my passwords/pw"));
    CHECK(!conf_listener_anonymous(&fx.c, 0) && !conf_listener_anonymous(&fx.c, 1));
    fx_done(&fx);
}

/* ---- reload ---- */

static void test_apply_reloadable(void)
{
    struct mem m;
    mem_init(&m);
    struct config dst, src, before;
    char err[256];
    conf_defaults(&dst);
    conf_defaults(&src);
    CHECK_EQ(conf_load_string(&m, &dst, "old",
                              "listener 1883\nthreads 2\npid_file /old.pid\n"
                              "log_dest file /old.log\nserver_reference old\n",
                              err, sizeof err),
             0);
    CHECK_EQ(conf_load_string(&m, &src, "new",
                              "max_connections 7\nallow_anonymous true\n"
                              "listener 9999\nthreads 8\nmax_inflight_messages 5\n"
                              "auto_id_prefix new-\npid_file /new.pid\nsys_interval 0\n"
                              "persistent_client_expiration 1h\nlog_dest file /new.log\n"
                              "log_type debug\nserver_redirect moved\n"
                              "max_topic_alias 3\nmax_connections 99\n",
                              err, sizeof err),
             0);
    /* every other number/bool row of src differs from dst, so a copy is visible */
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (d->per_listener || d->type == CONF_SPECIAL)
            continue;
        char *a = (char *)&dst + d->offset, *b = (char *)&src + d->offset;
        if (d->type == CONF_INT && *(int *)a == *(int *)b)
            *(int *)b = *(int *)a + 1;
        else if (d->type == CONF_LLONG && *(long long *)a == *(long long *)b)
            *(long long *)b = *(long long *)a + 1;
        else if (d->type == CONF_BOOL)
            *(bool *)b = !*(bool *)a;
    }
    before = dst;
    struct config src_before = src;
    conf_apply_reloadable(&m, &dst, &src);
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (d->per_listener || d->type == CONF_SPECIAL)
            continue;
        size_t sz = d->type == CONF_INT     ? sizeof(int)
                    : d->type == CONF_LLONG ? sizeof(long long)
                    : d->type == CONF_BOOL  ? sizeof(bool)
                                            : sizeof(char *);
        const char *want =
            d->reloadable ? (char *)&src_before + d->offset : (char *)&before + d->offset;
        CHECK_MSG(memcmp((char *)&dst + d->offset, want, sz) == 0, "%s %s", d->name,
                  d->reloadable ? "not copied on reload" : "changed on reload");
        if (d->type == CONF_STRING && d->reloadable)
            CHECK_MSG(*(char **)((char *)&src + d->offset) == NULL, "%s not moved", d->name);
    }
    /* not reloadable: kept */
    CHECK_EQ(dst.threads, 2);
    CHECK(dst.n_listeners == 1 && dst.listeners[0].port == 1883);
    CHECK(str_is(dst.pid_file, "/old.pid"));
    CHECK_EQ(dst.max_topic_alias, 10);
    /* reloadable: copied; strings moved out of src (the old ones freed) */
    CHECK_EQ(dst.max_inflight_messages, 5);
    CHECK_EQ(dst.max_connections, 7); /* the global one, not listener 9999's 99 */
    CHECK_EQ(dst.allow_anonymous, 1);
    CHECK_EQ(dst.persistent_client_expiration, 3600);
    CHECK_EQ(dst.log_type, LOG_DEBUG);
    CHECK(str_is(dst.log_file, "/new.log") && src.log_file == NULL);
    CHECK(str_is(dst.auto_id_prefix, "new-") && src.auto_id_prefix == NULL);
    CHECK(dst.server_reference == NULL);                   /* src had none */
    CHECK(str_is(dst.response_info_prefix, "responses/")); /* a static default, moved */
    CHECK_EQ(dst.server_redirect, 2);
    conf_free(&m, &dst);
    conf_free(&m, &src);
    CHECK_EQ(mem_total(&m), 0);
}

/* ---- --help-config and docs/CONFIG.md ---- */

static char *help_text(size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        return NULL;
    conf_print_help(f);
    fclose(f);
    return buf;
}

static void test_print_help(void)
{
    size_t len = 0;
    char *help = help_text(&len);
    CHECK(help != NULL);
    if (!help)
        return;
    for (size_t i = 0; i < conf_directive_count; i++) {
        char needle[80];
        snprintf(needle, sizeof needle, "\n| `%s` |", conf_directives[i].name);
        CHECK_MSG(strstr(help, needle) != NULL, "help lacks %s", conf_directives[i].name);
    }
    CHECK(strstr(help, "| `max_inflight_messages` | number | 20 | 1..65535 | SIGHUP | global |"));
    CHECK(strstr(help, "| `persistent_client_expiration` | see text | 14d | 0..1099511627776 |"));
    CHECK(strstr(help, "| `certfile` | string | - |  | restart | listener |"));
    CHECK(strstr(help, "| `retain_available` | true/false | true |  | SIGHUP | global |"));
    CHECK(strstr(help, "| `listener` | see text | 1883 127.0.0.1 | 0..65535 | restart |"));
    /* a Markdown table: every row has the header's 8 unescaped '|' */
    size_t rows = 0;
    for (char *line = help; line && *line;) {
        char *nl = strchr(line, '\n');
        if (line[0] == '|') {
            int bars = 0;
            for (char *c = line; c < (nl ? nl : line + strlen(line)); c++)
                bars += *c == '|' && (c == line || c[-1] != '\\');
            CHECK_MSG(bars == 8, "%d cells in row: %.*s", bars - 1,
                      (int)(nl ? nl - line : (long)strlen(line)), line);
            rows++;
        }
        line = nl ? nl + 1 : NULL;
    }
    CHECK_EQ(rows, conf_directive_count + 2);
    free(help);
}

static char *read_doc(size_t max, size_t *n)
{
    FILE *f = fopen(TERN_SOURCE_DIR "/docs/CONFIG.md", "rb");
    char *doc = calloc(1, max + 2);
    *n = f && doc ? fread(doc, 1, max + 1, f) : 0;
    if (f)
        fclose(f);
    return doc;
}

static void test_config_md_up_to_date(void)
{
    size_t len = 0;
    char *help = help_text(&len);
    CHECK(help != NULL);
    if (!help)
        return;
    if (getenv("TERN_UPDATE_DOCS")) { /* TERN_UPDATE_DOCS=1 test_config: regenerate */
        FILE *f = fopen(TERN_SOURCE_DIR "/docs/CONFIG.md", "wb");
        CHECK(f && fwrite(help, 1, len, f) == len);
        if (f)
            CHECK_EQ(fclose(f), 0);
    }
    size_t n;
    char *doc = read_doc(len + 4096, &n);
    /* every row in the document, so it cannot go stale silently ... */
    for (size_t i = 0; doc && i < conf_directive_count; i++) {
        char needle[80];
        snprintf(needle, sizeof needle, "\n| `%s` |", conf_directives[i].name);
        CHECK_MSG(strstr(doc, needle) != NULL, "docs/CONFIG.md lacks %s", conf_directives[i].name);
    }
    /* ... and the whole of it equal to the generator's output */
    bool same = doc && n == len && memcmp(doc, help, len) == 0;
    CHECK_MSG(same, "docs/CONFIG.md differs from conf_print_help; regenerate it with\n"
                    "    TERN_UPDATE_DOCS=1 <build>/test_config");
    free(doc);
    free(help);
}

/* ---- allocation failure ---- */

static void test_enomem(void)
{
    static const char text[] = "listener 1883 0.0.0.0\nmount_point m/\nauto_id_prefix x-\n"
                               "log_dest file /l\npid_file /p\nlistener 1884\ncertfile c\n"
                               "log_dest file /l2\nauto_id_prefix y-\n";
    int failures = 0;
    for (long long n = 0; n < 16; n++) {
        struct fixture fx;
        fx_init(&fx);
        atomic_store(&fx.m.fail_after, n);
        int rc = load(&fx, text);
        atomic_store(&fx.m.fail_after, -1);
        CHECK_MSG(rc == 0 || (rc == TERN_ENOMEM && strstr(fx.err, "out of memory")), "rc %d: %s",
                  rc, fx.err);
        failures += rc != 0;
        fx_done(&fx);
    }
    CHECK_EQ(failures, 8); /* one per allocation: every one was made to fail once */
}

void unit_main(void)
{
    UNIT_RUN(test_defaults);
    UNIT_RUN(test_def_texts);
    UNIT_RUN(test_every_generic_directive);
    UNIT_RUN(test_every_special_row_tested);
    UNIT_RUN(test_errors);
    UNIT_RUN(test_error_limits);
    UNIT_RUN(test_listeners);
    UNIT_RUN(test_listener_anonymous_rules);
    UNIT_RUN(test_durations);
    UNIT_RUN(test_log_dest_and_type);
    UNIT_RUN(test_other_specials);
    UNIT_RUN(test_full_file);
    UNIT_RUN(test_load_file);
    UNIT_RUN(test_corpus_files);
    UNIT_RUN(test_apply_reloadable);
    UNIT_RUN(test_print_help);
    UNIT_RUN(test_config_md_up_to_date);
    UNIT_RUN(test_enomem);
}
