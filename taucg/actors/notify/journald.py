"""The journald notifier: a journal entry with the notification's fields,
at the priority its severity maps to (crit, warning, info)."""

from __future__ import annotations

from taucg.model.notify import Notification

PRIORITY = {"critical": 2, "warning": 4, "info": 6}  # syslog(3): LOG_CRIT, ...


def send(n: Notification) -> str:
    from taucg.actors.libsystemd import module

    journal = module("journal", "notifying through journald")
    journal.send(f"{n.summary}: {n.body}", PRIORITY=PRIORITY[n.severity],
                 SYSLOG_IDENTIFIER="taucg", TAUCG_EVENT=n.event, TAUCG_SEVERITY=n.severity,
                 TAUCG_STATE=n.state, TAUCG_KEY=n.key, TAUCG_NOTIFICATION_ID=n.id,
                 **{f"TAUCG_{k.upper()}": v for k, v in n.fields.items()})
    return "journal"
