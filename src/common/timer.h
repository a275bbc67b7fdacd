/* timer.h - O(1) timer wheel with one-second ticks (after Mosquitto's keepalive ring and h2o's
 * timerwheel) for keep-alive, CONNECT timeouts, session expiry and will delays.
 *
 * 1024 slots of one second; a timer due further out sits in slot (due % 1024) and is skipped
 * until its second comes (one comparison per lap). Timers are intrusive (embedded in the client
 * or session) so adding/removing never allocates. One owner thread. */
#ifndef TERN_COMMON_TIMER_H
#define TERN_COMMON_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#define WHEEL_SLOTS 1024

struct timer {
    struct timer *next, **pprev; /* pprev NULL when not scheduled */
    int64_t due_s;
    uint8_t kind; /* owner-defined: what the timer is embedded in */
};

struct wheel {
    struct timer *slots[WHEEL_SLOTS];
    int64_t now_s; /* last second processed */
};

typedef void (*wheel_fire_fn)(void *ctx, struct timer *t);

void wheel_init(struct wheel *w, int64_t now_s);
/* Schedules (or reschedules) t at second due_s (clamped to now_s + 1 at the earliest). */
void wheel_add(struct wheel *w, struct timer *t, int64_t due_s);
/* Unschedules t (no-op when not scheduled). */
void wheel_del(struct timer *t);
static inline bool timer_pending(const struct timer *t)
{
    return t->pprev != 0;
}
/* Fires every timer due at or before now_s (each is unscheduled before fn is called, and fn may
 * re-add it or others). */
void wheel_advance(struct wheel *w, int64_t now_s, wheel_fire_fn fn, void *ctx);

#endif
