"""``AEESOptimizer``: AEES as a real ``torch.optim.Optimizer``, for code that expects one.

Frameworks (Lightning, the Hugging Face ``Trainer``, Accelerate) and tools (LR schedulers,
gradient clipping, ``GradScaler``) take an optimizer, walk its ``param_groups``, call
``step``/``zero_grad`` and checkpoint ``state_dict()``. A wrapper that is not an ``Optimizer``
breaks them; so this one is, and it shares (never copies) the wrapped optimizer's
``param_groups``, ``state`` and ``defaults``::

    opt = AEESOptimizer(torch.optim.AdamW(model.parameters(), lr=1e-3),
                        lr_candidates=[0.5, 1, 2], episode_length=200, seed=0)
    for x, y in loader:
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.observe_loss(loss)        # or: opt.step(closure) with a closure that returns the loss
        opt.step()

The contract:

- ``AEESOptimizer(optimizer, **aees_kwargs)``: every keyword is :class:`aees.AEES`'s (same names,
  defaults and decisions, injected ``lr_controller``/``noise_controller`` included); AEES owns
  the step counter, so episodes open and close by themselves.
- ``observe_loss(loss)``: hand over a micro-batch's (unscaled) loss, a scalar tensor kept on its
  device (no host sync) or a float. Call it once per micro-batch under gradient accumulation,
  after ``zero_grad()``; the step's loss is the mean of the losses observed since the previous step.
- ``step(closure=None)``: the step's loss is the mean of the observed losses if there are any,
  otherwise what the closure returned (its first call). A step with neither raises
  ``RuntimeError`` saying how to supply one. Noise, the LR multiplier and the wrapped
  optimizer's step are :meth:`aees.AEES.step_end`'s; ``step`` hooks registered on this object fire.
- ``zero_grad()``: losses still waiting for a step belong to a step that never ran (a
  ``GradScaler`` found inf/NaN gradients and skipped ``step``); they are dropped and counted in
  :attr:`skipped_steps`. :meth:`skip_step` does the same for loops that never call ``zero_grad``.
- ``state_dict()``: the wrapped optimizer's state dict (same ``state`` / ``param_groups`` keys,
  so framework code that inspects it keeps working) plus an ``"aees"`` entry with the AEES state,
  the losses still waiting for a step and the skip counter; built of tensors, numbers, strings,
  lists and dicts only, so it loads with ``torch.load(weights_only=True)``.
  ``load_state_dict()`` validates the whole AEES part first (``ValueError`` naming the key and
  the value), then restores both, or nothing if either part does not fit; a plain optimizer
  state dict (no ``"aees"`` entry) is accepted with a warning, as a warm start.
- Episode records: ``register_episode_end_hook(hook)`` (or ``on_episode_end=``) calls
  ``hook(record)`` with an :class:`aees.EpisodeRecord` whenever an episode closes.
- AMP, two ways. A framework or loop that owns its ``GradScaler`` calls
  ``scaler.step(opt)`` / ``scaler.update()`` as usual: the scaler unscales the shared gradients
  first (noise is added to unscaled gradients) and calls ``opt.step()`` only when they are
  finite. Or pass ``grad_scaler=scaler`` and call ``opt.step()`` *instead of* ``scaler.step`` /
  ``scaler.update()``: AEES then steps and updates the scaler, and a skipped step counts in the
  episode (``episode_scaler_skipped_steps``) as with the ``AEES`` object.
  ``scaler.unscale_(opt)`` before clipping works either way.
- DDP, exact resume, non-finite losses, tensor LRs (scaled in place, so a compiled or
  CUDA-graph-captured step does not recompile when the arm changes): as :class:`aees.AEES`.

The wrapper keeps its own mutable state in one holder object, so framework proxies that forward
attribute reads to it (Lightning's ``LightningOptimizer``) always see the live state.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils.hooks import RemovableHandle

from aees.amp import adopt_unscale
from aees.device_steps import Loss
from aees.state_checks import same_plain, state_floats, state_int, state_keys, state_path
from aees.types import EpisodeHook
from aees.wrapper import AEES

_STATE_KEY = "aees"
_STATE_FORMAT = "AEESOptimizer"
_STATE_VERSION = 1

_NO_LOSS = (
    "AEESOptimizer.step() has no loss for this step: call opt.observe_loss(loss) after "
    "zero_grad() for every micro-batch (the Lightning and Hugging Face integrations do this "
    "for you), or pass a closure that returns the loss: opt.step(closure)."
)


class _Holder:
    """The wrapper's mutable state (see the module docstring for why it is one object)."""

    def __init__(self, aees: AEES, scaler: Any) -> None:
        self.aees = aees
        self.scaler = scaler
        self.observed: list[Loss] = []  # this step's losses, still on their devices
        self.skipped_steps = 0


