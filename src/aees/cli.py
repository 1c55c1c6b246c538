"""The ``aees`` console script.

Subcommands:

* ``aees train <task> [flags]`` -- one training run, one result JSON (``aees train digits -h``);
* ``aees plan`` / ``aees sweep`` -- run plans (presets shipped in ``aees/presets/``, plus
  ``$AEES_CONFIGS`` / ``--configs DIR``) and their execution;
* ``aees report RESULTS_DIR --out DIR`` -- tables, figures, ``index.md`` / ``index.html``;
* ``aees demo`` -- the library demonstration on digits.

Every invalid flag ends with exit status 2 and one line naming it, before any data is loaded.

This module is the one argparse front of the project, and the only one that imports across the
runner, sweep and reporting packages: every subcommand's parser lives here, as do the parsers of
the seed's scripts (``experiments/task_*.py``, ``scripts/tables/make_*.py``,
``scripts/plots/*_plots.py``, ``scripts/report_*.py``), which call :func:`task_script_main`,
:func:`table_script`, :func:`figure_script`, :func:`console_script` and
:func:`attribution_script`. ``python -m aees.cli ...`` works without the console script.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from aees.console import OneLineArgumentParser
from aees.runner.config import (
    EXIT_DIVERGED,
    ConfigError,
    RunConfig,
    RunWarning,
    check_machine,
    config_values,
    option_specs,
    validate_common_args,
)

__all__ = [
    "DEMO_PRESET",
    "attribution_script",
    "build_parser",
    "console_script",
    "figure_script",
    "main",
    "parse_train_args",
    "plan_main",
    "report_main",
    "run_demo",
    "sweep_main",
    "table_script",
    "task_script_main",
]


#: What ``aees --help`` says above the subcommands (plain text, not the docstring's markup).
DESCRIPTION = (
    "AEES (adaptive episodic exploration scheduling): train one run (aees train TASK), plan and "
    "sweep a grid of runs (aees plan, aees sweep), report them (aees report), or see it all on "
    "the digits study (aees demo)."
)


def plain_text(doc: str | None) -> str | None:
    """The first paragraph of a docstring as help text: without reStructuredText markup
    (````literal````, ``:role:`target```) and joined into one line."""
    if not doc:
        return doc
    first = doc.strip().split("\n\n", 1)[0]
    first = re.sub(r":[a-z:]+:`~?([^`]+)`", r"\1", first).replace("``", "")
    return " ".join(first.split())


def build_parser(
    only: str | None = None,
) -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``aees`` parser and, per task, its ``aees train <task>`` sub-parser (``only``: the
    flags of that task only, so a run imports no other task's module)."""
    from aees.runner.tasks import TASKS, add_task_arguments, task_info, task_names

    parser = OneLineArgumentParser(prog="aees", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="the digits study: 7 methods x 3 seeds, swept and reported (CPU, a few minutes)",
        description="Plan, sweep and report the digits study (the demo preset).",
    )
    demo.add_argument("--epochs", type=int, default=None, help="epochs per run (preset: 30)")
    demo.add_argument("--workers", type=int, default=2, help="runs at a time (default 2)")
    demo.add_argument("--seeds", default=None, help="e.g. 0-2 or 0,1 (preset: 0-2)")
    demo.add_argument("--results-dir", default="runs/demo", help="default runs/demo")
    demo.add_argument("--report-dir", default="reports/demo", help="default reports/demo")
    demo.add_argument(
        "--library",
        action="store_true",
        help="instead: the 30-second library demo (AdamW vs AEES, one process)",
    )

    for name, (_, _, text) in _DELEGATED.items():
        sub.add_parser(name, help=f"{text} (aees {name} -h)", add_help=False)
    train = sub.add_parser("train", help="train one run of a task and write its result JSON")
    tasks = train.add_subparsers(dest="task", required=True, metavar="TASK")
    task_parsers: dict[str, argparse.ArgumentParser] = {}
    for name in task_names():
        info = TASKS[name]  # the record as registered: a legacy task's module stays unloaded
        task_parser = tasks.add_parser(
            name,
            help=f"{info.dataset_name} / {info.model_name}",
            description=plain_text(task_info(name).description if only == name else None),
        )
        if only in (None, name):
            add_task_arguments(task_parser, name)
        task_parsers[name] = task_parser
    return parser, task_parsers


