/*
 * Process sweep over /proc/PID/stat.
 *
 * /proc is listed with getdents64 on a directory fd opened once. Each
 * process's stat fd is kept open and re-read with pread at offset 0, which
 * costs one syscall instead of openat+read+close. PIDs map to their state
 * through a two-level table (4096 PIDs per chunk), so lookups are O(1) and
 * memory is allocated only when a new PID range first appears.
 *
 * The changed-only sweep (tau_proc_sweep_changed) keeps, per PID, a hash of
 * the stat line it last reported: an idle process costs its pread and a
 * hash of ~300 bytes, no parse and no record, so the caller's work follows
 * what changed. Exits it had reported queue up in `pending` until drained.
 */
#define _GNU_SOURCE
#include "sampler.h"
#include "cursor.h"
#include "kbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CHUNK_BITS 12
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define MAX_PID (1u << 22) /* PID_MAX_LIMIT on 64-bit */

struct slot {
    int32_t fd1;      /* kept-open stat fd + 1, or 0: an all-zero slot is unused */
    uint32_t gen;     /* sweep generation last seen; 0: not tracked */
    uint32_t tracked; /* index in reader->tracked */
    double starttime; /* as in tau_proc: identical ticks give identical doubles */
    uint64_t hash;    /* stat line last reported by the changed sweep; 0: none */
    double seen_start; /* starttime of that report */
};

struct tau_proc_reader {
    int proc_fd;
    char proc_root[4096];
    struct kbuf dents;
    struct kbuf buf;
    struct slot *chunks[MAX_PID / CHUNK_SIZE];
    uint16_t chunk_used[MAX_PID / CHUNK_SIZE]; /* tracked PIDs per chunk */
    int32_t *tracked; /* PIDs with a slot, dense, for finding the ones gone */
    uint32_t ntracked, tracked_cap;
    uint32_t gen;
    uint32_t fd_budget, kept;
    double ticks_per_second;
    uint64_t page_size;
    struct tau_proc_gone *pending; /* reported processes that exited, not yet drained */
    uint32_t npending, pending_cap;
};

/* What one sweep is doing: every record, or changed ones only. */
struct sweep_ctx {
    int changed;
    struct tau_proc *out;
    uint32_t cap;
    int64_t count; /* records produced (changed mode: written to out) */
    uint32_t more; /* changed mode: records that did not fit out */
    uint32_t unchanged;
    struct tau_proc_stats *st;
};

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* ---------- parser ---------- */

static void cur_skip_field(struct cur *c)
{
    cur_skip_blanks(c);
    while (c->p < c->end && *c->p != ' ' && *c->p != '\n')
        c->p++;
}

