"""The LR-free / schedule-free peers as base optimizers (docs/protocols.md §5.1, docs/algorithm.md
§16): flags, identity, the multiplier under AEES, parity with a hand-written loop, exact resume."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dadaptation
import prodigyopt
import pytest
import schedulefree
import torch
from run_checks import kill_at_first_checkpoint
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from aees import AEES, cli
from aees.results import load_run_result
from aees.results.identity import variant_id
from aees.runner import engine
from aees.runner.config import RunConfig
from aees.runner.engine import CHECKPOINT_NAME, run, set_seed
from aees.runner.optimizers import BN_RECOMPUTE_BATCHES
from aees.runner.tasks import task_parser
from aees.runner.tasks.digits import DigitsTask, digits_cnn, load_digits_split

pytestmark = pytest.mark.usefixtures("one_thread")

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
VOLATILE = {"wall_clock_seconds", "epoch_wall_clock_seconds", "runtime_metrics", "provenance"}
#: peer -> (package class, the kwargs the engine must pass for the flags used below)
PEERS = {
    "AdamWScheduleFree": (
        schedulefree.AdamWScheduleFree,
        {"lr": 2.5e-3, "betas": (0.9, 0.999), "warmup_steps": 5},
        ["--lr", "2.5e-3", "--sf-warmup-steps", "5"],
    ),
    "SGDScheduleFree": (
        schedulefree.SGDScheduleFree,
        {"lr": 0.5, "momentum": 0.8, "warmup_steps": 0},
        ["--lr", "0.5", "--momentum", "0.8"],
    ),
    "Prodigy": (
        prodigyopt.Prodigy,
        {"lr": 1.0, "d_coef": 0.5, "safeguard_warmup": True},
        ["--lr", "1.0", "--prodigy-d-coef", "0.5", "--prodigy-safeguard-warmup"],
    ),
    "DAdaptAdam": (
        dadaptation.DAdaptAdam,
        {"lr": 1.0, "d0": 1e-5, "growth_rate": 1.05},
        ["--lr", "1.0", "--dadapt-d0", "1e-5", "--dadapt-growth-rate", "1.05"],
    ),
}
WEIGHT_DECAY = 1e-4


def _schedule_free(opt: torch.optim.Optimizer) -> bool:
    return "train_mode" in opt.param_groups[0]


def _one_line_error(capsys, argv: list[str]) -> str:
    try:
        status = cli.main(argv)
    except SystemExit as exc:  # argparse's error exit
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# ------------------------------------------------------------------------------ flags


def test_peer_flags_are_checked_before_training(tmp_path, capsys, monkeypatch):
    out = tmp_path / "r.json"
    base = ["train", "digits", "--epochs", "1", "--quiet", "--output", str(out)]
    cases = [
        (["--prodigy-d-coef", "2"], "--prodigy-d-coef is only for --optimizer Prodigy, not AdamW"),
        (
            ["--optimizer", "Prodigy", "--sf-warmup-steps", "3"],
            "--sf-warmup-steps is only for --optimizer AdamWScheduleFree or SGDScheduleFree",
        ),
        (["--optimizer", "AdamWScheduleFree", "--sf-beta1", "1.0"], "--sf-beta1 must be in [0, 1)"),
        (["--optimizer", "SGDScheduleFree", "--momentum", "1"], "--momentum must be in (0, 1)"),
        (
            ["--optimizer", "DAdaptAdam", "--dadapt-growth-rate", "0.5"],
            "--dadapt-growth-rate must be >= 1",
        ),
        (["--optimizer", "DAdaptAdam", "--dadapt-d0", "0"], "--dadapt-d0 must be > 0"),
        (["--optimizer", "Adam"], "--optimizer"),
    ]
    for flags, text in cases:
        assert text in _one_line_error(capsys, [*base, *flags]), flags
    # a missing package: one line naming it and the pip command, nothing written
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "prodigyopt" else real(name)
    )
    err = _one_line_error(capsys, [*base, "--optimizer", "Prodigy"])
    assert "prodigyopt" in err and "pip install" in err and "--optimizer" in err
    assert not out.exists()


def test_nlp_style_has_optimizer_default_adamw():
    parser = task_parser("sst2")
    plain = RunConfig.for_task("sst2", **vars(parser.parse_args([])))
    assert (plain.optimizer, plain.control_mode, plain.method) == ("AdamW", "baseline", "AdamW")
    assert plain.output_path == os.path.join("results", "sst2_adamw_seed0.json")  # as before
    args = parser.parse_args(["--method", "AdaptiveScheduler", "--optimizer", "Prodigy"])
    peer = RunConfig.for_task("sst2", **vars(args))
    assert (peer.optimizer, peer.control_mode) == ("Prodigy", "adaptive")
    assert peer.output_path == os.path.join("results", "sst2_adaptivescheduler_prodigy_seed0.json")


def test_peer_settings_are_part_of_the_method_identity():
    base = {"control_mode": "baseline", "lr": 1.0, "weight_decay": 1e-4, "batch_size": 64}
    prodigy = {**base, "optimizer": "Prodigy", "prodigy_d_coef": 1.0}
    ids = {
        variant_id(prodigy),
        variant_id({**prodigy, "prodigy_d_coef": 2.0}),
        variant_id({**prodigy, "prodigy_safeguard_warmup": True}),
        variant_id({**base, "optimizer": "DAdaptAdam"}),
        variant_id({**base, "optimizer": "DAdaptAdam", "dadapt_growth_rate": 1.02}),
        variant_id({**base, "optimizer": "AdamWScheduleFree"}),
        variant_id({**base, "optimizer": "AdamWScheduleFree", "sf_warmup_steps": 100}),
        variant_id({**base, "optimizer": "SGDScheduleFree", "momentum": 0.9}),
        variant_id({**base, "optimizer": "SGDScheduleFree", "momentum": 0.5}),
    }
    assert len(ids) == 9
    # defaults written out or left away are the same method; AdamW ids do not see peer keys
    assert variant_id(prodigy) == variant_id({**base, "optimizer": "Prodigy"})
    adamw = {**base, "optimizer": "AdamW"}
    assert variant_id(adamw) == variant_id({**adamw, "prodigy_d_coef": 2.0, "sf_beta1": 0.5})


# ------------------------------------------------------------------------------ AEES on top


@pytest.mark.parametrize("name", list(PEERS))
def test_the_lr_multiplier_reaches_the_peer_update(name):
    """docs/algorithm.md §16: AEES scales the group's ``lr`` during ``step()``; on the first
    step (d = d0, full averaging weight) every peer's update is linear in ``lr``, so an arm
    with multiplier m moves the parameters m times as far as the plain optimizer."""
    cls, kwargs, _ = PEERS[name]
    m = 2.0

    def first_update(multiplier: float | None) -> tuple[list[torch.Tensor], list[float], Any]:
        torch.manual_seed(0)
        model = nn.Linear(4, 3).double()
        start = [p.detach().clone() for p in model.parameters()]
        opt = cls(model.parameters(), **kwargs)
        if _schedule_free(opt):
            opt.train()
        seen: list[float] = []
        inner = opt.step

        def step(*a, **k):
            seen.append(opt.param_groups[0]["lr"])
            return inner(*a, **k)

        opt.step = step
        x = torch.randn(8, 4, dtype=torch.float64)
        y = torch.randint(0, 3, (8,))
        loss = nn.functional.cross_entropy(model(x), y)
        if multiplier is None:
            loss.backward()
            opt.step()
        else:
            aees = AEES(opt, lr_candidates=(multiplier,), episode_length=4, seed=0)
            aees.step_start(0)
            loss.backward()
            aees.step_end(loss)
        moved = [p.detach() - s for p, s in zip(model.parameters(), start, strict=True)]
        return moved, seen, opt

    plain, seen_plain, _ = first_update(None)
    scaled, seen_scaled, opt = first_update(m)
    assert seen_scaled == [pytest.approx(m * seen_plain[0])]
    assert opt.param_groups[0]["lr"] == kwargs["lr"]  # restored after the step
    for a, b in zip(plain, scaled, strict=True):
        torch.testing.assert_close(b, m * a, rtol=1e-9, atol=0.0)
    if _schedule_free(opt):  # the averaging weights see the scaled lr too (lr_max)
        sched = 1.0 / kwargs["warmup_steps"] if kwargs["warmup_steps"] else 1.0
        assert opt.param_groups[0]["lr_max"] == pytest.approx(m * kwargs["lr"] * sched)


# ------------------------------------------------------------------------------ parity


def _bn_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 10),
    )


class BNDigitsTask(DigitsTask):
    """Digits with a BatchNorm model (the recompute of docs/protocols.md §5.1)."""

    def build(self, config: RunConfig, device: torch.device):
        setup = super().build(config, device)
        return dataclasses.replace(setup, model=_bn_cnn().to(device))


def _hand_loop(name: str, epochs: int, batch_size: int, seed: int, bn: bool) -> dict:
    """The minimal loop: seeded model, the package's optimizer, shuffled batches, the
    schedule-free train()/eval() around each epoch (and BatchNorm's recompute at x)."""
    cls, kwargs, _ = PEERS[name]
    set_seed(seed)
    x, y = load_digits_split()["train"]
    if bn:
        digits_cnn()  # the task builds (and drops) the digits model first: same RNG draws
        model = _bn_cnn()
    else:
        model = digits_cnn()
    opt = cls(model.parameters(), weight_decay=WEIGHT_DECAY, **kwargs)
    data = TensorDataset(x, y)
    loader = DataLoader(
        data, batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    for _ in range(epochs):
        model.train()
        if _schedule_free(opt):
            opt.train()
        for inputs, targets in loader:
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(inputs), targets).backward()
            opt.step()
        if _schedule_free(opt):
            opt.eval()
            if bn:
                with torch.no_grad():
                    for i, (inputs, _) in enumerate(DataLoader(data, batch_size)):
                        if i == BN_RECOMPUTE_BATCHES:
                            break
                        model(inputs)
    return model.state_dict()


def _engine_config(tmp_path: Path, name: str, tag: str, **kw) -> RunConfig:
    _, kwargs, _ = PEERS[name]
    values = {
        "optimizer": name,
        "lr": kwargs["lr"],
        "weight_decay": WEIGHT_DECAY,
        "epochs": 2,
        "batch_size": 128,
        "quiet": True,
        "device": "cpu",
        "output": str(tmp_path / f"{tag}.json"),
        "checkpoint_dir": str(tmp_path / f"{tag}-ckpt"),
    }
    flags = {"sf_warmup_steps": "warmup_steps", "momentum": "momentum"}
    flags.update(prodigy_d_coef="d_coef", prodigy_safeguard_warmup="safeguard_warmup")
    flags.update(dadapt_d0="d0", dadapt_growth_rate="growth_rate")
    for field, key in flags.items():
        if key in kwargs:
            values[field] = kwargs[key]
    values.update(kw)
    return RunConfig(task_name="digits", **values)


def _final_state(config: RunConfig) -> dict:
    path = Path(config.checkpoint_dir) / CHECKPOINT_NAME
    return torch.load(path, weights_only=True)


def _assert_same_tensors(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    ("name", "bn"),
    [(name, False) for name in PEERS] + [("SGDScheduleFree", True)],
)
def test_engine_equals_a_hand_written_loop(tmp_path, name, bn):
    config = _engine_config(tmp_path, name, "engine")
    result, _ = run(config, BNDigitsTask() if bn else DigitsTask())
    assert result.config["optimizer"] == name
    engine_weights = _final_state(config)["model"]
    _assert_same_tensors(engine_weights, _hand_loop(name, 2, 128, 0, bn))
    if bn:  # the recompute happened: the stats differ from what training alone left
        assert engine_weights["1.num_batches_tracked"] > 2 * len(range(0, 1257, 128))


# ------------------------------------------------------------------------------ resume


class _Killed(Exception):
    """Stands for a SIGKILL right after the first checkpoint was written."""


@pytest.mark.parametrize(
    ("name", "bn"),
    [(name, False) for name in PEERS] + [("AdamWScheduleFree", True)],
)
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path, monkeypatch, name, bn):
    task = BNDigitsTask() if bn else DigitsTask()
    aees = {"control_mode": "adaptive", "lr_candidates": (0.5, 1.0, 2.0), "episode_length": 7}
    reference = _engine_config(tmp_path, name, "reference", **aees)
    run(reference, task)

    resumed = _engine_config(tmp_path, name, "resumed", **aees)
    save = engine._Runner.save_checkpoint

    def save_then_die(self, wall_now):
        save(self, wall_now)
        raise _Killed

    with monkeypatch.context() as patch:
        patch.setattr(engine._Runner, "save_checkpoint", save_then_die)
        with pytest.raises(_Killed):
            run(resumed, task)
    assert not Path(resumed.output).exists()
    run(dataclasses.replace(resumed, resume=True), task)

    a = load_run_result(reference.output).to_dict()
    b = load_run_result(resumed.output).to_dict()
    assert b["provenance"].get("resumed") is True
    for key in set(a) - VOLATILE - {"config"}:
        assert a[key] == b[key], key
    ra, rb = _final_state(reference), _final_state(resumed)
    _assert_same_tensors(ra["model"], rb["model"])
    assert ra["optimizer"]["param_groups"] == rb["optimizer"]["param_groups"]


