/* retain.h - retained-message tree: one node per topic level holding at most one retained
 * value (an opaque refcounted message), searched with a topic filter.
 *
 * Not thread-safe: the broker guards it with a lock. Values are opaque to the router; the tree
 * takes ownership of one reference on set and releases it with the unref callback given at
 * creation when the value is replaced, cleared or the tree is destroyed. */
#ifndef TERN_ROUTER_RETAIN_H
#define TERN_ROUTER_RETAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/alloc.h"
#include "common/err.h"

struct retain;

typedef void (*retain_unref_fn)(void *value);
/* Called for each retained value matching a filter. topic/value borrowed for the call. Return
 * false to stop the walk. */
typedef bool (*retain_visit_fn)(void *ctx, const uint8_t *topic, size_t tn, void *value);

/* Creates an empty tree. unref releases a value's reference. NULL on ENOMEM. */
struct retain *retain_create(struct mem *mem, retain_unref_fn unref);
/* Frees the tree, releasing every value. */
void retain_destroy(struct retain *r);
/* Stores value (taking ownership of one reference) as the retained message of topic t (a valid
 * topic name), replacing and releasing any previous one. value NULL clears the topic and prunes
 * empty nodes. 0 or TERN_ENOMEM (then value's reference is still the caller's). */
int retain_set(struct retain *r, const uint8_t *t, size_t n, void *value) TERN_MUST_CHECK;
/* Returns the value stored at exactly topic t (borrowed), or NULL. */
void *retain_get(struct retain *r, const uint8_t *t, size_t n);
/* Visits every retained value whose topic matches filter f (a valid ordinary filter; same '$'
 * rule as subscriptions [MQTT-4.7.2-1]). */
void retain_match(struct retain *r, const uint8_t *f, size_t n, retain_visit_fn fn, void *ctx);
/* Visits every value (for persistence and expiry sweeps). */
void retain_walk(struct retain *r, retain_visit_fn fn, void *ctx);
/* Number of retained values, and the sum of sizes reported by size_fn at set time is not kept:
 * the broker keeps byte counts itself. */
size_t retain_count(const struct retain *r);

#endif
