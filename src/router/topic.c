/* topic.c - topic name / filter validation and single-filter matching (see topic.h).
 *
 * Pure functions over byte ranges: no allocation, no state, safe from any thread. Levels are
 * the byte runs between '/' separators; empty levels ("a//b", "/a", "a/") are real levels and
 * nothing is normalised [MQTT-4.7.3-4]. Tags use MQTT 3.1.1 numbering; MQTT 5.0 numbers the
 * same statements [MQTT-4.7.0-1] (no wildcard in names), [MQTT-4.7.1-1] ('#'), [MQTT-4.7.1-2]
 * ('+'). topic_matches is also the reference the trie and retained tree are tested against, so
 * it is kept a straightforward level-by-level walk. */
#include "router/topic.h"

#include <string.h>

bool topic_name_valid(const uint8_t *t, size_t n)
{
    if (n == 0 || n > 65535) /* [MQTT-4.7.3-1] [MQTT-4.7.3-3] */
        return false;
    for (size_t i = 0; i < n; i++)
        if (t[i] == '+' || t[i] == '#' || t[i] == 0) /* [MQTT-4.7.1-1] [MQTT-4.7.3-2] */
            return false;
    return true;
}

static bool plain_filter_valid(const uint8_t *f, size_t n)
{
    if (n == 0 || n > 65535)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = f[i];
        if (c == 0)
            return false;
        bool level_start = i == 0 || f[i - 1] == '/';
        bool level_end = i + 1 == n || f[i + 1] == '/';
        if (c == '+' && !(level_start && level_end)) /* [MQTT-4.7.1-3] */
            return false;
        if (c == '#' && !(level_start && i + 1 == n)) /* [MQTT-4.7.1-2] */
            return false;
    }
    return true;
}

int topic_share_split(const uint8_t *f, size_t n, const uint8_t **group, size_t *group_len,
                      const uint8_t **filter, size_t *filter_len)
{
    static const char pfx[] = "$share/";
    if (n < sizeof pfx - 1 || memcmp(f, pfx, sizeof pfx - 1) != 0)
        return 0;
    const uint8_t *g = f + sizeof pfx - 1;
    size_t rest = n - (sizeof pfx - 1);
    const uint8_t *slash = memchr(g, '/', rest);
    *group = g;
    *group_len = slash ? (size_t)(slash - g) : rest;
    *filter = slash ? slash + 1 : f + n;
    *filter_len = slash ? rest - *group_len - 1 : 0;
    return 1;
}

bool topic_filter_valid(const uint8_t *f, size_t n)
{
    const uint8_t *g, *sf;
    size_t gl, sfl;
    if (n > 65535) /* the whole filter, "$share/group/" included [MQTT-4.7.3-3] */
        return false;
    if (topic_share_split(f, n, &g, &gl, &sf, &sfl)) {
        /* [MQTT-4.8.2-1] non-empty ShareName; [MQTT-4.8.2-2] followed by '/' and a filter */
        if (gl == 0 || sfl == 0)
            return false;
        for (size_t i = 0; i < gl; i++) /* [MQTT-4.8.2-2] no '+' or '#' ('/' ends it) */
            if (g[i] == '+' || g[i] == '#' || g[i] == 0)
                return false;
        return plain_filter_valid(sf, sfl);
    }
    return plain_filter_valid(f, n);
}

bool topic_matches(const uint8_t *f, size_t fn, const uint8_t *t, size_t tn)
{
    /* [MQTT-4.7.2-1] wildcards at the first level do not match '$' topics */
    if (tn && t[0] == '$' && fn && (f[0] == '+' || f[0] == '#'))
        return false;
    size_t fi = 0, ti = 0;
    for (;;) {
        /* current filter level f[fi..fe), topic level t[ti..te) */
        size_t fe = fi;
        while (fe < fn && f[fe] != '/')
            fe++;
        if (fe - fi == 1 && f[fi] == '#')
            return true; /* matches this level and everything below, and the parent */
        bool topic_done = ti > tn;
        if (topic_done)
            return false;
        size_t te = ti;
        while (te < tn && t[te] != '/')
            te++;
        if (!(fe - fi == 1 && f[fi] == '+') &&
            (fe - fi != te - ti || memcmp(f + fi, t + ti, fe - fi) != 0))
            return false;
        bool f_last = fe >= fn, t_last = te >= tn;
        if (f_last && t_last)
            return true;
        if (t_last) {
            /* "a/#" matches "a": the filter continues with exactly "/#" */
            return fe + 2 == fn && f[fe + 1] == '#';
        }
        if (f_last)
            return false;
        fi = fe + 1;
        ti = te + 1;
    }
}

size_t topic_levels(const uint8_t *t, size_t n)
{
    size_t levels = 1;
    for (size_t i = 0; i < n; i++)
        if (t[i] == '/')
            levels++;
    return levels;
}
