/* topic.h - MQTT topic name / topic filter validation and single-filter matching.
 * Pure functions, thread-safe. Inputs are byte ranges (not NUL-terminated). */
#ifndef TERN_ROUTER_TOPIC_H
#define TERN_ROUTER_TOPIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True for a valid topic name: at least one byte [MQTT-4.7.3-1], no U+0000 [MQTT-4.7.3-2],
 * no '+' or '#' [MQTT-4.7.1-1] [MQTT-3.3.2-2], at most 65535 bytes [MQTT-4.7.3-3]. UTF-8 validity
 * is the codec's job. */
bool topic_name_valid(const uint8_t *t, size_t n);

/* True for a valid topic filter: non-empty, no U+0000, '#' only alone as the last level
 * [MQTT-4.7.1-2], '+' only as a whole level [MQTT-4.7.1-3]. A "$share/group/filter" is valid when
 * the group is non-empty without '+', '#' or '/', and the filter after it is valid. */
bool topic_filter_valid(const uint8_t *f, size_t n);

/* Splits a shared subscription "$share/{group}/{filter}". Returns 1 and fills the views when f is
 * one (valid or not: check topic_filter_valid first), 0 when f is an ordinary filter. */
int topic_share_split(const uint8_t *f, size_t n, const uint8_t **group, size_t *group_len,
                      const uint8_t **filter, size_t *filter_len);

/* True when topic name t matches filter f (ordinary filter, not $share), with the rule that
 * filters starting with a wildcard do not match topics starting with '$' [MQTT-4.7.2-1].
 * No normalisation of either side [MQTT-4.7.3-4]. Used by ACLs and as the reference matcher. */
bool topic_matches(const uint8_t *f, size_t fn, const uint8_t *t, size_t tn);

/* Number of levels in a topic or filter ("a/b" -> 2, "/" -> 2, "a" -> 1). */
size_t topic_levels(const uint8_t *t, size_t n);

#endif
