/* cli_opts.c - command line of `tern pub`, `tern sub` and `tern rr` (one option table, names
 * familiar from mosquitto_pub/mosquitto_sub), the per-command --help texts, the connect helper
 * and message printing (-v, -F json / format strings, -N).
 * Parsing writes only into the caller's struct cli; strings stay views into argv. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char common_help[] =
    "Connection:\n"
    "  -h, --host HOST          broker host (default localhost)\n"
    "  -p, --port PORT          broker port (default 1883)\n"
    "  -V, --protocol-version V 311 | mqttv311 | 5 | mqttv5 (default 5)\n"
    "  -i, --id ID              client identifier (default: assigned by the broker)\n"
    "  -u, --username USER      user name\n"
    "  -P, --pw PASSWORD        password\n"
    "  -k, --keepalive SECONDS  keep-alive interval (default 60, 0 = off)\n"
    "  -c, --disable-clean-session  keep the session (needs -i); v5: session expiry\n"
    "                           becomes infinite unless -x is given\n"
    "  -x, --session-expiry S   v5 session expiry interval in seconds ('inf' = never)\n"
    "  --will-topic TOPIC       will message topic\n"
    "  --will-payload TEXT      will message payload\n"
    "  --will-qos Q             will QoS (0, 1, 2)\n"
    "  --will-retain            retain the will message\n"
    "  -D CMD PROP VALUE...     v5 property, as mosquitto: CMD is connect, publish,\n"
    "                           subscribe or will; PROP one of user-property KEY VALUE,\n"
    "                           session-expiry-interval, message-expiry-interval,\n"
    "                           content-type, response-topic, correlation-data,\n"
    "                           payload-format-indicator, subscription-identifier,\n"
    "                           will-delay-interval\n"
    "  --property KEY=VALUE     user property on the PUBLISH (pub, rr) or SUBSCRIBE (sub)\n"
    "  -W, --timeout SECONDS    give up after this long (exit code 3)\n"
    "  -d, --debug              progress lines on stderr (connected, subscribed, ...)\n"
    "  --quiet                  no error messages\n"
    "  --help                   this text\n";

static const char pub_help[] =
    "Usage: tern pub -t TOPIC (-m MSG | -f FILE | -l | -s | -n) [options]\n"
    "Publish one message (or one per stdin line with -l) and wait until the broker has\n"
    "acknowledged it (QoS 1: PUBACK, QoS 2: PUBCOMP).\n\n"
    "Message:\n"
    "  -t, --topic TOPIC        topic to publish to\n"
    "  -m, --message TEXT       payload\n"
    "  -f, --file FILE          payload: the whole file\n"
    "  -s, --stdin-file         payload: all of stdin\n"
    "  -l, --stdin-line         one message per line of stdin (without the newline)\n"
    "  -n, --null-message       empty payload\n"
    "  -q, --qos Q              0, 1 or 2 (default 0)\n"
    "  -r, --retain             retain the message\n"
    "  --content-type TEXT      v5 content type\n"
    "  --message-expiry S       v5 message expiry interval\n"
    "  --response-topic TOPIC   v5 response topic\n"
    "  --correlation-data TEXT  v5 correlation data\n\n";

static const char sub_help[] =
    "Usage: tern sub -t FILTER [-t FILTER...] [options]\n"
    "Subscribe and print the messages received, one per line.\n\n"
    "Subscription and output:\n"
    "  -t, --topic FILTER       topic filter (repeatable)\n"
    "  -q, --qos Q              maximum QoS (default 0)\n"
    "  -C, --count N            exit after N messages\n"
    "  -R, --no-retained        do not print retained messages\n"
    "  -v, --verbose            print the topic, a space, then the payload\n"
    "  -F, --format FMT         'json' (or %j): one JSON object per message with topic,\n"
    "                           qos, retain, payload and v5 properties; or a format\n"
    "                           with %t topic, %p payload, %x payload hex, %q qos,\n"
    "                           %r retain, %l length, %i packet id, %j json, %% and\n"
    "                           \\n \\t \\\\ escapes\n"
    "  -N, --no-newline         no newline after each message\n\n";

static const char rr_help[] =
    "Usage: tern rr -t REQUEST_TOPIC -e RESPONSE_TOPIC (-m MSG | -f FILE | -n) [options]\n"
    "MQTT 5 request/response: subscribe to the response topic, publish the request with\n"
    "Response Topic and Correlation Data, wait for the matching response and print it.\n\n"
    "Request:\n"
    "  -t, --topic TOPIC        request topic\n"
    "  -e, --response-topic T   response topic (subscribed before the request is sent)\n"
    "  -m, --message TEXT       request payload\n"
    "  -f, --file FILE          request payload: the whole file\n"
    "  -n, --null-message       empty request payload\n"
    "  -q, --qos Q              QoS of the request and the subscription (default 0)\n"
    "  --correlation-data TEXT  correlation data (default: random)\n"
    "  -v, -F, -N               output as for tern sub\n"
    "  -W, --timeout SECONDS    wait this long for the response (default 10)\n\n";

static const char exit_help[] =
    "\nExit codes: 0 success, 1 connection failed/refused/lost, 2 usage error, 3 timeout,\n"
    "4 publish or subscribe refused by the broker, 5 local I/O error.\n";

enum {
    OPT_HELP = 256,
    OPT_PROPERTY,
    OPT_WILL_TOPIC,
    OPT_WILL_PAYLOAD,
    OPT_WILL_QOS,
    OPT_WILL_RETAIN,
    OPT_QUIET,
    OPT_CONTENT_TYPE,
    OPT_MESSAGE_EXPIRY,
    OPT_CORRELATION,
};

static const struct option long_opts[] = {
    {"help", no_argument, NULL, OPT_HELP},
    {"host", required_argument, NULL, 'h'},
    {"port", required_argument, NULL, 'p'},
    {"topic", required_argument, NULL, 't'},
    {"message", required_argument, NULL, 'm'},
    {"file", required_argument, NULL, 'f'},
    {"stdin-line", no_argument, NULL, 'l'},
    {"stdin-file", no_argument, NULL, 's'},
    {"null-message", no_argument, NULL, 'n'},
    {"qos", required_argument, NULL, 'q'},
    {"retain", no_argument, NULL, 'r'},
    {"id", required_argument, NULL, 'i'},
    {"username", required_argument, NULL, 'u'},
    {"pw", required_argument, NULL, 'P'},
    {"disable-clean-session", no_argument, NULL, 'c'},
    {"session-expiry", required_argument, NULL, 'x'},
    {"protocol-version", required_argument, NULL, 'V'},
    {"keepalive", required_argument, NULL, 'k'},
    {"count", required_argument, NULL, 'C'},
    {"timeout", required_argument, NULL, 'W'},
    {"verbose", no_argument, NULL, 'v'},
    {"format", required_argument, NULL, 'F'},
    {"no-newline", no_argument, NULL, 'N'},
    {"no-retained", no_argument, NULL, 'R'},
    {"response-topic", required_argument, NULL, 'e'},
    {"property", required_argument, NULL, OPT_PROPERTY},
    {"will-topic", required_argument, NULL, OPT_WILL_TOPIC},
    {"will-payload", required_argument, NULL, OPT_WILL_PAYLOAD},
    {"will-qos", required_argument, NULL, OPT_WILL_QOS},
    {"will-retain", no_argument, NULL, OPT_WILL_RETAIN},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"debug", no_argument, NULL, 'd'},
    {"content-type", required_argument, NULL, OPT_CONTENT_TYPE},
    {"message-expiry", required_argument, NULL, OPT_MESSAGE_EXPIRY},
    {"correlation-data", required_argument, NULL, OPT_CORRELATION},
    {NULL, 0, NULL, 0},
};

void cli_error(const struct cli *a, const char *fmt, ...)
{
    if (a->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "tern %s: ", a->name);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cli_left_ms(int64_t deadline_ms)
{
    if (deadline_ms < 0)
        return -1;
    int64_t d = deadline_ms - cli_now_ms();
    return d < 0 ? 0 : d > 1000000000 ? 1000000000 : (int)d;
}

/* Parses an unsigned decimal number in [lo, hi]. */
static bool parse_num(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
    if (!s || !*s || *s == '-')
        return false;
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool add_user(struct tern_user_property *arr, size_t *n, const char *k, const char *v)
{
    if (*n >= CLI_MAX_PROPS)
        return false;
    arr[*n].key = k;
    arr[*n].value = v;
    (*n)++;
    return true;
}

/* -D CMD PROP VALUE [VALUE]: consumes the values after optarg from argv. */
static int parse_d(struct cli *a, int argc, char **argv, const char *cmd)
{
    const char *prop = optind < argc ? argv[optind++] : NULL;
    const char *val = optind < argc ? argv[optind++] : NULL;
    if (!prop || !val) {
        cli_error(a, "-D needs a command, a property and a value");
        return CLI_EXIT_USAGE;
    }
    bool is_pub = !strcmp(cmd, "publish"), is_conn = !strcmp(cmd, "connect");
    bool is_sub = !strcmp(cmd, "subscribe"), is_will = !strcmp(cmd, "will");
    if (!is_pub && !is_conn && !is_sub && !is_will) {
        cli_error(a, "-D: unknown command '%s' (connect, publish, subscribe, will)", cmd);
        return CLI_EXIT_USAGE;
    }
    struct tern_properties *tp = is_will ? &a->will_props : &a->pub_props;
    unsigned long n = 0;
    if (!strcmp(prop, "user-property")) {
        const char *v2 = optind < argc ? argv[optind++] : NULL;
        if (!v2) {
            cli_error(a, "-D %s user-property needs a key and a value", cmd);
            return CLI_EXIT_USAGE;
        }
        bool ok = is_conn  ? add_user(a->connect_user, &a->o.n_connect_user, val, v2)
                  : is_sub ? add_user(a->sub_user, &a->n_sub_user, val, v2)
                           : add_user(is_will ? a->will_user : a->pub_user, &tp->n_user, val, v2);
        if (!ok) {
            cli_error(a, "too many user properties");
            return CLI_EXIT_USAGE;
        }
        return -1;
    }
    if (!strcmp(prop, "session-expiry-interval") && is_conn && parse_num(val, 0, UINT32_MAX, &n)) {
        a->o.session_expiry = (uint32_t)n;
        a->expiry_given = true;
    } else if (!strcmp(prop, "subscription-identifier") && is_sub &&
               parse_num(val, 1, 268435455, &n)) {
        a->sub_id = (uint32_t)n;
    } else if (!strcmp(prop, "message-expiry-interval") && (is_pub || is_will) &&
               parse_num(val, 0, UINT32_MAX, &n)) {
        tp->has |= TERN_PROP_MESSAGE_EXPIRY;
        tp->message_expiry = (uint32_t)n;
    } else if (!strcmp(prop, "will-delay-interval") && is_will &&
               parse_num(val, 0, UINT32_MAX, &n)) {
        tp->has |= TERN_PROP_WILL_DELAY;
        tp->will_delay = (uint32_t)n;
    } else if (!strcmp(prop, "payload-format-indicator") && (is_pub || is_will) &&
               parse_num(val, 0, 1, &n)) {
        tp->has |= TERN_PROP_PAYLOAD_FORMAT;
        tp->payload_format = (uint8_t)n;
    } else if (!strcmp(prop, "content-type") && (is_pub || is_will)) {
        tp->has |= TERN_PROP_CONTENT_TYPE;
        tp->content_type = val;
    } else if (!strcmp(prop, "response-topic") && (is_pub || is_will)) {
        tp->has |= TERN_PROP_RESPONSE_TOPIC;
        tp->response_topic = val;
    } else if (!strcmp(prop, "correlation-data") && (is_pub || is_will)) {
        tp->has |= TERN_PROP_CORRELATION_DATA;
        tp->correlation_data = val;
        tp->correlation_len = strlen(val);
    } else {
        cli_error(a, "-D %s %s %s: unknown property or bad value", cmd, prop, val);
        return CLI_EXIT_USAGE;
    }
    return -1;
}

static int usage(const struct cli *a)
{
    const char *h = a->cmd == CLI_PUB ? pub_help : a->cmd == CLI_SUB ? sub_help : rr_help;
    fputs(h, stdout);
    fputs(common_help, stdout);
    fputs(exit_help, stdout);
    return 0;
}

static int bad(const struct cli *a, const char *opt, const char *val)
{
    cli_error(a, "invalid value for %s: '%s' (see tern %s --help)", opt, val ? val : "", a->name);
    return CLI_EXIT_USAGE;
}

/* Handles one option character c with its argument. Returns -1 to continue or an exit code. */
static int one_option(struct cli *a, int c, int argc, char **argv)
{
    unsigned long n;
    switch (c) {
    case OPT_HELP: return usage(a);
    case 'h': a->o.host = optarg; break;
    case 'p':
        if (!parse_num(optarg, 1, 65535, &n))
            return bad(a, "-p", optarg);
        a->o.port = (uint16_t)n;
        break;
    case 't':
        if (a->n_topics >= CLI_MAX_TOPICS)
            return bad(a, "-t (too many)", optarg);
        a->topics[a->n_topics++] = optarg;
        break;
    case 'm':
        a->message = optarg;
        a->message_len = strlen(optarg);
        break;
    case 'f': a->file = optarg; break;
    case 'l': a->stdin_lines = true; break;
    case 's': a->stdin_whole = true; break;
    case 'n': a->null_message = true; break;
    case 'q':
        if (!parse_num(optarg, 0, 2, &n))
            return bad(a, "-q", optarg);
        a->qos = (int)n;
        break;
    case 'r': a->retain = true; break;
    case 'i': a->o.client_id = optarg; break;
    case 'u': a->o.username = optarg; break;
    case 'P':
        a->o.password = optarg;
        a->o.password_len = strlen(optarg);
        break;
    case 'c': a->clean_given = true; break;
    case 'x':
        if (!strcmp(optarg, "inf") || !strcmp(optarg, "never") || !strcmp(optarg, "\xe2\x88\x9e"))
            n = UINT32_MAX;
        else if (!parse_num(optarg, 0, UINT32_MAX, &n))
            return bad(a, "-x", optarg);
        a->o.session_expiry = (uint32_t)n;
        a->expiry_given = true;
        break;
    case 'V':
        if (!strcmp(optarg, "311") || !strcmp(optarg, "mqttv311") || !strcmp(optarg, "4"))
            a->o.protocol = TERN_MQTT_311;
        else if (!strcmp(optarg, "5") || !strcmp(optarg, "mqttv5"))
            a->o.protocol = TERN_MQTT_5;
        else
            return bad(a, "-V", optarg);
        break;
    case 'k':
        if (!parse_num(optarg, 0, 65535, &n))
            return bad(a, "-k", optarg);
        a->o.keep_alive = (uint16_t)n;
        break;
    case 'C':
        if (!parse_num(optarg, 1, LONG_MAX, &n))
            return bad(a, "-C", optarg);
        a->count = (long)n;
        break;
    case 'W': {
        char *end;
        double d = strtod(optarg, &end);
        if (*end || !(d > 0))
            return bad(a, "-W", optarg);
        a->timeout_s = d;
        break;
    }
    case 'v': a->verbose = true; break;
    case 'F': a->format = optarg; break;
    case 'N': a->no_newline = true; break;
    case 'R': a->no_retained = true; break;
    case 'e': a->response_topic = optarg; break;
    case 'D': return parse_d(a, argc, argv, optarg);
    case OPT_PROPERTY: {
        char *eq = strchr(optarg, '=');
        if (!eq || eq == optarg)
            return bad(a, "--property (KEY=VALUE)", optarg);
        *eq = 0; /* argv is ours to split */
        bool ok = a->cmd == CLI_SUB ? add_user(a->sub_user, &a->n_sub_user, optarg, eq + 1)
                                    : add_user(a->pub_user, &a->pub_props.n_user, optarg, eq + 1);
        if (!ok)
            return bad(a, "--property (too many)", optarg);
        break;
    }
    case OPT_WILL_TOPIC: a->o.will_topic = optarg; break;
    case OPT_WILL_PAYLOAD:
        a->o.will_payload = optarg;
        a->o.will_payload_len = strlen(optarg);
        break;
    case OPT_WILL_QOS:
        if (!parse_num(optarg, 0, 2, &n))
            return bad(a, "--will-qos", optarg);
        a->o.will_qos = (int)n;
        break;
    case OPT_WILL_RETAIN: a->o.will_retain = true; break;
    case OPT_QUIET: a->quiet = true; break;
    case 'd': a->debug = true; break;
    case OPT_CONTENT_TYPE:
        a->pub_props.has |= TERN_PROP_CONTENT_TYPE;
        a->pub_props.content_type = optarg;
        break;
    case OPT_MESSAGE_EXPIRY:
        if (!parse_num(optarg, 0, UINT32_MAX, &n))
            return bad(a, "--message-expiry", optarg);
        a->pub_props.has |= TERN_PROP_MESSAGE_EXPIRY;
        a->pub_props.message_expiry = (uint32_t)n;
        break;
    case OPT_CORRELATION: a->correlation = optarg; break;
    default: cli_error(a, "see tern %s --help", a->name); return CLI_EXIT_USAGE;
    }
    return -1;
}

/* Cross-option checks once everything is parsed. */
static int finish(struct cli *a)
{
    if (a->n_topics == 0) {
        cli_error(a, "a topic is needed (-t)");
        return CLI_EXIT_USAGE;
    }
    if (a->cmd != CLI_SUB && a->n_topics > 1) {
        cli_error(a, "only one -t for %s", a->name);
        return CLI_EXIT_USAGE;
    }
    int sources = (a->message != NULL) + (a->file != NULL) + a->stdin_lines + a->stdin_whole +
                  a->null_message;
    if (a->cmd != CLI_SUB && sources != 1) {
        cli_error(a, "exactly one of -m, -f, -l, -s, -n is needed");
        return CLI_EXIT_USAGE;
    }
    if (a->cmd == CLI_RR) {
        if (!a->response_topic) {
            cli_error(a, "a response topic is needed (-e)");
            return CLI_EXIT_USAGE;
        }
        if (a->o.protocol != TERN_MQTT_5) {
            cli_error(a, "request/response needs MQTT 5 (-V 5)");
            return CLI_EXIT_USAGE;
        }
    }
    bool v5_only = a->pub_props.has || a->pub_props.n_user || a->o.n_connect_user ||
                   a->n_sub_user || a->sub_id || a->will_props.has || a->will_props.n_user ||
                   a->expiry_given;
    if (v5_only && a->o.protocol != TERN_MQTT_5) {
        cli_error(a, "properties (-D, --property, -x, ...) need MQTT 5");
        return CLI_EXIT_USAGE;
    }
    if (a->clean_given) {
        if (!a->o.client_id || !a->o.client_id[0]) {
            cli_error(a, "-c needs a client id (-i)");
            return CLI_EXIT_USAGE;
        }
        a->o.clean_start = false;
        if (a->o.protocol == TERN_MQTT_5 && !a->expiry_given)
            a->o.session_expiry = UINT32_MAX;
    }
    if ((a->o.will_payload || a->o.will_qos || a->o.will_retain) && !a->o.will_topic) {
        cli_error(a, "--will-payload/--will-qos/--will-retain need --will-topic");
        return CLI_EXIT_USAGE;
    }
    a->pub_props.user = a->pub_user;
    a->will_props.user = a->will_user;
    a->o.connect_user = a->connect_user;
    if (a->will_props.has || a->will_props.n_user)
        a->o.will_props = &a->will_props;
    if (a->o.password && !a->o.username && a->o.protocol == TERN_MQTT_311) {
        cli_error(a, "a password (-P) needs a user name (-u) in MQTT 3.1.1");
        return CLI_EXIT_USAGE;
    }
    return -1;
}

int cli_parse(struct cli *a, int argc, char **argv)
{
    tern_client_options_init(&a->o);
    a->o.max_inflight = 100;
    optind = 1;
    opterr = 0;
    int c;
    /* '+': stop at the first non-option, so -D can take its values from argv itself */
    while ((c = getopt_long(argc, argv, "+h:p:t:m:f:lsnq:ri:u:P:cx:V:k:C:W:vF:NRe:D:d", long_opts,
                            NULL)) != -1) {
        if (c == '?' || c == ':') {
            const char *what = argv[optind - 1];
            cli_error(a, "%s option '%s' (see tern %s --help)",
                      optopt && strchr("hptmfqiuPxVkCWFeD", optopt) ? "missing value for"
                                                                    : "unknown",
                      what, a->name);
            return CLI_EXIT_USAGE;
        }
        int r = one_option(a, c, argc, argv);
        if (r >= 0)
            return r;
    }
    if (optind < argc) {
        cli_error(a, "unexpected argument '%s' (see tern %s --help)", argv[optind], a->name);
        return CLI_EXIT_USAGE;
    }
    return finish(a);
}

int cli_connect(struct cli *a, tern_client **out)
{
    tern_client *c = NULL;
    int rc = tern_client_new(&a->o, &c);
    if (rc) {
        cli_error(a, "invalid connection options: %s", tern_error_text(rc));
        return CLI_EXIT_USAGE;
    }
    int64_t deadline = a->timeout_s > 0 ? cli_now_ms() + (int64_t)(a->timeout_s * 1000) : -1;
    rc = tern_client_connect(c);
    while (rc == 0 && tern_client_state(c) != TERN_STATE_CONNECTED) {
        if (deadline >= 0 && cli_left_ms(deadline) == 0) {
            cli_error(a, "timed out connecting to %s:%u", a->o.host, a->o.port);
            tern_client_free(c);
            return CLI_EXIT_TIMEOUT;
        }
        rc = tern_client_step(c, deadline >= 0 ? cli_left_ms(deadline) : 1000);
    }
    if (rc) {
        cli_error(a, "%s",
                  tern_client_last_error(c)[0] ? tern_client_last_error(c) : tern_error_text(rc));
        tern_client_free(c);
        return CLI_EXIT_CONN;
    }
    if (a->debug)
        fprintf(stderr, "tern %s: connected to %s:%u\n", a->name, a->o.host, a->o.port);
    *out = c;
    return 0;
}

/* ---- output ---- */

static bool utf8_text(const unsigned char *p, size_t n)
{
    /* a light check: printable as JSON text when it is valid UTF-8 */
    size_t i = 0;
    while (i < n) {
        unsigned char b = p[i];
        size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
        if (!len || i + len > n)
            return false;
        for (size_t k = 1; k < len; k++)
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
        i += len;
    }
    return true;
}

static void json_str(FILE *f, const void *data, size_t n)
{
    const unsigned char *p = data;
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = p[i];
        switch (ch) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (ch < 0x20 || ch == 0x7F)
                fprintf(f, "\\u%04x", ch);
            else
                fputc(ch, f);
        }
    }
    fputc('"', f);
}

