/* client_util.c - pure helpers of the client: packet identifier bitmap, reconnect backoff,
 * conversion of public properties to codec properties. No state of their own. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "client_internal.h"

static bool bit_get(const uint64_t *bits, uint16_t i)
{
    return (bits[i >> 6] >> (i & 63)) & 1;
}

uint16_t client_pid_alloc(uint64_t used[1024], uint16_t *next_pid)
{
    uint16_t p = *next_pid ? *next_pid : 1;
    for (uint32_t tries = 0; tries < 65535; tries++) {
        if (!bit_get(used, p)) {
            used[p >> 6] |= UINT64_C(1) << (p & 63);
            *next_pid = (uint16_t)(p == 65535 ? 1 : p + 1);
            return p;
        }
        p = (uint16_t)(p == 65535 ? 1 : p + 1);
    }
    return 0;
}

void client_pid_release(uint64_t used[1024], uint16_t pid)
{
    used[pid >> 6] &= ~(UINT64_C(1) << (pid & 63));
}

bool client_pid_in_use(const uint64_t used[1024], uint16_t pid)
{
    return pid && bit_get(used, pid);
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s ? *s : UINT64_C(0x9E3779B97F4A7C15);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

uint32_t client_backoff_ms(uint32_t attempt, uint32_t min_ms, uint32_t max_ms, uint64_t *rng)
{
    if (min_ms == 0)
        min_ms = 1;
    if (max_ms < min_ms)
        max_ms = min_ms;
    uint64_t d = min_ms;
    for (uint32_t i = 0; i < attempt && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    /* jitter so that many clients dropped together do not reconnect in lockstep */
    uint64_t half = d / 2;
    return (uint32_t)(d - (half ? xorshift(rng) % (half + 1) : 0));
}

static struct mqtt_str cstr(const char *s)
{
    struct mqtt_str m = {(const uint8_t *)s, s ? (uint32_t)strlen(s) : 0};
    return m;
}

void client_props_to_codec(const struct tern_properties *p, struct mqtt_props *out,
                           struct mqtt_user_prop *user)
{
    memset(out, 0, sizeof *out);
    if (!p)
        return;
    if (p->has & TERN_PROP_PAYLOAD_FORMAT) {
        out->has |= MQTT_PROP_BIT(MQTT_PROP_PAYLOAD_FORMAT_INDICATOR);
        out->payload_format = p->payload_format;
    }
    if (p->has & TERN_PROP_MESSAGE_EXPIRY) {
        out->has |= MQTT_PROP_BIT(MQTT_PROP_MESSAGE_EXPIRY_INTERVAL);
        out->message_expiry = p->message_expiry;
    }
    if (p->has & TERN_PROP_WILL_DELAY) {
        out->has |= MQTT_PROP_BIT(MQTT_PROP_WILL_DELAY_INTERVAL);
        out->will_delay = p->will_delay;
    }
    if ((p->has & TERN_PROP_CONTENT_TYPE) && p->content_type) {
        out->has |= MQTT_PROP_BIT(MQTT_PROP_CONTENT_TYPE);
        out->content_type = cstr(p->content_type);
    }
    if ((p->has & TERN_PROP_RESPONSE_TOPIC) && p->response_topic) {
        out->has |= MQTT_PROP_BIT(MQTT_PROP_RESPONSE_TOPIC);
        out->response_topic = cstr(p->response_topic);
    }
    if (p->has & TERN_PROP_CORRELATION_DATA) {
        out->has |= MQTT_PROP_BIT(MQTT_PROP_CORRELATION_DATA);
        out->correlation_data.p = p->correlation_data;
        out->correlation_data.len = (uint32_t)p->correlation_len;
    }
    for (size_t i = 0; i < p->n_user; i++) {
        user[i].key = cstr(p->user[i].key);
        user[i].value = cstr(p->user[i].value);
    }
    out->user = p->n_user ? user : NULL;
    out->n_user = (uint32_t)p->n_user;
}

void client_set_error(struct tern_client *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error, sizeof c->error, fmt, ap);
    va_end(ap);
}
