from __future__ import annotations

from taucg.model.health import CheckResult, combine, linear


def test_linear() -> None:
    assert linear(50, 80, 100) == 1.0
    assert linear(90, 80, 100) == 0.5
    assert linear(100, 80, 100) == 0.0


def test_weighted_score_leaves_out_unavailable_checks() -> None:
    checks = [CheckResult("cpu_usage", 1.0, "10%"), CheckResult("memory_usage", 0.5, "90%",
                                                                recommendation="lower it"),
              CheckResult("temperature", None, "not available on this machine")]
    h = combine(checks, {"cpu_usage": 1.0, "memory_usage": 3.0, "temperature": 10.0}, 0.7)
    assert h.score == (1.0 * 1 + 0.5 * 3) / 4  # temperature's weight is not counted
    assert not h.healthy
    assert h.recommendations() == ["lower it"]
    assert h.to_dict()["checks"][2]["score"] is None
