/* cmd_pubsub.c - `tern pub`, `tern sub` and `tern rr`, each a single-threaded caller's loop over
 * the client library (tern_client_fd / next_timeout / step) plus a signalfd so SIGINT/SIGTERM
 * end with a clean DISCONNECT. Each command owns its struct cli and its run state on the stack;
 * callbacks reach the run state through the client's user pointer. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cli.h"

struct run {
    struct cli *a;
    int result;     /* exit code so far */
    bool done;      /* the command has finished its work */
    bool connected; /* past cli_connect (which reports its own failures) */
    long received;  /* sub: messages printed */
    char corr[40];  /* rr: correlation data */
    size_t corr_len;
    const void *payload; /* rr: request payload */
    size_t payload_len;
};

/* Sends DISCONNECT and steps until the client is idle (at most ~2 s, the library's bound). */
static void finish_client(tern_client *c)
{
    if (tern_client_state(c) == TERN_STATE_CONNECTED)
        (void)tern_client_disconnect(c, 0);
    int64_t end = cli_now_ms() + 3000;
    while (tern_client_state(c) != TERN_STATE_IDLE && cli_left_ms(end) > 0)
        tern_client_step(c, cli_left_ms(end));
}

static void on_disconnect(tern_client *c, const struct tern_disconnect *why, void *user)
{
    struct run *r = user;
    (void)c;
    if (why->error == 0 || r->done || !r->connected)
        return;
    cli_error(r->a, "%s", why->text);
    if (r->result == 0)
        r->result = CLI_EXIT_CONN;
    r->done = true;
}

static void on_publish(tern_client *c, uint16_t pid, int rc, void *user)
{
    struct run *r = user;
    (void)c;
    if (rc >= 0 && rc < 0x80)
        return;
    if (rc < 0)
        cli_error(r->a, "message %u dropped: %s", pid, tern_client_last_error(c));
    else
        cli_error(r->a, "publish refused: %s (0x%02x)", tern_reason_text(rc), rc);
    r->result = CLI_EXIT_REFUSED;
}

