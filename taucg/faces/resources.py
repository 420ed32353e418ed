"""A resource report: what `taucg resources` shows and the API will serve.

It composes the readers (two system samples, filesystem usage, links,
temperatures) with the model's rates and thresholds into rows and a JSON
object. Sections are independent, so a caller asks only for what it shows.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from taucg.config.schema import ResourceMonitoring
from taucg.faces.render import Bytes, Cell, Number, Percent, utc
from taucg.model.monitor import disk_rates, net_rates, system_rates
from taucg.readers.sampler import Sampler
from taucg.readers.samples import SystemSample

SECTIONS = ("cpu", "memory", "disk", "network", "temperature", "pressure")

# Block devices that are never interesting on their own when idle.
_VIRTUAL_DISKS = ("loop", "ram", "zram", "dm-", "sr")


@dataclass(slots=True)
class Report:
    rows: list[list[Cell]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    def row(self, area: str, item: str, value: Cell, note: str = "") -> None:
        self.rows.append([area, item, value, note])


def _pct(v: float | None) -> Cell:
    return "n/a" if v is None else Percent(v)


def _over(value: float | None, threshold: float) -> str:
    return f"above {threshold:g}%" if value is not None and value >= threshold else ""


def build(prev: SystemSample, cur: SystemSample, sections: Iterable[str],
          limits: ResourceMonitoring) -> Report:
    from taucg.readers import sysinfo

    want = set(sections)
    rep = Report()
    elapsed = cur.monotonic - prev.monotonic
    if "cpu" in want:
        rates = system_rates(prev, cur)
        rep.data["cpu"] = {
            "usage_percent": rates.cpu_percent,
            "per_cpu_percent": {str(k): v for k, v in rates.per_cpu_percent.items()},
            "load": None if cur.load is None else
            {"avg_1m": cur.load.load1, "avg_5m": cur.load.load5, "avg_15m": cur.load.load15,
             "runnable_tasks": cur.load.runnable, "threads": cur.load.threads},
            "context_switches_per_second": rates.context_switches_per_second,
            "forks_per_second": rates.forks_per_second,
            "threshold_percent": limits.cpu_threshold_percent,
        }
        rep.row("cpu", "total", _pct(rates.cpu_percent),
                _over(rates.cpu_percent, limits.cpu_threshold_percent))
        for cpu, pct in sorted(rates.per_cpu_percent.items()):
            rep.row("cpu", f"cpu{cpu}", _pct(pct))
        if cur.load is not None:
            rep.row("cpu", "load 1/5/15m",
                    (Number(cur.load.load1), " ", Number(cur.load.load5), " ",
                     Number(cur.load.load15)))
        if rates.context_switches_per_second is not None:
            rep.row("cpu", "context switches/s", Number(rates.context_switches_per_second, 0))
    if "memory" in want:
        m = cur.memory
        if m is None:
            rep.data["memory"] = None
            rep.row("memory", "all", "not available (/proc/meminfo unreadable)")
        else:
            mem_pct: float | None = 100.0 * m.used / m.total if m.total else None
            rep.data["memory"] = {
                "total_bytes": m.total, "used_bytes": m.used, "available_bytes": m.available,
                "usage_percent": mem_pct, "swap_total_bytes": m.swap_total,
                "swap_used_bytes": m.swap_total - m.swap_free,
                "threshold_percent": limits.memory_threshold_percent,
            }
            rep.row("memory", "used/total",
                    (Bytes(m.used), " / ", Bytes(m.total), " (", _pct(mem_pct), ")"),
                    _over(mem_pct, limits.memory_threshold_percent))
            rep.row("memory", "available", "n/a (kernel lacks MemAvailable)"
                    if m.available is None else Bytes(m.available))
            rep.row("memory", "swap used/total",
                    (Bytes(m.swap_total - m.swap_free), " / ", Bytes(m.swap_total)))
    if "disk" in want:
        fs_rows = []
        for fs in sysinfo.filesystems():
            fs_rows.append({"mountpoint": fs.mountpoint, "device": fs.device,
                            "fstype": fs.fstype, "total_bytes": fs.total,
                            "used_bytes": fs.used, "available_bytes": fs.available,
                            "usage_percent": fs.percent})
            rep.row("disk", fs.mountpoint,
                    (Bytes(fs.used), " / ", Bytes(fs.total), " (", Percent(fs.percent), ")"),
                    _over(fs.percent, limits.disk_threshold_percent))
        io_rows = []
        for d in disk_rates(prev.disks, cur.disks, elapsed):
            idle = d.read_bytes_per_second == 0 and d.write_bytes_per_second == 0
            if idle and d.name.startswith(_VIRTUAL_DISKS):
                continue
            io_rows.append({"device": d.name, "read_bytes_per_second": d.read_bytes_per_second,
                            "write_bytes_per_second": d.write_bytes_per_second,
                            "busy_percent": d.busy_percent})
            rep.row("disk io", d.name,
                    ("read ", Bytes(d.read_bytes_per_second, "/s"),
                     " write ", Bytes(d.write_bytes_per_second, "/s"),
                     " busy ", Percent(d.busy_percent)))
        rep.data["disk"] = {"filesystems": fs_rows, "io": io_rows,
                            "threshold_percent": limits.disk_threshold_percent}
    if "network" in want:
        rates_by_name = {r.name: r for r in net_rates(prev.net, cur.net, elapsed)}
        nets = []
        for link in sysinfo.links():
            r = rates_by_name.get(link.name)
            nets.append({"name": link.name, "state": link.state, "mtu_bytes": link.mtu,
                         "addresses": list(link.addresses),
                         "rx_bytes_per_second": r.rx_bytes_per_second if r else None,
                         "tx_bytes_per_second": r.tx_bytes_per_second if r else None})
            traffic: Cell = (("rx ", Bytes(r.rx_bytes_per_second, "/s"),
                              " tx ", Bytes(r.tx_bytes_per_second, "/s")) if r
                             else "no counters")
            rep.row("network", link.name, (link.state, " ", traffic),
                    " ".join(link.addresses))
        rep.data["network"] = nets
    if "temperature" in want:
        temps = sysinfo.temperatures()
        rep.data["temperature"] = [{"source": t.source, "label": t.label, "celsius": t.celsius}
                                   for t in temps]
        if not temps:
            rep.row("temperature", "sensors", "not available on this machine",
                    "no thermal zones or hwmon sensors")
        for t in temps:
            rep.row("temperature", t.label, (Number(t.celsius, 1), " °C"), t.source)
    if "pressure" in want:
        psi: dict[str, Any] = {}
        for name, p in (("cpu", cur.pressure_cpu), ("memory", cur.pressure_memory),
                        ("io", cur.pressure_io)):
            if p is None:
                psi[name] = None
                rep.row("pressure", name, "not available", "kernel without PSI")
                continue
            psi[name] = {"some_avg10_percent": p.some.avg10,
                         "some_avg60_percent": p.some.avg60,
                         "some_avg300_percent": p.some.avg300,
                         "full_avg10_percent": None if p.full is None else p.full.avg10}
            full: Cell = "" if p.full is None else (" full ", Number(p.full.avg10), "%")
            rep.row("pressure", name,
                    ("some ", Number(p.some.avg10), "% / ", Number(p.some.avg60), "% / ",
                     Number(p.some.avg300), "%", full), "avg10/60/300")
        rep.data["pressure"] = psi
    rep.data["sampled_at"] = utc(time.time())
    return rep


def sample_pair(sampler: Sampler, interval: float) -> tuple[SystemSample, SystemSample]:
    first = sampler.system()
    time.sleep(interval)
    return first, sampler.system()
