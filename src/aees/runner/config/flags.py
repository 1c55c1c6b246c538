"""The argparse side of the configuration: flags generated from the option specs
(:func:`add_options`) and, for the tasks not converted yet, a parsed namespace's values
(:func:`config_values`, :func:`validate_common_args`)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from aees.runner.config.machine import check_machine, fail_with
from aees.runner.config.options import (
    FLAG_STYLES,
    NLP_METHODS,
    SAME,
    ConfigError,
    OptionSpec,
    flag_of,
    int_range_problem,
)
from aees.runner.config.run import RunConfig


def add_options(
    parser: argparse.ArgumentParser, specs: Mapping[str, OptionSpec], style: str = "cifar"
) -> list[argparse.Action]:
    """Add one flag per spec to ``parser``, in argument groups by :attr:`OptionSpec.group`
    (first appearance order); returns the actions in order.

    ``style="nlp"`` (the SST-2 / AG News runners): ``--scheduler-t-max`` counts optimizer steps.
    """
    if style not in FLAG_STYLES:
        raise ValueError(f"style must be one of {FLAG_STYLES}, got {style!r}")
    unit = "optimizer steps" if style == "nlp" else "epochs"
    groups: dict[str, Any] = {}
    actions: list[argparse.Action] = []
    for spec in specs.values():
        if spec.group not in groups:
            groups[spec.group] = parser.add_argument_group(spec.group or None)
        group = groups[spec.group]
        kwargs: dict[str, Any] = {}
        if spec.help is not None:
            kwargs["help"] = spec.help.format(unit=unit)
        if spec.metavar is not None:
            kwargs["metavar"] = spec.metavar
        if spec.kind == "bool":
            actions.append(group.add_argument(spec.flag, action="store_true", **kwargs))
            continue
        if spec.nargs is not None:
            kwargs["nargs"] = spec.nargs
            kwargs["const"] = spec.const
        if spec.choices is not None:
            kwargs["choices"] = spec.choices
        if spec.kind in ("int", "float"):
            kwargs["type"] = int if spec.kind == "int" else float
        default = spec.default if spec.cli_default is SAME else spec.cli_default
        actions.append(group.add_argument(spec.flag, default=default, **kwargs))
    return actions


def nlp_style_fields(method: str | None) -> dict[str, Any]:
    """The CIFAR-style field an NLP runner's ``--method`` means (``control_mode``; the base
    optimizer is ``--optimizer``, default AdamW as the thesis runners); ``{}`` for None."""
    if method is None:
        return {}
    return {"control_mode": NLP_METHODS[method]}


def config_values(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`RunConfig` field values a parsed namespace gives (the namespace is not
    changed): its fields of that name, ``--method`` translated by :func:`nlp_style_fields`,
    and an NLP task's own ``--label-noise-rate`` given a type (``symmetric`` when > 0)."""
    names = [f.name for f in fields(RunConfig) if f.name not in ("task_name", "task_options")]
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    values.update(nlp_style_fields(values.get("method")))
    if "label_noise_type" not in values and "label_noise_rate" in values:
        values["label_noise_type"] = "symmetric" if values["label_noise_rate"] > 0 else "none"
    return values


def _check_int_ranges(fail: Any, args: argparse.Namespace) -> None:
    """Every integer flag of the namespace fits the C types it ends up in.

    Seeds (``--seed``, ``--*-seed``) are in [0, :data:`MAX_SEED`]; every other integer is at
    most :data:`MAX_INT_FLAG` in magnitude (the per-flag rules then check the sign). Generic
    over the namespace, so a task's own integer flags are covered too.
    """
    for dest, value in sorted(vars(args).items()):
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        why = int_range_problem(dest, value)
        if why is not None:
            fail(flag_of(dest), why)


def validate_common_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> RunConfig:
    """Legacy tasks only (those still on ``validate(parser, args)``; goes with them): check the
    shared flags of a parsed namespace and write back to ``args`` what the config resolved
    (``output``, the candidate tuples, the open-loop ``schedule_seed`` / ``aees_trace_root``,
    ``mlflow``). Every integer flag (the task's too) fits a C type."""
    _check_int_ranges(fail_with(parser), args)
    try:
        config = RunConfig(task_name=args.task, **config_values(args))
    except ConfigError as err:
        parser.error(err.text)
    config = check_machine(parser, config)
    args.output = config.output
    for name in ("lr_candidates", "noise_candidates", "schedule_seed", "aees_trace_root", "mlflow"):
        if hasattr(args, name):
            setattr(args, name, getattr(config, name))
    return config
