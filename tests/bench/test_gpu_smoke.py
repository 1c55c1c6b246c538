"""The CPU dry run of ``bench/gpu_smoke.py`` (bench/README.md): every path a GPU user runs, on
the CPU with tiny shapes, so that the script cannot rot between GPU loans."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "gpu_smoke.py"


def _names(*argv: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--list", *argv], capture_output=True, text=True, check=True
    ).stdout
    return [line.split()[0] for line in out.splitlines()]


@pytest.mark.slow  # a subprocess (issue 20: subprocess tests are not in the fast loop)
def test_the_script_lists_every_path_and_refuses_an_unknown_one():
    names = _names()
    for expected in ("cifar100-resume", "text-bert", "hf-trainer-fp16", "torchrun-1"):
        assert expected in names
    assert {"peer-AdamWScheduleFree", "peer-Prodigy", "peer-DAdaptAdam"} <= set(names)
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--only", "no-such-path"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "no-such-path" in proc.stderr


@pytest.mark.slow
def test_cpu_dry_run_passes_every_user_path(tmp_path):
    """Each path PASSes (nothing is SKIPped: the dev install has every package); one line each."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--only", "paths",
         "--work", str(tmp_path / "work"), "--out", str(out), "--timeout", "400"],
        capture_output=True, text=True, timeout=1800,
    )  # fmt: skip
    summary = json.loads((out / "gpu_smoke.json").read_text())
    verdicts = {row["path"]: row["verdict"] for row in summary["paths"]}
    failed = {p: (out / f"{p}.log").read_text()[-1500:] for p, v in verdicts.items() if v != "PASS"}
    assert not failed, failed
    assert set(verdicts) == set(_names()) - {"gpu-checks", "bench-epoch", "bench-overhead"}
    assert proc.returncode == 0, proc.stdout[-2000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("PASS")]
    assert len(lines) == len(verdicts)
