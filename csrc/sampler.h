/*
 * taucg sampler: the C hot path.
 *
 * C hands back raw kernel numbers (clock ticks, kB as bytes, microseconds);
 * taucg/readers/sampler.py gives them meaning. Every buffer is owned by the
 * caller or by a reader handle that is allocated once, so a steady-state
 * sample does not allocate.
 *
 * This header is the extension's whole surface: csrc/build_sampler.py reads
 * it as the cdef, so nothing is declared twice.
 */
#ifndef TAUCG_SAMPLER_H
#define TAUCG_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

/* One row of /proc/stat "cpu" lines, in clock ticks. cpu is -1 for the total. */
struct tau_cpu_times {
    int32_t cpu;
    uint64_t user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice;
};

/* One PSI line: "some avg10=0.00 avg60=0.00 avg300=0.00 total=0". */
struct tau_psi_line {
    double avg10, avg60, avg300;
    uint64_t total_us;
};

/* A pressure file; a line the kernel does not print is absent, not zero. */
struct tau_psi {
    int has_some, has_full;
    struct tau_psi_line some, full;
};

/* /proc/meminfo, converted from kB to bytes. has_available is 0 on kernels
 * older than 3.14, which lack MemAvailable. */
struct tau_meminfo {
    int has_available;
    uint64_t total, free, available, buffers, cached, swap_total, swap_free,
        shmem, sreclaimable, dirty, writeback, anon_pages, mapped, slab;
};

/* Bits of tau_system.present: which sources were readable this sample.
 * PSI has no bit: each struct tau_psi says itself, through has_some,
 * whether its file was there. */
#define TAU_SYS_STAT        0x01
#define TAU_SYS_MEMINFO     0x02
#define TAU_SYS_LOADAVG     0x04

struct tau_system {
    uint32_t present;
    uint32_t ncpu;      /* per-CPU rows written into the caller's array */
    uint32_t ncpu_seen; /* per-CPU rows in /proc/stat; > ncpu if the array was short */
    struct tau_cpu_times cpu_total;
    uint64_t ctxt, btime, processes, procs_running, procs_blocked;
    struct tau_meminfo mem;
    double load1, load5, load15;
    uint32_t runnable, nr_threads, last_pid;
    struct tau_psi psi_cpu, psi_memory, psi_io;
};

/* A reader keeps one fd per system file open across samples (csrc/system.c). */
struct tau_sys_reader;

/* proc_root is "/proc" in production; tests point it at a fake tree.
 * Returns NULL with errno set on allocation failure only: files that do not
 * exist are simply absent from every sample. */
struct tau_sys_reader *tau_sys_open(const char *proc_root);
void tau_sys_close(struct tau_sys_reader *r);

/* Fills *out and up to cpu_cap rows of cpus. Returns 0, or -errno for a read
 * error other than the file being absent. */
int tau_sys_sample(struct tau_sys_reader *r, struct tau_system *out,
                   struct tau_cpu_times *cpus, uint32_t cpu_cap);

/* The parsers, exposed so tests can feed them arbitrary bytes. Each reads at
 * most n bytes of buf (which need not be NUL-terminated) and returns 0 when
 * the input had the expected shape, -1 when it did not. */
int tau_parse_stat(const char *buf, size_t n, struct tau_system *out,
                   struct tau_cpu_times *cpus, uint32_t cpu_cap);
int tau_parse_meminfo(const char *buf, size_t n, struct tau_meminfo *out);
int tau_parse_loadavg(const char *buf, size_t n, struct tau_system *out);
int tau_parse_psi(const char *buf, size_t n, struct tau_psi *out);

/* ---------------------------------------------------------------------
 * Network interfaces and block devices (/proc/net/dev, /proc/diskstats),
 * read through the system reader's kept-open fds.
 */
#define TAU_NAME_LEN 32

struct tau_netdev {
    char name[TAU_NAME_LEN];
    uint64_t rx_bytes, rx_packets, rx_errs, rx_drop;
    uint64_t tx_bytes, tx_packets, tx_errs, tx_drop;
};

struct tau_disk {
    uint32_t major, minor;
    char name[TAU_NAME_LEN];
    uint64_t reads, read_merged, read_sectors, read_ms;
    uint64_t writes, write_merged, write_sectors, write_ms;
    uint64_t in_flight, io_ms, weighted_ms;
};

/* Each returns the number of rows in the file (which may exceed cap: only
 * cap rows are written), -ENOENT when the file is absent, or -errno. */
int tau_sys_netdev(struct tau_sys_reader *r, struct tau_netdev *out, uint32_t cap);
int tau_sys_disks(struct tau_sys_reader *r, struct tau_disk *out, uint32_t cap);
int tau_parse_netdev(const char *buf, size_t n, struct tau_netdev *out, uint32_t cap);
int tau_parse_diskstats(const char *buf, size_t n, struct tau_disk *out, uint32_t cap);

