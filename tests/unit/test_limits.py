"""Limit hits from two samples, and OOM kills turned into alerts that name
the tier and the victim the kernel log reported."""

from __future__ import annotations

from taucg.model.limits import OomAlarm, limit_hits
from taucg.model.monitor import Monitor, Thresholds
from taucg.readers.kmsg import OomKill, parse_record
from taucg.readers.samples import CgroupCpu, CgroupMemoryEvents, CgroupSample, MemInfo, SystemSample

# A real summary line (Linux 6.1), as /dev/kmsg gives it: PRI,SEQ,USEC,FLAGS;TEXT
RECORD = (b"3,1234,98765432,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),"
          b"cpuset=/,mems_allowed=0,oom_memcg=/tau.slice/tau-low.slice/hog.service,"
          b"task_memcg=/tau.slice/tau-low.slice/hog.service,task=stress-ng-vm,pid=4242,"
          b"uid=0\n SUBSYSTEM=memory\n")


def cg(oom_kill: int, high: int = 0, mx: int = 0, throttled: float = 0.0,
       periods: int = 0) -> CgroupSample:
    return CgroupSample("/x", 0.0, CgroupCpu(1.0, 1.0, 0.0, 10, periods, throttled), 1, None,
                        None, None, CgroupMemoryEvents(0, high, mx, oom_kill, oom_kill), 1,
                        None, None, None, None, None, True, False)


def kill(tier: str, pid: int, task: str = "hog") -> OomKill:
    return OomKill(pid, task, f"/tau.slice/tau-{tier}.slice/{task}.service", 0)


def test_parse_record() -> None:
    assert parse_record(RECORD) == OomKill(
        4242, "stress-ng-vm", "/tau.slice/tau-low.slice/hog.service", 0)
    assert parse_record(b"6,1,2,-;Out of memory: Killed process 4242 (stress-ng-vm)\n") is None
    assert parse_record(b"no separator") is None


def test_limit_hits_between_two_samples() -> None:
    hits = limit_hits(cg(1, 5, 2, 0.5, 3), cg(2, 9, 2, 1.75, 10))
    assert hits.to_dict() == {"oom_kills": 2, "memory_high_events": 9,
                              "memory_max_events": 2, "throttled_seconds": 1.25,
                              "throttled_periods": 7}
    assert hits.text() == "oom 2 high 9 max 2 throttled 1.25s"
    first = limit_hits(None, cg(0))
    assert first.throttled_seconds is None and first.text().endswith("throttled -s")


def test_an_oom_kill_names_the_tier_and_the_victim() -> None:
    alarm = OomAlarm()
    assert alarm.update({"low": cg(4), "high": cg(0)}, [], 0.0) == []  # the baseline
    [a] = alarm.update({"low": cg(5), "high": cg(0)}, [kill("low", 4242, "stress-ng-vm")], 1.0)
    assert (a.metric, a.state, a.value) == ("oom_kill low", "raised", 1.0)
    assert "tier low" in a.message() and "stress-ng-vm (pid 4242, stress-ng-vm.service)" \
        in a.message()
    [c] = alarm.update({"low": cg(5), "high": cg(0)}, [], 2.0)
    assert (c.metric, c.state) == ("oom_kill low", "cleared")
    assert alarm.update({"low": cg(5), "high": cg(0)}, [], 3.0) == []


def test_victims_go_to_their_own_tier_and_wait_for_the_count() -> None:
    alarm = OomAlarm()
    alarm.update({"low": cg(0), "normal": cg(0)}, [], 0.0)
    # Two kills logged; only low's counter has risen yet (normal's comes next tick).
    [a] = alarm.update({"low": cg(1), "normal": cg(0)},
                       [kill("normal", 7, "b"), kill("low", 8, "a"), kill("other", 9)], 1.0)
    assert "a (pid 8" in a.message() and "pid 7" not in a.message()
    alerts = alarm.update({"low": cg(1), "normal": cg(1)}, [], 2.0)
    assert [(x.metric, x.state) for x in alerts] == [("oom_kill low", "cleared"),
                                                     ("oom_kill normal", "raised")]
    assert "b (pid 7" in alerts[1].message()
    assert alarm.pending == []  # the kill outside the tiers was dropped


def test_an_unnamed_kill_says_why() -> None:
    alarm = OomAlarm()
    alarm.update({"low": cg(0)}, [], 0.0)
    [a] = alarm.update({"low": cg(2)}, [kill("low", 8)], 1.0, "/dev/kmsg: Permission denied")
    assert "2 processes OOM-killed in tier low" in a.message()
    assert "1 more not named" in a.message()
    [b] = alarm.update({"low": cg(3)}, [], 2.0, "/dev/kmsg: Permission denied")
    assert "victim is not known (/dev/kmsg: Permission denied)" in b.message()


def test_the_monitor_raises_oom_alerts() -> None:
    mem = MemInfo(1000, 0, 900, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    sys = SystemSample(0.0, None, (), 0, 0, 0, 0, 0, mem, None, None, None, None)
    m = Monitor(Thresholds(80, 85, 90))
    m.update(sys, tiers={"low": cg(0)})
    u = m.update(sys, tiers={"low": cg(1)}, oom_kills=[kill("low", 5, "x")])
    assert [a.metric for a in u.alerts] == ["oom_kill low"]
    assert u.tiers["low"].oom_kills == 1
