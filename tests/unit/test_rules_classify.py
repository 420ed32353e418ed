"""classify(rules, facts) on process facts built by hand: no /proc, so each
case says exactly which process it is about. And unit_of_cgroup, which
decides the unit a rule's `unit` key sees."""

from __future__ import annotations

from typing import Any

import pytest

from taucg.config.schema import Rule
from taucg.model.rules import Verdict, classify
from taucg.readers.procfs import ProcessFacts, unit_of_cgroup

# uid 0 is root on every machine; 65534 (nobody) is not root either way.
ROOT_UID = 0
OTHER_UID = 65534
SERVICE_WORKER = "/system.slice/foo.service/worker"
USER_APP = "/user.slice/user-1000.slice/user@1000.service/app.slice/x.scope"


def proc(comm: str = "nginx", *, exe: str | None = "/usr/sbin/nginx",
         cmdline: str = "nginx -c /etc/nginx/nginx.conf", uid: int = ROOT_UID,
         cgroup: str | None = "/system.slice/nginx.service", pid: int = 4242
         ) -> ProcessFacts:
    return ProcessFacts(pid=pid, ppid=1, comm=comm, exe=exe, cmdline=cmdline, uid=uid,
                        cgroup=cgroup)


def tier_of(f: ProcessFacts, **keys: Any) -> str | None:
    """The tier one rule with these match keys gives f (None: no match)."""
    return classify((Rule(tier="low", **keys),), f).tier


# -- precedence -----------------------------------------------------------------


def test_first_matching_rule_wins_in_order() -> None:
    rules = (Rule(tier="high", comm="apache2"),
             Rule(tier="normal", comm="nginx"),
             Rule(tier="background", comm="ngin*"))
    verdict = classify(rules, proc())
    assert verdict.tier == "normal"
    assert verdict.rule is not None
    assert verdict.rule.index == 2 and verdict.rule.rule is rules[1]
    # Rules after the winner are not even tried.
    assert [r.index for r in verdict.tried] == [1, 2]


def test_order_not_specificity_decides() -> None:
    broad, narrow = Rule(tier="low", comm="*"), Rule(tier="critical", comm="nginx")
    assert classify((broad, narrow), proc()).tier == "low"
    assert classify((narrow, broad), proc()).tier == "critical"


def test_no_rule_matching_leaves_the_tier_none() -> None:
    verdict = classify((Rule(tier="high", comm="apache2"), Rule(tier="low", user="nobody")),
                       proc())
    assert verdict.tier is None and verdict.rule is None
    assert len(verdict.tried) == 2


def test_no_rules_at_all() -> None:
    verdict = classify((), proc())
    assert verdict.tier is None and verdict.rule is None and verdict.tried == ()


# -- keys within a rule are ANDed ---------------------------------------------


def test_every_key_of_a_rule_must_match() -> None:
    f = proc()
    assert tier_of(f, comm="nginx", user="root", exe="/usr/sbin/*") == "low"
    assert tier_of(f, comm="nginx", user="nobody") is None
    assert tier_of(f, comm="apache2", user="root") is None
    verdict = classify((Rule(tier="low", comm="nginx", cmdline="--no-such-flag"),), f)
    (result,) = verdict.tried
    assert [(c.key, c.matched) for c in result.checks] == [("comm", True), ("cmdline", False)]
    assert not result.matched


# -- the keys --------------------------------------------------------------------


@pytest.mark.parametrize(("pattern", "comm", "matched"), [
    ("nginx", "nginx", True),
    ("nginx", "nginx-worker", False),  # exact: not a prefix match
    ("nginx", "Nginx", False),  # case counts
    ("ngin*", "nginx", True),
    ("nginx*", "nginx-worker", True),
    ("ng?nx", "nginx", True),
    ("ng?nx", "ngnx", False),
    ("[mn]ginx", "nginx", True),
    ("[mn]ginx", "xginx", False),
    ("kworker[0]", "kworker[0]", True),  # exact even where the glob would not match
])
def test_comm_is_exact_or_a_glob(pattern: str, comm: str, matched: bool) -> None:
    assert (tier_of(proc(comm), comm=pattern) == "low") is matched


@pytest.mark.parametrize(("pattern", "exe", "matched"), [
    ("/usr/sbin/nginx", "/usr/sbin/nginx", True),
    ("/usr/sbin/*", "/usr/sbin/nginx", True),
    ("*/nginx", "/usr/sbin/nginx", True),
    ("/usr/bin/*", "/usr/sbin/nginx", False),
    ("*/python3*", "/usr/bin/python3.11", True),
    ("*", None, False),  # a kernel thread, or an exe we may not read: never matches
])
def test_exe_is_a_glob_on_the_path(pattern: str, exe: str | None, matched: bool) -> None:
    assert (tier_of(proc(exe=exe), exe=pattern) == "low") is matched


