"""RunResult: dict round trip, atomic save, loading (ours and thesis-era), errors, secrets,
variant ids and provenance."""

from __future__ import annotations

import importlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from aees.results import (
    LEGACY_SCHEMA_VERSION,
    REDACTED,
    SCHEMA_VERSION,
    RunResult,
    RunResultError,
    collect_provenance,
    is_secret_key,
    load_run_result,
    method_spec,
    result_to_dict,
    save_run_result,
    scrub_secrets,
    variant_id,
)
from aees.results import schema as results

HOST = {"hostname": "test-host", "cuda_available": False, "gpu_count": 0}

THESIS_KEYS = {
    "accuracy_per_tflop",
    "best_val_accuracy",
    "config",
    "controller_logs",
    "dataset_name",
    "episode_logs",
    "epoch_tflops",
    "epoch_wall_clock_seconds",
    "estimated_flops",
    "final_train_loss",
    "final_val_accuracy",
    "method_name",
    "model_name",
    "run_tag",
    "runtime_metrics",
    "seed",
    "task_name",
    "total_epochs",
    "total_steps",
    "train_accuracies",
    "train_losses",
    "val_accuracies",
    "wall_clock_seconds",
}
NEW_KEYS = {
    "schema_version",
    "variant",
    "provenance",
    "diagnostics",
    "diverged",
    "diverged_at_step",
    "diverged_at_epoch",
}

AEES_CONFIG: dict[str, Any] = {
    "control_mode": "adaptive",
    "optimizer": "AdamW",
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "batch_size": 128,
    "lr_scheduler": "cosine",
    "warmup_epochs": 0,
    "lr_candidates": [0.5, 1.0, 2.0],
    "noise_candidates": [0.0],
    "episode_length": 200,
    "structured_control_mode": "independent",
    "context_mode": "none",
    "context_trend_window": 3,
    "context_trend_epsilon": 1e-3,
    "reward_epsilon": 1e-8,
    "reward_instability_lambda": 0.0,
    "reward_clip_min": -1.0,
    "reward_clip_max": 1.0,
    "ema_alpha": 0.1,
    "seed": 3,
    "epochs": 3,
    "output": "results/x.json",
    "run_tag": None,
    "label_noise_type": "none",
    "label_noise_rate": 0.0,
    "task_name": "cifar100",
}


def make_result(**overrides: Any) -> RunResult:
    fields: dict[str, Any] = {
        "method_name": "AdaptiveScheduler",
        "task_name": "cifar100",
        "seed": 3,
        "model_name": "resnet18",
        "dataset_name": "CIFAR-100",
        "config": dict(AEES_CONFIG),
        "best_val_accuracy": 0.5,
        "final_val_accuracy": 0.25,
        "final_train_loss": 1.25,
        "total_steps": 30,
        "total_epochs": 3,
        "wall_clock_seconds": 12.0,
        "estimated_flops": 3e12,
        "accuracy_per_tflop": 0.5 / 3,
        "train_losses": [2.0, 1.5, 1.25],
        "train_accuracies": [0.1, 0.2, 0.3],
        "val_accuracies": [0.125, 0.5, 0.25],
        "epoch_wall_clock_seconds": [5.0, 3.5, 3.5],
        "epoch_tflops": [1.0, 1.0, 1.0],
        "episode_logs": {"episode_rewards": [0.1, -0.2], "selected_lr_values": [0.5, 2.0]},
        "controller_logs": None,
        "provenance": {"command": ["aees", "train"], "git": {"revision": None, "dirty": None}},
        "diagnostics": {"final_subset_accuracies": {"train_all_accuracy": 0.75}},
    }
    fields.update(overrides)
    return RunResult(**fields)


# ---------------------------------------------------------------------------------------------
# Round trips and the written file
# ---------------------------------------------------------------------------------------------


def test_to_dict_from_dict_round_trip() -> None:
    result = make_result(variant="custom-variant", run_tag="t")
    data = result.to_dict()
    assert set(data) == THESIS_KEYS | NEW_KEYS
    assert data["schema_version"] == SCHEMA_VERSION
    assert RunResult.from_dict(data) == result
    assert RunResult.from_dict(json.loads(json.dumps(data))) == result


def test_to_dict_converts_paths_tuples_and_non_str_keys() -> None:
    result = make_result(config={**AEES_CONFIG, "data_dir": Path("/data/c"), "pair": (1, 2)})
    data = result.to_dict()
    assert data["config"]["data_dir"] == "/data/c"
    assert data["config"]["pair"] == [1, 2]
    nested = make_result(diagnostics={1.5: {"k": (3,)}}).to_dict()
    assert nested["diagnostics"] == {"1.5": {"k": [3]}}


