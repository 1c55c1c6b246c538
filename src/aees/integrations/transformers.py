"""AEES in the Hugging Face ``Trainer``: :class:`AEESTrainer` and :class:`AEESTrainerMixin`.

The change to a stock script is the import and one keyword::

    from aees.integrations.transformers import AEESTrainer as Trainer
    trainer = Trainer(model=model, args=args, train_dataset=train, ...,
                      aees={"lr_candidates": [0.5, 1, 2], "episode_length": 50})

Users who already subclass ``Trainer`` put the mixin first:
``class MyTrainer(AEESTrainerMixin, MyTrainerBase)``.

What the mixin does, and why:

* **The Trainer still builds the optimizer** (``optim``, ``learning_rate``, the weight-decay
  groups, or an optimizer passed in ``optimizers=``) and its LR scheduler (``lr_scheduler_type``,
  warmup); :meth:`~AEESTrainerMixin.create_optimizer` wraps the result in
  :class:`aees.AEESOptimizer`, which shares its ``param_groups``, so the scheduler, gradient
  clipping and Accelerate see the real groups. The Trainer steps its scheduler itself, so the
  ``aees`` keywords must not include ``lr_scheduler`` (nor ``grad_scaler``: Accelerate owns it).
* **Every micro-batch's loss reaches AEES.** ``training_step`` returns the micro-batch's share of
  the accumulation window's loss (divided by the window's micro-batch count, or normalised by the
  window's token count); times ``current_gradient_accumulation_steps`` it is observed, so the
  step's loss (the mean of the observed ones) is the window's loss, the number the Trainer logs
  as ``loss``. The tensor stays on the device: no per-step host sync.
* **A step the GradScaler skipped** (fp16 on CUDA) drops its losses right after
  ``optimizer.step()``, so they are not credited to the next step.
* **Episode records go into ``trainer.state.log_history``** through ``Trainer.log`` at the end of
  the optimizer step that closed the episode, so every ``report_to`` integration (TensorBoard,
  MLflow, W&B, ...) receives them: ``aees/episode``, ``aees/start_step``, ``aees/steps``,
  ``aees/lr_multiplier``, ``aees/noise_std``, ``aees/lr_arm``, ``aees/noise_arm``,
  ``aees/reward``, ``aees/mean_loss``, ``aees/scaler_skipped_steps``, ``aees/nonfinite_steps``
  (``None`` values are left out). At the end of training the trailing partial episode is closed
  and logged.
* **Checkpoints resume exactly**: the Trainer saves ``optimizer.state_dict()``, which carries the
  AEES state, and loads it back with ``weights_only=True``; the AEES seed defaults to
  ``args.seed``.

This module imports ``transformers``; ``import aees`` never imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from aees import AEES, AEESOptimizer, EpisodeRecord

__all__ = ["AEESTrainer", "AEESTrainerMixin", "episode_log"]

#: AEES keywords the Trainer owns: it steps its own scheduler, Accelerate owns the GradScaler.
_TRAINER_OWNED = {
    "lr_scheduler": "the Trainer steps its own LR scheduler (lr_scheduler_type / optimizers=)",
    "grad_scaler": "Accelerate owns the GradScaler (fp16=True)",
}


def episode_log(record: EpisodeRecord) -> dict[str, float]:
    """The ``log_history`` entry of one episode (numbers only; ``None`` fields left out)."""
    values: dict[str, float | int | None] = {
        "aees/episode": record.episode_index,
        "aees/start_step": record.start_step,
        "aees/steps": record.steps,
        "aees/lr_multiplier": record.lr_multiplier,
        "aees/noise_std": record.noise_std,
        "aees/lr_arm": record.lr_index,
        "aees/noise_arm": record.noise_index,
        "aees/reward": record.reward,
        "aees/mean_loss": record.mean_loss,
        "aees/scaler_skipped_steps": record.scaler_skipped_steps,
        "aees/nonfinite_steps": record.nonfinite_steps,
    }
    return {k: v for k, v in values.items() if v is not None}


def _find_aees(optimizer: Any) -> AEESOptimizer | None:
    """The :class:`AEESOptimizer` inside ``optimizer`` (Accelerate wraps it), or None."""
    for _ in range(4):  # AcceleratedOptimizer -> AEESOptimizer; a few levels at most
        if isinstance(optimizer, AEESOptimizer) or optimizer is None:
            return optimizer
        optimizer = getattr(optimizer, "optimizer", None)
    return None


def _check_aees_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Fail at construction, naming the keyword, rather than when training starts."""
    out = dict(kwargs)
    for key, why in _TRAINER_OWNED.items():
        if key in out:
            raise ValueError(f"aees[{key!r}] is not accepted by the Trainer integration: {why}.")
    probe = torch.nn.Parameter(torch.zeros(1))
    AEES(torch.optim.SGD([probe], lr=1.0), **out)  # validates every keyword and value
    return out


