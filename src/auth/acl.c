/* acl.c - ACL parsing and checks (see acl.h).
 *
 * Rules are kept per section: the anonymous section, one per user (found by hash), and the
 * patterns. A check walks the client's section and the patterns (substituting %c and %u): any
 * matching deny refuses, otherwise any matching grant with the access allows. Sections are
 * short in practice; the walk costs a few topic matches per check. */
#include "auth/acl.h"
#include "auth/auth_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/file.h"
#include "common/hmap.h"
#include "router/topic.h"

#define ACL_DENY 4

struct acl_rule {
    uint8_t access; /* ACL_READ | ACL_WRITE, or ACL_DENY */
    char *filter;
    size_t len;
};

struct acl_section {
    char *user; /* NULL for the anonymous section */
    size_t user_len;
    struct acl_rule *rules;
    size_t n, cap;
};

struct acl {
    struct mem *mem;
    struct acl_section anon;
    struct acl_section patterns;
    struct hmap users; /* user name -> struct acl_section* */
};

static void section_free(struct mem *mem, struct acl_section *s)
{
    for (size_t i = 0; i < s->n; i++)
        mem_free(mem, MEM_AUTH, s->rules[i].filter);
    mem_free(mem, MEM_AUTH, s->rules);
    mem_free(mem, MEM_AUTH, s->user);
}

void acl_free(struct acl *a)
{
    if (!a)
        return;
    section_free(a->mem, &a->anon);
    section_free(a->mem, &a->patterns);
    for (size_t i = 0; i < a->users.cap; i++) {
        if (!a->users.slots[i].hash)
            continue;
        struct acl_section *s = a->users.slots[i].value;
        section_free(a->mem, s);
        mem_free(a->mem, MEM_AUTH, s);
    }
    hmap_free(&a->users);
    mem_free(a->mem, MEM_AUTH, a);
}

static int add_rule(struct mem *mem, struct acl_section *s, uint8_t access, const char *f,
                    size_t len)
{
    if (s->n == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 4;
        struct acl_rule *nr = mem_realloc(mem, MEM_AUTH, s->rules, ncap * sizeof *nr);
        if (!nr)
            return TERN_ENOMEM;
        s->rules = nr;
        s->cap = ncap;
    }
    char *copy = mem_strndup(mem, MEM_AUTH, f, len);
    if (!copy)
        return TERN_ENOMEM;
    s->rules[s->n++] = (struct acl_rule){access, copy, len};
    return 0;
}

/* Splits a line into at most 4 words. */
static int words(char *line, char **w)
{
    int n = 0;
    char *s = line;
    while (n < 4) {
        while (*s == ' ' || *s == '\t')
            s++;
        if (!*s)
            break;
        w[n++] = s;
        while (*s && *s != ' ' && *s != '\t')
            s++;
        if (*s)
            *s++ = '\0';
    }
    while (*s == ' ' || *s == '\t')
        s++;
    return *s ? -1 : n;
}

