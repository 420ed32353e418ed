"""Installing taucg on a machine and taking it off again, exactly.

``install`` writes the files it is given (units, man pages, completions,
the config template when there is none), the links (enabling, the
command), and records every file, link and directory it created in a
manifest. ``uninstall`` removes what the manifest names, the tier state
``taucg apply`` and the daemon left (files marked as taucg's), and the
manifest last, so an interrupted uninstall can run again. Everything
happens under ``root`` (``--root DIR``), with paths recorded as the
machine sees them; systemd is told over D-Bus only for the real root.

Enabling makes the links ``systemctl enable`` makes for a WantedBy= unit,
by hand: the units are ours, with one WantedBy= each, so the links are
known; the same code then runs with and without --root (host tests cover
what a real install does), and the manifest names every link it made.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from taucg.actors.files import fsync_dir, write_atomic
from taucg.actors.recovery_watcher import TAKE_OVER_DIR
from taucg.actors.systemd_dbus import Systemd, SystemdError
from taucg.model.tiers import DROPIN_NAME, HEADER, PARENT
from taucg.readers import cgroupfs

MANIFEST = PurePosixPath("/var/lib/taucg/install-manifest.json")
SYSTEM_UNIT_DIR = PurePosixPath("/usr/local/lib/systemd/system")
ADMIN_UNIT_DIR = PurePosixPath("/etc/systemd/system")
RUNTIME_CONTROL_DIR = PurePosixPath("/run/systemd/system.control")
MANIFEST_VERSION = 1


class InstallError(Exception):
    """Install or uninstall cannot go ahead; the message names the path and the fix."""


def under(root: Path, path: PurePosixPath | str) -> Path:
    """``path`` as seen on the machine, inside ``root``."""
    return root / str(path).lstrip("/")


@dataclass(frozen=True, slots=True)
class FileSpec:
    path: PurePosixPath
    text: str
    mode: int = 0o644
    keep_existing: bool = False  # an admin's file (the config) is never overwritten


@dataclass(frozen=True, slots=True)
class LinkSpec:
    path: PurePosixPath
    target: str
    keep_existing: bool = False  # someone else's file there stays (the command link)


@dataclass(frozen=True, slots=True)
class Step:
    action: str  # create, update, unchanged, keep, link, remove, stop, note
    path: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.action:<9} {self.path}" + (f"  ({self.detail})" if self.detail else "")


@dataclass(slots=True)
class Manifest:
    """What an install wrote: files (path -> sha256 of what was written),
    links, directories it created, and the config it created (kept by
    uninstall unless purged)."""

    files: dict[str, str] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)
    config: str | None = None
    exec_start: str = ""
    version: str = ""

    def to_json(self) -> str:
        return json.dumps({"manifest_version": MANIFEST_VERSION, "taucg": self.version,
                           "exec_start": self.exec_start, "files": self.files,
                           "links": self.links, "dirs": self.dirs, "config": self.config},
                          indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, where: Path) -> Manifest:
        try:
            data = json.loads(text)
            return cls(files=dict(data["files"]), links=dict(data["links"]),
                       dirs=list(data["dirs"]), config=data.get("config"),
                       exec_start=str(data.get("exec_start", "")),
                       version=str(data.get("taucg", "")))
        except (ValueError, KeyError, TypeError) as exc:
            raise InstallError(f"{where} is not an install manifest ({exc}); remove it and "
                               "run 'taucg install' again, or remove taucg's files by hand"
                               ) from None


def read_manifest(root: Path) -> Manifest | None:
    path = under(root, MANIFEST)
    try:
        return Manifest.from_json(path.read_text(), path)
    except FileNotFoundError:
        return None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def wanted_by(unit_text: str) -> list[str]:
    """The WantedBy= targets of a unit's [Install] section."""
    out: list[str] = []
    section = ""
    for raw in unit_text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif section == "[Install]" and line.startswith("WantedBy="):
            out += line.removeprefix("WantedBy=").split()
    return out


def enable_links(units: dict[str, str], unit_dir: PurePosixPath) -> list[LinkSpec]:
    """The links `systemctl enable` makes for these units' WantedBy=."""
    return [LinkSpec(ADMIN_UNIT_DIR / f"{target}.wants" / name, str(unit_dir / name))
            for name, text in units.items() for target in wanted_by(text)]


# ------------------------------------------------------------- install ---


