"""``aees train <task>``: parse once into one :class:`~aees.runner.config.RunConfig`, run it,
write its result; also what the seed's ``experiments/task_*.py`` scripts run
(:func:`task_script_main`)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from typing import Any, NoReturn

from aees.cli.parser import build_parser
from aees.runner.config import (
    EXIT_DIVERGED,
    ConfigError,
    RunConfig,
    RunWarning,
    check_machine,
    option_specs,
)


def parse_train_args(
    argv: list[str] | None = None, *, prog: str | None = None
) -> tuple[RunConfig, argparse.Namespace]:
    """Parse and validate ``train <task> [flags]``; exits with status 2 on a bad flag.

    ``prog`` renames the task's parser in help and errors (the seed's ``task_*.py`` scripts).
    """
    from aees.results import is_secret_key

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
    # parse -> values -> one RunConfig, each value checked once -> the machine's checks
    values = {name: getattr(args, name) for name in option_specs(args.task)}
    try:
        config = RunConfig.for_task(args.task, **values)
    except ConfigError as err:
        task_parser.error(err.text)
    return check_machine(task_parser, config), args


def train(argv: list[str] | None, prog: str | None = None) -> int:
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
    return train(["train", task, *args], prog=os.path.basename(sys.argv[0]) or task)