int tau_parse_pid_stat(const char *buf, size_t n, struct tau_proc *p,
                       double ticks_per_second, uint64_t page_size)
{
    struct cur c = cur_make(buf, n);
    int ok = 1;
    uint64_t pid = cur_u64(&c, &ok);
    cur_skip_blanks(&c);
    if (!ok || !cur_expect(&c, "(") || pid > INT32_MAX)
        return -1;
    /* comm may hold spaces and ')' itself: it ends at the last ')'. */
    const char *rp = memrchr(c.p, ')', (size_t)(c.end - c.p));
    if (!rp)
        return -1;
    size_t clen = (size_t)(rp - c.p);
    if (clen >= TAU_COMM_LEN)
        clen = TAU_COMM_LEN - 1;
    memcpy(p->comm, c.p, clen);
    p->comm[clen] = '\0';
    c.p = rp + 1;
    cur_skip_blanks(&c);
    if (cur_eof(&c))
        return -1;
    p->pid = (int32_t)pid;
    p->state = *c.p++;
    p->ppid = (int32_t)cur_i64(&c, &ok);         /* 4 */
    p->pgrp = (int32_t)cur_i64(&c, &ok);         /* 5 */
    p->session = (int32_t)cur_i64(&c, &ok);      /* 6 */
    cur_skip_field(&c);                          /* 7 tty_nr */
    cur_skip_field(&c);                          /* 8 tpgid */
    cur_skip_field(&c);                          /* 9 flags */
    p->minflt = cur_u64(&c, &ok);                /* 10 */
    cur_skip_field(&c);                          /* 11 cminflt */
    p->majflt = cur_u64(&c, &ok);                /* 12 */
    cur_skip_field(&c);                          /* 13 cmajflt */
    p->utime = (double)cur_u64(&c, &ok) / ticks_per_second; /* 14 */
    p->stime = (double)cur_u64(&c, &ok) / ticks_per_second; /* 15 */
    cur_skip_field(&c);                          /* 16 cutime */
    cur_skip_field(&c);                          /* 17 cstime */
    p->priority = (int32_t)cur_i64(&c, &ok);     /* 18 */
    p->nice = (int32_t)cur_i64(&c, &ok);         /* 19 */
    p->num_threads = (int32_t)cur_i64(&c, &ok);  /* 20 */
    cur_skip_field(&c);                          /* 21 itrealvalue */
    uint64_t start_ticks = cur_u64(&c, &ok);     /* 22 */
    p->starttime = (double)start_ticks / ticks_per_second;
    p->vsize = cur_u64(&c, &ok);                 /* 23 */
    int64_t rss_pages = cur_i64(&c, &ok);        /* 24 */
    p->rss = rss_pages > 0 ? (uint64_t)rss_pages * page_size : 0;
    if (!ok)
        return -1;
    for (int i = 25; i < 39; i++)                /* rsslim .. exit_signal */
        cur_skip_field(&c);
    int tail = 1;
    int32_t cpu = (int32_t)cur_i64(&c, &tail);   /* 39 processor */
    uint32_t rt = (uint32_t)cur_u64(&c, &tail);  /* 40 rt_priority */
    uint32_t pol = (uint32_t)cur_u64(&c, &tail); /* 41 policy */
    if (tail) {
        p->processor = cpu;
        p->rt_priority = rt;
        p->policy = pol;
    } else {
        p->processor = -1;
        p->rt_priority = 0;
        p->policy = 0;
    }
    return 0;
}

/* ---------- PID table ---------- */

static struct slot *slot_get(struct tau_proc_reader *r, uint32_t pid, int create)
{
    if (pid >= MAX_PID)
        return NULL;
    struct slot **chunk = &r->chunks[pid >> CHUNK_BITS];
    if (!*chunk) {
        if (!create)
            return NULL;
        /* Zeroed pages from calloc stay unbacked until a PID in them is
         * seen, so a chunk costs memory only for the PIDs that exist. */
        *chunk = calloc(CHUNK_SIZE, sizeof(struct slot));
        if (!*chunk)
            return NULL;
    }
    return &(*chunk)[pid & (CHUNK_SIZE - 1)];
}

static int track(struct tau_proc_reader *r, struct slot *s, int32_t pid)
{
    if (r->ntracked == r->tracked_cap) {
        uint32_t cap = r->tracked_cap ? r->tracked_cap * 2 : 1024;
        int32_t *bigger = realloc(r->tracked, cap * sizeof *bigger);
        if (!bigger)
            return -ENOMEM;
        r->tracked = bigger;
        r->tracked_cap = cap;
    }
    s->tracked = r->ntracked;
    r->tracked[r->ntracked++] = pid;
    r->chunk_used[(uint32_t)pid >> CHUNK_BITS]++;
    return 0;
}

static void drop_fd(struct tau_proc_reader *r, struct slot *s)
{
    if (s->fd1 > 0) {
        close(s->fd1 - 1);
        s->fd1 = 0;
        r->kept--;
    }
}

