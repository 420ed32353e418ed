/*
 * The whole-system sample: /proc/stat, meminfo, loadavg, pressure/{cpu,memory,io},
 * net/dev and diskstats, with their parsers.
 *
 * Files are opened once and re-read with pread(fd, buf, n, 0): procfs and
 * cgroupfs regenerate their contents at offset 0, so a kept-open fd costs
 * one syscall per sample instead of three (open, read, close).
 */
#define _GNU_SOURCE
#include "sampler.h"
#include "cursor.h"
#include "kbuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int open_ro(const char *root, const char *rel)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", root, rel);
    if (n < 0 || (size_t)n >= sizeof path)
        return -1;
    return open(path, O_RDONLY | O_CLOEXEC);
}

/* ---------- parsers ---------- */

/* Reads an optional number: returns 1 and stores it if one is on this line. */
static int cur_u64_opt(struct cur *c, uint64_t *v)
{
    int ok = 1;
    cur_skip_blanks(c);
    if (cur_eof(c) || *c->p == '\n')
        return 0;
    *v = cur_u64(c, &ok);
    return ok;
}

static int parse_cpu_row(struct cur *c, struct tau_cpu_times *t)
{
    uint64_t *fields[10] = {&t->user, &t->nice, &t->system, &t->idle, &t->iowait,
                            &t->irq, &t->softirq, &t->steal, &t->guest, &t->guest_nice};
    int i;
    for (i = 0; i < 10; i++) {
        if (!cur_u64_opt(c, fields[i]))
            break;
    }
    /* Older kernels stop after irq/softirq/steal; user..idle always exist. */
    return i >= 4;
}

int tau_parse_stat(const char *buf, size_t n, struct tau_system *out,
                   struct tau_cpu_times *cpus, uint32_t cpu_cap)
{
    struct cur c = cur_make(buf, n);
    int have_total = 0;
    out->ncpu = 0;
    out->ncpu_seen = 0;
    while (!cur_eof(&c)) {
        const char *w;
        size_t wl = cur_word(&c, &w);
        int ok = 1;
        if (wl >= 3 && memcmp(w, "cpu", 3) == 0) {
            struct tau_cpu_times t;
            memset(&t, 0, sizeof t);
            if (wl == 3) {
                t.cpu = -1;
            } else {
                struct cur id = cur_make(w + 3, wl - 3);
                uint64_t v = cur_u64(&id, &ok);
                if (!ok || !cur_eof(&id) || v > INT32_MAX) {
                    cur_next_line(&c);
                    continue;
                }
                t.cpu = (int32_t)v;
            }
            if (parse_cpu_row(&c, &t)) {
                if (t.cpu < 0) {
                    out->cpu_total = t;
                    have_total = 1;
                } else {
                    if (out->ncpu < cpu_cap)
                        cpus[out->ncpu++] = t;
                    out->ncpu_seen++;
                }
            }
        } else if (word_is(w, wl, "ctxt")) {
            out->ctxt = cur_u64(&c, &ok);
        } else if (word_is(w, wl, "btime")) {
            out->btime = cur_u64(&c, &ok);
        } else if (word_is(w, wl, "processes")) {
            out->processes = cur_u64(&c, &ok);
        } else if (word_is(w, wl, "procs_running")) {
            out->procs_running = cur_u64(&c, &ok);
        } else if (word_is(w, wl, "procs_blocked")) {
            out->procs_blocked = cur_u64(&c, &ok);
        }
        cur_next_line(&c);
    }
    return have_total ? 0 : -1;
}

struct memkey {
    const char *key;
    size_t off;
};

static const struct memkey MEMKEYS[] = {
    {"MemTotal", offsetof(struct tau_meminfo, total)},
    {"MemFree", offsetof(struct tau_meminfo, free)},
    {"MemAvailable", offsetof(struct tau_meminfo, available)},
    {"Buffers", offsetof(struct tau_meminfo, buffers)},
    {"Cached", offsetof(struct tau_meminfo, cached)},
    {"SwapTotal", offsetof(struct tau_meminfo, swap_total)},
    {"SwapFree", offsetof(struct tau_meminfo, swap_free)},
    {"Shmem", offsetof(struct tau_meminfo, shmem)},
    {"SReclaimable", offsetof(struct tau_meminfo, sreclaimable)},
    {"Dirty", offsetof(struct tau_meminfo, dirty)},
    {"Writeback", offsetof(struct tau_meminfo, writeback)},
    {"AnonPages", offsetof(struct tau_meminfo, anon_pages)},
    {"Mapped", offsetof(struct tau_meminfo, mapped)},
    {"Slab", offsetof(struct tau_meminfo, slab)},
};

