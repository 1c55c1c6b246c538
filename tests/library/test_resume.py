"""Exact resume: save anywhere (mid-episode included), load into fresh objects, run in lockstep."""

from __future__ import annotations

import copy
import io
import random

import pytest
import torch
from lib_helpers import assert_logs_equal, batch, tiny_model, train_steps

from aees import AEES

KW = {
    "lr_candidates": [0.5, 1.0, 2.0],
    "noise_candidates": [0.0, 0.01, 0.03],
    "episode_length": 4,
}


def _build(model, **extra):
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5)
    return AEES(opt, lr_scheduler=sched, **{**KW, **extra}), sched


def _roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)  # AEES state is plain data


CASES = [
    {"seed": 11},
    {"seed": 11, "noise_source": "pulseopt", "track_update_norm": True},
    {"seed": 5, "context_mode": "trend", "structured_control_mode": "conditional"},
    {"seed": None, "control_mode": "random"},
]


@pytest.mark.parametrize("extra", CASES)
@pytest.mark.parametrize("cut", [random.Random(0).randrange(1, 30) for _ in range(2)] + [6, 8])
def test_resume_lockstep(extra, cut):
    model_a = tiny_model(2)
    aees_a, sched_a = _build(model_a, **extra)
    train_steps(aees_a, model_a, cut)

    state = _roundtrip(
        {
            "model": model_a.state_dict(),
            "opt": aees_a.optimizer.state_dict(),
            "sched": sched_a.state_dict(),
            "aees": aees_a.state_dict(),
        }
    )
    model_b = tiny_model(99)  # different init: everything must come from the state
    aees_b, sched_b = _build(model_b, **{**extra, "seed": 123})
    model_b.load_state_dict(state["model"])
    aees_b.optimizer.load_state_dict(state["opt"])
    sched_b.load_state_dict(state["sched"])
    aees_b.load_state_dict(state["aees"])

    for step in range(cut, cut + 25):
        arms = []
        for aees, model in ((aees_a, model_a), (aees_b, model_b)):
            arms.append(aees.step_start(step))
            train_steps_one(aees, model, step)
        assert arms[0] == arms[1]
        for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True):
            assert torch.equal(p, q), f"diverged at step {step}"
    aees_a.finalize()
    aees_b.finalize()
    assert_logs_equal(aees_a.get_logs(), aees_b.get_logs())
    assert aees_a.seed == aees_b.seed


def train_steps_one(aees, model, step):
    x, y = batch(step)
    aees.optimizer.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    aees.step_end(loss)


def test_resumed_run_equals_uninterrupted_run():
    model_full = tiny_model(3)
    full, _ = _build(model_full, seed=4)
    train_steps(full, model_full, 30)

    model_a = tiny_model(3)
    a, sched_a = _build(model_a, seed=4)
    train_steps(a, model_a, 13)  # mid-episode
    state = _roundtrip((model_a.state_dict(), a.optimizer.state_dict(), sched_a.state_dict(),
                        a.state_dict()))  # fmt: skip
    model_b = tiny_model(8)
    b, sched_b = _build(model_b, seed=4)
    model_b.load_state_dict(state[0])
    b.optimizer.load_state_dict(state[1])
    sched_b.load_state_dict(state[2])
    b.load_state_dict(state[3])
    train_steps(b, model_b, 17, start=13)
    full.finalize()
    b.finalize()
    assert_logs_equal(full.get_logs(), b.get_logs())
    for p, q in zip(model_full.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lr_candidates": [0.5, 2.0]}, "lr_candidates"),
        ({"noise_candidates": [0.0]}, "noise_candidates"),
        ({"episode_length": 5}, "episode_length"),
        ({"noise_source": "pulseopt"}, "noise_source"),
        ({"control_mode": "random"}, "control_mode"),
    ],
)
def test_loading_into_incompatible_setup_raises(change, message):
    model = tiny_model()
    a, _ = _build(model, seed=1)
    train_steps(a, model, 5)
    b, _ = _build(tiny_model(), **{"seed": 1, **change})
    with pytest.raises(ValueError, match=message):
        b.load_state_dict(a.state_dict())


def test_loading_with_other_param_count_raises():
    model = tiny_model()
    a, _ = _build(model, seed=1)
    train_steps(a, model, 3)
    other = torch.nn.Linear(6, 3)
    b = AEES(torch.optim.AdamW(other.parameters()), **KW, seed=1)
    with pytest.raises(ValueError, match="param_counts"):
        b.load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="version"):
        b.load_state_dict({"version": 99})


def test_state_dict_refuses_an_open_step():
    model = tiny_model()
    a, _ = _build(model, seed=1)
    a.step_start(0)
    with pytest.raises(RuntimeError, match="open step"):
        a.state_dict()


def test_replay_reproduces_the_recorded_arms():
    model = tiny_model(4)
    a, _ = _build(model, seed=9)
    train_steps(a, model, 24)
    logs = a.get_logs()
    model_r = tiny_model(4)
    opt = torch.optim.AdamW(model_r.parameters(), lr=3e-3)
    r = AEES.replay(opt, logs, lr_scheduler=torch.optim.lr_scheduler.StepLR(opt, 7, 0.5),
                    **KW, seed=9)  # fmt: skip
    train_steps(r, model_r, 24)
    replayed = r.get_logs()
    assert replayed["selected_lr_indices"] == logs["selected_lr_indices"]
    assert replayed["selected_noise_indices"] == logs["selected_noise_indices"]
    assert (
        replayed["episode_rewards"] == logs["episode_rewards"]
    )  # same arms, same noise → same run
    assert copy.deepcopy(r.state_dict())["compat"]["control_mode"] == "replay"
