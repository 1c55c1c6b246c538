"""Injected controllers, replay built on them, and the one owner of the step count."""

from __future__ import annotations

import copy

import pytest
import torch
from lib_helpers import assert_logs_equal, assert_params_equal, batch, tiny_model, train_steps

from aees import (
    AEES,
    AEESOptimizer,
    DiscountedUCBController,
    PrecomputedController,
    RandomController,
)

KW = {"lr_candidates": [0.5, 1.0, 2.0], "noise_candidates": [0.0, 0.01], "episode_length": 4}


def _opt(model):
    return torch.optim.AdamW(model.parameters(), lr=3e-3)


# ---------------------------------------------------------------- injection
def test_an_injected_controller_is_the_one_used():
    model = tiny_model(1)
    schedule = [2, 0, 1, 1, 0]
    a = AEES(_opt(model), **KW, seed=3, lr_controller=PrecomputedController(3, schedule))
    train_steps(a, model, 20)
    logs = a.get_logs()
    assert logs["selected_lr_indices"] == schedule
    assert a.episode_manager.lr_controller.position == 5
    assert a.control_mode == "custom"  # the noise axis still runs the adaptive bandit
    assert a.state_dict()["compat"]["controllers"] == {
        "lr": "injected:PrecomputedController",
        "noise": "built",
    }


def test_injected_bandits_equal_the_built_ones():
    """The controllers control_mode builds, passed in by hand, decide exactly alike."""
    built_model, injected_model = tiny_model(2), tiny_model(2)
    built = AEES(_opt(built_model), **KW, seed=42)
    injected = AEES(
        _opt(injected_model),
        **KW,
        seed=42,
        lr_controller=DiscountedUCBController(3, random_seed=42),
        noise_controller=DiscountedUCBController(2, random_seed=42 + 101),
    )
    assert injected.control_mode == "custom" and built.control_mode == "adaptive"
    train_steps(built, built_model, 22)
    train_steps(injected, injected_model, 22)
    assert_logs_equal(built.get_logs(), injected.get_logs())
    assert_params_equal(built_model, injected_model)


def test_conditional_mode_takes_one_noise_controller_per_lr_arm():
    model = tiny_model(3)
    per_arm = [PrecomputedController(2, [i % 2]) for i in range(3)]
    a = AEES(
        _opt(model),
        **KW,
        seed=0,
        structured_control_mode="conditional",
        lr_controller=PrecomputedController(3, [0, 1, 2, 1]),
        noise_controller=per_arm,
    )
    assert a.control_mode == "replay"
    train_steps(a, model, 16)
    logs = a.get_logs()
    assert logs["selected_lr_indices"] == [0, 1, 2, 1]
    assert logs["selected_noise_indices"] == [0, 1, 0, 1]  # arm i's controller holds i % 2
    assert [c.position for c in per_arm] == [1, 2, 1]


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"lr_controller": object()}, TypeError, "lr_controller must be a Controller"),
        ({"lr_controller": RandomController(2)}, ValueError, "n_arms=2, but there are 3 LR"),
        (
            {"lr_candidates": [1.0], "lr_controller": RandomController(1)},
            ValueError,
            "single candidate",
        ),
        ({"noise_controller": [RandomController(2)]}, TypeError, "conditional"),
        (
            {"structured_control_mode": "conditional", "noise_controller": RandomController(2)},
            TypeError,
            "one noise controller per LR arm",
        ),
        (
            {"structured_control_mode": "conditional", "noise_controller": [RandomController(2)]},
            ValueError,
            "needs 3 noise controllers",
        ),
        (
            {
                "structured_control_mode": "conditional",
                "noise_controller": [RandomController(2), RandomController(2), RandomController(3)],
            },
            ValueError,
            r"noise_controller\[2\] has n_arms=3",
        ),
    ],
)
def test_injected_controllers_are_validated(kwargs, exc, pattern):
    with pytest.raises(exc, match=pattern):
        AEES(_opt(tiny_model()), **{**KW, **kwargs})


def test_one_controller_object_cannot_serve_two_axes():
    shared = RandomController(3)
    with pytest.raises(ValueError, match="distinct"):
        AEES(
            _opt(tiny_model()),
            lr_candidates=[1, 2, 3],
            noise_candidates=[0, 1, 2],
            lr_controller=shared,
            noise_controller=shared,
        )


def _injected(model, seed=5):
    return AEES(
        _opt(model),
        **KW,
        seed=seed,
        lr_controller=PrecomputedController(3, [1, 2, 0, 2, 1]),
        noise_controller=DiscountedUCBController(2, random_seed=7),
    )


def test_injected_controllers_resume_exactly():
    full_model, model_b = tiny_model(4), tiny_model(4)
    full = _injected(full_model)
    train_steps(full, full_model, 22)

    a = _injected(model_b)
    train_steps(a, model_b, 9)  # mid-episode: the open episode and its losses are saved too
    state = copy.deepcopy(a.state_dict())
    opt_state = copy.deepcopy(a.optimizer.state_dict())
    assert state["manager"]["controllers"]["lr"]["position"] == 3

    b = AEES(
        _opt(model_b),
        **KW,
        seed=5,
        lr_controller=PrecomputedController(3, [1, 2, 0, 2, 1]),
        noise_controller=DiscountedUCBController(2, random_seed=123),  # RNG state is loaded
    )
    b.optimizer.load_state_dict(opt_state)
    b.load_state_dict(state)
    assert b.num_steps == 9
    train_steps(b, model_b, 13, start=9)
    full.finalize()
    b.finalize()
    assert_logs_equal(full.get_logs(), b.get_logs())
    assert_params_equal(full_model, model_b)


