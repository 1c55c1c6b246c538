"""Per-step cost of AEES vs the plain optimizer and vs pulseopt 0.3.0, side by side in one process.

``aeesopt-lr`` is :class:`aees.AEESOptimizer` (the ``torch.optim.Optimizer`` facade, loss via
``observe_loss``) with the LR-only arms, compared with ``aees-lr`` (the ``AEES`` object).

Every variant owns its own model + AdamW copy (same initial weights) and its own AEES/pulseopt
object, which persists across rounds so episodes keep advancing (and the bandit keeps switching
arms) while we time. Timing is round-robin: in each round every variant runs ``--steps`` timed
steps; the reported figure is the median over rounds of ms/step. See bench/README.md.

    python bench/overhead.py                 # auto device, default models for it
    python bench/overhead.py --quick         # smoke test (< 60 s on a 2-core CPU)
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import gc
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

MIB = 1024.0 * 1024.0

# (name, implementation, lr_candidates, noise_candidates); "plain" has no wrapper.
ARMS = {
    "lr": ([0.5, 1.0, 2.0], [0.0]),
    "noise": ([1.0], [0.0, 0.005, 0.01]),
    "both": ([0.5, 1.0, 2.0], [0.0, 0.005, 0.01]),
}
ARM_LABEL = {"lr": "LR-only", "noise": "noise-only", "both": "LR+noise"}
IMPL_LABEL = {"aeesopt": "AEESOptimizer"}

# Targets for AEES (not for pulseopt, which is the reference being beaten): max overhead % vs plain.
TARGETS_PCT = {
    "cuda": {"lr": 1.0, "noise": 3.0, "both": 3.0},
    "cpu": {"lr": 2.0},
}
FACADE_TARGET_PCT = 1.0  # AEESOptimizer LR-only <= AEES object LR-only + 1 % (any device)
PEAK_TARGET_PCT = 1.0  # peak memory <= plain + 1 %

DEFAULT_MODELS = {"cuda": ["resnet18", "distilbert"], "cpu": ["cnn", "mlp"]}


# --------------------------------------------------------------------------------------------
# Implementations
# --------------------------------------------------------------------------------------------


def load_implementations(stand_in: bool) -> tuple[dict[str, Any], dict[str, str], list[str]]:
    """Return ({"aees": cls, "pulseopt": cls}, versions, notes). Exits if aees.AEES is missing."""
    impls: dict[str, Any] = {}
    versions: dict[str, str] = {}
    notes: list[str] = []
    try:
        pulseopt = importlib.import_module("pulseopt")
        impls["pulseopt"] = pulseopt.AEES
        versions["pulseopt"] = str(getattr(pulseopt, "__version__", _dist_version("pulseopt")))
    except ImportError:
        notes.append("pulseopt is not installed: pulseopt variants skipped.")

    aees_cls = None
    try:
        aees = importlib.import_module("aees")
        aees_cls = getattr(aees, "AEES", None)
        versions["aees"] = str(getattr(aees, "__version__", _dist_version("aees")))
    except ImportError as exc:
        aees_err = f"cannot import aees ({exc})"
    else:
        aees_err = "the installed `aees` has no attribute `AEES` yet"
    if aees_cls is None:
        if not stand_in or "pulseopt" not in impls:
            sys.exit(
                f"error: {aees_err}. Install the library (pip install -e .) or, for developing "
                "this script only, pass --stand-in-pulseopt to time pulseopt in the aees slots."
            )
        aees_cls = impls["pulseopt"]
        versions["aees"] = f"STAND-IN: pulseopt {versions['pulseopt']}"
        notes.append("aees.AEES not available: the `aees` rows are pulseopt used as a stand-in.")
    elif stand_in:
        notes.append("--stand-in-pulseopt ignored: aees.AEES is available.")
    impls["aees"] = aees_cls
    facade = getattr(sys.modules.get("aees"), "AEESOptimizer", None)
    if facade is not None and aees_cls is not impls.get("pulseopt"):
        impls["aeesopt"] = facade
    else:
        notes.append("aees.AEESOptimizer not available: the aeesopt-lr variant is skipped.")
    return impls, versions, notes


def _dist_version(name: str) -> str:
    try:
        from importlib.metadata import version

        return version(name)
    except Exception:
        return "unknown"


# --------------------------------------------------------------------------------------------
# Models and synthetic batches
# --------------------------------------------------------------------------------------------


@dataclass
class ModelSpec:
    name: str
    build: Callable[[], nn.Module]
    make_batch: Callable[[torch.Generator, torch.device], tuple[Any, torch.Tensor]]
    forward: Callable[[nn.Module, Any], torch.Tensor]  # returns logits
    lr: float
    batch_desc: str


def _small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, 256),
        nn.ReLU(),
        nn.Linear(256, 10),
    )


def _mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10)
    )


def _cifar_resnet18() -> nn.Module:
    from torchvision.models import resnet18

    m = resnet18(num_classes=100)
    m.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    m.maxpool = nn.Identity()
    return m


def _distilbert() -> nn.Module:
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    return DistilBertForSequenceClassification(DistilBertConfig(num_labels=2))


def _image_batch(n: int, shape: tuple[int, ...], classes: int):
    def make(g: torch.Generator, dev: torch.device):
        x = torch.randn((n, *shape), generator=g).to(dev)
        y = torch.randint(0, classes, (n,), generator=g).to(dev)
        return x, y

    return make


def _text_batch(n: int, seq: int, vocab: int, classes: int):
    def make(g: torch.Generator, dev: torch.device):
        ids = torch.randint(0, vocab, (n, seq), generator=g).to(dev)
        mask = torch.ones((n, seq), dtype=torch.long).to(dev)
        y = torch.randint(0, classes, (n,), generator=g).to(dev)
        return (ids, mask), y

    return make


def model_specs() -> dict[str, ModelSpec]:
    def call(m: nn.Module, x: Any) -> torch.Tensor:
        return m(x)

    def call_bert(m: nn.Module, x: Any) -> torch.Tensor:
        return m(input_ids=x[0], attention_mask=x[1]).logits

    return {
        "resnet18": ModelSpec(
            "resnet18",
            _cifar_resnet18,
            _image_batch(128, (3, 32, 32), 100),
            call,
            1e-3,
            "128x3x32x32, 100 classes",
        ),
        "distilbert": ModelSpec(
            "distilbert",
            _distilbert,
            _text_batch(16, 128, 30522, 2),
            call_bert,
            5e-5,
            "16x128 tokens, 2 labels",
        ),
        "cnn": ModelSpec(
            "cnn",
            _small_cnn,
            _image_batch(64, (3, 32, 32), 10),
            call,
            1e-3,
            "64x3x32x32, 10 classes",
        ),
        "mlp": ModelSpec(
            "mlp", _mlp, _image_batch(128, (784,), 10), call, 1e-3, "128x784, 10 classes"
        ),
    }


# --------------------------------------------------------------------------------------------
# Variants
# --------------------------------------------------------------------------------------------


@dataclass
class Variant:
    name: str
    impl: str | None  # None = plain optimizer
    arms: str | None
    model: nn.Module
    optimizer: torch.optim.Optimizer
    wrapper: Any = None
    global_step: int = 0
    resident_bytes: int = 0
    transient_peaks: list[int] = field(default_factory=list)
    ms_rounds: list[float] = field(default_factory=list)


def variant_names(impls: dict[str, Any]) -> list[tuple[str, str | None, str | None]]:
    out: list[tuple[str, str | None, str | None]] = [("plain", None, None)]
    for impl in ("aees", "pulseopt"):
        if impl in impls:
            out += [(f"{impl}-{a}", impl, a) for a in ARMS]
    if "aeesopt" in impls:
        out.append(("aeesopt-lr", "aeesopt", "lr"))
    return out


def run_steps(v: Variant, batches: list, forward, crit, n: int) -> None:
    """n training steps; identical loop for every variant except the wrapper calls."""
    model, opt, w = v.model, v.optimizer, v.wrapper
    nb = len(batches)
    for _ in range(n):
        x, y = batches[v.global_step % nb]
        if w is None:
            opt.zero_grad(set_to_none=True)
            loss = crit(forward(model, x), y)
            loss.backward()
            opt.step()
        elif v.impl == "aeesopt":  # opt is the AEESOptimizer: the stock loop + observe_loss
            opt.zero_grad(set_to_none=True)
            loss = crit(forward(model, x), y)
            loss.backward()
            opt.observe_loss(loss)
            opt.step()
        else:
            w.step_start(v.global_step)
            opt.zero_grad(set_to_none=True)
            loss = crit(forward(model, x), y)
            loss.backward()
            w.step_end(loss)  # the tensor: the wrapper decides when (if) to sync
        v.global_step += 1


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def bench_model(spec: ModelSpec, impls: dict[str, Any], args, dev: torch.device) -> dict:
    cuda = dev.type == "cuda"
    torch.manual_seed(args.seed)
    base = spec.build().train()
    n_params = sum(p.numel() for p in base.parameters())
    n_tensors = sum(1 for _ in base.parameters())
    g = torch.Generator().manual_seed(args.seed)
    batches = [spec.make_batch(g, dev) for _ in range(4)]
    crit = nn.CrossEntropyLoss()

    if cuda:
        # Prime cuDNN autotuning / cuBLAS workspaces on a scratch copy so that these one-off
        # allocations land in the baseline and are not charged to the first variant measured.
        scratch = copy.deepcopy(base).to(dev)
        sopt = torch.optim.AdamW(scratch.parameters(), lr=spec.lr)
        sv = Variant("scratch", None, None, scratch, sopt)
        run_steps(sv, batches, spec.forward, crit, max(2, min(args.warmup, 5)))
        _sync(dev)
        del scratch, sopt, sv
        gc.collect()

    variants: list[Variant] = []
    chosen = variant_names(impls)
    if args.variants:
        chosen = [c for c in chosen if c[0] in args.variants]
    for name, impl, arms in chosen:
        # Memory, part 1 (resident): all previously built variants have had their grads freed
        # (set_to_none), so the allocator holds only their persistent state (params, AdamW
        # moments, wrapper state). memory_allocated() just before/after building + warming up this
        # variant (its grads freed again afterwards) gives the variant's own persistent footprint.
        _sync(dev)
        before = torch.cuda.memory_allocated(dev) if cuda else 0
        model = copy.deepcopy(base).to(dev)
        opt = torch.optim.AdamW(model.parameters(), lr=spec.lr)
        wrapper = None
        if impl is not None:
            lrs, noises = ARMS[arms]
            wrapper = impls[impl](
                opt,
                lr_candidates=list(lrs),
                noise_candidates=list(noises),
                episode_length=args.episode_length,
                seed=args.seed,
            )
            if impl == "aeesopt":
                opt = wrapper  # the facade is the optimizer the loop sees
        v = Variant(name, impl, arms, model, opt, wrapper)
        run_steps(v, batches, spec.forward, crit, args.warmup)
        opt.zero_grad(set_to_none=True)
        _sync(dev)
        if cuda:
            v.resident_bytes = torch.cuda.memory_allocated(dev) - before
        variants.append(v)

    # Round-robin timing. The starting variant rotates each round so no variant always runs
    # right after the same neighbour (cache/clock effects); every round still times every variant.
    nv = len(variants)
    started = time.perf_counter()
    for r in range(args.rounds):
        for k in range(nv):
            v = variants[(r + k) % nv]
            _sync(dev)
            if cuda:
                # Memory, part 2 (transient): every other variant's grads are freed (each block
                # ends with zero_grad(set_to_none=True)), so the peak above the level at block
                # start is this variant's own grads + activations + wrapper temporaries (e.g. a
                # parameter snapshot held through forward/backward, noise buffers).
                torch.cuda.reset_peak_memory_stats(dev)
                start_alloc = torch.cuda.memory_allocated(dev)
            t0 = time.perf_counter()
            run_steps(v, batches, spec.forward, crit, args.steps)
            _sync(dev)
            dt = time.perf_counter() - t0
            v.ms_rounds.append(1000.0 * dt / args.steps)
            if cuda:
                v.transient_peaks.append(torch.cuda.max_memory_allocated(dev) - start_alloc)
            v.optimizer.zero_grad(set_to_none=True)
        print(
            f"  [{spec.name}] round {r + 1}/{args.rounds} done "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )

    # Results
    plain = variants[0]
    plain_med = statistics.median(plain.ms_rounds)
    res: dict[str, Any] = {
        "batch": spec.batch_desc,
        "params": n_params,
        "param_tensors": n_tensors,
        "param_mib": round(n_params * 4 / MIB, 3),
        "optimizer": f"AdamW(lr={spec.lr})",
        "variants": {},
    }
    plain_peak = None
    if cuda:
        plain_peak = plain.resident_bytes + max(plain.transient_peaks)
    for v in variants:
        med = statistics.median(v.ms_rounds)
        paired = [100.0 * (a / b - 1.0) for a, b in zip(v.ms_rounds, plain.ms_rounds, strict=True)]
        entry: dict[str, Any] = {
            "impl": v.impl or "plain",
            "lr_candidates": ARMS[v.arms][0] if v.arms else None,
            "noise_candidates": ARMS[v.arms][1] if v.arms else None,
            "ms_per_step_median": med,
            "ms_per_step_rounds": v.ms_rounds,
            "overhead_pct": 100.0 * (med / plain_med - 1.0),
            "overhead_pct_paired_median": statistics.median(paired),
            "steps_run": v.global_step,
        }
        if cuda:
            peak = v.resident_bytes + max(v.transient_peaks)
            entry |= {
                "peak_mib": peak / MIB,
                "resident_mib": v.resident_bytes / MIB,
                "transient_peak_mib": max(v.transient_peaks) / MIB,
                "peak_overhead_pct": 100.0 * (peak / plain_peak - 1.0),
            }
        if v.wrapper is not None:
            entry["episodes_closed"] = _episodes_closed(v.wrapper)
        res["variants"][v.name] = entry

    ratios: dict[str, Any] = {}
    timed = res["variants"]
    for a in ARMS:
        if f"aees-{a}" in timed and f"pulseopt-{a}" in timed:
            ae, po = timed[f"aees-{a}"], timed[f"pulseopt-{a}"]
            r = {"ms": po["ms_per_step_median"] / ae["ms_per_step_median"]}
            if cuda:
                r["peak"] = po["peak_mib"] / ae["peak_mib"]
            ratios[a] = r
    res["ratio_pulseopt_over_aees"] = ratios
    if "aeesopt-lr" in timed and "aees-lr" in timed:
        facade, obj = res["variants"]["aeesopt-lr"], res["variants"]["aees-lr"]
        by_name = {v.name: v for v in variants}
        paired = [
            100.0 * (a / b - 1.0)
            for a, b in zip(by_name["aeesopt-lr"].ms_rounds, by_name["aees-lr"].ms_rounds,
                            strict=True)
        ]  # fmt: skip
        facade["overhead_pct_vs_aees"] = 100.0 * (
            facade["ms_per_step_median"] / obj["ms_per_step_median"] - 1.0
        )
        facade["overhead_pct_vs_aees_paired_median"] = statistics.median(paired)
    res["targets"] = check_targets(res, dev.type)

    del variants, plain, batches, base
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return res


def _episodes_closed(wrapper: Any) -> int | None:
    try:
        logs = wrapper.get_logs()
    except Exception:
        return None
    for key in ("episode_rewards", "rewards", "episode_index", "lr_multipliers"):
        if key in logs:
            return len(logs[key])
    vals = [v for v in logs.values() if isinstance(v, list)]
    return max((len(v) for v in vals), default=None)


def _round_overheads(timed: dict, name: str, against: str) -> list[float]:
    """Per-round overhead % of ``name`` against ``against`` (the same round, side by side)."""
    pairs = zip(
        timed[name]["ms_per_step_rounds"], timed[against]["ms_per_step_rounds"], strict=True
    )
    return [100.0 * (a / b - 1.0) for a, b in pairs]


def _time_verdict(got: float, limit: float, rounds: list[float]) -> dict[str, Any]:
    """A timing target: ``pass`` (median within the limit), ``noisy`` (median over it, but the
    per-round overheads straddle the limit: the machine's noise, not a verdict) or ``missed``
    (over the limit in every round)."""
    verdict = "pass" if got <= limit else "noisy" if min(rounds) <= limit else "missed"
    return {
        "limit_pct": limit,
        "got_pct": got,
        "rounds_pct": [min(rounds), max(rounds)],
        "verdict": verdict,
        "pass": verdict == "pass",
    }


def check_targets(res: dict, dev_type: str) -> dict:
    out: dict[str, Any] = {}
    timed = res["variants"]
    facade = timed.get("aeesopt-lr")
    if facade is not None and "overhead_pct_vs_aees" in facade:
        rounds = _round_overheads(timed, "aeesopt-lr", "aees-lr")
        out["aeesopt-lr time vs aees-lr"] = _time_verdict(
            facade["overhead_pct_vs_aees"], FACADE_TARGET_PCT, rounds
        )
    for a, limit in TARGETS_PCT.get(dev_type, {}).items():
        if f"aees-{a}" not in timed:
            continue
        got = timed[f"aees-{a}"]["overhead_pct"]
        rounds = _round_overheads(timed, f"aees-{a}", "plain")
        out[f"aees-{a} time"] = _time_verdict(got, limit, rounds)
    if dev_type == "cuda":
        for a in ARMS:
            if f"aees-{a}" not in timed:
                continue
            got = timed[f"aees-{a}"]["peak_overhead_pct"]
            out[f"aees-{a} peak"] = {
                "limit_pct": PEAK_TARGET_PCT,
                "got_pct": got,
                "verdict": "pass" if got <= PEAK_TARGET_PCT else "missed",
                "pass": got <= PEAK_TARGET_PCT,
            }
    return out


# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def markdown_table(name: str, res: dict, dev_type: str, stand_in: bool) -> str:
    cuda = dev_type == "cuda"
    head = ["variant", "ms/step (median)", "overhead % vs plain"]
    if cuda:
        head += ["peak MiB", "peak % vs plain"]
    head += ["pulseopt/aees (time)"]
    if cuda:
        head += ["pulseopt/aees (peak)"]
    lines = [
        f"### {name}: {res['params'] / 1e6:.2f} M params ({res['param_tensors']} tensors), "
        f"batch {res['batch']}, {res['optimizer']}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    for vname, e in res["variants"].items():
        impl, _, arms = vname.partition("-")
        label = (
            "plain AdamW" if impl == "plain" else f"{IMPL_LABEL.get(impl, impl)} {ARM_LABEL[arms]}"
        )
        if impl == "aees" and stand_in:
            label += " (stand-in)"
        row = [label, f"{e['ms_per_step_median']:.3f}", f"{e['overhead_pct']:+.2f}"]
        if cuda:
            row += [f"{e['peak_mib']:.1f}", f"{e['peak_overhead_pct']:+.2f}"]
        ratio = res["ratio_pulseopt_over_aees"].get(arms) if impl == "aees" else None
        row += [f"{ratio['ms']:.3f}x" if ratio else ""]
        if cuda:
            row += [f"{ratio['peak']:.3f}x" if ratio else ""]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    if res["targets"]:
        lines.append("Targets (aees only):")
        for k, t in res["targets"].items():
            vs = "" if " vs " in k else " vs plain"
            line = f"- {k} <= +{t['limit_pct']:g}%{vs}: {t['got_pct']:+.2f}%  "
            low, high = t.get("rounds_pct", (None, None))
            spread = f"rounds {low:+.2f}..{high:+.2f}%" if low is not None else ""
            if t["verdict"] == "pass":
                line += "PASS"
            elif t["verdict"] == "noisy":
                line += (
                    f"NOISY, not a verdict: {spread} straddle the limit (a loaded machine; "
                    "rerun idle with more --rounds)"
                )
            else:
                line += "MISSED: over the limit" + (f" in every round ({spread})" if spread else "")
            lines.append(line)
    return "\n".join(lines)


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def atomic_write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--models", default=None, help="comma list of resnet18,distilbert,cnn,mlp")
    p.add_argument("--rounds", type=int, default=None, help="timing rounds (default 6)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per variant per round (50)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps per variant (20)")
    p.add_argument("--episode-length", type=int, default=None, help="AEES episode length (100)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--variants",
        default=None,
        help="comma list of variants to time (default all), e.g. plain,aees-lr,aeesopt-lr",
    )
    p.add_argument(
        "--out", default=None, help="JSON path (default bench/results/overhead-<dev>.json)"
    )
    p.add_argument("--quick", action="store_true", help="tiny smoke-test settings")
    p.add_argument(
        "--short",
        action="store_true",
        help="make bench: 4 rounds x 25 steps, warm-up 5, episode 25; on a CPU the mlp only "
        "(seconds on an idle 2-core CPU; fewer rounds: noisier)",
    )
    p.add_argument(
        "--stand-in-pulseopt",
        action="store_true",
        help="dev only: if aees.AEES is missing, time pulseopt in the aees slots",
    )
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args(argv)
    # --quick: rounds*steps small, and a short episode so arms still switch during timing.
    if a.quick and a.short:
        p.error("--quick and --short are alternatives")
    dflt = (
        {"rounds": 3, "steps": 4, "warmup": 2, "episode_length": 3}
        if a.quick
        else {"rounds": 4, "steps": 25, "warmup": 5, "episode_length": 25}
        if a.short
        else {"rounds": 6, "steps": 50, "warmup": 20, "episode_length": 100}
    )
    for k, val in dflt.items():
        if getattr(a, k) is None:
            setattr(a, k, val)
    if min(a.rounds, a.steps, a.episode_length) < 1 or a.warmup < 1:
        p.error("--rounds, --steps, --warmup and --episode-length must be >= 1")
    if a.variants is not None:
        a.variants = [v.strip() for v in a.variants.split(",") if v.strip()]
        if "plain" not in a.variants:
            p.error("--variants must include plain (every overhead is measured against it)")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        dev = torch.device(args.device)
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(dev)
        torch.backends.cudnn.benchmark = True
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    impls, versions, notes = load_implementations(args.stand_in_pulseopt)
    stand_in = versions["aees"].startswith("STAND-IN")
    specs = model_specs()
    default_models = ["mlp"] if args.short and dev.type == "cpu" else DEFAULT_MODELS[dev.type]
    names = args.models.split(",") if args.models else default_models
    unknown = [n for n in names if n not in specs]
    if unknown:
        sys.exit(f"error: unknown model(s) {unknown}; choose from {sorted(specs)}")

    out_path = Path(
        args.out
        or Path(__file__).resolve().parent
        / "results"
        / f"overhead-{dev.type}{'-quick' if args.quick else '-short' if args.short else ''}.json"
    )
    meta = {
        "benchmark": "aees per-step overhead",
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "device": {
            "type": dev.type,
            "name": device_name(dev),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "cudnn_benchmark": bool(torch.backends.cudnn.benchmark) if dev.type == "cuda" else None,
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "implementations": versions,
        "stand_in": stand_in,
        "settings": {
            "rounds": args.rounds,
            "steps": args.steps,
            "warmup": args.warmup,
            "episode_length": args.episode_length,
            "threads": args.threads,
            "seed": args.seed,
            "quick": args.quick,
            "short": args.short,
            "models": names,
            "arms": {
                a: {"lr_candidates": lr, "noise_candidates": nz} for a, (lr, nz) in ARMS.items()
            },
            "statistic": "median over rounds of ms/step; round-robin order rotated per round",
            "targets_pct": TARGETS_PCT.get(dev.type, {}),
            "facade_target_pct": FACADE_TARGET_PCT,
            "peak_target_pct": PEAK_TARGET_PCT if dev.type == "cuda" else None,
        },
        "notes": notes,
        "models": {},
        "skipped": {},
    }
    print(
        f"# AEES overhead on {meta['device']['name']} ({dev}), torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}"
    )
    print(
        f"rounds={args.rounds} steps={args.steps} warmup={args.warmup} "
        f"episode_length={args.episode_length}  aees={versions['aees']} "
        f"pulseopt={versions.get('pulseopt', 'missing')}"
    )
    for n in notes:
        print(f"NOTE: {n}")
    print()

    for name in names:
        try:
            if name == "distilbert":
                importlib.import_module("transformers")
            elif name == "resnet18":
                importlib.import_module("torchvision")
        except ImportError as exc:
            msg = f"skipped: {exc.name} is not installed"
            print(f"### {name}: {msg}\n")
            meta["skipped"][name] = msg
            continue
        res = bench_model(specs[name], impls, args, dev)
        meta["models"][name] = res
        print(markdown_table(name, res, dev.type, stand_in), flush=True)
        print()
        atomic_write_json(out_path, meta)  # partial results survive a later crash

    atomic_write_json(out_path, meta)
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
