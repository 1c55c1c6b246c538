"""Shared helpers for the library tests (imported by name; ``conftest`` holds fixtures only)."""

from __future__ import annotations

import math

import torch

GOLDEN_LOSSES = [2 * math.exp(-t / 40) + 0.1 * math.sin(0.7 * t) + 0.2 for t in range(53)]


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))


def batch(step: int, n: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(n, 6, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def train_steps(aees, model, steps, start=0, *, data=batch):
    """Drive ``aees`` for ``steps`` optimizer steps; returns the loss floats."""
    out = []
    for step in range(start, start + steps):
        x, y = data(step)
        aees.step_start(step)
        aees.optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        aees.step_end(loss)
        out.append(float(loss.detach()))
    return out


def assert_logs_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == b[key], key


def assert_params_equal(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Bit-for-bit equal parameters (the "same result" check for models)."""
    pairs = list(zip(a.parameters(), b.parameters(), strict=True))
    for i, (p, q) in enumerate(pairs):
        assert torch.equal(p, q), f"parameter {i} differs"