int tau_parse_meminfo(const char *buf, size_t n, struct tau_meminfo *out)
{
    struct cur c = cur_make(buf, n);
    int have_total = 0;
    memset(out, 0, sizeof *out);
    while (!cur_eof(&c)) {
        const char *w;
        size_t wl = cur_word(&c, &w);
        if (cur_expect(&c, ":")) {
            for (size_t i = 0; i < sizeof MEMKEYS / sizeof MEMKEYS[0]; i++) {
                if (!word_is(w, wl, MEMKEYS[i].key))
                    continue;
                int ok = 1;
                uint64_t v = cur_u64(&c, &ok);
                if (!ok)
                    break;
                cur_skip_blanks(&c);
                if (cur_expect(&c, "kB"))
                    v = (v > UINT64_MAX / 1024) ? UINT64_MAX : v * 1024;
                *(uint64_t *)((char *)out + MEMKEYS[i].off) = v;
                if (MEMKEYS[i].off == offsetof(struct tau_meminfo, total))
                    have_total = 1;
                if (MEMKEYS[i].off == offsetof(struct tau_meminfo, available))
                    out->has_available = 1;
                break;
            }
        }
        cur_next_line(&c);
    }
    return have_total ? 0 : -1;
}

int tau_parse_loadavg(const char *buf, size_t n, struct tau_system *out)
{
    struct cur c = cur_make(buf, n);
    int ok = 1;
    out->load1 = cur_decimal(&c, &ok);
    out->load5 = cur_decimal(&c, &ok);
    out->load15 = cur_decimal(&c, &ok);
    out->runnable = (uint32_t)cur_u64(&c, &ok);
    if (!cur_expect(&c, "/"))
        ok = 0;
    out->nr_threads = (uint32_t)cur_u64(&c, &ok);
    out->last_pid = (uint32_t)cur_u64(&c, &ok);
    return ok ? 0 : -1;
}

static int parse_psi_line(struct cur *c, struct tau_psi_line *l)
{
    int ok = 1, seen = 0;
    for (;;) {
        cur_skip_blanks(c);
        if (cur_expect(c, "avg10=")) {
            l->avg10 = cur_decimal(c, &ok);
            seen |= 1;
        } else if (cur_expect(c, "avg60=")) {
            l->avg60 = cur_decimal(c, &ok);
            seen |= 2;
        } else if (cur_expect(c, "avg300=")) {
            l->avg300 = cur_decimal(c, &ok);
            seen |= 4;
        } else if (cur_expect(c, "total=")) {
            l->total_us = cur_u64(c, &ok);
            seen |= 8;
        } else {
            break;
        }
    }
    return ok && seen == 15;
}

int tau_parse_psi(const char *buf, size_t n, struct tau_psi *out)
{
    struct cur c = cur_make(buf, n);
    memset(out, 0, sizeof *out);
    while (!cur_eof(&c)) {
        const char *w;
        size_t wl = cur_word(&c, &w);
        if (word_is(w, wl, "some"))
            out->has_some = parse_psi_line(&c, &out->some);
        else if (word_is(w, wl, "full"))
            out->has_full = parse_psi_line(&c, &out->full);
        cur_next_line(&c);
    }
    return out->has_some ? 0 : -1;
}

