"""The config's schema: one frozen dataclass per TOML section, each field
carrying how it is validated (``opt``) and its built-in default, which
equals ``default.toml`` (a test pins the two together).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from taucg.config.values import (
    CpuSet,
    Size,
    check_unit_name,
    unit_name,
)

TIER_NAMES = ("critical", "high", "normal", "low", "background")
STRATEGIES = (
    "restart",
    "restart_with_delay",
    "restart_with_backoff",
    "fallback_to_safe_mode",
    "notify_admin",
)
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
HEALTH_WEIGHTS = MappingProxyType({
    "cpu_usage": 0.15, "memory_usage": 0.2, "disk_usage": 0.15,
    "network_connectivity": 0.1, "temperature": 0.1, "pressure": 0.1, "services": 0.2,
})
SYSTEM_CHECKS = (
    "cpu_usage",
    "memory_usage",
    "disk_usage",
    "network_connectivity",
    "temperature",
    "pressure",
)


# ---------------------------------------------------------------- schema ---


@dataclass(frozen=True, slots=True)
class Check:
    """How one key is validated and converted."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False
    cls: type | None = None


def opt(default: Any, kind: str, lo: float | None = None, hi: float | None = None, *,
        choices: tuple[str, ...] = (), required: bool = False, cls: type | None = None,
        doc: str = "") -> Any:
    metadata = {"check": Check(kind, lo, hi, choices, required, cls), "doc": doc}
    if isinstance(default, Mapping):
        # Mappings are unhashable, so dataclasses want a factory for them.
        return field(default_factory=lambda: MappingProxyType(dict(default)), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class ResourceMonitoring:
    enabled: bool = opt(True, "bool")
    interval_seconds: int = opt(30, "int", 1, 86400)
    cpu_threshold_percent: float = opt(80.0, "float", 0, 100)
    memory_threshold_percent: float = opt(85.0, "float", 0, 100)
    disk_threshold_percent: float = opt(90.0, "float", 0, 100)
    network_monitoring: bool = opt(True, "bool")
    temperature_monitoring: bool = opt(True, "bool")
    alert_on_threshold: bool = opt(True, "bool")
    log_resource_usage: bool = opt(True, "bool")
    # Our additions:
    alert_hysteresis_percent: float = opt(5.0, "float", 0, 50)
    history_length: int = opt(120, "int", 2, 100_000)
    trend_window_seconds: int = opt(600, "int", 1, 7 * 86400)
    # Smart sampling: the interval shortens to this floor while a value nears
    # its threshold or a protected tier's pressure rises.
    min_interval_seconds: int = opt(1, "int", 1, 86400)


@dataclass(frozen=True, slots=True)
class SamplerSettings:
    process_fd_budget: int = opt(4096, "int", 0, 1_000_000,
                                 doc="stat fds kept open; past it, open+read+close")


@dataclass(frozen=True, slots=True)
class ProcessManagement:
    enabled: bool = opt(True, "bool")
    max_concurrent_processes: int = opt(100, "int", 1, 4_194_304)
    process_priority_levels: int = opt(5, "int", 0, 5)
    memory_limit_mb: int = opt(2048, "int", 1, 1 << 40)
    cpu_limit_percent: float = opt(50.0, "float", 0, 100)
    auto_cleanup_zombies: bool = opt(True, "bool")
    process_isolation: bool = opt(True, "bool")
    resource_pooling: bool = opt(True, "bool")


@dataclass(frozen=True, slots=True)
class CrashRecovery:
    enabled: bool = opt(True, "bool")
    auto_recovery: bool = opt(True, "bool")
    max_recovery_attempts: int = opt(3, "int", 1, 1000)
    recovery_timeout_seconds: int = opt(60, "int", 1, 86400)
    save_session_state: bool = opt(True, "bool")
    session_state_path: str = opt("/var/lib/tau/session_state", "path")
    critical_processes: tuple[str, ...] = opt(
        ("tau-session", "tau-powerd", "tau-inputd", "tau-displaysvc"), "units"
    )
    # Our addition: where the crash history lives.
    state_directory: str = opt("/var/lib/taucg", "path")

    @property
    def critical_units(self) -> tuple[str, ...]:
        return tuple(unit_name(n) for n in self.critical_processes)


@dataclass(frozen=True, slots=True)
class HealthChecking:
    enabled: bool = opt(True, "bool")
    check_interval_seconds: int = opt(60, "int", 1, 86400)
    system_health_checks: tuple[str, ...] = opt(
        ("cpu_usage", "memory_usage", "disk_usage", "network_connectivity"),
        "choices",
        choices=SYSTEM_CHECKS,
    )
    service_health_checks: tuple[str, ...] = opt(
        ("tau-session", "tau-powerd", "tau-inputd", "tau-displaysvc"), "units"
    )
    alert_on_failure: bool = opt(True, "bool")
    auto_restart_failed_services: bool = opt(True, "bool")
    health_score_threshold: float = opt(0.7, "float", 0.0, 1.0)
    # Our addition: each check's weight in the score (relative; need not sum to 1).
    weights: Mapping[str, float] = opt(HEALTH_WEIGHTS, "weights",
                                       choices=tuple(HEALTH_WEIGHTS))


@dataclass(frozen=True, slots=True)
class Logging:
    log_level: str = opt("info", "choice", choices=LOG_LEVELS)
    log_file_path: str = opt("/var/log/tau/monitor.log", "path")
    audit_log_path: str = opt("/var/log/tau/audit.log", "path")  # our addition
    max_log_size_mb: int = opt(100, "int", 1, 1 << 20)
    log_rotation: bool = opt(True, "bool")
    structured_logging: bool = opt(True, "bool")
    log_compression: bool = opt(True, "bool")
    audit_logging: bool = opt(True, "bool")
    performance_logging: bool = opt(True, "bool")
    # Our additions: the performance log's own file; how many rotated files
    # are kept and for how long; and a copy of the log in journald when it runs.
    performance_log_path: str = opt("/var/log/tau/performance.log", "path")
    rotated_files_kept: int = opt(10, "int", 0, 10_000)
    retention_days: float = opt(30.0, "float", 0.01, 36_500)
    journald: bool = opt(True, "bool")


@dataclass(frozen=True, slots=True)
class Governor:
    """Our addition: the controller that protects the protected tiers under
    pressure by tightening the tiers below them, and gives it all back."""

    enabled: bool = opt(True, "bool")
    protect: tuple[str, ...] = opt(("critical", "high"), "choices", choices=TIER_NAMES,
                                   doc="tiers whose pressure is held at the targets")
    # Targets on the protected tiers' "some" pressure: percent of wall time
    # in which a task of theirs stalled, measured from pressure totals.
    cpu_pressure_percent: float = opt(10.0, "float", 0.1, 100)
    memory_pressure_percent: float = opt(5.0, "float", 0.1, 100)
    io_pressure_percent: float = opt(10.0, "float", 0.1, 100)
    react_ticks: int = opt(2, "int", 1, 100, doc="ticks above target before tightening")
    relax_seconds: float = opt(30.0, "float", 1, 86400,
                               doc="calm time before each step back toward the config")
    min_cpu_weight: int = opt(1, "int", 1, 10000)
    min_io_weight: int = opt(1, "int", 1, 10000)
    min_cpu_quota: float = opt(5.0, "float", 1, 100 * 8192, doc="percent of one CPU")
    memory_high_floor: Size = opt(Size(bytes=64 << 20), "size",
                                  doc="the lowest MemoryHigh the governor imposes")
    min_cores: int = opt(1, "int", 1, 8192)
    freeze_background: bool = opt(True, "bool")


@dataclass(frozen=True, slots=True)
class Thermal:
    """Our addition: passive cooling of the lower tiers (needs
    resource_monitoring.temperature_monitoring)."""

    throttle_celsius: float = opt(85.0, "float", 20, 150)
    critical_celsius: float = opt(95.0, "float", 20, 150)
    hysteresis_celsius: float = opt(3.0, "float", 0.5, 30)


@dataclass(frozen=True, slots=True)
class Daemon:
    """Our addition: the daemon's socket, pidfile and metrics endpoint."""

    socket_path: str = opt("/run/taucg/taucg.sock", "path")
    # Members of this group may read through the socket; mutations need root.
    socket_group: str = opt("adm", "str")
    pidfile: str = opt("/run/taucg/taucg.pid", "path")
    # "HOST:PORT" to serve Prometheus metrics; "" (the default) serves none.
    metrics_address: str = opt("", "address")
    # The one HTTP server: /metrics, the REST API (/api/v1/) and the dashboard
    # (/). "HOST:PORT"; "" (the default) serves none. metrics_address is its
    # older name: set either one (both, only if equal).
    http_address: str = opt("", "address")
    # A Prometheus exporter-toolkit web config file (YAML): tls_server_config
    # and basic_auth_users (bcrypt). "" serves plain HTTP without passwords.
    web_config_file: str = opt("", "optpath")
    # true serves plain HTTP on an address other than loopback; without it,
    # such an address needs TLS from web_config_file.
    insecure: bool = opt(False, "bool")


@dataclass(frozen=True, slots=True)
class Forecast:
    """Our addition: when a tier's memory, a filesystem or a leaking process
    will reach its limit, from a Theil-Sen slope over the recent history
    (default.toml's comments say what each key does)."""

    enabled: bool = opt(True, "bool")
    horizon_minutes: float = opt(60.0, "float", 1, 7 * 24 * 60)
    window_seconds: int = opt(600, "int", 10, 7 * 86400)
    min_points: int = opt(10, "int", 3, 10_000)
    min_quality: float = opt(0.6, "float", 0.0, 1.0)
    hysteresis_percent: float = opt(20.0, "float", 0, 100)


# Notifications and custom metrics (our additions; see README "Notifications").
NOTIFIER_TYPES = ("journald", "command", "webhook", "desktop")
SEVERITIES = ("info", "warning", "critical")
NOTIFY_EVENTS = ("notify_admin", "oom_kill", "safe_mode", "governor_freeze", "alert",
                 "health")


@dataclass(frozen=True, slots=True)
class Notifier:
    """Where notifications go: one [[notifiers]] entry per receiver."""

    type: str = opt("", "choice", choices=NOTIFIER_TYPES, required=True,
                    doc="journald, command (run by /bin/sh -c), webhook (HTTP POST) or "
                        "desktop (org.freedesktop.Notifications on each logged-in user's bus)")
    name: str | None = opt(None, "str", doc="shown in the daemon's log; default TYPE-N")
    min_severity: str = opt("warning", "choice", choices=SEVERITIES,
                            doc="the least severe notification this notifier takes")
    events: tuple[str, ...] = opt(NOTIFY_EVENTS, "choices", choices=NOTIFY_EVENTS,
                                  doc="the events it takes")
    rate_limit: int = opt(20, "int", 0, 1_000_000,
                          doc="at most this many per rate_period_seconds (0: no limit); "
                              "the rest are counted and the next one sent says how many")
    rate_period_seconds: float = opt(60.0, "float", 1, 86400,
                                     doc="the window rate_limit counts in")
    timeout_seconds: float = opt(10.0, "float", 0.1, 3600,
                                 doc="command: killed after this; webhook, desktop: per attempt")
    command: str | None = opt(None, "str", doc="command: the shell command; the event is in "
                                               "TAUCG_* variables and as JSON on stdin")
    url: str | None = opt(None, "url", doc="webhook: the http:// or https:// URL to POST to")
    format: str = opt("taucg", "choice", choices=("taucg", "alertmanager"),
                      doc="webhook: taucg's JSON document, or Alertmanager's /api/v2/alerts "
                          "array (point url at http://HOST:9093/api/v2/alerts)")
    retry_initial_seconds: float = opt(1.0, "float", 0.1, 3600,
                                       doc="webhook: the first retry's delay; doubled "
                                           "after each failure")
    retry_max_seconds: float = opt(300.0, "float", 0.1, 86400,
                                   doc="webhook: the longest delay between retries")
    queue_limit: int = opt(10000, "int", 1, 1_000_000,
                           doc="webhook: undelivered notifications kept on disk; past it "
                               "the oldest is dropped and logged")
    runtime_directory: str = opt("/run/user", "path",
                                 doc="desktop: where the session buses are (UID/bus)")


@dataclass(frozen=True, slots=True)
class CustomMetric:
    """A number read every sample tick from a file or a command."""

    name: str = opt("", "metricname", required=True,
                    doc="letters, digits and _, starting with a letter; the history's "
                        "metric is custom.NAME, Prometheus's taucg_custom_NAME[_UNIT]")
    help: str | None = opt(None, "str", doc="what it measures (Prometheus HELP)")
    unit: str | None = opt(None, "metricname", doc="its base unit (seconds, bytes, celsius, "
                                                   "ratio...), appended to the exported name")
    file: str | None = opt(None, "path", doc="a file holding the number (the first word)")
    command: str | None = opt(None, "str", doc="a shell command printing the number")
    timeout_seconds: float = opt(5.0, "float", 0.1, 3600, doc="command: killed after this")
    warning: float | None = opt(None, "float", doc="an alert at or above this value")
    critical: float | None = opt(None, "float", doc="a critical alert at or above this value")
    hysteresis: float = opt(0.0, "float", 0, doc="an alert clears only below its threshold "
                                                 "minus this (in the metric's unit)")


@dataclass(frozen=True, slots=True)
class Metrics:
    """Our addition: metrics of the admin's own ([[metrics.custom]])."""

    custom: tuple[CustomMetric, ...] = opt((), "array_of", cls=CustomMetric)


TasksMax = int | Literal["infinity"]


@dataclass(frozen=True, slots=True)
class TierPolicy:
    """One tier's limits, in systemd.resource-control(5) terms. None leaves
    systemd's default in place (taucg does not manage that property)."""

    cpu_weight: int | Literal["idle"] | None = opt(None, "weight", 1, 10000,
                                                   doc="CPUWeight; \"idle\" sets cpu.idle")
    startup_cpu_weight: int | Literal["idle"] | None = opt(
        None, "weight", 1, 10000, doc="StartupCPUWeight, while the system boots and stops")
    cpu_quota: float | None = opt(None, "float", 0.01, 100 * 8192,
                                  doc="CPUQuota, percent of one CPU (200 = two CPUs)")
    memory_min: Size | None = opt(None, "size", doc="MemoryMin")
    memory_low: Size | None = opt(None, "size", doc="MemoryLow")
    memory_high: Size | None = opt(None, "size", doc="MemoryHigh")
    memory_max: Size | None = opt(None, "size", doc="MemoryMax")
    memory_swap_max: Size | None = opt(None, "bytes", doc="MemorySwapMax (no percentage)")
    allowed_cpus: CpuSet | None = opt(None, "cpus", doc="AllowedCPUs")
    io_weight: int | None = opt(None, "int", 1, 10000, doc="IOWeight")
    tasks_max: TasksMax | None = opt(None, "tasks", doc="TasksMax")
    units: tuple[str, ...] = opt((), "units", doc="services placed in this tier")


@dataclass(frozen=True, slots=True)
class Rule:
    """Places matching processes into a tier. Every key given must match."""

    tier: str = opt("", "choice", choices=TIER_NAMES, required=True)
    name: str | None = opt(None, "str")
    comm: str | None = opt(None, "str", doc="process name, exact or glob")
    exe: str | None = opt(None, "str", doc="executable path glob")
    cmdline: str | None = opt(None, "regex", doc="regular expression over the command line")
    user: str | int | None = opt(None, "user", doc="user name or uid")
    unit: str | None = opt(None, "unitname", doc="the unit the process runs in")
    allowed_cpus: CpuSet | None = opt(None, "cpus",
                                      doc="sched_setaffinity for matches that stay in a service")

    MATCH_KEYS = ("comm", "exe", "cmdline", "user", "unit")


# ananicy types -> tiers (issue 17's table); "nice" maps a type by its nice.
ANANICY_TIERS = MappingProxyType({
    "LowLatency_RT": "high", "Game": "high", "Player-Audio": "high", "Player-Video": "high",
    "Image-View": "normal", "Doc-View": "normal", "Chat": "normal",
    "Heavy_CPU": "low", "Service": "low",
    "BG_CPUIO": "background", "BG_CPU": "background", "Launcher": "background",
})


@dataclass(frozen=True, slots=True)
class RuleSources:
    """Our addition: rule files in other formats, below [[rules]] in precedence."""

    ananicy: tuple[str, ...] = opt((), "paths", doc="ananicy rule trees (.rules/.types/.cgroups)")
    ananicy_tiers: Mapping[str, str] = opt(ANANICY_TIERS, "tier_map",
                                           choices=(*TIER_NAMES, "nice"),
                                           doc="ananicy type -> tier, or \"nice\"")


@dataclass(frozen=True, slots=True)
class RecoveryService:
    strategy: str | None = opt(None, "choice", choices=STRATEGIES,
                               doc="None: [recovery] default_strategy")
    max_attempts: int | None = opt(None, "int", 1, 1000,
                                   doc="None: crash_recovery.max_recovery_attempts")
    delay_seconds: float = opt(5.0, "float", 0, 86400)
    max_delay_seconds: float = opt(300.0, "float", 0, 86400)
    backoff_multiplier: float = opt(2.0, "float", 1.0, 100.0)


def _check_service_key(name: str) -> str | None:
    try:
        check_unit_name(name)
    except ValueError as exc:
        return str(exc)
    return None


@dataclass(frozen=True, slots=True)
class RecoveryConfig:
    default_strategy: str = opt("restart_with_backoff", "choice", choices=STRATEGIES)
    # Escalation order after max_attempts within window_seconds.
    chain: tuple[str, ...] = opt(STRATEGIES, "choices", choices=STRATEGIES)
    window_seconds: float = opt(600.0, "float", 1, 7 * 86400)
    stable_seconds: float = opt(300.0, "float", 0, 7 * 86400)
    # A unit with its own Restart=: "defer" lets systemd restart it and only
    # records the crash; "take_over" turns its Restart= off and recovers it.
    systemd_restart: str = opt("defer", "choice", choices=("defer", "take_over"))
    safe_mode: str = opt("freeze", "choice", choices=("freeze", "isolate"))
    safe_mode_target: str = opt("rescue.target", "unitname")
    notify_command: str | None = opt(None, "str")
    # The crash flight recorder: minutes of each watched unit's samples kept
    # in memory and stored with its crash record; 0 turns it off.
    flight_recorder_minutes: float = opt(10.0, "float", 0, 120)
    services: Mapping[str, RecoveryService] = opt(
        MappingProxyType({}), "table_of", cls=RecoveryService
    )


@dataclass(frozen=True, slots=True)
class Config:
    resource_monitoring: ResourceMonitoring = opt(ResourceMonitoring(), "section",
                                                  cls=ResourceMonitoring)
    process_management: ProcessManagement = opt(ProcessManagement(), "section",
                                                cls=ProcessManagement)
    crash_recovery: CrashRecovery = opt(CrashRecovery(), "section", cls=CrashRecovery)
    health_checking: HealthChecking = opt(HealthChecking(), "section", cls=HealthChecking)
    logging: Logging = opt(Logging(), "section", cls=Logging)
    sampler: SamplerSettings = opt(SamplerSettings(), "section", cls=SamplerSettings)
    daemon: Daemon = opt(Daemon(), "section", cls=Daemon)
    tiers: Mapping[str, TierPolicy] = opt(MappingProxyType({}), "table_of", cls=TierPolicy)
    rules: tuple[Rule, ...] = opt((), "array_of", cls=Rule)
    recovery: RecoveryConfig = opt(RecoveryConfig(), "section", cls=RecoveryConfig)
    governor: Governor = opt(Governor(), "section", cls=Governor)
    thermal: Thermal = opt(Thermal(), "section", cls=Thermal)
    rule_sources: RuleSources = opt(RuleSources(), "section", cls=RuleSources)
    forecast: Forecast = opt(Forecast(), "section", cls=Forecast)
    notifiers: tuple[Notifier, ...] = opt((), "array_of", cls=Notifier)
    metrics: Metrics = opt(Metrics(), "section", cls=Metrics)
    # Where each key's value came from: dotted key -> BUILTIN or a file path.
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}),
                                       compare=False)
    file: str | None = field(default=None, compare=False)