def test_save_then_load_round_trip(tmp_path: Path) -> None:
    result = make_result()
    path = save_run_result(result, tmp_path / "deep" / "dir" / "run.json", hardware=HOST)
    assert path == tmp_path / "deep" / "dir" / "run.json"
    loaded = load_run_result(path)
    assert loaded.schema_version == SCHEMA_VERSION
    assert not loaded.is_legacy
    assert loaded.variant == variant_id(AEES_CONFIG, "AdaptiveScheduler")
    assert loaded.runtime_metrics is not None
    assert loaded.runtime_metrics["seconds_per_step"] == 0.4
    assert loaded.runtime_metrics["hardware"]["hostname"] == "test-host"
    expected = make_result(
        variant=loaded.variant, runtime_metrics=loaded.runtime_metrics, run_tag=None
    )
    assert loaded == expected
    # Loading and saving again is a fixed point.
    again = save_run_result(loaded, tmp_path / "again.json")
    assert again.read_text() == path.read_text()


def test_written_json_format(tmp_path: Path) -> None:
    path = save_run_result(make_result(), tmp_path / "run.json", hardware=HOST)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    data = json.loads(text)
    assert set(data) == THESIS_KEYS | NEW_KEYS
    assert text == json.dumps(data, indent=2, sort_keys=True) + "\n"
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_nan_is_written_and_read_back(tmp_path: Path) -> None:
    path = save_run_result(make_result(final_train_loss=float("nan")), tmp_path / "r.json")
    assert '"final_train_loss": NaN' in path.read_text()
    assert load_run_result(path).final_train_loss != load_run_result(path).final_train_loss


def test_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    save_run_result(make_result(), tmp_path / "run.json", hardware=HOST)
    save_run_result(make_result(seed=4), tmp_path / "run.json", hardware=HOST)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]
    assert load_run_result(tmp_path / "run.json").seed == 4


