/*
 * The one nanosecond clock of the C side. The clock is the caller's
 * choice because the users want different ones: the cgroup sweep's
 * once-a-second retry only needs CLOCK_MONOTONIC_COARSE (a plain memory
 * read, no timer access), while a benchmark timing microsecond passes
 * needs CLOCK_MONOTONIC's resolution.
 */
#ifndef TAUCG_CLOCK_H
#define TAUCG_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#endif