/* ---------------------------------------------------------------------
 * Process sweep: /proc/PID/stat for every process (csrc/proc.c).
 *
 * Each stat fd stays open across sweeps (pread at offset 0 re-reads it)
 * until fd_budget fds are held; past the budget a process is read with
 * openat+read+close instead, so a host with 10,000+ processes never hits
 * EMFILE. A process that exits mid-sweep is dropped quietly.
 */
#define TAU_COMM_LEN 64
#define TAU_PROC_NEW 0x1 /* first seen this sweep, or its PID was reused */

struct tau_proc {
    int32_t pid, ppid, pgrp, session;
    int32_t num_threads, priority, nice, processor;
    uint32_t rt_priority, policy, flags;
    char state;
    char comm[TAU_COMM_LEN]; /* NUL-terminated */
    /* Scaled while parsing with the units the caller passed to
     * tau_proc_open, so Python builds records without per-field work. */
    double utime, stime; /* seconds */
    double starttime;    /* seconds after boot */
    uint64_t vsize;      /* bytes */
    uint64_t rss;        /* bytes */
    uint64_t minflt, majflt;
};

struct tau_proc_stats {
    uint32_t listed;         /* numeric entries in /proc */
    uint32_t parsed;         /* records produced */
    uint32_t vanished;       /* exited between listing and reading */
    uint32_t kept_fds;       /* stat fds held open after this sweep */
    uint32_t fallback_reads; /* reads done with openat+read+close */
    uint32_t errors;         /* reads that failed for another reason */
};

struct tau_proc_reader;
/* ticks_per_second is sysconf(_SC_CLK_TCK); page_size is in bytes. */
struct tau_proc_reader *tau_proc_open(const char *proc_root, uint32_t fd_budget,
                                      double ticks_per_second, uint64_t page_size);
void tau_proc_close(struct tau_proc_reader *r);
/* Returns how many processes were read (may exceed cap: only cap records
 * are written, so retry with a larger array), or -errno if /proc itself
 * cannot be listed. */
int64_t tau_proc_sweep(struct tau_proc_reader *r, struct tau_proc *out, uint32_t cap,
                       struct tau_proc_stats *stats);
int tau_parse_pid_stat(const char *buf, size_t n, struct tau_proc *out,
                       double ticks_per_second, uint64_t page_size);
/* Follows processes without listing /proc: tau_proc_track adds a PID (from
 * a fork or exec event), tau_proc_sweep_known reads only tracked PIDs and
 * drops the ones that exited. A full tau_proc_sweep is the safety net. */
int tau_proc_track(struct tau_proc_reader *r, int32_t pid);
int64_t tau_proc_sweep_known(struct tau_proc_reader *r, struct tau_proc *out, uint32_t cap,
                             struct tau_proc_stats *stats);

/* Changed-only sweeps, so the caller's work scales with what changed. The
 * reader keeps a 64-bit hash of each process's last reported stat line;
 * a line that hashes the same is not parsed and yields no record. Written:
 * a record per process that is new to this consumer (TAU_PROC_NEW; also
 * when its PID now belongs to another process) or whose line changed, and
 * one tau_proc_gone per reported process that has since exited. rescan
 * lists /proc as tau_proc_sweep does; 0 reads the tracked PIDs only.
 * Nothing is lost to a short array: a record that did not fit is reported
 * again by the next sweep, and gone entries wait in the reader (the counts
 * in *ch say so). Full sweeps on the same reader do not disturb it.
 * Returns 0, or -errno if /proc itself cannot be listed. */
struct tau_proc_gone {
    int32_t pid;
    double starttime; /* as last reported, so a reused PID is told apart */
};

struct tau_proc_changes {
    uint32_t changed;   /* records written to out */
    uint32_t more;      /* changed records that did not fit out */
    uint32_t gone;      /* entries written to gone */
    uint32_t gone_more; /* gone entries still waiting in the reader */
    uint32_t unchanged; /* read, hashed the same: no record */
};

int tau_proc_sweep_changed(struct tau_proc_reader *r, int rescan, struct tau_proc *out,
                           uint32_t cap, struct tau_proc_gone *gone, uint32_t gone_cap,
                           struct tau_proc_changes *ch, struct tau_proc_stats *stats);
/* The hash the changed-only sweep compares, exposed for tests. */
uint64_t tau_stat_hash(const char *buf, size_t n);

/* ---------------------------------------------------------------------
 * Cgroup sweep over a set of cgroup v2 directories (csrc/cgroup.c). A file
 * that is absent (its controller is off) has its bit clear in `present`; it
 * is retried at most once a second, so enabling a controller later is
 * noticed.
 */
