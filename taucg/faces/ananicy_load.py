"""The daemon's reading of [rule_sources] ananicy, at start and on reload:
the tree is read off the event loop and what was skipped is logged with
FILE:LINE, without ever stopping the daemon."""

from __future__ import annotations

import asyncio
import logging

from taucg.config.schema import Config
from taucg.model.ananicy import AnanicyIndex, load_index

# A broken tree may hold thousands of bad lines: the log shows the first
# ones, and `taucg config check` lists them all.
MAX_LOGGED = 50


async def load_logged(cfg: Config, log: logging.Logger) -> AnanicyIndex | None:
    index = await asyncio.to_thread(load_index, cfg)
    if index is None:
        return None
    tree = index.tree
    log.info("ananicy: %s", index.summary(),
             extra={"ananicy": {"rules": len(index), "types": len(tree.types),
                                "cgroups": len(tree.cgroups), "files": tree.files,
                                "skipped_lines": tree.dropped, "roots": list(tree.roots)}})
    for p in tree.problems[:MAX_LOGGED]:
        (log.warning if p.dropped else log.info)(
            "ananicy: %s: %s", p, "line skipped" if p.dropped else "loaded",
            extra={"problem": str(p)})
    if len(tree.problems) > MAX_LOGGED:
        log.warning("ananicy: %d more problems not logged; `taucg config check FILE` "
                    "lists them all", len(tree.problems) - MAX_LOGGED)
    return index
