"""systemd-python's modules (journal, daemon), imported with one clear
message when they cannot be: systemd-python has no wheel, so a pip install
builds it against libsystemd, and a machine without the headers (or
without libsystemd at run time) has no module to import."""

from __future__ import annotations

import importlib
from types import ModuleType

HOW = ("install it with 'pip install systemd-python', which builds from source and needs "
       "gcc, pkg-config, libsystemd-dev and python3-dev (Debian/Ubuntu names; "
       "systemd-devel and python3-devel on RHEL/Fedora)")


class SystemdModuleMissing(ImportError):
    """systemd-python cannot be imported; the message says why and the fix."""


def module(name: str, needed_for: str) -> ModuleType:
    """``systemd.<name>`` ("journal", "daemon"), or SystemdModuleMissing."""
    try:
        return importlib.import_module(f"systemd.{name}")
    except ImportError as exc:
        raise SystemdModuleMissing(
            f"systemd-python is needed for {needed_for} but cannot be imported ({exc}); "
            f"{HOW}") from None
