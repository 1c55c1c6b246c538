"""The passes over the data a run makes: the training epoch, evaluation and prediction, and the
BatchNorm recompute at a schedule-free optimizer's averaged weights.

:class:`Passes` is a mixin of the engine's runner (:mod:`aees.runner.engine`), which builds the
attributes it declares. Per step the loss and the correct-prediction count are accumulated on the
device; nothing is read back until the epoch ends (AEES itself reads losses once per episode).
Under ``torchrun`` the epoch's totals are all-reduced, and evaluation runs on rank 0 and is
broadcast (:mod:`aees.runner.ddp`).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from typing import Any, NoReturn

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from aees import AEES
from aees.amp import ScalerStep
from aees.runner.config import RunConfig
from aees.runner.ddp import Dist, all_reduce_sum, broadcast_float
from aees.runner.fast import to_memory_format
from aees.runner.flops import FlopAccumulator, MeasuredFlopModel
from aees.runner.optimizers import to_eval, to_train
from aees.runner.summary import EngineError, RunProgress
from aees.runner.tasks import Task, TaskSetup, call_model
from aees.types import NonFiniteLossError

__all__ = ["Passes", "to_device"]


def to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def _progress(iterable: Iterable[Any], total: int, desc: str, enabled: bool) -> Iterable[Any]:
    """A tqdm bar on stderr when tqdm is installed and progress is enabled; else the iterable."""
    if not enabled:
        return iterable
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    # A bar must never change what is trained. ``tqdm.auto``'s asyncio class calls iter() on the
    # loader an extra time, which draws from the DataLoader's generator and reshuffles every
    # epoch; the plain class with a generator wrapper iterates the loader exactly once.
    batches = (batch for batch in iterable)
    return tqdm(batches, total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)


def _raise_first_nonfinite(step_losses: Sequence[torch.Tensor], first_step: int) -> NoReturn:
    """Raise :class:`NonFiniteLossError` for the first non-finite loss of an epoch.

    Called only once the epoch's total is known to be non-finite. On another rank of a DDP run
    the local losses may all be finite (the total is all-reduced): then the epoch's first step
    is named.
    """
    losses = torch.stack([loss.float() for loss in step_losses]).cpu()
    bad = (~torch.isfinite(losses)).nonzero()
    index = int(bad[0]) if len(bad) else 0
    value = float(losses[index])
    raise NonFiniteLossError(
        f"loss at step {first_step + index} is not finite ({value!r})",
        step=first_step + index,
        value=value,
    )


class Passes:
    """The training and evaluation passes of a run (a mixin: the runner sets these attributes)."""

    config: RunConfig
    task: Task
    setup: TaskSetup
    dist: Dist
    device: torch.device
    model: nn.Module  # the bare module: eval, FLOPs, state
    net: nn.Module  # what the training step calls (DDP / compiled)
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None
    aees: AEES | None
    train_loader: Any
    train_sampler: DistributedSampler[Any] | None
    step_scheduler: Any
    flop_model: MeasuredFlopModel
    flops: FlopAccumulator
    progress: RunProgress
    autocast_dtype: torch.dtype | None
    show: bool

    def autocast(self) -> Any:
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        model, opt, aees, scaler = self.net, self.optimizer, self.aees, self.scaler
        loss_fn, logits_fn = self.setup.loss_fn, self.setup.logits_fn
        model.train()
        to_train(opt)  # schedule-free: back to the gradient point y (docs/protocols.md §5.1)
        if self.train_sampler is not None:
            self.train_sampler.set_epoch(epoch)
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        skipped = torch.zeros((), dtype=torch.float64, device=self.device)  # fp16 baseline
        seen = 0
        # Under --nonfinite raise, the epoch's step losses are kept (references to tensors that
        # exist anyway: no kernel, no sync) so a non-finite epoch can name its first bad step.
        step_losses: list[torch.Tensor] | None = [] if self.config.nonfinite == "raise" else None
        first_step = self.progress.global_step
        batches = _progress(
            self.train_loader,
            len(self.train_loader),
            f"epoch {epoch}/{self.config.epochs}",
            self.show,
        )
        # The bar's loss / accuracy / arm are refreshed ~20 times per epoch: each refresh reads
        # two device scalars (a sync), so never per step, and never when the bar is off.
        set_postfix = getattr(batches, "set_postfix", None)
        refresh = max(1, len(self.train_loader) // 20)
        for i, (inputs, targets) in enumerate(batches):
            inputs = to_memory_format(to_device(inputs, self.device), self.config.channels_last)
            targets = targets.to(self.device, non_blocking=True)
            if aees is not None:
                aees.step_start(self.progress.global_step)
            opt.zero_grad(set_to_none=True)
            with self.autocast():
                outputs = call_model(model, inputs)
                loss = loss_fn(outputs, targets)
            if scaler is not None:
                scaler.scale(loss).backward()
            else:
                loss.backward()
            if aees is not None:
                aees.step_end(loss)  # an episode that closes here calls _episode_closed
            elif scaler is not None:
                scaler_step = ScalerStep(scaler, opt)  # unscale; the skip flag stays on device
                scaler.step(opt)
                scaler.update()
                skipped += scaler_step.skipped().to(skipped.device)
            else:
                opt.step()
            if self.step_scheduler is not None:
                self.step_scheduler.step()
            # every rank runs a batch of this shape (equal shards): count them all
            self.flops.add_train_batch(self.flop_model.train_flops(inputs) * self.dist.world)
            batch = targets.shape[0]
            with torch.no_grad():
                if step_losses is not None:
                    step_losses.append(loss.detach())
                loss_sum.add_(loss.detach(), alpha=batch)  # one kernel; upcast to float64
                correct += (logits_fn(outputs).argmax(dim=-1) == targets).sum()
            seen += batch
            self.progress.global_step += 1
            if set_postfix is not None and (i + 1) % refresh == 0:
                postfix = {
                    "loss": f"{loss_sum.item() / seen:.4f}",
                    "acc": f"{correct.item() / seen:.4f}",
                }
                if aees is not None:
                    arm = aees.episode_manager.active_config  # None right after a close
                    postfix["arm"] = arm.name if arm is not None else "-"
                set_postfix(postfix, refresh=False)
        totals = torch.stack([loss_sum, correct.to(torch.float64), loss_sum.new_tensor(seen)])
        if self.dist.enabled:  # metrics over all ranks' examples
            totals = all_reduce_sum(totals.to(self.dist.collective_device(self.device)))
        loss_total, correct_total, seen_total = totals.tolist()
        if scaler is not None and aees is None:  # identical on every rank (synced gradients)
            self.progress.scaler_skipped_steps += round(skipped.item())
        if step_losses is not None and not math.isfinite(loss_total):
            _raise_first_nonfinite(step_losses, first_step)
        return loss_total / max(seen_total, 1.0), correct_total / max(seen_total, 1.0)

    def evaluate(self, loader: Any) -> float:
        """Validation accuracy on the full set: computed by rank 0, broadcast to every rank."""
        acc = self.predict(loader, self.flops)[0] if self.dist.main else 0.0
        if self.dist.enabled:
            acc = broadcast_float(acc, self.dist.collective_device(self.device))
        return acc

    @torch.no_grad()
    def predict(
        self, loader: DataLoader, flops: FlopAccumulator | None
    ) -> tuple[float, torch.Tensor]:
        """Accuracy against the loader's targets and the predictions (CPU, loader order)."""
        model = self.model
        was_training = model.training
        model.eval()
        preds: list[torch.Tensor] = []
        correct = torch.zeros((), dtype=torch.int64, device=self.device)
        seen = 0
        for inputs, targets in loader:
            inputs = to_memory_format(to_device(inputs, self.device), self.config.channels_last)
            targets = targets.to(self.device, non_blocking=True)
            with self.autocast():
                outputs = call_model(model, inputs)
            pred = self.setup.logits_fn(outputs).argmax(dim=-1)
            correct += (pred == targets).sum()
            preds.append(pred)
            seen += targets.shape[0]
            if flops is not None:
                flops.add_eval_batch(self.flop_model.eval_flops(inputs))
        model.train(was_training)
        all_preds = torch.cat(preds).cpu() if preds else torch.empty(0, dtype=torch.long)
        return correct.item() / max(seen, 1), all_preds

    def averaged_weights(self) -> None:
        """Schedule-free: the model holds the averaged weights ``x``, BatchNorm statistics
        recomputed at ``x`` (docs/protocols.md §5.1); other optimizers: nothing."""
        to_eval(self.optimizer, self.model, self._bn_batches, self._bn_forward)

    def _bn_batches(self) -> Iterable[Any]:
        """Training inputs in dataset order, for the BatchNorm recompute of
        :meth:`averaged_weights`."""
        setup = self.setup
        data = setup.train_data if setup.train_data is not None else setup.train_eval_data
        if data is None:
            raise EngineError(
                f"task {self.task.name!r}: a schedule-free optimizer with BatchNorm needs the "
                "task's training data to recompute the BatchNorm statistics"
            )
        loader = DataLoader(
            data, shuffle=False, batch_size=self.config.batch_size, collate_fn=setup.collate_fn
        )
        for inputs, _ in loader:
            yield to_memory_format(to_device(inputs, self.device), self.config.channels_last)

    def _bn_forward(self, inputs: Any) -> None:
        with self.autocast():
            call_model(self.model, inputs)
