"""``aees plan`` and ``aees sweep``: build a run plan from a preset, then execute it.

::

    aees plan cifar-noisy --seeds 0-4 --set epochs=1 --out plan.json
    aees sweep plan.json --workers 4 --gpus 0,1,2,3
    aees sweep plan.json --executor ray --address auto --output-root /shared/results

Every input error is one line on stderr and exit status 2; a sweep exits 0 when every selected
run is complete, 1 when some failed, 130 on Ctrl-C.

A manifest is shared between people and machines, so ``aees sweep`` treats it as untrusted data:
it refuses (exit 2, one line naming the run and the field) a field of the wrong type, a relative
``output_root`` (``aees plan`` writes an absolute one; ``--output-root`` may be relative to the
current directory), a path field that resolves outside the output root, and a stored
``command`` other than the one built from the run's task, flags, seed and paths -- which is what
it runs, with its own interpreter. Two sweeps on one output root (copies of a manifest) are
refused while one runs.

``python -m aees.experiments.sweep_cli {plan,sweep} ...`` works without the console script.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aees.experiments.config import OneLineArgumentParser
from aees.experiments.plan import (
    PlanError,
    build_plan,
    load_preset,
    parse_overrides,
    parse_seeds,
    preset_names,
    presets_dir,
    write_manifest,
)

__all__ = ["main", "plan_main", "sweep_main"]


def _plan_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="aees plan",
        description="Expand a preset (configs/<name>.toml or a TOML file) into a run manifest.",
    )
    parser.add_argument("preset", nargs="?", help="preset name or path to a TOML preset")
    parser.add_argument("--seeds", help="seeds, e.g. 0-4 or 0,2,5 (default: the preset's)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a flag for every run, e.g. --set epochs=1 (repeatable)",
    )
    parser.add_argument(
        "--output-root", help="where results, logs and checkpoints go (default results/<preset>)"
    )
    parser.add_argument("--out", help="manifest path (default <output-root>/manifest.json)")
    ckpt = parser.add_mutually_exclusive_group()
    ckpt.add_argument(
        "--checkpoint",
        dest="checkpoint",
        action="store_true",
        default=None,
        help="checkpoint every run each epoch and resume from it (default: the preset's)",
    )
    ckpt.add_argument("--no-checkpoint", dest="checkpoint", action="store_false")
    parser.add_argument("--list", action="store_true", help="list the presets and exit")
    return parser


def _list_presets() -> int:
    names = preset_names()
    if not names:
        print(f"no presets in {presets_dir()}")
        return 0
    for name in names:
        try:
            preset = load_preset(name)
        except PlanError as err:
            print(f"{name:22s} (invalid: {err})")
            continue
        runs = preset.combination_count * len(preset.seeds)
        print(f"{name:22s} {runs:4d} runs  {preset.description}")
    return 0


def plan_main(argv: list[str] | None = None) -> int:
    """``aees plan PRESET [--seeds S] [--set K=V ...] [--output-root DIR] [--out FILE]``."""
    parser = _plan_parser()
    args = parser.parse_args(argv)
    if args.list:
        return _list_presets()
    if not args.preset:
        parser.error("a preset is required (aees plan --list shows them)")
    try:
        seeds = parse_seeds(args.seeds) if args.seeds is not None else None
        overrides = parse_overrides(args.overrides)
        manifest = build_plan(
            args.preset,
            seeds=seeds,
            overrides=overrides,
            output_root=args.output_root,
            checkpoint=args.checkpoint,
        )
        out = Path(args.out) if args.out else Path(manifest.output_root) / "manifest.json"
        if out.is_dir():
            raise PlanError(f"--out {str(out)!r} is a directory")
        write_manifest(manifest, out)
    except PlanError as err:
        parser.error(str(err))
    except OSError as err:
        parser.error(f"cannot write the manifest: {err.strerror or err} ({err.filename})")
    gpu = sum(run.needs_gpu for run in manifest.runs)
    print(
        f"wrote {out}: {len(manifest.runs)} runs of preset {manifest.preset} "
        f"(seeds {','.join(map(str, manifest.seeds))}; {gpu} need a GPU); "
        f"results under {manifest.output_root}"
    )
    print(f"next: aees sweep {out} --workers N")
    return 0


def _parse_gpus(text: str) -> list[int]:
    gpus = []
    for token in (t.strip() for t in text.split(",")):
        if not token.isdigit():
            raise ValueError(f"--gpus: {token!r} is not a GPU index (expected e.g. 0,1,2)")
        gpus.append(int(token))
    if len(set(gpus)) != len(gpus):
        raise ValueError(f"--gpus must not repeat an index, got {text!r}")
    return gpus


def _sweep_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="aees sweep",
        description="Run the pending runs of a manifest (made by aees plan), resuming by default.",
    )
    parser.add_argument("manifest", help="manifest JSON written by aees plan")
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    parser.add_argument(
        "--workers", type=int, default=None, help="runs at a time (local default: #gpus or 1)"
    )
    parser.add_argument("--gpus", help="local: GPU ids, one per worker slot, e.g. 0,1,2,3")
    parser.add_argument(
        "--address", help="ray: cluster address (auto, ray://host:port); default local"
    )
    parser.add_argument(
        "--output-root",
        help="write results and logs here (ray: storage every node sees); default the manifest's",
    )
    parser.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="skip runs whose result exists and matches the plan (default on)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing results that are kept otherwise"
    )
    parser.add_argument("--run-ids", help="comma-separated run ids to run (default: all)")
    parser.add_argument(
        "--grace-period",
        type=float,
        default=10.0,
        help="seconds between SIGTERM and SIGKILL when stopping runs (default 10)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress or summary output")
    return parser


def sweep_main(argv: list[str] | None = None) -> int:
    """``aees sweep MANIFEST [--executor local|ray] [--workers N] [--gpus ...] ...``."""
    from aees.experiments.executors import SweepError, run_local, run_ray

    parser = _sweep_parser()
    args = parser.parse_args(argv)
    try:
        gpus = _parse_gpus(args.gpus) if args.gpus else None
    except ValueError as err:
        parser.error(str(err))
    if args.executor == "ray" and gpus:
        parser.error("--gpus is for the local executor; Ray assigns GPUs to runs itself")
    if args.executor == "local" and args.address:
        parser.error("--address is for the ray executor")
    run_ids = [r.strip() for r in args.run_ids.split(",") if r.strip()] if args.run_ids else None
    if args.run_ids is not None and not run_ids:
        parser.error("--run-ids is empty")
    common = {
        "workers": args.workers,
        "resume": args.resume,
        "overwrite": args.overwrite,
        "run_ids": run_ids,
        "output_root": args.output_root,
        "grace_period": args.grace_period,
        "progress": not args.quiet,
    }
    try:
        if args.executor == "ray":
            summary = run_ray(args.manifest, address=args.address, **common)
        else:
            summary = run_local(args.manifest, gpus=gpus, **common)
    except (SweepError, PlanError) as err:
        parser.error(str(err))
    except OSError as err:
        parser.error(f"{err.filename or args.manifest}: {err.strerror or err}")
    return summary.exit_code


def main(argv: list[str] | None = None) -> int:
    """``python -m aees.experiments.sweep_cli {plan,sweep} ...``."""
    raw = list(sys.argv[1:] if argv is None else argv)
    commands = {"plan": plan_main, "sweep": sweep_main}
    if not raw or raw[0] not in commands:
        print(
            "usage: python -m aees.experiments.sweep_cli {plan,sweep} ...",
            file=sys.stderr,
        )
        return 2
    return commands[raw[0]](raw[1:])


if __name__ == "__main__":
    sys.exit(main())
