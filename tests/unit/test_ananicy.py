"""ananicy trees: loading (bad lines counted with FILE:LINE, never fatal),
the type -> tier table and the nice fallback, the comm index, and the
precedence of [[rules]] over them."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest

from taucg.config.ananicy import load_tree
from taucg.config.loading import ConfigError, loads
from taucg.config.schema import ANANICY_TIERS, Rule
from taucg.model.ananicy import AnanicyIndex, load_index, tier_by_nice, tier_of_rule
from taucg.model.rules import classify
from taucg.readers.procfs import ProcessFacts
from tests.support.ananicy_corpus import TYPES, Expect, add_rule, write_corpus


def proc(comm: str, exe: str | None = None, pid: int = 4242) -> ProcessFacts:
    return ProcessFacts(pid=pid, ppid=1, comm=comm, exe=exe or f"/usr/bin/{comm}",
                        cmdline=comm, uid=0, cgroup="/user.slice/session-1.scope")


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Path, Expect]:
    root = tmp_path / "ananicy.d"
    return root, write_corpus(root, rules=300)


def index_of(root: Path, table: object = ANANICY_TIERS) -> AnanicyIndex:
    return AnanicyIndex(load_tree([root]), table)  # type: ignore[arg-type]


# -- loading ---------------------------------------------------------------------


def test_the_corpus_loads_with_counts(corpus: tuple[Path, Expect]) -> None:
    root, ex = corpus
    tree = load_tree([root])
    assert len(tree.rules) == ex.rules
    assert len(tree.types) == ex.types and len(tree.cgroups) == ex.cgroups
    # .rules, .types and .cgroups only: README.md and old.conf are not read.
    assert tree.files == len(list(root.rglob("*.rules"))) + 2
    assert tree.replaced == 1


def test_every_bad_line_is_reported_with_file_and_line(corpus: tuple[Path, Expect]) -> None:
    root, ex = corpus
    tree = load_tree([root])
    dropped = [(p.file, p.line) for p in tree.problems if p.dropped]
    assert sorted(dropped) == sorted((f, n) for f, n, _ in ex.bad)
    assert tree.dropped == len(ex.bad) > 15
    by_place = {(p.file, p.line): p for p in tree.problems}
    for f, n, word in ex.bad:
        p = by_place[(f, n)]
        assert word.lower() in p.message.lower(), (str(p), word)
        assert str(p).startswith(f"{f}:{n}: ")
    # An unknown key is noted, and its line still loads.
    noted = [(p.file, p.line) for p in tree.problems if not p.dropped]
    assert noted == ex.noted
    assert any(r.name == "taucg-anakey" for r in tree.rules)


def test_a_missing_root_is_a_problem_not_an_error(tmp_path: Path,
                                                  corpus: tuple[Path, Expect]) -> None:
    root, ex = corpus
    tree = load_tree([tmp_path / "nowhere", root])
    assert len(tree.rules) == ex.rules
    missing = [p for p in tree.problems if p.file == str(tmp_path / "nowhere")]
    assert len(missing) == 1 and missing[0].line == 0
    assert "no such directory" in missing[0].message


def test_unreadable_bytes_and_fifos_do_not_stop_the_load(tmp_path: Path) -> None:
    import os

    root = tmp_path / "t"
    root.mkdir()
    (root / "a.rules").write_bytes(b'{"name": "ok", "nice": 1}\n')
    (root / "b.rules").write_bytes(b'\xff\xfe{"name": "x"}\n')
    os.mkfifo(root / "c.rules")
    tree = load_tree([root])
    assert [r.name for r in tree.rules] == ["ok"]
    msgs = {Path(p.file).name: p.message for p in tree.problems}
    assert "UTF-8" in msgs["b.rules"] and "regular file" in msgs["c.rules"]


def test_types_from_another_file_fill_what_the_rule_leaves(
        corpus: tuple[Path, Expect]) -> None:
    root, _ = corpus
    tree = load_tree([root])
    rule = next(r for r in tree.rules if r.name == "taucg-anaprey")
    assert rule.type == "Heavy_CPU"
    # The rule's own nice and ioclass win; the type's ionice (6) has no
    # meaning in the rule's idle class, so it is dropped.
    assert rule.settings.nice == 12 and rule.settings.oom_score_adj == 555
    assert rule.settings.ioclass == "idle"
    assert rule.own.ionice is None and rule.settings.ionice is None
    assert rule.type_source is not None and rule.type_source.file.endswith("ours.types")
    assert rule.cpu_quota == 30.0
    assert rule.cgroup_source is not None
    assert rule.cgroup_source.file.endswith("00-cgroups.cgroups")
    # A type's cgroup reaches the rule that names the type.
    bg = next(r for r in tree.rules if r.name == "taucg-anabg")
    assert bg.cpu_quota == 30.0 and bg.settings.sched == "idle"


def test_the_later_definition_of_a_name_wins(corpus: tuple[Path, Expect]) -> None:
    root, ex = corpus
    m = index_of(root).match("taucg-dup")
    assert m is not None
    assert (m.rule.source.file, m.rule.source.line) == ex.lines["taucg-dup"]
    assert m.rule.settings.nice == 17


def test_later_roots_win(tmp_path: Path, corpus: tuple[Path, Expect]) -> None:
    root, _ = corpus
    extra = tmp_path / "local.d"
    extra.mkdir()
    where = add_rule(extra, "taucg-anagame", {"nice": 16})
    m = AnanicyIndex(load_tree([root, extra]), ANANICY_TIERS).match("taucg-anagame")
    assert m is not None and (m.rule.source.file, m.rule.source.line) == where
    assert m.tier == "background"


# -- tiers -----------------------------------------------------------------------


@pytest.mark.parametrize(("nice", "tier"), [
    (-20, "high"), (-6, "high"), (-5, "normal"), (0, "normal"), (4, "normal"),
    (5, "low"), (14, "low"), (15, "background"), (19, "background"), (None, "normal")])
def test_nice_fallback_bands(nice: int | None, tier: str) -> None:
    assert tier_by_nice(nice) == tier


def test_every_table_type_maps_by_the_table(corpus: tuple[Path, Expect]) -> None:
    root, _ = corpus
    tree = load_tree([root])
    for name in ANANICY_TIERS:
        rules = [r for r in tree.rules if r.type == name]
        assert rules, name
        for r in rules:
            # Whatever nice the rule sets, the table decides.
            assert tier_of_rule(r, ANANICY_TIERS)[0] == ANANICY_TIERS[name], r


def test_types_the_table_does_not_name_go_by_nice(corpus: tuple[Path, Expect]) -> None:
    root, _ = corpus
    index = index_of(root)
    fast, slow = index.match("taucg-anafast"), index.match("taucg-ananice")
    assert fast is not None and fast.tier == "high" and "not in" in fast.why
    assert slow is not None and slow.tier == "low" and slow.why.startswith("no type")
    for r in load_tree([root]).rules:
        if r.type == "Our_Slow":
            assert tier_of_rule(r, ANANICY_TIERS)[0] == tier_by_nice(r.settings.nice)
    assert TYPES["Our_Fast"]["nice"] < -5


def test_the_table_is_configurable(corpus: tuple[Path, Expect]) -> None:
    root, _ = corpus
    cfg = loads(f'[rule_sources]\nananicy = ["{root}"]\n'
                '[rule_sources.ananicy_tiers]\nGame = "critical"\nHeavy_CPU = "nice"\n'
                'Our_Fast = "background"\n')
    # The admin's entries lie over the default table, key by key.
    assert cfg.rule_sources.ananicy_tiers["Chat"] == "normal"
    index = load_index(cfg)
    assert index is not None
    game, fast, prey = (index.match(n) for n in ("taucg-anagame", "taucg-anafast",
                                                 "taucg-anaprey"))
    assert game is not None and game.tier == "critical"
    assert fast is not None and fast.tier == "background"
    # "nice": Heavy_CPU now goes by the rule's nice (12 -> low).
    assert prey is not None and prey.tier == "low" and 'mapped to "nice"' in prey.why


def test_bad_rule_source_keys_name_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        loads('[rule_sources]\nananicy = ["relative/dir"]\n'
              '[rule_sources.ananicy_tiers]\nGame = "hihg"\n', "a.toml")
    text = str(err.value)
    assert "a.toml:2: rule_sources.ananicy: expected an absolute path" in text
    assert "rule_sources.ananicy_tiers: Game: 'hihg' is not one of" in text
    assert "did you mean 'high'" in text


def test_no_trees_configured_means_no_index() -> None:
    assert load_index(loads("")) is None


# -- matching --------------------------------------------------------------------


def test_index_by_comm_exe_name_and_cut_comm(corpus: tuple[Path, Expect]) -> None:
    root, ex = corpus
    index = index_of(root)
    assert len(index) == ex.rules
    m = index.match("taucg-anagame")
    assert m is not None and m.key == "comm" and m.tier == "high"
    # comm renamed (prctl): the executable's name still finds the rule.
    m = index.match("worker-thread", "/opt/x/taucg-anagame")
    assert m is not None and m.key == "exe name"
    # The kernel keeps 15 characters of comm.
    m = index.match("taucg-a-very-lo", "/usr/bin/python3")
    assert m is not None and m.rule.name == "taucg-a-very-long-process-name"
    assert index.match("nothing-here", "/bin/nothing-here") is None


def test_rules_come_before_ananicy(corpus: tuple[Path, Expect]) -> None:
    root, ex = corpus
    index = index_of(root)
    rules = (Rule(tier="critical", comm="taucg-anagame"),)
    v = classify(rules, proc("taucg-anagame"), index)
    assert v.tier == "critical" and v.rule is not None and v.ananicy is None
    assert v.source == "rule 1"
    v = classify(rules, proc("taucg-anabg"), index)
    assert v.tier == "background" and v.rule is None and v.ananicy is not None
    assert v.source == "{}:{}".format(*ex.lines["taucg-anabg"])


def test_the_verdict_names_the_file_and_line(corpus: tuple[Path, Expect]) -> None:
    root, ex = corpus
    v = classify((Rule(tier="low", comm="other"),), proc("taucg-anaprey"), index_of(root))
    text = "\n".join(v.explain())
    file, line = ex.lines["taucg-anaprey"]
    assert f"ananicy {file}:{line} (taucg-anaprey) matched" in text
    assert "type Heavy_CPU -> low" in text and "tier low" in text
    assert "CPUQuota 30% of all CPUs" in text and "nice 12" in text
    assert "rule 1 skipped" in text
    v = classify((), proc("unmatched"), index_of(root))
    assert v.tier is None
    want = f"no ananicy rule names comm 'unmatched' or exe 'unmatched' ({ex.rules} rules indexed)"
    assert want in v.explain()


def test_a_15000_rule_index_answers_without_a_scan(tmp_path: Path) -> None:
    """The index is a dict: its lookups do not grow with the corpus. Counted,
    not timed: the rules looked at per match is one dict probe per key."""
    root = tmp_path / "big"
    ex = write_corpus(root, rules=15_000, per_file=200, broken=False)
    index = index_of(root)
    assert len(index) == ex.rules
    assert isinstance(index._by_name, dict)
    m = index.match("gen-14999")
    assert m is not None and (m.rule.source.file, m.rule.source.line) == ex.lines["gen-14999"]


def test_the_default_table_is_the_issues() -> None:
    assert dict(ANANICY_TIERS) == dict(MappingProxyType({
        "LowLatency_RT": "high", "Game": "high", "Player-Audio": "high",
        "Player-Video": "high", "Image-View": "normal", "Doc-View": "normal",
        "Chat": "normal", "Heavy_CPU": "low", "Service": "low", "BG_CPUIO": "background",
        "BG_CPU": "background", "Launcher": "background"}))
