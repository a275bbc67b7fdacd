/* route.c - routing one PUBLISH to its subscribers.
 *
 * Matching runs under the subscription trie's read lock and only copies the matching entries
 * into the worker's scratch vector (no sending, no syscalls under the lock). Then, per
 * subscribing session (deduplicated: one copy per session at the highest granted QoS,
 * [MQTT-3.3.5-1]), the message goes straight to the session when it lives on this worker, or
 * into the outbox of its home worker (one reference each; flushed once per loop iteration). */
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "router/topic.h"

void subs_rdlock(struct worker *w)
{
    if (!w->subs_read) {
        pthread_rwlock_rdlock(&w->b->subs_lock);
        w->subs_read = true;
    }
}

void subs_unlock(struct worker *w)
{
    if (w->subs_read) {
        pthread_rwlock_unlock(&w->b->subs_lock);
        w->subs_read = false;
    }
}

void subs_wrlock(struct worker *w)
{
    subs_unlock(w);
    pthread_rwlock_wrlock(&w->b->subs_lock);
}

void subs_wrunlock(struct worker *w)
{
    pthread_rwlock_unlock(&w->b->subs_lock);
}

static int push_match(struct worker *w, const struct sub_entry *e)
{
    if (w->n_matches == w->cap_matches) {
        uint32_t ncap = w->cap_matches ? w->cap_matches * 2 : 64;
        struct sub_entry *n = mem_realloc(&w->b->mem, MEM_MISC, w->matches, ncap * sizeof *n);
        if (!n)
            return TERN_ENOMEM;
        w->matches = n;
        w->cap_matches = ncap;
    }
    w->matches[w->n_matches++] = *e;
    return 0;
}

static void on_sub(void *ctx, const struct sub_entry *e)
{
    struct worker *w = ctx;
    if (push_match(w, e))
        STAT_ADD(w, msgs_dropped, 1);
}

/* Shared subscription: one member per group gets the message, round-robin [MQTT-4.8.2-?]. */
static void on_share(void *ctx, const uint8_t *group, size_t group_len,
                     const struct sub_entry *members, size_t n, _Atomic uint32_t *cursor)
{
    struct worker *w = ctx;
    uint32_t k;
    switch (broker_conf(w->b)->shared_policy) {
    case 1: /* random */
        w->rng ^= w->rng << 13;
        w->rng ^= w->rng >> 7;
        w->rng ^= w->rng << 17;
        k = (uint32_t)(w->rng >> 32);
        break;
    case 2: /* hash_topic: one member per topic while the group is unchanged */
        k = hmap_hash(msg_topic(w->routing), w->routing->topic_len);
        break;
    default:
        k = atomic_fetch_add_explicit(cursor, 1, memory_order_relaxed);
        break;
    }
    struct sub_entry e = members[k % n];
    e.options |= 0x80; /* marks a shared delivery: not merged with ordinary ones */
    if (push_match(w, &e))
        STAT_ADD(w, msgs_dropped, 1);
}

static int by_session(const void *a, const void *b)
{
    const struct sub_entry *x = a, *y = b;
    if (x->session_id != y->session_id)
        return x->session_id < y->session_id ? -1 : 1;
    return (x->options & 0x80) - (y->options & 0x80);
}

static void dispatch(struct worker *w, struct msg *m, const struct sub_entry *e)
{
    /* No Local: not sent back to the publishing session [MQTT-3.8.3-3] */
    if ((e->options & 0x04) && !(e->options & 0x80) && e->session_id == m->origin_session)
        return;
    uint8_t granted = e->options & 0x03;
    uint8_t qos = m->qos < granted ? m->qos : granted; /* [MQTT-3.8.4-8] */
    /* live messages go out with RETAIN=0 unless Retain As Published [MQTT-3.3.1-9] */
    bool retain = (e->options & 0x08) ? m->retain : false;
    bool shared = (e->options & 0x80) != 0;
    if (e->thread == w->index) {
        client_deliver(w, e->session, m, qos, retain, shared ? SESS_F_SHARED : 0);
        return;
    }
    struct xitem it = {.kind = XI_DELIVER,
                       .qos = qos,
                       .retain = retain,
                       .flags = shared ? SESS_F_SHARED : 0,
                       .session_id = e->session_id,
                       .ptr = e->session,
                       .m = msg_ref(m)};
    if (worker_post(w, e->thread, &it)) {
        msg_unref(m);
        STAT_ADD(w, msgs_dropped, 1);
    }
}

uint32_t route_publish(struct worker *w, struct msg *m)
{
    struct broker *b = w->b;
    w->n_matches = 0;
    subs_rdlock(w);
    w->routing = m;
    trie_match(b->subs, msg_topic(m), m->topic_len, on_sub, on_share, w);
    uint32_t n = w->n_matches;
    if (n > 1)
        qsort(w->matches, n, sizeof *w->matches, by_session);
    for (uint32_t i = 0; i < n;) {
        struct sub_entry e = w->matches[i];
        uint32_t j = i + 1;
        /* overlapping ordinary subscriptions of one session: one copy, highest QoS */
        while (j < n && w->matches[j].session_id == e.session_id &&
               !(w->matches[j].options & 0x80) && !(e.options & 0x80)) {
            const struct sub_entry *o = &w->matches[j];
            if ((o->options & 0x03) > (e.options & 0x03))
                e.options = (uint8_t)((e.options & ~0x03) | (o->options & 0x03));
            if (o->options & 0x08)
                e.options |= 0x08;
            if (!(o->options & 0x04))
                e.options &= (uint8_t)~0x04;
            if (!e.sub_id)
                e.sub_id = o->sub_id;
            j++;
        }
        dispatch(w, m, &e);
        i = j;
    }
    return n;
}

struct move_ctx {
    struct worker *w;
    struct session *from;
};

/* Sends m, taken from session ctx->from, to another member of a shared group of `from` whose
 * filter matches it; back to `from`'s own queue when it is the only member. */
static void move_one(void *vctx, struct msg *m, uint8_t qos)
{
    struct move_ctx *mc = vctx;
    struct worker *w = mc->w;
    struct session *s = mc->from;
    for (uint32_t i = 0; i < s->nsubs; i++) {
        const uint8_t *g, *f;
        size_t gl, fl;
        if (topic_share_split(s->subs[i].filter, s->subs[i].len, &g, &gl, &f, &fl) != 1 ||
            !topic_matches(f, fl, msg_topic(m), m->topic_len))
            continue;
        struct sub_entry e;
        subs_rdlock(w);
        int rc = trie_share_pick(w->b->subs, g, gl, f, fl, s->id, &e);
        if (rc == 0) {
            e.options =
                (uint8_t)((e.options & ~0x03) | (qos < (e.options & 3) ? qos : (e.options & 3)));
            e.options |= 0x80;
            dispatch(w, m, &e);
            return;
        }
    }
    client_deliver(w, s, m, qos, false, SESS_F_SHARED);
}

uint32_t route_share_release(struct worker *w, struct session *s)
{
    struct move_ctx mc = {w, s};
    return sess_take_shared(s, move_one, &mc);
}
