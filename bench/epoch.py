"""Steady-state CIFAR-100 epoch time of the engine against the compute floor, in one process.

* **engine**: ``aees.runner.engine.run`` on the ``cifar100`` task with synthetic in-memory
  data of CIFAR shape (uint8 50,000 x 3 x 32 x 32 train, 10,000 test; random labels): the real
  loop with on-device crop + flip, normalisation, per-epoch evaluation on the test set, FLOP
  accounting, status lines -- everything a run does. Steady state = mean of the epoch times
  after the first (``epoch_wall_clock_seconds[1:]``).
* **floor**: the same number of forward/backward/optimizer steps on pre-made, already normalised
  device batches (plain AdamW, same model, same cuDNN settings), plus the same number of
  evaluation forwards. Nothing but the compute the epoch needs.

Variants: ``baseline`` (plain AdamW) and ``aees-dual`` (AEES, LR x0.5/1/2 and noise 0/0.005,
episode 200). GPU clocks drift by several per cent over a minute, so the floor is timed right
before and right after every engine run (floor, baseline, floor, aees-dual, floor, ... for
``--repeats`` rounds); each engine run is divided by the mean of its two neighbouring floors and
the reported ratio is the median over rounds. Target on an H100/H200: engine epoch <= 1.05 x floor.

    python bench/epoch.py                  # auto device; CUDA: full CIFAR shape, 3 epochs
                                           # CPU: 1,024 / 256 images (a full epoch takes hours)
    python bench/epoch.py --quick          # smoke test (tiny shapes)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from aees.results import atomic_write_text
from aees.runner.config import RunConfig
from aees.runner.engine import resolve_device, run, set_seed
from aees.runner.tasks.cifar100 import Cifar100Task

VARIANTS = {
    "baseline": {"control_mode": "baseline"},
    "aees-dual": {
        "control_mode": "adaptive",
        "lr_candidates": (0.5, 1.0, 2.0),
        "noise_candidates": (0.0, 0.005),
    },
}
TARGET_RATIO = 1.05


class SyntheticCifar100(Cifar100Task):
    """The cifar100 task with random uint8 images of CIFAR shape instead of the pickles."""

    def __init__(self, n_train: int, n_test: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.data = {
            "train_images": torch.randint(0, 256, (n_train, 3, 32, 32), generator=g).to(
                torch.uint8
            ),
            "train_labels": torch.randint(0, 100, (n_train,), generator=g),
            "test_images": torch.randint(0, 256, (n_test, 3, 32, 32), generator=g).to(torch.uint8),
            "test_labels": torch.randint(0, 100, (n_test,), generator=g),
            "root": Path("<synthetic>"),
        }

    def load_data(self, data_dir: str) -> dict[str, Any]:
        return self.data


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def floor_epoch_seconds(
    *, n_train: int, n_test: int, batch: int, epochs: int, device: torch.device
) -> list[float]:
    """Per-epoch seconds of the bare compute: fwd/bwd/AdamW per batch, then eval forwards."""
    from aees.runner.cifar import cifar_resnet18

    set_seed(0)
    model = cifar_resnet18().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    g = torch.Generator(device=device).manual_seed(0)
    sizes = [batch] * (n_train // batch) + ([n_train % batch] if n_train % batch else [])
    eval_sizes = [batch] * (n_test // batch) + ([n_test % batch] if n_test % batch else [])
    pool = 8  # distinct pre-made batches, cycled
    xs = [torch.randn(batch, 3, 32, 32, generator=g, device=device) for _ in range(pool)]
    ys = [torch.randint(0, 100, (batch,), generator=g, device=device) for _ in range(pool)]
    times = []
    for _ in range(epochs):
        _sync(device)
        t0 = time.perf_counter()
        model.train()
        for i, size in enumerate(sizes):
            x, y = xs[i % pool][:size], ys[i % pool][:size]
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            for i, size in enumerate(eval_sizes):
                model(xs[i % pool][:size]).argmax(dim=-1)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return times


def engine_epoch_seconds(
    variant: str,
    task: SyntheticCifar100,
    *,
    batch: int,
    epochs: int,
    device: torch.device,
    out_dir: Path,
) -> list[float]:
    config = RunConfig(
        task_name="cifar100",
        epochs=epochs,
        batch_size=batch,
        episode_length=200,
        device=str(device),
        quiet=True,
        output=str(out_dir / f"{variant}.json"),
        **VARIANTS[variant],
    )
    result, _ = run(config, task)
    return list(result.epoch_wall_clock_seconds)


def steady(times: list[float]) -> float:
    return statistics.fmean(times[1:]) if len(times) > 1 else times[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--epochs", type=int, default=None, help="per variant (default 3; quick 2)")
    p.add_argument("--n-train", type=int, default=None, help="CUDA 50000, CPU 1024, quick 256")
    p.add_argument("--n-test", type=int, default=None, help="CUDA 10000, CPU 256, quick 128")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2, help="rounds of (floor, variant) (default 2)")
    p.add_argument("--quick", action="store_true", help="tiny shapes: checks the script runs")
    p.add_argument("--out", default=None, help="JSON (default bench/results/epoch-<dev>.json)")
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    epochs = args.epochs or (2 if args.quick else 3)
    cuda = device.type == "cuda"
    n_train = args.n_train or (256 if args.quick else 50_000 if cuda else 1024)
    n_test = args.n_test or (128 if args.quick else 10_000 if cuda else 256)
    if epochs < 2:
        p.error("--epochs must be >= 2 (the first epoch is warm-up)")

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"device: {device} ({name or platform.machine()}), torch {torch.__version__}")
    print(f"shape: {n_train} train / {n_test} test, batch {args.batch_size}, {epochs} epochs")
    task = SyntheticCifar100(n_train, n_test)
    kw = {"n_train": n_train, "n_test": n_test, "batch": args.batch_size, "epochs": epochs}
    floors: list[list[float]] = []
    runs: dict[str, list[tuple[list[float], float]]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        floors.append(floor_epoch_seconds(device=device, **kw))
        for _ in range(args.repeats):
            for variant in VARIANTS:
                times = engine_epoch_seconds(
                    variant,
                    task,
                    batch=args.batch_size,
                    epochs=epochs,
                    device=device,
                    out_dir=Path(tmp),
                )
                floors.append(floor_epoch_seconds(device=device, **kw))
                local_floor = (steady(floors[-2]) + steady(floors[-1])) / 2
                runs[variant].append((times, local_floor))
    print(f"\n{'variant':<12} {'epoch s':>9} {'floor s':>9} {'ratio':>7}  (median of rounds)")
    report: dict[str, Any] = {
        "device": str(device),
        "device_name": name,
        "torch": torch.__version__,
        "n_train": n_train,
        "n_test": n_test,
        "batch_size": args.batch_size,
        "epochs": epochs,
        "floor_epoch_seconds": floors,
        "repeats": args.repeats,
        "variants": {},
        "target_ratio": TARGET_RATIO,
        "quick": args.quick,
    }
    for variant, rounds in runs.items():
        ratios = [steady(times) / floor for times, floor in rounds]
        ratio = statistics.median(ratios)
        epoch_s = statistics.median(steady(times) for times, _ in rounds)
        floor_s = statistics.median(floor for _, floor in rounds)
        report["variants"][variant] = {
            "epoch_seconds": [times for times, _ in rounds],
            "local_floor_seconds": [floor for _, floor in rounds],
            "ratios": ratios,
            "ratio": ratio,
        }
        print(f"{variant:<12} {epoch_s:>9.3f} {floor_s:>9.3f} {ratio:>7.3f}")
    print(f"target (GPU): ratio <= {TARGET_RATIO}")
    suffix = "-quick" if args.quick else ""
    out = Path(args.out or f"bench/results/epoch-{device.type}{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
