"""The systemd units taucg ships (units/), generated from the built-in config
so they cannot drift from what `taucg apply` writes."""

from __future__ import annotations

from taucg.config import builtin
from taucg.tiers import slice_specs

APPLY_SERVICE = """\
# Applies the taucg tier slices at boot, before the services that use them.
[Unit]
Description=Apply the taucg resource tiers
Documentation=man:systemd.resource-control(5)
After=dbus.service local-fs.target
Wants=dbus.service
Before=multi-user.target graphical.target display-manager.service
ConditionControlGroupController=v2

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=taucg apply
# A config error exits 2: the tiers keep their last applied state, and the
# error is in the journal ('journalctl -u taucg-apply').

[Install]
WantedBy=multi-user.target
"""


def generate() -> dict[str, str]:
    """File name -> text. Sizes in the built-in tiers are bytes or
    percentages, so the output does not depend on this machine."""
    files = {spec.unit: spec.unit_file() for spec in slice_specs(builtin(), total_memory=0)}
    files["taucg-apply.service"] = APPLY_SERVICE
    return files
