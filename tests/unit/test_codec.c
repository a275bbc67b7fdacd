/* test_codec.c - the codec against the vectors in tests/vectors/ (*.txt; the format is
 * documented at the top of each vector file): every vector decoded whole; every valid one split
 * at every byte boundary (each prefix must be "need more"); every one placed right before a
 * PROT_NONE page so an over-read crashes; valid ones re-encoded byte for byte, lenient ones
 * re-encoded and decoded to the same packet. Round trips of built packets, the PUBLISH head
 * encoder and encoder refusals are in test_codec_roundtrip.c. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "codec/codec.h"
#include "common/alloc.h"
#include "common/buf.h"
#include "test_codec_util.h"
#include "unit.h"

#define VEC_MAX 8192

struct vec {
    char file[64];
    int line;
    char kind[16];
    uint8_t version;
    char expect[16];
    uint32_t max;
    uint8_t data[VEC_MAX];
    size_t len;
    char comment[200];
};

/* Two pages, the second PROT_NONE: data copied to the end of the first touches the guard. */
struct guard {
    uint8_t *base;
    size_t page;
};

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Parses one vector line. Returns 1 for a vector, 0 for a blank/comment line, -1 on a bad line. */
static int parse_line(char *s, struct vec *v)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '#' || *s == '\n' || *s == '\0')
        return 0;
    char *hash = strchr(s, '#');
    v->comment[0] = '\0';
    if (hash) {
        snprintf(v->comment, sizeof v->comment, "%s", hash + 1);
        v->comment[strcspn(v->comment, "\n")] = '\0';
        *hash = '\0';
    }
    int ver, used = 0;
    if (sscanf(s, "%15s %d %15s %n", v->kind, &ver, v->expect, &used) != 3)
        return -1;
    v->version = (uint8_t)ver;
    s += used;
    v->max = 0;
    if (strncmp(s, "max=", 4) == 0) {
        char *end;
        v->max = (uint32_t)strtoul(s + 4, &end, 10);
        s = end;
    }
    v->len = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\n')
            s++;
        if (!*s)
            break;
        int hi = hexval(s[0]), lo = hexval(s[1]);
        if (hi < 0 || lo < 0 || v->len == VEC_MAX)
            return -1;
        v->data[v->len++] = (uint8_t)(hi << 4 | lo);
        s += 2;
    }
    return v->len ? 1 : -1;
}

static int expect_code(const char *e)
{
    if (!strcmp(e, "EMALFORMED"))
        return TERN_EMALFORMED;
    if (!strcmp(e, "EPROTO"))
        return TERN_EPROTO;
    if (!strcmp(e, "ETOOBIG"))
        return TERN_ETOOBIG;
    return 1; /* not an error name */
}

/* Decodes data placed right before the guard page. */
static int decode_guarded(const struct guard *g, const uint8_t *data, size_t len, uint8_t version,
                          uint32_t max, struct mqtt_packet *out, size_t *used)
{
    uint8_t *p = g->base + g->page - len;
    memcpy(p, data, len);
    return codec_decode(p, len, version, max, out, used);
}

#define VCHECK(v, c) CHECK_MSG(c, "%s:%d:%s", (v)->file, (v)->line, (v)->comment)

static void check_invalid(const struct guard *g, const struct vec *v)
{
    int want = expect_code(v->expect);
    VCHECK(v, want < 0);
    struct mqtt_packet p;
    size_t used = 0;
    int rc = codec_decode(v->data, v->len, v->version, v->max, &p, &used);
    CHECK_MSG(rc == want, "%s:%d:%s: got %d want %d", v->file, v->line, v->comment, rc, want);
    /* error paths must not over-read either, and every prefix is "need more" or that error */
    for (size_t k = 0; k <= v->len; k++) {
        rc = decode_guarded(g, v->data, k, v->version, v->max, &p, &used);
        CHECK_MSG(rc == TERN_EAGAIN || rc == want, "%s:%d: prefix %zu gave %d", v->file, v->line,
                  k, rc);
    }
    if (want == TERN_ETOOBIG) {
        /* refused from the fixed header alone, before any body byte is present */
        uint8_t tf;
        uint32_t rem, hl;
        size_t k = 1;
        while (k < v->len && (v->data[k] & 0x80))
            k++;
        k++;
        VCHECK(v, k <= v->len);
        VCHECK(v, codec_decode(v->data, k, v->version, v->max, &p, &used) == TERN_ETOOBIG);
        VCHECK(v, codec_peek_header(v->data, k, v->max, &tf, &rem, &hl) == TERN_ETOOBIG);
        VCHECK(v, codec_peek_header(v->data, k - 1, v->max, &tf, &rem, &hl) == TERN_EAGAIN);
    }
}

