"""Any optimizer, param groups, closures, tensor LRs, schedulers — and no hidden per-step work."""

from __future__ import annotations

import copy

import pytest
import torch
from lib_helpers import batch, tiny_model, train_steps

from aees import AEES

OPTIMIZERS = {
    "AdamW": lambda ps: torch.optim.AdamW(ps, lr=1e-2),
    "Adam": lambda ps: torch.optim.Adam(ps, lr=1e-2),
    "SGD": lambda ps: torch.optim.SGD(ps, lr=0.05),
    "SGD-momentum": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
    "SGD-nesterov": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_multiplier_equals_a_plain_step_at_scaled_lr(name):
    """With one arm ×m and no noise, AEES must equal the plain optimizer at lr·m."""
    model_a, model_b = tiny_model(0), tiny_model(0)
    opt_a = OPTIMIZERS[name](model_a.parameters())
    aees = AEES(opt_a, lr_candidates=[2.0], episode_length=3, seed=0)
    opt_b = OPTIMIZERS[name](model_b.parameters())
    opt_b.param_groups[0]["lr"] *= 2.0
    for step in range(7):
        x, y = batch(step)
        aees.step_start(step)
        opt_a.zero_grad()
        torch.nn.functional.cross_entropy(model_a(x), y).backward()
        aees.step_end(torch.tensor(1.0))
        opt_b.zero_grad()
        torch.nn.functional.cross_entropy(model_b(x), y).backward()
        opt_b.step()
    for p, q in zip(model_a.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert opt_a.param_groups[0]["lr"] == opt_b.param_groups[0]["lr"] / 2.0  # base restored


def test_param_group_ratios_are_preserved():
    model = tiny_model()
    opt = torch.optim.SGD(
        [
            {"params": model[0].parameters(), "lr": 0.1},
            {"params": model[2].parameters(), "lr": 0.01},
        ]
    )
    seen = []
    original = opt.step

    def spy(*a, **k):
        seen.append([g["lr"] for g in opt.param_groups])
        return original(*a, **k)

    opt.step = spy
    aees = AEES(opt, lr_candidates=[0.5, 2.0], episode_length=1, seed=1)
    train_steps(aees, model, 6)
    for lrs, arm in zip(seen, aees.get_logs()["selected_lr_values"], strict=True):
        assert lrs == [0.1 * arm, 0.01 * arm]
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.01]


def test_tensor_lr_is_scaled_and_the_same_object_restored():
    model = tiny_model()
    lr = torch.tensor(0.01)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ref_model = copy.deepcopy(model)
    ref = torch.optim.Adam(ref_model.parameters(), lr=torch.tensor(0.02))
    aees = AEES(opt, lr_candidates=[2.0], seed=0)
    for step in range(4):
        x, y = batch(step)
        aees.step_start(step)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        aees.step_end(1.0)
        ref.zero_grad()
        torch.nn.functional.cross_entropy(ref_model(x), y).backward()
        ref.step()
    assert opt.param_groups[0]["lr"] is lr and lr.item() == pytest.approx(0.01)
    for p, q in zip(model.parameters(), ref_model.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("opt_name", ["SGD", "LBFGS"])
def test_closure_is_passed_through_and_noise_added_after_it(opt_name):
    model = tiny_model()
    if opt_name == "LBFGS":
        opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=3)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
    aees = AEES(opt, lr_candidates=[0.5, 1.0], noise_candidates=[0.0, 1e-3], episode_length=2,
                seed=0)  # fmt: skip
    x, y = batch(0)
    calls = []

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        calls.append(loss.item())
        return loss

    for step in range(6):
        aees.step_start(step)
        aees.step_end(closure=closure)
    logs = aees.get_logs()
    assert len(logs["episode_rewards"]) == 3 and len(calls) >= 6
    assert logs["episode_start_losses"][0] == calls[0]


def test_scheduler_is_stepped_by_aees_when_passed_and_sees_base_lr():
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    aees = AEES(opt, lr_candidates=[4.0], lr_scheduler=sched, seed=0)
    train_steps(aees, model, 5)
    assert sched.last_epoch == 5
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0 / 6)


def test_caller_steps_the_scheduler_when_not_passed():
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    aees = AEES(opt, lr_candidates=[4.0], seed=0)
    train_steps(aees, model, 3)
    assert sched.last_epoch == 0 and opt.param_groups[0]["lr"] == 1.0


class _Counter:
    def __init__(self):
        self.n = 0


def test_no_host_reads_within_an_episode_and_one_per_episode(monkeypatch):
    """Per step, nothing is read back from the loss tensors; each episode close reads once."""
    model = tiny_model()
    aees = AEES(torch.optim.AdamW(model.parameters()), lr_candidates=[0.5, 1.0, 2.0],
                noise_candidates=[0.0, 0.01], episode_length=5, seed=0)  # fmt: skip
    reads = _Counter()
    clones = _Counter()
    for method in ("item", "tolist", "__float__", "__bool__", "cpu", "numpy"):
        original = getattr(torch.Tensor, method)

        def wrapped(self, *a, _orig=original, **k):
            reads.n += 1
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, method, wrapped)
    original_clone = torch.Tensor.clone

    def counting_clone(self, *a, **k):
        clones.n += 1
        return original_clone(self, *a, **k)

    monkeypatch.setattr(torch.Tensor, "clone", counting_clone)
    plain_model = tiny_model()
    plain = torch.optim.AdamW(plain_model.parameters())
    x, y = batch(0)
    torch.nn.functional.cross_entropy(plain_model(x), y).backward()
    plain.step()
    before = reads.n
    plain.step()
    plain_reads = reads.n - before  # what AdamW itself reads on the CPU (its step counters)
    per_step = []
    for step in range(15):
        x, y = batch(step)
        aees.step_start(step)
        aees.optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        before = reads.n
        aees.step_end(loss)
        per_step.append(reads.n - before - plain_reads)
    assert per_step == [0, 0, 0, 0, 1] * 3
    assert clones.n == 0 and aees._records.snapshot is None  # no parameter copy by default


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_no_cuda_sync_within_an_episode():
    model = tiny_model().cuda()
    aees = AEES(torch.optim.AdamW(model.parameters()), lr_candidates=[0.5, 1.0, 2.0],
                noise_candidates=[0.0, 0.01], episode_length=50, seed=0)  # fmt: skip
    x, y = (t.cuda() for t in batch(0))
    torch.cuda.set_sync_debug_mode("error")
    try:
        for step in range(49):
            aees.step_start(step)
            aees.optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            aees.step_end(loss)
    finally:
        torch.cuda.set_sync_debug_mode("default")