def test_failed_write_keeps_old_file_and_removes_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = save_run_result(make_result(), tmp_path / "run.json", hardware=HOST)
    before = path.read_bytes()
    seen: list[str] = []

    def failing_replace(src: str, dst: Any) -> None:
        seen.append(Path(src).name)
        raise OSError("disk full")

    monkeypatch.setattr(results.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        save_run_result(make_result(seed=9), path, hardware=HOST)
    assert path.read_bytes() == before
    assert len(seen) == 1 and re.fullmatch(r"\.run\.json\..+\.tmp", seen[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


def test_config_diagnostics_move_to_top_level_on_save(tmp_path: Path) -> None:
    config = {**AEES_CONFIG, "diagnostics": {"label_noise": {"enabled": True}}}
    data = result_to_dict(make_result(config=config), hardware=HOST)
    assert "diagnostics" not in data["config"]
    assert data["diagnostics"]["label_noise"] == {"enabled": True}
    assert data["diagnostics"]["final_subset_accuracies"] == {"train_all_accuracy": 0.75}


# ---------------------------------------------------------------------------------------------
# Secrets
# ---------------------------------------------------------------------------------------------

SECRET = "hf_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3"


def test_secrets_are_never_written(tmp_path: Path) -> None:
    config = {
        **AEES_CONFIG,
        "hf_token": SECRET,
        "tokenized_dataset_dir": "/cache/tok",
        "pad_token": "[PAD]",
        "tracker": {"api_key": "k-123", "Password": "hunter2", "project": "aees"},
        "token": None,
    }
    provenance = {
        "command": ["aees", "train", "--hf-token", "plain-secret-1", "--api-key=plain-secret-2"],
        "command_str": "aees train --hf-token plain-secret-1 --lr 0.1",
        "note": f"token pasted here {SECRET}",
    }
    path = save_run_result(
        make_result(config=config, provenance=provenance), tmp_path / "run", hardware=HOST
    )
    text = path.read_text()
    for secret in (SECRET, "k-123", "hunter2", "plain-secret-1", "plain-secret-2"):
        assert secret not in text
    data = json.loads(text)
    assert data["config"]["hf_token"] == REDACTED
    assert data["config"]["token"] is None
    assert data["config"]["tracker"] == {
        "api_key": REDACTED,
        "Password": REDACTED,
        "project": "aees",
    }
    assert data["config"]["tokenized_dataset_dir"] == "/cache/tok"
    assert data["config"]["pad_token"] == "[PAD]"
    assert data["provenance"]["command"] == [
        "aees",
        "train",
        "--hf-token",
        REDACTED,
        f"--api-key={REDACTED}",
    ]
    assert data["provenance"]["command_str"] == f"aees train --hf-token {REDACTED} --lr 0.1"
    assert data["provenance"]["note"] == f"token pasted here {REDACTED}"


@pytest.mark.parametrize(
    ("key", "secret"),
    [
        ("hf_token", True),
        ("token", True),
        ("HF-TOKEN", True),
        ("--hf-token", True),
        ("api_key", True),
        ("wandb_api_key", True),
        ("password", True),
        ("client_secret", True),
        ("aws_access_key_id", True),
        ("tokenized_dataset_dir", False),
        ("max_tokens", False),
        ("eos_token", False),
        ("local_files_only", False),
        ("author", False),
    ],
)
def test_is_secret_key(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_scrub_secrets_does_not_mutate_its_input() -> None:
    data = {"a": {"hf_token": "x"}, "argv": ["--token", "y"]}
    scrubbed = scrub_secrets(data)
    assert data == {"a": {"hf_token": "x"}, "argv": ["--token", "y"]}
    assert scrubbed == {"a": {"hf_token": REDACTED}, "argv": ["--token", REDACTED]}


# ---------------------------------------------------------------------------------------------
# Thesis-era files
# ---------------------------------------------------------------------------------------------


def thesis_payload() -> dict[str, Any]:
    """A thesis-era noisy-CIFAR result: no schema_version / variant / provenance, label-noise
    diagnostics inside config, the HF-token leak, an unknown older config key."""
    return {
        "accuracy_per_tflop": 0.01,
        "best_val_accuracy": 0.52,
        "config": {
            "control_mode": "adaptive",
            "control_regime": "AdaptiveScheduler",
            "optimizer": "SGD",
            "momentum": 0.9,
            "lr": 0.1,
            "weight_decay": 5e-4,
            "batch_size": 128,
            "lr_scheduler": "none",
            "lr_candidates": [0.5, 1.0, 2.0],
            "noise_candidates": [0.0],
            "episode_length": 200,
            "structured_control_mode": "independent",
            "context_mode": "none",
            "seed": 2,
            "epochs": 2,
            "run_tag": "thesis",
            "hf_token": SECRET,
            "mode_names": ["lr0p5_n0", "lr1_n0", "lr2_n0"],
            "diagnostics": {
                "label_noise": {"enabled": True, "type": "symmetric", "rate": 0.4},
                "final_subset_accuracies": {"train_all_accuracy": 0.6},
            },
        },
        "controller_logs": None,
        "dataset_name": "CIFAR-100",
        "episode_logs": None,
        "epoch_tflops": None,
        "epoch_wall_clock_seconds": [10.0, 9.0],
        "estimated_flops": 5e13,
        "final_train_loss": 2.0,
        "final_val_accuracy": 0.5,
        "method_name": "AdaptiveScheduler",
        "model_name": "resnet18",
        "seed": 2,
        "task_name": "cifar100",
        "total_epochs": 2,
        "total_steps": 782,
        "train_accuracies": None,
        "train_losses": [3.0, 2.0],
        "val_accuracies": [0.52, 0.5],
        "wall_clock_seconds": 25.0,
        "runtime_metrics": {"hardware": {"hostname": "thesis-box", "gpu_count": 1}},
        "some_future_or_old_key": 1,
    }


def test_thesis_file_without_extension_loads_as_legacy(tmp_path: Path) -> None:
    path = tmp_path / "cifar100_sym40_seed2" / "sgd_aees_ep200_lr05102_base01"
    path.parent.mkdir()
    path.write_text(json.dumps(thesis_payload(), indent=2))
    result = load_run_result(path)
    assert result.schema_version == LEGACY_SCHEMA_VERSION
    assert result.is_legacy
    assert result.seed == 2
    assert result.run_tag == "thesis"  # absent at top level: taken from config.run_tag
    assert result.provenance == {}
    assert result.config["hf_token"] == REDACTED
    assert result.config["mode_names"] == ["lr0p5_n0", "lr1_n0", "lr2_n0"]
    assert "diagnostics" not in result.config
    assert result.diagnostics["label_noise"]["rate"] == 0.4
    assert result.variant == variant_id(result.config, "AdaptiveScheduler")
    assert result.variant.startswith("aees-sgd-none-lr[0.5,1,2]-n[0]-independent-none-ep200-")


def test_legacy_resave_keeps_thesis_hardware_and_legacy_mark(tmp_path: Path) -> None:
    path = tmp_path / "old"
    path.write_text(json.dumps(thesis_payload()))
    saved = save_run_result(load_run_result(path), tmp_path / "new.json")
    data = json.loads(saved.read_text())
    assert data["schema_version"] == LEGACY_SCHEMA_VERSION
    assert data["run_tag"] == "thesis"
    assert data["runtime_metrics"]["hardware"]["hostname"] == "thesis-box"
    assert data["runtime_metrics"]["seconds_per_epoch"] == 12.5
    assert SECRET not in saved.read_text()
    assert load_run_result(saved).diagnostics == load_run_result(path).diagnostics


def test_legacy_aliases_and_derived_fields(tmp_path: Path) -> None:
    payload = thesis_payload()
    for key in ("val_accuracies", "best_val_accuracy", "final_val_accuracy"):
        del payload[key]
    for key in ("final_train_loss", "total_epochs", "method_name", "seed", "runtime_metrics"):
        del payload[key]
    payload["val_accuracy"] = [0.25, 0.75, 0.5]
    path = tmp_path / "older"
    path.write_text(json.dumps(payload))
    result = load_run_result(path)
    assert result.val_accuracies == [0.25, 0.75, 0.5]
    assert result.best_val_accuracy == 0.75
    assert result.final_val_accuracy == 0.5
    assert result.final_train_loss == 2.0
    assert result.total_epochs == 2  # config.epochs
    assert result.method_name == "AdaptiveScheduler"  # config.control_regime
    assert result.seed == 2  # config.seed
    assert result.runtime_metrics is None


def test_legacy_best_accuracy_alias_wins_over_derivation(tmp_path: Path) -> None:
    payload = thesis_payload()
    del payload["best_val_accuracy"]
    payload["best_accuracy"] = 0.9
    path = tmp_path / "f.json"
    path.write_text(json.dumps(payload))
    assert load_run_result(path).best_val_accuracy == 0.9


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def _valid_text() -> str:
    return json.dumps(make_result(variant="v").to_dict(), indent=2)


def _with(**changes: Any) -> str:
    data = make_result(variant="v").to_dict()
    for key, value in changes.items():
        if value is _DELETE:
            del data[key]
        else:
            data[key] = value
    return json.dumps(data)


_DELETE = object()


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"", "empty file"),
        (b"  \n", "empty file"),
        (_valid_text()[:200].encode(), "truncated JSON"),
        (b'{"seed": 1,, "x": 2}', "corrupt JSON: Expecting property name"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[1, 2]", "top-level JSON value must be an object, got list"),
        (_with(seed="zero").encode(), "field 'seed' must be an integer, got string"),
        (_with(seed=1.5).encode(), "field 'seed' must be an integer, got number"),
        (_with(seed=True).encode(), "field 'seed' must be an integer, got boolean"),
        (_with(config=[]).encode(), "field 'config' must be an object, got list"),
        (
            _with(val_accuracies=[0.1, "0.2"]).encode(),
            "field 'val_accuracies' must be a list of numbers, item 1 is string",
        ),
        (_with(estimated_flops="1e12").encode(), "field 'estimated_flops' must be a number"),
        (_with(total_steps=_DELETE).encode(), "missing required field 'total_steps'"),
        (_with(schema_version="99").encode(), "unsupported schema_version '99'"),
    ],
)
def test_bad_files_raise_one_line_errors_naming_the_path(
    tmp_path: Path, content: bytes, fragment: str
) -> None:
    path = tmp_path / "bad_result"
    path.write_bytes(content)
    with pytest.raises(RunResultError) as info:
        load_run_result(path)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert message.startswith(f"{path}: ")
    assert fragment in message
    assert "\n" not in message
    assert info.value.path == str(path)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(RunResultError, match=r"nope\.json: no such file$"):
        load_run_result(tmp_path / "nope.json")
    with pytest.raises(RunResultError, match="is a directory"):
        load_run_result(tmp_path)


def test_legacy_file_missing_wall_clock_is_an_error(tmp_path: Path) -> None:
    payload = thesis_payload()
    del payload["wall_clock_seconds"]
    path = tmp_path / "x"
    path.write_text(json.dumps(payload))
    with pytest.raises(RunResultError, match="missing required field 'wall_clock_seconds'"):
        load_run_result(path)


def test_from_dict_names_its_source() -> None:
    with pytest.raises(RunResultError, match=r"^<dict>: top-level JSON value must be an object"):
        RunResult.from_dict([])  # type: ignore[arg-type]
    with pytest.raises(RunResultError, match=r"^runs/x: field 'seed'"):
        RunResult.from_dict({**make_result().to_dict(), "seed": "0"}, source="runs/x")


def test_error_pickles() -> None:
    error = RunResultError("a/b", "bad\nthing")
    assert str(error) == "a/b: bad thing"
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.problem, str(copy)) == ("a/b", "bad thing", "a/b: bad thing")


# ---------------------------------------------------------------------------------------------
# Variant ids
# ---------------------------------------------------------------------------------------------


def test_variant_id_is_pinned() -> None:
    # A change here re-keys every stored result: bump SCHEMA_VERSION if it is intended.
    assert variant_id(AEES_CONFIG) == (
        "aees-adamw-cosine-lr[0.5,1,2]-n[0]-independent-none-ep200-2fb9004f"
    )


def test_variant_ignores_non_method_keys_and_key_order() -> None:
    base = variant_id(AEES_CONFIG)
    changed = {
        **AEES_CONFIG,
        "seed": 99,
        "output": "elsewhere",
        "run_tag": "x",
        "epochs": 200,
        "label_noise_type": "symmetric",
        "label_noise_rate": 0.4,
        "hf_token": "t",
        "num_workers": 8,
    }
    assert variant_id(changed) == base
    assert variant_id(dict(reversed(list(AEES_CONFIG.items())))) == base
    same_numbers = {
        **AEES_CONFIG,
        "lr_candidates": "0.5, 1, 2",
        "noise_candidates": [0],
        "lr": 0.001,
    }
    assert variant_id(same_numbers) == base


@pytest.mark.parametrize(
    "change",
    [
        {"lr_candidates": [0.5, 1.0]},
        {"noise_candidates": [0.0, 0.005]},
        {"lr": 3e-4},
        {"optimizer": "SGD", "momentum": 0.9},
        {"lr_scheduler": "none"},
        {"reward_instability_lambda": 0.1},
        {"episode_length": 100},
        {"control_mode": "random"},
        {"context_mode": "trend"},
    ],
)
def test_variant_changes_with_method_settings(change: dict[str, Any]) -> None:
    assert variant_id({**AEES_CONFIG, **change}) != variant_id(AEES_CONFIG)


def test_variant_kinds() -> None:
    nlp_aees = {k: v for k, v in AEES_CONFIG.items() if k not in ("control_mode", "optimizer")}
    assert variant_id({**nlp_aees, "method": "AdaptiveScheduler"}) == variant_id(AEES_CONFIG)
    assert variant_id({"method": "AdamW", "lr": 5e-5}).startswith("baseline-adamw-none-")
    fixed = {**AEES_CONFIG, "lr_candidates": [0.5], "noise_candidates": [0.0]}
    assert variant_id(fixed).startswith("fixed-adamw-cosine-lr[0.5]-n[0]-")
    # A thesis-era fixed run (FixedModeController) gets the same id as the explicit form.
    legacy_fixed = {
        **{k: v for k, v in fixed.items() if not k.endswith("_candidates")},
        "fixed_mode_name": "lr0p5_n0",
    }
    assert variant_id(legacy_fixed) == variant_id(fixed)
    # Reward settings do not matter when no bandit runs.
    assert variant_id({**fixed, "reward_clip_max": 5.0}) == variant_id(fixed)
    spec = method_spec({"control_mode": "frequency-matched", "lr_candidates": [0.5, 1, 2]})
    assert spec["kind"] == "frequency-open-loop"
    assert spec["lr_candidates"] == ["0.5", "1", "2"]


# ---------------------------------------------------------------------------------------------
# Provenance and imports
# ---------------------------------------------------------------------------------------------


def test_collect_provenance(tmp_path: Path) -> None:
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    prov = collect_provenance(
        ["aees", "train", "--hf-token", SECRET, "--seed", "1"],
        started_at=start,
        packages=["torch", "surely-not-installed-pkg"],
        repo_dir=tmp_path,
        include_hardware=False,
    )
    assert prov["command"] == ["aees", "train", "--hf-token", REDACTED, "--seed", "1"]
    assert prov["command_str"] == f"aees train --hf-token {REDACTED} --seed 1"
    assert prov["started_at"] == "2026-01-02T03:04:05+00:00"
    assert prov["git"] == {"revision": None, "dirty": None}
    assert prov["packages"]["surely-not-installed-pkg"] is None
    assert isinstance(prov["packages"]["torch"], str)
    assert "hardware" not in prov
    assert set(prov) >= {"cwd", "python_executable", "python_version", "environment"}


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_provenance_git_revision_and_dirty_flag(tmp_path: Path) -> None:
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@e", *args],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        return done.stdout.strip()

    git("init", "-q")
    (tmp_path / "f.txt").write_text("a")
    git("add", "f.txt")
    git("commit", "-q", "--no-gpg-sign", "-m", "init")
    head = git("rev-parse", "HEAD")
    prov = collect_provenance([], repo_dir=tmp_path, packages=[], include_hardware=False)
    assert prov["git"] == {"revision": head, "dirty": False}
    (tmp_path / "f.txt").write_text("b")
    prov = collect_provenance([], repo_dir=tmp_path, packages=[], include_hardware=False)
    assert prov["git"] == {"revision": head, "dirty": True}


def test_importing_results_pulls_in_no_experiment_dependencies() -> None:
    heavy = ("torchvision", "transformers", "datasets", "matplotlib", "scipy", "ray")
    names = ("aees.results", "aees.results.hardware")
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    before = set(sys.modules)
    try:
        importlib.import_module("aees.results")
        added = set(sys.modules) - before
    finally:
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
    assert not {m for m in added if m.split(".")[0] in heavy}


# ---------------------------------------------------------------------------------------------
# Value checks (aees.results.checks: shared by reporting and the sweep's result check)
# ---------------------------------------------------------------------------------------------


def test_value_problems_accepts_a_sound_result() -> None:
    from aees.results.checks import value_problems

    assert value_problems(make_result()) == []


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"best_val_accuracy": 50.0}, "best_val_accuracy is 50, outside [0, 1]"),
        ({"val_accuracies": [0.1, 0.2]}, "val_accuracies has 2 entries for 3 epochs"),
        ({"final_train_loss": float("nan")}, "final_train_loss is nan (not finite)"),
        ({"wall_clock_seconds": -1.0}, "wall_clock_seconds is -1 (negative)"),
        (
            {"config": {**AEES_CONFIG, "lr_candidates": [0.5, float("inf")]}},
            "config.lr_candidates[1] is inf (not finite)",
        ),
    ],
)
def test_value_problems_names_the_first_bad_value(overrides: dict, problem: str) -> None:
    from aees.results.checks import value_problems

    found = value_problems(make_result(**overrides))
    assert len(found) == 1 and found[0].startswith(problem), found