def parse_train_args(
    argv: list[str] | None = None, *, prog: str | None = None
) -> tuple[RunConfig, argparse.Namespace]:
    """Parse and validate ``train <task> [flags]``; exits with status 2 on a bad flag.

    ``prog`` renames the task's parser in help and errors (the seed's ``task_*.py`` scripts).
    """
    from aees.results import is_secret_key
    from aees.runner.tasks import get_task, task_info

    raw = list(sys.argv[1:] if argv is None else argv)
    parser, task_parsers = build_parser(raw[1] if len(raw) > 1 else None)
    if prog is not None:
        for task_parser in task_parsers.values():
            task_parser.prog = prog
    args = parser.parse_args(raw)
    if args.command != "train":
        parser.error("expected the train subcommand")
    # Secrets by destination, before a task's validate() moves them out of the namespace: the
    # command line recorded in the result is redacted by these values, however they were passed.
    args.secret_values = tuple(
        value
        for dest, value in vars(args).items()
        if is_secret_key(dest) and isinstance(value, str) and value
    )
    task_parser = task_parsers[args.task]
    if task_info(args.task).legacy:  # until every task is converted (contract A)
        task = get_task(args.task)
        validate_common_args(task_parser, args)
        task.validate(task_parser, args)
        options = {name: getattr(args, name) for name in task.option_names}
        config = RunConfig(task_name=args.task, task_options=options, **config_values(args))
        return config, args
    # parse -> values -> one RunConfig, each value checked once -> the machine's checks
    values = {name: getattr(args, name) for name in option_specs(args.task)}
    try:
        config = RunConfig.for_task(args.task, **values)
    except ConfigError as err:
        task_parser.error(err.text)
    return check_machine(task_parser, config), args


def _train(argv: list[str] | None, prog: str | None = None) -> int:
    status = _train_run(argv, prog)
    if _is_torchrun_rank():
        _end_rank_process(status)
    return status


def _is_torchrun_rank() -> bool:
    """This process is one rank of a ``torchrun`` job that joined ``torch.distributed``."""
    from aees.runner.ddp import joins_torchrun_job

    return joins_torchrun_job() and "torch.distributed" in sys.modules


def _end_rank_process(status: int) -> NoReturn:
    """End a ``torchrun`` rank whose run is over: output flushed, then ``os._exit``.

    By now the run has written its files and destroyed its process group, but gloo's threads
    (two worker loops and the TCP event loop) outlive ``destroy_process_group`` (DDP's reducer
    keeps the group alive), and a rank whose interpreter tears down around them could abort
    with SIGABRT ("terminate called without an active exception") after the result was
    written, failing the whole job (docs/protocols.md §14). Leaving with ``os._exit`` finalizes
    nothing, so nothing can touch those threads.
    """
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed or broken: nothing more to say
            stream.flush()
    os._exit(status)


