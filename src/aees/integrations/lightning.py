"""AEES in PyTorch Lightning: return an ``AEESOptimizer`` and add one callback.

::

    from aees import AEESOptimizer
    from aees.integrations.lightning import AEESCallback

    class Model(L.LightningModule):
        def configure_optimizers(self):
            opt = AEESOptimizer(torch.optim.AdamW(self.parameters(), lr=1e-3),
                                lr_candidates=[0.5, 1, 2], episode_length=200, seed=0)
            return opt        # or {"optimizer": opt, "lr_scheduler": sched built on opt}

    trainer = L.Trainer(..., callbacks=[AEESCallback()])

Under automatic optimisation Lightning hands the optimizer a closure whose return value is the
*last* micro-batch's loss divided by ``accumulate_grad_batches``, and under ``precision=
"16-mixed"`` it runs the closure itself and steps through its ``GradScaler``, so the closure
alone cannot give AEES the right loss. The callback does, from ``on_before_backward``: each
micro-batch's loss, unscaled (the scale is a power of two: exact) and multiplied back by
``accumulate_grad_batches``, goes to :meth:`aees.AEESOptimizer.observe_loss` before the step
needs it; nothing is read back to the host. A step the scaler skips never reaches AEES, and its
losses are dropped at the next ``zero_grad`` (:attr:`aees.AEESOptimizer.skipped_steps`).

Each closed episode's :class:`aees.EpisodeRecord` is written through ``trainer.loggers``
(``log_metrics`` with ``aees/...`` keys at ``trainer.global_step``), so the TensorBoard, CSV,
MLflow and W&B loggers receive it. The optimizer's state dict carries the AEES state, so
Lightning checkpoints resume exactly (``trainer.fit(..., ckpt_path=...)``). Under DDP every rank
takes the same decisions (episode statistics are averaged across ranks once per episode).

Importing this module imports ``lightning`` (``import aees`` does not).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
from torch import Tensor
from torch.utils.hooks import RemovableHandle

from aees.optimizer import AEESOptimizer
from aees.types import EpisodeRecord

__all__ = ["AEESCallback"]


class AEESCallback(pl.Callback):
    """Feeds every micro-batch's loss to the ``AEESOptimizer`` and logs its episode records.

    Args:
        log_episodes: write each episode record through the Trainer's loggers.
        prefix: the metric-name prefix for the records (``"aees/"``).
    """

    def __init__(self, *, log_episodes: bool = True, prefix: str = "aees/") -> None:
        self.log_episodes = log_episodes
        self.prefix = prefix
        self._optimizer: AEESOptimizer | None = None
        self._scaler: Any = None
        self._handle: RemovableHandle | None = None
        self._pending: list[EpisodeRecord] = []

    # ------------------------------------------------------------------ set-up
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        found = [o for o in trainer.optimizers if isinstance(o, AEESOptimizer)]
        if len(found) != 1:
            raise TypeError(
                "AEESCallback needs configure_optimizers() to return exactly one AEESOptimizer "
                f"(got optimizers {[type(o).__name__ for o in trainer.optimizers]}); wrap the "
                "optimizer: AEESOptimizer(torch.optim.AdamW(...), lr_candidates=[...], ...)."
            )
        opt = found[0]
        scaler = getattr(trainer.precision_plugin, "scaler", None)
        if scaler is not None and opt.grad_scaler is not None:
            raise ValueError(
                "AEESOptimizer got grad_scaler=..., but the Trainer's precision plugin owns a "
                "GradScaler (precision='16-mixed'); drop grad_scaler from AEESOptimizer."
            )
        self._remove_hook()
        self._optimizer, self._scaler = opt, scaler
        self._pending.clear()
        if self.log_episodes:
            self._handle = opt.register_episode_end_hook(self._pending.append)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._remove_hook()
        self._optimizer = self._scaler = None

    def _remove_hook(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    # ------------------------------------------------------------------ the loss
    def on_before_backward(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: Tensor
    ) -> None:
        opt = self._optimizer
        if opt is None or not trainer.training:
            return
        value = loss.detach()
        scaler = self._scaler
        if scaler is not None and scaler.is_enabled():
            scale = getattr(scaler, "_scale", None)  # the device tensor scale() just used
            value = value / (scale if isinstance(scale, Tensor) else scaler.get_scale())
        if pl_module.automatic_optimization and trainer.accumulate_grad_batches != 1:
            value = value * trainer.accumulate_grad_batches  # Lightning divided it for backward
        opt.observe_loss(value)

    # ------------------------------------------------------------------ the records
    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not self._pending:
            return
        records = list(self._pending)
        self._pending.clear()
        opt = self._optimizer
        for record in records:
            metrics = record.metrics(self.prefix)
            if opt is not None:
                metrics[self.prefix + "skipped_steps"] = float(opt.skipped_steps)
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