def test_value_problems_lets_a_diverged_run_hold_nan_and_fewer_epochs() -> None:
    from aees.results.checks import value_problems

    stopped = {"final_train_loss": float("nan"), "val_accuracies": [0.1], "train_losses": [2.0]}
    assert value_problems(make_result(**stopped))  # not marked: refused
    assert value_problems(make_result(diverged=True, diverged_at_step=9, **stopped)) == []
    raw = {"diverged": True}  # the marker at the top level of the file as read
    assert value_problems(make_result(**stopped), raw) == []


@pytest.mark.slow
def test_the_results_package_itself_imports_no_torch() -> None:
    """The result contract is readable without torch: with the ``aees`` package bare (its
    ``__init__`` loads the library, and with it torch), importing ``aees.results`` and its
    checks loads neither torch nor numpy (torch only inside the hardware probe, when called)."""
    src = Path(__file__).resolve().parents[2] / "src" / "aees"
    code = (
        "import sys, types\n"
        f"pkg = types.ModuleType('aees'); pkg.__path__ = [{str(src)!r}]\n"
        "sys.modules['aees'] = pkg\n"
        "import aees.results, aees.results.checks, aees.results.legacy, aees.results.traces\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy'))\n"
        "assert not heavy, heavy[:5]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_file_cut_inside_a_string_is_reported_as_truncated(tmp_path: Path) -> None:
    """json reports an unterminated string at its opening quote, not at the end of the file;
    a result cut there by an interrupted write is still "truncated", not "corrupt"."""
    path = tmp_path / "r.json"
    save_run_result(make_result(), path)
    text = path.read_text()
    cut = text.index('"method_name"') + len('"method_name": "Adap')
    path.write_text(text[:cut])
    with pytest.raises(RunResultError, match="truncated JSON: Unterminated string"):
        load_run_result(path)
