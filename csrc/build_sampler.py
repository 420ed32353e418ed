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
"""

ffi = FFI()
ffi.cdef(CDEF)
ffi.set_source(
    "taucg._sampler",
    '#include "sampler.h"',
    sources=[str(Path("csrc") / "sampler.c")],
    include_dirs=[str(HERE)],
    depends=[str(HERE / "sampler.h"), str(HERE / "cursor.h")],
    extra_compile_args=[
        "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration",
    ],
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