@pytest.mark.slow
def test_sigkill_then_resume_with_schedule_free_under_aees(tmp_path):
    """The SIGKILL pattern of test_engine: AEES on AdamWScheduleFree, killed after its first
    checkpoint, resumed in a new process, equals the uninterrupted run (the other peers: the
    in-process interruption above, which leaves the disk as such a kill does)."""
    flags = [
        "train", "digits", "--epochs", "2", "--batch-size", "128", "--control-mode", "adaptive",
        "--lr-candidates", "0.5,1,2", "--noise-candidates", "0,0.01", "--episode-length", "7",
        "--optimizer", "AdamWScheduleFree", *PEERS["AdamWScheduleFree"][2], "--quiet",
    ]  # fmt: skip
    ckpt_dir = tmp_path / "ckpt"
    killed_out = tmp_path / "resumed.json"
    command = [sys.executable, "-m", "aees.cli", *flags]
    proc = subprocess.Popen(
        [*command, "--output", str(killed_out), "--checkpoint-dir", str(ckpt_dir)],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    # the uninterrupted reference runs in this process while the other one starts
    assert cli.main([*flags, "--output", str(tmp_path / "reference.json")]) == 0
    kill_at_first_checkpoint(proc, ckpt_dir, killed_out, timeout=120)
    resumed = subprocess.run(
        [*command, "--output", str(killed_out), "--checkpoint-dir", str(ckpt_dir), "--resume"],
        env=ENV, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    a = load_run_result(tmp_path / "reference.json").to_dict()
    b = load_run_result(killed_out).to_dict()
    assert b["provenance"].get("resumed") is True
    assert b["config"]["optimizer"] == "AdamWScheduleFree" and b["config"]["sf_warmup_steps"] == 5
    for key in set(a) - VOLATILE - {"config"}:
        assert a[key] == b[key], key
