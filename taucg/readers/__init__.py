"""Layer 1, readers: what the kernel says, read and nothing more. /proc,
cgroup v2 files and sysfs, with the C sampler (``_sampler``) on the hot
path. Imports only config."""
