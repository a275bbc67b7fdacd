/* test_common.c - alloc accounting, bounded buffers, UTF-8 validation. */
#include <stdio.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/hmap.h"
#include "common/outq.h"
#include "common/timer.h"
#include "common/utf8.h"
#include "unit.h"

static void test_alloc_counts(void)
{
    struct mem m;
    mem_init(&m);
    void *a = mem_alloc(&m, MEM_MSG, 100);
    void *b = mem_alloc(&m, MEM_CONN, 50);
    CHECK(a && b);
    CHECK_EQ(mem_total(&m), 150);
    a = mem_realloc(&m, MEM_MSG, a, 300);
    CHECK_EQ(mem_total(&m), 350);
    mem_free(&m, MEM_MSG, a);
    mem_free(&m, MEM_CONN, b);
    CHECK_EQ(mem_total(&m), 0);
    CHECK_EQ(atomic_load(&m.peak), 350);
}

static void test_alloc_fail_hook(void)
{
    struct mem m;
    mem_init(&m);
    atomic_store(&m.fail_after, 1);
    void *a = mem_alloc(&m, MEM_MISC, 8);
    void *b = mem_alloc(&m, MEM_MISC, 8);
    CHECK(a != NULL);
    CHECK(b == NULL);
    mem_free(&m, MEM_MISC, a);
    m.limit = 10;
    void *c = mem_alloc(&m, MEM_MISC, 20);
    CHECK(mem_over_limit(&m));
    mem_free(&m, MEM_MISC, c);
    CHECK(!mem_over_limit(&m));
}

static void test_buf_bounded(void)
{
    struct mem m;
    mem_init(&m);
    struct buf b;
    buf_init(&b, &m, MEM_MISC, 10);
    CHECK_EQ(buf_append(&b, "hello", 5), 0);
    CHECK_EQ(buf_append(&b, "world", 5), 0);
    CHECK_EQ(buf_append(&b, "!", 1), TERN_ETOOBIG);
    CHECK_EQ(b.len, 10u);
    buf_consume(&b, 5);
    CHECK(memcmp(b.data, "world", 5) == 0);
    buf_free(&b);
    CHECK_EQ(mem_total(&m), 0);
}

static void test_utf8(void)
{
    CHECK(utf8_valid_mqtt((const uint8_t *)"a/b", 3));
    CHECK(utf8_valid_mqtt((const uint8_t *)"\xc3\xa9", 2));
    CHECK(utf8_valid_mqtt((const uint8_t *)"\xef\xbb\xbf", 3));          /* U+FEFF kept */
    CHECK(!utf8_valid_mqtt((const uint8_t *)"a\0b", 3));                 /* [MQTT-1.5.3-2] */
    CHECK(utf8_valid((const uint8_t *)"a\0b", 3));
    CHECK(!utf8_valid_mqtt((const uint8_t *)"\xed\xa0\x80", 3));         /* surrogate [MQTT-1.5.3-1] */
    CHECK(!utf8_valid_mqtt((const uint8_t *)"\xc0\xaf", 2));             /* overlong */
    CHECK(!utf8_valid_mqtt((const uint8_t *)"\xf4\x90\x80\x80", 4));     /* > U+10FFFF */
    CHECK(!utf8_valid_mqtt((const uint8_t *)"\xe2\x82", 2));             /* truncated */
    CHECK(!utf8_valid_mqtt((const uint8_t *)"\xff", 1));
}

static void test_hmap_many(void)
{
    struct mem mm;
    mem_init(&mm);
    struct hmap h;
    hmap_init(&h, &mm);
    static char keys[5000][12];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(keys[i], sizeof keys[i], "k%d", i);
        CHECK_EQ(hmap_put(&h, keys[i], (size_t)n, (void *)(long)(i + 1)), 0);
    }
    CHECK_EQ(h.count, 5000u);
    for (int i = 0; i < 5000; i += 2)
        CHECK(hmap_del(&h, keys[i], strlen(keys[i])) == (void *)(long)(i + 1));
    for (int i = 0; i < 5000; i++) {
        void *v = hmap_get(&h, keys[i], strlen(keys[i]));
        CHECK(v == (i % 2 ? (void *)(long)(i + 1) : NULL));
    }
    CHECK_EQ(h.count, 2500u);
    hmap_free(&h);
    CHECK_EQ(mem_total(&mm), 0);
}

struct fired {
    int n;
    struct timer *last;
};
static void on_fire(void *ctx, struct timer *t)
{
    struct fired *f = ctx;
    f->n++;
    f->last = t;
}

static void test_timer_wheel(void)
{
    struct wheel w;
    wheel_init(&w, 100);
    struct timer a = {0}, b = {0}, c = {0};
    wheel_add(&w, &a, 102);
    wheel_add(&w, &b, 100 + WHEEL_SLOTS + 2); /* same slot as a, one lap later */
    wheel_add(&w, &c, 105);
    wheel_del(&c);
    struct fired f = {0};
    wheel_advance(&w, 101, on_fire, &f);
    CHECK_EQ(f.n, 0);
    wheel_advance(&w, 102, on_fire, &f);
    CHECK_EQ(f.n, 1);
    CHECK(f.last == &a);
    CHECK(!timer_pending(&a));
    CHECK(timer_pending(&b));
    wheel_advance(&w, 100 + WHEEL_SLOTS + 1, on_fire, &f);
    CHECK_EQ(f.n, 1);
    wheel_advance(&w, 100 + 3 * WHEEL_SLOTS, on_fire, &f); /* long stall: still fires */
    CHECK_EQ(f.n, 2);
    CHECK(f.last == &b);
}

static int released;
static void rel(void *o)
{
    (void)o;
    released++;
}

static void test_outq_segments(void)
{
    struct mem mm;
    mem_init(&mm);
    struct outq q;
    outq_init(&q, &mm, 64, rel);
    static const uint8_t big[100] = {1};
    CHECK_EQ(outq_append(&q, "abc", 3), 0);
    CHECK_EQ(outq_append(&q, "def", 3), 0); /* merges with the previous bytes segment */
    CHECK_EQ(outq_append_ref(&q, big, sizeof big, (void *)1), 0);
    CHECK_EQ(outq_append(&q, "gh", 2), 0);
    CHECK_EQ(q.count, 3u);
    CHECK_EQ(q.pending, 108u);
    struct iovec iov[8];
    CHECK_EQ(outq_peek(&q, iov, 8), 3);
    CHECK(iov[0].iov_len == 6 && memcmp(iov[0].iov_base, "abcdef", 6) == 0);
    CHECK(iov[1].iov_base == big);
    CHECK(iov[2].iov_len == 2 && memcmp(iov[2].iov_base, "gh", 2) == 0);
    outq_advance(&q, 50); /* into the referenced payload */
    CHECK_EQ(released, 0);
    outq_advance(&q, 56);
    CHECK_EQ(released, 1);
    CHECK_EQ(q.pending, 2u);
    CHECK_EQ(outq_append(&q, big, 70), TERN_ETOOBIG); /* bounded */
    outq_free(&q);
    CHECK_EQ(mem_total(&mm), 0);
}

void unit_main(void)
{
    UNIT_RUN(test_hmap_many);
    UNIT_RUN(test_timer_wheel);
    UNIT_RUN(test_outq_segments);
    UNIT_RUN(test_alloc_counts);
    UNIT_RUN(test_alloc_fail_hook);
    UNIT_RUN(test_buf_bounded);
    UNIT_RUN(test_utf8);
}
