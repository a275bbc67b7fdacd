/* test_common.c - alloc accounting, bounded buffers, UTF-8 validation. */
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
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

void unit_main(void)
{
    UNIT_RUN(test_alloc_counts);
    UNIT_RUN(test_alloc_fail_hook);
    UNIT_RUN(test_buf_bounded);
    UNIT_RUN(test_utf8);
}
