"""taucg: a cgroup-v2-native resource controller for Linux systems run by systemd."""

# The one place the version is written: pyproject.toml reads it from here
# ([tool.setuptools.dynamic]). A literal, not importlib.metadata, which costs
# every `taucg` call ~20 ms and ~5 MiB (16-20x that under emulation).
__version__ = "0.1.0"
