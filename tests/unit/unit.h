/* unit.h - minimal unit-test harness shared by tests/unit/test_*.c.
 *
 * A test file defines `void unit_main(void)` calling UNIT_RUN(fn) for each test function; checks
 * use CHECK(cond) / CHECK_EQ(a, b). The harness prints each failure with file:line and ends with
 * "N passed, N failed"; the exit status is non-zero when anything failed. */
#ifndef TERN_TESTS_UNIT_H
#define TERN_TESTS_UNIT_H

#include <stdbool.h>
#include <stdio.h>

struct unit_state {
    int passed, failed;
    int cur_failures;
    const char *cur_name;
};
extern struct unit_state unit_state;

void unit_main(void);
void unit_fail(const char *file, int line, const char *expr);
void unit_run(const char *name, void (*fn)(void));

#define UNIT_RUN(fn) unit_run(#fn, fn)
#define CHECK(c) ((c) ? (void)0 : unit_fail(__FILE__, __LINE__, #c))
#define CHECK_EQ(a, b) CHECK((a) == (b))
#define CHECK_MSG(c, ...)                                                                          \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            unit_fail(__FILE__, __LINE__, #c);                                                     \
            fprintf(stderr, "    ");                                                               \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
        }                                                                                          \
    } while (0)

#endif
