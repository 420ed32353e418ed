"""`taucg install` and `uninstall` into a --root directory: the real
command, the real file tree, no systemd (--root never talks to it)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from taucg.config.loading import builtin, loads
from taucg.model.tiers import service_dropin, slice_specs
from tests.support.cli import taucg

MANIFEST = "var/lib/taucg/install-manifest.json"
UNIT_DIR = "usr/local/lib/systemd/system"
WANTS = "etc/systemd/system/multi-user.target.wants"


def tree(root: Path) -> dict[str, str]:
    """Every file and link under root -> its content or link target."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = "-> " + os.readlink(p)
        elif p.is_file():
            out[rel] = p.read_text()
        else:
            out[rel + "/"] = ""
    return out


def script() -> str:
    return str(Path(os.path.abspath(sys.executable)).parent / "taucg")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    # What a machine already has: a unit of its own and an empty /usr/local/bin.
    (r / "etc/systemd/system").mkdir(parents=True)
    (r / "etc/systemd/system/sshd.service").write_text("[Service]\nExecStart=/bin/true\n")
    (r / "usr/local/bin").mkdir(parents=True)
    return r


def test_install_writes_units_with_the_running_command_and_a_manifest(root: Path) -> None:
    out = taucg("install", "--root", root, "--enable").stdout
    assert "change(s)" in out
    apply_unit = (root / UNIT_DIR / "taucg-apply.service").read_text()
    daemon_unit = (root / UNIT_DIR / "taucg.service").read_text()
    assert f"\nExecStart={script()} apply\n" in apply_unit
    assert f"\nExecStart={script()} daemon\n" in daemon_unit
    for unit in ("taucg.service", "taucg-apply.service"):
        assert os.readlink(root / WANTS / unit) == f"/usr/local/lib/systemd/system/{unit}"
    assert os.readlink(root / "usr/local/bin/taucg") == script()
    assert (root / "usr/local/share/man/man1/taucg.1").read_text().startswith(".TH TAUCG 1")
    assert (root / "usr/local/share/man/man5/taucg.toml.5").read_text().startswith(
        ".TH TAUCG.TOML 5")
    assert "_TAUCG_COMPLETE=bash_complete" in \
        (root / "usr/local/share/bash-completion/completions/taucg").read_text()
    assert "#compdef taucg" in (root / "usr/local/share/zsh/site-functions/_taucg").read_text()
    assert "complete --no-files --command taucg" in \
        (root / "usr/local/share/fish/vendor_completions.d/taucg.fish").read_text()

    manifest = json.loads((root / MANIFEST).read_text())
    assert manifest["exec_start"] == script()
    assert manifest["config"] == "/etc/taucg/taucg.toml"
    written = {"/" + k for k, v in tree(root).items() if not v.startswith("-> ")
               and not k.endswith("/")}
    # Every file but the config, the manifest and the audit log is in the manifest.
    assert set(manifest["files"]) == {p for p in written if not p.startswith(
        ("/etc/taucg/", "/var/lib/taucg/", "/var/log/", "/etc/systemd/system/sshd"))}
    assert set(manifest["links"]) == {f"/{WANTS}/taucg.service",
                                      f"/{WANTS}/taucg-apply.service", "/usr/local/bin/taucg"}
    assert "/usr/local/bin" not in manifest["dirs"]  # it was there before
    audit = (root / "var/log/tau/audit.log").read_text().splitlines()
    assert any(json.loads(line)["target"] == f"/{UNIT_DIR}/taucg.service" for line in audit)


def test_config_template_is_all_defaults_and_an_admin_file_is_kept(root: Path) -> None:
    taucg("install", "--root", root)
    template = (root / "etc/taucg/taucg.toml").read_text()
    cfg = loads(template, "taucg.toml")
    assert cfg == builtin()  # every key commented out: nothing overridden
    assert "# [resource_monitoring]" in template and "# interval_seconds = 30" in template

    admin = "[resource_monitoring]\ninterval_seconds = 5\n"
    (root / "etc/taucg/taucg.toml").write_text(admin)
    out = taucg("install", "--root", root).stdout
    assert "keep      /etc/taucg/taucg.toml" in out
    assert (root / "etc/taucg/taucg.toml").read_text() == admin


