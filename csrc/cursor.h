/*
 * A bounded cursor over a text buffer, for hand-written /proc and cgroup
 * parsers. Nothing here reads past `end`, and nothing needs a NUL, so a
 * truncated or garbled read can never run a parser off its buffer.
 */
#ifndef TAUCG_CURSOR_H
#define TAUCG_CURSOR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct cur {
    const char *p;
    const char *end;
};

static inline struct cur cur_make(const char *buf, size_t n)
{
    struct cur c = {buf, buf + n};
    return c;
}

static inline int cur_eof(const struct cur *c) { return c->p >= c->end; }

static inline void cur_skip_blanks(struct cur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

/* Moves past the next '\n' (or to the end). */
static inline void cur_next_line(struct cur *c)
{
    const char *nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
    c->p = nl ? nl + 1 : c->end;
}

/* The token up to the next blank, ':' or newline. */
static inline size_t cur_word(struct cur *c, const char **start)
{
    cur_skip_blanks(c);
    *start = c->p;
    while (c->p < c->end && *c->p != ' ' && *c->p != '\t' && *c->p != '\n' && *c->p != ':')
        c->p++;
    return (size_t)(c->p - *start);
}

static inline int word_is(const char *w, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    return n == m && memcmp(w, lit, m) == 0;
}

/* Unsigned decimal; saturates instead of wrapping. *ok is cleared when no
 * digit is found, so a garbled field is never mistaken for a zero. */
static inline uint64_t cur_u64(struct cur *c, int *ok)
{
    uint64_t v = 0;
    const char *start;
    cur_skip_blanks(c);
    start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        unsigned d = (unsigned)(*c->p - '0');
        v = (v > (UINT64_MAX - d) / 10) ? UINT64_MAX : v * 10 + d;
        c->p++;
    }
    if (c->p == start)
        *ok = 0;
    return v;
}

/* Signed decimal (for /proc/PID/stat fields such as nice and priority). */
static inline int64_t cur_i64(struct cur *c, int *ok)
{
    int neg = 0;
    uint64_t v;
    cur_skip_blanks(c);
    if (c->p < c->end && *c->p == '-') {
        neg = 1;
        c->p++;
    }
    v = cur_u64(c, ok);
    if (v > (uint64_t)INT64_MAX)
        v = (uint64_t)INT64_MAX;
    return neg ? -(int64_t)v : (int64_t)v;
}

/* Fixed-point decimal such as "12.34" (PSI averages, load averages).
 * Digits accumulate as an integer and are divided once, so "0.36" gives the
 * same double as strtod would, not 0.36000000000000004. */
static inline double cur_decimal(struct cur *c, int *ok)
{
    static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
    int any = 0;
    unsigned frac = 0;
    uint64_t mant = 0;
    cur_skip_blanks(c);
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (mant < UINT64_MAX / 10 - 10)
            mant = mant * 10 + (uint64_t)(*c->p - '0');
        c->p++;
        any = 1;
    }
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            /* Digits past the ninth are below what the kernel prints. */
            if (frac < 9 && mant < UINT64_MAX / 10 - 10) {
                mant = mant * 10 + (uint64_t)(*c->p - '0');
                frac++;
            }
            c->p++;
            any = 1;
        }
    }
    if (!any)
        *ok = 0;
    return (double)mant / pow10[frac];
}

/* Consumes the literal if it is next; returns whether it was. */
static inline int cur_expect(struct cur *c, const char *lit)
{
    size_t m = strlen(lit);
    if ((size_t)(c->end - c->p) < m || memcmp(c->p, lit, m) != 0)
        return 0;
    c->p += m;
    return 1;
}

#endif
