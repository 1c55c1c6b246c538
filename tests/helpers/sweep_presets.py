"""Run-plan presets shared by the plan and sweep tests: a tiny one (2 methods x 2 seeds on digits)
and :func:`image_preset`, a one-epoch image plan on a given data directory."""

from __future__ import annotations

from pathlib import Path

TINY = """
description = "two methods on digits, one epoch"
seeds = [0, 1]

[base]
task = "digits"
device = "cpu"
epochs = 1

[axes.method]
adamw = { control_mode = "baseline" }
aees = { control_mode = "adaptive", lr_candidates = [0.5, 1.0, 2.0] }
"""


def image_preset(data_dir: Path, seeds: str = "[0]", more_methods: str = "") -> str:
    """A one-epoch CPU image plan on ``data_dir``: the AdamW baseline, then ``more_methods``
    (TOML lines of ``[axes.method]``), for ``seeds`` (a TOML list)."""
    return f"""
seeds = {seeds}
[base]
task = "image"
device = "cpu"
epochs = 1
data_dir = "{data_dir}"
[axes.method]
adamw = {{ control_mode = "baseline" }}
{more_methods}"""
