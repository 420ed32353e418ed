"""cffi builder (API mode) for taucg._sampler.

The cdef names exactly what csrc/sampler.h exports; tests/unit/test_cdef.py
checks the two agree. Constants use ``...`` so the compiler fills them in.
"""

from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

CDEF = """
struct tau_cpu_times {
    int32_t cpu;
    uint64_t user, nice, system, idle, iowait, irq, softirq, steal, guest, guest_nice;
};
struct tau_psi_line { double avg10, avg60, avg300; uint64_t total_us; };
struct tau_psi { int has_some, has_full; struct tau_psi_line some, full; };
struct tau_meminfo {
    int has_available;
    uint64_t total, free, available, buffers, cached, swap_total, swap_free,
        shmem, sreclaimable, dirty, writeback, anon_pages, mapped, slab;
};
#define TAU_SYS_STAT ...
#define TAU_SYS_MEMINFO ...
#define TAU_SYS_LOADAVG ...
#define TAU_SYS_PSI_CPU ...
#define TAU_SYS_PSI_MEMORY ...
#define TAU_SYS_PSI_IO ...
struct tau_system {
    uint32_t present;
    uint32_t ncpu;
    uint32_t ncpu_seen;
    struct tau_cpu_times cpu_total;
    uint64_t ctxt, btime, processes, procs_running, procs_blocked;
    struct tau_meminfo mem;
    double load1, load5, load15;
    uint32_t runnable, nr_threads, last_pid;
    struct tau_psi psi_cpu, psi_memory, psi_io;
};
struct tau_sys_reader;
struct tau_sys_reader *tau_sys_open(const char *proc_root);
void tau_sys_close(struct tau_sys_reader *r);
int tau_sys_sample(struct tau_sys_reader *r, struct tau_system *out,
                   struct tau_cpu_times *cpus, uint32_t cpu_cap);
int tau_parse_stat(const char *buf, size_t n, struct tau_system *out,
                   struct tau_cpu_times *cpus, uint32_t cpu_cap);
int tau_parse_meminfo(const char *buf, size_t n, struct tau_meminfo *out);
int tau_parse_loadavg(const char *buf, size_t n, struct tau_system *out);
int tau_parse_psi(const char *buf, size_t n, struct tau_psi *out);

#define TAU_NAME_LEN ...
struct tau_netdev {
    char name[32];
    uint64_t rx_bytes, rx_packets, rx_errs, rx_drop;
    uint64_t tx_bytes, tx_packets, tx_errs, tx_drop;
};
struct tau_disk {
    uint32_t major, minor;
    char name[32];
    uint64_t reads, read_merged, read_sectors, read_ms;
    uint64_t writes, write_merged, write_sectors, write_ms;
    uint64_t in_flight, io_ms, weighted_ms;
};
int tau_sys_netdev(struct tau_sys_reader *r, struct tau_netdev *out, uint32_t cap);
int tau_sys_disks(struct tau_sys_reader *r, struct tau_disk *out, uint32_t cap);
int tau_parse_netdev(const char *buf, size_t n, struct tau_netdev *out, uint32_t cap);
int tau_parse_diskstats(const char *buf, size_t n, struct tau_disk *out, uint32_t cap);

#define TAU_COMM_LEN ...
#define TAU_PROC_NEW ...
struct tau_proc {
    int32_t pid, ppid, pgrp, session;
    int32_t num_threads, priority, nice, processor;
    uint32_t rt_priority, policy, flags;
    char state;
    char comm[64];
    double utime, stime;
    double starttime;
    uint64_t vsize;
    uint64_t rss;
    uint64_t minflt, majflt;
};
struct tau_proc_stats {
    uint32_t listed, parsed, vanished, kept_fds, fallback_reads, errors;
};
struct tau_proc_reader;
struct tau_proc_reader *tau_proc_open(const char *proc_root, uint32_t fd_budget,
                                      double ticks_per_second, uint64_t page_size);
void tau_proc_close(struct tau_proc_reader *r);
int64_t tau_proc_sweep(struct tau_proc_reader *r, struct tau_proc *out, uint32_t cap,
                       struct tau_proc_stats *stats);
int tau_parse_pid_stat(const char *buf, size_t n, struct tau_proc *out,
                       double ticks_per_second, uint64_t page_size);
int tau_proc_track(struct tau_proc_reader *r, int32_t pid);
int64_t tau_proc_sweep_known(struct tau_proc_reader *r, struct tau_proc *out, uint32_t cap,
                             struct tau_proc_stats *stats);

int64_t tau_bench_pread_floor(const char *proc_root, const int32_t *pids, uint32_t n,
                              uint32_t rounds);

#define TAU_CG_CPU_STAT ...
#define TAU_CG_MEMORY_CURRENT ...
#define TAU_CG_MEMORY_MAX ...
#define TAU_CG_MEMORY_HIGH ...
#define TAU_CG_MEMORY_STAT ...
#define TAU_CG_MEMORY_EVENTS ...
#define TAU_CG_PIDS_CURRENT ...
#define TAU_CG_PIDS_MAX ...
#define TAU_CG_IO_STAT ...
#define TAU_CG_CPU_PRESSURE ...
#define TAU_CG_MEMORY_PRESSURE ...
#define TAU_CG_IO_PRESSURE ...
#define TAU_CG_EVENTS ...
#define TAU_CG_NFILES ...
#define TAU_UNLIMITED ...
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
int tau_cg_set_add(struct tau_cg_set *s, const char *dir);
int tau_cg_sweep(struct tau_cg_set *s, struct tau_cgroup *out, uint32_t n);
int tau_parse_cg_file(uint32_t file, const char *buf, size_t n, struct tau_cgroup *out);

#define TAU_EV_FORK ...
#define TAU_EV_EXEC ...
#define TAU_EV_EXIT ...
struct tau_proc_event {
    uint32_t what;
    int32_t pid, tgid;
    int32_t parent_pid, parent_tgid;
    uint32_t exit_code;
    uint32_t exit_signal;
    uint64_t timestamp_ns;
};
int tau_events_open(void);
int tau_events_read(int fd, struct tau_proc_event *out, uint32_t cap);
void tau_events_close(int fd);

#define TAU_IOPRIO_WHO_PROCESS ...
#define TAU_IOPRIO_CLASS_SHIFT ...
#define CLONE_NEWNS ...
#define CLONE_NEWNET ...
#define CLONE_NEWPID ...
#define CLONE_NEWIPC ...
#define CLONE_NEWUTS ...
#define MS_REC ...
#define MS_PRIVATE ...
#define MS_NOSUID ...
#define MS_NODEV ...
#define MS_NOEXEC ...
int tau_unshare(int flags);
int tau_setns(int fd, int nstype);
int tau_mount(const char *source, const char *target, const char *fstype,
              unsigned long flags, const char *data);
int tau_ioprio_set(int which, int who, int ioprio);
"""

ffi = FFI()
ffi.cdef(CDEF)
ffi.set_source(
    "taucg._sampler",
    '#define _GNU_SOURCE\n#include <sched.h>\n#include <sys/mount.h>\n#include "sampler.h"',
    sources=[str(Path("csrc") / f)
             for f in ("sampler.c", "proc.c", "cgroup.c", "events.c", "sys.c")],
    include_dirs=[str(HERE)],
    depends=[str(HERE / h) for h in ("sampler.h", "cursor.h", "kbuf.h")],
    extra_compile_args=[
        "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration",
    ],
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
