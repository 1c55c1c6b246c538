"""``aees plan`` and ``aees sweep``: their parsers and what they run (the sweep package is
imported only when used)."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from aees.console import OneLineArgumentParser


def _plan_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="aees plan",
        description="Expand a preset (a packaged or --configs preset name, or a TOML file) into "
        "a run manifest.",
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
    parser.add_argument(
        "--configs",
        metavar="DIR",
        help="also read presets from DIR (*.toml), before the packaged ones: adds presets or "
        "overrides those of the same name (as $AEES_CONFIGS does)",
    )
    return parser


@contextlib.contextmanager
def _user_presets(directory: str | None) -> Iterator[None]:
    """``--configs DIR``: ``$AEES_CONFIGS`` for the duration of one command."""
    from aees.sweep.plan import PRESETS_ENV

    if directory is None:
        yield
        return
    before = os.environ.get(PRESETS_ENV)
    os.environ[PRESETS_ENV] = directory
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PRESETS_ENV, None)
        else:
            os.environ[PRESETS_ENV] = before


def _list_presets() -> int:
    from aees.sweep.errors import PlanError
    from aees.sweep.plan import load_preset, preset_dirs, preset_names

    names = preset_names()
    if not names:
        print(f"no presets in {', '.join(map(str, preset_dirs()))}")
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
    """``aees plan PRESET [--seeds S] [--set K=V ...] [--output-root DIR] [--out FILE]
    [--configs DIR]``."""
    from aees.sweep.errors import PlanError

    parser = _plan_parser()
    args = parser.parse_args(argv)
    if args.configs is not None and not os.path.isdir(args.configs):
        parser.error(f"--configs {args.configs!r} is not a directory")
    try:
        with _user_presets(args.configs):
            return _plan(parser, args)
    except PlanError as err:  # $AEES_CONFIGS names no directory
        parser.error(str(err))


def _plan(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """``aees plan`` after its flags are parsed (presets looked up as :func:`plan_main` set)."""
    from aees.sweep.errors import PlanError
    from aees.sweep.manifest import gpu_use, write_manifest
    from aees.sweep.plan import build_plan, parse_overrides, parse_seeds

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
    uses = [gpu_use(run.task, run.flags) for run in manifest.runs]
    print(
        f"wrote {out}: {len(manifest.runs)} runs of preset {manifest.preset} "
        f"(seeds {','.join(map(str, manifest.seeds))}; {_gpu_summary(uses)}); "
        f"results under {manifest.output_root}"
    )
    print(f"next: aees sweep {out} --workers N")
    return 0


def _gpu_summary(uses: list[str]) -> str:
    """How a plan's runs use GPUs (:func:`aees.sweep.manifest.gpu_use` of each), in words:
    ``device cuda`` needs one, ``auto`` uses one where there is one and runs on the CPU
    otherwise (docs/protocols.md §15)."""
    parts = []
    if uses.count("required"):
        parts.append(f"{uses.count('required')} need a GPU (device cuda)")
    if uses.count("if-available"):
        parts.append(f"{uses.count('if-available')} use a GPU where there is one, else the CPU")
    if uses.count("none"):
        parts.append(f"{uses.count('none')} run on the CPU")
    return ", ".join(parts)


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
    from aees.sweep.progress import EARLY_STOP_RUNS

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
        "--runs-per-gpu",
        type=int,
        default=None,
        metavar="K",
        help="K runs share each GPU (local: with --gpus; ray: 1/K GPU per run)",
    )
    parser.add_argument(
        "--min-free-mib",
        type=int,
        default=None,
        help="local, with --runs-per-gpu: free GPU memory a run waits for (default 4096; "
        "checked with nvidia-smi when present)",
    )
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
    select = parser.add_mutually_exclusive_group()
    select.add_argument("--run-ids", help="comma-separated run ids to run (default: all)")
    select.add_argument(
        "--failed", action="store_true", help="run only the runs whose status is failed"
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help=f"do not stop when the first {EARLY_STOP_RUNS} runs all fail with the same error",
    )
    parser.add_argument(
        "--allow-tracking-uri",
        action="append",
        default=[],
        metavar="URI",
        help="let runs report to this MLflow tracking server (repeatable); a manifest naming "
        "another server is refused",
    )
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
    from aees.sweep.errors import PlanError, SweepError
    from aees.sweep.local import run_local
    from aees.sweep.ray import run_ray

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
    if args.executor == "local" and args.runs_per_gpu is not None and not gpus:
        parser.error("--runs-per-gpu needs --gpus (the GPUs the runs share)")
    if args.executor == "ray" and args.min_free_mib is not None:
        parser.error("--min-free-mib is for the local executor; Ray counts GPU fractions")
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
        "failed_only": args.failed,
        "allow_tracking_uris": args.allow_tracking_uri,
        "keep_going": args.keep_going,
    }
    try:
        if args.executor == "ray":
            summary = run_ray(
                args.manifest, address=args.address, runs_per_gpu=args.runs_per_gpu, **common
            )
        else:
            summary = run_local(
                args.manifest,
                gpus=gpus,
                runs_per_gpu=args.runs_per_gpu,
                min_free_mib=args.min_free_mib,
                **common,
            )
    except (SweepError, PlanError) as err:
        parser.error(str(err))
    except OSError as err:
        parser.error(f"{err.filename or args.manifest}: {err.strerror or err}")
    return summary.exit_code
