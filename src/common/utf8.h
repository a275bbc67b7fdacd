/* utf8.h - UTF-8 validation for MQTT strings. */
#ifndef TERN_COMMON_UTF8_H
#define TERN_COMMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when s[0..n) is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates U+D800..U+DFFF,
 * nothing above U+10FFFF) and contains no U+0000 [MQTT-1.5.3-1] [MQTT-1.5.3-2] [MQTT-1.5.4-1]
 * [MQTT-1.5.4-2]. U+FEFF is kept as is [MQTT-1.5.3-3]. */
bool utf8_valid_mqtt(const uint8_t *s, size_t n);

/* True when s[0..n) is well-formed UTF-8 (U+0000 allowed): for Payload Format Indicator checks. */
bool utf8_valid(const uint8_t *s, size_t n);

#endif