static void hex(FILE *f, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", p[i]);
}

/* "key":"text" when data is UTF-8, else "key_hex":"..." */
static void json_bytes(FILE *f, const char *key, const void *data, size_t n)
{
    if (utf8_text(data, n)) {
        fprintf(f, "\"%s\":", key);
        json_str(f, data, n);
    } else {
        fprintf(f, "\"%s_hex\":\"", key);
        hex(f, data, n);
        fputc('"', f);
    }
}

static void print_json(const struct tern_message *m)
{
    const struct tern_properties *p = m->props;
    fputs("{\"topic\":", stdout);
    json_str(stdout, m->topic, m->topic_len);
    printf(",\"qos\":%d,\"retain\":%s,\"payloadlen\":%zu,", m->qos, m->retain ? "true" : "false",
           m->payload_len);
    json_bytes(stdout, "payload", m->payload, m->payload_len);
    fputs(",\"properties\":{", stdout);
    const char *sep = "";
    if (p->has & TERN_PROP_PAYLOAD_FORMAT) {
        printf("%s\"payload_format_indicator\":%u", sep, p->payload_format);
        sep = ",";
    }
    if (p->has & TERN_PROP_MESSAGE_EXPIRY) {
        printf("%s\"message_expiry_interval\":%" PRIu32, sep, p->message_expiry);
        sep = ",";
    }
    if (p->has & TERN_PROP_CONTENT_TYPE) {
        printf("%s\"content_type\":", sep);
        json_str(stdout, p->content_type, strlen(p->content_type));
        sep = ",";
    }
    if (p->has & TERN_PROP_RESPONSE_TOPIC) {
        printf("%s\"response_topic\":", sep);
        json_str(stdout, p->response_topic, strlen(p->response_topic));
        sep = ",";
    }
    if (p->has & TERN_PROP_CORRELATION_DATA) {
        fputs(sep, stdout);
        json_bytes(stdout, "correlation_data", p->correlation_data, p->correlation_len);
        sep = ",";
    }
    if (p->has & TERN_PROP_SUBSCRIPTION_ID) {
        printf("%s\"subscription_identifier\":%" PRIu32, sep, p->subscription_id);
        sep = ",";
    }
    if (p->n_user) {
        printf("%s\"user_properties\":[", sep);
        for (size_t i = 0; i < p->n_user; i++) {
            fputs(i ? ",[" : "[", stdout);
            json_str(stdout, p->user[i].key, strlen(p->user[i].key));
            fputc(',', stdout);
            json_str(stdout, p->user[i].value, strlen(p->user[i].value));
            fputc(']', stdout);
        }
        fputc(']', stdout);
    }
    fputs("}}", stdout);
}