/* Copies a name into a fixed field, always NUL-terminated. */
static void copy_name(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* /proc/net/dev: two header lines, then "  name: rx(8 fields) tx(8 fields)". */
int tau_parse_netdev(const char *buf, size_t n, struct tau_netdev *out, uint32_t cap)
{
    struct cur c = cur_make(buf, n);
    int rows = 0;
    while (!cur_eof(&c)) {
        const char *w;
        size_t wl = cur_word(&c, &w);
        if (wl == 0 || !cur_expect(&c, ":")) {
            cur_next_line(&c);
            continue;
        }
        uint64_t f[16];
        int ok = 1;
        for (int i = 0; i < 16; i++)
            f[i] = cur_u64(&c, &ok);
        if (ok) {
            if ((uint32_t)rows < cap) {
                struct tau_netdev *d = &out[rows];
                copy_name(d->name, sizeof d->name, w, wl);
                d->rx_bytes = f[0];
                d->rx_packets = f[1];
                d->rx_errs = f[2];
                d->rx_drop = f[3];
                d->tx_bytes = f[8];
                d->tx_packets = f[9];
                d->tx_errs = f[10];
                d->tx_drop = f[11];
            }
            rows++;
        }
        cur_next_line(&c);
    }
    return rows;
}

/* /proc/diskstats: "major minor name" then at least 11 counters. */
int tau_parse_diskstats(const char *buf, size_t n, struct tau_disk *out, uint32_t cap)
{
    struct cur c = cur_make(buf, n);
    int rows = 0;
    while (!cur_eof(&c)) {
        int ok = 1;
        uint64_t major = cur_u64(&c, &ok), minor = cur_u64(&c, &ok);
        const char *w;
        size_t wl = cur_word(&c, &w);
        uint64_t f[11];
        for (int i = 0; i < 11; i++)
            f[i] = cur_u64(&c, &ok);
        if (ok && wl > 0) {
            if ((uint32_t)rows < cap) {
                struct tau_disk *d = &out[rows];
                d->major = (uint32_t)major;
                d->minor = (uint32_t)minor;
                copy_name(d->name, sizeof d->name, w, wl);
                d->reads = f[0];
                d->read_merged = f[1];
                d->read_sectors = f[2];
                d->read_ms = f[3];
                d->writes = f[4];
                d->write_merged = f[5];
                d->write_sectors = f[6];
                d->write_ms = f[7];
                d->in_flight = f[8];
                d->io_ms = f[9];
                d->weighted_ms = f[10];
            }
            rows++;
        }
        cur_next_line(&c);
    }
    return rows;
}

/* ---------- system reader ---------- */

enum {
    SYS_STAT, SYS_MEMINFO, SYS_LOADAVG, SYS_PSI_CPU, SYS_PSI_MEMORY, SYS_PSI_IO,
    SYS_SAMPLED, /* files above are read by tau_sys_sample */
    SYS_NETDEV = SYS_SAMPLED, SYS_DISKSTATS, SYS_NFILES
};

static const char *const SYS_FILES[SYS_NFILES] = {
    "stat", "meminfo", "loadavg", "pressure/cpu", "pressure/memory", "pressure/io",
    "net/dev", "diskstats",
};

/* The PSI files have no bit: has_some in their struct tau_psi already says
 * whether each was read, and a second flag could only disagree with it. */
static const uint32_t SYS_BITS[SYS_NFILES] = {
    TAU_SYS_STAT, TAU_SYS_MEMINFO, TAU_SYS_LOADAVG,
};

struct tau_sys_reader {
    int fd[SYS_NFILES];
    struct kbuf buf;
};

struct tau_sys_reader *tau_sys_open(const char *proc_root)
{
    struct tau_sys_reader *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    /* /proc/stat grows with CPUs and IRQs; 16 KiB fits small machines and
     * the buffer grows once on large ones. */
    if (kbuf_init(&r->buf, 16384) < 0) {
        free(r);
        errno = ENOMEM;
        return NULL;
    }
    for (int i = 0; i < SYS_NFILES; i++)
        r->fd[i] = open_ro(proc_root, SYS_FILES[i]);
    return r;
}

void tau_sys_close(struct tau_sys_reader *r)
{
    if (!r)
        return;
    for (int i = 0; i < SYS_NFILES; i++)
        if (r->fd[i] >= 0)
            close(r->fd[i]);
    free(r->buf.data);
    free(r);
}

int tau_sys_sample(struct tau_sys_reader *r, struct tau_system *out,
                   struct tau_cpu_times *cpus, uint32_t cpu_cap)
{
    int first_error = 0;
    memset(out, 0, sizeof *out);
    for (int i = 0; i < SYS_SAMPLED; i++) {
        if (r->fd[i] < 0)
            continue;
        ssize_t n = kbuf_pread(r->fd[i], &r->buf);
        if (n < 0) {
            if (!is_absent_errno((int)-n) && !first_error)
                first_error = (int)n;
            continue;
        }
        const char *b = r->buf.data;
        size_t len = (size_t)n;
        int rc = -1;
        switch (i) {
        case SYS_STAT:
            rc = tau_parse_stat(b, len, out, cpus, cpu_cap);
            break;
        case SYS_MEMINFO:
            rc = tau_parse_meminfo(b, len, &out->mem);
            break;
        case SYS_LOADAVG:
            rc = tau_parse_loadavg(b, len, out);
            break;
        case SYS_PSI_CPU:
            rc = tau_parse_psi(b, len, &out->psi_cpu);
            break;
        case SYS_PSI_MEMORY:
            rc = tau_parse_psi(b, len, &out->psi_memory);
            break;
        case SYS_PSI_IO:
            rc = tau_parse_psi(b, len, &out->psi_io);
            break;
        }
        if (rc == 0)
            out->present |= SYS_BITS[i];
    }
    return first_error;
}

static ssize_t sys_read(struct tau_sys_reader *r, int which)
{
    if (r->fd[which] < 0)
        return -ENOENT;
    return kbuf_pread(r->fd[which], &r->buf);
}

int tau_sys_netdev(struct tau_sys_reader *r, struct tau_netdev *out, uint32_t cap)
{
    ssize_t n = sys_read(r, SYS_NETDEV);
    return n < 0 ? (int)n : tau_parse_netdev(r->buf.data, (size_t)n, out, cap);
}

int tau_sys_disks(struct tau_sys_reader *r, struct tau_disk *out, uint32_t cap)
{
    ssize_t n = sys_read(r, SYS_DISKSTATS);
    return n < 0 ? (int)n : tau_parse_diskstats(r->buf.data, (size_t)n, out, cap);
}
