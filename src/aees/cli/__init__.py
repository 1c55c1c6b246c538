"""The ``aees`` console script.

Subcommands:

* ``aees train <task> [flags]`` -- one training run, one result JSON (``aees train digits -h``);
* ``aees plan`` / ``aees sweep`` -- run plans (presets shipped in ``aees/presets/``, plus
  ``$AEES_CONFIGS`` / ``--configs DIR``) and their execution;
* ``aees report RESULTS_DIR --out DIR`` -- tables, figures, ``index.md`` / ``index.html``;
* ``aees demo`` -- the library demonstration on digits.

Every invalid flag ends with exit status 2 and one line naming it, before any data is loaded.

This package is the one argparse front of the project, and the only one that imports across the
runner, sweep and reporting packages, one module per subcommand: :mod:`aees.cli.parser` (the
``aees`` parser), :mod:`aees.cli.train` (also ``experiments/task_*.py``'s
:func:`~aees.cli.train.task_script_main`), :mod:`aees.cli.sweep` (plan, sweep),
:mod:`aees.cli.demo`, :mod:`aees.cli.report` (also the report scripts' parsers). ``python -m
aees.cli ...`` works without the console script.
"""

from __future__ import annotations

import os
import sys

from aees.cli.demo import run_demo
from aees.cli.parser import COMMANDS, build_parser
from aees.cli.train import train

__all__ = ["main"]


def _delegate(command: str, argv: list[str]) -> int:
    import importlib

    command_main, needs, _ = COMMANDS[command]
    try:
        importlib.import_module(needs)
    except ImportError as err:
        extra = "report" if command == "report" else "sweep"
        print(
            f"aees {command}: error: {err}; install with pip install 'aees[{extra}]'",
            file=sys.stderr,
        )
        return 2
    return int(command_main(argv))


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
        return train(raw)
    if raw[:1] and raw[0] in COMMANDS:
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
