"""The argparse side of the configuration: ``aees train <task>``'s flags generated from the
option specs (:func:`add_options`)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from aees.runner.config.options import (
    FLAG_STYLES,
    SAME,
    OptionSpec,
)


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