@pytest.mark.parametrize(("regex", "matched"), [
    (r"-c\s+/etc/nginx/", True),  # searched anywhere, not matched from the start
    (r"^nginx ", True),
    (r"nginx\.conf$", True),
    (r"^-c", False),
    (r"apache", False),
])
def test_cmdline_is_a_regex_search(regex: str, matched: bool) -> None:
    assert (tier_of(proc(), cmdline=regex) == "low") is matched


@pytest.mark.parametrize(("user", "uid", "matched"), [
    ("root", ROOT_UID, True),
    (0, ROOT_UID, True),
    ("root", OTHER_UID, False),
    (0, OTHER_UID, False),
    ("no-such-user-taucg", ROOT_UID, False),
])
def test_user_by_name_or_uid(user: str | int, uid: int, matched: bool) -> None:
    assert (tier_of(proc(uid=uid), user=user) == "low") is matched


@pytest.mark.parametrize(("unit", "cgroup", "matched"), [
    ("foo.service", SERVICE_WORKER, True),  # a nested cgroup belongs to its unit
    ("foo", SERVICE_WORKER, True),  # ".service" is implied
    ("foo*.service", SERVICE_WORKER, True),
    ("worker", SERVICE_WORKER, False),
    ("system.slice", SERVICE_WORKER, False),  # a slice is not the unit
    ("user@1000.service", USER_APP, True),
    ("user@*.service", USER_APP, True),
    ("x.scope", USER_APP, False),  # inside user@1000.service's own subtree
    ("app.slice", USER_APP, False),
    ("init.scope", "/init.scope", True),
    ("*", None, False),  # outside cgroup v2: no unit to match
    ("*", "/", False),
])
def test_unit_is_the_unit_the_process_runs_in(unit: str, cgroup: str | None,
                                              matched: bool) -> None:
    assert (tier_of(proc(cgroup=cgroup), unit=unit) == "low") is matched


# -- explain ---------------------------------------------------------------------


def test_explain_names_the_winner_and_why_the_others_were_skipped() -> None:
    rules = (Rule(tier="high", name="web", comm="apache2"),
             Rule(tier="low", comm="nginx", user="nobody"),
             Rule(tier="normal", name="nginx as root", comm="ngin*", user="root"),
             Rule(tier="background", comm="*"))
    verdict = classify(rules, proc())
    assert verdict.explain() == [
        "process 4242 (nginx), user root, unit nginx.service, exe /usr/sbin/nginx",
        "rule 1 (web) skipped: comm 'nginx' does not match 'apache2'",
        "rule 2 skipped: user 'root' does not match 'nobody'",
        "rule 3 (nginx as root) matched (comm 'nginx' matches 'ngin*'; "
        "user 'root' matches 'root'): tier normal",
    ]


def test_explain_when_nothing_matches() -> None:
    f = proc(exe=None, cgroup=None)
    verdict = classify((Rule(tier="high", unit="nginx.service"),), f)
    assert verdict.explain() == [
        "process 4242 (nginx), user root, unit -, exe (unreadable)",
        "rule 1 skipped: unit None does not match 'nginx.service'",
        "no rule matched: the process stays where it is",
    ]


def test_explain_without_rules() -> None:
    assert classify((), proc()).explain()[1:] == ["no [[rules]] are configured"]


def test_a_verdict_keeps_the_facts_it_judged() -> None:
    f = proc(pid=7)
    verdict = classify((Rule(tier="low", comm="nginx"),), f)
    assert isinstance(verdict, Verdict) and verdict.facts is f


# -- unit_of_cgroup --------------------------------------------------------------


@pytest.mark.parametrize(("cgroup", "unit"), [
    ("/system.slice/foo.service", "foo.service"),
    (SERVICE_WORKER, "foo.service"),
    ("/system.slice/foo.service/worker.scope", "foo.service"),
    (USER_APP, "user@1000.service"),
    ("/user.slice/user-1000.slice/session-3.scope", "session-3.scope"),
    ("/tau.slice/tau-low.slice/taucg-low-sleep-42.scope", "taucg-low-sleep-42.scope"),
    ("/init.scope", "init.scope"),
    ("/system.slice", None),  # only slices: no unit
    ("/user.slice/user-1000.slice", None),
    ("/machine", None),  # the first non-slice part is not a unit name
    ("/", None),
    ("", None),
    (None, None),
])
def test_unit_of_cgroup(cgroup: str | None, unit: str | None) -> None:
    assert unit_of_cgroup(cgroup) == unit
