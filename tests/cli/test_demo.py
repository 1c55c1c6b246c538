"""``aees demo``: plan + sweep + report the digits study, re-runnable (one seed, 1 epoch here)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
import torch

from aees import cli
from aees.cli import demo
from aees.results import load_run_result

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")


@pytest.mark.slow
def test_demo_runs_reports_and_reuses_finished_runs(tmp_path, capsys):
    results, report = tmp_path / "runs", tmp_path / "reports"
    argv = ["demo", "--epochs", "1", "--seeds", "0", "--results-dir", str(results)]
    argv += ["--report-dir", str(report)]
    saved_env = {k: os.environ.get(k) for k in demo.DEMO_KERNELS}
    assert cli.main(argv) == 0
    out = capsys.readouterr()
    files = sorted(p for p in results.rglob("*.json") if p.name != "manifest.json")
    assert len(files) == 7  # 7 methods x 1 seed
    methods = {load_run_result(p).variant.split("-")[0] for p in files}
    assert methods == {"baseline", "fixed", "aees", "random"}
    assert "| Optimizer | Method |" in out.out  # the main table is printed
    # every run used the pinned CPU kernels, recorded in its provenance (docs/protocols.md §15.1)
    assert "aees demo: CPU kernels pinned" in out.out
    for path in files:
        env = load_run_result(path).provenance["environment"]
        assert {k: env.get(k) for k in demo.DEMO_KERNELS} == demo.DEMO_KERNELS
    assert all(os.environ.get(k) == v for k, v in saved_env.items())  # restored afterwards
    index = report / "index.html"
    assert index.is_file() and "<img" in index.read_text(encoding="utf-8")
    assert (report / "tables" / "cifar_noisy").is_dir()
    assert "skipped" not in out.err.replace("skipped (already complete)", "")

    stamps = {p: p.stat().st_mtime_ns for p in files}
    assert cli.main(argv) == 0
    again = capsys.readouterr()
    assert "0 completed, 7 skipped (already complete)" in again.err + again.out
    assert {p: p.stat().st_mtime_ns for p in files} == stamps


def test_demo_bad_flags_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["demo", "--workers", "0"])
    assert info.value.code == 2
    assert "--workers" in capsys.readouterr().err


# Two machines as the libraries see them: this one, and one whose torch, MKL and oneDNN pick
# AVX2 kernels (the README's reference machine was an AVX2 AMD EPYC).
THIS_MACHINE: dict[str, str] = {}
AVX2_MACHINE = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


def _digits_run(tmp_path, name: str, env: dict[str, str]) -> tuple[list, list]:
    """One epoch of the demo's AEES-LR run (seed 0) in a fresh process: losses and accuracies."""
    out = tmp_path / f"{name}.json"
    cmd = [
        sys.executable, "-m", "aees.cli", "train", "digits", "--epochs", "1", "--lr", "1e-3",
        "--label-noise-type", "symmetric", "--label-noise-rate", "0.4", "--control-mode",
        "adaptive", "--lr-candidates", "0.5,1,2", "--noise-candidates", "0", "--seed", "0",
        "--device", "cpu", "--quiet", "--output", str(out),
    ]  # fmt: skip
    base = {k: v for k, v in os.environ.items() if k not in {*demo.DEMO_KERNELS, *AVX2_MACHINE}}
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**base, **env}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = load_run_result(out)
    return result.train_losses, result.val_accuracies


@pytest.mark.slow
@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="x86-64 kernel levels"
)
def test_demo_kernel_settings_give_the_same_numbers_on_both_kernel_levels(tmp_path):
    """The demo's settings (demo.DEMO_KERNELS) make a run bit-identical whether the CPU's
    libraries would pick AVX-512 or AVX2 kernels; without them, the two differ (on a host
    whose torch picks AVX-512, where both levels can run)."""
    pinned = [
        _digits_run(tmp_path, name, {**machine, **demo.DEMO_KERNELS})
        for name, machine in (("pinned_this", THIS_MACHINE), ("pinned_avx2", AVX2_MACHINE))
    ]
    assert pinned[0] == pinned[1]
    if torch.backends.cpu.get_cpu_capability() == "AVX512":
        single = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        free = [
            _digits_run(tmp_path, name, {**machine, **single})
            for name, machine in (("free_this", THIS_MACHINE), ("free_avx2", AVX2_MACHINE))
        ]
        assert free[0] != free[1]  # the kernel level alone changes the numbers
