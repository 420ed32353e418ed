/*
 * The floor for scripts/bench-sampler: what a process sweep would cost if
 * it did nothing but the one pread per process that the sampler's kept-open
 * fds reduce it to. It lives with the benchmark, outside the shipped
 * extension, and bench-sampler builds it into a temporary directory.
 */
#define _GNU_SOURCE
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Opens /proc/PID/stat for each pid, then times `rounds` passes of bare
 * pread calls with no parsing on `clock` (CLOCK_MONOTONIC: wall time;
 * CLOCK_THREAD_CPUTIME_ID: this thread's CPU time, which a busy neighbour
 * does not inflate). Returns the best pass in nanoseconds, or -errno. A pid
 * whose stat cannot be opened is skipped, like a process the sampler finds
 * gone. */
int64_t bench_pread_floor(const char *proc_root, const int32_t *pids, uint32_t n,
                          uint32_t rounds, int clock)
{
    char path[4200], buf[1024];
    int *fds = malloc(sizeof(int) * (n ? n : 1));
    if (!fds)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%d/stat", proc_root, pids[i]);
        fds[i] = open(path, O_RDONLY | O_CLOEXEC);
    }
    int64_t best = INT64_MAX;
    for (uint32_t round = 0; round < rounds; round++) {
        /* CLOCK_MONOTONIC, not _COARSE: a pass over a thousand fds lasts
         * about one jiffy, which is all the coarse clock can resolve. */
        int64_t t0 = clock_ns((clockid_t)clock);
        for (uint32_t i = 0; i < n; i++)
            if (fds[i] >= 0 && pread(fds[i], buf, sizeof buf, 0) < 0)
                buf[0] = 0;
        int64_t dt = clock_ns((clockid_t)clock) - t0;
        if (dt < best)
            best = dt;
    }
    for (uint32_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    return rounds ? best : 0;
}
