from __future__ import annotations

from pathlib import Path

import pytest

from taucg.config import loading, schema
from taucg.config.loading import BUILTIN, ConfigError, builtin, loads
from taucg.config.schema import TIER_NAMES
from taucg.config.values import CpuSet, Size


def test_seed_defaults_are_exact() -> None:
    c = builtin()
    rm = c.resource_monitoring
    assert (rm.enabled, rm.interval_seconds, rm.cpu_threshold_percent,
            rm.memory_threshold_percent, rm.disk_threshold_percent, rm.network_monitoring,
            rm.temperature_monitoring, rm.alert_on_threshold, rm.log_resource_usage) == (
        True, 30, 80.0, 85.0, 90.0, True, True, True, True)
    pm = c.process_management
    assert (pm.enabled, pm.max_concurrent_processes, pm.process_priority_levels,
            pm.memory_limit_mb, pm.cpu_limit_percent, pm.auto_cleanup_zombies,
            pm.process_isolation, pm.resource_pooling) == (
        True, 100, 5, 2048, 50.0, True, True, True)
    cr = c.crash_recovery
    assert (cr.enabled, cr.auto_recovery, cr.max_recovery_attempts,
            cr.recovery_timeout_seconds, cr.save_session_state, cr.session_state_path) == (
        True, True, 3, 60, True, "/var/lib/tau/session_state")
    assert cr.critical_processes == ("tau-session", "tau-powerd", "tau-inputd", "tau-displaysvc")
    hc = c.health_checking
    assert hc.system_health_checks == ("cpu_usage", "memory_usage", "disk_usage",
                                       "network_connectivity")
    assert hc.service_health_checks == cr.critical_processes
    assert (hc.enabled, hc.check_interval_seconds, hc.alert_on_failure,
            hc.auto_restart_failed_services, hc.health_score_threshold) == (
        True, 60, True, True, 0.7)
    lg = c.logging
    assert (lg.log_level, lg.log_file_path, lg.max_log_size_mb, lg.log_rotation,
            lg.structured_logging, lg.log_compression, lg.audit_logging,
            lg.performance_logging) == (
        "info", "/var/log/tau/monitor.log", 100, True, True, True, True, True)


def test_builtin_matches_dataclass_defaults() -> None:
    # The shipped TOML and the record defaults must not drift apart.
    c = builtin()
    assert c.resource_monitoring == schema.ResourceMonitoring()
    assert c.process_management == schema.ProcessManagement()
    assert c.crash_recovery == schema.CrashRecovery()
    assert c.health_checking == schema.HealthChecking()
    assert c.logging == schema.Logging()


def test_all_five_tiers_present_with_ordered_weights() -> None:
    c = builtin()
    assert tuple(c.tiers) == TIER_NAMES
    weights = [c.tiers[t].cpu_weight for t in TIER_NAMES]
    assert weights == sorted(weights, reverse=True)  # type: ignore[type-var]
    assert c.tiers["background"].memory_max == Size(percent=40.0)
    assert c.tiers["critical"].memory_low == Size(bytes=256 << 20)


def test_admin_file_overrides_only_its_keys() -> None:
    c = loads('[resource_monitoring]\ninterval_seconds = 5\n[tiers.low]\ncpu_weight = 7\n'
              'allowed_cpus = "0-1,3"\n', "/etc/x.toml")
    assert c.resource_monitoring.interval_seconds == 5
    assert c.resource_monitoring.cpu_threshold_percent == 80.0
    assert c.tiers["low"].cpu_weight == 7
    assert c.tiers["low"].allowed_cpus == CpuSet(frozenset({0, 1, 3}))
    assert c.tiers["low"].io_weight == builtin().tiers["low"].io_weight
    assert c.sources["resource_monitoring.interval_seconds"] == "/etc/x.toml"
    assert c.sources["resource_monitoring.cpu_threshold_percent"] == BUILTIN
    assert c.sources["tiers.low.cpu_weight"] == "/etc/x.toml"


def test_arrays_replace_rather_than_append() -> None:
    c = loads('[crash_recovery]\ncritical_processes = ["a"]\n')
    assert c.crash_recovery.critical_processes == ("a",)
    assert c.crash_recovery.critical_units == ("a.service",)


def test_rules_and_recovery_services() -> None:
    c = loads('[[rules]]\ncomm = "make"\ntier = "low"\n[[rules]]\nuser = 1000\n'
              'cmdline = "^java .*"\ntier = "background"\n'
              '[recovery.services."tau-session.service"]\nstrategy = "restart"\n'
              'max_attempts = 5\n')
    assert [r.tier for r in c.rules] == ["low", "background"]
    assert c.rules[1].user == 1000
    svc = c.recovery.services["tau-session.service"]
    assert (svc.strategy, svc.max_attempts, svc.delay_seconds) == ("restart", 5, 5.0)


def test_all_problems_reported_at_once_with_lines() -> None:
    text = "[logging]\nlog_level = 3\n\n[tiers.high]\ncpu_weight = 0\nbogus = 1\n"
    with pytest.raises(ConfigError) as err:
        loads(text, "f.toml")
    problems = err.value.problems
    assert [(p.line, p.key) for p in problems] == [
        (2, "logging.log_level"), (5, "tiers.high.cpu_weight"), (6, "tiers.high.bogus")]
    assert all(p.file == "f.toml" for p in problems)


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / "env.toml"
    env_file.write_text("[logging]\nlog_level = 'debug'\n")
    cli_file = tmp_path / "cli.toml"
    cli_file.write_text("[logging]\nlog_level = 'error'\n")
    monkeypatch.setattr(loading, "SYSTEM_CONFIG", tmp_path / "absent.toml")
    monkeypatch.delenv(loading.ENV_VAR, raising=False)
    assert loading.load().file is None
    monkeypatch.setenv(loading.ENV_VAR, str(env_file))
    assert loading.load().logging.log_level == "debug"
    assert loading.load(cli_file).logging.log_level == "error"
    monkeypatch.delenv(loading.ENV_VAR)
    system = tmp_path / "system.toml"
    system.write_text("[logging]\nlog_level = 'warning'\n")
    monkeypatch.setattr(loading, "SYSTEM_CONFIG", system)
    assert loading.load().logging.log_level == "warning"


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        loading.load(tmp_path / "nope.toml")
