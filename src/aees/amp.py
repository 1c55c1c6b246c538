"""The one place AEES reads ``GradScaler`` internals, and why it must.

AEES needs two facts per step from a ``torch.amp.GradScaler``, without a host sync:

1. whether the gradients of *this* optimizer were already unscaled (the user called
   ``scaler.unscale_(opt)`` before clipping; a second ``unscale_`` raises), and
2. whether the step will be skipped (inf/NaN found), as a device tensor, so the episode can
   leave the step out of its reward when it reads its losses back, once per episode.

The public API (torch 2.3 to 2.14) offers neither without a sync: ``get_scale()`` returns a float
(``.item()``), ``state_dict()`` likewise, ``scaler.step`` returns what ``optimizer.step`` returned
(``None`` both when it ran and when it was skipped), and an optimizer step hook fires even for a
skipped step of a fused optimizer (``_step_supports_amp_scaling``: torch calls its ``step`` with
``found_inf`` and the kernel skips on the device). So AEES reads
``scaler._per_optimizer_states[id(optimizer)]`` — ``{"stage": OptState, "found_inf_per_device":
{device: tensor}}`` — whose layout has not changed from torch 1.6 to 2.14.
``tests/library/test_amp.py`` pins that layout, so a torch release that changes it fails a test
rather than training silently with wrong skip counts.

If the layout is ever missing, :func:`unscale_and_found_inf` falls back to public calls only:
``unscale_`` (tolerating the "already called" error) and, after ``update()``, a drop of
``get_scale()`` as the skip signal. That costs one host sync per step and misses skips when
``backoff_factor`` is 1; a warning says so once per process.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

_warned = False


def _optimizer_state(scaler: Any, optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
    """The scaler's private per-optimizer record, or ``None`` if this torch lays it out otherwise.

    Reading it through ``defaultdict.__getitem__`` creates the record torch itself would create
    at the next ``unscale_``/``step``, so the read changes nothing torch can observe.
    """
    states = getattr(scaler, "_per_optimizer_states", None)
    if states is None:
        return None
    state = states[id(optimizer)]
    if not isinstance(state, dict) or not {"stage", "found_inf_per_device"} <= state.keys():
        return None
    return state


def _unscaled_stage() -> Any:
    from torch.amp.grad_scaler import OptState

    return OptState.UNSCALED


def _warn_fallback() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            "aees: this torch's GradScaler has no _per_optimizer_states record in the layout "
            "AEES knows; skipped steps are detected from get_scale() instead (one host sync per "
            "step).",
            RuntimeWarning,
            stacklevel=3,
        )


class ScalerStep:
    """One AMP step of ``optimizer`` through ``scaler``: unscale, then (later) the skip flag.

    ``skipped()`` is a float64 tensor, > 0 when the scaler skipped (or will skip) the step; on
    the private path it is read before ``scaler.step`` and stays on the device.
    """

    def __init__(self, scaler: Any, optimizer: torch.optim.Optimizer) -> None:
        self._scaler = scaler
        self._flag: Tensor | None = None
        self._scale_before: float | None = None
        state = _optimizer_state(scaler, optimizer)
        if state is not None:
            if state["stage"] is not _unscaled_stage():
                scaler.unscale_(optimizer)
            # 1.0 on every device whose gradients held an inf/NaN: scaler.step will skip
            found = list(state["found_inf_per_device"].values())
            if len(found) == 1:
                self._flag = found[0].to(torch.float64)  # a copy: torch resets its own flag
            else:
                self._flag = sum(
                    (f.to(torch.float64).cpu() for f in found), torch.zeros((), dtype=torch.float64)
                )
            return
        _warn_fallback()
        try:
            scaler.unscale_(optimizer)
        except RuntimeError as err:  # the user already unscaled for clipping
            if "unscale_() has already been called" not in str(err):
                raise
        self._scale_before = scaler.get_scale()

    def skipped(self) -> Tensor:
        """Call after ``scaler.update()``."""
        if self._flag is not None:
            return self._flag
        assert self._scale_before is not None
        return torch.tensor(
            float(self._scaler.get_scale() < self._scale_before), dtype=torch.float64
        )


def adopt_unscale(scaler: Any, outer: torch.optim.Optimizer, inner: torch.optim.Optimizer) -> None:
    """Move a ``scaler.unscale_(outer)`` record to ``inner`` (``AEESOptimizer`` → wrapped).

    ``outer`` shares ``inner``'s gradients; AEES steps ``inner`` through the scaler, so an
    unscale recorded under ``outer`` must count for ``inner`` or the gradients are unscaled twice.
    Without the private record there is nothing to move (and the fallback tolerates the
    second ``unscale_``).
    """
    states = getattr(scaler, "_per_optimizer_states", None)
    if not states or id(outer) not in states:
        return
    from torch.amp.grad_scaler import OptState

    mine = states.pop(id(outer))
    key = id(inner)
    if mine["stage"] is OptState.UNSCALED and (
        key not in states or states[key]["stage"] is OptState.READY
    ):
        states[key] = mine