class _EpisodeLogCallback(TrainerCallback):
    """Hands the mixin's pending episode records to ``Trainer.log`` (after ``global_step``
    counts the step that closed them), and drops the losses of a skipped step."""

    def __init__(self, trainer: AEESTrainerMixin) -> None:
        self._trainer = trainer

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        optimizer = self._trainer.aees_optimizer
        if optimizer is not None:
            # losses still waiting now belong to a step that never ran (GradScaler inf/NaN)
            optimizer.skip_step()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._trainer._flush_episode_records()

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        optimizer = self._trainer.aees_optimizer
        if optimizer is not None:
            optimizer.finalize()  # the final checkpoint (if any) is already written
        self._trainer._flush_episode_records()


class AEESTrainerMixin:
    """Adds AEES to a ``transformers.Trainer`` subclass (put it first in the bases).

    Args:
        aees: :class:`aees.AEES` keyword arguments (``lr_candidates``, ``noise_candidates``,
            ``episode_length``, ``seed``, ...; not ``lr_scheduler`` or ``grad_scaler``).
            ``seed`` defaults to ``args.seed``.
        *args, **kwargs: the Trainer's own.
    """

    def __init__(self, *args: Any, aees: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self.aees_kwargs = _check_aees_kwargs(aees or {})
        self._aees_optimizer: AEESOptimizer | None = None
        self._aees_hook: Any = None
        self._aees_pending: list[EpisodeRecord] = []
        super().__init__(*args, **kwargs)
        self.add_callback(_EpisodeLogCallback(self))

    @property
    def aees_optimizer(self) -> AEESOptimizer | None:
        """The :class:`aees.AEESOptimizer` in use (None before training builds it)."""
        return self._aees_optimizer

    def create_optimizer(self, *args: Any, **kwargs: Any) -> torch.optim.Optimizer:
        """The Trainer's optimizer, wrapped in :class:`aees.AEESOptimizer` (once)."""
        super().create_optimizer(*args, **kwargs)
        found = _find_aees(self.optimizer)
        if found is None:
            options = {"seed": self.args.seed, **self.aees_kwargs}
            found = AEESOptimizer(self.optimizer, **options)
            self.optimizer = found
        if found is not self._aees_optimizer:
            if self._aees_hook is not None:
                self._aees_hook.remove()
            self._aees_hook = found.register_episode_end_hook(self._aees_pending.append)
            self._aees_optimizer = found
        return self.optimizer

    def training_step(self, model: Any, inputs: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """The Trainer's step; then the micro-batch's loss goes to AEES (see the module doc)."""
        loss = super().training_step(model, inputs, *args, **kwargs)
        optimizer = self._aees_optimizer
        if optimizer is not None:
            window = getattr(self, "current_gradient_accumulation_steps", None)
            optimizer.observe_loss(loss * (window or self.args.gradient_accumulation_steps))
        return loss

    def _flush_episode_records(self) -> None:
        if not self._aees_pending:
            return
        pending, self._aees_pending[:] = list(self._aees_pending), []
        # Trainer.log clears control.should_log; keep it, or the Trainer's own log of this
        # step (loss, learning_rate, ...) would be dropped whenever an episode closed.
        should_log = self.control.should_log
        for record in pending:
            self.log(episode_log(record))
        self.control.should_log = should_log


class AEESTrainer(AEESTrainerMixin, Trainer):
    """``transformers.Trainer`` with AEES around the optimizer it builds (see the module doc)."""
