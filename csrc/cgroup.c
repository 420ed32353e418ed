/*
 * Cgroup v2 sweep over a set of cgroup directories, with every file kept
 * open and re-read by pread at offset 0.
 */
#define _GNU_SOURCE
#include "sampler.h"
#include "clock.h"
#include "cursor.h"
#include "kbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const CG_FILES[TAU_CG_NFILES] = {
    "cpu.stat", "memory.current", "memory.max", "memory.high", "memory.stat",
    "memory.events", "pids.current", "pids.max", "io.stat", "cpu.pressure",
    "memory.pressure", "io.pressure", "cgroup.events",
};

/* Absent files are looked for again after 1 s, timed on CLOCK_MONOTONIC_COARSE:
 * a jiffy of error does not matter at that scale, and it is the cheapest clock. */
#define RETRY_NS 1000000000LL

struct cg_handle {
    int dir_fd;
    int fd[TAU_CG_NFILES];
    int64_t last_retry_ns;
};

struct tau_cg_set {
    struct cg_handle *h;
    uint32_t n, cap;
    struct kbuf buf;
};

/* ---------- parsers ---------- */

struct kv {
    const char *key;
    size_t off;
};

#define CG(field) offsetof(struct tau_cgroup, field)

static const struct kv CPU_STAT_KEYS[] = {
    {"usage_usec", CG(cpu_usage_usec)},   {"user_usec", CG(cpu_user_usec)},
    {"system_usec", CG(cpu_system_usec)}, {"nr_periods", CG(cpu_nr_periods)},
    {"nr_throttled", CG(cpu_nr_throttled)}, {"throttled_usec", CG(cpu_throttled_usec)},
};
static const struct kv MEMORY_STAT_KEYS[] = {
    {"anon", CG(mem_anon)},       {"file", CG(mem_file)},
    {"shmem", CG(mem_shmem)},     {"sock", CG(mem_sock)},
    {"pgfault", CG(mem_pgfault)}, {"pgmajfault", CG(mem_pgmajfault)},
};
static const struct kv MEMORY_EVENTS_KEYS[] = {
    {"low", CG(ev_low)}, {"high", CG(ev_high)}, {"max", CG(ev_max)},
    {"oom", CG(ev_oom)}, {"oom_kill", CG(ev_oom_kill)},
};

/* "key value" lines; returns how many known keys were found. */
static int parse_kv(const char *buf, size_t n, const struct kv *keys, size_t nkeys, void *base)
{
    struct cur c = cur_make(buf, n);
    int found = 0;
    while (!cur_eof(&c)) {
        const char *w;
        size_t wl = cur_word(&c, &w);
        for (size_t i = 0; i < nkeys; i++) {
            if (!word_is(w, wl, keys[i].key))
                continue;
            int ok = 1;
            uint64_t v = cur_u64(&c, &ok);
            if (ok) {
                *(uint64_t *)((char *)base + keys[i].off) = v;
                found++;
            }
            break;
        }
        cur_next_line(&c);
    }
    return found;
}

/* A single number, or "max" for no limit. */
static int parse_limit(const char *buf, size_t n, uint64_t *out)
{
    struct cur c = cur_make(buf, n);
    cur_skip_blanks(&c);
    if (cur_expect(&c, "max")) {
        *out = TAU_UNLIMITED;
        return 0;
    }
    int ok = 1;
    *out = cur_u64(&c, &ok);
    return ok ? 0 : -1;
}

/* io.stat: "MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=.." per device. */
static int parse_io_stat(const char *buf, size_t n, struct tau_cgroup *out)
{
    struct cur c = cur_make(buf, n);
    out->io_rbytes = out->io_wbytes = out->io_rios = out->io_wios = 0;
    while (!cur_eof(&c)) {
        /* The device ("8:0") ends at the first blank; cur_word would stop at ':'. */
        cur_skip_blanks(&c);
        while (c.p < c.end && *c.p != ' ' && *c.p != '\n')
            c.p++;
        for (;;) {
            int ok = 1;
            cur_skip_blanks(&c);
            uint64_t *dst = NULL;
            if (cur_expect(&c, "rbytes="))
                dst = &out->io_rbytes;
            else if (cur_expect(&c, "wbytes="))
                dst = &out->io_wbytes;
            else if (cur_expect(&c, "rios="))
                dst = &out->io_rios;
            else if (cur_expect(&c, "wios="))
                dst = &out->io_wios;
            else if (cur_expect(&c, "dbytes=") || cur_expect(&c, "dios="))
                ;
            else
                break;
            uint64_t v = cur_u64(&c, &ok);
            if (!ok)
                break;
            if (dst)
                *dst += v;
        }
        cur_next_line(&c);
    }
    return 0;
}

static int parse_cgroup_events(const char *buf, size_t n, struct tau_cgroup *out)
{
    struct cur c = cur_make(buf, n);
    int found = 0;
    while (!cur_eof(&c)) {
        const char *w;
        size_t wl = cur_word(&c, &w);
        int ok = 1;
        if (word_is(w, wl, "populated")) {
            out->populated = (int32_t)cur_u64(&c, &ok);
            found += ok;
        } else if (word_is(w, wl, "frozen")) {
            out->frozen = (int32_t)cur_u64(&c, &ok);
            found += ok;
        }
        cur_next_line(&c);
    }
    return found ? 0 : -1;
}

