"""A D-Bus client for org.freedesktop.systemd1 on the system bus (dbus-fast).

It speaks raw method calls rather than introspected proxies: one round trip
per call and no Introspect traffic, which matters in slow environments and
at daemon start-up. Every call has a timeout, and every D-Bus error becomes
a SystemdError that names the unit and the D-Bus error.

The client is asyncio-native; the CLI runs it under asyncio.run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from taucg.model import properties
from taucg.model.health import ServiceState, ServiceStates
from taucg.model.properties import cpus_to_mask

SYSTEMD = "org.freedesktop.systemd1"
MANAGER_PATH = "/org/freedesktop/systemd1"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT = "org.freedesktop.systemd1.Unit"
SERVICE = "org.freedesktop.systemd1.Service"
SCOPE = "org.freedesktop.systemd1.Scope"
SLICE = "org.freedesktop.systemd1.Slice"
PROPERTIES = "org.freedesktop.DBus.Properties"
SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"
DEFAULT_TIMEOUT = 30.0

# D-Bus signatures of the unit properties taucg sets, from
# org.freedesktop.systemd1(5). The resource-control ones come from the
# property table, which knows everything else about them too.
PROPERTY_SIGNATURES: dict[str, str] = {
    "Description": "s",
    "Slice": "s",
    "Type": "s",
    "RemainAfterExit": "b",
    "ExecStart": "a(sasb)",
    "PIDs": "au",
    "Delegate": "b",
    "CPUQuotaPeriodUSec": "t",
    "AllowedMemoryNodes": "ay",
    "ManagedOOMMemoryPressure": "s",
    "CollectMode": "s",
    "KillMode": "s",
    "KillSignal": "i",
    "SendSIGKILL": "b",
    "Restart": "s",
    "RestartUSec": "t",
    "Environment": "as",
    "WorkingDirectory": "s",
    "User": "s",
    "Nice": "i",
    "OOMScoreAdjust": "i",
    "IOSchedulingClass": "i",
    "IOSchedulingPriority": "i",
    "CPUAffinity": "ay",
    "StandardOutput": "s",
    "StandardError": "s",
    "AddRef": "b",
    **properties.signatures(),
}


class SystemdError(Exception):
    """A D-Bus call to systemd failed; names the unit and the D-Bus error."""

    def __init__(self, action: str, unit: str | None, error_name: str, detail: str) -> None:
        self.action = action
        self.unit = unit
        self.error_name = error_name
        self.detail = detail
        target = f" {unit}" if unit else ""
        super().__init__(f"systemd {action}{target} failed: {detail} ({error_name})")


class NoSuchUnit(SystemdError):
    pass


class SystemdUnavailable(Exception):
    """The system bus or systemd cannot be reached."""


class JobFailed(SystemdError):
    """A job ended with a result other than "done"."""


def unit_path(name: str) -> str:
    """The object path systemd gives a unit, without a GetUnit round trip
    (sd_bus_path_encode: every byte outside [A-Za-z0-9], and a leading digit,
    becomes _xx)."""
    out = []
    for i, ch in enumerate(name.encode()):
        c = chr(ch)
        if c.isascii() and (c.isalpha() or (c.isdigit() and i > 0)):
            out.append(c)
        else:
            out.append(f"_{ch:02x}")
    return f"{MANAGER_PATH}/unit/{''.join(out)}"


def to_variant(name: str, value: Any) -> Variant:
    sig = PROPERTY_SIGNATURES.get(name)
    if sig is None:
        raise ValueError(f"taucg does not know the D-Bus type of unit property {name!r}")
    if sig == "ay" and not isinstance(value, bytes | bytearray):
        value = cpus_to_mask(value)
    return Variant(sig, value)


def properties_body(props: Mapping[str, Any]) -> list[list[Any]]:
    return [[k, to_variant(k, v)] for k, v in props.items()]


@dataclass(frozen=True, slots=True)
class JobResult:
    job: str
    unit: str
    result: str  # done, canceled, timeout, failed, dependency, skipped


@dataclass(frozen=True, slots=True)
class LoadedUnit:
    """One row of ListUnitsByPatterns."""

    name: str
    description: str
    active_state: str
    sub_state: str


@dataclass(frozen=True, slots=True)
class Signal:
    path: str
    interface: str
    member: str
    body: list[Any]


def _unwrap(value: Any) -> Any:
    if isinstance(value, Variant):
        return _unwrap(value.value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


class SignalStream:
    """The signals put after it was opened, in order, until it is closed.

    It is registered when opened, not when first iterated: a reader that
    opens it, then reads the current state, misses no signal in between."""

    def __init__(self, fanout: SignalFanout) -> None:
        self._queue: asyncio.Queue[Signal] = asyncio.Queue()
        self._fanout: SignalFanout | None = fanout
        fanout._queues.append(self._queue)

    def __aiter__(self) -> SignalStream:
        return self

    async def __anext__(self) -> Signal:
        if self._fanout is None:
            raise StopAsyncIteration
        return await self._queue.get()

    def close(self) -> None:
        if self._fanout is not None:
            self._fanout._queues.remove(self._queue)
            self._fanout = None


class SignalFanout:
    """Hands each signal to every open stream. Streams opened later see
    only later signals."""

    def __init__(self) -> None:
        self._queues: list[asyncio.Queue[Signal]] = []

    def __bool__(self) -> bool:
        return bool(self._queues)

    def put(self, sig: Signal) -> None:
        for q in self._queues:
            q.put_nowait(sig)

    def open(self) -> SignalStream:
        return SignalStream(self)


async def _call(bus: MessageBus, msg: Message) -> Message | None:
    """MessageBus.call, without its orphaned future on a dying bus.

    When the peer is gone, dbus-fast's call fails the reply future (EPIPE)
    and then raises EBADF from re-arming the writer on the closed socket,
    before it awaits that future: asyncio later prints "Future exception
    was never retrieved". Here the reply future is ours, and retrieved."""
    call = getattr(bus, "_call", None)
    handler = getattr(bus, "_reply_handler", None)
    if call is None or handler is None:  # another dbus-fast: its own call
        return await bus.call(msg)
    future: asyncio.Future[Message | None] = asyncio.get_running_loop().create_future()
    try:
        call(msg, functools.partial(handler, future))
    except BaseException:
        if future.done() and not future.cancelled():
            future.exception()
        raise
    return await future


