"""The notifiers: journald, command, webhook (with its queue on disk) and
desktop. Each delivers one model.notify.Notification; the fan-out that
filters and rate-limits is faces/notify_worker.py."""