static void print_format(const char *fmt, const struct tern_message *m)
{
    for (const char *s = fmt; *s; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            putchar(*s == 'n' ? '\n' : *s == 't' ? '\t' : *s == '0' ? '\0' : *s);
            continue;
        }
        if (*s != '%' || !s[1]) {
            putchar(*s);
            continue;
        }
        switch (*++s) {
        case 't': fwrite(m->topic, 1, m->topic_len, stdout); break;
        case 'p': fwrite(m->payload, 1, m->payload_len, stdout); break;
        case 'x': hex(stdout, m->payload, m->payload_len); break;
        case 'q': printf("%d", m->qos); break;
        case 'r': printf("%d", m->retain ? 1 : 0); break;
        case 'l': printf("%zu", m->payload_len); break;
        case 'i': printf("%u", m->packet_id); break;
        case 'j': print_json(m); break;
        case '%': putchar('%'); break;
        default:
            putchar('%');
            putchar(*s);
            break;
        }
    }
}

void cli_print_message(const struct cli *a, const struct tern_message *m)
{
    if (a->format && (!strcmp(a->format, "json") || !strcmp(a->format, "%j")))
        print_json(m);
    else if (a->format)
        print_format(a->format, m);
    else {
        if (a->verbose) {
            fwrite(m->topic, 1, m->topic_len, stdout);
            putchar(' ');
        }
        fwrite(m->payload, 1, m->payload_len, stdout);
    }
    if (!a->no_newline)
        putchar('\n');
    fflush(stdout);
}

/* ---- waiting ---- */

int cli_signal_fd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &set, NULL))
        return -1;
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

int cli_wait(tern_client *c, int sig_fd, int in_fd, int timeout_ms)
{
    int t = tern_client_next_timeout_ms(c);
    if (t < 0 || (timeout_ms >= 0 && timeout_ms < t))
        t = timeout_ms;
    int fd = tern_client_fd(c);
    struct pollfd pf[3] = {
        {fd, (short)(POLLIN | (tern_client_wants_write(c) ? POLLOUT : 0)), 0},
        {sig_fd, POLLIN, 0},
        {in_fd, POLLIN, 0},
    };
    int n = poll(pf, 3, t);
    int what = 0;
    if (n > 0 && sig_fd >= 0 && (pf[1].revents & POLLIN)) {
        struct signalfd_siginfo si;
        (void)!read(sig_fd, &si, sizeof si);
        what |= CLI_WAIT_SIGNAL;
    }
    if (n > 0 && in_fd >= 0 && pf[2].revents)
        what |= CLI_WAIT_INPUT;
    tern_client_step(c, 0);
    return what;
}