/* The changed sweep's consumer was told this process exists: queue its exit. */
static void queue_gone(struct tau_proc_reader *r, struct slot *s, int32_t pid)
{
    if (r->npending == r->pending_cap) {
        uint32_t cap = r->pending_cap ? r->pending_cap * 2 : 256;
        struct tau_proc_gone *bigger = realloc(r->pending, cap * sizeof *bigger);
        if (!bigger)
            return; /* the consumer keeps a stale record; the next exit retries */
        r->pending = bigger;
        r->pending_cap = cap;
    }
    r->pending[r->npending].pid = pid;
    r->pending[r->npending].starttime = s->seen_start;
    r->npending++;
}

static void untrack(struct tau_proc_reader *r, struct slot *s)
{
    drop_fd(r, s);
    uint32_t i = s->tracked;
    int32_t pid = r->tracked[i];
    if (s->hash != 0)
        queue_gone(r, s, pid);
    s->hash = 0;
    s->seen_start = 0;
    int32_t last = r->tracked[--r->ntracked];
    if (i < r->ntracked) {
        r->tracked[i] = last;
        slot_get(r, (uint32_t)last, 0)->tracked = i;
    }
    s->gen = 0;
    s->starttime = 0;
    /* PIDs wrap around pid_max (4M under systemd): a chunk whose PIDs have
     * all exited is freed, or the table would grow to cover every range
     * ever used. s is not used after this. */
    uint32_t c = (uint32_t)pid >> CHUNK_BITS;
    if (--r->chunk_used[c] == 0) {
        free(r->chunks[c]);
        r->chunks[c] = NULL;
    }
}

/* ---------- reader ---------- */

struct tau_proc_reader *tau_proc_open(const char *proc_root, uint32_t fd_budget,
                                      double ticks_per_second, uint64_t page_size)
{
    struct tau_proc_reader *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    snprintf(r->proc_root, sizeof r->proc_root, "%s", proc_root);
    r->proc_fd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (r->proc_fd < 0 || kbuf_init(&r->dents, 1 << 16) < 0 || kbuf_init(&r->buf, 1024) < 0) {
        int e = r->proc_fd < 0 ? errno : ENOMEM;
        tau_proc_close(r);
        errno = e;
        return NULL;
    }
    r->fd_budget = fd_budget;
    r->ticks_per_second = ticks_per_second > 0 ? ticks_per_second : 100;
    r->page_size = page_size ? page_size : 4096;
    return r;
}

void tau_proc_close(struct tau_proc_reader *r)
{
    if (!r)
        return;
    for (uint32_t i = 0; i < r->ntracked; i++) {
        struct slot *s = slot_get(r, (uint32_t)r->tracked[i], 0);
        if (s && s->fd1 > 0)
            close(s->fd1 - 1);
    }
    for (size_t i = 0; i < MAX_PID / CHUNK_SIZE; i++)
        free(r->chunks[i]);
    free(r->tracked);
    free(r->pending);
    free(r->dents.data);
    free(r->buf.data);
    if (r->proc_fd >= 0)
        close(r->proc_fd);
    free(r);
}

static int open_stat(struct tau_proc_reader *r, uint32_t pid)
{
    char rel[32];
    snprintf(rel, sizeof rel, "%u/stat", pid);
    return openat(r->proc_fd, rel, O_RDONLY | O_CLOEXEC);
}

enum { READ_OK, READ_GONE, READ_ERROR };

