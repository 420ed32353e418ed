"""taucg: a cgroup-v2-native resource controller for Linux systems run by systemd."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("taucg")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