static int parse_line(struct acl *a, struct acl_section **cur, char *line, const char *name, int ln,
                      char *err, size_t errlen)
{
    char *w[4];
    const char *t = line;
    while (*t == ' ' || *t == '\t')
        t++;
    if (*t == '#' || *t == '\0')
        return 0; /* comments may have any number of words */
    int n = words(line, w);
    if (n < 0)
        return auth_perr(err, errlen, name, ln, "too many words");
    if (n == 0 || w[0][0] == '#')
        return 0;
    if (strcmp(w[0], "user") == 0) {
        if (n != 2)
            return auth_perr(err, errlen, name, ln, "user: expected one user name");
        struct acl_section *s = hmap_get(&a->users, w[1], strlen(w[1]));
        if (!s) {
            s = mem_calloc(a->mem, MEM_AUTH, sizeof *s);
            if (!s)
                return TERN_ENOMEM;
            s->user_len = strlen(w[1]);
            s->user = mem_strndup(a->mem, MEM_AUTH, w[1], s->user_len);
            if (!s->user || hmap_put(&a->users, s->user, s->user_len, s)) {
                section_free(a->mem, s);
                mem_free(a->mem, MEM_AUTH, s);
                return TERN_ENOMEM;
            }
        }
        *cur = s;
        return 0;
    }
    bool pattern = strcmp(w[0], "pattern") == 0;
    if (!pattern && strcmp(w[0], "topic") != 0)
        return auth_perr(err, errlen, name, ln, "unknown keyword '%s' (topic, pattern, user)",
                         w[0]);
    uint8_t access = ACL_READ | ACL_WRITE;
    const char *f;
    if (n == 3) {
        if (strcmp(w[1], "read") == 0)
            access = ACL_READ;
        else if (strcmp(w[1], "write") == 0)
            access = ACL_WRITE;
        else if (strcmp(w[1], "readwrite") == 0)
            access = ACL_READ | ACL_WRITE;
        else if (strcmp(w[1], "deny") == 0)
            access = ACL_DENY;
        else
            return auth_perr(err, errlen, name, ln,
                             "%s: access '%s' is not read, write, readwrite or deny", w[0], w[1]);
        f = w[2];
    } else if (n == 2) {
        f = w[1];
    } else {
        return auth_perr(err, errlen, name, ln, "%s: expected [read|write|readwrite|deny] FILTER",
                         w[0]);
    }
    size_t fl = strlen(f);
    /* patterns are validated after substitution; %c/%u must be whole levels to be safe */
    if (!pattern && !topic_filter_valid((const uint8_t *)f, fl))
        return auth_perr(err, errlen, name, ln, "invalid topic filter '%s'", f);
    return add_rule(a->mem, pattern ? &a->patterns : *cur, access, f, fl);
}

int acl_parse(struct mem *mem, const char *name, const char *text, struct acl **out, char *err,
              size_t errlen)
{
    struct acl *a = mem_calloc(mem, MEM_AUTH, sizeof *a);
    if (!a)
        return TERN_ENOMEM;
    a->mem = mem;
    hmap_init(&a->users, mem);
    struct acl_section *cur = &a->anon;
    char line[4097];
    int ln = 0, rc = 0;
    const char *s = text;
    while (*s && !rc) {
        ln++;
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n >= sizeof line) {
            rc = auth_perr(err, errlen, name, ln, "line longer than %zu bytes", sizeof line - 1);
            break;
        }
        memcpy(line, s, n);
        line[n] = '\0';
        if (n && line[n - 1] == '\r')
            line[n - 1] = '\0';
        rc = parse_line(a, &cur, line, name, ln, err, errlen);
        s = e ? e + 1 : s + n;
    }
    if (rc) {
        acl_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

int acl_load(struct mem *mem, const char *path, struct acl **out, char *err, size_t errlen)
{
    char *text;
    int rc = file_read_text(mem, MEM_AUTH, path, 16u << 20, &text, err, errlen);
    if (rc)
        return rc;
    rc = acl_parse(mem, path, text, out, err, errlen);
    mem_free(mem, MEM_AUTH, text);
    return rc;
}

/* Expands %c / %u of a pattern into buf; false when it does not fit or a substituted value
 * contains a wildcard or '/' (a client id like "+" must not widen its own pattern). */
static bool expand(const struct acl_rule *r, const char *user, const uint8_t *cid, size_t cidlen,
                   char *buf, size_t cap, size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < r->len; i++) {
        const char *v = NULL;
        size_t vl = 0;
        if (r->filter[i] == '%' && i + 1 < r->len &&
            (r->filter[i + 1] == 'c' || r->filter[i + 1] == 'u')) {
            if (r->filter[i + 1] == 'c') {
                v = (const char *)cid;
                vl = cidlen;
            } else {
                if (!user)
                    return false; /* %u never matches anonymous clients */
                v = user;
                vl = strlen(user);
            }
            for (size_t k = 0; k < vl; k++)
                if (v[k] == '+' || v[k] == '#' || v[k] == '/')
                    return false;
            i++;
        } else {
            v = &r->filter[i];
            vl = 1;
        }
        if (o + vl >= cap)
            return false;
        memcpy(buf + o, v, vl);
        o += vl;
    }
    *outlen = o;
    return true;
}

