/* clock.h - monotonic and wall clocks. Time enters the codec and session logic as arguments;
 * only net/ and broker/ read clocks. */
#ifndef TERN_COMMON_CLOCK_H
#define TERN_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic milliseconds. */
static inline int64_t clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wall-clock seconds since the epoch. */
static inline int64_t clock_wall_s(void)
{
    return (int64_t)time(NULL);
}

#endif
