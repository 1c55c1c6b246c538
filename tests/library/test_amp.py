"""GradScaler: noise on unscaled gradients, steps through the scaler, skipped steps excluded."""

from __future__ import annotations

import pytest
import torch
from lib_helpers import batch, tiny_model

from aees import AEES


def _zero_grad_run(init_scale, steps=6):
    """SGD(lr=1) on a loss whose true gradient is 0: every update is exactly −noise."""
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.zeros(50))
    opt = torch.optim.SGD([w], lr=1.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_interval=1000)
    aees = AEES(opt, noise_candidates=[0.01], episode_length=3, seed=7, grad_scaler=scaler)
    deltas = []
    for step in range(steps):
        before = w.detach().clone()
        aees.step_start(step)
        opt.zero_grad()
        loss = (w * 0.0).sum() + 1.0
        scaler.scale(loss).backward()
        aees.step_end(loss)
        deltas.append(before - w.detach())
    return deltas, scaler


def test_noise_std_does_not_depend_on_the_loss_scale():
    small, s1 = _zero_grad_run(2.0**4)
    large, s2 = _zero_grad_run(2.0**16)
    assert s1.get_scale() == 2.0**4 and s2.get_scale() == 2.0**16  # scaler.update() was called
    for a, b in zip(small, large, strict=True):
        assert torch.equal(a, b)
    std = torch.stack(small).std().item()
    assert 0.007 < std < 0.013  # the configured absolute σ = 0.01, not σ·scale


def test_skipped_step_is_excluded_from_reward_and_counted():
    model = tiny_model(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    aees = AEES(opt, lr_candidates=[1.0, 2.0], episode_length=4, seed=0, grad_scaler=scaler)
    losses = []
    for step in range(8):
        x, y = batch(step)
        aees.step_start(step)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        before = [p.detach().clone() for p in model.parameters()]
        if step == 2:
            next(model.parameters()).grad[0, 0] = float("inf")
        aees.step_end(loss)
        losses.append(loss.item())
        unchanged = all(torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
        assert unchanged == (step == 2)
    logs = aees.get_logs()
    assert logs["episode_scaler_skipped_steps"] == [1, 0]
    assert logs["episode_nonfinite_steps"] == [0, 0]
    assert scaler.get_scale() == 2.0**7  # the skip halved the scale
    counted = [losses[0], losses[1], losses[3]]
    ema = counted[0]
    for v in counted[1:]:
        ema = 0.1 * v + 0.9 * ema
    assert logs["episode_ema_loss_ends"][0] == ema
    assert logs["episode_end_losses"][0] == losses[3]


def test_user_unscale_before_clipping_is_respected():
    model = tiny_model(1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    aees = AEES(opt, noise_candidates=[0.0, 0.01], episode_length=2, seed=0, grad_scaler=scaler)
    for step in range(4):
        x, y = batch(step)
        aees.step_start(step)
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        aees.step_end(loss)  # must not unscale a second time (torch would raise)
    assert len(aees.get_logs()["episode_rewards"]) == 2


def test_the_grad_scaler_layout_aees_reads_is_still_torchs():
    """aees.amp reads ``scaler._per_optimizer_states`` (no public sync-free skip flag exists);
    this fails first if a torch release changes that record, before training goes wrong."""
    from torch.amp.grad_scaler import OptState

    from aees.amp import ScalerStep, _optimizer_state

    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=4.0)
    scaler.scale(w.sum()).backward()
    scaler.unscale_(opt)
    state = scaler._per_optimizer_states[id(opt)]
    assert state["stage"] is OptState.UNSCALED
    (flag,) = state["found_inf_per_device"].values()
    assert isinstance(flag, torch.Tensor) and flag.item() == 0.0
    assert _optimizer_state(scaler, opt) is state
    assert ScalerStep(scaler, opt).skipped().item() == 0.0  # already unscaled: not again
    assert torch.equal(w.grad, torch.ones(3))
    opt.zero_grad()
    scaler.update()
    scaler.scale(w.sum()).backward()
    w.grad[1] = float("inf")
    assert ScalerStep(scaler, opt).skipped().item() == 1.0


def test_without_the_private_record_skips_are_still_counted(monkeypatch):
    import aees.amp

    monkeypatch.setattr(aees.amp, "_optimizer_state", lambda scaler, opt: None)
    monkeypatch.setattr(aees.amp, "_warned", False)
    with pytest.warns(RuntimeWarning, match="get_scale"):
        test_skipped_step_is_excluded_from_reward_and_counted()
    test_user_unscale_before_clipping_is_respected()  # the second unscale_ is tolerated
