/* unit.c - the harness of unit.h: runs unit_main() and prints the summary line. The one
 * mutable global of the test harness (tests are single-threaded programs). */
#include "unit.h"

struct unit_state unit_state;

void unit_fail(const char *file, int line, const char *expr)
{
    unit_state.cur_failures++;
    fprintf(stderr, "FAIL %s: %s:%d: %s\n", unit_state.cur_name ? unit_state.cur_name : "?", file,
            line, expr);
}

void unit_run(const char *name, void (*fn)(void))
{
    unit_state.cur_name = name;
    unit_state.cur_failures = 0;
    fn();
    if (unit_state.cur_failures)
        unit_state.failed++;
    else
        unit_state.passed++;
    printf("%s %s\n", unit_state.cur_failures ? "FAIL" : "ok  ", name);
}

int main(void)
{
    unit_main();
    printf("%d passed, %d failed\n", unit_state.passed, unit_state.failed);
    return unit_state.failed ? 1 : 0;
}
