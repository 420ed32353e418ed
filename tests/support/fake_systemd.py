"""An in-memory systemd with the method names of taucg's D-Bus client
(taucg.actors.systemd_dbus.Systemd), for unit tests without a bus or root.

It keeps what the tests need to be honest about: units with LoadState,
ActiveState and SubState, properties per D-Bus interface, a record of every
call, values set with SetUnitProperties read back by the next plan (a
percentage stored as the bytes systemd would compute), RestartUnit scripted
to bring a unit back or see it fail again, FreezeUnit/ThawUnit, and signals
delivered to whoever iterates ``signals()``. Values are checked against
their D-Bus signatures as the real client would encode them, so a plan that
could not be sent fails here too.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from taucg.actors.systemd_dbus import (
    PROPERTIES,
    SCOPE,
    SERVICE,
    SLICE,
    UNIT,
    JobResult,
    NoSuchUnit,
    Signal,
    SignalFanout,
    SignalStream,
    SystemdError,
    to_variant,
    unit_path,
)

PAGE = 4096
UINT32_MAX = (1 << 32) - 1
# Calls that only read: everything else changes systemd's state.
READS = frozenset({"properties", "get_property", "subscribe", "signals", "close"})
_SUFFIX_INTERFACE = {".service": SERVICE, ".slice": SLICE, ".scope": SCOPE}
_ACTIVE_SUB = {"active": "running", "failed": "failed", "inactive": "dead",
               "activating": "start", "deactivating": "stop"}


class Call(NamedTuple):
    method: str
    args: tuple[Any, ...]


@dataclass(slots=True)
class FakeUnit:
    name: str
    load_state: str = "loaded"
    active_state: str = "inactive"
    sub_state: str = "dead"
    # interface -> property -> value; UNIT's three states live in the fields above.
    props: dict[str, dict[str, Any]] = field(default_factory=dict)
    # ActiveState after each RestartUnit, oldest first; empty: "active".
    restart_results: deque[str] = field(default_factory=deque)

    @property
    def interface(self) -> str:
        """The type-specific interface (Service, Slice, Scope) of this unit."""
        return next((i for s, i in _SUFFIX_INTERFACE.items() if self.name.endswith(s)), UNIT)

    def set_state(self, active: str) -> None:
        self.active_state = active
        self.sub_state = _ACTIVE_SUB.get(active, active)


class FakeBus:
    """The part of dbus_fast's MessageBus the recovery watcher uses."""

    def __init__(self) -> None:
        self.connected = True
        self._gone = asyncio.Event()

    async def wait_for_disconnect(self) -> None:
        await self._gone.wait()

    def disconnect(self) -> None:
        self.connected = False
        self._gone.set()


