/* sys.c - the $SYS/broker/... topics (as Mosquitto publishes them), retained, every
 * sys_interval seconds, from worker 0. Values are sums of the workers' relaxed counters. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "broker/broker.h"

static void sys_pub(struct worker *w, const char *topic, const char *value)
{
    struct msg *m = msg_new(&w->b->mem, &w->pool, (const uint8_t *)topic, (uint16_t)strlen(topic),
                            NULL, 0, (const uint8_t *)value, (uint32_t)strlen(value), 0, true);
    if (!m)
        return;
    if (store_retain_put(w->b->store, m) == 0)
        route_publish(w, m);
    msg_unref(m);
}

static void sys_pub_u64(struct worker *w, const char *topic, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    sys_pub(w, topic, buf);
}

/* Sum over workers of the counter at byte offset off of struct stats. */
static uint64_t sum(const struct broker *b, size_t off)
{
    uint64_t s = 0;
    for (uint32_t i = 0; i < b->nworkers; i++) {
        _Atomic uint64_t *p = (_Atomic uint64_t *)((char *)&b->workers[i].st + off);
        s += atomic_load_explicit(p, memory_order_relaxed);
    }
    return s;
}
#define SUM(field) sum(b, offsetof(struct stats, field))

void sys_tick(struct worker *w)
{
    struct broker *b = w->b;
    struct config *conf = broker_conf(b);
    if (conf->sys_interval <= 0 || w->now_s < w->next_sys_s)
        return;
    w->next_sys_s = w->now_s + conf->sys_interval;
    char buf[64];
    sys_pub(w, "$SYS/broker/version", "tern version " TERN_VERSION);
    snprintf(buf, sizeof buf, "%lld seconds", (long long)(w->now_s - b->start_s));
    sys_pub(w, "$SYS/broker/uptime", buf);
    uint64_t connected = SUM(clients_connected), total = SUM(clients_total);
    sys_pub_u64(w, "$SYS/broker/clients/connected", connected);
    sys_pub_u64(w, "$SYS/broker/clients/active", connected);
    sys_pub_u64(w, "$SYS/broker/clients/disconnected", total > connected ? total - connected : 0);
    sys_pub_u64(w, "$SYS/broker/clients/inactive", total > connected ? total - connected : 0);
    sys_pub_u64(w, "$SYS/broker/clients/total", total);
    sys_pub_u64(w, "$SYS/broker/clients/maximum", atomic_load(&b->clients_maximum));
    sys_pub_u64(w, "$SYS/broker/clients/expired", SUM(clients_expired));
    sys_pub_u64(w, "$SYS/broker/messages/received", SUM(msgs_received));
    sys_pub_u64(w, "$SYS/broker/messages/sent", SUM(msgs_sent));
    sys_pub_u64(w, "$SYS/broker/messages/dropped", SUM(msgs_dropped));
    sys_pub_u64(w, "$SYS/broker/publish/messages/received", SUM(pub_received));
    sys_pub_u64(w, "$SYS/broker/publish/messages/sent", SUM(pub_sent));
    sys_pub_u64(w, "$SYS/broker/publish/messages/dropped", SUM(msgs_dropped));
    sys_pub_u64(w, "$SYS/broker/bytes/received", SUM(bytes_received));
    sys_pub_u64(w, "$SYS/broker/bytes/sent", SUM(bytes_sent));
    sys_pub_u64(w, "$SYS/broker/store/messages/count", SUM(queued));
    sys_pub_u64(w, "$SYS/broker/connections/socket/count", SUM(sockets));
    subs_rdlock(w);
    uint64_t nsubs = trie_count(b->subs);
    subs_unlock(w);
    sys_pub_u64(w, "$SYS/broker/subscriptions/count", nsubs);
    uint64_t rbytes = 0;
    /* count after this round's own $SYS retained messages are in */
    sys_pub_u64(w, "$SYS/broker/retained messages/count", store_retain_count(b->store, &rbytes));
    for (int k = 0; k < LIMIT_COUNT; k++) {
        char topic[96];
        snprintf(topic, sizeof topic, "$SYS/broker/limits/%s", limit_names[k]);
        sys_pub_u64(w, topic, atomic_load_explicit(&b->limit_hits[k], memory_order_relaxed));
    }
    sys_pub_u64(w, "$SYS/broker/heap/current", (uint64_t)mem_total(&b->mem));
    sys_pub_u64(w, "$SYS/broker/heap/maximum", (uint64_t)atomic_load(&b->mem.peak));
}
