"""Carrying out the governor's decisions, and remembering them.

Every setting goes through SetUnitProperties(runtime=true), so systemd's
view stays the truth and a reboot forgets it; a key given back is sent as
its configured value (or systemd's default where the config has none).
``memory.reclaim`` has no systemd property and is written directly, on a
thread, because the write blocks while the kernel reclaims. A missing
file or controller is skipped and said once.

The governed state is persisted (``<state_directory>/governor.json``)
before each change takes effect, so a daemon restart or crash never leaves
a tier throttled or frozen without a governor that knows it: on start,
``restore`` sends every recorded key its configured value and thaws what
was frozen. Restoring, not resuming, because the pressure that justified
the old settings is a reading from before the crash; if it persists, the
control loop tightens again within react_ticks ticks.
"""

from __future__ import annotations

import asyncio
import errno
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from taucg.actors.files import write_atomic
from taucg.actors.governor_state import load_state, state_path
from taucg.actors.records import audit
from taucg.actors.systemd_dbus import Systemd, SystemdError
from taucg.config.schema import Config
from taucg.model.governor import Action, Decision
from taucg.model.properties import BY_KEY
from taucg.model.tiers import slice_name
from taucg.readers import cgroupfs

WHO = "taucg governor (automatic)"


def _text(value: Any) -> str:
    return f"{value:g}%" if isinstance(value, float) else str(value)


