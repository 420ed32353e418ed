"""Rules against real processes on this machine."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from taucg.config.loading import loads
from taucg.model.rules import classify
from taucg.readers.procfs import facts

RULES = loads("""
[[rules]]
name = "sleepers"
comm = "sle?p"
cmdline = "^sleep 3[0-9]+$"
tier = "background"

[[rules]]
name = "root python"
exe = "*/python3*"
user = "root"
tier = "low"

[[rules]]
unit = "no-such.service"
tier = "high"
""").rules


def test_first_matching_rule_wins_and_explains() -> None:
    child = subprocess.Popen(["sleep", "37"])
    try:
        time.sleep(0.1)
        verdict = classify(RULES, facts(child.pid))
        assert verdict.tier == "background"
        assert verdict.rule is not None and verdict.rule.index == 1
        text = "\n".join(verdict.explain())
        assert "rule 1 (sleepers) matched" in text
        assert "comm 'sleep' matches 'sle?p'" in text
    finally:
        child.kill()
        child.wait()


def test_later_rule_matches_when_earlier_do_not() -> None:
    if os.geteuid() != 0:
        import pytest

        pytest.skip("the user rule in this test names root")
    f = facts(os.getpid())
    verdict = classify(RULES, f)
    assert os.path.realpath(sys.executable).rsplit("/", 1)[-1].startswith("python3")
    assert verdict.tier == "low"
    assert verdict.rule is not None and verdict.rule.index == 2
    text = "\n".join(verdict.explain())
    assert "rule 1 (sleepers) skipped" in text


def test_no_rule_matches_says_why() -> None:
    child = subprocess.Popen(["sleep", "5"])  # cmdline "sleep 5" fails rule 1's regex
    try:
        time.sleep(0.1)
        f = facts(child.pid)
        verdict = classify(RULES[:1] + RULES[2:], f)
        assert verdict.tier is None
        text = "\n".join(verdict.explain())
        assert "cmdline 'sleep 5' does not match" in text
        assert "unit" in text and "does not match 'no-such.service'" in text
        assert "no rule matched" in text
    finally:
        child.kill()
        child.wait()


def test_uid_rule() -> None:
    rules = loads(f"[[rules]]\nuser = {os.getuid()}\ntier = 'normal'\n").rules
    assert classify(rules, facts(os.getpid())).tier == "normal"
    other = loads(f"[[rules]]\nuser = {os.getuid() + 4242}\ntier = 'normal'\n").rules
    assert classify(other, facts(os.getpid())).tier is None
