"""Per-step cost of AEES vs the plain optimizer and vs pulseopt 0.3.0, side by side in one process.

``aeesopt-lr`` is :class:`aees.AEESOptimizer` (the ``torch.optim.Optimizer`` facade, loss via
``observe_loss``) with the LR-only arms, compared with ``aees-lr`` (the ``AEES`` object).

Every variant owns its own model + AdamW copy (same initial weights) and its own AEES/pulseopt
object, which persists across rounds so episodes keep advancing (and the bandit keeps switching
arms) while we time. Timing is round-robin: in each round every variant runs ``--steps`` timed
steps; the reported figure is the median over rounds of ms/step. See bench/README.md.
The models and arms timed are in ``overhead_setup.py``, the targets' verdicts and the table in
``overhead_report.py`` (both beside this script).

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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from overhead_report import (
    FACADE_TARGET_PCT,
    PEAK_TARGET_PCT,
    TARGETS_PCT,
    check_targets,
    device_name,
    markdown_table,
)
from overhead_setup import ARMS, DEFAULT_MODELS, ModelSpec, model_specs
from torch import nn

from aees.results import atomic_write_text

MIB = 1024.0 * 1024.0


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
    """Build every variant of ``spec``'s model, time them round-robin and return the results."""
    torch.manual_seed(args.seed)
    base = spec.build().train()
    g = torch.Generator().manual_seed(args.seed)
    batches = [spec.make_batch(g, dev) for _ in range(4)]
    crit = nn.CrossEntropyLoss()
    if dev.type == "cuda":
        _prime_cuda(base, spec, batches, crit, args, dev)
    variants = build_variants(base, spec, impls, batches, crit, args, dev)
    time_rounds(variants, spec, batches, crit, args, dev)
    res = collect_results(spec, base, variants, dev)
    del variants, batches, base
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return res


def _prime_cuda(base: nn.Module, spec: ModelSpec, batches: list, crit, args, dev) -> None:
    """Prime cuDNN autotuning / cuBLAS workspaces on a scratch copy so that these one-off
    allocations land in the baseline and are not charged to the first variant measured."""
    scratch = copy.deepcopy(base).to(dev)
    sopt = torch.optim.AdamW(scratch.parameters(), lr=spec.lr)
    sv = Variant("scratch", None, None, scratch, sopt)
    run_steps(sv, batches, spec.forward, crit, max(2, min(args.warmup, 5)))
    _sync(dev)
    del scratch, sopt, sv
    gc.collect()


def build_variants(
    base: nn.Module, spec: ModelSpec, impls: dict[str, Any], batches: list, crit, args, dev
) -> list[Variant]:
    """Every chosen variant, built and warmed up, with its resident memory on a GPU."""
    cuda = dev.type == "cuda"
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
    return variants


def time_rounds(variants: list[Variant], spec: ModelSpec, batches: list, crit, args, dev) -> None:
    """Round-robin timing into each variant's ``ms_rounds`` (and ``transient_peaks`` on a GPU).

    The starting variant rotates each round so no variant always runs right after the same
    neighbour (cache/clock effects); every round still times every variant.
    """
    cuda = dev.type == "cuda"
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


def collect_results(
    spec: ModelSpec, base: nn.Module, variants: list[Variant], dev: torch.device
) -> dict[str, Any]:
    """The model's result entry: sizes, one entry per variant, the pulseopt/aees ratios, the
    facade's overhead over the AEES object and the targets' verdicts."""
    cuda = dev.type == "cuda"
    n_params = sum(p.numel() for p in base.parameters())
    plain = variants[0]
    plain_med = statistics.median(plain.ms_rounds)
    plain_peak = plain.resident_bytes + max(plain.transient_peaks) if cuda else None
    res: dict[str, Any] = {
        "batch": spec.batch_desc,
        "params": n_params,
        "param_tensors": sum(1 for _ in base.parameters()),
        "param_mib": round(n_params * 4 / MIB, 3),
        "optimizer": f"AdamW(lr={spec.lr})",
        "variants": {},
    }
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
    res["ratio_pulseopt_over_aees"] = _pulseopt_ratios(res["variants"], cuda)
    _facade_overhead(res["variants"], variants)
    res["targets"] = check_targets(res, dev.type)
    return res


def _pulseopt_ratios(timed: dict[str, Any], cuda: bool) -> dict[str, Any]:
    """pulseopt's median ms/step (and peak on a GPU) over AEES's, per arm set timed by both."""
    ratios: dict[str, Any] = {}
    for a in ARMS:
        if f"aees-{a}" in timed and f"pulseopt-{a}" in timed:
            ae, po = timed[f"aees-{a}"], timed[f"pulseopt-{a}"]
            r = {"ms": po["ms_per_step_median"] / ae["ms_per_step_median"]}
            if cuda:
                r["peak"] = po["peak_mib"] / ae["peak_mib"]
            ratios[a] = r
    return ratios


def _facade_overhead(timed: dict[str, Any], variants: list[Variant]) -> None:
    """The AEESOptimizer facade's overhead over the AEES object (both LR-only), into its entry."""
    if "aeesopt-lr" not in timed or "aees-lr" not in timed:
        return
    facade, obj = timed["aeesopt-lr"], timed["aees-lr"]
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


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON at ``path``, atomically (:func:`aees.results.atomic_write_text`)."""
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


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


def setup_device(args: argparse.Namespace) -> torch.device:
    """The device ``--device`` names (``auto``: CUDA when there is one), made current, with
    cuDNN autotuning on a GPU and ``--threads`` applied."""
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
    return dev


def run_metadata(
    args: argparse.Namespace,
    dev: torch.device,
    versions: dict[str, str],
    notes: list[str],
    stand_in: bool,
    names: list[str],
) -> dict[str, Any]:
    """The JSON file's header (machine, versions, settings, targets), with empty ``models`` and
    ``skipped`` for the results."""
    return {
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dev = setup_device(args)
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
    meta = run_metadata(args, dev, versions, notes, stand_in, names)
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
        write_json(out_path, meta)  # partial results survive a later crash

    write_json(out_path, meta)
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
