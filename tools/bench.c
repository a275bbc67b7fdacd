/* bench.c - `tern bench`: options, the layout of each scenario (which connection publishes or
 * subscribes to what, on which worker thread), the run phases, the once-a-second progress line
 * and the final report (human table or --json).
 *
 * Phases: SETUP (connect, subscribe; bounded by 30 s) -> RUN (-d seconds; publishers send
 * within their window) -> DRAIN (publishers stop; wait until every message sent is received,
 * at most 3 s) -> STOP. The main thread waits on a timerfd (100 ms ticks) in an epoll: it never
 * sleeps to synchronise. Workers are woken through their eventfd at each phase change. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "bench.h"
#include "cli.h"
#include "codec/codec.h"

static const char bench_help[] =
    "Usage: tern bench SCENARIO [options]\n"
    "Load generator: epoll, non-blocking sockets, many connections per thread, one write per\n"
    "connection per loop iteration. Counts only messages actually received and checks loss,\n"
    "duplicates and per-publisher order (sequence numbers in the payload).\n\n"
    "Scenarios:\n"
    "  pairs        P publisher/subscriber pairs, each pair on its own topic (-P, default 100)\n"
    "  fanout       1 publisher, S subscribers on one topic (-S, default 100)\n"
    "  fanin        P publishers, 1 subscriber on a wildcard (-P, default 16)\n"
    "  latency      P pairs (default 1) at a fixed total rate (-R, default 10000 msgs/s):\n"
    "               publish-to-receive p50/p99/p99.9/max\n"
    "  connections  N idle clients (-N, default 10000): connect rate and, with --broker-pid,\n"
    "               the broker's resident memory per connection; above 4000 connections to a\n"
    "               127.x host, sources are spread over 127.0.0.1, 127.0.0.2, ... (4000 each)\n\n"
    "Options:\n"
    "  -h, --host HOST       broker host (default 127.0.0.1)\n"
    "  -p, --port PORT       broker port (default 1883)\n"
    "  -V, --protocol-version 311|5   (default 5)\n"
    "  -T, --threads N       worker threads (default: half the CPUs, at least 1)\n"
    "  -d, --duration S      seconds of load (default 10)\n"
    "  -q, --qos Q           0, 1 or 2 (default 0)\n"
    "  -s, --size BYTES      payload size, at least 20 (default 64)\n"
    "  -w, --window N        messages sent and not yet received per publisher (default 100;\n"
    "                        fanin: 50, so that P x w stays below a broker's per-client queue\n"
    "                        of 1000 messages: messages a broker drops are counted as lost)\n"
    "  -P, --publishers N    publishers (pairs, fanin, latency)\n"
    "  -S, --subscribers N   subscribers (fanout)\n"
    "  -R, --rate N          latency: total messages per second (default 10000)\n"
    "  -N, --connections N   connections: number of idle clients (default 10000)\n"
    "  --parallel N          connections: connects in progress per thread (default 256)\n"
    "  --no-spread           connections: do not bind to 127.0.0.x source addresses\n"
    "  --broker-pid PID      read the broker's CPU time and VmRSS from /proc/PID\n"
    "  --json                print the result as one JSON object\n"
    "  --help                this text\n\n"
    "Exit codes: 0 done, 1 setup failed (connect/subscribe), 2 usage error, 6 delivery\n"
    "problems (loss at QoS 1/2, duplicates at QoS 0/2, or messages out of order).\n";

enum { OPT_HELP = 256, OPT_BROKER_PID, OPT_JSON, OPT_PARALLEL, OPT_NO_SPREAD };

static const struct option bench_opts_long[] = {
    {"help", no_argument, NULL, OPT_HELP},
    {"host", required_argument, NULL, 'h'},
    {"port", required_argument, NULL, 'p'},
    {"protocol-version", required_argument, NULL, 'V'},
    {"threads", required_argument, NULL, 'T'},
    {"duration", required_argument, NULL, 'd'},
    {"qos", required_argument, NULL, 'q'},
    {"size", required_argument, NULL, 's'},
    {"window", required_argument, NULL, 'w'},
    {"publishers", required_argument, NULL, 'P'},
    {"subscribers", required_argument, NULL, 'S'},
    {"rate", required_argument, NULL, 'R'},
    {"connections", required_argument, NULL, 'N'},
    {"parallel", required_argument, NULL, OPT_PARALLEL},
    {"no-spread", no_argument, NULL, OPT_NO_SPREAD},
    {"broker-pid", required_argument, NULL, OPT_BROKER_PID},
    {"json", no_argument, NULL, OPT_JSON},
    {NULL, 0, NULL, 0},
};

static bool num(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !(v >= lo && v <= hi))
        return false;
    *out = v;
    return true;
}

static int bench_usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "tern bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see tern bench --help)\n");
    return CLI_EXIT_USAGE;
}

/* Parses options into o. Returns -1 to go on, or an exit code. */
static int parse(struct bench_opts *o, int argc, char **argv)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    *o = (struct bench_opts){.host = "127.0.0.1",
                             .port = 1883,
                             .duration_s = 10,
                             .payload = 64,
                             .window = 100,
                             .rate = 10000,
                             .conns = 10000,
                             .version = 5,
                             .threads = cpus > 1 ? (int)(cpus / 2) : 1,
                             .spread_src = true,
                             .connect_parallel = 256};
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        fputs(bench_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : 0;
    }
    static const char *names[] = {"pairs", "fanout", "fanin", "latency", "connections"};
    int sc = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(argv[1], names[i]))
            sc = i;
    if (sc < 0)
        return bench_usage_error("unknown scenario '%s'", argv[1]);
    o->scenario = (enum bench_scenario)sc;
    uint32_t pubs = 0, subs = 0;
    bool window_given = false;
    optind = 2;
    opterr = 0;
    int c;
    double v;
    while ((c = getopt_long(argc, argv, "+h:p:V:T:d:q:s:w:P:S:R:N:", bench_opts_long, NULL)) !=
           -1) {
        switch (c) {
        case OPT_HELP: fputs(bench_help, stdout); return 0;
        case 'h': o->host = optarg; break;
        case 'p':
            if (!num(optarg, 1, 65535, &v))
                return bench_usage_error("bad port '%s'", optarg);
            o->port = (uint16_t)v;
            break;
        case 'V':
            if (!strcmp(optarg, "311") || !strcmp(optarg, "mqttv311"))
                o->version = 4;
            else if (!strcmp(optarg, "5") || !strcmp(optarg, "mqttv5"))
                o->version = 5;
            else
                return bench_usage_error("bad protocol version '%s'", optarg);
            break;
        case 'T':
            if (!num(optarg, 1, 1024, &v))
                return bench_usage_error("bad thread count '%s'", optarg);
            o->threads = (int)v;
            break;
        case 'd':
            if (!num(optarg, 0.1, 86400, &v))
                return bench_usage_error("bad duration '%s'", optarg);
            o->duration_s = v;
            break;
        case 'q':
            if (!num(optarg, 0, 2, &v) || v != floor(v))
                return bench_usage_error("bad QoS '%s'", optarg);
            o->qos = (int)v;
            break;
        case 's':
            if (!num(optarg, BENCH_PAYLOAD_MIN, 16 << 20, &v))
                return bench_usage_error("payload size '%s' must be 20..16777216 (the payload "
                                         "carries publisher id, sequence and timestamp)",
                                         optarg);
            o->payload = (uint32_t)v;
            break;
        case 'w':
            if (!num(optarg, 1, 1 << 24, &v))
                return bench_usage_error("bad window '%s'", optarg);
            o->window = (uint32_t)v;
            window_given = true;
            break;
        case 'P':
        case 'S':
            if (!num(optarg, 1, 1000000, &v))
                return bench_usage_error("bad count '%s'", optarg);
            *(c == 'P' ? &pubs : &subs) = (uint32_t)v;
            break;
        case 'R':
            if (!num(optarg, 1, 1e9, &v))
                return bench_usage_error("bad rate '%s'", optarg);
            o->rate = v;
            break;
        case 'N':
            if (!num(optarg, 1, 10000000, &v))
                return bench_usage_error("bad connection count '%s'", optarg);
            o->conns = (uint32_t)v;
            break;
        case OPT_PARALLEL:
            if (!num(optarg, 1, 100000, &v))
                return bench_usage_error("bad --parallel '%s'", optarg);
            o->connect_parallel = (uint32_t)v;
            break;
        case OPT_NO_SPREAD: o->spread_src = false; break;
        case OPT_BROKER_PID:
            if (!num(optarg, 1, 1 << 30, &v))
                return bench_usage_error("bad pid '%s'", optarg);
            o->broker_pid = (int)v;
            break;
        case OPT_JSON: o->json = true; break;
        default: return bench_usage_error("unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return bench_usage_error("unexpected argument '%s'", argv[optind]);
    switch (o->scenario) {
    case B_PAIRS: o->pubs = o->subs = pubs ? pubs : 100; break;
    case B_LATENCY: o->pubs = o->subs = pubs ? pubs : 1; break;
    case B_FANOUT:
        o->pubs = 1;
        o->subs = subs ? subs : 100;
        break;
    case B_FANIN:
        o->pubs = pubs ? pubs : 16;
        o->subs = 1;
        if (!window_given)
            o->window = 50;
        break;
    case B_CONNECTIONS: break;
    }
    snprintf(o->prefix, sizeof o->prefix, "tern-bench/%d", (int)getpid());
    return -1;
}

/* ---- layout ---- */

static struct worker *pick(struct bench *b, size_t i)
{
    return &b->workers[i % (size_t)b->o.threads];
}

static int add_conn(struct bench *b, struct worker *w, uint8_t role)
{
    struct bconn *c = &b->conns[b->n_conns];
    c->index = (uint32_t)b->n_conns++;
    c->w = w;
    c->fd = -1;
    c->role = role;
    c->recv_max = 65535;
    w->conns[w->n_conns++] = c;
    return 0;
}

static bool make_publisher(struct bench *b, struct bconn *c, uint32_t id, const char *topic)
{
    const struct bench_opts *o = &b->o;
    c->pub_id = id;
    c->pub = &b->pubs[id];
    c->pub->fan = o->scenario == B_FANOUT ? o->subs : 1;
    snprintf(c->topic, sizeof c->topic, "%s", topic);
    size_t tl = strlen(c->topic);
    uint32_t rem = (uint32_t)(2 + tl + (o->qos ? 2 : 0) + (o->version == 5 ? 1 : 0) + o->payload);
    uint8_t *p = c->prefix;
    *p++ = (uint8_t)(0x30 | (o->qos << 1));
    p += codec_varint_encode(p, rem);
    *p++ = (uint8_t)(tl >> 8);
    *p++ = (uint8_t)tl;
    memcpy(p, c->topic, tl);
    c->prefix_len = (size_t)(p - c->prefix) + tl;
    if (o->qos) {
        c->pid_used = calloc(1024, sizeof *c->pid_used);
        c->next_pid = 1;
        if (!c->pid_used)
            return false;
    }
    c->w->pubs[c->w->n_pubs++] = c;
    return true;
}

static bool make_subscriber(struct bench *b, struct bconn *c, const char *filter, uint32_t base,
                            uint32_t count)
{
    snprintf(c->topic, sizeof c->topic, "%s", filter);
    c->pub_base = base;
    c->pub_count = count;
    c->tracks = calloc(count, sizeof *c->tracks);
    c->touched = calloc(count, sizeof *c->touched);
    return c->tracks && c->touched;
}

/* Creates workers, connections and publishers for the scenario. */
static bool layout(struct bench *b)
{
    const struct bench_opts *o = &b->o;
    size_t total = o->scenario == B_CONNECTIONS ? o->conns : (size_t)o->pubs + o->subs;
    b->conns = calloc(total, sizeof *b->conns);
    b->workers = calloc((size_t)o->threads, sizeof *b->workers);
    b->n_pubs = o->scenario == B_CONNECTIONS ? 0 : o->pubs;
    b->pubs = calloc(b->n_pubs ? b->n_pubs : 1, sizeof *b->pubs);
    b->pad = calloc(1, o->payload);
    if (!b->conns || !b->workers || !b->pubs || !b->pad)
        return false;
    for (int i = 0; i < o->threads; i++) {
        struct worker *w = &b->workers[i];
        w->id = i;
        w->b = b;
        w->conns = calloc(total / (size_t)o->threads + 2, sizeof *w->conns);
        w->pubs = calloc(b->n_pubs / (size_t)o->threads + 2, sizeof *w->pubs);
        w->dirty = calloc(total / (size_t)o->threads + 2, sizeof *w->dirty);
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (!w->conns || !w->pubs || !w->dirty || w->ep < 0 || w->wake_fd < 0)
            return false;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(w->ep, EPOLL_CTL_ADD, w->wake_fd, &ev);
    }
    char topic[96], filter[96];
    switch (o->scenario) {
    case B_PAIRS:
    case B_LATENCY:
        for (uint32_t i = 0; i < o->pubs; i++) { /* a pair shares a thread: tight windows */
            struct worker *w = pick(b, i);
            snprintf(topic, sizeof topic, "%s/p%u", o->prefix, i);
            add_conn(b, w, ROLE_SUB);
            if (!make_subscriber(b, &b->conns[b->n_conns - 1], topic, i, 1))
                return false;
            add_conn(b, w, ROLE_PUB);
            if (!make_publisher(b, &b->conns[b->n_conns - 1], i, topic))
                return false;
        }
        return true;
    case B_FANOUT:
        snprintf(topic, sizeof topic, "%s/all", o->prefix);
        for (uint32_t i = 0; i < o->subs; i++) {
            add_conn(b, pick(b, i + 1), ROLE_SUB);
            if (!make_subscriber(b, &b->conns[b->n_conns - 1], topic, 0, 1))
                return false;
        }
        add_conn(b, pick(b, 0), ROLE_PUB);
        return make_publisher(b, &b->conns[b->n_conns - 1], 0, topic);
    case B_FANIN:
        snprintf(filter, sizeof filter, "%s/in/+", o->prefix);
        add_conn(b, pick(b, 0), ROLE_SUB);
        if (!make_subscriber(b, &b->conns[0], filter, 0, o->pubs))
            return false;
        for (uint32_t i = 0; i < o->pubs; i++) {
            snprintf(topic, sizeof topic, "%s/in/%u", o->prefix, i);
            add_conn(b, pick(b, i + 1), ROLE_PUB);
            if (!make_publisher(b, &b->conns[b->n_conns - 1], i, topic))
                return false;
        }
        return true;
    case B_CONNECTIONS:
        for (uint32_t i = 0; i < o->conns; i++)
            add_conn(b, pick(b, i), ROLE_IDLE);
        return true;
    }
    return false;
}

/* ---- measurements ---- */

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* Broker CPU seconds (utime + stime) from /proc/PID/stat, -1 when unreadable. */
static double broker_cpu_s(int pid)
{
    if (pid <= 0)
        return -1;
    char path[64], line[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    char *p = strrchr(line, ')'); /* the command name may contain spaces */
    if (!p)
        return -1;
    unsigned long ut = 0, st = 0;
    /* after ")": state(3) ... utime is field 14, stime 15 */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Broker VmRSS in kB from /proc/PID/status, -1 when unreadable. */
static long broker_rss_kb(int pid)
{
    if (pid <= 0)
        return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6))
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

struct totals {
    uint64_t sent, recv, ready, errors;
};

static struct totals sum(struct bench *b)
{
    struct totals t = {0};
    for (int i = 0; i < b->o.threads; i++) {
        struct worker *w = &b->workers[i];
        t.sent += atomic_load_explicit(&w->sent, memory_order_relaxed);
        t.recv += atomic_load_explicit(&w->recv, memory_order_relaxed);
        t.ready += atomic_load_explicit(&w->ready, memory_order_relaxed);
        t.errors += atomic_load_explicit(&w->errors, memory_order_relaxed);
    }
    return t;
}

/* Receipts the publishers expect (sent x fan) vs those counted. */
static bool drained(struct bench *b)
{
    for (size_t i = 0; i < b->n_pubs; i++) {
        uint64_t s = atomic_load(&b->pubs[i].sent), r = atomic_load(&b->pubs[i].recv);
        if (r < s * b->pubs[i].fan)
            return false;
    }
    return true;
}

static void set_phase(struct bench *b, int phase)
{
    atomic_store(&b->phase, phase);
    for (int i = 0; i < b->o.threads; i++)
        bench_worker_wake(&b->workers[i]);
}

static const char *first_error(struct bench *b)
{
    for (int i = 0; i < b->o.threads; i++)
        if (b->workers[i].first_error[0])
            return b->workers[i].first_error;
    return "";
}

/* Waits for the next 100 ms tick of the timer (epoll on a timerfd). */
static void tick(int ep, int tfd)
{
    struct epoll_event ev;
    if (epoll_wait(ep, &ev, 1, 1000) == 1) {
        uint64_t n;
        (void)!read(tfd, &n, sizeof n);
    }
}

struct result {
    double run_s, drain_s, connect_s;
    uint64_t sent, recv_in_run, recv, unique, dups, ooo, lost, foreign;
    uint64_t p50, p99, p999, max, lat_count;
    double self_cpu, broker_cpu;
    long rss_before, rss_after;
    uint64_t connected, errors, refused;
};

static uint64_t percentile(const uint64_t *h, uint64_t count, double q)
{
    uint64_t want = (uint64_t)ceil(q * (double)count), seen = 0;
    for (uint32_t i = 0; i < BENCH_HIST_N; i++) {
        seen += h[i];
        if (seen >= want && h[i])
            return bench_hist_value(i);
    }
    return 0;
}

static void collect(struct bench *b, struct result *r)
{
    uint64_t *hist = calloc(BENCH_HIST_N, sizeof *hist);
    if (!hist)
        return;
    for (int i = 0; i < b->o.threads; i++) {
        struct worker *w = &b->workers[i];
        for (uint32_t k = 0; k < BENCH_HIST_N; k++)
            hist[k] += w->hist[k];
        r->lat_count += w->lat_count;
        if (w->lat_max > r->max)
            r->max = w->lat_max;
        r->foreign += w->foreign;
        r->refused += atomic_load(&w->refused);
    }
    r->p50 = percentile(hist, r->lat_count, 0.50);
    r->p99 = percentile(hist, r->lat_count, 0.99);
    r->p999 = percentile(hist, r->lat_count, 0.999);
    free(hist);
    for (size_t i = 0; i < b->n_conns; i++) {
        struct bconn *c = &b->conns[i];
        for (uint32_t k = 0; c->role == ROLE_SUB && k < c->pub_count; k++) {
            struct track *t = &c->tracks[k];
            uint64_t sent = atomic_load(&b->pubs[c->pub_base + k].sent);
            r->unique += t->unique;
            r->dups += t->dups;
            r->ooo += t->out_of_order;
            r->lost += sent > t->unique ? sent - t->unique : 0;
            if (getenv("TERN_BENCH_DEBUG") && sent != t->unique)
                fprintf(stderr, "sub %zu pub %u: sent %llu unique %llu max_seq1 %llu\n", i,
                        c->pub_base + k, (unsigned long long)sent, (unsigned long long)t->unique,
                        (unsigned long long)t->max_seq1);
        }
    }
}

static const char *scenario_name(enum bench_scenario s)
{
    static const char *const n[] = {"pairs", "fanout", "fanin", "latency", "connections"};
    return n[s];
}

static void report(const struct bench *b, const struct result *r)
{
    const struct bench_opts *o = &b->o;
    double rate = r->run_s > 0 ? (double)r->recv_in_run / r->run_s : 0;
    /* both over load + drain: the broker CPU is sampled after setup and after the drain */
    double per_broker = r->broker_cpu > 0 ? (double)r->recv / r->broker_cpu : 0;
    if (o->json) {
        printf("{\"scenario\":\"%s\",\"qos\":%d,\"payload\":%u,\"window\":%u,\"threads\":%d,"
               "\"protocol\":%d,",
               scenario_name(o->scenario), o->qos, o->payload, o->window, o->threads,
               o->version == 5 ? 5 : 311);
        if (o->scenario == B_CONNECTIONS) {
            printf("\"connections\":%u,\"connected\":%llu,\"errors\":%llu,\"refused\":%llu,"
                   "\"connect_s\":%.3f,\"connects_per_s\":%.1f,",
                   o->conns, (unsigned long long)r->connected, (unsigned long long)r->errors,
                   (unsigned long long)r->refused, r->connect_s,
                   r->connect_s > 0 ? (double)r->connected / r->connect_s : 0);
            if (r->rss_after >= 0 && r->rss_before >= 0 && r->connected)
                printf("\"broker_rss_kb_before\":%ld,\"broker_rss_kb_after\":%ld,"
                       "\"broker_bytes_per_connection\":%.0f,",
                       r->rss_before, r->rss_after,
                       (double)(r->rss_after - r->rss_before) * 1024.0 / (double)r->connected);
        } else {
            printf("\"publishers\":%u,\"subscribers\":%u,\"duration_s\":%.3f,\"drain_s\":%.3f,"
                   "\"sent\":%llu,\"received\":%llu,\"received_in_run\":%llu,\"unique\":%llu,"
                   "\"lost\":%llu,\"duplicates\":%llu,\"out_of_order\":%llu,\"foreign\":%llu,"
                   "\"errors\":%llu,\"msgs_per_s\":%.1f,"
                   "\"latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f},",
                   o->pubs, o->subs, r->run_s, r->drain_s, (unsigned long long)r->sent,
                   (unsigned long long)r->recv, (unsigned long long)r->recv_in_run,
                   (unsigned long long)r->unique, (unsigned long long)r->lost,
                   (unsigned long long)r->dups, (unsigned long long)r->ooo,
                   (unsigned long long)r->foreign, (unsigned long long)r->errors, rate,
                   r->p50 / 1e3, r->p99 / 1e3, r->p999 / 1e3, r->max / 1e3);
            if (o->scenario == B_LATENCY)
                printf("\"rate_target\":%.0f,", o->rate);
        }
        printf("\"loader_cpu_s\":%.3f", r->self_cpu);
        if (r->broker_cpu >= 0 && o->broker_pid)
            printf(",\"broker_cpu_s\":%.3f,\"msgs_per_broker_cpu_s\":%.1f,\"broker_rss_kb\":%ld",
                   r->broker_cpu, per_broker, r->rss_after);
        printf("}\n");
        return;
    }
    printf("\n%-22s %s (QoS %d, MQTT %s, payload %u B, window %u, %d threads)\n", "scenario",
           scenario_name(o->scenario), o->qos, o->version == 5 ? "5" : "3.1.1", o->payload,
           o->window, o->threads);
    if (o->scenario == B_CONNECTIONS) {
        printf("%-22s %llu of %u (%llu errors, %llu refused)\n", "connected",
               (unsigned long long)r->connected, o->conns, (unsigned long long)r->errors,
               (unsigned long long)r->refused);
        printf("%-22s %.0f connections/s (%.3f s)\n", "connect rate",
               r->connect_s > 0 ? (double)r->connected / r->connect_s : 0, r->connect_s);
        if (r->rss_after >= 0 && r->rss_before >= 0 && r->connected)
            printf("%-22s %.0f bytes (VmRSS %ld kB -> %ld kB)\n", "broker memory/conn",
                   (double)(r->rss_after - r->rss_before) * 1024.0 / (double)r->connected,
                   r->rss_before, r->rss_after);
    } else {
        printf("%-22s %u / %u\n", "publishers/subscribers", o->pubs, o->subs);
        printf("%-22s %.2f s (+%.2f s drain)\n", "duration", r->run_s, r->drain_s);
        printf("%-22s %llu\n", "sent", (unsigned long long)r->sent);
        printf("%-22s %llu (%llu during the run)\n", "received", (unsigned long long)r->recv,
               (unsigned long long)r->recv_in_run);
        printf("%-22s %.0f msgs/s\n", "throughput", rate);
        printf("%-22s %llu lost, %llu duplicates, %llu out of order\n", "delivery",
               (unsigned long long)r->lost, (unsigned long long)r->dups,
               (unsigned long long)r->ooo);
        printf("%-22s p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", "latency (us)", r->p50 / 1e3,
               r->p99 / 1e3, r->p999 / 1e3, r->max / 1e3);
        if (r->errors)
            printf("%-22s %llu (%s)\n", "connection errors", (unsigned long long)r->errors,
                   first_error((struct bench *)b));
    }
    printf("%-22s %.2f s\n", "loader CPU", r->self_cpu);
    if (o->broker_pid && r->broker_cpu >= 0) {
        printf("%-22s %.2f s\n", "broker CPU", r->broker_cpu);
        if (o->scenario != B_CONNECTIONS)
            printf("%-22s %.0f\n", "msgs per broker CPU s", per_broker);
        printf("%-22s %ld kB\n", "broker VmRSS", r->rss_after);
    }
}

static void progress(const struct bench *b, double t, const struct totals *now,
                     const struct totals *prev, double dt)
{
    FILE *f = b->o.json ? stderr : stdout; /* keep stdout pure JSON */
    if (b->o.scenario == B_CONNECTIONS)
        fprintf(f, "[%5.1fs] connected %llu (+%.0f/s) errors %llu\n", t,
                (unsigned long long)now->ready, (double)(now->ready - prev->ready) / dt,
                (unsigned long long)now->errors);
    else
        fprintf(f, "[%5.1fs] sent %llu recv %llu  %.0f msgs/s  in flight %lld\n", t,
                (unsigned long long)now->sent, (unsigned long long)now->recv,
                (double)(now->recv - prev->recv) / dt,
                (long long)(now->sent - now->recv)); /* approximate for fanout */
    fflush(f);
}

/* Runs the phases; fills r. Returns 0, or CLI_EXIT_CONN when setup failed. */
static int run(struct bench *b, struct result *r)
{
    const struct bench_opts *o = &b->o;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct itimerspec its = {{0, 100000000}, {0, 100000000}};
    timerfd_settime(tfd, 0, &its, NULL);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    r->rss_before = broker_rss_kb(o->broker_pid);
    size_t expected = b->n_conns;
    int rc = 0;
    for (int i = 0; i < o->threads; i++)
        pthread_create(&b->workers[i].thread, NULL, bench_worker_main, &b->workers[i]);
    int64_t t0 = bench_now_ns();
    if (o->scenario != B_CONNECTIONS) { /* SETUP: everyone connected and subscribed */
        for (;;) {
            struct totals t = sum(b);
            if (t.errors) {
                fprintf(stderr, "tern bench: setup failed: %s\n", first_error(b));
                rc = CLI_EXIT_CONN;
                break;
            }
            if (t.ready == expected)
                break;
            if (bench_now_ns() - t0 > 30000000000LL) {
                fprintf(stderr, "tern bench: setup timed out (%llu of %zu ready)\n",
                        (unsigned long long)t.ready, expected);
                rc = CLI_EXIT_CONN;
                break;
            }
            tick(ep, tfd);
        }
    }
    double cpu0 = self_cpu_s(), bcpu0 = broker_cpu_s(o->broker_pid);
    struct totals prev = sum(b), t = prev;
    int64_t start = bench_now_ns(), last = start, end = start + (int64_t)(o->duration_s * 1e9);
    if (rc == 0) {
        atomic_store(&b->run_start_ns, start);
        set_phase(b, PH_RUN);
        int64_t all_connected = -1;
        while (bench_now_ns() < end) {
            tick(ep, tfd);
            int64_t now = bench_now_ns();
            t = sum(b);
            if (o->scenario == B_CONNECTIONS && all_connected < 0 && t.ready + t.errors >= expected)
                all_connected = now;
            if (now - last >= 1000000000LL) {
                progress(b, (double)(now - start) / 1e9, &t, &prev, (double)(now - last) / 1e9);
                prev = t;
                last = now;
            }
        }
        if (all_connected > 0) { /* exact: when the last connection became ready */
            int64_t last_ready = 0;
            for (int i = 0; i < o->threads; i++) {
                int64_t t_i = atomic_load(&b->workers[i].last_ready_ns);
                last_ready = t_i > last_ready ? t_i : last_ready;
            }
            if (last_ready > start)
                all_connected = last_ready;
        }
        r->connect_s = (double)((all_connected > 0 ? all_connected : bench_now_ns()) - start) / 1e9;
        r->run_s = (double)(bench_now_ns() - start) / 1e9;
        r->recv_in_run = sum(b).recv;
        set_phase(b, PH_DRAIN);
        int64_t dstart = bench_now_ns();
        while (o->scenario != B_CONNECTIONS && !drained(b) &&
               bench_now_ns() - dstart < 3000000000LL)
            tick(ep, tfd);
        r->drain_s = (double)(bench_now_ns() - dstart) / 1e9;
    }
    r->self_cpu = self_cpu_s() - cpu0;
    double bcpu1 = broker_cpu_s(o->broker_pid);
    r->broker_cpu = bcpu0 >= 0 && bcpu1 >= 0 ? bcpu1 - bcpu0 : -1;
    r->rss_after = broker_rss_kb(o->broker_pid);
    set_phase(b, PH_STOP);
    for (int i = 0; i < o->threads; i++)
        pthread_join(b->workers[i].thread, NULL);
    t = sum(b);
    r->sent = t.sent;
    r->recv = t.recv;
    r->connected = t.ready;
    r->errors = t.errors;
    close(tfd);
    close(ep);
    return rc;
}

static void teardown(struct bench *b)
{
    for (size_t i = 0; i < b->n_conns; i++) {
        struct bconn *c = &b->conns[i];
        if (c->fd >= 0)
            close(c->fd);
        free(c->rbuf);
        free(c->wbuf);
        free(c->pid_used);
        for (uint32_t k = 0; c->tracks && k < c->pub_count; k++)
            free(c->tracks[k].seen);
        free(c->tracks);
        free(c->touched);
    }
    for (int i = 0; b->workers && i < b->o.threads; i++) {
        free(b->workers[i].conns);
        free(b->workers[i].pubs);
        free(b->workers[i].dirty);
        if (b->workers[i].ep >= 0)
            close(b->workers[i].ep);
        if (b->workers[i].wake_fd >= 0)
            close(b->workers[i].wake_fd);
    }
    free(b->workers);
    free(b->conns);
    free(b->pubs);
    free(b->pad);
}

/* Raises the open-file limit to what `need` connections take (soft up to hard). Returns how many
 * connections fit, keeping 64 descriptors for epoll, eventfds and /proc reads. */
static size_t raise_nofile(size_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return need;
    if (rl.rlim_cur < need + 64) {
        rl.rlim_cur = need + 64 < rl.rlim_max ? need + 64 : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= need + 64)
        return need;
    return rl.rlim_cur > 64 ? (size_t)rl.rlim_cur - 64 : 0;
}

int cmd_bench(int argc, char **argv)
{
    struct bench b;
    memset(&b, 0, sizeof b);
    int rc = parse(&b.o, argc, argv);
    if (rc >= 0)
        return rc;
    if (b.o.scenario == B_CONNECTIONS && strncmp(b.o.host, "127.", 4) != 0)
        b.o.spread_src = false; /* source spreading only makes sense on loopback */
    if (b.o.scenario == B_CONNECTIONS && b.o.conns <= BENCH_PER_SOURCE)
        b.o.spread_src = false;
    size_t total = b.o.scenario == B_CONNECTIONS ? b.o.conns : (size_t)b.o.pubs + b.o.subs;
    if ((size_t)b.o.threads > total)
        b.o.threads = (int)total;
    size_t fit = raise_nofile(total);
    if (fit < total && b.o.scenario == B_CONNECTIONS && fit > 0) {
        fprintf(stderr, "tern bench: open-file limit: -N lowered from %u to %zu\n", b.o.conns, fit);
        b.o.conns = (uint32_t)fit;
        total = fit;
    } else if (fit < total) {
        fprintf(stderr, "tern bench: the open-file limit allows %zu connections, %zu needed\n", fit,
                total);
        return CLI_EXIT_CONN;
    }
    if (!layout(&b)) {
        fprintf(stderr, "tern bench: out of memory or file descriptors setting up\n");
        teardown(&b);
        return CLI_EXIT_CONN;
    }
    struct result r = {0};
    rc = run(&b, &r);
    collect(&b, &r);
    if (rc == 0)
        report(&b, &r);
    teardown(&b);
    if (rc)
        return rc;
    bool bad = r.ooo || (b.o.qos > 0 && r.lost) || (b.o.qos != 1 && r.dups);
    return bad && b.o.scenario != B_CONNECTIONS ? 6 : 0;
}
