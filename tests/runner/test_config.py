"""RunConfig is the one run-configuration schema: its fields generate the flags, and a config
built in code is checked as the CLI checks a command line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from aees.runner.config import ConfigError, RunConfig, shared_specs
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
    assert set(data) == {"task_name", "task_options", *shared_specs()}


def test_every_flagged_field_has_one_group():
    from aees.runner.config import FLAG_GROUPS

    placed = [name for names in FLAG_GROUPS.values() for name in names]
    assert sorted(placed) == sorted(shared_specs()) and len(placed) == len(set(placed))


@pytest.mark.parametrize("task", task_names())
def test_the_parser_is_generated_from_the_option_specs(task):
    """``aees train <task>``'s flags are the task's option specs, in their order, with their
    kinds and choices (one flag model; a legacy task's own flags are read from it)."""
    from aees.runner.config import option_specs

    specs = option_specs(task)
    actions = [a for a in task_parser(task)._actions if a.option_strings and a.dest != "help"]
    assert [a.dest for a in actions] == list(specs)
    for action in actions:
        spec = specs[action.dest]
        if spec.kind == "bool":
            assert action.nargs == 0, action.dest
        else:
            assert {"int": int, "float": float}.get(spec.kind) is action.type, action.dest
        choices = tuple(str(c) for c in action.choices) if action.choices is not None else None
        assert choices == (tuple(spec.choices) if spec.choices else None), action.dest


def test_config_value_reads_legacy_aliases():
    from aees.results import config_value

    assert config_value({"lr": 0.1, "base_lr": 0.2}, "lr") == 0.1
    assert config_value({"base_lr": 0.2}, "lr") == 0.2
    assert config_value({}, "lr") is None and config_value({}, "epochs", 3) == 3


# --------------------------------------------------------------------------------------------
# One configuration, parsed once (issue 20): the walk of --episode-length
# --------------------------------------------------------------------------------------------


def test_a_config_built_in_code_is_what_aees_train_runs():
    """``RunConfig(task_name="digits")`` takes digits' defaults (episode length 20, 10 epochs,
    batch 64), as ``aees train digits`` does: compared through the CLI's own parse."""
    from aees.cli.train import parse_train_args

    config, _ = parse_train_args(["train", "digits"])
    in_code = RunConfig(task_name="digits")
    assert in_code.episode_length == 20 and in_code.epochs == 10 and in_code.batch_size == 64
    assert config == in_code
    assert config == RunConfig.for_task("digits")


def test_one_cli_parse_builds_one_config_and_checks_each_value_once(monkeypatch):
    """``aees train digits --episode-length 50``: one RunConfig is built and its
    ``--episode-length`` bound is checked once (before: two builds, the bound twice)."""
    from aees.cli.train import parse_train_args

    builds, checks = [], []
    post_init = RunConfig.__post_init__
    bound = RunConfig._bound_problem

    def counting_post_init(self):
        builds.append(self.task_name)
        post_init(self)

    def counting_bound(self, name, spec):
        if name == "episode_length":
            checks.append(getattr(self, name))
        return bound(self, name, spec)

    monkeypatch.setattr(RunConfig, "__post_init__", counting_post_init)
    monkeypatch.setattr(RunConfig, "_bound_problem", counting_bound)
    config, _ = parse_train_args(["train", "digits", "--episode-length", "50"])
    assert config.episode_length == 50
    assert builds == ["digits"] and checks == [50]


# --------------------------------------------------------------------------------------------
# Adding a task touches its own file and its registration only
# --------------------------------------------------------------------------------------------


class _TinyTask:
    """A two-class task of 64 random points: its record, its option, validate and build."""

    name = "tiny"
    dataset_name = "tiny-points"
    model_name = "tiny_linear"

    def validate(self, config):
        if config.task_options["width"] > 64:
            raise ConfigError("width", f"--width must be <= 64, got {config.task_options['width']}")

    def build(self, config, device):
        import torch
        from torch import nn
        from torch.utils.data import TensorDataset

        from aees.runner.tasks import TaskSetup

        gen = torch.Generator().manual_seed(0)
        width = config.task_options["width"]
        x = torch.randn(64, width, generator=gen)
        y = (x[:, 0] > 0).long()
        data = TensorDataset(x, y)
        return TaskSetup(
            model=nn.Linear(width, 2).to(device),
            train_data=data,
            val_data=data,
            loss_fn=nn.functional.cross_entropy,
        )


def _register_tiny(monkeypatch):
    from aees.runner.config import OptionSpec
    from aees.runner.tasks import registry

    info = registry.TaskInfo(
        "tiny",
        "Tiny",
        "other",
        "tests:unused",
        dataset_name="tiny-points",
        model_name="tiny_linear",
        description="A tiny task registered by a test.",
        cpu_only=True,
        defaults={"epochs": 1, "batch_size": 16, "episode_length": 2},
        options=(
            OptionSpec(
                name="width", kind="int", default=4, check=">0", help="input width", group="tiny"
            ),
        ),
    )
    monkeypatch.setitem(registry.TASKS, "tiny", info)  # gone again after the test
    registry.register_task(info, _TinyTask())


def test_a_task_registered_in_a_test_trains_through_the_cli(monkeypatch, tmp_path, capsys):
    from aees import cli
    from aees.runner.config import option_specs
    from aees.runner.tasks import task_parser

    _register_tiny(monkeypatch)
    assert option_specs("tiny")["width"].default == 4
    assert option_specs("tiny")["episode_length"].default == 2
    assert "--width WIDTH" in task_parser("tiny").format_help()
    assert RunConfig(task_name="tiny").task_options == {"width": 4}

    out = tmp_path / "tiny.json"
    argv = ["train", "tiny", "--width", "3", "--output", str(out), "--device", "cpu", "--quiet"]
    assert cli.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["task_name"] == "tiny" and result["dataset_name"] == "tiny-points"
    assert result["config"]["task_options"] == {"width": 3}
    assert result["config"]["epochs"] == 1 and result["config"]["episode_length"] == 2
    labels = {k: result["config"][k] for k in ("report_family", "task_label", "optimizer_label")}
    assert labels == {"report_family": "other", "task_label": "Tiny", "optimizer_label": "AdamW"}

    for bad, text in (
        (["--width", "0"], "--width must be > 0, got 0"),
        (["--width", "65"], "<= 64"),
    ):
        with pytest.raises(SystemExit) as stop:
            cli.main(["train", "tiny", *bad, "--output", str(tmp_path / "no.json")])
        assert stop.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and text in err[0] and err[0].startswith("aees train tiny: error:")
    assert not (tmp_path / "no.json").exists()
