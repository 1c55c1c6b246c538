"""LR schedules of the runners, built from ``torch.optim.lr_scheduler`` classes.

Epoch granularity (docs/protocols.md §6.1, the CIFAR runner and the digits task): the scheduler is
stepped
once per epoch, after evaluation, so during 0-indexed epoch ``e`` the LR is ``base_lr * λ(e)``.
The span is ``T = --scheduler-t-max`` if given, else ``--epochs``.

=================  ==========================================================================
``none``           no scheduler (λ = 1)
``cosine``         ``CosineAnnealingLR(T_max=T)``, eta_min 0: λ(e) = (1 + cos(π e / T)) / 2
``linear``         ``LambdaLR``: λ(e) = max(0, 1 − clamp((e + 1) / max(T, 1), 0, 1))
``warmup_linear``  W = clamp(warmup_epochs, 0, max(T − 1, 0)), s = e + 1; if W > 0 and s ≤ W:
                   λ = min(s / W, 1), else λ = max(0, 1 − clamp((s − W) / max(T − W, 1), 0, 1))
=================  ==========================================================================

These are the thesis formulas, kept for comparability. Note their quirks (docs/protocols.md §6.1):
``linear`` already decays in the first epoch and runs the last epoch (e = T − 1) at LR 0, and with
the default ``--warmup-epochs 0`` ``warmup_linear`` *is* ``linear``; pass ``--warmup-epochs`` for a
real warmup. The AEES multiplier scales the scheduled LR: effective LR = base · λ(e) · m.

Step granularity (docs/protocols.md §6.2, the NLP runners) is :func:`build_step_scheduler`.
"""

from __future__ import annotations

from functools import partial

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, LRScheduler

__all__ = [
    "build_epoch_scheduler",
    "build_step_scheduler",
    "epoch_linear_factor",
    "epoch_warmup_linear_factor",
    "resolve_span",
    "step_linear_factor",
    "step_warmup_linear_factor",
]


def _clamp(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


def epoch_linear_factor(epoch: int, *, span: int) -> float:
    """λ(e) of the epoch-level ``linear`` schedule."""
    return max(0.0, 1.0 - _clamp((epoch + 1) / max(span, 1), 0.0, 1.0))


def epoch_warmup_linear_factor(epoch: int, *, span: int, warmup: int) -> float:
    """λ(e) of the epoch-level ``warmup_linear`` schedule."""
    w = int(_clamp(warmup, 0, max(span - 1, 0)))
    s = epoch + 1
    if w > 0 and s <= w:
        return min(s / w, 1.0)
    return max(0.0, 1.0 - _clamp((s - w) / max(span - w, 1), 0.0, 1.0))


def step_linear_factor(step: int, *, total: int) -> float:
    """λ(step) of the step-level ``linear`` schedule (starts at 1)."""
    return max(0.0, 1.0 - _clamp(step / max(total, 1), 0.0, 1.0))


def step_warmup_linear_factor(step: int, *, total: int, warmup: int) -> float:
    """λ(step) of the step-level ``warmup_linear`` schedule (``warmup`` in steps)."""
    w = int(_clamp(warmup, 0, max(total - 1, 0)))
    if w > 0 and step < w:
        return min((step + 1) / w, 1.0)
    return max(0.0, 1.0 - _clamp((step - w) / max(total - w, 1), 0.0, 1.0))


def resolve_span(epochs: int, scheduler_t_max: int | None) -> int:
    """``T``: ``scheduler_t_max`` if given, else ``epochs``."""
    return int(scheduler_t_max) if scheduler_t_max is not None else int(epochs)


def build_epoch_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    *,
    epochs: int,
    scheduler_t_max: int | None = None,
    warmup_epochs: int = 0,
) -> LRScheduler | None:
    """The epoch-level scheduler ``name`` on ``optimizer`` (None for ``"none"``).

    Step it once per epoch, after evaluation. ``LambdaLR`` factors are ``functools.partial``
    objects of module-level functions, so the scheduler pickles and its ``state_dict`` resumes.
    """
    span = resolve_span(epochs, scheduler_t_max)
    if name == "none":
        return None
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=span)
    if name == "linear":
        return LambdaLR(optimizer, partial(epoch_linear_factor, span=span))
    if name == "warmup_linear":
        return LambdaLR(
            optimizer, partial(epoch_warmup_linear_factor, span=span, warmup=warmup_epochs)
        )
    raise ValueError(f"unknown lr scheduler {name!r}; expected none, cosine, linear, warmup_linear")


def build_step_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    *,
    total_steps: int,
    warmup_steps: int = 0,
) -> LRScheduler | None:
    """The step-level scheduler ``name`` (docs/protocols.md §6.2): stepped after every optimizer
    step."""
    if name == "none":
        return None
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=total_steps)
    if name == "linear":
        return LambdaLR(optimizer, partial(step_linear_factor, total=total_steps))
    if name == "warmup_linear":
        return LambdaLR(
            optimizer, partial(step_warmup_linear_factor, total=total_steps, warmup=warmup_steps)
        )
    raise ValueError(f"unknown lr scheduler {name!r}; expected none, cosine, linear, warmup_linear")
