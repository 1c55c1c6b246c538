"""Sweep throughput with K runs per GPU: short cifar100 runs through ``aees sweep`` itself.

For each K in ``--runs-per-gpu`` (default 1,2,4): a plan of ``--waves`` x K (default 2K) cifar100
runs (ResNet-18, batch 128, ``--epochs`` 2) on a synthetic data set in the real on-disk format
(the test suite's fixture writer; 50,000 / 10,000 images on CUDA), run with
``run_local(gpus=[--gpu], runs_per_gpu=K, workers=K)`` -- the same code as
``aees sweep --gpus G --runs-per-gpu K``. Reported per K:

* ``wall runs/h``: runs / sweep wall time (includes each run's start-up: interpreter, CUDA
  context, data loading -- what short runs pay);
* ``steady epochs/h``: K x 3600 / the mean steady-state epoch time of the runs (epochs after the
  first, while K shared the GPU), and the projected 200-epoch runs per hour (epochs/h / 200):
  the long-run rate of a thesis grid;
* both as a ratio to K = 1 (target on an H100/H200: >= 2x at K = 4).

GPU model, torch version and whether CUDA MPS was running are printed. ``--train-flags`` adds
``aees train`` flags to every run (e.g. ``"--precision bf16 --channels-last"``).

    python bench/sweep_throughput.py                       # CUDA: full shape
    python bench/sweep_throughput.py --quick --device cpu  # smoke test: tiny shape, K = 1,2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from aees.results import atomic_write_text, load_run_result
from aees.sweep.gpus import mps_pipe_directory
from aees.sweep.local import run_local
from aees.sweep.manifest import load_manifest, write_manifest
from aees.sweep.plan import build_plan

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO_AT_4 = 2.0


def _preset(data_dir: Path, *, runs: int, epochs: int, batch: int, device: str, extra: str) -> str:
    lines = [
        'description = "sweep throughput: short cifar100 runs"',
        f"seeds = {list(range(runs))}",
        "",
        "[base]",
        'task = "cifar100"',
        f"data_dir = {json.dumps(str(data_dir))}",
        f'device = "{device}"',
        f"epochs = {epochs}",
        f"batch_size = {batch}",
    ]
    tokens = shlex.split(extra)
    i = 0
    while i < len(tokens):  # --flag [value] pairs into TOML keys
        key = tokens[i].lstrip("-").replace("-", "_")
        if i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            lines.append(f"{key} = {json.dumps(tokens[i + 1])}")
            i += 2
        else:
            lines.append(f"{key} = true")
            i += 1
    lines += ["", "[axes.method]", 'baseline = { control_mode = "baseline" }', ""]
    return "\n".join(lines)


def _steady(times: list[float]) -> float:
    return statistics.fmean(times[1:]) if len(times) > 1 else times[0]


def measure(
    k: int, root: Path, data_dir: Path, *, runs: int, epochs: int, batch: int, device: str,
    gpu: int, extra: str,
) -> dict[str, Any]:  # fmt: skip
    """One sweep of ``runs`` runs at K = ``k``: wall time, runs/h, steady epochs/h."""
    preset = root / f"k{k}.toml"
    preset.write_text(
        _preset(data_dir, runs=runs, epochs=epochs, batch=batch, device=device, extra=extra)
    )
    manifest = write_manifest(build_plan(preset, output_root=root / f"k{k}"), root / f"k{k}.json")
    t0 = time.perf_counter()
    summary = run_local(manifest, gpus=[gpu], runs_per_gpu=k, workers=k, progress=False)
    wall = time.perf_counter() - t0
    loaded = load_manifest(manifest)
    steady = []
    for run in loaded.runs:
        if run.status == "completed":
            steady.append(
                _steady(load_run_result(loaded.output_path(run)).epoch_wall_clock_seconds)
            )
    failed = [r.run_id for r in loaded.runs if r.status != "completed"]
    mean_epoch = statistics.fmean(steady) if steady else float("nan")
    epochs_per_hour = k * 3600 / mean_epoch if steady else float("nan")
    return {
        "runs_per_gpu": k,
        "runs": runs,
        "failed": failed,
        "exit_code": summary.exit_code,
        "wall_seconds": wall,
        "wall_runs_per_hour": len(steady) * 3600 / wall,
        "steady_epoch_seconds": steady,
        "steady_epochs_per_hour": epochs_per_hour,
        "projected_200_epoch_runs_per_hour": epochs_per_hour / 200,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cuda or cpu (the runs' --device)")
    p.add_argument("--gpu", type=int, default=0, help="the GPU index the runs share (default 0)")
    p.add_argument("--runs-per-gpu", default=None, help="K values (default 1,2,4; quick 1,2)")
    p.add_argument("--waves", type=int, default=2, help="runs per K = waves x K (default 2)")
    p.add_argument("--epochs", type=int, default=2, help="per run, >= 2 (default 2)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--n-train", type=int, default=None, help="CUDA 50000, CPU 512, quick 64")
    p.add_argument("--n-test", type=int, default=None, help="CUDA 10000, CPU 128, quick 32")
    p.add_argument("--train-flags", default="", help="extra aees train flags for every run")
    p.add_argument("--quick", action="store_true", help="tiny shape: checks the script runs")
    p.add_argument("--out", default=None, help="JSON (default bench/results/sweep-<dev>.json)")
    args = p.parse_args(argv)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = "cuda" if cuda else "cpu"
    ks = [int(x) for x in (args.runs_per_gpu or ("1,2" if args.quick else "1,2,4")).split(",")]
    n_train = args.n_train or (64 if args.quick else 50_000 if cuda else 512)
    n_test = args.n_test or (32 if args.quick else 10_000 if cuda else 128)
    batch = 16 if args.quick and args.batch_size == 128 else args.batch_size
    if args.epochs < 2:
        p.error("--epochs must be >= 2 (the first epoch is warm-up)")
    name = torch.cuda.get_device_name(args.gpu) if cuda else platform.processor()
    mps = mps_pipe_directory()
    print(f"device: {device} ({name or platform.machine()}), torch {torch.__version__}")
    print(f"CUDA MPS: {'on (' + mps + ')' if mps else 'off'}")
    print(f"shape: {n_train} train / {n_test} test, batch {batch}, {args.epochs} epochs per run")
    sys.path.insert(0, str(REPO / "tests" / "helpers"))
    from cifar_fixture import write_cifar100

    out = Path(args.out or f"bench/results/sweep-{device}{'-quick' if args.quick else ''}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "device": device,
        "device_name": name,
        "torch": torch.__version__,
        "mps": mps,
        "n_train": n_train,
        "n_test": n_test,
        "batch_size": batch,
        "epochs": args.epochs,
        "train_flags": args.train_flags,
        "results": [],
        "target_ratio_at_4": TARGET_RATIO_AT_4,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_cifar100(root / "data", n_train, n_test, seed=0)
        for k in ks:
            row = measure(
                k, root, root / "data", runs=args.waves * k, epochs=args.epochs,
                batch=batch, device=device, gpu=args.gpu, extra=args.train_flags,
            )  # fmt: skip
            report["results"].append(row)
            atomic_write_text(out, json.dumps(report, indent=2) + "\n")
            print(f"K={k}: {row['wall_seconds']:.1f} s, failed: {row['failed'] or 'none'}")
    base = report["results"][0]
    print(f"\n{'K':>2} {'wall runs/h':>12} {'steady ep/h':>12} {'200-ep runs/h':>14} {'vs K=1':>7}")
    for row in report["results"]:
        ratio = row["steady_epochs_per_hour"] / base["steady_epochs_per_hour"]
        row["steady_ratio_vs_first"] = ratio
        row["wall_ratio_vs_first"] = row["wall_runs_per_hour"] / base["wall_runs_per_hour"]
        print(
            f"{row['runs_per_gpu']:>2} {row['wall_runs_per_hour']:>12.1f} "
            f"{row['steady_epochs_per_hour']:>12.1f} "
            f"{row['projected_200_epoch_runs_per_hour']:>14.2f} {ratio:>7.2f}"
        )
    print(f"target (GPU): K=4 >= {TARGET_RATIO_AT_4}x K=1 (steady)")
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if all(not r["failed"] for r in report["results"]) else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