class AEESOptimizer(torch.optim.Optimizer):
    """Adaptive Episodic Exploration Scheduling as a ``torch.optim.Optimizer`` around ``optimizer``.

    Args:
        optimizer: any ``torch.optim.Optimizer``; its ``param_groups``, ``state`` and
            ``defaults`` become this object's (shared).
        **aees_kwargs: :class:`aees.AEES`'s keyword arguments (``lr_candidates``,
            ``noise_candidates``, ``episode_length``, ``seed``, ``grad_scaler``,
            ``on_episode_end``, ...).

    See the module docstring for the call contract.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, **aees_kwargs: Any) -> None:
        if isinstance(optimizer, AEESOptimizer):
            raise TypeError("optimizer is already an AEESOptimizer; wrap the plain optimizer once.")
        aees = AEES(optimizer, **aees_kwargs)  # validates optimizer and every keyword
        self._wrapped = optimizer
        self._holder = _Holder(aees, aees_kwargs.get("grad_scaler"))
        # torch.optim.Optimizer.__init__ would register the parameters again (new groups);
        # set up what it provides instead: the hook registries and the profiled, hooked step.
        self._optimizer_step_pre_hooks: OrderedDict[int, Callable[..., Any]] = OrderedDict()
        self._optimizer_step_post_hooks: OrderedDict[int, Callable[..., Any]] = OrderedDict()
        self._optimizer_state_dict_pre_hooks: OrderedDict[int, Callable[..., Any]] = OrderedDict()
        self._optimizer_state_dict_post_hooks: OrderedDict[int, Callable[..., Any]] = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks: OrderedDict[int, Callable[..., Any]] = (
            OrderedDict()
        )
        self._optimizer_load_state_dict_post_hooks: OrderedDict[int, Callable[..., Any]] = (
            OrderedDict()
        )
        self._patch_step_function()

    # ------------------------------------------------------------------ the shared optimizer
    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self._wrapped.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self._wrapped.param_groups = value

    @property
    def state(self) -> Any:  # type: ignore[override]
        return self._wrapped.state

    @state.setter
    def state(self, value: Any) -> None:
        self._wrapped.state = value

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return self._wrapped.defaults

    @defaults.setter
    def defaults(self, value: dict[str, Any]) -> None:
        self._wrapped.defaults = value

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        """The wrapped optimizer."""
        return self._wrapped

    @property
    def aees(self) -> AEES:
        """The :class:`aees.AEES` object doing the work (logs, arms, episode manager)."""
        return self._holder.aees

    @property
    def num_steps(self) -> int:
        """Optimizer steps taken (AEES's counter; a step a GradScaler skipped is not one)."""
        return self._holder.aees.num_steps

    @property
    def grad_scaler(self) -> Any:
        """The ``GradScaler`` AEES steps through (``grad_scaler=``), or ``None``."""
        return self._holder.scaler

    @property
    def skipped_steps(self) -> int:
        """Steps whose observed losses were dropped because the step never ran."""
        return self._holder.skipped_steps

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self._wrapped.add_param_group(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        if self._holder.observed:
            self.skip_step()
        self._wrapped.zero_grad(set_to_none=set_to_none)

    # ------------------------------------------------------------------ losses and the step
    def observe_loss(self, loss: Loss) -> None:
        """Record one micro-batch's unscaled loss for the next ``step`` (no host sync)."""
        if isinstance(loss, Tensor):
            if loss.numel() != 1:
                raise ValueError(f"loss must be a scalar tensor, got shape {tuple(loss.shape)}.")
            loss = loss.detach()
            self._holder.observed.append(loss.reshape(()) if loss.dim() else loss)
        elif isinstance(loss, numbers.Real) and not isinstance(loss, bool):
            self._holder.observed.append(float(loss))
        else:
            raise TypeError(f"loss must be a tensor or a real number, got {type(loss).__name__}.")

    def skip_step(self) -> None:
        """Drop the losses observed since the last step: that step did not happen.

        A ``GradScaler`` that finds inf/NaN gradients does not call ``step``; ``zero_grad``
        notices and calls this. Loops that skip steps some other way, or never call
        ``zero_grad`` on this object, call it themselves. No-op when nothing is waiting.
        """
        h = self._holder
        if h.observed:
            h.observed.clear()
            h.skipped_steps += 1

    def _take_observed(self) -> Loss | None:
        h = self._holder
        if not h.observed:
            return None
        loss = _mean(h.observed)
        h.observed.clear()
        return loss

    # The AEES bookkeeping runs eagerly even inside a torch.compile'd region (one graph break):
    # traced, its episode counters and arms would be guarded on and recompile at every step. A
    # compiled wrapped-optimizer step called from here still runs compiled.
    @torch.compiler.disable
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """One AEES step of the wrapped optimizer; the loss comes from ``observe_loss`` or
        ``closure`` (see the module docstring). Returns what the wrapped ``step`` returned."""
        h = self._holder
        if closure is None and not h.observed:
            raise RuntimeError(_NO_LOSS)
        self._adopt_wrapper_unscale()
        aees = h.aees
        aees.step_start()
        if closure is None:
            return aees.step_end(self._take_observed())
        first: list[Any] = []

        def recording_closure() -> Any:
            value = closure()
            if not first:
                first.append(value)
            return value

        def loss_after_step() -> Loss | None:
            loss = self._take_observed()
            if loss is None and (not first or first[0] is None):
                raise RuntimeError(_NO_LOSS + " (the closure returned None)")
            return loss

        return aees.step_end(loss_after_step, closure=recording_closure)

    def _adopt_wrapper_unscale(self) -> None:
        """With ``grad_scaler=``: a ``scaler.unscale_(self)`` (before clipping) is recorded by the
        scaler under this object; hand it to the wrapped optimizer, which AEES steps through the
        scaler, so the gradients are not unscaled twice."""
        if self._holder.scaler is not None:
            adopt_unscale(self._holder.scaler, self, self._wrapped)

    # ------------------------------------------------------------------ episodes and logs
    def register_episode_end_hook(self, hook: EpisodeHook) -> RemovableHandle:
        """See :meth:`aees.AEES.register_episode_end_hook`."""
        return self._holder.aees.register_episode_end_hook(hook)

    def get_logs(self) -> dict[str, list[Any]]:
        """Per closed episode: arms, rewards, steps, losses (:meth:`aees.AEES.get_logs`)."""
        return self._holder.aees.get_logs()

    def finalize(self) -> None:
        """Close a trailing partial episode (:meth:`aees.AEES.finalize`); idempotent.

        Call it when training is over, not before saving a checkpoint you will resume from:
        a resumed run would then start a new episode where the uninterrupted one continued.
        """
        self._holder.aees.finalize()

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """The wrapped optimizer's state dict plus ``"aees"``: everything to resume exactly.

        Reads the open episode's and the waiting losses back once (a device sync); under
        ``torch.distributed`` call it on every rank (see :meth:`aees.AEES.state_dict`).
        """
        h = self._holder
        out = dict(self._wrapped.state_dict())
        out[_STATE_KEY] = {
            "format": _STATE_FORMAT,
            "version": _STATE_VERSION,
            "scheduler": h.aees.state_dict(),
            "observed_losses": _host_floats(h.observed),
            "skipped_steps": h.skipped_steps,
        }
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        """Restore :meth:`state_dict`'s output (both parts, or neither if one does not fit).

        A plain optimizer state dict (no ``"aees"`` entry) loads the wrapped optimizer only and
        warns: the bandits, the episode and the step counter start afresh (a warm start).
        """
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict, got {type(state_dict).__name__}.")
        h = self._holder
        rest = {k: v for k, v in state_dict.items() if k != _STATE_KEY}
        part = state_dict.get(_STATE_KEY)
        if part is None:
            warnings.warn(
                "AEESOptimizer.load_state_dict: the state dict has no AEES part (a plain "
                "optimizer's?); loading the wrapped optimizer's state only, so the bandits, the "
                "episode and the step counter start afresh.",
                stacklevel=2,
            )
            self._wrapped.load_state_dict(rest)
            h.observed.clear()
            return
        if not isinstance(part, dict) or not same_plain(part.get("format"), _STATE_FORMAT):
            raise ValueError("state_dict['aees'] is not an AEESOptimizer state.")
        if not same_plain(part.get("version"), _STATE_VERSION):
            raise ValueError(
                f"AEESOptimizer state version {part.get('version')!r} is not supported "
                f"(this version reads {_STATE_VERSION})."
            )
        # validate the whole AEES part first, then load the wrapped optimizer, then assign
        where = f"state_dict[{_STATE_KEY!r}]"
        keys = ("format", "version", "scheduler", "observed_losses", "skipped_steps")
        state_keys(where, part, keys)
        checked = h.aees.check_state_dict(part["scheduler"], state_path(where, "scheduler"))
        # an observed loss is judged when its step's episode closes, so any number is valid
        at = state_path(where, "observed_losses")
        observed = state_floats(at, part["observed_losses"], finite=False)
        skipped = state_int(state_path(where, "skipped_steps"), part["skipped_steps"])
        backup = self._wrapped.state_dict()
        self._wrapped.load_state_dict(rest)  # torch checks the groups before it assigns
        try:
            h.aees.load_checked_state_dict(checked)  # only a user's controller can raise here
        except Exception:
            self._wrapped.load_state_dict(backup)
            raise
        h.observed[:] = observed
        h.skipped_steps = skipped

    def __getstate__(self) -> dict[str, Any]:
        # torch's version keeps defaults/state/param_groups only; this object is its __dict__
        return self.__dict__.copy()

    def __repr__(self) -> str:
        return f"AEESOptimizer({self._wrapped!r},\n{self._holder.aees!r})"


def _mean(values: list[Loss]) -> Loss:
    """The mean of floats and scalar tensors, on the device of the first tensor (no host sync)."""
    if len(values) == 1:
        return values[0]
    tensors = [v for v in values if isinstance(v, Tensor)]
    if not tensors:
        return math.fsum(values) / len(values)  # type: ignore[arg-type]
    device = tensors[0].device
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors))
    stacked = torch.stack(
        [
            v.to(device=device, dtype=dtype, non_blocking=True)
            if isinstance(v, Tensor)
            else torch.tensor(v, dtype=dtype, device=device)
            for v in values
        ]
    )
    return stacked.mean()


def _host_floats(values: list[Loss]) -> list[float]:
    tensors = [v for v in values if isinstance(v, Tensor)]
    if not tensors:
        return [float(v) for v in values]  # type: ignore[arg-type]
    host = iter(torch.stack([t.to("cpu", torch.float64) for t in tensors]).tolist())
    return [float(next(host)) if isinstance(v, Tensor) else float(v) for v in values]
