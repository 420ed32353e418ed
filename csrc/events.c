/*
 * Process events from the netlink proc connector: fork, exec and exit as
 * they happen, so a daemon follows processes without rescanning /proc.
 */
#define _GNU_SOURCE
#include "sampler.h"

#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

_Static_assert(TAU_EV_FORK == PROC_EVENT_FORK, "fork event value");
_Static_assert(TAU_EV_EXEC == PROC_EVENT_EXEC, "exec event value");
_Static_assert(TAU_EV_EXIT == PROC_EVENT_EXIT, "exit event value");

static int send_mcast_op(int fd, enum proc_cn_mcast_op op)
{
    struct {
        struct nlmsghdr nl;
        struct cn_msg cn;
        enum proc_cn_mcast_op op;
    } __attribute__((packed)) msg;
    memset(&msg, 0, sizeof msg);
    msg.nl.nlmsg_len = sizeof msg;
    msg.nl.nlmsg_type = NLMSG_DONE;
    msg.nl.nlmsg_pid = 0;
    msg.cn.id.idx = CN_IDX_PROC;
    msg.cn.id.val = CN_VAL_PROC;
    msg.cn.len = sizeof(enum proc_cn_mcast_op);
    msg.op = op;
    return send(fd, &msg, sizeof msg, 0) < 0 ? -errno : 0;
}

int tau_events_open(void)
{
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);
    if (fd < 0)
        return -errno;
    struct sockaddr_nl sa;
    memset(&sa, 0, sizeof sa);
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = CN_IDX_PROC;
    sa.nl_pid = 0;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    /* A bigger receive buffer rides out bursts (e.g. a parallel build). */
    int rcvbuf = 4 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf);
    int rc = send_mcast_op(fd, PROC_CN_MCAST_LISTEN);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int tau_events_read(int fd, struct tau_proc_event *out, uint32_t cap)
{
    char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
    uint32_t count = 0;
    while (count < cap) {
        ssize_t len = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (len < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            /* ENOBUFS: the kernel dropped events. Report it even if some
             * were read, since the caller must rescan either way. */
            return -errno;
        }
        for (struct nlmsghdr *nl = (struct nlmsghdr *)buf; NLMSG_OK(nl, (size_t)len);
             nl = NLMSG_NEXT(nl, len)) {
            if (nl->nlmsg_type == NLMSG_ERROR || nl->nlmsg_type == NLMSG_NOOP)
                continue;
            struct cn_msg *cn = NLMSG_DATA(nl);
            if (cn->id.idx != CN_IDX_PROC || cn->id.val != CN_VAL_PROC)
                continue;
            if (cn->len < sizeof(struct proc_event) - sizeof(((struct proc_event *)0)->event_data))
                continue;
            struct proc_event *ev = (struct proc_event *)cn->data;
            struct tau_proc_event *o = &out[count];
            memset(o, 0, sizeof *o);
            o->what = ev->what;
            o->timestamp_ns = ev->timestamp_ns;
            switch (ev->what) {
            case PROC_EVENT_FORK:
                o->pid = ev->event_data.fork.child_pid;
                o->tgid = ev->event_data.fork.child_tgid;
                o->parent_pid = ev->event_data.fork.parent_pid;
                o->parent_tgid = ev->event_data.fork.parent_tgid;
                break;
            case PROC_EVENT_EXEC:
                o->pid = ev->event_data.exec.process_pid;
                o->tgid = ev->event_data.exec.process_tgid;
                break;
            case PROC_EVENT_EXIT:
                o->pid = ev->event_data.exit.process_pid;
                o->tgid = ev->event_data.exit.process_tgid;
                o->exit_code = ev->event_data.exit.exit_code;
                o->exit_signal = ev->event_data.exit.exit_signal;
                break;
            default:
                continue; /* uid/gid/sid/ptrace/comm/coredump: not followed */
            }
            if (++count == cap)
                break;
        }
    }
    return (int)count;
}

void tau_events_close(int fd)
{
    if (fd >= 0) {
        (void)send_mcast_op(fd, PROC_CN_MCAST_IGNORE);
        close(fd);
    }
}
