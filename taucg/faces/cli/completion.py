"""Shell completion from live state: the `shell_complete=` callbacks of the
options and arguments whose values exist on the machine (tiers, units,
metrics, PIDs, config files).

Completion runs on every Tab press, so each callback is quick and silent:
whatever fails (a broken config, no system bus, a systemd that does not
answer) yields fewer candidates, never an error or a wait longer than
UNITS_DEADLINE. Only click is imported here; each callback imports what
it reads when it runs, so the command modules that name these callbacks
pay nothing for them.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

import click
from click.shell_completion import CompletionItem

if TYPE_CHECKING:
    from taucg.actors.systemd_dbus import LoadedUnit
    from taucg.config.schema import Config

# The whole D-Bus exchange (connect, hello, list) of unit completion; an
# answer later than this is dropped, and the config's units still complete.
# With Python's start-up, a Tab press stays under a second. A slow machine
# (an emulated VM) may raise it through DEADLINE_ENV.
UNITS_DEADLINE = 0.5
DEADLINE_ENV = "TAUCG_COMPLETION_TIMEOUT"
CONFIG_DIR = "/etc/taucg"


def _config(ctx: click.Context) -> Config | None:
    """The config the command line names (--config given so far, on this
    command or a parent group), else the one taucg would load; None when
    it does not load."""
    path = None
    at: click.Context | None = ctx
    while at is not None and path is None:
        path = at.params.get("config_path")
        at = at.parent
    try:
        from taucg.config.loading import load

        return load(path)
    except Exception:  # completion must stay silent: fall back to built-in names
        return None


def complete_tier(ctx: click.Context, param: click.Parameter,
                  incomplete: str) -> list[CompletionItem]:
    """The five tiers, each with its slice and the limits the config sets."""
    from dataclasses import fields

    from taucg.config.schema import TIER_NAMES, TierPolicy
    from taucg.model.tiers import slice_name

    cfg = _config(ctx)
    items = []
    for tier in TIER_NAMES:
        if not tier.startswith(incomplete):
            continue
        policy = cfg.tiers.get(tier) if cfg is not None else None
        limits = ""
        if isinstance(policy, TierPolicy):
            limits = " ".join(f"{f.name}={getattr(policy, f.name)}" for f in fields(policy)
                              if f.name != "units" and getattr(policy, f.name) is not None)
        items.append(CompletionItem(tier, help=f"{slice_name(tier)} {limits}".rstrip()))
    return items


def _deadline() -> float:
    try:
        seconds = float(os.environ.get(DEADLINE_ENV, UNITS_DEADLINE))
    except ValueError:  # a typo in the variable must not break completion
        return UNITS_DEADLINE
    return seconds if 0 < seconds < 60 else UNITS_DEADLINE


def _live_units(patterns: list[str]) -> list[LoadedUnit]:
    """Loaded units from systemd, or [] when the bus is down or slow."""
    import asyncio
    import logging

    from taucg.actors.systemd_dbus import Systemd

    deadline = _deadline()
    client = Systemd(timeout=deadline)

    async def ask() -> list[LoadedUnit]:
        await client.connect()
        return await client.list_units(patterns)

    async def bounded() -> list[LoadedUnit]:
        try:
            return await asyncio.wait_for(ask(), deadline)
        finally:
            # Outside the deadline's task, so that a cancelled call does not
            # wait for its own close; closing a dead socket is immediate.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.close(), 0.2)

    # A library's log record would reach the terminal through logging's
    # last-resort handler, in the middle of the command line being typed.
    logging.disable(logging.CRITICAL)
    try:
        return asyncio.run(bounded())
    except Exception:  # no bus, no systemd, a timeout: nothing to offer
        return []
    finally:
        logging.disable(logging.NOTSET)


def complete_unit(ctx: click.Context, param: click.Parameter,
                  incomplete: str) -> list[CompletionItem]:
    """Services: the config's critical units first, then those systemd has
    loaded (over D-Bus when it answers in time), with their state."""
    items: dict[str, str] = {}
    cfg = _config(ctx)
    if cfg is not None:
        for name in cfg.crash_recovery.critical_units:
            items[name] = "critical unit (crash recovery)"
    for unit in _live_units(["*.service"]):
        items.setdefault(unit.name, f"{unit.active_state}: {unit.description}")
    return [CompletionItem(name, help=text) for name, text in items.items()
            if name.startswith(incomplete)]


def complete_metric(ctx: click.Context, param: click.Parameter,
                    incomplete: str) -> list[CompletionItem]:
    """The metric names the monitor records, with what each one measures."""
    from taucg.config.schema import TIER_NAMES
    from taucg.model.monitor import metric_names

    names = metric_names(TIER_NAMES)
    cfg = _config(ctx)
    for m in cfg.metrics.custom if cfg is not None else ():
        names[f"custom.{m.name}"] = m.help or "custom metric ([[metrics.custom]])"
    return [CompletionItem(name, help=meaning)
            for name, meaning in names.items() if name.startswith(incomplete)]


def complete_pid(ctx: click.Context, param: click.Parameter,
                 incomplete: str) -> list[CompletionItem]:
    """Running PIDs, each with its command name."""
    from taucg.readers.procfs import process_names

    try:
        return [CompletionItem(str(pid), help=comm) for pid, comm in process_names()
                if str(pid).startswith(incomplete)]
    except OSError:  # /proc unreadable (a locked-down container): nothing to offer
        return []


def complete_config_file(ctx: click.Context, param: click.Parameter,
                         incomplete: str) -> list[CompletionItem]:
    """$TAUCG_CONFIG and the TOML files in /etc/taucg, then the shell's own
    file completion (bash uses it when none of those match)."""
    known = []
    env = os.environ.get("TAUCG_CONFIG")
    if env:
        known.append(env)
    with contextlib.suppress(OSError):
        known += sorted(os.path.join(CONFIG_DIR, name) for name in os.listdir(CONFIG_DIR)
                        if name.endswith(".toml"))
    items = [CompletionItem(path, help="config file")
             for path in dict.fromkeys(known) if path.startswith(incomplete)]
    # First: bash's script empties its list at a "file" item, then adds the rest.
    return [CompletionItem(incomplete, type="file"), *items]
