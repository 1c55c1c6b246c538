"""The ``aees`` console script.

Subcommands:

* ``aees train <task> [flags]`` -- one training run, one result JSON (``aees train digits -h``);
* ``aees plan`` / ``aees sweep`` -- run plans (presets in ``configs/``) and their execution;
* ``aees report RESULTS_DIR --out DIR`` -- tables, figures, ``index.md`` / ``index.html``;
* ``aees demo`` -- the library demonstration on digits.

Every invalid flag ends with exit status 2 and one line naming it, before any data is loaded.
"""

from __future__ import annotations

import argparse
import sys

from aees.experiments.config import (
    EXIT_DIVERGED,
    OneLineArgumentParser,
    RunConfig,
    add_common_arguments,
    validate_common_args,
)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``aees`` parser and, per task, its ``aees train <task>`` sub-parser."""
    from aees.experiments.tasks import get_task, task_names

    parser = OneLineArgumentParser(prog="aees", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="the digits study: 7 methods x 3 seeds, swept and reported (CPU, a few minutes)",
        description="Plan, sweep and report the digits study (configs/demo.toml).",
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
        task = get_task(name)
        task_parser = tasks.add_parser(
            name, help=f"{task.dataset_name} / {task.model_name}", description=task.__doc__
        )
        add_common_arguments(task_parser, style=getattr(task, "flag_style", "cifar"))
        task.add_arguments(task_parser)
        task_parser.set_defaults(**task.defaults)
        task_parsers[name] = task_parser
    return parser, task_parsers


def parse_train_args(
    argv: list[str] | None = None, *, prog: str | None = None
) -> tuple[RunConfig, argparse.Namespace]:
    """Parse and validate ``train <task> [flags]``; exits with status 2 on a bad flag.

    ``prog`` renames the task's parser in help and errors (the seed's ``task_*.py`` scripts).
    """
    from aees.experiments.results import is_secret_key
    from aees.experiments.tasks import get_task

    parser, task_parsers = build_parser()
    if prog is not None:
        for task_parser in task_parsers.values():
            task_parser.prog = prog
    args = parser.parse_args(argv)
    if args.command != "train":
        parser.error("expected the train subcommand")
    # Secrets by destination, before a task's validate() moves them out of the namespace: the
    # command line recorded in the result is redacted by these values, however they were passed.
    args.secret_values = tuple(
        value
        for dest, value in vars(args).items()
        if is_secret_key(dest) and isinstance(value, str) and value
    )
    task = get_task(args.task)
    task_parser = task_parsers[args.task]
    validate_common_args(task_parser, args)
    task.validate(task_parser, args)
    config = RunConfig.from_args(args, task_name=args.task, task_option_names=task.option_names)
    return config, args


def _train(argv: list[str] | None, prog: str | None = None) -> int:
    from aees.experiments.config import UserError
    from aees.experiments.engine import run
    from aees.experiments.results import redact_values
    from aees.experiments.tasks import get_task

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
            # NLP tasks: build and save the tokenized dataset, then stop (thesis §2.2.2).
            task.pretokenize(config)
            return 0
        result, output = run(config, task, argv=command)
    except UserError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return 2
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


def task_script_main(task: str, argv: list[str] | None = None) -> int:
    """What ``experiments/task_<task>.py`` runs: ``aees train <task>`` under the script's name."""
    import os

    args = list(sys.argv[1:] if argv is None else argv)
    return _train(["train", task, *args], prog=os.path.basename(sys.argv[0]) or task)


#: Subcommands whose own parsers live with their code (imported only when used).
_DELEGATED = {
    "report": ("aees.reporting.cli", "main", "tables, figures and index.html from result JSON"),
    "plan": ("aees.experiments.sweep_cli", "plan_main", "expand a preset into a run manifest"),
    "sweep": ("aees.experiments.sweep_cli", "sweep_main", "execute a manifest (local or Ray)"),
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
    return int(getattr(module, func)(argv))


def main(argv: list[str] | None = None) -> int:
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
                from aees.experiments.library_demo import main as demo_main
            except ImportError as err:  # scikit-learn missing
                print(f"aees demo: error: {err}; pip install 'aees[demo]'", file=sys.stderr)
                return 2
            demo_main(epochs=args.epochs or 15)
            return 0
        from aees.experiments.demo import run_demo

        return run_demo(
            results_dir=args.results_dir,
            report_dir=args.report_dir,
            workers=args.workers,
            epochs=args.epochs,
            seeds=args.seeds,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