def test_resuming_injected_state_needs_the_same_injection():
    model = tiny_model(4)
    a = _injected(model)
    train_steps(a, model, 5)
    state = a.state_dict()
    with pytest.raises(ValueError, match=r"control_mode='custom'.*'adaptive'"):
        AEES(_opt(model), **KW, seed=5).load_state_dict(state)
    other = AEES(
        _opt(model),
        **KW,
        seed=5,
        lr_controller=PrecomputedController(3, [0, 0, 0]),
        noise_controller=DiscountedUCBController(2),
    )
    with pytest.raises(ValueError, match="different precomputed schedule"):
        other.load_state_dict(state)


def test_aees_optimizer_accepts_injected_controllers():
    model = tiny_model(6)
    opt = AEESOptimizer(_opt(model), **KW, seed=1, lr_controller=PrecomputedController(3, [2, 1]))
    for step in range(8):
        opt.zero_grad()
        loss = model(torch.randn(4, 6, generator=torch.Generator().manual_seed(step))).pow(2).mean()
        loss.backward()
        opt.observe_loss(loss)
        opt.step()
    assert opt.get_logs()["selected_lr_indices"] == [2, 1]
    assert opt.aees.control_mode == "custom"


# ---------------------------------------------------------------- replay
def test_replay_as_the_engine_calls_it_equals_the_recorded_run():
    """The engine's call: LR indices only, noise fixed, control_mode passed as a placeholder."""
    kw = {"lr_candidates": [0.5, 1.0, 2.0], "noise_candidates": [0.0], "episode_length": 3}
    rec_model, rep_model = tiny_model(7), tiny_model(7)
    recorded = AEES(_opt(rec_model), **kw, seed=11)
    train_steps(recorded, rec_model, 17)
    recorded.finalize()
    logs = recorded.get_logs()
    replay = AEES.replay(
        _opt(rep_model),
        {"selected_lr_indices": logs["selected_lr_indices"]},
        control_mode="random",
        **kw,
        seed=11,
    )
    assert replay.control_mode == "replay"
    assert replay.state_dict()["compat"]["control_mode"] == "replay"
    assert isinstance(replay.episode_manager.lr_controller, PrecomputedController)
    train_steps(replay, rep_model, 17)
    replay.finalize()
    assert_logs_equal(logs, replay.get_logs())  # same arms → same losses, rewards, steps
    assert_params_equal(rec_model, rep_model)


def test_replay_refuses_missing_indices_and_injected_controllers():
    opt = _opt(tiny_model())
    with pytest.raises(ValueError, match="selected_noise_indices"):
        AEES.replay(opt, {"selected_lr_indices": [0, 1]}, **KW)
    with pytest.raises(TypeError, match="builds the controllers"):
        AEES.replay(opt, {"selected_lr_indices": [0]}, **KW, lr_controller=RandomController(3))


def test_replay_resumes_exactly():
    logs = {"selected_lr_indices": [2, 0, 1, 2, 1], "selected_noise_indices": [1, 0, 0, 1, 1]}
    full_model, model_b = tiny_model(8), tiny_model(8)
    full = AEES.replay(_opt(full_model), logs, **KW, seed=2)
    train_steps(full, full_model, 18)
    a = AEES.replay(_opt(model_b), logs, **KW, seed=2)
    train_steps(a, model_b, 6)
    state, opt_state = copy.deepcopy(a.state_dict()), copy.deepcopy(a.optimizer.state_dict())
    b = AEES.replay(_opt(model_b), logs, **KW, seed=2)
    b.optimizer.load_state_dict(opt_state)
    b.load_state_dict(state)
    train_steps(b, model_b, 12, start=6)
    assert_logs_equal(full.get_logs(), b.get_logs())
    assert_params_equal(full_model, model_b)


# ---------------------------------------------------------------- the step count
def test_step_start_refuses_a_step_other_than_num_steps():
    a = AEES(_opt(tiny_model()), **KW, seed=0)
    with pytest.raises(ValueError, match=r"global_step=5.*completed 0 steps.*num_steps \(0\)"):
        a.step_start(5)
    a.step_start(0)
    a.step_end(1.0)
    with pytest.raises(ValueError, match=r"global_step=0.*num_steps \(1\)"):
        a.step_start(0)
    with pytest.raises(TypeError, match="global_step must be an int or None"):
        a.step_start(1.0)
    a.step_start()  # no argument: step num_steps
    a.step_end(1.0)
    assert a.num_steps == 2


def test_without_a_step_argument_the_run_is_the_same():
    """Episodes and the counter noise both follow num_steps; the argument only has to agree."""
    model_a, model_b = tiny_model(9), tiny_model(9)
    a, b = AEES(_opt(model_a), **KW, seed=4), AEES(_opt(model_b), **KW, seed=4)
    train_steps(a, model_a, 10)
    for step in range(10):
        x, y = batch(step)
        b.step_start()
        b.optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model_b(x), y)
        loss.backward()
        b.step_end(loss)
    assert_logs_equal(a.get_logs(), b.get_logs())
    assert_params_equal(model_a, model_b)
    assert a.get_logs()["episode_start_steps"] == [0, 4]
