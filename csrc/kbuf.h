/*
 * Growable read buffers and kept-open-fd reads shared by the readers.
 */
#ifndef TAUCG_KBUF_H
#define TAUCG_KBUF_H

#include <errno.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

struct kbuf {
    char *data;
    size_t cap;
};

static inline int kbuf_init(struct kbuf *b, size_t cap)
{
    b->data = malloc(cap);
    b->cap = b->data ? cap : 0;
    return b->data ? 0 : -ENOMEM;
}

/* One pread at offset 0. A read that fills the buffer may be truncated, so
 * the buffer doubles and the read repeats; that happens only until the
 * buffer fits the file, never in steady state. Returns bytes or -errno. */
static inline ssize_t kbuf_pread(int fd, struct kbuf *b)
{
    for (;;) {
        ssize_t n = pread(fd, b->data, b->cap, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if ((size_t)n < b->cap)
            return n;
        char *bigger = realloc(b->data, b->cap * 2);
        if (!bigger)
            return -ENOMEM;
        b->data = bigger;
        b->cap *= 2;
    }
}

/* Errors that mean "this source does not exist here", never a failure:
 * the file is gone (ENOENT), its process is gone (ESRCH), its cgroup was
 * removed (ENODEV), or the kernel has the file but the feature is off
 * (EOPNOTSUPP, e.g. psi=0). */
static inline int is_absent_errno(int e)
{
    return e == ENOENT || e == ESRCH || e == EOPNOTSUPP || e == ENODEV;
}

#endif