def _train_run(argv: list[str] | None, prog: str | None) -> int:
    from aees.console import UserError
    from aees.results import redact_values
    from aees.results.io import out_of_space
    from aees.results.secrets import redact_uris
    from aees.runner.engine import run
    from aees.runner.tasks import get_task

    config, args = parse_train_args(argv, prog=prog)
    if prog is not None:
        command = list(sys.argv)
    else:
        command = ["aees", *(sys.argv[1:] if argv is None else argv)]
    command = redact_values(command, args.secret_values)
    name = prog or f"aees train {args.task}"
    task = get_task(args.task)
    try:
        if getattr(args, "pretokenize_only", False):
            # NLP tasks: build and save the tokenized dataset, then stop (docs/protocols.md §2).
            task.pretokenize(config)
            return 0
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_run_warnings(name, warnings.showwarning)
            result, output = run(config, task, argv=command)
    except UserError as err:
        print(f"{name}: error: {redact_uris(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # out of space: one line, exit 1 (docs/protocols.md §3)
        space = out_of_space(err)
        if space is None:
            raise
        print(f"{name}: error: {space}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    if result is not None and result.diverged:
        print(
            f"{name}: diverged: non-finite training loss at step {result.diverged_at_step} "
            f"(epoch {result.diverged_at_epoch}); result marked diverged written to {output} "
            "(lower --lr, or --nonfinite skip to leave such steps out of AEES rewards)",
            file=sys.stderr,
        )
        return EXIT_DIVERGED
    return 0


def _one_line_run_warnings(name: str, show: Any) -> Any:
    """A ``warnings.showwarning`` that prints a :class:`RunWarning` as one line,
    ``aees train <task>: warning: ...`` (others as ``show`` does)."""

    def showwarning(
        message: Any, category: Any, filename: str, lineno: int, file: Any = None, line: Any = None
    ) -> None:
        if issubclass(category, RunWarning):
            print(f"{name}: warning: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def task_script_main(task: str, argv: list[str] | None = None) -> int:
    """What ``experiments/task_<task>.py`` runs: ``aees train <task>`` under the script's name."""
    import os

    args = list(sys.argv[1:] if argv is None else argv)
    return _train(["train", task, *args], prog=os.path.basename(sys.argv[0]) or task)


#: Subcommands whose packages are imported only when used (a missing extra is one line).
_DELEGATED = {
    "report": (
        "aees.reporting.commands",
        "report_main",
        "tables, figures and index.html from result JSON",
    ),
    "plan": ("aees.sweep.plan", "plan_main", "expand a preset into a run manifest"),
    "sweep": ("aees.sweep.local", "sweep_main", "execute a manifest (local or Ray)"),
}


def _delegate(command: str, argv: list[str]) -> int:
    import importlib

    module_name, func, _ = _DELEGATED[command]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        extra = "report" if command == "report" else "sweep"
        print(
            f"aees {command}: error: {err}; install with pip install 'aees[{extra}]'",
            file=sys.stderr,
        )
        return 2
    del module
    return int(globals()[func](argv))


def main(argv: list[str] | None = None) -> int:
    try:
        status = _main(argv)
        sys.stdout.flush()  # here, where a closed pipe can be caught, not at interpreter exit
        return status
    except BrokenPipeError:
        # the reader went away (``aees plan --list | head``): stop quietly, as ``seq | head``
        # does, and keep the interpreter from a second error when it flushes at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE


def _main(argv: list[str] | None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw[:1] == ["train"]:
        return _train(raw)
    if raw[:1] and raw[0] in _DELEGATED:
        return _delegate(raw[0], raw[1:])
    parser, _ = build_parser()
    args = parser.parse_args(raw)
    if args.command == "demo":
        if args.epochs is not None and args.epochs < 1:
            parser.error(f"--epochs must be >= 1, got {args.epochs}")
        if args.workers < 1:
            parser.error(f"--workers must be >= 1, got {args.workers}")
        if args.library:
            try:
                from aees.runner.library_demo import main as demo_main
            except ImportError as err:  # scikit-learn missing
                print(f"aees demo: error: {err}; pip install 'aees[demo]'", file=sys.stderr)
                return 2
            demo_main(epochs=args.epochs or 15)
            return 0
        return run_demo(
            results_dir=args.results_dir,
            report_dir=args.report_dir,
            workers=args.workers,
            epochs=args.epochs,
            seeds=args.seeds,
        )
    return 0


# --------------------------------------------------------------------------------------------
# aees plan and aees sweep
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# aees demo
# --------------------------------------------------------------------------------------------

DEMO_PRESET = "demo"

#: The CPU kernel settings of the demo's runs (docs/protocols.md §15.1). Each library picks its
#: kernels by the CPU it finds, and kernels of different levels round differently, so without
#: these an AVX-512 machine and an AVX2 one print different tables. Environment variables,
#: read when torch loads: the runs are subprocesses of the sweep, started with them set.
DEMO_KERNELS = {
    "ATEN_CPU_CAPABILITY": "avx2",  # torch's own vectorised kernels: the AVX2 build
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN (the convolutions): AVX2 code at most
    "MKL_CBWR": "COMPATIBLE",  # MKL (matrix products): the branch every x86-64 CPU runs alike
    "OMP_NUM_THREADS": "1",  # one thread per run: reductions split the same way everywhere
    "MKL_NUM_THREADS": "1",
}
DEMO_KERNEL_LEVEL = "AVX2"  # what provenance.hardware.cpu_capability reads under DEMO_KERNELS


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """``os.environ`` updated with ``values`` inside the block, restored after it."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _demo_kernel_notes(results: Path) -> list[str]:
    """Why this machine's table may differ from the README's, one line per reason (none: the
    runs used the pinned kernels at the AVX2 level, so the README's table applies)."""
    import platform

    from aees.results import load_run_result

    notes = []
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        notes.append(
            f"this CPU is {machine}, not x86-64: its kernels round differently, so the numbers "
            "differ from the README's table (made on x86-64)"
        )
    unpinned, levels = 0, set()
    for path in sorted(results.rglob("*.json")):
        if path.name == "manifest.json":
            continue
        try:
            provenance = load_run_result(path).provenance or {}
        except (OSError, ValueError):  # not a result: the report names it
            continue
        env = provenance.get("environment") or {}
        if any(env.get(name) != value for name, value in DEMO_KERNELS.items()):
            unpinned += 1
        levels.add(str((provenance.get("hardware") or {}).get("cpu_capability")))
    if unpinned:
        notes.append(
            f"{unpinned} reused run(s) ran without the demo's kernel settings (an older aees "
            f"demo): delete {results} and run it again to compare with the README's table"
        )
    if machine in ("x86_64", "amd64") and levels - {DEMO_KERNEL_LEVEL}:
        notes.append(
            f"torch ran its kernels at level {', '.join(sorted(levels))}, not "
            f"{DEMO_KERNEL_LEVEL} (this CPU lacks AVX2): the numbers differ from the README's table"
        )
    return notes


def run_demo(
    *,
    results_dir: str | Path = "runs/demo",
    report_dir: str | Path = "reports/demo",
    workers: int = 2,
    epochs: int | None = None,
    seeds: str | None = None,
) -> int:
    """``aees demo``: the thesis's noisy-label comparison in miniature, end to end, on 2 CPU cores.

    1. **Plan** the ``demo`` preset (``aees/presets/demo.toml``): scikit-learn digits with 40 %
       symmetric label noise; AdamW, AdamW + cosine, fixed LR x0.5, fixed LR x2, AEES-LR,
       AEES-LR + cosine and the random-arm control; 3 seeds -- 21 runs.
    2. **Sweep** them locally, 2 at a time (:func:`aees.sweep.local.run_local`), with a live
       progress line. Runs whose result is already complete are reused, so the demo is
       re-runnable and resumes after Ctrl-C.
    3. **Report** (:func:`aees.reporting.report.build_report`) into ``reports/demo``: tables
       (CSV, LaTeX, Markdown), figures (PNG, PDF) and ``index.html``; the main table is printed.

    Returns the process exit status.
    """
    from aees.sweep.errors import PlanError, SweepError
    from aees.sweep.local import run_local
    from aees.sweep.manifest import write_manifest
    from aees.sweep.plan import build_plan

    results = Path(results_dir).absolute()
    overrides = {"epochs": epochs} if epochs is not None else None
    try:
        manifest = build_plan(DEMO_PRESET, seeds=seeds, output_root=results, overrides=overrides)
    except PlanError as err:
        print(f"aees demo: error: {err}", file=sys.stderr)
        return 2
    manifest_path = write_manifest(manifest, results / "manifest.json")
    print(f"aees demo: {len(manifest.runs)} runs ({manifest.description})")
    print(f"aees demo: results in {results}, {workers} at a time (finished runs are reused)")
    settings = " ".join(f"{name}={value}" for name, value in DEMO_KERNELS.items())
    print(f"aees demo: CPU kernels pinned, for the same numbers on every x86-64 CPU: {settings}")
    try:
        with _environment(DEMO_KERNELS):
            summary = run_local(manifest_path, workers=workers)
    except SweepError as err:
        print(f"aees demo: error: {err}", file=sys.stderr)
        return 2
    if summary.exit_code != 0:
        print("aees demo: not every run finished; the report covers the ones that did.")
    try:
        from aees.reporting.report import build_report
    except ImportError as err:
        print(
            f"aees demo: error: {err}; install the report extra: pip install 'aees[report]'",
            file=sys.stderr,
        )
        return 2
    report = build_report(results, report_dir)
    for problem in report.problems:
        print(f"aees demo: skipped {problem}", file=sys.stderr)
    tables_dir = Path(report_dir) / "tables"
    main_tables = sorted(tables_dir.glob("cifar_noisy/*main_table.md")) or sorted(
        tables_dir.glob("*/*main*.md")
    )
    for table in main_tables[:1]:
        print(f"\n{table}:\n")
        print(table.read_text(encoding="utf-8").rstrip())
    notes = _demo_kernel_notes(results)
    for note in notes:
        print(f"aees demo: note: {note}")
    if main_tables and not notes:
        print("\naees demo: the kernels were the pinned AVX2 ones: this table is the README's.")
    tables = sorted({p.parent for p in report.paths if p.parent.parent.name == "tables"})
    figures = sorted(p for p in report.paths if p.suffix == ".png")
    print(f"\naees demo: report: {report.index_html} (and {report.index_md})")
    print(f"aees demo: {len(tables)} table families under {Path(report_dir) / 'tables'}")
    print(f"aees demo: {len(figures)} figures under {Path(report_dir) / 'figures'}")
    return summary.exit_code


# --------------------------------------------------------------------------------------------
# aees report and the seed's report scripts
# --------------------------------------------------------------------------------------------


def report_main(argv: Sequence[str] | None = None) -> int:
    """``aees report RESULTS_DIR --out DIR [--strict] [--quiet]`` (argv without "report").

    Exit status: 0 done; 1 nothing to report, a figure MISSING, or (``--strict``) an unreadable
    result file; 2 command-line misuse (bad flag, missing results directory).
    """
    from aees.reporting.commands import report_command

    parser = OneLineArgumentParser(
        prog="aees report",
        description="Tables (CSV, LaTeX, Markdown), figures (PNG, PDF) and an index page "
        "from a directory of result JSON files.",
    )
    parser.add_argument("results_dir", metavar="RESULTS_DIR", help="directory of result files")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--strict", action="store_true", help="fail on the first unreadable result file"
    )
    parser.add_argument("--quiet", action="store_true", help="print only problems")
    args = parser.parse_args(argv)
    return report_command(
        parser.prog, args.results_dir, args.out, strict=args.strict, quiet=args.quiet
    )


def _script_parser(
    prog: str, description: str, runs_root: str, out_dir: str
) -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--runs-root", default=runs_root, help=f"directory of result files (default {runs_root})"
    )
    parser.add_argument("--out-dir", default=out_dir, help=f"output directory (default {out_dir})")
    parser.add_argument("--strict", action="store_true", help="fail on an unreadable result file")
    return parser


def table_script(family: str, argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    """``make_<family>.py``: build one table family from ``--runs-root`` into ``--out-dir``."""
    from aees.reporting.commands import table_command
    from aees.reporting.families import FAMILIES

    spec = FAMILIES[family]
    prog = prog or f"make_{family}_tables.py"
    parser = _script_parser(
        prog, f"{spec.title}: tables from result JSON.", spec.runs_root, spec.out_dir
    )
    args = parser.parse_args(argv)
    return table_command(prog, family, args.runs_root, args.out_dir, strict=args.strict)


def figure_script(
    family: str, argv: Sequence[str] | None = None, *, prog: str | None = None
) -> int:
    """``<family>_plots.py``: every figure of one figure family; exit 1 if any is MISSING."""
    from aees.reporting.commands import figure_command

    prog = prog or f"{family}_plots.py"
    parser = _script_parser(
        prog,
        f"{family} figures (PNG + PDF + summary) from result JSON.",
        "results",
        f"reports/figures/{family}",
    )
    args = parser.parse_args(argv)
    return figure_command(prog, family, args.runs_root, args.out_dir, strict=args.strict)


def console_script(
    tasks: Sequence[str],
    default_root: str,
    default_csv: str,
    argv: Sequence[str] | None = None,
    *,
    prog: str,
) -> int:
    """``report_*.py``: print the console summary of ``tasks`` and write its CSV."""
    from aees.reporting.commands import console_command

    parser = OneLineArgumentParser(prog=prog, description="Console summary + CSV of result files.")
    parser.add_argument("--runs-root", default=default_root, help=f"(default {default_root})")
    parser.add_argument("--csv", default=default_csv, help=f"CSV of means (default {default_csv})")
    parser.add_argument("--no-runs", action="store_true", help="omit the per-seed lines")
    parser.add_argument("--strict", action="store_true", help="fail on an unreadable result file")
    args = parser.parse_args(argv)
    return console_command(
        prog, tasks, args.runs_root, args.csv, no_runs=args.no_runs, strict=args.strict
    )


def attribution_script(argv: Sequence[str] | None = None) -> int:
    """``aggregate_cifar_attribution_controls.py --aees-trace-root --controls-root --out-dir``.

    Exit status: 0 written (incomplete cells are reported as ``missing:`` lines), 1 no control
    runs or an output error, 2 a bad flag or a missing directory.
    """
    from aees.reporting.commands import attribution_command
    from aees.reporting.families.attribution import OUT_DIR

    prog = "aggregate_cifar_attribution_controls.py"
    parser = OneLineArgumentParser(
        prog=prog, description="AEES vs open-loop attribution controls (docs/reporting.md §5.10)."
    )
    parser.add_argument("--aees-trace-root", default="results/cifar_noisy")
    parser.add_argument("--controls-root", default="results/cifar_attribution_controls")
    parser.add_argument("--out-dir", default=OUT_DIR)
    parser.add_argument("--strict", action="store_true", help="fail on an unreadable result file")
    args = parser.parse_args(argv)
    return attribution_command(
        prog, args.aees_trace_root, args.controls_root, args.out_dir, strict=args.strict
    )


if __name__ == "__main__":
    sys.exit(main())