/* True when every topic matching filter f also matches filter a. */
static bool filter_within(const uint8_t *f, size_t fn, const uint8_t *a, size_t an)
{
    size_t fi = 0, ai = 0;
    for (;;) {
        size_t fe = fi, ae = ai;
        while (fe < fn && f[fe] != '/')
            fe++;
        while (ae < an && a[ae] != '/')
            ae++;
        bool a_hash = ae - ai == 1 && a[ai] == '#';
        bool a_plus = ae - ai == 1 && a[ai] == '+';
        bool f_hash = fe - fi == 1 && f[fi] == '#';
        if (a_hash)
            return true;
        if (f_hash)
            return false; /* f reaches deeper than a allows */
        if (!a_plus && (fe - fi != ae - ai || memcmp(f + fi, a + ai, fe - fi) != 0))
            return false;
        bool f_end = fe >= fn, a_end = ae >= an;
        if (f_end || a_end) {
            if (f_end && a_end)
                return true;
            /* f ended: a may continue only with "/#" (which also matches the parent) */
            return f_end && ae + 2 == an && a[ae + 1] == '#';
        }
        fi = fe + 1;
        ai = ae + 1;
    }
}

typedef bool (*rule_test)(const uint8_t *rf, size_t rl, const uint8_t *x, size_t xn);

static bool test_topic(const uint8_t *rf, size_t rl, const uint8_t *t, size_t tn)
{
    return topic_matches(rf, rl, t, tn);
}

static bool test_within(const uint8_t *rf, size_t rl, const uint8_t *f, size_t fn)
{
    return filter_within(f, fn, rf, rl);
}

/* Walks the client's rules: *denied when a deny rule passes `test`, returns true when a grant
 * with `access` passes it. */
static bool walk(const struct acl *a, const char *user, const uint8_t *cid, size_t cidlen,
                 const uint8_t *x, size_t xn, uint8_t access, rule_test test, bool *denied)
{
    const struct acl_section *own = user ? hmap_get(&a->users, user, strlen(user)) : &a->anon;
    bool granted = false;
    *denied = false;
    for (size_t i = 0; own && i < own->n; i++) {
        const struct acl_rule *r = &own->rules[i];
        if (!test((const uint8_t *)r->filter, r->len, x, xn))
            continue;
        if (r->access & ACL_DENY)
            *denied = true;
        else if (r->access & access)
            granted = true;
    }
    char buf[1024];
    for (size_t i = 0; i < a->patterns.n; i++) {
        const struct acl_rule *r = &a->patterns.rules[i];
        size_t bl;
        if (!expand(r, user, cid, cidlen, buf, sizeof buf, &bl) ||
            !topic_filter_valid((const uint8_t *)buf, bl) || !test((const uint8_t *)buf, bl, x, xn))
            continue;
        if (r->access & ACL_DENY)
            *denied = true;
        else if (r->access & access)
            granted = true;
    }
    return granted;
}

bool acl_allows(const struct acl *a, const char *user, const uint8_t *cid, size_t cidlen,
                const uint8_t *t, size_t tn, enum acl_access access)
{
    if (!a)
        return true;
    bool denied;
    bool granted = walk(a, user, cid, cidlen, t, tn, (uint8_t)access, test_topic, &denied);
    return granted && !denied;
}

bool acl_allows_subscribe(const struct acl *a, const char *user, const uint8_t *cid, size_t cidlen,
                          const uint8_t *f, size_t fn)
{
    if (!a)
        return true;
    const uint8_t *g, *sf;
    size_t gl, sfl;
    if (topic_share_split(f, fn, &g, &gl, &sf, &sfl) == 1) {
        f = sf;
        fn = sfl;
    }
    bool denied;
    bool granted = walk(a, user, cid, cidlen, f, fn, ACL_READ, test_within, &denied);
    return granted && !denied;
}
