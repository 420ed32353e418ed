/*
 * taucg sampler: the C hot path.
 *
 * C hands back raw kernel numbers (clock ticks, kB as bytes, microseconds);
 * taucg/sampler.py gives them meaning. Every buffer is owned by the caller or
 * by a reader handle that is allocated once, so a steady-state sample does
 * not allocate.
 *
 * Everything declared here is mirrored in csrc/build_sampler.py's cdef.
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

/* Bits of tau_system.present: which sources were readable this sample. */
#define TAU_SYS_STAT        0x01
#define TAU_SYS_MEMINFO     0x02
#define TAU_SYS_LOADAVG     0x04
#define TAU_SYS_PSI_CPU     0x08
#define TAU_SYS_PSI_MEMORY  0x10
#define TAU_SYS_PSI_IO      0x20

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

/* A reader keeps one fd per system file open across samples. */
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

#endif