class GovernorActor:
    def __init__(self, cfg: Config, client: Systemd, log: Callable[[str], None],
                 cgroup_root: Path = cgroupfs.ROOT) -> None:
        self.cfg = cfg
        self.client = client
        self.log = log
        self.cgroup_root = cgroup_root
        self.applied: dict[str, dict[str, Any]] = {}
        self.frozen: set[str] = set()
        self.actions_total: dict[str, int] = {}
        self._said: set[str] = set()

    def say_once(self, key: str, message: str) -> None:
        if key not in self._said:
            self._said.add(key)
            self.log(message)

    def configured(self, tier: str, key: str) -> tuple[str, Any]:
        """The D-Bus name and value that give a key back to its config."""
        return BY_KEY[key].to_dbus(getattr(self.cfg.tiers[tier], key))

    # --------------------------------------------------------- restore ---

    async def restore(self) -> list[str]:
        """Gives back everything a previous run recorded; returns what it did."""
        state = load_state(self.cfg)
        done: list[str] = []
        kept: dict[str, dict[str, Any]] = {}
        for tier, keys in dict(state.get("tiers") or {}).items():
            if tier not in self.cfg.tiers or not isinstance(keys, dict):
                continue
            props = dict(self.configured(tier, k) for k in keys if k in BY_KEY)
            if not props:
                continue
            if await self._set(tier, props):
                done.append(f"{slice_name(tier)}: {', '.join(sorted(keys))} back to the config")
                audit(self.cfg.logging, "governor restore", slice_name(tier),
                      before={k: str(v) for k, v in keys.items()},
                      after=dict.fromkeys(keys, "configured"), who=WHO,
                      reason="giving back what the governor held")
            else:
                kept[tier] = keys  # still recorded: the next start tries again
        still_frozen: set[str] = set()
        for tier in list(state.get("frozen") or []):
            if tier not in self.cfg.tiers:
                continue
            if await self._freeze(tier, thaw=True):
                done.append(f"{slice_name(tier)} thawed")
                audit(self.cfg.logging, "governor restore", slice_name(tier),
                      before={"freeze": "frozen"}, after={"freeze": "running"}, who=WHO,
                      reason="giving back a freeze the governor held")
            else:
                still_frozen.add(tier)
        self.applied, self.frozen = kept, still_frozen
        self._persist()
        return done

    # ----------------------------------------------------------- apply ---

    async def apply(self, decision: Decision) -> None:
        for tier, wanted in decision.settings.items():
            before = self.applied.get(tier, {})
            changed = {k for k in set(wanted) | set(before) if wanted.get(k) != before.get(k)}
            if not changed:
                continue
            props: dict[str, Any] = {}
            for key in sorted(changed):
                if key in wanted:
                    name, value = BY_KEY[key].to_dbus(wanted[key])
                else:
                    name, value = self.configured(tier, key)
                props[name] = value
            # Recorded before it takes effect: a crash in between leaves a record
            # of what may be set, never a setting nobody knows about.
            self.applied[tier] = dict(wanted)
            self._persist()
            if not await self._set(tier, props):
                self.applied[tier] = before
                self._persist()
        for tier, amount in decision.reclaim.items():
            if amount > 0:
                await self._reclaim(tier, amount)
        for tier in sorted(decision.frozen - self.frozen):
            self.frozen.add(tier)
            self._persist()
            if not await self._freeze(tier):
                self.frozen.discard(tier)
                self._persist()
        for tier in sorted(self.frozen - decision.frozen):
            if await self._freeze(tier, thaw=True):
                self.frozen.discard(tier)
                self._persist()
        for action in decision.actions:
            self._audit(action)

    def _audit(self, a: Action) -> None:
        self.actions_total[a.kind] = self.actions_total.get(a.kind, 0) + 1
        audit(self.cfg.logging, f"governor {a.kind}", slice_name(a.tier),
              before={a.key: a.before}, after={a.key: a.after}, who=WHO, reason=a.reason)

    def _persist(self) -> None:
        state = {"tiers": {t: {k: _text(v) for k, v in vals.items()}
                           for t, vals in self.applied.items() if vals},
                 "frozen": sorted(self.frozen)}
        try:
            write_atomic(state_path(self.cfg), json.dumps(state, indent=1) + "\n", mode=0o640)
        except OSError as exc:
            self.say_once("persist", f"cannot record the governed state in "
                                     f"{state_path(self.cfg)}: {exc.strerror}; a restart "
                                     "would not know what to give back")

    async def _set(self, tier: str, props: Mapping[str, Any]) -> bool:
        unit = slice_name(tier)
        try:
            await self.client.set_properties(unit, props, runtime=True)
        except SystemdError as exc:
            self.say_once(f"set {unit}", f"cannot govern {unit}: {exc}")
            return False
        return True

    async def _freeze(self, tier: str, *, thaw: bool = False) -> bool:
        """FreezeUnit (ThawUnit with thaw); False, said once, when systemd refuses."""
        verb = "thaw" if thaw else "freeze"
        try:
            await (self.client.thaw if thaw else self.client.freeze)(slice_name(tier))
        except SystemdError as exc:
            self.say_once(f"{verb} {tier}", f"cannot {verb} {slice_name(tier)}: {exc}")
            return False
        return True

    async def _reclaim(self, tier: str, amount: int) -> None:
        path = cgroupfs.unit_cgroup(slice_name(tier), self.cgroup_root) / "memory.reclaim"
        try:
            await asyncio.to_thread(path.write_text, f"{amount}\n")
            audit(self.cfg.logging, "governor reclaim", slice_name(tier), after=f"{amount} bytes",
                  who=WHO, reason="memory pressure on the protected tiers")
        except FileNotFoundError:
            self.say_once("reclaim", f"{path} does not exist (memory.reclaim needs Linux "
                                     "5.19 and the memory controller): memory cleanup "
                                     "relies on MemoryHigh alone")
        except OSError as exc:
            # EAGAIN: the kernel reclaimed less than asked, which is an answer too.
            if exc.errno == errno.EAGAIN:
                audit(self.cfg.logging, "governor reclaim", slice_name(tier),
                      after=f"less than {amount} bytes", result="partial", who=WHO,
                      reason="memory pressure on the protected tiers")
            else:
                self.say_once(f"reclaim {tier}", f"writing {path}: {exc.strerror}")
