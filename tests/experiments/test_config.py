"""RunConfig is the one run-configuration schema: its fields generate the flags, and a config
built in code is checked as the CLI checks a command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from aees.runner.config import ConfigError, RunConfig, field_specs
from aees.runner.tasks import task_names, task_parser

FIXTURE = Path(__file__).with_name("train_flags_before.json")


def _flags(parser: argparse.ArgumentParser) -> list[dict]:
    out = []
    for group in parser._action_groups:
        for a in group._group_actions:
            if not a.option_strings:
                continue
            out.append(
                {
                    "group": group.title,
                    "option_strings": list(a.option_strings),
                    "dest": a.dest,
                    "default": parser.get_default(a.dest) if a.dest != "help" else None,
                    "type": getattr(a.type, "__name__", None) if a.type is not None else None,
                    "choices": list(a.choices) if a.choices is not None else None,
                    "nargs": a.nargs,
                    "const": a.const,
                    "action": type(a).__name__,
                    "help": a.help,
                    "metavar": a.metavar,
                }
            )
    return out


@pytest.mark.parametrize("task", sorted(json.loads(FIXTURE.read_text())))
def test_generated_flags_are_the_flags_of_before(task):
    """The fixture is ``aees train <task> -h``'s flags captured before the flags were generated
    from RunConfig's fields: names, groups, order, defaults, types, choices and help. Flags added
    since may sit anywhere; every flag of the fixture is still there, unchanged and in order."""
    before = json.loads(FIXTURE.read_text())[task]
    now = json.loads(json.dumps(_flags(task_parser(task)), default=repr))
    by_dest = {flag["dest"]: flag for flag in now}
    assert [by_dest.get(flag["dest"]) for flag in before] == before
    order = [flag["dest"] for flag in now if flag["dest"] in {f["dest"] for f in before}]
    assert order == [flag["dest"] for flag in before]


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        ({"lr": -1.0}, "lr", "--lr must be > 0, got -1.0"),
        ({"epochs": 0}, "epochs", "--epochs must be > 0, got 0"),
        ({"ema_alpha": 1.5}, "ema_alpha", "--ema-alpha must be in (0, 1], got 1.5"),
        ({"momentum": float("nan")}, "momentum", "--momentum must be finite, got nan"),
        ({"optimizer": "Adam"}, "optimizer", "--optimizer must be one of AdamW, SGD"),
        ({"lr_candidates": (1.0, 1.0)}, "lr_candidates", "--lr-candidates must not repeat"),
        ({"seed": -1}, "seed", "--seed must be in [0, 4294967295], got -1"),
        ({"device": "gpu"}, "device", "--device must be auto, cpu, cuda or cuda:<index>"),
        ({"resume": True}, "resume", "--resume needs --checkpoint-dir"),
        (
            {"label_noise_rate": 0.2},
            "label_noise_rate",
            "--label-noise-rate must be 0.0 when --label-noise-type is none",
        ),
        (
            {"control_mode": "uniform-random"},
            "lr_candidates",
            "--lr-candidates must be exactly 0.5,1.0,2.0 with --control-mode uniform-random",
        ),
    ],
)
def test_a_config_built_in_code_is_checked(kwargs, field, text):
    with pytest.raises(ValueError, match=f"RunConfig.{field}") as info:
        RunConfig(task_name="digits", **kwargs)
    assert isinstance(info.value, ConfigError) and info.value.field == field
    assert info.value.text.startswith(text)


def test_a_good_config_is_normalised_and_open_loop_defaults_are_filled():
    config = RunConfig(
        task_name="digits",
        control_mode="frequency-matched",
        lr_candidates=[0.5, 1, 2],
        noise_candidates="0",
        seed=3,
    )
    assert config.lr_candidates == (0.5, 1.0, 2.0) and config.noise_candidates == (0.0,)
    assert config.schedule_seed == 10_003 and config.aees_trace_root == "results/cifar_noisy"
    data = config.to_dict()
    assert data["lr_candidates"] == [0.5, 1.0, 2.0] and data["task_options"] == {}
    assert set(data) == {"task_name", "task_options", *field_specs()}


def test_every_flagged_field_has_one_group():
    from aees.runner.config import FLAG_GROUPS

    placed = [name for names in FLAG_GROUPS.values() for name in names]
    assert sorted(placed) == sorted(field_specs()) and len(placed) == len(set(placed))


@pytest.mark.parametrize("task", task_names())
def test_planner_flag_types_read_from_the_fields_match_the_parser(task):
    from aees.runner.tasks import train_flags
    from aees.sweep.manifest import flag_specs

    specs = flag_specs(task)
    flags = train_flags(task)
    assert set(specs) == set(flags)
    for dest, flag in flags.items():
        spec = specs[dest]
        if flag.switch:
            assert spec.kind == "bool", dest
        elif dest in ("lr_candidates", "noise_candidates"):
            assert spec.kind == "candidates"
        else:
            assert spec.kind == {int: "int", float: "float"}.get(flag.type, "str"), dest
        assert (tuple(spec.choices) if spec.choices else None) == flag.choices, dest


def test_config_value_reads_legacy_aliases():
    from aees.results import config_value

    assert config_value({"lr": 0.1, "base_lr": 0.2}, "lr") == 0.1
    assert config_value({"base_lr": 0.2}, "lr") == 0.2
    assert config_value({}, "lr") is None and config_value({}, "epochs", 3) == 3