def plan_install(root: Path, files: Iterable[FileSpec], links: Iterable[LinkSpec]
                 ) -> list[Step]:
    steps = []
    for spec in files:
        path = under(root, spec.path)
        try:
            before: str | None = path.read_text()
        except FileNotFoundError:
            before = None
        if before is None:
            steps.append(Step("create", str(spec.path)))
        elif spec.keep_existing:
            steps.append(Step("keep", str(spec.path), "exists; never overwritten"))
        elif before == spec.text:
            steps.append(Step("unchanged", str(spec.path)))
        else:
            steps.append(Step("update", str(spec.path)))
    for link in links:
        path = under(root, link.path)
        if path.is_symlink() and os.readlink(path) == link.target:
            steps.append(Step("unchanged", str(link.path), f"-> {link.target}"))
        elif (path.exists() or path.is_symlink()) and link.keep_existing:
            steps.append(Step("keep", str(link.path), "exists and is not taucg's link"))
        else:
            steps.append(Step("link", str(link.path), f"-> {link.target}"))
    return steps


def _make_dirs(root: Path, directory: PurePosixPath, created: list[str]) -> None:
    """Creates ``directory`` and missing parents, recording each one made."""
    missing = []
    d = directory
    while not under(root, d).exists():
        missing.append(d)
        d = d.parent
    for d in reversed(missing):
        under(root, d).mkdir(mode=0o755)
        created.append(str(d))


def install(root: Path, files: list[FileSpec], links: list[LinkSpec], *, exec_start: str,
            version: str) -> tuple[list[Step], Manifest]:
    """Writes what plan_install lists; returns the steps taken and the
    manifest written (merged with an earlier install's, so installing
    twice and uninstalling once leaves nothing)."""
    manifest = read_manifest(root) or Manifest()
    manifest.exec_start, manifest.version = exec_start, version
    steps = plan_install(root, files, links)
    by_path = {str(f.path): f for f in files}
    links_by_path = {str(lk.path): lk for lk in links}
    for step in steps:
        if step.action in ("create", "update"):
            spec = by_path[step.path]
            _make_dirs(root, spec.path.parent, manifest.dirs)
            write_atomic(under(root, spec.path), spec.text, spec.mode)
            if spec.keep_existing:
                manifest.config = step.path
            else:
                manifest.files[step.path] = _digest(spec.text)
        elif step.action == "link":
            link = links_by_path[step.path]
            path = under(root, link.path)
            _make_dirs(root, link.path.parent, manifest.dirs)
            tmp = path.with_name(f".{path.name}.taucg-link")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(link.target)
            tmp.rename(path)
            fsync_dir(path.parent)
            manifest.links[step.path] = link.target
        elif step.action == "unchanged" and step.path in links_by_path:
            manifest.links.setdefault(step.path, links_by_path[step.path].target)
        elif step.action == "unchanged":
            manifest.files.setdefault(step.path, _digest(by_path[step.path].text))
    _make_dirs(root, MANIFEST.parent, manifest.dirs)
    write_atomic(under(root, MANIFEST), manifest.to_json(), 0o644)
    return steps, manifest


# ----------------------------------------------------------- uninstall ---


def _taucg_written(path: Path) -> bool:
    try:
        with path.open() as f:
            return f.read(len(HEADER)) == HEADER
    except OSError:
        return False


def tier_leftovers(root: Path) -> list[PurePosixPath]:
    """The tier state apply, the governor and recovery left: tier slices
    and placement drop-ins taucg wrote (marked with its header, so an
    admin's file of the same name stays), take-over drop-ins, and the
    runtime properties set on the tier slices."""
    found: list[PurePosixPath] = []
    etc = under(root, ADMIN_UNIT_DIR)
    for p in sorted([*etc.glob("tau-*.slice"), etc / PARENT]):
        if _taucg_written(p):
            found.append(ADMIN_UNIT_DIR / p.name)
    for p in sorted(etc.glob(f"*.d/{DROPIN_NAME}")):
        if _taucg_written(p):
            found.append(ADMIN_UNIT_DIR / p.parent.name / p.name)
    take_over = PurePosixPath(str(TAKE_OVER_DIR))
    for p in sorted(under(root, take_over).glob("*.d/50-taucg-take-over.conf")):
        found.append(take_over / p.parent.name / p.name)
    control = under(root, RUNTIME_CONTROL_DIR)
    for d in sorted([*control.glob("tau-*.slice.d"), control / f"{PARENT}.d"]):
        for p in sorted(d.glob("*.conf")):
            found.append(RUNTIME_CONTROL_DIR / d.name / p.name)
    return found


def plan_uninstall(root: Path, manifest: Manifest | None, purge: list[PurePosixPath]
                   ) -> list[Step]:
    steps: list[Step] = []
    if manifest is not None:
        for link in sorted(manifest.links):
            if under(root, link).is_symlink():
                steps.append(Step("remove", link, f"link -> {manifest.links[link]}"))
        for path in sorted(manifest.files):
            if under(root, path).exists():
                changed = _digest(under(root, path).read_text()) != manifest.files[path]
                steps.append(Step("remove", path, "changed since install" if changed else ""))
    for leftover in tier_leftovers(root):
        steps.append(Step("remove", str(leftover), "tier state"))
    kept = {str(p) for p in purge}
    for purged in purge:
        if under(root, purged).exists() and not under(root, purged).is_dir():
            steps.append(Step("remove", str(purged), "--purge"))
    if manifest is not None and manifest.config and manifest.config not in kept:
        steps.append(Step("keep", manifest.config, "the config; --purge removes it"))
    if under(root, MANIFEST).exists():
        steps.append(Step("remove", str(MANIFEST)))
    return steps


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with contextlib.suppress(FileNotFoundError):
        fsync_dir(path.parent)


