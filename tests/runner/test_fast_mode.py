"""Fast mode (docs/protocols.md §17): the flags validate before training, change nothing when
off, are recorded and keep runs apart; --compile trains as eager does, does not recompile when
the AEES arm changes, and checkpoints the bare module's state dict."""

from __future__ import annotations

import functools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch._dynamo.utils import counters

from aees import cli
from aees.results import load_run_result, variant_id
from aees.results.identity import protocol_spec
from aees.runner import engine
from aees.runner.config import RunConfig
from aees.runner.engine import CHECKPOINT_NAME
from aees.runner.fast import FAST_FIELDS, compile_net, to_memory_format
from aees.runner.tasks import get_task
from aees.sweep.flags import identity_keys

pytestmark = pytest.mark.usefixtures("one_thread")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
AEES_FLAGS = {
    "control_mode": "adaptive",
    "lr_candidates": "0.5,1,2",
    "noise_candidates": "0,0.01",
    "episode_length": 3,
    "quiet": True,
    "device": "cpu",
}
VOLATILE = {"wall_clock_seconds", "epoch_wall_clock_seconds", "provenance", "runtime_metrics"}


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--tf32", "--device", "cpu"], "--tf32"),
        (["--cudnn-benchmark", "--device", "cpu"], "--cudnn-benchmark"),
        (["--compile-backend", "eager"], "--compile-backend"),
        (["--compile-mode", "default"], "--compile-mode"),
        (["--compile", "--compile-backend", "no-such-backend"], "--compile-backend"),
        (["--compile-mode", "fastest"], "--compile-mode"),
    ],
)
def test_unusable_combinations_are_one_line_exit_2_before_training(tmp_path, capsys, flags, named):
    out = tmp_path / "r.json"
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "digits", "--quiet", "--output", str(out), *flags])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err and "Traceback" not in err
    assert not out.exists()


def test_channels_last_is_refused_for_text_tasks(tmp_path, capsys):
    out = tmp_path / "r.json"
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", "sst2", "--channels-last", "--output", str(out)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--channels-last" in err and "sst2" in err
    assert not out.exists()


def test_flags_off_change_nothing_and_keep_the_thesis_identity():
    model = torch.nn.Conv2d(1, 2, 3)
    x = torch.randn(2, 1, 5, 5)
    off = RunConfig(task_name="digits")
    assert to_memory_format(model, False) is model and to_memory_format(x, False) is x
    assert compile_net(model, off) is model
    data = off.to_dict()
    assert not any(data[k] for k in ("compile", "channels_last", "cudnn_benchmark", "tf32"))
    assert protocol_spec(data) == {}
    # a result written before fast mode (no such keys) keeps its variant id
    older = {k: v for k, v in data.items() if k not in FAST_FIELDS}
    assert variant_id(data) == variant_id(older) and "fast" not in variant_id(data)
    assert set(FAST_FIELDS) <= identity_keys("digits")  # the sweep compares them
    for name, value in [
        ("compile", True),
        ("channels_last", True),
        ("precision", "bf16"),
        ("tf32", True),
        ("cudnn_benchmark", True),
    ]:
        on = {**data, name: value}
        assert name in protocol_spec(on) and variant_id(on) != variant_id(data), name
        assert "-fast-" in variant_id(on)
    compiled = {**data, "compile": True}
    assert variant_id(compiled) != variant_id({**compiled, "compile_backend": "eager"})
    # on: 4-D tensors and conv weights become channels-last, other tensors stay as they are
    assert to_memory_format(x, True).is_contiguous(memory_format=torch.channels_last)
    flat = torch.randn(3, 4)
    assert to_memory_format(flat, True) is flat
    moved = to_memory_format(torch.nn.Conv2d(1, 2, 3), True)
    assert moved.weight.is_contiguous(memory_format=torch.channels_last)


def _run(tmp_path: Path, name: str, **kw) -> tuple[dict, Path]:
    out = tmp_path / f"{name}.json"
    config = RunConfig(task_name="digits", output=str(out), **{**AEES_FLAGS, **kw})
    engine.run(config, get_task("digits"))
    return json.loads(out.read_text()), out