def _retrieve_write_error(bus: MessageBus) -> None:
    """Marks the failed write of a bus the peer dropped as seen.

    dbus-fast sends method calls without awaiting the write's future; when
    the peer goes away mid-write (dbus restarted), that future holds the
    EBADF/EPIPE and asyncio prints "Future exception was never retrieved"
    when it is collected. The call itself already failed with
    SystemdUnavailable, so the write error has nothing left to say."""
    fut = getattr(getattr(bus, "_writer", None), "fut", None)
    if isinstance(fut, asyncio.Future) and fut.done() and not fut.cancelled():
        fut.exception()
    disconnected = getattr(bus, "_disconnect_future", None)
    if isinstance(disconnected, asyncio.Future) and disconnected.done() \
            and not disconnected.cancelled():
        disconnected.exception()


class Systemd:
    """An asyncio connection to systemd on the system bus."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.timeout = timeout
        self._bus: MessageBus | None = None
        self._job_waiters: dict[str, asyncio.Future[JobResult]] = {}
        self._finished_jobs: dict[str, JobResult] = {}
        self._fanout = SignalFanout()
        self._subscribed = False

    # -- connection ------------------------------------------------------

    async def connect(self) -> Systemd:
        bus = None
        try:
            bus = MessageBus(bus_type=BusType.SYSTEM)
            self._bus = await asyncio.wait_for(bus.connect(), self.timeout)
        except (TimeoutError, OSError) as exc:
            # A failed attempt must not keep its socket: a daemon retrying
            # every few seconds would run out of descriptors.
            if bus is not None:
                with contextlib.suppress(Exception):
                    bus.disconnect()
            raise SystemdUnavailable(
                f"cannot connect to the D-Bus system bus ({SYSTEM_BUS_SOCKET}): {exc}; "
                "taucg needs a running dbus and systemd as PID 1"
            ) from exc
        self._bus.add_message_handler(self._on_message)
        bus = self._bus
        bus._disconnect_future.add_done_callback(lambda _f: _retrieve_write_error(bus))
        await self._add_match(
            f"type='signal',sender='{SYSTEMD}',interface='{MANAGER}',member='JobRemoved'"
        )
        return self

    async def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is None:
            return
        with contextlib.suppress(Exception):  # already gone: nothing to close
            bus.disconnect()
            # Waiting for the disconnect lets dbus-fast retrieve its own write
            # futures; dropped, they print "Future exception was never retrieved".
            await asyncio.wait_for(bus.wait_for_disconnect(), 5)  # type: ignore[no-untyped-call]

    @property
    def bus(self) -> MessageBus:
        if self._bus is None or not self._bus.connected:
            raise SystemdUnavailable("not connected to the system bus (the peer went away)")
        return self._bus

    async def _add_match(self, rule: str) -> None:
        await self._call("AddMatch", None, destination="org.freedesktop.DBus",
                         path="/org/freedesktop/DBus", interface="org.freedesktop.DBus",
                         member="AddMatch", signature="s", body=[rule])

    async def _call(self, action: str, unit: str | None, *, member: str,
                    signature: str = "", body: list[Any] | None = None,
                    destination: str = SYSTEMD, path: str = MANAGER_PATH,
                    interface: str = MANAGER, timeout: float | None = None) -> list[Any]:
        msg = Message(destination=destination, path=path, interface=interface, member=member,
                      signature=signature, body=body or [])
        try:
            reply = await asyncio.wait_for(_call(self.bus, msg), timeout or self.timeout)
        except TimeoutError:
            raise SystemdError(action, unit, "taucg.Timeout",
                               f"no answer within {timeout or self.timeout:g} s") from None
        except (OSError, EOFError) as exc:
            raise SystemdUnavailable(f"lost the system bus during {action}: {exc}") from exc
        if reply is None:
            raise SystemdUnavailable(f"lost the system bus during {action}")
        if reply.message_type == MessageType.ERROR:
            detail = str(reply.body[0]) if reply.body else "no detail"
            cls = NoSuchUnit if reply.error_name == f"{SYSTEMD}.NoSuchUnit" else SystemdError
            raise cls(action, unit, reply.error_name or "unknown", detail)
        return list(reply.body)

    # -- signals -----------------------------------------------------------

    def _on_message(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL:
            return
        if msg.interface == MANAGER and msg.member == "JobRemoved":
            _id, job, unit, result = msg.body
            done = JobResult(job, unit, result)
            waiter = self._job_waiters.pop(job, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(done)
            else:
                # The signal can beat the method reply; keep it for the waiter.
                self._finished_jobs[job] = done
                if len(self._finished_jobs) > 1024:
                    self._finished_jobs.pop(next(iter(self._finished_jobs)))
        if self._fanout:
            self._fanout.put(Signal(msg.path or "", msg.interface or "", msg.member or "",
                                    _unwrap(list(msg.body))))

    async def subscribe(self) -> None:
        """Ask systemd to emit unit and job signals, and receive unit
        PropertiesChanged for every unit."""
        if self._subscribed:
            return
        await self._call("Subscribe", None, member="Subscribe")
        await self._add_match(
            f"type='signal',sender='{SYSTEMD}',interface='{PROPERTIES}',"
            f"member='PropertiesChanged',path_namespace='{MANAGER_PATH}/unit'"
        )
        await self._add_match(f"type='signal',sender='{SYSTEMD}',interface='{MANAGER}'")
        self._subscribed = True

    async def signals(self) -> SignalStream:
        """Every systemd signal from now on, until the stream is closed."""
        await self.subscribe()
        return self._fanout.open()

    # -- units -------------------------------------------------------------

    async def get_unit(self, name: str) -> str:
        """The object path of a loaded unit; NoSuchUnit when it is not loaded."""
        return str((await self._call("GetUnit", name, member="GetUnit", signature="s",
                                     body=[name]))[0])

    async def load_unit(self, name: str) -> str:
        return str((await self._call("LoadUnit", name, member="LoadUnit", signature="s",
                                     body=[name]))[0])

    async def list_units(self, patterns: Iterable[str] = (),
                         states: Iterable[str] = ()) -> list[LoadedUnit]:
        """The loaded units whose names match one of the globs (all: none
        given), in one call: no per-unit round trips."""
        body = await self._call("ListUnitsByPatterns", None, member="ListUnitsByPatterns",
                                signature="asas", body=[list(states), list(patterns)])
        # a(ssssssouso): name, description, load, active, sub, following, ...
        return [LoadedUnit(str(u[0]), str(u[1]), str(u[3]), str(u[4])) for u in body[0]]

    async def properties(self, name: str, interface: str = UNIT) -> dict[str, Any]:
        """All properties of one interface of the unit, as plain Python values."""
        path = await self.load_unit(name)
        body = await self._call("GetAll", name, member="GetAll", signature="s",
                                body=[interface], path=path, interface=PROPERTIES)
        return dict(_unwrap(body[0]))

    async def get_property(self, name: str, prop: str, interface: str = UNIT) -> Any:
        path = await self.load_unit(name)
        body = await self._call(f"Get {prop}", name, member="Get", signature="ss",
                                body=[interface, prop], path=path, interface=PROPERTIES)
        return _unwrap(body[0])

    async def set_properties(self, name: str, props: Mapping[str, Any], runtime: bool = False
                             ) -> None:
        await self._call("SetUnitProperties", name, member="SetUnitProperties",
                         signature="sba(sv)", body=[name, runtime, properties_body(props)])

    async def reload(self) -> None:
        """daemon-reload; waits until systemd has re-read its unit files."""
        await self._call("Reload", None, member="Reload", timeout=max(self.timeout, 90))

    async def reset_failed(self, name: str) -> None:
        await self._call("ResetFailedUnit", name, member="ResetFailedUnit", signature="s",
                         body=[name])

    async def freeze(self, name: str) -> None:
        """FreezeUnit: systemd writes the unit's cgroup.freeze and waits for it."""
        await self._call("FreezeUnit", name, member="FreezeUnit", signature="s", body=[name])

    async def thaw(self, name: str) -> None:
        await self._call("ThawUnit", name, member="ThawUnit", signature="s", body=[name])

    async def kill_unit(self, name: str, signal: int, whom: str = "all") -> None:
        await self._call("KillUnit", name, member="KillUnit", signature="ssi",
                         body=[name, whom, signal])

    # -- jobs --------------------------------------------------------------

    async def _job(self, action: str, name: str, member: str, signature: str,
                   body: list[Any], wait: bool, timeout: float | None) -> JobResult | str:
        job = str((await self._call(action, name, member=member, signature=signature,
                                    body=body))[0])
        if not wait:
            return job
        return await self.wait_job(job, name, action, timeout)

    async def wait_job(self, job: str, unit: str, action: str = "job",
                       timeout: float | None = None) -> JobResult:
        done = self._finished_jobs.pop(job, None)
        if done is None:
            fut: asyncio.Future[JobResult] = asyncio.get_running_loop().create_future()
            self._job_waiters[job] = fut
            try:
                done = await asyncio.wait_for(fut, timeout or self.timeout)
            except TimeoutError:
                self._job_waiters.pop(job, None)
                raise SystemdError(action, unit, "taucg.Timeout",
                                   f"job {job} did not finish within "
                                   f"{timeout or self.timeout:g} s") from None
        if done.result != "done":
            raise JobFailed(action, unit, f"job.{done.result}",
                            f"job ended with result '{done.result}'; see "
                            f"'systemctl status {unit}' and 'journalctl -u {unit}'")
        return done

    async def start(self, name: str, mode: str = "replace", wait: bool = True,
                    timeout: float | None = None) -> JobResult | str:
        return await self._job("StartUnit", name, "StartUnit", "ss", [name, mode], wait, timeout)

    async def stop(self, name: str, mode: str = "replace", wait: bool = True,
                   timeout: float | None = None) -> JobResult | str:
        return await self._job("StopUnit", name, "StopUnit", "ss", [name, mode], wait, timeout)

    async def restart(self, name: str, mode: str = "replace", wait: bool = True,
                      timeout: float | None = None) -> JobResult | str:
        return await self._job("RestartUnit", name, "RestartUnit", "ss", [name, mode], wait,
                               timeout)

    async def reload_unit(self, name: str, mode: str = "replace", wait: bool = True,
                          timeout: float | None = None) -> JobResult | str:
        return await self._job("ReloadUnit", name, "ReloadUnit", "ss", [name, mode], wait,
                               timeout)

    async def start_transient(self, name: str, props: Mapping[str, Any], mode: str = "fail",
                              wait: bool = True, timeout: float | None = None
                              ) -> JobResult | str:
        """StartTransientUnit: a service or scope created on the fly, e.g.
        ``{"Slice": "tau-low.slice", "PIDs": [pid], "MemoryMax": 1 << 30}``."""
        return await self._job("StartTransientUnit", name, "StartTransientUnit", "ssa(sv)a(sa(sv))",
                               [name, mode, properties_body(props), []], wait, timeout)


async def read_service_states(units: Iterable[str], timeout: float = 10.0) -> ServiceStates:
    """What the health checks need from systemd, on a connection of its own
    that never waits longer than ``timeout`` per call."""
    try:
        client = await Systemd(timeout=timeout).connect()
    except SystemdUnavailable as exc:
        return ServiceStates(unavailable=str(exc))
    out = []
    try:
        for unit in units:
            try:
                props = await client.properties(unit, UNIT)
                restarts = 0
                if unit.endswith(".service") and props.get("LoadState") == "loaded":
                    restarts = int(await client.get_property(unit, "NRestarts", SERVICE) or 0)
            except SystemdUnavailable as exc:
                return ServiceStates(unavailable=str(exc))
            except SystemdError as exc:
                out.append(ServiceState(unit, None, None, error=str(exc)))
                continue
            out.append(ServiceState(unit, str(props.get("LoadState")),
                                    str(props.get("ActiveState")), restarts))
    finally:
        await client.close()
    return ServiceStates(tuple(out))
