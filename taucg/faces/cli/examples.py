"""The examples at the end of every command's --help (click `epilog=`),
as systemctl(1) has them, kept in one place so they are reviewed together.

Each example is one command line and what it does. Every line must be one
the CLI accepts: tests/unit/test_cli_examples.py parses each of them with
click's parser, so a renamed option breaks the test, not the manual. A
leading `sudo` marks what needs root; a `| ...` tail is another program's.
"""

from __future__ import annotations

HEADING = "Examples:"
COMMAND_INDENT = "  "
MEANING_INDENT = "      "


def _examples(*pairs: tuple[str, str]) -> str:
    # "\b" keeps click from rewrapping the block: one command per line.
    lines = [HEADING, "", "\b"]
    for command, meaning in pairs:
        lines += [COMMAND_INDENT + command, MEANING_INDENT + meaning]
    return "\n".join(lines)


# Command path (as typed after the program name) -> its epilog.
EPILOGS: dict[str, str] = {
    "taucg": _examples(
        ("taucg config check /etc/taucg/taucg.toml", "validate the config file"),
        ("sudo taucg apply --dry-run", "show what apply would change in the tier slices"),
        ("taucg status", "each tier live: members, use, limits and drift"),
    ),
    "tau-monitor": _examples(
        ("sudo tau-monitor --foreground", "run the daemon in the foreground"),
        ("sudo tau-monitor --daemon", "fork into the background and write the pidfile"),
        ("tau-monitor --check", "one health check: exit 0 if healthy, 1 below the threshold"),
    ),
    # -- config
    "config": _examples(
        ("taucg config", "every section, with the file each value came from"),
        ("taucg config --tiers --recovery", "only the tiers and crash recovery"),
        ("taucg config --config ./draft.toml --format json",
         "a draft file's effective config, as JSON"),
    ),
    "config check": _examples(
        ("taucg config check /etc/taucg/taucg.toml", "exit 0 if valid, 2 with every problem"),
        ("taucg config check ./draft.toml", "a draft, before it replaces the installed file"),
    ),
    # -- tiers
    "apply": _examples(
        ("sudo taucg apply --dry-run",
         "print the plan: exit 0 if nothing would change, 10 if something would"),
        ("sudo taucg apply", "write the slices and drop-ins, set them live, verify"),
        ("sudo taucg apply --restart-moved",
         "also restart running services whose tier changed"),
    ),
    # -- monitoring
    "status": _examples(
        ("taucg status", "the five tiers: members, CPU, memory, IO, pressure, drift"),
        ("taucg status --interval 2", "rates over two seconds instead of half a second"),
        ("taucg status --format json", "the same for a script"),
    ),
    "resources": _examples(
        ("taucg resources", "every section: CPU, memory, disk, network, temperature, PSI"),
        ("taucg resources --memory --pressure", "memory, swap and pressure stall only"),
        ("taucg resources --cpu --watch 2", "the CPU section every 2 seconds until Ctrl-C"),
    ),
    "health": _examples(
        ("taucg health", "the score, each check and the recommendations"),
        ("taucg health --detailed", "also what each check looked at"),
        ("taucg health --format json", "for a monitoring probe (exit 1 below the threshold)"),
    ),
    # -- processes
    "processes": _examples(
        ("taucg processes --tier background", "the processes in the background tier"),
        ("taucg processes --critical --tree", "the critical units' processes as a tree"),
        ("taucg processes --why 1234", "which [[rules]] entry matches PID 1234, or why none"),
    ),
    "classify": _examples(
        ("taucg classify --dry-run", "what the [[rules]] would move, moving nothing"),
        ("sudo taucg classify", "place every matching process once"),
        ("sudo taucg classify --follow", "then keep placing new processes as they exec"),
    ),
    "run": _examples(
        ("sudo taucg run --tier background -- make -j8", "a build in the background tier"),
        ("sudo taucg run --tier low --memory 512M --cpu 50% -- ./batch-job",
         "with its own MemoryMax and CPUQuota"),
        ("sudo taucg run --tier low --isolate net,pid -- ./untrusted-tool",
         "loopback-only network and its own PID namespace"),
    ),
    # -- recovery
    "recovery": _examples(
        ("taucg recovery", "critical units, their policy and who restarts them"),
        ("taucg recovery --format json", "the same with the strategy chain, as JSON"),
        ("taucg recovery --history --unit nginx.service --detail",
         "the older spelling of 'taucg recovery history --unit nginx.service --detail'"),
    ),
    "recovery history": _examples(
        ("taucg recovery history", "failures per unit, MTBF and the latest events"),
        ("taucg recovery history --format json", "every unit and event, as JSON"),
        ("taucg recovery history --unit nginx --detail",
         "one unit ('.service' is implied), with the minutes before its newest crash"),
    ),
    "recovery session": _examples(
        ("taucg recovery session", "the last snapshot: units, states, state blobs"),
        ("taucg recovery session --format json", "the snapshot as JSON"),
    ),
    "recovery watch": _examples(
        ("sudo taucg recovery watch", "watch and recover in the foreground (Ctrl-C stops)"),
        ("sudo taucg recovery watch --config ./test.toml", "with a test config's policy"),
    ),
    "recovery test": _examples(
        ("taucg recovery test nginx --dry-run",
         "what recovery does at its next failure, and the escalation after it"),
        ("sudo taucg recovery test nginx --crash",
         "kill its main process with SIGSEGV (after asking) and follow the recovery"),
        ("sudo taucg recovery test nginx --crash --yes --signal SIGABRT --format json",
         "the same without asking, with SIGABRT, each step as JSON"),
    ),
    "recovery save-state": _examples(
        ("sudo taucg recovery save-state postgresql.service /var/backups/pg-state.tar",
         "hand this file back to postgresql.service after a recovery"),
        ("taucg recovery save-state myapp ./myapp-state.json",
         "a unit without suffix is a service"),
    ),
    "recovery leave-safe-mode": _examples(
        ("sudo taucg recovery leave-safe-mode", "thaw the low and background tiers"),
        ("sudo taucg recovery leave-safe-mode --config ./test.toml",
         "audited to the log that config names"),
    ),
    # -- install
    "install": _examples(
        ("sudo taucg install --enable --now", "install, enable and start both units"),
        ("taucg install --dry-run", "show every file install would write"),
        ("taucg install --print-units", "the units with this installation's command"),
    ),
    "uninstall": _examples(
        ("sudo taucg uninstall", "remove what install wrote; keep config and history"),
        ("sudo taucg uninstall --purge", "also remove the config, history and logs"),
        ("taucg uninstall --dry-run", "show what would be removed"),
    ),
    "man": _examples(
        ("taucg man | man -l -", "read taucg(1) without installing it"),
        ("taucg man --section 5", "taucg.toml(5), the config reference, as roff"),
    ),
    # -- governor
    "governor": _examples(
        ("taucg governor", "pressure against targets, governed tiers, the last 20 actions"),
        ("taucg governor -n 100", "the last 100 actions"),
        ("taucg governor --format json", "everything, as JSON"),
    ),
    "top": _examples(
        ("taucg top", "the tiers live: units, processes, events; ? for the keys"),
        ("taucg top --tier low --sort memory", "only tau-low.slice, biggest units first"),
        ("taucg top --once --format json", "one frame as JSON (taucg.top/1), then exit"),
    ),
    # -- daemon and what asks it
    "daemon": _examples(
        ("sudo taucg daemon", "run in the foreground, logging to stderr (SIGTERM stops)"),
        ("sudo taucg daemon --detach", "fork into the background and write the pidfile"),
        ("sudo taucg daemon --config ./test.toml", "with another config"),
    ),
    "logs": _examples(
        ("taucg logs", "sizes, records per level and rotated files (--stats)"),
        ("taucg logs --recent --count 50 --level warning",
         "the last 50 warnings and errors of the main log"),
        ("taucg logs --recent --log audit", "the latest audit records"),
    ),
    "alerts": _examples(
        ("taucg alerts", "recent threshold alerts and the active ones"),
        ("taucg alerts --count 10 --format json", "the last ten, as JSON"),
    ),
    "history": _examples(
        ("taucg history", "every metric: points, last value, trend per minute"),
        ("taucg history --metric memory_percent", "one metric's points"),
        ("taucg history --metric tier.background.cpu_percent --format json",
         "one tier's CPU series, as JSON"),
    ),
}