def test_compile_trains_as_eager_without_recompiles_and_checkpoints_the_bare_module(tmp_path):
    graphs = {}
    try:
        for epochs in (1, 2):
            torch._dynamo.reset()
            counters.clear()
            compiled, _ = _run(
                tmp_path,
                f"compiled{epochs}",
                epochs=epochs,
                compile=True,
                compile_backend="eager",
                checkpoint_dir=str(tmp_path / f"ckpt{epochs}"),
            )
            graphs[epochs] = (
                counters["stats"]["unique_graphs"],
                counters["stats"]["calls_captured"],
            )
    finally:
        torch._dynamo.reset()
    arms = compiled["episode_logs"]["selected_combined_names"]
    assert len(set(arms)) > 1 and len(arms) > 4  # the arm changed many times in epoch 2
    assert graphs[1] == graphs[2] and graphs[1][0] >= 1  # ...and nothing was compiled anew

    eager, _ = _run(tmp_path, "eager", epochs=2)
    assert compiled["config"]["compile"] is True and eager["config"]["compile"] is False
    differ = {k for k in eager if eager[k] != compiled[k]} - VOLATILE
    assert differ == {"config", "variant"}  # same losses, accuracies, decisions, FLOPs

    state = torch.load(tmp_path / "ckpt2" / CHECKPOINT_NAME, weights_only=True)
    bare = get_task("digits").build(RunConfig(task_name="digits", device="cpu"), "cpu").model
    assert list(state["model"]) == list(bare.state_dict())  # no "_orig_mod." prefix

    # resume from that checkpoint (the run is complete: the result is written again)
    torch._dynamo.reset()
    resumed, _ = _run(
        tmp_path,
        "compiled2",
        epochs=2,
        compile=True,
        compile_backend="eager",
        checkpoint_dir=str(tmp_path / "ckpt2"),
        resume=True,
    )
    torch._dynamo.reset()
    assert resumed["val_accuracies"] == compiled["val_accuracies"]
    assert resumed["episode_logs"] == compiled["episode_logs"]


def test_fp16_grad_scaler_path_through_aees_counts_skipped_steps(tmp_path):
    """fp16 needs CUDA at the CLI; the engine path itself (autocast + GradScaler through AEES)
    runs on the CPU, built in code."""
    result, _ = _run(tmp_path, "fp16", epochs=1, precision="fp16")
    logs = result["episode_logs"]
    skipped = logs["episode_scaler_skipped_steps"]
    assert len(skipped) == len(logs["episode_rewards"]) > 0
    assert all(isinstance(n, int) and 0 <= n <= 3 for n in skipped)
    assert result["config"]["fp16"] is True and "-fast-" in result["variant"]


@pytest.mark.slow
def test_fp16_runs_record_the_steps_the_scaler_skipped_with_or_without_aees(tmp_path, monkeypatch):
    """``diagnostics.scaler_skipped_steps``: without AEES counted by the engine (one read per
    epoch, carried through resume), with AEES the sum of its per-episode counts. A scaler that
    starts at 2**40 overflows the fp16 backward until it has halved itself to a usable scale."""
    monkeypatch.setattr(
        torch.amp, "GradScaler", functools.partial(torch.amp.GradScaler, init_scale=2.0**40)
    )
    runs = {}
    for name, kw in (("base", {"control_mode": "baseline"}), ("aees", {})):
        ckpt = str(tmp_path / f"ck_{name}")
        runs[name], _ = _run(tmp_path, name, **{"epochs": 2, "precision": "fp16", **kw,
                                                "checkpoint_dir": ckpt})  # fmt: skip
    # the scaler halves its scale at every skipped step and grows it only after 2000 good ones
    state = torch.load(tmp_path / "ck_base" / CHECKPOINT_NAME, weights_only=True)
    halvings = round(math.log2(2.0**40 / state["scaler"]["scale"]))
    assert runs["base"]["total_steps"] < 2000
    assert runs["base"]["diagnostics"]["scaler_skipped_steps"] == halvings > 0
    # resumed from the finished run's checkpoint, the result is rebuilt from what it carries
    resumed, _ = _run(tmp_path, "again", control_mode="baseline", epochs=2, precision="fp16",
                      checkpoint_dir=str(tmp_path / "ck_base"), resume=True)  # fmt: skip
    assert resumed["diagnostics"]["scaler_skipped_steps"] == halvings
    logs = runs["aees"]["episode_logs"]["episode_scaler_skipped_steps"]
    assert runs["aees"]["diagnostics"]["scaler_skipped_steps"] == sum(logs) > 0
    assert "scaler_skipped_steps" not in _run(tmp_path, "fp32", epochs=1)[0]["diagnostics"]


@pytest.mark.slow
def test_fast_flags_through_the_cli_are_recorded(tmp_path):
    out = tmp_path / "fast.json"
    proc = subprocess.run(
        [sys.executable, "-m", "aees.cli", "train", "digits", "--epochs", "1", "--quiet",
         "--device", "cpu", "--control-mode", "adaptive", "--lr-candidates", "0.5,1,2",
         "--episode-length", "3", "--compile", "--compile-backend", "eager",
         "--channels-last", "--precision", "bf16", "--output", str(out)],
        capture_output=True, text=True, env=ENV, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = load_run_result(out)
    config = result.config
    assert config["compile"] is True and config["compile_backend"] == "eager"
    assert config["channels_last"] is True and config["precision"] == "bf16"
    assert config["compile_mode"] is None and config["tf32"] is False
    spec = protocol_spec(config)
    assert spec == {
        "precision": "bf16",
        "compile": True,
        "channels_last": True,
        "compile_backend": "eager",
        "compile_mode": "default",
    }
    thesis = {**config, "compile": False, "channels_last": False, "precision": "fp32"}
    assert result.variant == variant_id(config) != variant_id(thesis)
