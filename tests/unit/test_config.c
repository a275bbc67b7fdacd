/* test_config.c - the directive table, the parser, listeners, reload and --help-config.
 *
 * Directives of type INT/LLONG/BOOL/STRING are tested by walking conf_directives[] itself (so a
 * new row is tested without editing this file); CONF_SPECIAL rows each have a named test, and
 * test_every_special_row_tested fails when a new special row appears without one.
 * docs/CONFIG.md must equal conf_print_help output (test_config_md_up_to_date). */
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

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
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
    CHECK(c->auto_id_prefix == NULL); /* NULL = the documented "auto-" */
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
    CHECK_EQ(c->check_payload_format, true);
    CHECK_EQ(c->server_redirect, 0);

    /* every number/boolean row: the value conf_defaults applied is the table's default text */
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (!d->def || d->per_listener)
            continue;
        void *f = field_of(c, d);
        if (d->type == CONF_INT)
            CHECK_MSG(*(int *)f == (int)strtol(d->def, NULL, 10), "%s default %d, table says %s", d->name,
                      *(int *)f, d->def);
        else if (d->type == CONF_LLONG)
            CHECK_MSG(*(long long *)f == strtoll(d->def, NULL, 10), "%s default %lld, table %s",
                      d->name, *(long long *)f, d->def);
        else if (d->type == CONF_BOOL)
            CHECK_MSG(*(bool *)f == (strcmp(d->def, "true") == 0), "%s default, table %s",
                      d->name, d->def);
    }
    /* empty text changes nothing */
    CHECK_EQ(load(&fx, ""), 0);
    CHECK_EQ(load(&fx, "\n\n# comment only\n   \n\t\n"), 0);
    CHECK_EQ(c->n_listeners, 0);
    conf_finish(&fx.m, c);
    CHECK_EQ(c->n_listeners, 1);
    CHECK_EQ(c->listeners[0].port, 1883);
    CHECK(c->listeners[0].bind_address && strcmp(c->listeners[0].bind_address, "127.0.0.1") == 0);
    CHECK_EQ(c->listeners[0].allow_anonymous, -1);
    CHECK_EQ(c->listeners[0].max_connections, -1);
    CHECK(conf_listener_anonymous(c, 0));
    fx_done(&fx);
}

/* ---- every table row ---- */

static void test_every_plain_directive(void)
{
    char text[256];
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (d->type == CONF_SPECIAL)
            continue;
        struct fixture fx;
        fx_init(&fx);
        const char *pre = d->per_listener ? "listener 1234\n" : "";
        switch (d->type) {
        case CONF_INT:
        case CONF_LLONG: {
            long long vals[] = {d->min, d->max, (d->min + d->max) / 2};
            for (int k = 0; k < 3; k++) {
                snprintf(text, sizeof text, "%s%s %lld\n", pre, d->name, vals[k]);
                CHECK_MSG(load(&fx, text) == 0, "'%s': %s", text, fx.err);
                long long got = d->type == CONF_INT ? *(int *)field_of(&fx.c, d)
                                                    : *(long long *)field_of(&fx.c, d);
                CHECK_MSG(got == vals[k], "%s: got %lld, want %lld", d->name, got, vals[k]);
                conf_free(&fx.m, &fx.c);
                conf_defaults(&fx.c);
            }
            /* out of range on both sides, with the line number */
            snprintf(text, sizeof text, "\n%s %lld\n", d->name, d->min - 1);
            CHECK(load(&fx, text) == TERN_EINVAL);
            CHECK_MSG(starts_with(fx.err, "test.conf:2: ") && strstr(fx.err, "out of range"),
                      "%s", fx.err);
            snprintf(text, sizeof text, "%s %lld\n", d->name, d->max + 1);
            CHECK(load(&fx, text) == TERN_EINVAL);
            CHECK_MSG(starts_with(fx.err, "test.conf:1: ") && strstr(fx.err, "out of range"),
                      "%s", fx.err);
            snprintf(text, sizeof text, "%s 12abc\n", d->name);
            CHECK(load(&fx, text) == TERN_EINVAL);
            CHECK_MSG(starts_with(fx.err, "test.conf:1: ") && strstr(fx.err, "not a number"),
                      "%s", fx.err);
            break;
        }
        case CONF_BOOL:
            snprintf(text, sizeof text, "%s true\n", d->name);
            CHECK(load(&fx, text) == 0 && *(bool *)field_of(&fx.c, d));
            snprintf(text, sizeof text, "%s false\n", d->name);
            CHECK(load(&fx, text) == 0 && !*(bool *)field_of(&fx.c, d));
            snprintf(text, sizeof text, "# x\n%s yes\n", d->name);
            CHECK(load(&fx, text) == TERN_EINVAL);
            CHECK_MSG(starts_with(fx.err, "test.conf:2: ") && strstr(fx.err, "not a boolean"),
                      "%s", fx.err);
            break;
        case CONF_STRING:
            snprintf(text, sizeof text, "%s%s first_%s\n%s /some/value\n", pre, d->name, d->name,
                     d->name); /* the second replaces (and frees) the first */
            CHECK_MSG(load(&fx, text) == 0, "%s", fx.err);
            CHECK_MSG(*(char **)field_of(&fx.c, d) &&
                          strcmp(*(char **)field_of(&fx.c, d), "/some/value") == 0,
                      "%s", d->name);
            break;
        case CONF_SPECIAL:
            break;
        }
        /* missing value and too many values */
        snprintf(text, sizeof text, "%s\n", d->name);
        CHECK(load(&fx, text) == TERN_EINVAL);
        CHECK_MSG(starts_with(fx.err, "test.conf:1: ") && strstr(fx.err, "expected"), "%s",
                  fx.err);
        snprintf(text, sizeof text, "%s 1 2\n", d->name);
        CHECK(load(&fx, text) == TERN_EINVAL);
        CHECK_MSG(starts_with(fx.err, "test.conf:1: "), "%s", fx.err);
        fx_done(&fx);
    }
}

