/* utf8.c - UTF-8 validation (see utf8.h). A straightforward DFA-free decoder: the strings are
 * short (topics, ids) and the loop is branch-predictable for ASCII, which dominates. */
#include "common/utf8.h"

static bool validate(const uint8_t *s, size_t n, bool allow_nul)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == 0 && !allow_nul)
                return false;
            i++;
            continue;
        }
        uint32_t cp;
        size_t len;
        uint32_t min;
        if ((c & 0xE0) == 0xC0) {
            cp = c & 0x1F, len = 2, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            cp = c & 0x0F, len = 3, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            cp = c & 0x07, len = 4, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

bool utf8_valid_mqtt(const uint8_t *s, size_t n)
{
    return validate(s, n, false);
}

bool utf8_valid(const uint8_t *s, size_t n)
{
    return validate(s, n, true);
}