#define NKEYS(a) (sizeof(a) / sizeof((a)[0]))

int tau_parse_cg_file(uint32_t file, const char *buf, size_t n, struct tau_cgroup *out)
{
    switch (file) {
    case TAU_CG_CPU_STAT:
        return parse_kv(buf, n, CPU_STAT_KEYS, NKEYS(CPU_STAT_KEYS), out) > 0 ? 0 : -1;
    case TAU_CG_MEMORY_CURRENT:
        return parse_limit(buf, n, &out->memory_current);
    case TAU_CG_MEMORY_MAX:
        return parse_limit(buf, n, &out->memory_max);
    case TAU_CG_MEMORY_HIGH:
        return parse_limit(buf, n, &out->memory_high);
    case TAU_CG_MEMORY_STAT:
        return parse_kv(buf, n, MEMORY_STAT_KEYS, NKEYS(MEMORY_STAT_KEYS), out) > 0 ? 0 : -1;
    case TAU_CG_MEMORY_EVENTS:
        return parse_kv(buf, n, MEMORY_EVENTS_KEYS, NKEYS(MEMORY_EVENTS_KEYS), out) > 0 ? 0 : -1;
    case TAU_CG_PIDS_CURRENT:
        return parse_limit(buf, n, &out->pids_current);
    case TAU_CG_PIDS_MAX:
        return parse_limit(buf, n, &out->pids_max);
    case TAU_CG_IO_STAT:
        return parse_io_stat(buf, n, out);
    case TAU_CG_CPU_PRESSURE:
        return tau_parse_psi(buf, n, &out->cpu_pressure);
    case TAU_CG_MEMORY_PRESSURE:
        return tau_parse_psi(buf, n, &out->memory_pressure);
    case TAU_CG_IO_PRESSURE:
        return tau_parse_psi(buf, n, &out->io_pressure);
    case TAU_CG_EVENTS:
        return parse_cgroup_events(buf, n, out);
    default:
        return -1;
    }
}

/* ---------- the set ---------- */

struct tau_cg_set *tau_cg_set_new(void)
{
    struct tau_cg_set *s = calloc(1, sizeof *s);
    if (!s || kbuf_init(&s->buf, 4096) < 0) {
        free(s);
        return NULL;
    }
    return s;
}

void tau_cg_set_free(struct tau_cg_set *s)
{
    if (!s)
        return;
    for (uint32_t i = 0; i < s->n; i++) {
        for (int f = 0; f < TAU_CG_NFILES; f++)
            if (s->h[i].fd[f] >= 0)
                close(s->h[i].fd[f]);
        close(s->h[i].dir_fd);
    }
    free(s->h);
    free(s->buf.data);
    free(s);
}

static void open_missing(struct cg_handle *h)
{
    for (int f = 0; f < TAU_CG_NFILES; f++)
        if (h->fd[f] < 0)
            h->fd[f] = openat(h->dir_fd, CG_FILES[f], O_RDONLY | O_CLOEXEC);
    h->last_retry_ns = clock_ns(CLOCK_MONOTONIC_COARSE);
}

int tau_cg_set_add(struct tau_cg_set *s, const char *dir)
{
    if (s->n == s->cap) {
        uint32_t cap = s->cap ? s->cap * 2 : 16;
        struct cg_handle *bigger = realloc(s->h, cap * sizeof *bigger);
        if (!bigger)
            return -ENOMEM;
        s->h = bigger;
        s->cap = cap;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    struct cg_handle *h = &s->h[s->n];
    h->dir_fd = dfd;
    for (int f = 0; f < TAU_CG_NFILES; f++)
        h->fd[f] = -1;
    open_missing(h);
    return (int)s->n++;
}

const char *tau_cg_file_name(uint32_t file)
{
    for (int f = 0; f < TAU_CG_NFILES; f++)
        if (file == 1u << f)
            return CG_FILES[f];
    return "";
}

int tau_cg_sweep(struct tau_cg_set *s, struct tau_cgroup *out, uint32_t n,
                 struct tau_cg_error *err)
{
    int first_error = 0;
    err->index = 0;
    err->file = 0;
    int64_t now = clock_ns(CLOCK_MONOTONIC_COARSE);
    if (n > s->n)
        n = s->n;
    for (uint32_t i = 0; i < n; i++) {
        struct cg_handle *h = &s->h[i];
        struct tau_cgroup *o = &out[i];
        memset(o, 0, sizeof *o);
        if (now - h->last_retry_ns >= RETRY_NS)
            open_missing(h);
        for (int f = 0; f < TAU_CG_NFILES; f++) {
            if (h->fd[f] < 0)
                continue;
            ssize_t len = kbuf_pread(h->fd[f], &s->buf);
            if (len < 0) {
                int e = (int)-len;
                if (is_absent_errno(e)) {
                    /* Controller disabled or cgroup removed: close, and
                     * let the retry find the file again if it returns. */
                    close(h->fd[f]);
                    h->fd[f] = -1;
                } else if (!first_error) {
                    first_error = (int)len;
                    err->index = i;
                    err->file = 1u << f;
                }
                continue;
            }
            if (tau_parse_cg_file(1u << f, s->buf.data, (size_t)len, o) == 0)
                o->present |= 1u << f;
        }
    }
    return first_error;
}