def scaled_bytes(total_memory: int, scale: int) -> int:
    """What systemd stores for a <Name>Scale value: physical_memory_scale(),
    whole pages of total_memory * scale / UINT32_MAX, rounded down."""
    return (total_memory // PAGE) * scale // UINT32_MAX * PAGE


def slice_cgroup(slice_unit: str) -> str:
    """The cgroup of a slice by systemd's dash nesting: tau-high.slice is
    /tau.slice/tau-high.slice."""
    stem = slice_unit.removesuffix(".slice")
    if stem == "-":
        return ""
    parts = stem.split("-")
    return "".join(f"/{'-'.join(parts[:i])}.slice" for i in range(1, len(parts) + 1))


class FakeSystemd:
    """Stands in for taucg.actors.systemd_dbus.Systemd."""

    def __init__(self, total_memory: int = 8 << 30, unit_dir: Path | None = None) -> None:
        self.total_memory = total_memory  # what <Name>Scale values resolve against
        self.unit_dir = unit_dir  # reload() loads the units whose files are here
        self.units: dict[str, FakeUnit] = {}
        self.calls: list[Call] = []
        # (method, unit) -> the exception that call raises, e.g. a JobFailed.
        self.errors: dict[tuple[str, str], Exception] = {}
        self.bus = FakeBus()
        self.subscribed = False
        self.closed = False
        self._fanout = SignalFanout()
        self._jobs = 0

    # -- test set-up and inspection ---------------------------------------

    def add_unit(self, name: str, active: str = "active", load: str = "loaded", *,
                 unit: Mapping[str, Any] | None = None,
                 specific: Mapping[str, Any] | None = None) -> FakeUnit:
        """A unit systemd knows; ``specific`` goes on its Service/Slice/Scope
        interface, ``unit`` on org.freedesktop.systemd1.Unit."""
        u = FakeUnit(name, load)
        u.set_state(active)
        u.props[UNIT] = dict(unit or {})
        u.props[u.interface] = dict(specific or {})
        self.units[name] = u
        return u

    def add_service(self, name: str, active: str = "active", *, restart: str = "no",
                    result: str = "success", exec_code: int = 1, exec_status: int = 0,
                    slice_unit: str = "system.slice", n_restarts: int = 0) -> FakeUnit:
        """A loaded service with the Service properties taucg reads."""
        return self.add_unit(name, active, specific={
            "Restart": restart, "Result": result, "ExecMainCode": exec_code,
            "ExecMainStatus": exec_status, "NRestarts": n_restarts,
            "ControlGroup": f"{slice_cgroup(slice_unit)}/{name}" if active == "active" else "",
            "Slice": slice_unit})

    def script_restarts(self, name: str, *states: str) -> None:
        """The ActiveState the unit shows after each of its next RestartUnits."""
        self.units[name].restart_results.extend(states)

    def calls_of(self, method: str) -> list[tuple[Any, ...]]:
        return [c.args for c in self.calls if c.method == method]

    def mutations(self) -> list[Call]:
        """Every call that would have changed systemd's state, in order."""
        return [c for c in self.calls if c.method not in READS]

    def emit(self, sig: Signal) -> None:
        self._fanout.put(sig)

    def emit_active_state(self, name: str, state: str, interface: str = UNIT) -> None:
        """A PropertiesChanged of ActiveState, as systemd sends for a unit object."""
        self.emit(Signal(unit_path(name), PROPERTIES, "PropertiesChanged",
                         [interface, {"ActiveState": state}, []]))

    def set_state(self, name: str, state: str, emit: bool = True) -> None:
        self.units[name].set_state(state)
        if emit:
            self.emit_active_state(name, state)

    # -- the client's methods ---------------------------------------------

    def _call(self, method: str, *args: Any) -> None:
        self.calls.append(Call(method, args))
        unit = args[0] if args and isinstance(args[0], str) else ""
        exc = self.errors.get((method, unit))
        if exc is not None:
            raise exc

    def _loaded(self, action: str, name: str) -> FakeUnit:
        """Like systemd's bus_get_unit_by_name + load-state check."""
        u = self.units.get(name)
        if u is None or u.load_state != "loaded":
            raise NoSuchUnit(action, name, "org.freedesktop.systemd1.NoSuchUnit",
                             f"Unit {name} not loaded.")
        return u

    def _all(self, name: str, interface: str) -> dict[str, Any]:
        u = self.units.get(name)
        if u is None:
            # LoadUnit of a missing unit gives a not-found stub, not an error.
            return {"LoadState": "not-found", "ActiveState": "inactive"} \
                if interface == UNIT else {}
        if interface == UNIT:
            return {**u.props.get(UNIT, {}), "LoadState": u.load_state,
                    "ActiveState": u.active_state, "SubState": u.sub_state}
        return dict(u.props.get(interface, {}))

    async def properties(self, name: str, interface: str = UNIT) -> dict[str, Any]:
        self._call("properties", name, interface)
        return self._all(name, interface)

    async def get_property(self, name: str, prop: str, interface: str = UNIT) -> Any:
        self._call("get_property", name, prop, interface)
        values = self._all(name, interface)
        if prop not in values:
            raise SystemdError(f"Get {prop}", name, "org.freedesktop.DBus.Error.UnknownProperty",
                               f"Unknown property or interface {interface}.{prop}")
        return values[prop]

    async def set_properties(self, name: str, props: Mapping[str, Any],
                             runtime: bool = False) -> None:
        self._call("set_properties", name, dict(props), runtime)
        u = self._loaded("SetUnitProperties", name)
        stored = u.props.setdefault(u.interface, {})
        for key, value in props.items():
            # Encoded as the client would: unknown names and mistyped values fail.
            wire = to_variant(key, value).value
            if key.endswith("Scale"):
                stored[key.removesuffix("Scale")] = scaled_bytes(self.total_memory, wire)
            else:
                stored[key] = wire

    async def reload(self) -> None:
        """daemon-reload: units with a file in unit_dir become loaded, and a
        service's Slice follows its drop-ins (ControlGroup does not: the
        processes stay where they are until a restart)."""
        self._call("reload")
        if self.unit_dir is None:
            return
        for path in sorted(self.unit_dir.glob("*.slice")) + sorted(
                self.unit_dir.glob("*.service")):
            u = self.units.get(path.name)
            if u is None:
                self.add_unit(path.name, "inactive")
            else:
                u.load_state = "loaded"
        for u in self.units.values():
            if u.interface != SERVICE:
                continue
            slice_unit = "system.slice"
            for dropin in sorted(self.unit_dir.glob(f"{u.name}.d/*.conf")):
                for line in dropin.read_text().splitlines():
                    if line.startswith("Slice="):
                        slice_unit = line.removeprefix("Slice=")
            u.props[SERVICE]["Slice"] = slice_unit

    def _job(self, name: str, wait: bool) -> JobResult | str:
        self._jobs += 1
        job = f"/org/freedesktop/systemd1/job/{self._jobs}"
        return JobResult(job, name, "done") if wait else job

    async def reset_failed(self, name: str) -> None:
        self._call("reset_failed", name)
        u = self._loaded("ResetFailedUnit", name)
        if u.active_state == "failed":
            u.set_state("inactive")

    async def start(self, name: str, mode: str = "replace", wait: bool = True,
                    timeout: float | None = None) -> JobResult | str:
        self._call("start", name, mode)
        u = self.units.get(name)
        if u is None and self.unit_dir is not None and (self.unit_dir / name).exists():
            u = self.add_unit(name, "inactive")  # StartUnit loads a unit from its file
        if u is None:
            raise NoSuchUnit("StartUnit", name, "org.freedesktop.systemd1.NoSuchUnit",
                             f"Unit {name} not found.")
        self.set_state(name, "active")
        return self._job(name, wait)

    async def stop(self, name: str, mode: str = "replace", wait: bool = True,
                   timeout: float | None = None) -> JobResult | str:
        self._call("stop", name, mode)
        self._loaded("StopUnit", name)
        self.set_state(name, "inactive")
        return self._job(name, wait)

    async def restart(self, name: str, mode: str = "replace", wait: bool = True,
                      timeout: float | None = None) -> JobResult | str:
        self._call("restart", name, mode)
        u = self._loaded("RestartUnit", name)
        after = u.restart_results.popleft() if u.restart_results else "active"
        if u.interface == SERVICE:
            # Restarted processes land in the slice the unit files now name.
            svc = u.props[SERVICE]
            svc["ControlGroup"] = (slice_cgroup(svc.get("Slice", "system.slice")) + "/" + name
                                   if after == "active" else "")
        self.set_state(name, after)
        return self._job(name, wait)

    async def freeze(self, name: str) -> None:
        self._call("freeze", name)
        self._loaded("FreezeUnit", name).props[UNIT]["FreezerState"] = "frozen"

    async def thaw(self, name: str) -> None:
        self._call("thaw", name)
        self._loaded("ThawUnit", name).props[UNIT]["FreezerState"] = "running"

    async def subscribe(self) -> None:
        self._call("subscribe")
        self.subscribed = True

    async def signals(self) -> SignalStream:
        await self.subscribe()
        return self._fanout.open()

    async def close(self) -> None:
        self._call("close")
        self.closed = True