#define TAU_CG_CPU_STAT        0x0001
#define TAU_CG_MEMORY_CURRENT  0x0002
#define TAU_CG_MEMORY_MAX      0x0004
#define TAU_CG_MEMORY_HIGH     0x0008
#define TAU_CG_MEMORY_STAT     0x0010
#define TAU_CG_MEMORY_EVENTS   0x0020
#define TAU_CG_PIDS_CURRENT    0x0040
#define TAU_CG_PIDS_MAX        0x0080
#define TAU_CG_IO_STAT         0x0100
#define TAU_CG_CPU_PRESSURE    0x0200
#define TAU_CG_MEMORY_PRESSURE 0x0400
#define TAU_CG_IO_PRESSURE     0x0800
#define TAU_CG_EVENTS          0x1000
#define TAU_CG_NFILES 13
#define TAU_UNLIMITED UINT64_MAX /* "max" in memory.max, pids.max ... */

struct tau_cgroup {
    uint32_t present;
    uint64_t cpu_usage_usec, cpu_user_usec, cpu_system_usec;
    uint64_t cpu_nr_periods, cpu_nr_throttled, cpu_throttled_usec;
    uint64_t memory_current, memory_max, memory_high;
    uint64_t mem_anon, mem_file, mem_shmem, mem_sock, mem_pgfault, mem_pgmajfault;
    uint64_t ev_low, ev_high, ev_max, ev_oom, ev_oom_kill;
    uint64_t pids_current, pids_max;
    uint64_t io_rbytes, io_wbytes, io_rios, io_wios;
    struct tau_psi cpu_pressure, memory_pressure, io_pressure;
    int32_t populated, frozen;
};

struct tau_cg_set;
struct tau_cg_set *tau_cg_set_new(void);
void tau_cg_set_free(struct tau_cg_set *s);
/* Adds a directory; returns its index, or -errno (-ENOENT: no such cgroup). */
int tau_cg_set_add(struct tau_cg_set *s, const char *dir);
/* Where a sweep's first read error happened, so the caller can name the
 * file: an errno alone cannot say which of thousands it came from. */
struct tau_cg_error {
    uint32_t index; /* the directory, as numbered by tau_cg_set_add */
    uint32_t file;  /* one TAU_CG_* bit */
};
/* Fills out[i] for the first n directories; returns 0, or the first read
 * error's -errno with *err saying where it was (the sweep still fills every
 * record). */
int tau_cg_sweep(struct tau_cg_set *s, struct tau_cgroup *out, uint32_t n,
                 struct tau_cg_error *err);
/* The file name of one TAU_CG_* bit ("cpu.stat"), or "" for anything else. */
const char *tau_cg_file_name(uint32_t file);
/* Parses one cgroup file's text; `file` is one TAU_CG_* bit. 0 or -1. */
int tau_parse_cg_file(uint32_t file, const char *buf, size_t n, struct tau_cgroup *out);

/* ---------------------------------------------------------------------
 * Process events from the netlink proc connector (csrc/events.c; needs
 * CAP_NET_ADMIN in the initial user and PID namespaces).
 */
#define TAU_EV_FORK 0x00000001u /* PROC_EVENT_FORK */
#define TAU_EV_EXEC 0x00000002u /* PROC_EVENT_EXEC */
#define TAU_EV_EXIT 0x80000000u /* PROC_EVENT_EXIT */

struct tau_proc_event {
    uint32_t what; /* TAU_EV_* */
    int32_t pid, tgid;
    int32_t parent_pid, parent_tgid; /* fork only */
    uint32_t exit_code;             /* exit only: a wait(2) status */
    uint32_t exit_signal;           /* exit only */
    uint64_t timestamp_ns;
};

/* A non-blocking, subscribed netlink socket, or -errno. */
int tau_events_open(void);
/* Up to cap pending events; 0 when none are pending; -ENOBUFS when the
 * kernel dropped events (rescan to catch up); other -errno on failure. */
int tau_events_read(int fd, struct tau_proc_event *out, uint32_t cap);
void tau_events_close(int fd);

/* ---------------------------------------------------------------------
 * Syscalls Python 3.11 lacks, for namespaces and IO priority (csrc/syscalls.c).
 * Each returns 0 or -errno.
 */
#define TAU_IOPRIO_WHO_PROCESS 1
#define TAU_IOPRIO_CLASS_SHIFT 13
int tau_unshare(int flags);
int tau_setns(int fd, int nstype);
int tau_mount(const char *source, const char *target, const char *fstype,
              unsigned long flags, const char *data);
int tau_ioprio_set(int which, int who, int ioprio);

#endif
