"""Imports the daemon needs, without the OpenSSL it never uses.

asyncio imports ssl at start-up for TLS transports, and dbus_fast imports
hashlib (for SHA-256 cache keys); through ssl and _hashlib both map libssl
and libcrypto: about 5 MiB of the daemon's RSS, for TLS it never speaks
(its API socket and D-Bus are Unix sockets) and hashes Python's builtin
implementations compute just as well (the same digests). Importing asyncio
and hashlib while those two are masked leaves asyncio's TLS support off and
hashlib on its builtin hashes, and only that: ssl stays importable for code
that wants it (prometheus_client imports it when ``[daemon]
metrics_address`` is set).
"""

from __future__ import annotations

import importlib
import sys

MASKED = ("ssl", "_hashlib")


def without_openssl() -> None:
    """Call before anything imports asyncio or hashlib; a no-op where any of
    them is loaded already (nothing is gained then)."""
    if any(m in sys.modules for m in ("asyncio", "hashlib", *MASKED)):
        return
    for m in MASKED:
        sys.modules[m] = None  # type: ignore[assignment]  # import m -> ImportError
    try:
        importlib.import_module("hashlib")
        importlib.import_module("asyncio")
    finally:
        for m in MASKED:
            del sys.modules[m]
