"""The pure parts of install and the man pages: unit text, enable links,
roff escaping, the config page's types and help."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from taucg.actors.install import SYSTEM_UNIT_DIR, enable_links, wanted_by
from taucg.config.loading import builtin_text
from taucg.config.schema import Check
from taucg.faces.config_manpage import default_comments, describe
from taucg.faces.roff import escape
from taucg.faces.units import SHIPPED_EXEC, exec_command, repo_units, service_units


def test_service_units_carry_the_absolute_command() -> None:
    units = service_units(exec_command("/opt/taucg venv/bin/taucg"))
    assert "\nExecStart='/opt/taucg venv/bin/taucg' daemon\n" in units["taucg.service"]
    assert "\nExecStart='/opt/taucg venv/bin/taucg' apply\n" in units["taucg-apply.service"]
    assert "@EXEC_START@" not in "".join(units.values())
    with pytest.raises(ValueError, match="absolute path"):
        service_units("taucg")
    shipped = repo_units()
    assert f"ExecStart={SHIPPED_EXEC} daemon" in shipped["taucg.service"]
    assert {"tau.slice", "tau-critical.slice", "taucg.service"} <= set(shipped)


def test_enable_links_follow_wanted_by() -> None:
    text = "[Unit]\nWantedBy=not-this.target\n[Install]\nWantedBy=a.target b.target\n"
    assert wanted_by(text) == ["a.target", "b.target"]
    links = enable_links({"x.service": text}, SYSTEM_UNIT_DIR)
    assert [(str(lk.path), lk.target) for lk in links] == [
        ("/etc/systemd/system/a.target.wants/x.service",
         "/usr/local/lib/systemd/system/x.service"),
        ("/etc/systemd/system/b.target.wants/x.service",
         "/usr/local/lib/systemd/system/x.service")]
    assert isinstance(links[0].path, PurePosixPath)


def test_roff_escape_keeps_text_from_being_requests() -> None:
    assert escape(".hidden\n'quote\nplain") == "\\&.hidden\n\\&'quote\nplain"
    assert escape("a\\b --x") == "a\\eb \\-\\-x"
    assert escape("30 °C") == "30 \\[u00B0]C"


def test_config_page_types_and_comments() -> None:
    assert describe(Check("int", 1, 10)) == "integer, 1 to 10"
    assert describe(Check("choice", choices=("a", "b"))) == "one of: a, b"
    keys, sections = default_comments(builtin_text())
    assert keys["crash_recovery.state_directory"].startswith("Our addition")
    assert "governor" in sections and "pressure" in sections["governor"]
    # The file's own heading (before a blank line) describes no section.
    assert "resource_monitoring" not in sections