/* Reads one process's stat into r->buf; keeps or reuses its fd. */
static int read_one(struct tau_proc_reader *r, struct slot *s, uint32_t pid, ssize_t *len,
                    struct tau_proc_stats *st)
{
    if (s->fd1 > 0) {
        ssize_t n = kbuf_pread(s->fd1 - 1, &r->buf);
        if (n >= 0) {
            *len = n;
            return READ_OK;
        }
        /* The task behind this fd is gone. If the PID is listed again, it
         * was reused: open the new process below. */
        drop_fd(r, s);
        if (!is_absent_errno((int)-n)) {
            st->errors++;
            return READ_ERROR;
        }
    }
    int fd = open_stat(r, pid);
    if (fd < 0) {
        if (is_absent_errno(errno))
            return READ_GONE;
        if (errno == EMFILE || errno == ENFILE)
            r->fd_budget = r->kept; /* the process limit is lower than the budget */
        st->errors++;
        return READ_ERROR;
    }
    ssize_t n = kbuf_pread(fd, &r->buf);
    if (n < 0) {
        close(fd);
        if (is_absent_errno((int)-n))
            return READ_GONE;
        st->errors++;
        return READ_ERROR;
    }
    if (r->kept < r->fd_budget) {
        s->fd1 = fd + 1;
        r->kept++;
    } else {
        close(fd);
        st->fallback_reads++;
    }
    *len = n;
    return READ_OK;
}

uint64_t tau_stat_hash(const char *buf, size_t n)
{
    /* Each step is a bijection in both h and the word (rotate, xor, multiply
     * by an odd constant), so lines differing in one 8-byte word never hash
     * alike; the length seeds it. */
    const uint64_t k = 0x517cc1b727220a95ull;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, buf + i, 8);
        h = (((h << 5) | (h >> 59)) ^ w) * k;
    }
    if (i < n) {
        uint64_t w = 0;
        memcpy(&w, buf + i, n - i);
        h = (((h << 5) | (h >> 59)) ^ w) * k;
    }
    h ^= h >> 32;
    return h ? h : 1; /* 0 means "never reported" */
}

/* Reads one tracked process and, if the sweep wants it, parses it into the
 * next record (or scratch past cap); untracks it if it has gone. */
static void sweep_one(struct tau_proc_reader *r, struct slot *s, uint32_t pid,
                      struct sweep_ctx *x)
{
    struct tau_proc scratch;
    struct tau_proc_stats *st = x->st;
    s->gen = r->gen;
    ssize_t len = 0;
    int rc = read_one(r, s, pid, &len, st);
    if (rc != READ_OK) {
        if (rc == READ_GONE)
            st->vanished++;
        untrack(r, s);
        return;
    }
    uint64_t h = 0;
    if (x->changed) {
        h = tau_stat_hash(r->buf.data, (size_t)len);
        if (h == s->hash) {
            x->unchanged++;
            return;
        }
    }
    struct tau_proc *p = (uint64_t)x->count < x->cap ? &x->out[x->count] : &scratch;
    if (tau_parse_pid_stat(r->buf.data, (size_t)len, p, r->ticks_per_second, r->page_size) < 0) {
        st->errors++;
        return;
    }
    if (!x->changed) {
        p->flags = (s->starttime != p->starttime) ? TAU_PROC_NEW : 0;
        s->starttime = p->starttime;
        x->count++;
        return;
    }
    if (p == &scratch) {
        x->more++; /* not committed: the next sweep reports it again */
        return;
    }
    p->flags = (s->hash == 0 || s->seen_start != p->starttime) ? TAU_PROC_NEW : 0;
    s->hash = h;
    s->seen_start = p->starttime;
    x->count++;
}

int tau_proc_track(struct tau_proc_reader *r, int32_t pid)
{
    if (pid <= 0)
        return -EINVAL;
    struct slot *s = slot_get(r, (uint32_t)pid, 1);
    if (!s)
        return pid >= (int32_t)MAX_PID ? -EINVAL : -ENOMEM;
    if (s->gen != 0)
        return 0;
    s->gen = r->gen ? r->gen : 1;
    return track(r, s, pid);
}

static void sweep_tracked(struct tau_proc_reader *r, struct sweep_ctx *x)
{
    if (++r->gen == 0)
        r->gen = 1;
    /* Backwards, because untrack() moves the last entry into the hole. */
    for (uint32_t i = r->ntracked; i-- > 0;) {
        uint32_t pid = (uint32_t)r->tracked[i];
        x->st->listed++;
        sweep_one(r, slot_get(r, pid, 0), pid, x);
    }
}

