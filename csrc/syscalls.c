/*
 * Thin wrappers for the syscalls Python 3.11 lacks: unshare(2), setns(2),
 * mount(2) and ioprio_set(2). Each returns 0 or -errno.
 */
#define _GNU_SOURCE
#include "sampler.h"

#include <errno.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

int tau_unshare(int flags)
{
    return unshare(flags) < 0 ? -errno : 0;
}

int tau_setns(int fd, int nstype)
{
    return setns(fd, nstype) < 0 ? -errno : 0;
}

int tau_mount(const char *source, const char *target, const char *fstype,
              unsigned long flags, const char *data)
{
    return mount(source, target, fstype, flags, data) < 0 ? -errno : 0;
}

int tau_ioprio_set(int which, int who, int ioprio)
{
    return syscall(SYS_ioprio_set, which, who, ioprio) < 0 ? -errno : 0;
}
