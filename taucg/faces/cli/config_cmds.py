"""`taucg config`: the effective config, where each value came from, and `config check`."""

from __future__ import annotations

from typing import Any

import click

from taucg.config.loading import BUILTIN, flatten, source_of, to_dict
from taucg.config.loading import load as load_config
from taucg.config.schema import Config
from taucg.faces.cli.common import cli, config_option, format_option
from taucg.faces.cli.completion import complete_config_file
from taucg.faces.cli.examples import EPILOGS
from taucg.faces.render import Output, emit, emit_json

# ---------------------------------------------------------------- config ---

SECTION_FLAGS: dict[str, tuple[str, ...]] = {
    "monitoring": ("resource_monitoring", "health_checking", "logging", "sampler", "daemon"),
    "resources": ("process_management", "rules", "rule_sources"),
    "recovery": ("crash_recovery", "recovery"),
    "tiers": ("tiers",),
}


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_show(v) for v in value) if value else "[]"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_show(v)}" for k, v in value.items())
    return str(value)


@cli.group("config", invoke_without_command=True, epilog=EPILOGS["config"])
@click.option("--monitoring", is_flag=True, help="resource monitoring, health checks, logging")
@click.option("--resources", is_flag=True, help="process management and placement rules")
@click.option("--recovery", is_flag=True, help="crash recovery")
@click.option("--tiers", is_flag=True, help="the five tiers")
@format_option
@config_option
@click.pass_context
def config_cmd(ctx: click.Context, monitoring: bool, resources: bool, recovery: bool,
               tiers: bool, fmt: Output, config_path: str | None) -> None:
    """The effective config and each value's source.

    Each key is shown with the file that set it, or the built-in default."""
    if ctx.invoked_subcommand is not None:
        return
    cfg = load_config(config_path)
    chosen = [name for name, on in (("monitoring", monitoring), ("resources", resources),
                                    ("recovery", recovery), ("tiers", tiers)) if on]
    sections = [s for name in (chosen or SECTION_FLAGS) for s in SECTION_FLAGS[name]]
    data = to_dict(cfg)
    shown = {s: data[s] for s in sections if s in data}
    rows = [[key, _show(value), source_of(cfg, key)] for key, value in flatten(shown)]
    emit(fmt, ["KEY", "VALUE", "SOURCE"], rows,
         {"file": cfg.file, "config": shown,
          "sources": {k: source_of(cfg, k) for k, _ in flatten(shown)}},
         title=f"config: {cfg.file or BUILTIN}", schema="config")


@config_cmd.command("check", epilog=EPILOGS["config check"])
@click.argument("file", type=click.Path(dir_okay=False), shell_complete=complete_config_file)
@format_option
def config_check(file: str, fmt: Output) -> None:
    """Validate a config file; exit 2 on problems.

    Every problem in FILE is printed as FILE:LINE: key: why, one per line
    (-o json: a taucg.error/1 document listing them). The ananicy trees of
    [rule_sources] are read too: each line they skip is listed as
    FILE:LINE: why, and does not make FILE invalid (the daemon loads the rest)."""
    from taucg.model.ananicy import load_index

    cfg: Config = load_config(file)
    overridden = sorted(key for key, src in cfg.sources.items() if src == file)
    index = load_index(cfg)
    ananicy: dict[str, Any] | None = None
    if index is not None:
        t = index.tree
        ananicy = {"roots": list(t.roots), "files": t.files, "rules": len(index),
                   "types": len(t.types), "cgroups": len(t.cgroups),
                   "skipped_lines": t.dropped,
                   "problems": [{"file": p.file, "line": p.line, "message": p.message,
                                 "skipped": p.dropped} for p in t.problems]}
    if fmt.resolved == "json":
        doc: dict[str, Any] = {"file": file, "valid": True, "keys_set": len(overridden),
                               "keys": overridden}
        if ananicy is not None:
            doc["ananicy"] = ananicy
        emit_json("config-check", doc)
        return
    click.echo(f"{file}: OK ({len(overridden)} keys set over the built-in default)")
    if index is not None:
        click.echo(index.summary())
        for p in index.tree.problems:
            click.echo(f"{p}" + ("" if p.dropped else " (line loaded)"))