def _prune_empty(root: Path, dirs: Iterable[str]) -> list[str]:
    """Removes the directories in ``dirs`` that are now empty, deepest first."""
    gone = []
    for d in sorted(set(dirs), key=lambda s: s.count("/"), reverse=True):
        with contextlib.suppress(OSError):
            under(root, d).rmdir()
            gone.append(d)
    return gone


def uninstall(root: Path, manifest: Manifest | None, purge: list[PurePosixPath]
              ) -> list[Step]:
    """Removes what plan_uninstall lists, the manifest last; then the
    directories install created (and drop-in directories emptied here)."""
    steps = plan_uninstall(root, manifest, purge)
    for step in steps:
        if step.action == "remove" and step.path != str(MANIFEST):
            _remove(under(root, step.path))
    emptied = [str(PurePosixPath(s.path).parent) for s in steps
               if s.action == "remove" and PurePosixPath(s.path).parent.name.endswith(".d")]
    _prune_empty(root, emptied)
    if manifest is not None:
        _remove(under(root, MANIFEST))
        _prune_empty(root, manifest.dirs)
    return steps


def purge_paths(state_directory: str, config_file: str, log_paths: Iterable[str]
                ) -> list[PurePosixPath]:
    """What --purge adds: the config, taucg's state files and its logs
    (rotated copies included)."""
    state = PurePosixPath(state_directory)
    out = [PurePosixPath(config_file)]
    out += [state / n for n in ("history.db", "samples.db", "governor.json", "recovery.json")]
    out += [state / f"{n}{s}" for n in ("history.db", "samples.db") for s in ("-wal", "-shm")]
    for log in log_paths:
        out.append(PurePosixPath(log))
        out.append(PurePosixPath(f"{log}.lock"))
    return out


def expand_rotated(root: Path, paths: list[PurePosixPath]) -> list[PurePosixPath]:
    """Adds rotated copies (audit.log.1.gz, ...) of the log paths that exist."""
    out = list(paths)
    for p in paths:
        if p.suffix == ".log":
            for rotated in sorted(under(root, p.parent).glob(f"{p.name}.*")):
                out.append(p.parent / rotated.name)
    return out


def describe(steps: list[Step]) -> list[dict[str, Any]]:
    return [{"action": s.action, "path": s.path, "detail": s.detail} for s in steps]


# ------------------------------------------------------------- systemd ---


async def start_units(client: Systemd, units: Iterable[str]) -> list[Step]:
    """After the files are in place: daemon-reload, then start (in order)."""
    await client.reload()
    steps = [Step("reload", "systemd", "daemon-reload")]
    for unit in units:
        await client.start(unit)
        steps.append(Step("start", unit))
    return steps


async def stop_units(client: Systemd, units: Iterable[str]) -> list[Step]:
    """Before the files go: stop what is running and forget failed states."""
    steps = []
    for unit in units:
        props = await client.properties(unit)
        if props.get("ActiveState") not in (None, "inactive", "failed"):
            await client.stop(unit)
            steps.append(Step("stop", unit))
        with contextlib.suppress(SystemdError):
            await client.reset_failed(unit)
    return steps


async def release_tiers(client: Systemd, slices: Iterable[str],
                        cgroup_root: Path = cgroupfs.ROOT) -> list[Step]:
    """After the tier files are gone and systemd reloaded: stops each tier
    slice that holds no process (its cgroup and settings go with it), so
    the machine has systemd's defaults again. A slice still holding
    services is left running, named: stopping it would stop them."""
    steps = []
    await client.reload()
    steps.append(Step("reload", "systemd", "daemon-reload"))
    for unit in slices:
        cg = cgroupfs.unit_cgroup(unit, cgroup_root)
        try:
            events = cgroupfs.read(cg, "cgroup.events") or ""
        except cgroupfs.CgroupGone:
            continue
        if "populated 1" in events:
            members = sorted(p.name for p in cg.iterdir() if p.is_dir())
            steps.append(Step("note", unit, "still holds " + (", ".join(members) or
                                                              "processes") +
                              "; restart them to return them to system.slice"))
            continue
        await client.stop(unit)
        steps.append(Step("stop", unit, "empty tier slice"))
    return steps
