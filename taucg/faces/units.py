"""The systemd units taucg ships, in the package so the wheel carries them:
the two services (their text is written here and nowhere else) and the
tier slices as `taucg apply` writes them from the built-in config.

`taucg install` writes the services with the absolute command of the
running installation; `units/` in the repository is generated from the
same text by `scripts/gen-units` (which a test keeps current) with
SHIPPED_EXEC, where `taucg install` links the command.
"""

from __future__ import annotations

import shlex

from taucg.config.loading import builtin
from taucg.model.tiers import slice_specs

APPLY_UNIT = "taucg-apply.service"
DAEMON_UNIT = "taucg.service"
SERVICE_UNITS = (APPLY_UNIT, DAEMON_UNIT)
# systemd looks a bare ExecStart= name up only in its own fixed PATH; a
# venv's script is never there, so the units always name an absolute path.
SHIPPED_EXEC = "/usr/local/bin/taucg"
_MARK = "@EXEC_START@"

# What both services do without: privilege gain, kernel and clock
# tunables, W+X memory, realtime, SUID files. Each unit adds its own.
_HARDENING = """\
NoNewPrivileges=yes
ProtectKernelModules=yes
ProtectKernelTunables=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
"""

APPLY_SERVICE = """\
# Applies the taucg tier slices at boot, before the services that use them.
[Unit]
Description=Apply the taucg resource tiers
Documentation=man:taucg(1) man:taucg.toml(5) man:systemd.resource-control(5)
After=dbus.service local-fs.target
Wants=dbus.service
Before=multi-user.target graphical.target display-manager.service
ConditionControlGroupController=v2

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=@EXEC_START@ apply
# A config error exits 2: the tiers keep their last applied state, and the
# error is in the journal ('journalctl -u taucg-apply').

# apply reads the config and /proc, writes slice files, its lock and its
# audit log, and talks to systemd over D-Bus as root: nothing else.
RuntimeDirectory=taucg
RuntimeDirectoryMode=0755
RuntimeDirectoryPreserve=yes
StateDirectory=taucg
LogsDirectory=tau
ProtectSystem=strict
ReadWritePaths=/etc/systemd/system
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
PrivateNetwork=yes
IPAddressDeny=any
RestrictAddressFamilies=AF_UNIX
# Root's uid is what systemd checks on the bus; no capability is needed.
CapabilityBoundingSet=
ProtectProc=invisible
@HARDENING@
RestrictNamespaces=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
UMask=0027

[Install]
WantedBy=multi-user.target
"""

DAEMON_SERVICE = """\
# The taucg daemon: sampling, placement, crash recovery, health, the socket
# API (/run/taucg/taucg.sock) and, when configured, Prometheus metrics.
[Unit]
Description=taucg resource controller daemon
Documentation=man:taucg(1) man:taucg.toml(5) man:systemd.resource-control(5)
After=dbus.service taucg-apply.service
Wants=dbus.service
ConditionControlGroupController=v2
# recovery.safe_mode = "isolate" starts safe_mode_target with isolate; the
# daemon that did it must survive it to lead the way back.
IgnoreOnIsolate=yes

[Service]
Type=notify
NotifyAccess=main
ExecStart=@EXEC_START@ daemon
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2
# The daemon pings every WatchdogSec/2 from its event loop: a hung loop is
# killed and restarted.
WatchdogSec=30
# The monitor is itself critical: it keeps its CPU and memory under pressure.
Slice=tau-critical.slice
# Kept-open /proc/PID/stat fds ([sampler] process_fd_budget) plus headroom.
LimitNOFILE=65536

# Paths of the built-in config; an admin config with other paths needs them
# in a drop-in's ReadWritePaths=.
RuntimeDirectory=taucg
RuntimeDirectoryMode=0755
RuntimeDirectoryPreserve=yes
StateDirectory=taucg tau
LogsDirectory=tau
ProtectSystem=strict
# Unit files and drop-ins written by apply and recovery's take_over.
ReadWritePaths=/etc/systemd/system /run/systemd/system
# ProtectControlGroups= makes /sys/fs/cgroup read-only; the governor writes
# memory.reclaim of the tiers (every other cgroup change goes through systemd).
ReadWritePaths=-/sys/fs/cgroup/tau.slice
PrivateMounts=yes
# hidepid=invisible: the daemon still sees every process, since its
# CAP_SYS_PTRACE passes the kernel's check.
ProtectProc=invisible
ProtectHome=read-only
# Install taucg outside /tmp: PrivateTmp hides it from the daemon.
PrivateTmp=yes
# Sensors are read from /sys; no device node is needed.
PrivateDevices=yes
@HARDENING@
# The daemon creates no namespace: `taucg run --isolate` does, in the
# caller's process, not here.
RestrictNamespaces=yes
SystemCallArchitectures=native
# @system-service holds what placement needs (@resources: setpriority,
# ioprio_set, sched_setaffinity; @process: pidfd_send_signal).
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
UMask=0027
# The metrics endpoint listens on loopback by default; a daemon.metrics_address
# on another interface needs a drop-in with IPAddressAllow= for the scrapers.
RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6
IPAddressDeny=any
IPAddressAllow=localhost
# The monitor is the last thing the OOM killer should pick.
OOMScoreAdjust=-900
# SYS_NICE: nice, IO class and CPU affinity of placed processes.
# SYS_RESOURCE, DAC_OVERRIDE: oom_score_adj of other users' processes.
# SYS_PTRACE: /proc/PID/exe of other users' processes, for [[rules]] exe.
# KILL: SIGCHLD to parents that leave zombies. NET_ADMIN: the proc connector.
# CHOWN: the socket's group. (No SYSLOG: with ProtectKernelLogs= the OOM
# killer's victims are read from the journal, which holds the kernel's log.)
CapabilityBoundingSet=CAP_SYS_NICE CAP_SYS_RESOURCE CAP_DAC_OVERRIDE CAP_SYS_PTRACE
CapabilityBoundingSet=CAP_KILL CAP_NET_ADMIN CAP_CHOWN

[Install]
WantedBy=multi-user.target
"""


APPLY_SERVICE = APPLY_SERVICE.replace("@HARDENING@\n", _HARDENING)
DAEMON_SERVICE = DAEMON_SERVICE.replace("@HARDENING@\n", _HARDENING)

def service_units(exec_start: str) -> dict[str, str]:
    """Unit name -> text, with ``exec_start`` (an absolute command, already
    quoted for systemd) before the subcommand."""
    if not exec_start.lstrip("'\"").startswith("/"):
        raise ValueError(f"ExecStart= needs an absolute path, not {exec_start!r}")
    return {APPLY_UNIT: APPLY_SERVICE.replace(_MARK, exec_start),
            DAEMON_UNIT: DAEMON_SERVICE.replace(_MARK, exec_start)}


def exec_command(*argv: str) -> str:
    """argv as one ExecStart= command line (systemd's quoting is the shell's
    for plain words and double quotes)."""
    return " ".join(shlex.quote(a) for a in argv)


def repo_units() -> dict[str, str]:
    """What units/ in the repository holds: the built-in tier slices and the
    services with SHIPPED_EXEC. Sizes in the built-in tiers are bytes or
    percentages, so the output does not depend on this machine."""
    files = {spec.unit: spec.unit_file() for spec in slice_specs(builtin(), total_memory=0)}
    files.update(service_units(SHIPPED_EXEC))
    return files