/* Lists /proc and reads every process; returns 0 or -errno. */
static int sweep_listed(struct tau_proc_reader *r, struct sweep_ctx *x)
{
    struct tau_proc_stats *st = x->st;
    if (++r->gen == 0)
        r->gen = 1;
    if (lseek(r->proc_fd, 0, SEEK_SET) < 0)
        return -errno;
    for (;;) {
        long nread = syscall(SYS_getdents64, r->proc_fd, r->dents.data, r->dents.cap);
        if (nread < 0)
            return -errno;
        if (nread == 0)
            break;
        for (long off = 0; off < nread;) {
            struct linux_dirent64 *d = (struct linux_dirent64 *)(r->dents.data + off);
            off += d->d_reclen;
            const char *name = d->d_name;
            if (name[0] < '1' || name[0] > '9')
                continue;
            uint32_t pid = 0;
            int digits = 1;
            for (const char *q = name; *q; q++) {
                if (*q < '0' || *q > '9' || pid >= MAX_PID) {
                    digits = 0;
                    break;
                }
                pid = pid * 10 + (uint32_t)(*q - '0');
            }
            if (!digits)
                continue;
            st->listed++;
            struct slot *s = slot_get(r, pid, 1);
            if (!s || (s->gen == 0 && track(r, s, (int32_t)pid) < 0)) {
                st->errors++;
                continue;
            }
            sweep_one(r, s, pid, x);
        }
    }
    /* PIDs no longer listed: their processes exited. */
    for (uint32_t i = r->ntracked; i-- > 0;) {
        struct slot *s = slot_get(r, (uint32_t)r->tracked[i], 0);
        if (s->gen != r->gen)
            untrack(r, s);
    }
    return 0;
}

static int64_t sweep_all(struct tau_proc_reader *r, int rescan, struct tau_proc *out,
                         uint32_t cap, struct tau_proc_stats *st)
{
    struct sweep_ctx x = {.changed = 0, .out = out, .cap = cap, .st = st};
    memset(st, 0, sizeof *st);
    if (rescan) {
        int rc = sweep_listed(r, &x);
        if (rc < 0)
            return rc;
    } else {
        sweep_tracked(r, &x);
    }
    st->parsed = (uint32_t)x.count;
    st->kept_fds = r->kept;
    return x.count;
}

int64_t tau_proc_sweep_known(struct tau_proc_reader *r, struct tau_proc *out, uint32_t cap,
                             struct tau_proc_stats *st)
{
    return sweep_all(r, 0, out, cap, st);
}

int64_t tau_proc_sweep(struct tau_proc_reader *r, struct tau_proc *out, uint32_t cap,
                       struct tau_proc_stats *st)
{
    return sweep_all(r, 1, out, cap, st);
}

int tau_proc_sweep_changed(struct tau_proc_reader *r, int rescan, struct tau_proc *out,
                           uint32_t cap, struct tau_proc_gone *gone, uint32_t gone_cap,
                           struct tau_proc_changes *ch, struct tau_proc_stats *st)
{
    struct sweep_ctx x = {.changed = 1, .out = out, .cap = cap, .st = st};
    memset(st, 0, sizeof *st);
    memset(ch, 0, sizeof *ch);
    if (rescan) {
        int rc = sweep_listed(r, &x);
        if (rc < 0)
            return rc;
    } else {
        sweep_tracked(r, &x);
    }
    uint32_t n = r->npending < gone_cap ? r->npending : gone_cap;
    if (n) {
        memcpy(gone, r->pending, n * sizeof *gone);
        memmove(r->pending, r->pending + n, (r->npending - n) * sizeof *gone);
        r->npending -= n;
    }
    ch->changed = (uint32_t)x.count;
    ch->more = x.more;
    ch->gone = n;
    ch->gone_more = r->npending;
    ch->unchanged = x.unchanged;
    st->parsed = (uint32_t)x.count + x.more;
    st->kept_fds = r->kept;
    return 0;
}
