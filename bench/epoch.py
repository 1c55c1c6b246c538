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
episode 200), each under two protocols (``--protocols``): ``thesis`` (fp32, deterministic cuDNN:
the default flags) and ``fast`` (docs/protocols.md §17: ``--channels-last --compile``, plus
``--precision bf16 --cudnn-benchmark --tf32`` on CUDA); the floor of a protocol uses the same
settings (autocast, layout, compiled model, cuDNN flags). GPU clocks drift by several per cent
over a minute, so the floor is timed right before and right after every engine run (floor,
baseline, floor, aees-dual, floor, ... for ``--repeats`` rounds); each engine run is divided by
the mean of its two neighbouring floors. Printed: the median ratio over rounds with its spread
(min..max), the fast/thesis epoch speed-up and the AEES/baseline epoch ratio per protocol.
Targets on an H100/H200: engine epoch <= 1.03 x floor (both protocols); fast >= 3x thesis.
The JSON is rewritten after every round, so a run cut short keeps what it measured.

    python bench/epoch.py                  # auto device; CUDA: full CIFAR shape, 3 epochs
                                           # CPU: 1,024 / 256 images (a full epoch takes hours)
    python bench/epoch.py --quick          # smoke test (tiny shapes)
"""

from __future__ import annotations

import argparse
import contextlib
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
from aees.runner.fast import apply_backend_flags, compile_net, to_memory_format
from aees.runner.tasks.cifar.task import Cifar100Task

VARIANTS = {
    "baseline": {"control_mode": "baseline"},
    "aees-dual": {
        "control_mode": "adaptive",
        "lr_candidates": (0.5, 1.0, 2.0),
        "noise_candidates": (0.0, 0.005),
    },
}
TARGET_RATIO = 1.03
TARGET_SPEEDUP = 3.0


def protocol_flags(protocol: str, device: torch.device, backend: str) -> dict[str, Any]:
    """The RunConfig fields of ``thesis`` (none) or ``fast`` (docs/protocols.md §17)."""
    if protocol == "thesis":
        return {}
    flags: dict[str, Any] = {"channels_last": True, "compile": True, "compile_backend": backend}
    if device.type == "cuda":  # bf16 convolutions on a CPU without bf16 units crawl: not there
        flags.update(precision="bf16", cudnn_benchmark=True, tf32=True)
    return flags


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
    *,
    n_train: int,
    n_test: int,
    batch: int,
    epochs: int,
    device: torch.device,
    flags: dict[str, Any] | None = None,
) -> list[float]:
    """Per-epoch seconds of the bare compute: fwd/bwd/AdamW per batch, then eval forwards, with
    the protocol's ``flags`` applied as the engine applies them (aees.runner.fast)."""
    from aees.runner.tasks.image.models import cifar_resnet18

    config = RunConfig(task_name="cifar100", device=str(device), **(flags or {}))
    set_seed(0)
    apply_backend_flags(config)
    model = to_memory_format(cifar_resnet18().to(device), config.channels_last)
    net = compile_net(model, config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
    g = torch.Generator(device=device).manual_seed(0)
    sizes = [batch] * (n_train // batch) + ([n_train % batch] if n_train % batch else [])
    eval_sizes = [batch] * (n_test // batch) + ([n_test % batch] if n_test % batch else [])
    pool = 8  # distinct pre-made batches, cycled
    xs = [
        to_memory_format(
            torch.randn(batch, 3, 32, 32, generator=g, device=device), config.channels_last
        )
        for _ in range(pool)
    ]
    ys = [torch.randint(0, 100, (batch,), generator=g, device=device) for _ in range(pool)]

    def autocast() -> Any:
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=dtype)

    times = []
    for _ in range(epochs):
        _sync(device)
        t0 = time.perf_counter()
        net.train()
        for i, size in enumerate(sizes):
            x, y = xs[i % pool][:size], ys[i % pool][:size]
            opt.zero_grad(set_to_none=True)
            with autocast():
                loss = torch.nn.functional.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad(), autocast():
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
    flags: dict[str, Any] | None = None,
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
        **(flags or {}),
    )
    result, _ = run(config, task)
    return list(result.epoch_wall_clock_seconds)


def steady(times: list[float]) -> float:
    return statistics.fmean(times[1:]) if len(times) > 1 else times[0]


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summarise(
    runs: dict[tuple[str, str], list[tuple[list[float], float]]],
) -> dict[str, Any]:
    """Per (protocol, variant): ratios to the local floor, their median and spread; per
    variant the fast/thesis speed-up; per protocol the aees-dual/baseline epoch ratio."""
    out: dict[str, Any] = {"variants": {}, "speedup": {}, "aees_vs_baseline": {}}
    for (protocol, variant), rounds in runs.items():
        if not rounds:
            continue
        ratios = [steady(times) / floor for times, floor in rounds]
        out["variants"][f"{protocol}/{variant}"] = {
            "epoch_seconds": [times for times, _ in rounds],
            "local_floor_seconds": [floor for _, floor in rounds],
            "ratios": ratios,
            "ratio": statistics.median(ratios),
            "ratio_spread": _spread(ratios),
            "steady_epoch_seconds": _spread([steady(times) for times, _ in rounds]),
        }
    for variant in VARIANTS:
        thesis, fast = runs.get(("thesis", variant)), runs.get(("fast", variant))
        if thesis and fast:
            pairs = [steady(a) / steady(b) for (a, _), (b, _) in zip(thesis, fast, strict=False)]
            out["speedup"][variant] = _spread(pairs)
    for protocol in {p for p, _ in runs}:
        base, dual = runs.get((protocol, "baseline")), runs.get((protocol, "aees-dual"))
        if base and dual:
            pairs = [steady(d) / steady(b) for (b, _), (d, _) in zip(base, dual, strict=False)]
            out["aees_vs_baseline"][protocol] = _spread(pairs)
    return out


def print_summary(summary: dict[str, Any]) -> None:
    print(
        f"\n{'protocol/variant':<20} {'epoch s':>8} {'ratio':>7} {'spread':>15}  (median of rounds)"
    )
    for name, v in summary["variants"].items():
        r = v["ratio_spread"]
        print(
            f"{name:<20} {v['steady_epoch_seconds']['median']:>8.3f} {r['median']:>7.3f} "
            f"{r['min']:>7.3f}..{r['max']:<7.3f}"
        )
    for variant, s in summary["speedup"].items():
        print(f"fast vs thesis, {variant}: {s['median']:.2f}x ({s['min']:.2f}..{s['max']:.2f})")
    for protocol, s in summary["aees_vs_baseline"].items():
        print(
            f"aees-dual / baseline epoch, {protocol}: {s['median']:.3f} "
            f"({s['min']:.3f}..{s['max']:.3f})"
        )
    print(f"targets (GPU): ratio <= {TARGET_RATIO}; fast >= {TARGET_SPEEDUP}x thesis")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--epochs", type=int, default=None, help="per variant (default 3; quick 2)")
    p.add_argument("--n-train", type=int, default=None, help="CUDA 50000, CPU 1024, quick 256")
    p.add_argument("--n-test", type=int, default=None, help="CUDA 10000, CPU 256, quick 128")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument(
        "--repeats", type=int, default=None, help="rounds of (floor, variant) (default 3; short 2)"
    )
    p.add_argument(
        "--protocols",
        default=None,
        help="thesis, fast or both (default both; --short on a CPU: thesis)",
    )
    p.add_argument(
        "--compile-backend",
        default=None,
        help="fast protocol's torch.compile backend (CUDA: inductor; CPU: eager)",
    )
    p.add_argument("--quick", action="store_true", help="tiny shapes: checks the script runs")
    p.add_argument(
        "--short",
        action="store_true",
        help="make bench: 2 epochs, 2 rounds; CUDA 10,000 / 2,000 images; CPU 256 / 64 images "
        "and the thesis protocol only (a couple of minutes on an idle 2-core CPU)",
    )
    p.add_argument("--out", default=None, help="JSON (default bench/results/epoch-<dev>.json)")
    args = p.parse_args(argv)
    if args.quick and args.short:
        p.error("--quick and --short are alternatives")
    device = resolve_device(args.device)
    epochs = args.epochs or (2 if args.quick or args.short else 3)
    cuda = device.type == "cuda"
    full_train, full_test = (50_000, 10_000) if cuda else (1024, 256)
    if args.short:
        full_train, full_test = (10_000, 2_000) if cuda else (256, 64)
    args.repeats = args.repeats or (2 if args.short else 3)
    n_train = args.n_train or (256 if args.quick else full_train)
    n_test = args.n_test or (128 if args.quick else full_test)
    if epochs < 2:
        p.error("--epochs must be >= 2 (the first epoch is warm-up)")
    if args.protocols is None:
        args.protocols = "thesis" if args.short and not cuda else "thesis,fast"
    protocols = [x.strip() for x in args.protocols.split(",") if x.strip()]
    if not protocols or any(x not in ("thesis", "fast") for x in protocols):
        p.error(f"--protocols must list thesis and/or fast, got {args.protocols!r}")
    backend = args.compile_backend or ("inductor" if cuda else "eager")

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"device: {device} ({name or platform.machine()}), torch {torch.__version__}")
    print(f"shape: {n_train} train / {n_test} test, batch {args.batch_size}, {epochs} epochs")
    print(f"protocols: {', '.join(protocols)}; fast: {protocol_flags('fast', device, backend)}")
    task = SyntheticCifar100(n_train, n_test)
    kw = {"n_train": n_train, "n_test": n_test, "batch": args.batch_size, "epochs": epochs}
    floors: dict[str, list[list[float]]] = {x: [] for x in protocols}
    runs: dict[tuple[str, str], list[tuple[list[float], float]]] = {
        (x, v): [] for x in protocols for v in VARIANTS
    }
    suffix = "-quick" if args.quick else "-short" if args.short else ""
    out = Path(args.out or f"bench/results/epoch-{device.type}{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "device": str(device),
        "device_name": name,
        "torch": torch.__version__,
        "n_train": n_train,
        "n_test": n_test,
        "batch_size": args.batch_size,
        "epochs": epochs,
        "protocols": {x: protocol_flags(x, device, backend) for x in protocols},
        "floor_epoch_seconds": floors,
        "repeats": args.repeats,
        "target_ratio": TARGET_RATIO,
        "target_speedup": TARGET_SPEEDUP,
        "quick": args.quick,
        "short": args.short,
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for protocol in protocols:
            flags = protocol_flags(protocol, device, backend)
            floors[protocol].append(floor_epoch_seconds(device=device, flags=flags, **kw))
        for round_ in range(args.repeats):
            for protocol in protocols:
                flags = protocol_flags(protocol, device, backend)
                for variant in VARIANTS:
                    times = engine_epoch_seconds(
                        variant,
                        task,
                        batch=args.batch_size,
                        epochs=epochs,
                        device=device,
                        out_dir=Path(tmp),
                        flags=flags,
                    )
                    fl = floors[protocol]
                    fl.append(floor_epoch_seconds(device=device, flags=flags, **kw))
                    runs[(protocol, variant)].append((times, (steady(fl[-2]) + steady(fl[-1])) / 2))
                    print(
                        f"  round {round_ + 1}/{args.repeats} {protocol}/{variant}: steady epoch "
                        f"{steady(times):.3f} s ({time.perf_counter() - started:.0f} s so far)",
                        flush=True,
                    )
            report.update(summarise(runs), rounds_done=round_ + 1)
            atomic_write_text(out, json.dumps(report, indent=2) + "\n")
            print(f"round {round_ + 1}/{args.repeats} done", flush=True)
    print_summary(summarise(runs))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