/* Walks the views of a decoded packet so a bad raw/entries view shows up under ASan. */
static void walk(const struct vec *v, const struct mqtt_packet *p)
{
    const struct mqtt_props *pr = NULL;
    switch (p->type) {
    case MQTT_CONNACK: pr = &p->u.connack.props; break;
    case MQTT_PUBLISH: pr = &p->u.publish.props; break;
    case MQTT_SUBSCRIBE:
    case MQTT_UNSUBSCRIBE: {
        uint32_t off = 0, n = 0;
        struct mqtt_sub_entry e;
        while (codec_subscribe_next(&p->u.subscribe, p->type == MQTT_UNSUBSCRIBE, &off, &e) == 1)
            n++;
        VCHECK(v, n == p->u.subscribe.count && off == p->u.subscribe.entries_len);
        pr = &p->u.subscribe.props;
        break;
    }
    default: break;
    }
    if (!pr)
        return;
    uint32_t off = 0, users = 0, subs = 0;
    struct mqtt_prop prop;
    while (codec_props_next(pr->raw, pr->raw_len, &off, &prop) == 1) {
        users += prop.id == MQTT_PROP_USER_PROPERTY;
        subs += prop.id == MQTT_PROP_SUBSCRIPTION_IDENTIFIER;
    }
    VCHECK(v, off == pr->raw_len && users == pr->user_count && subs == pr->sub_id_count);
}

static void check_reencode(const struct vec *v, const struct mqtt_packet *orig, struct reenc *st)
{
    struct mqtt_packet p = *orig;
    uint8_t ver = v->version;
    if (!reenc_packet(&p, st, &ver)) {
        VCHECK(v, !strcmp(v->kind, "lenient")); /* only partial CONNECTs cannot be re-encoded */
        return;
    }
    struct mem m;
    mem_init(&m);
    struct buf b;
    buf_init(&b, &m, MEM_MISC, 1 << 20);
    int rc = codec_encode(&p, ver, &b);
    VCHECK(v, rc == 0);
    VCHECK(v, codec_encoded_size(&p, ver) == b.len);
    if (!strcmp(v->kind, "valid"))
        CHECK_MSG(b.len == v->len && memcmp(b.data, v->data, v->len) == 0,
                  "%s:%d:%s: re-encoding differs (%zu bytes vs %zu)", v->file, v->line,
                  v->comment, b.len, v->len);
    else
        VCHECK(v, b.len != v->len || memcmp(b.data, v->data, v->len) != 0);
    struct mqtt_packet q;
    size_t used;
    VCHECK(v, codec_decode(b.data, b.len, ver, 0, &q, &used) == 0 && used == b.len);
    VCHECK(v, packet_eq(orig, &q));
    buf_free(&b);
}