/* Reads a whole file (or stdin when path is NULL) into a new malloc'd buffer. */
static int slurp(struct cli *a, const char *path, char **out, size_t *len)
{
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : 0;
    if (fd < 0) {
        cli_error(a, "cannot open %s: %s", path, strerror(errno));
        return CLI_EXIT_IO;
    }
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (!b)
            break;
        if (n == cap) {
            char *nb = cap > (256u << 20) ? NULL : realloc(b, cap * 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
        ssize_t k = read(fd, b + n, cap - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            if (k < 0) {
                cli_error(a, "read %s: %s", path ? path : "stdin", strerror(errno));
                free(b);
                b = NULL;
                n = SIZE_MAX;
            }
            break;
        }
        n += (size_t)k;
    }
    if (path)
        close(fd);
    if (!b) {
        if (n != SIZE_MAX)
            cli_error(a, "%s: out of memory or larger than 512 MB", path ? path : "stdin");
        return CLI_EXIT_IO;
    }
    *out = b;
    *len = n;
    return 0;
}

static int publish_one(struct run *r, tern_client *c, const void *p, size_t n)
{
    struct cli *a = r->a;
    const struct tern_properties *props = a->o.protocol == TERN_MQTT_5 ? &a->pub_props : NULL;
    for (;;) {
        int rc = tern_client_publish(c, a->topics[0], p, n, a->qos, a->retain, props, NULL);
        if (rc == 0)
            return 0;
        if (rc != TERN_ELIMIT) {
            cli_error(a, "cannot publish: %s", tern_error_text(rc));
            return CLI_EXIT_USAGE;
        }
        if (tern_client_state(c) == TERN_STATE_IDLE)
            return CLI_EXIT_CONN;
        tern_client_step(c, 1000); /* queue full: let the window drain */
    }
}

/* -l: one message per stdin line, read as stdin becomes readable. */
static int publish_lines(struct run *r, tern_client *c, int sig_fd, int64_t deadline)
{
    size_t cap = 65536, len = 0;
    char *line = malloc(cap);
    int rc = 0;
    bool eof = false;
    if (!line)
        return CLI_EXIT_IO;
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    while (!eof && !r->done && rc == 0) {
        if (deadline >= 0 && cli_left_ms(deadline) == 0) {
            cli_error(r->a, "timed out");
            rc = CLI_EXIT_TIMEOUT;
            break;
        }
        bool room = tern_client_pending(c) < 1000;
        int w = cli_wait(c, sig_fd, room ? 0 : -1, deadline >= 0 ? cli_left_ms(deadline) : -1);
        if (w & CLI_WAIT_SIGNAL)
            break;
        if (!(w & CLI_WAIT_INPUT))
            continue;
        if (len == cap) {
            char *n = cap > (64u << 20) ? NULL : realloc(line, cap * 2);
            if (!n) {
                cli_error(r->a, "stdin line too long");
                rc = CLI_EXIT_IO;
                break;
            }
            line = n;
            cap *= 2;
        }
        ssize_t k = read(0, line + len, cap - len);
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (k <= 0) {
            eof = true;
            if (len) /* a last line without newline */
                rc = publish_one(r, c, line, len);
            break;
        }
        len += (size_t)k;
        char *start = line, *nl;
        while (rc == 0 && (nl = memchr(start, '\n', len - (size_t)(start - line)))) {
            rc = publish_one(r, c, start, (size_t)(nl - start));
            start = nl + 1;
        }
        len -= (size_t)(start - line);
        memmove(line, start, len);
    }
    free(line);
    return rc;
}

int cmd_pub(int argc, char **argv)
{
    struct cli a;
    memset(&a, 0, sizeof a);
    a.cmd = CLI_PUB;
    a.name = "pub";
    int rc = cli_parse(&a, argc, argv);
    if (rc >= 0)
        return rc;
    char *data = NULL;
    size_t data_len = 0;
    if (a.file || a.stdin_whole) {
        rc = slurp(&a, a.file, &data, &data_len);
        if (rc)
            return rc;
    }
    struct run r = {.a = &a};
    a.o.cb.on_publish = on_publish;
    a.o.cb.on_disconnect = on_disconnect;
    a.o.cb.user = &r;
    int sig_fd = cli_signal_fd();
    int64_t deadline = a.timeout_s > 0 ? cli_now_ms() + (int64_t)(a.timeout_s * 1000) : -1;
    tern_client *c = NULL;
    rc = cli_connect(&a, &c);
    if (rc)
        goto out;
    r.connected = true;
    if (a.stdin_lines)
        rc = publish_lines(&r, c, sig_fd, deadline);
    else if (data)
        rc = publish_one(&r, c, data, data_len);
    else
        rc = publish_one(&r, c, a.message, a.message_len);
    /* wait until every message is written (QoS 0) or acknowledged (QoS 1/2) */
    while (rc == 0 && !r.done && tern_client_pending(c) > 0) {
        if (deadline >= 0 && cli_left_ms(deadline) == 0) {
            cli_error(&a, "timed out waiting for the broker's acknowledgement");
            rc = CLI_EXIT_TIMEOUT;
            break;
        }
        if (cli_wait(c, sig_fd, -1, deadline >= 0 ? cli_left_ms(deadline) : -1) & CLI_WAIT_SIGNAL)
            break;
    }
    r.done = true;
    finish_client(c);
out:
    tern_client_free(c);
    free(data);
    if (sig_fd >= 0)
        close(sig_fd);
    return rc ? rc : r.result;
}

/* ---- sub ---- */

static void sub_on_connect(tern_client *c, const struct tern_connack *ack, void *user)
{
    struct run *r = user;
    struct cli *a = r->a;
    if (ack->reason_code != 0)
        return; /* reported through on_disconnect */
    struct tern_subscription subs[CLI_MAX_TOPICS];
    for (size_t i = 0; i < a->n_topics; i++) {
        subs[i].filter = a->topics[i];
        subs[i].qos = a->qos;
        subs[i].options = 0;
    }
    int rc =
        tern_client_subscribe(c, subs, a->n_topics, a->sub_id, a->sub_user, a->n_sub_user, NULL);
    if (rc) {
        cli_error(a, "cannot subscribe: %s", tern_error_text(rc));
        r->result = CLI_EXIT_USAGE;
        r->done = true;
    }
}

static void sub_on_subscribe(tern_client *c, uint16_t pid, const uint8_t *codes, size_t n,
                             void *user)
{
    struct run *r = user;
    (void)c;
    (void)pid;
    for (size_t i = 0; i < n && i < r->a->n_topics; i++) {
        if (codes[i] < 0x80) {
            if (r->a->debug)
                fprintf(stderr, "tern sub: subscribed to '%s' (granted QoS %d)\n", r->a->topics[i],
                        codes[i]);
            continue;
        }
        cli_error(r->a, "subscription to '%s' refused: %s (0x%02x)", r->a->topics[i],
                  tern_reason_text(codes[i]), codes[i]);
        r->result = CLI_EXIT_REFUSED;
        r->done = true;
    }
}

static void sub_on_message(tern_client *c, const struct tern_message *m, void *user)
{
    struct run *r = user;
    (void)c;
    if (r->done || (r->a->no_retained && m->retain))
        return;
    cli_print_message(r->a, m);
    r->received++;
    if (r->a->count && r->received >= r->a->count)
        r->done = true;
}

int cmd_sub(int argc, char **argv)
{
    struct cli a;
    memset(&a, 0, sizeof a);
    a.cmd = CLI_SUB;
    a.name = "sub";
    int rc = cli_parse(&a, argc, argv);
    if (rc >= 0)
        return rc;
    struct run r = {.a = &a};
    a.o.cb.on_connect = sub_on_connect;
    a.o.cb.on_subscribe = sub_on_subscribe;
    a.o.cb.on_message = sub_on_message;
    a.o.cb.on_disconnect = on_disconnect;
    a.o.cb.user = &r;
    int sig_fd = cli_signal_fd();
    int64_t deadline = a.timeout_s > 0 ? cli_now_ms() + (int64_t)(a.timeout_s * 1000) : -1;
    tern_client *c = NULL;
    rc = cli_connect(&a, &c);
    if (rc)
        goto out;
    r.connected = true;
    while (!r.done && tern_client_state(c) != TERN_STATE_IDLE) {
        if (deadline >= 0 && cli_left_ms(deadline) == 0) {
            if (a.count) { /* -W with -C: fewer messages than asked for is a failure */
                cli_error(&a, "timed out after %ld of %ld messages", r.received, a.count);
                r.result = CLI_EXIT_TIMEOUT;
            }
            break;
        }
        if (cli_wait(c, sig_fd, -1, deadline >= 0 ? cli_left_ms(deadline) : -1) & CLI_WAIT_SIGNAL)
            break;
    }
    r.done = true;
    finish_client(c);
out:
    tern_client_free(c);
    if (sig_fd >= 0)
        close(sig_fd);
    return rc ? rc : r.result;
}

/* ---- rr ---- */

static void rr_on_connect(tern_client *c, const struct tern_connack *ack, void *user)
{
    struct run *r = user;
    if (ack->reason_code != 0)
        return;
    struct tern_subscription s = {r->a->response_topic, r->a->qos, 0};
    if (tern_client_subscribe(c, &s, 1, 0, NULL, 0, NULL)) {
        cli_error(r->a, "cannot subscribe to the response topic");
        r->result = CLI_EXIT_USAGE;
        r->done = true;
    }
}

static void rr_on_subscribe(tern_client *c, uint16_t pid, const uint8_t *codes, size_t n,
                            void *user)
{
    struct run *r = user;
    struct cli *a = r->a;
    (void)pid;
    if (n < 1 || codes[0] >= 0x80) {
        cli_error(a, "subscription to '%s' refused: %s (0x%02x)", a->response_topic,
                  tern_reason_text(n ? codes[0] : 0x80), n ? codes[0] : 0x80);
        r->result = CLI_EXIT_REFUSED;
        r->done = true;
        return;
    }
    if (a->debug)
        fprintf(stderr, "tern rr: subscribed to '%s'\n", a->response_topic);
    a->pub_props.has |= TERN_PROP_RESPONSE_TOPIC | TERN_PROP_CORRELATION_DATA;
    a->pub_props.response_topic = a->response_topic;
    a->pub_props.correlation_data = r->corr;
    a->pub_props.correlation_len = r->corr_len;
    int rc = tern_client_publish(c, a->topics[0], r->payload, r->payload_len, a->qos, false,
                                 &a->pub_props, NULL);
    if (rc) {
        cli_error(a, "cannot publish the request: %s", tern_error_text(rc));
        r->result = CLI_EXIT_USAGE;
        r->done = true;
    }
}

static void rr_on_message(tern_client *c, const struct tern_message *m, void *user)
{
    struct run *r = user;
    (void)c;
    if (r->done || strcmp(m->topic, r->a->response_topic) != 0)
        return;
    const struct tern_properties *p = m->props;
    /* a response with other correlation data answers somebody else's request */
    if ((p->has & TERN_PROP_CORRELATION_DATA) &&
        (p->correlation_len != r->corr_len || memcmp(p->correlation_data, r->corr, r->corr_len)))
        return;
    cli_print_message(r->a, m);
    r->done = true;
}

int cmd_rr(int argc, char **argv)
{
    struct cli a;
    memset(&a, 0, sizeof a);
    a.cmd = CLI_RR;
    a.name = "rr";
    int rc = cli_parse(&a, argc, argv);
    if (rc >= 0)
        return rc;
    struct run r = {.a = &a};
    char *data = NULL;
    if (a.file || a.stdin_whole) {
        rc = slurp(&a, a.file, &data, &r.payload_len);
        if (rc)
            return rc;
        r.payload = data;
    } else if (a.message) {
        r.payload = a.message;
        r.payload_len = a.message_len;
    }
    if (a.correlation) {
        r.corr_len =
            strlen(a.correlation) < sizeof r.corr ? strlen(a.correlation) : sizeof r.corr - 1;
        memcpy(r.corr, a.correlation, r.corr_len);
    } else {
        unsigned char rnd[8];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
            memset(rnd, 0x5a, sizeof rnd);
        for (size_t i = 0; i < sizeof rnd; i++)
            snprintf(r.corr + 2 * i, 3, "%02x", rnd[i]);
        r.corr_len = 2 * sizeof rnd;
    }
    if (a.timeout_s <= 0)
        a.timeout_s = 10;
    a.o.cb.on_connect = rr_on_connect;
    a.o.cb.on_subscribe = rr_on_subscribe;
    a.o.cb.on_message = rr_on_message;
    a.o.cb.on_publish = on_publish;
    a.o.cb.on_disconnect = on_disconnect;
    a.o.cb.user = &r;
    int sig_fd = cli_signal_fd();
    int64_t deadline = cli_now_ms() + (int64_t)(a.timeout_s * 1000);
    tern_client *c = NULL;
    rc = cli_connect(&a, &c);
    if (rc)
        goto out;
    r.connected = true;
    while (!r.done && tern_client_state(c) != TERN_STATE_IDLE) {
        if (cli_left_ms(deadline) == 0) {
            cli_error(&a, "no response on '%s' within %g s", a.response_topic, a.timeout_s);
            r.result = CLI_EXIT_TIMEOUT;
            break;
        }
        if (cli_wait(c, sig_fd, -1, cli_left_ms(deadline)) & CLI_WAIT_SIGNAL)
            break;
    }
    r.done = true;
    finish_client(c);
out:
    tern_client_free(c);
    free(data);
    if (sig_fd >= 0)
        close(sig_fd);
    return rc ? rc : r.result;
}
