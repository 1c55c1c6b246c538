"""AEESOptimizer: a real torch.optim.Optimizer that matches the AEES object bit for bit."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from lib_helpers import assert_logs_equal, assert_params_equal, batch, tiny_model

from aees import AEES, AEESOptimizer, EpisodeRecord
from aees.types import NonFiniteLossError

KW = {"lr_candidates": [0.5, 1.0, 2.0], "noise_candidates": [0.0, 0.01], "episode_length": 4}
F = torch.nn.functional


def _loss(model, step, micro=0):
    x, y = batch(1000 * micro + step)
    return F.cross_entropy(model(x), y)


# ------------------------------------------------------------------------------ lockstep cases
# Each case drives the AEES object (step_start / step_end) and AEESOptimizer (observe_loss or a
# closure + step) through the same steps; logs, records and parameters must be identical.


def _adamw(model):
    return torch.optim.AdamW(model.parameters(), lr=1e-2)


CASES = {
    "adamw": {"make": _adamw, "kw": {"seed": 3}},
    "tensor-lr": {
        "make": lambda m: torch.optim.Adam(m.parameters(), lr=torch.tensor(1e-2)),
        "kw": {"seed": 4, "noise_source": "pulseopt"},
    },
    "closure": {
        "make": lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9),
        "kw": {"seed": 5},
        "closure": True,
    },
    "accumulate": {"make": _adamw, "kw": {"seed": 6}, "micro": 3},
    "grad-scaler": {"make": _adamw, "kw": {"seed": 7}, "scaler": True},
    "trend-conditional-nonfinite": {
        "make": _adamw,
        "kw": {
            "seed": 8,
            "context_mode": "trend",
            "structured_control_mode": "conditional",
            "nonfinite": "skip",
            "track_update_norm": True,
        },
        "nan_at": 6,
    },
}


def _drive_aees(case, steps):
    model = tiny_model(1)
    opt = case["make"](model)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8) if case.get("scaler") else None
    extra = {"grad_scaler": scaler} if scaler else {}
    records = []
    aees = AEES(opt, **KW, **case["kw"], **extra, on_episode_end=records.append)
    for step in range(steps):
        aees.step_start(step)
        if case.get("closure"):

            def closure(step=step):
                opt.zero_grad()
                loss = _loss(model, step)
                loss.backward()
                return loss

            aees.step_end(closure=closure)
            continue
        opt.zero_grad()
        losses = []
        for micro in range(case.get("micro", 1)):
            loss = _loss(model, step, micro)
            (scaler.scale(loss) if scaler else loss).backward()
            losses.append(loss.detach())
        if scaler and step == 3:
            next(model.parameters()).grad[0, 0] = float("inf")
        loss = losses[0] if len(losses) == 1 else torch.stack(losses).mean()
        if case.get("nan_at") == step:
            loss = torch.tensor(float("nan"))
        aees.step_end(loss)
    aees.finalize()
    return model, aees.get_logs(), records


def _drive_wrapper(case, steps):
    model = tiny_model(1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8) if case.get("scaler") else None
    extra = {"grad_scaler": scaler} if scaler else {}
    opt = AEESOptimizer(case["make"](model), **KW, **case["kw"], **extra)
    records = []
    opt.register_episode_end_hook(records.append)
    for step in range(steps):
        if case.get("closure"):

            def closure(step=step):
                opt.zero_grad()
                loss = _loss(model, step)
                loss.backward()
                return loss

            opt.step(closure)
            continue
        opt.zero_grad()
        for micro in range(case.get("micro", 1)):
            loss = _loss(model, step, micro)
            (scaler.scale(loss) if scaler else loss).backward()
            if case.get("nan_at") == step:
                loss = torch.tensor(float("nan"))
            opt.observe_loss(loss)
        if scaler and step == 3:
            next(model.parameters()).grad[0, 0] = float("inf")
        opt.step()
    opt.finalize()
    return model, opt.get_logs(), records


@pytest.mark.parametrize("name", list(CASES))
def test_lockstep_with_the_aees_object(name):
    case = CASES[name]
    model_a, logs_a, records_a = _drive_aees(case, 18)
    model_b, logs_b, records_b = _drive_wrapper(case, 18)
    assert_logs_equal(logs_a, logs_b)
    assert records_a == records_b and len(records_a) == 5
    assert_params_equal(model_a, model_b)
    assert len(set(logs_a["selected_combined_names"])) >= 2  # the arms really changed
    if name == "grad-scaler":
        assert logs_b["episode_scaler_skipped_steps"][0] == 1
    if name == "trend-conditional-nonfinite":
        assert logs_b["episode_nonfinite_steps"][1] == 1


def test_episode_records_carry_the_logged_values():
    _, logs, records = _drive_wrapper(CASES["accumulate"], 10)
    assert [r.episode_index for r in records] == [0, 1, 2]
    assert [r.steps for r in records] == [4, 4, 2]  # the last one closed by finalize
    assert [r.start_step for r in records] == logs["episode_start_steps"]
    assert [r.end_step for r in records] == logs["episode_end_steps"]
    assert [r.reward for r in records] == logs["episode_rewards"]
    assert [r.lr_multiplier for r in records] == logs["selected_lr_values"]
    assert [r.noise_std for r in records] == logs["selected_noise_values"]
    assert [r.arm for r in records] == logs["selected_combined_names"]
    metrics = records[0].metrics()
    assert metrics["aees/reward"] == records[0].reward
    assert metrics["aees/episode_steps"] == 4.0
    assert "aees/mean_update_norm" not in metrics  # None values are left out
    assert all(isinstance(v, float) for v in metrics.values())


def test_record_mean_loss_is_the_mean_of_the_counted_step_losses():
    opt = AEESOptimizer(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1),
                        episode_length=3, nonfinite="skip", seed=0)  # fmt: skip
    records: list[EpisodeRecord] = []
    opt.register_episode_end_hook(records.append)
    for value in (1.0, math.nan, 3.0, 4.0):
        opt.observe_loss(value)
        opt.step()
    opt.finalize()
    assert records[0].mean_loss == 2.0 and records[0].nonfinite_steps == 1
    assert records[1].mean_loss == 4.0 and records[1].steps == 1


def test_hooks_can_be_removed_and_see_an_episode_before_its_nonfinite_error():
    aees = AEES(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), episode_length=2,
                seed=0)  # fmt: skip
    seen: list[EpisodeRecord] = []
    handle = aees.register_episode_end_hook(seen.append)
    for step, value in enumerate((1.0, math.nan)):
        aees.step_start(step)
        if step == 1:
            with pytest.raises(NonFiniteLossError):
                aees.step_end(value)
        else:
            aees.step_end(value)
    assert len(seen) == 1 and seen[0].nonfinite_steps == 1 and seen[0].mean_loss == 1.0
    handle.remove()
    for step in (2, 3):
        aees.step_start(step)
        aees.step_end(0.5)
    assert len(seen) == 1 and len(aees.get_logs()["episode_rewards"]) == 2
    with pytest.raises(TypeError, match="on_episode_end"):
        AEES(aees.optimizer, on_episode_end=[print, 3])


# ------------------------------------------------------------------------------ an Optimizer
def test_a_real_optimizer_sharing_groups_state_and_defaults():
    model = tiny_model()
    inner = torch.optim.AdamW(model.parameters(), lr=1e-2)
    opt = AEESOptimizer(inner, lr_candidates=[2.0], seed=0)
    assert isinstance(opt, torch.optim.Optimizer)
    assert opt.param_groups is inner.param_groups and opt.defaults is inner.defaults
    pre, post = [], []
    opt.register_step_pre_hook(lambda o, args, kwargs: pre.append(o))
    opt.register_step_post_hook(lambda o, args, kwargs: post.append(o))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)  # built on the wrapper
    seen_lrs = []
    inner.register_step_pre_hook(lambda o, a, k: seen_lrs.append(o.param_groups[0]["lr"]))
    for step in range(3):
        opt.zero_grad()
        loss = _loss(model, step)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.observe_loss(loss)
        opt.step()
        sched.step()
    assert pre == [opt] * 3 and post == [opt] * 3
    assert seen_lrs == [2e-2, 1e-2, 5e-3]  # the scheduler's LR times the arm's multiplier
    assert inner.param_groups[0]["lr"] == 1.25e-3
    assert opt.state is inner.state and len(opt.state) == len(list(model.parameters()))
    inner.load_state_dict(inner.state_dict())  # rebinds the inner groups: still shared
    assert opt.param_groups is inner.param_groups and opt.state is inner.state
    with pytest.raises(TypeError, match="already an AEESOptimizer"):
        AEESOptimizer(opt)


def test_a_step_without_a_loss_raises_saying_how_and_changes_nothing():
    model = tiny_model()
    opt = AEESOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), seed=0)
    before = [p.detach().clone() for p in model.parameters()]
    _loss(model, 0).backward()
    with pytest.raises(RuntimeError, match=r"observe_loss\(loss\).*closure"):
        opt.step()
    assert opt.num_steps == 0
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    with pytest.raises(RuntimeError, match="closure returned None"):
        opt.step(lambda: None)
    with pytest.raises(ValueError, match="scalar"):
        opt.observe_loss(torch.ones(2))
    with pytest.raises(TypeError, match="tensor or a real number"):
        opt.observe_loss("1.0")


def test_observed_losses_take_precedence_over_the_closure_return():
    model = tiny_model()
    opt = AEESOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), episode_length=1, seed=0)

    def closure():  # what Lightning hands over: its loss divided by accumulate_grad_batches
        opt.zero_grad()
        loss = _loss(model, 0)
        loss.backward()
        opt.observe_loss(7.0)  # a hook inside the closure supplies the real value
        return loss / 4

    opt.step(closure)
    opt.step(lambda: torch.tensor(0.25))  # nothing observed: the closure's value counts
    assert opt.get_logs()["episode_start_losses"] == [7.0, 0.25]


def test_zero_grad_drops_the_losses_of_a_step_the_scaler_skipped():
    """A stock AMP loop: scaler.step(opt) never calls opt.step() for inf/NaN gradients."""
    model = tiny_model()
    opt = AEESOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), episode_length=3, seed=0)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    losses = []
    for step in range(7):
        opt.zero_grad()
        loss = _loss(model, step)
        scaler.scale(loss).backward()
        opt.observe_loss(loss)
        if step == 1:
            next(model.parameters()).grad[0, 0] = float("inf")
        scaler.step(opt)
        scaler.update()
        losses.append(loss.item())
    assert opt.num_steps == 6 and opt.skipped_steps == 1 and scaler.get_scale() == 2.0**7
    logs = opt.get_logs()
    assert logs["episode_start_losses"] == [losses[0], losses[4]]
    assert logs["episode_end_losses"] == [losses[3], losses[6]]  # step 1's loss is not counted


def test_unscale_for_clipping_then_step_with_the_aees_owned_scaler():
    def run(wrapped):
        model = tiny_model(2)
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
        inner = torch.optim.SGD(model.parameters(), lr=0.1)
        kw = {"noise_candidates": [0.0, 0.01], "episode_length": 2, "seed": 0,
              "grad_scaler": scaler}  # fmt: skip
        opt = AEESOptimizer(inner, **kw) if wrapped else AEES(inner, **kw)
        for step in range(6):
            if not wrapped:
                opt.step_start(step)
            inner.zero_grad()
            loss = _loss(model, step)
            scaler.scale(loss).backward()
            scaler.unscale_(opt if wrapped else inner)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            if wrapped:
                opt.observe_loss(loss)
                opt.step()
            else:
                opt.step_end(loss)
        return model, opt.get_logs(), scaler.get_scale()

    model_a, logs_a, scale_a = run(False)
    model_b, logs_b, scale_b = run(True)
    assert scale_a == scale_b == 2.0**10
    assert_logs_equal(logs_a, logs_b)
    assert_params_equal(model_a, model_b)


# ------------------------------------------------------------------------------ state
def _roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # nothing in the state needs unpickling code


def _accumulating_run(opt, model, steps, start=0, *, resume_mid=False, stop_mid=False):
    """Two micro-batches per step; optionally start or stop between the two of a step."""
    for step in range(start, start + steps):
        first = resume_mid and step == start
        last = stop_mid and step == start + steps - 1
        if not first:
            opt.zero_grad()
        for micro in range(2):
            if first and micro == 0:
                continue  # this micro-batch ran before the checkpoint
            loss = _loss(model, step, micro)
            (loss / 2).backward()
            opt.observe_loss(loss)
            if last and micro == 0:
                return
        opt.step()


@pytest.mark.parametrize(
    "extra", [{"seed": 11}, {"seed": 12, "control_mode": "random", "noise_source": "pulseopt"}]
)
def test_state_dict_resumes_exactly_between_two_micro_batches(extra):
    def build(model):
        inner = torch.optim.AdamW(model.parameters(), lr=3e-3)
        return AEESOptimizer(inner, **KW, **extra)

    model_full = tiny_model(3)
    full = build(model_full)
    _accumulating_run(full, model_full, 20)

    model_a = tiny_model(3)
    a = build(model_a)
    _accumulating_run(a, model_a, 10, stop_mid=True)  # step 9 half accumulated
    grads = [p.grad.clone() for p in model_a.parameters()]
    state = _roundtrip({"model": model_a.state_dict(), "opt": a.state_dict()})
    assert len(state["opt"]["aees"]["observed_losses"]) == 1

    model_b = tiny_model(8)
    b = build(model_b)
    model_b.load_state_dict(state["model"])
    b.load_state_dict(state["opt"])
    for p, g in zip(model_b.parameters(), grads, strict=True):
        p.grad = g  # the half-accumulated gradient lives outside the optimizer, like the model
    _accumulating_run(b, model_b, 11, start=9, resume_mid=True)
    full.finalize()
    b.finalize()
    assert b.num_steps == full.num_steps == 20
    assert_logs_equal(full.get_logs(), b.get_logs())
    assert_params_equal(model_full, model_b)


def test_a_plain_optimizer_state_dict_is_a_warm_start_with_a_warning():
    model = tiny_model()
    plain = torch.optim.AdamW(model.parameters(), lr=1e-2)
    _loss(model, 0).backward()
    plain.step()
    opt = AEESOptimizer(torch.optim.AdamW(tiny_model().parameters(), lr=1e-2), **KW, seed=0)
    with pytest.warns(UserWarning, match="no AEES part"):
        opt.load_state_dict(plain.state_dict())
    assert opt.num_steps == 0
    state = next(iter(opt.state.values()))
    assert int(state["step"]) == 1


def test_an_incompatible_aees_part_changes_neither_state():
    model = tiny_model()
    a = AEESOptimizer(torch.optim.AdamW(model.parameters(), lr=1e-2), **KW, seed=0)
    for step in range(3):
        a.zero_grad()
        loss = _loss(model, step)
        loss.backward()
        a.observe_loss(loss)
        a.step()
    saved = a.state_dict()
    b = AEESOptimizer(torch.optim.AdamW(tiny_model().parameters(), lr=1e-2),
                      **{**KW, "lr_candidates": [1.0, 3.0]}, seed=0)  # fmt: skip
    before = b.state_dict()
    with pytest.raises(ValueError, match="lr_candidates"):
        b.load_state_dict(saved)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _roundtrip(b.state_dict()) == _roundtrip(before)
    c = AEESOptimizer(torch.optim.AdamW(torch.nn.Linear(6, 3).parameters()), **KW, seed=0)
    with pytest.raises(ValueError):
        c.load_state_dict(saved)  # the AEES part fits no other parameter layout either
    assert c.num_steps == 0 and len(c.state) == 0


# ------------------------------------------------------------------------------ no host sync
def test_no_host_reads_within_an_episode_under_accumulation(monkeypatch):
    model = tiny_model()
    opt = AEESOptimizer(torch.optim.SGD(model.parameters(), lr=0.1), **KW, seed=0)
    reads = []
    for method in ("item", "tolist", "__float__", "__bool__", "cpu", "numpy"):
        original = getattr(torch.Tensor, method)

        def wrapped(self, *a, _orig=original, _name=method, **k):
            reads.append(_name)
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, method, wrapped)
    per_step = []
    for step in range(8):
        opt.zero_grad()
        for micro in range(2):
            loss = _loss(model, step, micro)
            loss.backward()
            opt.observe_loss(loss)
        before = len(reads)
        opt.step()
        per_step.append(len(reads) - before)
    assert per_step == [0, 0, 0, 1] * 2  # one read-back per episode, when it closes


@pytest.mark.slow  # a subprocess (issue 20: subprocess tests are not in the fast loop)
def test_the_plain_loop_example_runs_in_smoke_mode(tmp_path):
    out = tmp_path / "records.json"
    script = Path(__file__).resolve().parents[2] / "examples" / "plain_loop.py"
    done = subprocess.run(
        [sys.executable, str(script), "--smoke", "--records", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    records = json.loads(out.read_text())
    assert [r["episode_index"] for r in records] == [0, 1, 2, 3, 4]  # 20 steps, episodes of 4
    assert [r["start_step"] for r in records] == [0, 4, 8, 12, 16]
    assert all(r["reward"] is not None and r["steps"] == 4 for r in records)
    assert "epoch 2:" in done.stdout and "5 episodes" in done.stdout