static void check_valid(const struct guard *g, const struct vec *v, struct reenc *st)
{
    VCHECK(v, expect_code(v->expect) == 1);
    struct mqtt_packet p, q;
    size_t used = 0;
    int rc = codec_decode(v->data, v->len, v->version, v->max, &p, &used);
    CHECK_MSG(rc == 0, "%s:%d:%s: got %d", v->file, v->line, v->comment, rc);
    if (rc)
        return;
    VCHECK(v, used == v->len);
    VCHECK(v, !strcmp(codec_type_name(p.type), v->expect));
    walk(v, &p);
    /* split at every byte boundary: each prefix is "need more" (the limit is not exceeded) */
    for (size_t k = 0; k < v->len; k++) {
        rc = codec_decode(v->data, k, v->version, v->max, &q, &used);
        CHECK_MSG(rc == TERN_EAGAIN, "%s:%d: prefix %zu gave %d", v->file, v->line, k, rc);
        rc = decode_guarded(g, v->data, k, v->version, v->max, &q, &used);
        CHECK_MSG(rc == TERN_EAGAIN, "%s:%d: guarded prefix %zu gave %d", v->file, v->line, k, rc);
    }
    rc = decode_guarded(g, v->data, v->len, v->version, v->max, &q, &used);
    VCHECK(v, rc == 0 && used == v->len && packet_eq(&p, &q));
    /* followed by more bytes (the next packet): consumes exactly this one */
    uint8_t more[VEC_MAX + 2];
    memcpy(more, v->data, v->len);
    more[v->len] = 0xC0;
    more[v->len + 1] = 0x00;
    rc = codec_decode(more, v->len + 2, v->version, v->max, &q, &used);
    VCHECK(v, rc == 0 && used == v->len && packet_eq(&p, &q));
    check_reencode(v, &p, st);
}

static void run_file(const struct guard *g, const char *dir, const char *name, struct reenc *st,
                     int *counts)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f)
        return;
    size_t line_cap = 3 * VEC_MAX + 512;
    char *line = malloc(line_cap);
    struct vec *v = calloc(1, sizeof *v);
    int lineno = 0;
    while (fgets(line, (int)line_cap, f)) {
        lineno++;
        int r = parse_line(line, v);
        CHECK_MSG(r >= 0, "%s:%d: unparsable vector line", name, lineno);
        if (r <= 0)
            continue;
        snprintf(v->file, sizeof v->file, "%s", name);
        v->line = lineno;
        if (!strcmp(v->kind, "invalid")) {
            check_invalid(g, v);
            counts[0]++;
        } else {
            VCHECK(v, !strcmp(v->kind, "valid") || !strcmp(v->kind, "lenient"));
            check_valid(g, v, st);
            counts[1]++;
        }
        counts[2 + (v->version - 3) % 3]++;
    }
    free(v);
    free(line);
    fclose(f);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_vectors(void)
{
    struct guard g;
    g.page = (size_t)sysconf(_SC_PAGESIZE);
    g.base = mmap(NULL, 2 * g.page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(g.base != MAP_FAILED);
    CHECK(mprotect(g.base + g.page, g.page, PROT_NONE) == 0);
    struct reenc *st = calloc(1, sizeof *st);
    const char *dir = TERN_SOURCE_DIR "/tests/vectors";
    DIR *d = opendir(dir);
    CHECK(d != NULL);
    if (!d)
        return;
    char *names[64];
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) && n < 64) {
        size_t l = strlen(de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".txt"))
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], cmp_names);
    int counts[5] = {0};
    for (size_t i = 0; i < n; i++) {
        run_file(&g, dir, names[i], st, counts);
        free(names[i]);
    }
    printf("     vectors: %d invalid, %d valid; v3.1 %d, v3.1.1 %d, v5 %d\n", counts[0],
           counts[1], counts[2], counts[3], counts[4]);
    CHECK(counts[0] > 100 && counts[1] > 80);
    CHECK(counts[2] > 10 && counts[3] > 50 && counts[4] > 50);
    free(st);
    munmap(g.base, 2 * g.page);
}

/* The harness must be able to fail: a corrupted valid vector is caught by the checks above. */
static void test_vector_parser(void)
{
    struct vec v;
    char line[] = "valid 5 PUBLISH max=9 30 03 00 01 61 # [MQTT-x] note\n";
    CHECK_EQ(parse_line(line, &v), 1);
    CHECK_EQ(v.version, 5);
    CHECK_EQ(v.max, 9u);
    CHECK_EQ(v.len, 5u);
    CHECK_EQ(v.data[4], 0x61);
    CHECK(!strcmp(v.expect, "PUBLISH"));
    char bad[] = "valid 4 PUBLISH 3g 00\n";
    CHECK_EQ(parse_line(bad, &v), -1);
    char blank[] = "   # only a comment\n";
    CHECK_EQ(parse_line(blank, &v), 0);
}

void unit_main(void)
{
    UNIT_RUN(test_vector_parser);
    UNIT_RUN(test_vectors);
}
