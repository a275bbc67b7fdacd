/* timer.c - one-second timer wheel (see timer.h). */
#include "common/timer.h"

#include <string.h>

void wheel_init(struct wheel *w, int64_t now_s)
{
    memset(w->slots, 0, sizeof w->slots);
    w->now_s = now_s;
}

void wheel_del(struct timer *t)
{
    if (!t->pprev)
        return;
    *t->pprev = t->next;
    if (t->next)
        t->next->pprev = t->pprev;
    t->next = NULL;
    t->pprev = NULL;
}

void wheel_add(struct wheel *w, struct timer *t, int64_t due_s)
{
    wheel_del(t);
    if (due_s <= w->now_s)
        due_s = w->now_s + 1;
    t->due_s = due_s;
    struct timer **head = &w->slots[due_s % WHEEL_SLOTS];
    t->next = *head;
    if (*head)
        (*head)->pprev = &t->next;
    *head = t;
    t->pprev = head;
}

void wheel_advance(struct wheel *w, int64_t now_s, wheel_fire_fn fn, void *ctx)
{
    /* after a long stall, one lap over all slots is enough to see every timer */
    if (now_s - w->now_s > WHEEL_SLOTS)
        w->now_s = now_s - WHEEL_SLOTS;
    while (w->now_s < now_s) {
        w->now_s++;
        struct timer **head = &w->slots[w->now_s % WHEEL_SLOTS];
        /* detach the due ones first so callbacks can re-add into this same slot safely */
        struct timer *due = NULL;
        struct timer *t = *head;
        while (t) {
            struct timer *next = t->next;
            if (t->due_s <= now_s) {
                wheel_del(t);
                t->next = due;
                due = t;
            }
            t = next;
        }
        while (due) {
            struct timer *next = due->next;
            due->next = NULL;
            fn(ctx, due);
            due = next;
        }
    }
}
