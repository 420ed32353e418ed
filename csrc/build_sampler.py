"""cffi builder (API mode) for taucg.readers._sampler.

The cdef is csrc/sampler.h itself, read at build time: include guards and
includes are dropped, and every #define whose value is not a plain number
becomes "..." so the compiler fills it in. The header is the one place
the C surface is declared. SYSTEM_CONSTANTS adds the few libc constants
the Python side needs (namespaces, mount flags).
"""

import re
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent
HEADER = HERE / "sampler.h"

SYSTEM_CONSTANTS = """
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
"""

_DEFINE = re.compile(r"#define\s+(\w+)(?:\s+(\S+))?")
_PLAIN_NUMBER = re.compile(r"\d+|0x[0-9a-fA-F]+")


def cdef_from_header(text: str) -> str:
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("#ifndef", "#endif", "#include")):
            continue
        m = _DEFINE.match(stripped)
        if m:
            name, value = m.groups()
            if value is None:
                continue  # the include guard
            out.append(f"#define {name} {value if _PLAIN_NUMBER.fullmatch(value) else '...'}")
            continue
        out.append(line)
    return "\n".join(out)


CDEF = cdef_from_header(HEADER.read_text()) + SYSTEM_CONSTANTS

# One C file per job; the headers are listed so a change to one rebuilds.
SOURCES = ("system.c", "proc.c", "cgroup.c", "events.c", "syscalls.c")
HEADERS = ("sampler.h", "clock.h", "cursor.h", "kbuf.h")

ffi = FFI()
ffi.cdef(CDEF)
ffi.set_source(
    "taucg.readers._sampler",
    '#define _GNU_SOURCE\n#include <sched.h>\n#include <sys/mount.h>\n#include "sampler.h"',
    sources=[str(Path("csrc") / f) for f in SOURCES],
    include_dirs=[str(HERE)],
    depends=[str(HERE / h) for h in HEADERS],
    extra_compile_args=[
        "-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration",
    ],
)

if __name__ == "__main__":
    ffi.compile(verbose=True)