static const char *const special_rows[] = {
    "listener",        "port",     "bind_address",    "protocol",
    "max_connections", "allow_anonymous", "persistent_client_expiration", "server_redirect",
    "log_dest",        "log_type", "shared_subscription_policy",
};

static void test_every_special_row_tested(void)
{
    for (size_t i = 0; i < conf_directive_count; i++) {
        if (conf_directives[i].type != CONF_SPECIAL)
            continue;
        bool known = false;
        for (size_t k = 0; k < sizeof special_rows / sizeof special_rows[0]; k++)
            known = known || strcmp(special_rows[k], conf_directives[i].name) == 0;
        CHECK_MSG(known, "special directive '%s' has no test in test_config.c",
                  conf_directives[i].name);
    }
}

/* ---- errors ---- */

struct ecase {
    const char *text;
    const char *prefix; /* exact start of the message */
    const char *contains;
};

static void test_errors(void)
{
    static const struct ecase cases[] = {
        {"nosuch 1\n", "test.conf:1: ", "unknown directive 'nosuch'"},
        {"# c\n\nmax_qos 1\nfoo\n", "test.conf:4: ", "unknown directive 'foo'"},
        {"max_inflight_messages x\n", "test.conf:1: ", "not a number"},
        {"max_inflight_messages 0\n", "test.conf:1: ", "out of range (1..65535)"},
        {"max_inflight_messages 99999999999999999999\n", "test.conf:1: ", "not a number"},
        {"max_inflight_messages 1.5\n", "test.conf:1: ", "not a number"},
        {"max_qos 3\n", "test.conf:1: ", "out of range"},
        {"retain_available 1\n", "test.conf:1: ", "not a boolean"},
        {"retain_available TRUE\n", "test.conf:1: ", "not a boolean"},
        {"sys_interval\n", "test.conf:1: ", "expected exactly one value"},
        {"sys_interval 1 2\n", "test.conf:1: ", "expected exactly one value"},
        {"listener\n", "test.conf:1: ", "listener"},
        {"listener 1 a b\n", "test.conf:1: ", "listener"},
        {"listener 65536\n", "test.conf:1: ", "0..65535"},
        {"listener -1\n", "test.conf:1: ", "0..65535"},
        {"listener x\n", "test.conf:1: ", "0..65535"},
        {"port\n", "test.conf:1: ", "port"},
        {"port 70000\n", "test.conf:1: ", "port"},
        {"bind_address\n", "test.conf:1: ", "bind_address"},
        {"protocol ftp\n", "test.conf:1: ", "protocol"},
        {"protocol websockets\n", "test.conf:1: ", "not supported"},
        {"max_connections -2\n", "test.conf:1: ", "max_connections"},
        {"max_connections\n", "test.conf:1: ", "max_connections"},
        {"allow_anonymous maybe\n", "test.conf:1: ", "allow_anonymous"},
        {"allow_anonymous\n", "test.conf:1: ", "allow_anonymous"},
        {"log_dest\n", "test.conf:1: ", "log_dest"},
        {"log_dest nowhere\n", "test.conf:1: ", "log_dest"},
        {"log_dest file\n", "test.conf:1: ", "log_dest file"},
        {"log_dest stderr extra\n", "test.conf:1: ", "log_dest"},
        {"log_dest topic\n", "test.conf:1: ", "not supported"},
        {"log_type\n", "test.conf:1: ", "log_type"},
        {"log_type error loud\n", "test.conf:1: ", "'loud'"},
        {"persistent_client_expiration 3x\n", "test.conf:1: ", "not a duration"},
        {"persistent_client_expiration\n", "test.conf:1: ", "not a duration"},
        {"server_redirect elsewhere\n", "test.conf:1: ", "server_redirect"},
        {"a 1 2 3 4 5 6 7 8 9\n", "test.conf:1: ", "too many words"},
        {"max_qos 1\r\nmax_qos 9\r\n", "test.conf:2: ", "out of range"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fixture fx;
        fx_init(&fx);
        int rc = load(&fx, cases[i].text);
        CHECK_MSG(rc == TERN_EINVAL, "'%s' gave %d", cases[i].text, rc);
        CHECK_MSG(starts_with(fx.err, cases[i].prefix) && strstr(fx.err, cases[i].contains),
                  "'%s' gave message '%s'", cases[i].text, fx.err);
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
    fx_done(&fx);
    fx_init(&fx);
    strncat(text, "listener 3000\n", sizeof text - strlen(text) - 1);
    CHECK_EQ(load(&fx, text), TERN_EINVAL);
    CHECK_MSG(starts_with(fx.err, "test.conf:17: ") && strstr(fx.err, "too many listeners"), "%s",
              fx.err);
    CHECK_EQ(fx.c.n_listeners, CONF_MAX_LISTENERS);
    fx_done(&fx);

    /* a line of 4096 bytes is fine, 4097 is an error */
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
    big[5 + 4096] = ' ';
    big[5 + 4097] = '\n';
    big[5 + 4098] = '\0';
    CHECK_EQ(load(&fx, big), TERN_EINVAL);
    CHECK_MSG(starts_with(fx.err, "test.conf:2: ") && strstr(fx.err, "longer than"), "%s",
              fx.err);
    free(big);
    /* a short error buffer truncates but stays a string */
    char small[12];
    CHECK_EQ(conf_load_string(&fx.m, &fx.c, "test.conf", "nosuch\n", small, sizeof small),
             TERN_EINVAL);
    CHECK_EQ(strlen(small), sizeof small - 1);
    CHECK(starts_with(small, "test.conf:1"));
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
    CHECK(c->listeners[0].port == 1883 && strcmp(c->listeners[0].bind_address, "127.0.0.1") == 0);
    CHECK(c->listeners[0].max_connections == -1 && c->listeners[0].allow_anonymous == -1);
    CHECK(c->listeners[1].port == 8883 && strcmp(c->listeners[1].bind_address, "0.0.0.0") == 0);
    CHECK(c->listeners[1].max_connections == 10 && c->listeners[1].allow_anonymous == 1);
    CHECK(c->listeners[1].mount_point && strcmp(c->listeners[1].mount_point, "tenant/") == 0);
    CHECK(c->listeners[2].port == 0 && c->listeners[2].bind_address == NULL);
    CHECK_EQ(c->listeners[2].protocol, CONF_PROTO_MQTT);
    CHECK(c->listeners[3].port == 9001 &&
          strcmp(c->listeners[3].bind_address, "192.168.1.2") == 0);
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

    /* `port` without listener: the default listener, on localhost like the embedded default */
    fx_init(&fx);
    CHECK_EQ(load(&fx, "port 1883\n"), 0);
    conf_finish(&fx.m, &fx.c);
    CHECK(fx.c.n_listeners == 1 && fx.c.listeners[0].port == 1883);
    CHECK(fx.c.listeners[0].bind_address &&
          strcmp(fx.c.listeners[0].bind_address, "127.0.0.1") == 0);
    CHECK(conf_listener_anonymous(&fx.c, 0));
    fx_done(&fx);

    /* a listener setting before any listener makes listener 0 with "not set" values */
    fx_init(&fx);
    CHECK_EQ(load(&fx, "certfile /etc/cert.pem\n"), 0);
    CHECK_EQ(fx.c.n_listeners, 1);
    CHECK_EQ(fx.c.listeners[0].port, 1883);
    CHECK_EQ(fx.c.listeners[0].allow_anonymous, -1);
    CHECK_EQ(fx.c.listeners[0].max_connections, -1);
    CHECK(strcmp(fx.c.listeners[0].certfile, "/etc/cert.pem") == 0);
    conf_finish(&fx.m, &fx.c);
    CHECK(conf_listener_anonymous(&fx.c, 0));
    fx_done(&fx);

    /* bind_address before any listener */
    fx_init(&fx);
    CHECK_EQ(load(&fx, "bind_address 10.1.1.1\nport 1884\n"), 0);
    conf_finish(&fx.m, &fx.c);
    CHECK(fx.c.n_listeners == 1 && fx.c.listeners[0].port == 1884);
    CHECK(strcmp(fx.c.listeners[0].bind_address, "10.1.1.1") == 0);
    CHECK(!conf_listener_anonymous(&fx.c, 0));
    fx_done(&fx);
}

static void test_listener_anonymous_rules(void)
{
    struct fixture fx;
    fx_init(&fx);
    CHECK_EQ(load(&fx, "listener 1 127.0.0.1\nlistener 2 127.1.2.3\nlistener 3 localhost\n"
                       "listener 4 ::1\nlistener 5\nlistener 6 0.0.0.0\nlistener 7 10.0.0.1\n"
                       "listener 8 0.0.0.0\nallow_anonymous true\n"
                       "listener 9 127.0.0.1\nallow_anonymous false\n"),
             0);
    struct config *c = &fx.c;
    static const bool want[] = {true, true, true, true, false, false, false, true, false};
    for (int i = 0; i < 9; i++)
        CHECK_MSG(conf_listener_anonymous(c, i) == want[i], "listener %d", i + 1);
    /* a global value overrides the loopback rule but not a listener's own value */
    c->allow_anonymous = 1;
    CHECK(conf_listener_anonymous(c, 4) && conf_listener_anonymous(c, 6));
    CHECK(!conf_listener_anonymous(c, 8));
    c->allow_anonymous = 0;
    CHECK(!conf_listener_anonymous(c, 0) && !conf_listener_anonymous(c, 3));
    CHECK(conf_listener_anonymous(c, 7));
    fx_done(&fx);
}

/* ---- special directives ---- */

static void test_durations(void)
{
    static const struct {
        const char *v;
        long long secs;
    } ok[] = {
        {"30", 30},          {"0", 0},           {"2h", 7200},        {"14d", 14 * 86400LL},
        {"1w", 7 * 86400LL}, {"1m", 30 * 86400LL}, {"2y", 2 * 365 * 86400LL}, {"0d", 0},
        {"1099511627776", 1LL << 40},
    };
    static const char *const bad[] = {"3x", "h", "d", "-1", "-1d", "1.5h", "1hd", "1 h",
                                      "99999999999999d", "1099511627777", "12 34"};
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
        CHECK_MSG(starts_with(fx.err, "test.conf:2: persistent_client_expiration: "), "%s",
                  fx.err);
        CHECK_EQ(fx.c.persistent_client_expiration, 14LL * 86400);
        fx_done(&fx);
    }
}

static void test_log_dest_and_type(void)
{
    struct fixture fx;
    fx_init(&fx);
    /* the first log_dest replaces the default; later ones accumulate */
    CHECK_EQ(load(&fx, "log_dest stdout\nlog_dest syslog\nlog_dest file /var/log/tern.log\n"), 0);
    CHECK_EQ(fx.c.log_dest, LOG_DEST_STDOUT | LOG_DEST_SYSLOG | LOG_DEST_FILE);
    CHECK(strcmp(fx.c.log_file, "/var/log/tern.log") == 0);
    fx_done(&fx);

    fx_init(&fx);
    CHECK_EQ(load(&fx, "log_dest stderr\nlog_dest none\n"), 0);
    CHECK_EQ(fx.c.log_dest, LOG_DEST_NONE);
    fx_done(&fx);

    /* "none" then a destination: that destination only */
    fx_init(&fx);
    CHECK_EQ(load(&fx, "log_dest none\nlog_dest stderr\n"), 0);
    CHECK_EQ(fx.c.log_dest, LOG_DEST_STDERR);
    fx_done(&fx);
    fx_init(&fx);
    CHECK_EQ(load(&fx, "log_dest none\nlog_dest file /x\nlog_dest file /y\n"), 0);
    CHECK_EQ(fx.c.log_dest, LOG_DEST_FILE);
    CHECK(strcmp(fx.c.log_file, "/y") == 0);
    fx_done(&fx);

    fx_init(&fx);
    CHECK_EQ(load(&fx, "log_type error\nlog_type debug subscribe\n"), 0);
    CHECK_EQ(fx.c.log_type, LOG_ERR | LOG_DEBUG | LOG_SUB);
    CHECK_EQ(load(&fx, "log_type all\n"), 0); /* a later parse starts a new accumulation */
    CHECK_EQ(fx.c.log_type, LOG_ALL_LEVELS);
    CHECK_EQ(load(&fx, "log_type warning\nlog_type none\n"), 0);
    CHECK_EQ(fx.c.log_type, 0);
    CHECK_EQ(load(&fx, "log_type none notice information unsubscribe\n"), 0);
    CHECK_EQ(fx.c.log_type, LOG_NOTICE | LOG_INFO | LOG_SUB);
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
    CHECK_EQ(fx.c.shared_policy, 0); /* round_robin by default */
    CHECK_EQ(load(&fx, "shared_subscription_policy hash_topic\n"), 0);
    CHECK_EQ(fx.c.shared_policy, 2);
    CHECK_EQ(load(&fx, "shared_subscription_policy random\n"), 0);
    CHECK_EQ(fx.c.shared_policy, 1);
    CHECK(load(&fx, "shared_subscription_policy sticky\n") == TERN_EINVAL);
    CHECK_EQ(load(&fx, "max_connections -1\nmax_connections 100000000\n"), 0);
    CHECK_EQ(fx.c.max_connections, 100000000);
    CHECK_EQ(load(&fx, "max_connections 100000001\n"), TERN_EINVAL);
    CHECK_EQ(load(&fx, "allow_anonymous true\n"), 0);
    CHECK_EQ(fx.c.allow_anonymous, 1);
    CHECK_EQ(load(&fx, "port 0\n"), 0);
    CHECK(fx.c.n_listeners == 1 && fx.c.listeners[0].port == 0);
    CHECK_EQ(load(&fx, "port 65535\n"), 0);
    CHECK(fx.c.n_listeners == 1 && fx.c.listeners[0].port == 65535);
    /* whitespace: tabs, CR, leading blanks; comments only at the start of a line */
    CHECK_EQ(load(&fx, "\t max_qos\t1 \r\n  # max_qos 0\r\n"), 0);
    CHECK_EQ(fx.c.max_qos, 1);
    CHECK_EQ(load(&fx, "max_qos 0"), 0); /* no final newline */
    CHECK_EQ(fx.c.max_qos, 0);
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
    char want[64];
    snprintf(want, sizeof want, "%s:3: unknown directive 'bogus'", path);
    CHECK_MSG(starts_with(fx.err, want), "%s", fx.err);
    CHECK_EQ(fx.c.max_qos, 1);
    unlink(path);
    CHECK_EQ(conf_load_file(&fx.m, &fx.c, path, fx.err, sizeof fx.err), TERN_EINVAL);
    CHECK(starts_with(fx.err, path) && strstr(fx.err, "cannot open"));
    fx_done(&fx);
}

/* ---- reload ---- */

static void test_apply_reloadable(void)
{
    struct mem m;
    mem_init(&m);
    struct config dst, src;
    char err[256];
    conf_defaults(&dst);
    conf_defaults(&src);
    CHECK_EQ(conf_load_string(&m, &dst, "old",
                              "listener 1883\nthreads 2\nauto_id_prefix old-\npid_file /old.pid\n"
                              "log_dest file /old.log\n",
                              err, sizeof err),
             0);
    CHECK_EQ(conf_load_string(&m, &src, "new",
                              "max_connections 7\nallow_anonymous true\n"
                              "listener 9999\nthreads 8\nmax_inflight_messages 5\n"
                              "auto_id_prefix new-\npid_file /new.pid\nsys_interval 0\n"
                              "persistent_client_expiration 1h\nlog_dest file /new.log\n"
                              "log_type debug\nserver_redirect moved\nserver_reference other\n"
                              "max_topic_alias 3\n",
                              err, sizeof err),
             0);
    conf_apply_reloadable(&m, &dst, &src);
    /* not reloadable: kept */
    CHECK_EQ(dst.threads, 2);
    CHECK(dst.n_listeners == 1 && dst.listeners[0].port == 1883);
    CHECK(strcmp(dst.pid_file, "/old.pid") == 0);
    CHECK_EQ(dst.max_topic_alias, 10);
    /* reloadable: copied; strings moved out of src */
    CHECK_EQ(dst.max_inflight_messages, 5);
    CHECK_EQ(dst.sys_interval, 0);
    CHECK_EQ(dst.max_connections, 7);
    CHECK_EQ(dst.allow_anonymous, 1);
    CHECK_EQ(dst.persistent_client_expiration, 3600);
    CHECK_EQ(dst.log_type, LOG_DEBUG);
    CHECK_EQ(dst.log_dest, LOG_DEST_FILE);
    CHECK(strcmp(dst.log_file, "/new.log") == 0 && src.log_file == NULL);
    CHECK(strcmp(dst.auto_id_prefix, "new-") == 0 && src.auto_id_prefix == NULL);
    CHECK(strcmp(dst.server_reference, "other") == 0 && src.server_reference == NULL);
    CHECK_EQ(dst.server_redirect, 2);
    /* every reloadable number/bool row is copied */
    for (size_t i = 0; i < conf_directive_count; i++) {
        const struct conf_directive *d = &conf_directives[i];
        if (d->per_listener || d->type == CONF_STRING || d->type == CONF_SPECIAL)
            continue;
        size_t sz = d->type == CONF_INT ? sizeof(int)
                  : d->type == CONF_LLONG ? sizeof(long long) : sizeof(bool);
        bool same = memcmp((char *)&dst + d->offset, (char *)&src + d->offset, sz) == 0;
        if (d->reloadable)
            CHECK_MSG(same, "reloadable %s not copied", d->name);
    }
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
        snprintf(needle, sizeof needle, "| `%s` |", conf_directives[i].name);
        CHECK_MSG(strstr(help, needle) != NULL, "help lacks %s", conf_directives[i].name);
    }
    CHECK(strstr(help, "| `max_inflight_messages` | number | 20 | 1..65535 | SIGHUP | global |"));
    CHECK(strstr(help, "| `persistent_client_expiration` | see text | 14d |"));
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

static void test_config_md_up_to_date(void)
{
    size_t len = 0;
    char *help = help_text(&len);
    CHECK(help != NULL);
    FILE *f = fopen(TERN_SOURCE_DIR "/docs/CONFIG.md", "rb");
    char *doc = calloc(1, len + 2);
    size_t n = f && doc ? fread(doc, 1, len + 1, f) : 0;
    if (f)
        fclose(f);
    bool same = help && doc && n == len && memcmp(doc, help, len) == 0;
    CHECK_MSG(same, "docs/CONFIG.md differs from conf_print_help; regenerate it with\n"
                    "    cmake --build <build> --target ternd && <build>/ternd --help-config > "
                    "docs/CONFIG.md");
    free(doc);
    free(help);
}

/* ---- allocation failure ---- */

static void test_enomem(void)
{
    static const char text[] = "listener 1883 0.0.0.0\nmount_point m/\nauto_id_prefix x-\n"
                               "log_dest file /l\npid_file /p\nlistener 1884\ncertfile c\n";
    for (long long n = 0; n < 16; n++) {
        struct fixture fx;
        fx_init(&fx);
        atomic_store(&fx.m.fail_after, n);
        int rc = load(&fx, text);
        atomic_store(&fx.m.fail_after, -1);
        CHECK(rc == 0 || (rc == TERN_EINVAL && strstr(fx.err, "out of memory")));
        fx_done(&fx);
    }
}

void unit_main(void)
{
    UNIT_RUN(test_defaults);
    UNIT_RUN(test_every_plain_directive);
    UNIT_RUN(test_every_special_row_tested);
    UNIT_RUN(test_errors);
    UNIT_RUN(test_error_limits);
    UNIT_RUN(test_listeners);
    UNIT_RUN(test_listener_anonymous_rules);
    UNIT_RUN(test_durations);
    UNIT_RUN(test_log_dest_and_type);
    UNIT_RUN(test_other_specials);
    UNIT_RUN(test_load_file);
    UNIT_RUN(test_apply_reloadable);
    UNIT_RUN(test_print_help);
    UNIT_RUN(test_config_md_up_to_date);
    UNIT_RUN(test_enomem);
}
