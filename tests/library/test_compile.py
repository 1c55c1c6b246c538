"""torch.compile: tensor LRs scaled in place (same object, exact restore), no recompiles when the
arm changes, compiled models train exactly as eager ones (CPU, compiler-free backends)."""

from __future__ import annotations

import pytest
import torch
from lib_helpers import assert_logs_equal, assert_params_equal, batch, tiny_model
from torch._dynamo.testing import CompileCounterWithBackend

from aees import AEES, AEESOptimizer

F = torch.nn.functional
# multipliers whose product with the base LR does not divide back exactly
KW = {"lr_candidates": [0.3, 1.0, 3.0], "noise_candidates": [0.0, 0.01], "episode_length": 2}
BASE_LR = 0.01
OPTIONS = {"SGD": {"momentum": 0.9}}


def _train(opt, model, steps, step_fn=None, start=0):
    for step in range(start, start + steps):
        x, y = batch(step)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.observe_loss(loss)
        (step_fn or opt.step)()


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_tensor_lr_is_scaled_in_place_and_restored_bit_for_bit():
    model = tiny_model()
    lr = torch.tensor(BASE_LR)
    inner = torch.optim.Adam(model.parameters(), lr=lr)
    seen = []
    inner.register_step_pre_hook(
        lambda o, a, k: seen.append((o.param_groups[0]["lr"], o.param_groups[0]["lr"].item()))
    )
    opt = AEESOptimizer(inner, **KW, seed=1)
    _train(opt, model, 12)
    arms = [m for m in opt.get_logs()["selected_lr_values"] for _ in range(2)]
    assert len(set(arms)) == 3
    # the step saw the user's own tensor (a compiled / CUDA-graph step keeps its input) ...
    assert all(t is lr for t, _ in seen)
    # ... holding base x multiplier, and after the step the base value, restored exactly
    assert [v for _, v in seen] == [(torch.tensor(BASE_LR) * m).item() for m in arms]
    assert torch.equal(lr, torch.tensor(BASE_LR)) and inner.param_groups[0]["lr"] is lr


def test_a_tensor_lr_shared_by_param_groups_is_scaled_once():
    a, b = torch.nn.Linear(6, 4), torch.nn.Linear(4, 3)
    lr = torch.tensor(BASE_LR)
    inner = torch.optim.Adam([{"params": a.parameters()}, {"params": b.parameters()}], lr=lr)
    assert inner.param_groups[0]["lr"] is inner.param_groups[1]["lr"]  # torch shares defaults
    seen = []
    inner.register_step_pre_hook(lambda o, *_: seen.append(o.param_groups[1]["lr"].item()))
    opt = AEESOptimizer(inner, lr_candidates=[3.0], seed=0)
    model = torch.nn.Sequential(a, torch.nn.Tanh(), b)
    _train(opt, model, 2)
    assert seen == [(torch.tensor(BASE_LR) * 3.0).item()] * 2  # not x9
    assert torch.equal(lr, torch.tensor(BASE_LR))


@pytest.mark.parametrize("name", ["Adam", "AdamW", "SGD"])
def test_a_compiled_optimizer_step_does_not_recompile_when_the_arm_changes(name):
    def build():
        model = tiny_model(3)
        cls = getattr(torch.optim, name)
        inner = cls(model.parameters(), lr=torch.tensor(BASE_LR), **OPTIONS.get(name, {}))
        return model, AEESOptimizer(inner, **KW, seed=2)

    model, opt = build()
    counter = CompileCounterWithBackend("aot_eager")
    opt.optimizer.step = torch.compile(opt.optimizer.step, backend=counter)
    _train(opt, model, 2)
    compiled_once = counter.frame_count
    _train(opt, model, 14, start=2)  # 8 episodes: every LR arm and both noise arms in force
    assert compiled_once >= 1 and counter.frame_count == compiled_once
    logs = opt.get_logs()
    assert len(set(logs["selected_combined_names"])) >= 4

    eager_model, eager = build()
    _train(eager, eager_model, 16)
    assert eager.get_logs()["selected_lr_indices"] == logs["selected_lr_indices"]
    for p, q in zip(model.parameters(), eager_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)  # compiled Adam rounds differently


def test_compiling_around_the_aees_step_does_not_recompile_when_the_arm_changes():
    model = tiny_model(4)
    opt = AEESOptimizer(torch.optim.Adam(model.parameters(), lr=torch.tensor(BASE_LR)), **KW,
                        seed=5)  # fmt: skip
    outer = CompileCounterWithBackend("eager")
    step = torch.compile(opt.step, backend=outer)
    _train(opt, model, 2, step)
    before = outer.frame_count
    _train(opt, model, 14, step, start=2)
    assert outer.frame_count == before  # the AEES bookkeeping is never traced
    ref_model = tiny_model(4)
    ref = AEESOptimizer(torch.optim.Adam(ref_model.parameters(), lr=torch.tensor(BASE_LR)), **KW,
                        seed=5)  # fmt: skip
    _train(ref, ref_model, 16)
    assert_logs_equal(opt.get_logs(), ref.get_logs())
    assert_params_equal(model, ref_model)


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_a_compiled_model_trains_exactly_like_the_eager_one(backend):
    def run(compiled):
        model = tiny_model(6)
        aees = AEES(torch.optim.AdamW(model.parameters(), lr=BASE_LR), **KW, seed=7)
        counter = CompileCounterWithBackend(backend)
        forward = torch.compile(model, backend=counter) if compiled else model
        for step in range(12):
            x, y = batch(step)
            aees.step_start(step)
            aees.optimizer.zero_grad()
            loss = F.cross_entropy(forward(x), y)
            loss.backward()
            aees.step_end(loss)
        return model, aees.get_logs(), counter.frame_count

    model_c, logs_c, frames = run(True)
    model_e, logs_e, _ = run(False)
    assert frames == 1
    assert_logs_equal(logs_c, logs_e)
    assert_params_equal(model_c, model_e)
