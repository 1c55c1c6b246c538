"""A tiny LightningModule, its data and the plain-loop twin it must match (shared by the tests
and the DDP worker script)."""

from __future__ import annotations

import contextlib
from typing import Any

import lightning.pytorch as pl
import torch
from lib_helpers import batch, tiny_model
from torch.utils.data import DataLoader, TensorDataset

from aees import AEESOptimizer

F = torch.nn.functional
AEES_KW: dict[str, Any] = {
    "lr_candidates": [0.5, 1.0, 2.0],
    "noise_candidates": [0.0, 0.01],
    "episode_length": 5,
    "seed": 3,
}
BATCH = 8


def dataset(batches: int = 12, offset: int = 0) -> TensorDataset:
    """``batches`` fixed batches of lib_helpers' random 6-feature, 3-class task."""
    xs, ys = zip(*(batch(offset + i, BATCH) for i in range(batches)), strict=True)
    return TensorDataset(torch.cat(xs), torch.cat(ys))


def loader(batches: int = 12, offset: int = 0) -> DataLoader:
    return DataLoader(dataset(batches, offset), batch_size=BATCH, shuffle=False)


class TinyModule(pl.LightningModule):
    """Stock Lightning code; the AEES lines are the two in ``configure_optimizers``."""

    def __init__(self, aees_kw: dict[str, Any] | None = None, scheduler: bool = False) -> None:
        super().__init__()
        self.net = tiny_model(0)
        self.aees_kw = AEES_KW if aees_kw is None else aees_kw
        self.scheduler = scheduler
        self.seen_losses: list[float] = []
        self.steps_before: list[int] = []  # AEES steps done when each training_step ran

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        self.seen_losses.append(float(loss.detach().float()))
        self.steps_before.append(self.trainer.optimizers[0].num_steps)
        return loss

    def configure_optimizers(self) -> Any:
        opt = AEESOptimizer(torch.optim.AdamW(self.parameters(), lr=1e-2), **self.aees_kw)
        if not self.scheduler:
            return opt
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.7)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def trainer(tmp_path: Any = None, **kw: Any) -> pl.Trainer:
    defaults: dict[str, Any] = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "default_root_dir": str(tmp_path) if tmp_path is not None else None,
    }
    return pl.Trainer(**{**defaults, **kw})


def plain_loop(steps: int, accumulate: int = 1, scheduler: bool = False, autocast: Any = None):
    """The hand-written loop a Lightning fit must equal: same init, data, order and losses."""
    module = TinyModule(scheduler=scheduler)
    opt = module.configure_optimizers()
    sched = None
    if scheduler:
        opt, sched = opt["optimizer"], opt["lr_scheduler"]["scheduler"]
    batches = iter(loader(steps * accumulate))
    for _ in range(steps):
        opt.zero_grad()
        for _ in range(accumulate):
            x, y = next(batches)
            with autocast if autocast is not None else contextlib.nullcontext():
                loss = F.cross_entropy(module.net(x), y)
            (loss / accumulate).backward()
            opt.observe_loss(loss)
        opt.step()
        if sched is not None:
            sched.step()
    return module, opt
