"""The journald notifier: a journal entry with the notification's fields,
at the priority its severity maps to (crit, warning, info)."""

from __future__ import annotations

from taucg.model.notify import Notification

PRIORITY = {"critical": 2, "warning": 4, "info": 6}  # syslog(3): LOG_CRIT, ...


def fields(n: Notification) -> dict[str, object]:
    """The entry's fields: the event's own first, so that a field named like
    one of ours (an alert's "severity") cannot collide with it."""
    out: dict[str, object] = {f"TAUCG_{k.upper()}": v for k, v in n.fields.items()}
    out.update(PRIORITY=PRIORITY[n.severity], SYSLOG_IDENTIFIER="taucg", TAUCG_EVENT=n.event,
               TAUCG_SEVERITY=n.severity, TAUCG_STATE=n.state, TAUCG_KEY=n.key,
               TAUCG_NOTIFICATION_ID=n.id)
    return out


def send(n: Notification) -> str:
    from taucg.actors.libsystemd import module

    journal = module("journal", "notifying through journald")
    journal.send(f"{n.summary}: {n.body}", **fields(n))
    return "journal"