def test_install_is_idempotent_and_dry_run_shows_the_plan(root: Path) -> None:
    before = tree(root)
    plan = taucg("install", "--root", root, "--enable", "--dry-run", check=False)
    assert plan.returncode == 10, plan.stderr
    assert f"create    /{UNIT_DIR}/taucg.service" in plan.stdout
    assert tree(root) == before, "--dry-run wrote something"
    taucg("install", "--root", root, "--enable")
    after_first = tree(root)
    again = taucg("install", "--root", root, "--enable")
    assert "0 change(s)" in again.stdout
    assert {k: v for k, v in tree(root).items() if "var/log" not in k} == \
        {k: v for k, v in after_first.items() if "var/log" not in k}
    assert taucg("install", "--root", root, "--enable", "--dry-run", check=False
                 ).returncode == 0


def test_uninstall_reverses_install_and_the_tier_state(root: Path) -> None:
    before = tree(root)
    taucg("install", "--root", root, "--enable")
    # What apply, the governor and recovery would have left.
    etc = root / "etc/systemd/system"
    specs = slice_specs(builtin(), total_memory=0)
    for spec in specs:
        (etc / spec.unit).write_text(spec.unit_file())
    (etc / "db.service.d").mkdir()
    (etc / "db.service.d/50-taucg-tier.conf").write_text(service_dropin("db.service", "high"))
    (etc / "db.service.d/10-admin.conf").write_text("[Service]\nNice=1\n")
    control = root / "run/systemd/system.control/tau-low.slice.d"
    control.mkdir(parents=True)
    (control / "50-CPUWeight.conf").write_text("[Slice]\nCPUWeight=1\n")
    take_over = root / "run/systemd/system/web.service.d"
    take_over.mkdir(parents=True)
    (take_over / "50-taucg-take-over.conf").write_text("[Service]\nRestart=no\n")
    # An admin's own slice of a tier name, without taucg's header, is not ours.
    (etc / "tau-extra.slice").write_text("[Slice]\nCPUWeight=5\n")

    plan = taucg("uninstall", "--root", root, "--dry-run", check=False)
    assert plan.returncode == 10
    assert "remove    /etc/systemd/system/tau-critical.slice  (tier state)" in plan.stdout

    out = taucg("uninstall", "--root", root).stdout
    assert "keep      /etc/taucg/taucg.toml" in out
    # Kept: the config and the history (the audit log, which holds /var).
    left = {k: v for k, v in tree(root).items() if not k.startswith("var/log/")}
    expected = {**before, "etc/taucg/": "", "var/": "",
                "etc/taucg/taucg.toml": left.get("etc/taucg/taucg.toml", "missing"),
                "etc/systemd/system/db.service.d/": "",
                "etc/systemd/system/db.service.d/10-admin.conf": "[Service]\nNice=1\n",
                "etc/systemd/system/tau-extra.slice": "[Slice]\nCPUWeight=5\n",
                "run/": "", "run/systemd/": "", "run/systemd/system/": "",
                "run/systemd/system.control/": ""}
    assert left == expected
    again = taucg("uninstall", "--root", root)
    assert "nothing to remove" in again.stdout


def test_purge_removes_the_config_and_history(root: Path) -> None:
    taucg("install", "--root", root)
    state = root / "var/lib/taucg"
    (state / "history.db").write_text("x")
    (state / "samples.db").write_text("x")
    kept = taucg("uninstall", "--root", root, "--dry-run", check=False).stdout
    assert "history.db" not in kept
    taucg("uninstall", "--root", root, "--purge")
    assert not (root / "etc/taucg/taucg.toml").exists()
    assert not (state / "history.db").exists() and not (state / "samples.db").exists()
    assert not (root / "var/log/tau/audit.log").exists()


def test_bad_input_is_named_with_the_fix(root: Path, tmp_path: Path) -> None:
    r = taucg("install", "--root", root, "--now", check=False)
    assert r.returncode == 2 and "give --enable too" in r.stderr
    r = taucg("install", "--root", root, "--enable", "--now", check=False)
    assert r.returncode == 2 and "not under --root" in r.stderr
    r = taucg("install", "--root", tmp_path / "nowhere", check=False)
    assert r.returncode == 2 and "is not a directory" in r.stderr
    (root / "var/lib/taucg").mkdir(parents=True)
    (root / MANIFEST).write_text("{not json")
    r = taucg("uninstall", "--root", root, check=False)
    assert r.returncode == 1
    assert "is not an install manifest" in r.stderr and "Traceback" not in r.stderr


def test_print_units_names_this_installation() -> None:
    out = taucg("install", "--print-units").stdout
    assert f"ExecStart={script()} daemon" in out
    assert "# taucg-apply.service" in out and "# taucg.service" in out
