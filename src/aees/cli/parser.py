"""The ``aees`` argument parser: the subcommands and, per task, ``aees train <task>``'s flags
(generated from the task's option specs, :func:`aees.runner.config.option_specs`)."""

from __future__ import annotations

import argparse
import re

from aees.cli.report import report_main
from aees.cli.sweep import plan_main, sweep_main
from aees.console import OneLineArgumentParser

#: The subcommands besides train and demo: name -> (their main, the package they need, imported
#: first so that a missing extra is one line; their help).
COMMANDS = {
    "report": (
        report_main,
        "aees.reporting.commands",
        "tables, figures and index.html from result JSON",
    ),
    "plan": (plan_main, "aees.sweep.plan", "expand a preset into a run manifest"),
    "sweep": (sweep_main, "aees.sweep.local", "execute a manifest (local or Ray)"),
}

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

    for name, (_, _, text) in COMMANDS.items():
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
