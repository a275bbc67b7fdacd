/* bench.h - `tern bench`, the load generator: shared structures of the orchestrator (bench.c)
 * and the epoll workers (bench_worker.c).
 *
 * Ownership and threads:
 *   struct bench      made by cmd_bench; read-only for workers except `phase` (atomic) and the
 *                     atomics of struct publisher / struct worker.
 *   struct worker     one per thread (-T); owns its epoll fd and its connections. The main thread
 *                     reads only the _Atomic counters while running, everything after join.
 *   struct bconn      one TCP connection, owned by exactly one worker.
 *   struct publisher  sent is written by the publisher's worker, recv by the workers of its
 *                     subscribers (relaxed atomics: they are counters, not synchronisation).
 *
 * Payload of every message: u32 publisher id, u64 sequence, u64 send time (CLOCK_MONOTONIC ns),
 * all big-endian, then padding up to -s bytes. */
#ifndef TERN_TOOLS_BENCH_H
#define TERN_TOOLS_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_PAYLOAD_MIN 20
#define BENCH_PER_SOURCE  4000 /* connections scenario: connections per 127.0.0.x source */
#define BENCH_HIST_N      3776 /* log-linear latency histogram buckets (ns), ~1.5% resolution */

enum bench_scenario { B_PAIRS, B_FANOUT, B_FANIN, B_LATENCY, B_CONNECTIONS };
enum bench_phase { PH_SETUP, PH_RUN, PH_DRAIN, PH_STOP };
enum bconn_role { ROLE_PUB, ROLE_SUB, ROLE_IDLE };
enum bconn_state { BC_NEW, BC_CONNECTING, BC_WAIT_CONNACK, BC_WAIT_SUBACK, BC_READY, BC_DEAD };

struct bench_opts {
    enum bench_scenario scenario;
    const char *host;
    uint16_t port;
    int threads;
    double duration_s;
    int qos;
    uint32_t payload;
    uint32_t window;
    uint32_t pubs, subs;
    double rate; /* latency: total msgs/s */
    uint32_t conns;
    int broker_pid;
    bool json;
    uint8_t version; /* 4 or 5 */
    char prefix[64];
    bool spread_src; /* connections: bind to 127.0.0.x */
    uint32_t connect_parallel;
};

struct publisher {
    _Atomic uint64_t sent; /* messages encoded (all are written before the run ends) */
    _Atomic uint64_t recv; /* receipts by its subscribers (fan per message expected) */
    uint32_t fan;
};

/* Per (subscriber, publisher) delivery check, owned by the subscriber's worker. */
struct track {
    uint64_t unique, dups, out_of_order;
    uint64_t max_seq1; /* highest sequence seen + 1 */
    uint32_t pending;  /* receipts not yet added to publisher.recv */
    uint8_t *seen;     /* bitmap of sequences seen */
    size_t seen_bytes;
};

struct worker;

struct bconn {
    struct worker *w;
    int fd;
    uint8_t role, state;
    bool want_out, dirty;
    uint32_t index; /* global connection number (client id) */
    uint8_t *rbuf;
    size_t rlen, rcap;
    uint8_t *wbuf;
    size_t wlen, woff, wcap;
    char topic[96]; /* publisher: topic; subscriber: filter */
    /* publisher */
    uint32_t pub_id;
    struct publisher *pub;
    uint8_t prefix[128]; /* fixed header + topic: the same for every message */
    size_t prefix_len;
    uint32_t unacked, recv_max;
    uint64_t *pid_used; /* QoS 1/2: 65536-bit map */
    uint16_t next_pid;
    /* subscriber */
    uint32_t pub_base, pub_count;
    struct track *tracks;
    uint32_t *touched; /* indexes of tracks with pending receipts */
    uint32_t n_touched;
};

struct bench;

struct worker {
    int id;
    pthread_t thread;
    int ep, wake_fd;
    struct bench *b;
    struct bconn **conns;
    size_t n_conns;
    struct bconn **pubs;
    size_t n_pubs;
    struct bconn **dirty; /* connections with bytes to write this iteration */
    size_t n_dirty;
    size_t next_connect, connecting; /* connections scenario: paced connects */
    _Atomic uint64_t sent, recv, ready, errors, refused;
    _Atomic int64_t last_ready_ns; /* when the latest connection became ready */
    uint64_t hist[BENCH_HIST_N];   /* read by main after join */
    uint64_t lat_max, lat_count;
    uint64_t foreign; /* messages from unknown publishers */
    char first_error[160];
};

struct bench {
    struct bench_opts o;
    _Atomic int phase;
    _Atomic int64_t run_start_ns;
    struct publisher *pubs;
    size_t n_pubs;
    struct worker *workers;
    struct bconn *conns;
    size_t n_conns;
    uint8_t *pad; /* payload padding */
};

/* Monotonic nanoseconds. */
int64_t bench_now_ns(void);
/* Worker thread body (arg: struct worker *). */
void *bench_worker_main(void *arg);
/* Wakes a worker out of epoll_wait (phase changes). */
void bench_worker_wake(struct worker *w);
/* Histogram bucket of a latency in ns, and the representative value of a bucket. */
uint32_t bench_hist_index(uint64_t ns);
uint64_t bench_hist_value(uint32_t idx);

#endif
