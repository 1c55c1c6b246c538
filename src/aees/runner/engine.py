"""The one training loop of every task: build the run, loop over the epochs, finish.

A task (:mod:`aees.runner.tasks`) supplies data, model and loss; :func:`run` does the rest. The
runner's constructor builds every part of the run (and restores a checkpoint into them); its
``run()`` loops over the epochs and finishes. The other concerns live beside it:

* :mod:`aees.runner.passes`: the training epoch, evaluation, prediction (a mixin of the runner);
* :mod:`aees.runner.ddp`: joining a ``torchrun`` job, the collectives, the teardown;
* :mod:`aees.runner.controller`: the AEES wrapper of the run and its header lines;
* :mod:`aees.runner.resume` / :mod:`aees.runner.checkpoint`: writing a checkpoint and whether a run
  may resume from it / reading one back;
* :mod:`aees.runner.summary`: assembling the :class:`~aees.results.RunResult`.

* **Method.** ``--control-mode baseline`` trains with the plain optimizer (``AdamW``, ``SGD``
  or an LR-free / schedule-free peer, :mod:`aees.runner.optimizers`): no wrapper, no per-step
  cost beyond the optimizer's own. ``adaptive`` / ``random`` wrap the same optimizer in
  :class:`aees.AEES` (seed ``--seed``; noise bandit ``seed + 101``); episodes
  span epoch boundaries, the global step is never reset (docs/protocols.md §3).
  ``uniform-random`` / ``frequency-matched`` (open-loop controls, docs/protocols.md §11) precompute
  the LR-arm sequence before the first step (:mod:`aees.runner.open_loop`) and replay it with
  :meth:`aees.AEES.replay`; the result's ``config.open_loop_policy`` records the plan, and the
  executed arms are checked against it.
* **Per step** the loss and the correct-prediction count are accumulated on the device; nothing
  is read back until the epoch ends (AEES itself reads losses once per episode).
* **Per epoch** (docs/protocols.md §3): train, evaluate on the validation split, record
  ``train_losses``, ``train_accuracies``, ``val_accuracies``, ``epoch_wall_clock_seconds``
  (train + eval, ``time.perf_counter``; on CUDA one ``torch.cuda.synchronize`` before the
  clock is read) and ``epoch_tflops`` (measured FLOPs, :mod:`aees.runner.flops`), print the
  status line, step the epoch-level LR scheduler, then write the checkpoint (with
  ``--checkpoint-dir``).
* **After training**: ``AEES.finalize()``; test accuracy at the final epoch and with the weights
  of the best-validation epoch (kept in host memory, so no rerun is needed; docs/protocols.md §10);
  with label noise, the four label-noise accuracies (docs/protocols.md §10) at both points, and
  the corruption as a compact manifest plus a gzip side file next to the result
  (docs/protocols.md §7.6). These go to ``RunResult.diagnostics``, not ``config``.
* **Resume.** The checkpoint holds model, optimizer, scheduler, GradScaler and AEES state, the
  controller logs, the torch / CUDA / Python RNG states, the data-order generator and the partial
  result. It is written atomically at every epoch end, so a run killed at any moment and resumed
  with ``--resume`` gives the same result as one never interrupted (timing fields aside).
* ``wall_clock_seconds`` starts after data, model, optimizer and scheduler are built, and ends
  after the diagnostics (as the thesis CIFAR runner); a resumed run adds the time of its
  earlier segments.
"""

from __future__ import annotations

import os
import random
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from aees.results import RunResult, collect_provenance, save_run_result
from aees.results.io import target_problem
from aees.runner.checkpoint import APPLY_ERRORS, CHECKPOINT_VERSION, does_not_fit, load_checkpoint
from aees.runner.config import RunConfig, RunWarning, aees_short_run, short_run_message
from aees.runner.controller import axes_lines, build_aees
from aees.runner.ddp import distributed_summary, finish_distributed, init_distributed
from aees.runner.fast import apply_backend_flags, compile_net, to_memory_format
from aees.runner.flops import FlopAccumulator, MeasuredFlopModel
from aees.runner.open_loop import build_open_loop_plan
from aees.runner.optimizers import build_optimizer
from aees.runner.passes import Passes
from aees.runner.record import ControllerLogRecorder
from aees.runner.resume import (
    check_resumable,
    config_fingerprint,
    load_rng_state,
    rng_state,
    save_checkpoint_file,
)
from aees.runner.schedules import build_epoch_scheduler, build_step_scheduler
from aees.runner.summary import (
    EngineError,
    RunProgress,
    build_result,
    cpu_state,
    diagnostics,
    run_label,
    step_unit,
    write_side_file,
)
from aees.runner.tasks import Task
from aees.runner.tracking import RunTracker, open_tracker
from aees.types import EpisodeRecord, NonFiniteLossError

__all__ = [
    "CHECKPOINT_NAME",
    "checkpoint_path",
    "resolve_device",
    "run",
    "set_seed",
]

CHECKPOINT_NAME = "last.pt"

# ----------------------------------------------------------------------------- small helpers


def set_seed(seed: int) -> None:
    """Thesis ``set_seed`` (docs/protocols.md §3): Python and torch (all devices); cuDNN
    deterministic."""
    random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def resolve_device(name: str) -> torch.device:
    """``auto`` -> ``cuda`` if available else ``cpu``; anything else as given."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def checkpoint_path(checkpoint_dir: str | os.PathLike[str]) -> Path:
    return Path(checkpoint_dir) / CHECKPOINT_NAME


# ----------------------------------------------------------------------------- the run


class _Runner(Passes):
    """One run, built by the constructor, trained by :meth:`run`.

    The constructor builds every part the loop needs, in this order (the order fixes the RNG
    streams, so it is part of the result): the checkpoint to resume from (read and checked
    first, before anything is built), provenance, the seed, the task's data and model, optimizer,
    GradScaler, data-order generator and loaders, the open-loop plan, AEES and its controller-log
    recorder, the LR scheduler, the FLOP model and accumulator, the progress; then it restores
    the checkpoint into those parts, prints the header lines and opens the tracker (which
    continues from the restored step). :meth:`run` is then: loop over the remaining epochs,
    finish (finalize AEES, diagnostics, the result).
    """

    def __init__(self, config: RunConfig, task: Task, argv: Sequence[str] | None) -> None:
        self.config = config
        self.task = task
        self.dist = init_distributed(config)
        self.device = resolve_device(config.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.show = not config.quiet and self.dist.main
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.precision)
        #: (global step, 1-based epoch) of the first non-finite loss under --nonfinite raise
        self.divergence: tuple[int, int] | None = None
        #: --tensorboard / --mlflow (rank 0 only); opened last, below
        self.tracker: RunTracker | None = None

        #: said once the data is loaded, so a run that fails on missing data never claims a start
        self._fresh_start_note: str | None = None
        ckpt = self._read_checkpoint()
        self.provenance = collect_provenance(argv)
        set_seed(config.seed)
        apply_backend_flags(config)  # fast mode: cuDNN autotuning, TF32 (docs/protocols.md §17)
        self.setup = setup = task.build(config, self.device)
        if self._fresh_start_note is not None:
            self.log(self._fresh_start_note)
        self.model = setup.model.to(self.device)  # the bare module: eval, FLOPs, state
        self.model = to_memory_format(self.model, config.channels_last)
        self.net: nn.Module = self.model  # what the training step calls
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        self.net = compile_net(self.net, config)  # --compile: the training step only
        self.optimizer = build_optimizer(config, self.model)  # docs/protocols.md §5
        self.scaler = torch.amp.GradScaler(self.device.type) if config.precision == "fp16" else None
        self.data_generator = torch.Generator().manual_seed(config.seed)
        loader_kw: dict[str, Any] = {
            "batch_size": config.batch_size,
            "num_workers": config.num_workers,
            "pin_memory": self.device.type == "cuda",
            "collate_fn": setup.collate_fn,
        }
        self.train_sampler, self.train_loader = self._build_train_loader(loader_kw)
        self.val_loader = setup.val_loader or DataLoader(setup.val_data, shuffle=False, **loader_kw)
        # open-loop controls: the whole LR schedule is fixed here, before the first step
        self.plan = (
            build_open_loop_plan(config, len(self.train_loader)) if config.open_loop else None
        )
        self.aees = (
            build_aees(config, self.optimizer, self.scaler, self.plan) if config.uses_aees else None
        )
        self.recorder = ControllerLogRecorder(self.aees) if self.aees is not None else None
        # a run too short for AEES to act: said before training, recorded in the result
        self.short_run = aees_short_run(config, len(self.train_loader))
        if self.short_run is not None and self.dist.main:
            message = short_run_message(self.short_run, len(self.train_loader), config.epochs)
            warnings.warn(message, RunWarning, stacklevel=2)
        if self.aees is not None:
            self.aees.register_episode_end_hook(self._episode_closed)
        self.scheduler, self.step_scheduler = self._build_schedulers()
        self.flop_model = MeasuredFlopModel(self.model)
        self.flops = FlopAccumulator()
        self.progress = RunProgress()

        if ckpt is not None:
            self._resume(ckpt)
            del ckpt
        if self.aees is not None and self.progress.epochs_done == 0:
            for line in axes_lines(config):
                self.log(line)
        if self.plan is not None:
            self.log(self.plan.summary_line())
        if self.dist.main:
            self.tracker = open_tracker(
                config,
                start_step=self.progress.global_step,
                episodes_done=self.recorder.count if self.recorder is not None else 0,
                resumed=self.progress.epochs_done > 0,
            )

    # -- building blocks
    def _read_checkpoint(self) -> dict[str, Any] | None:
        """With ``--resume``, the checkpoint's data (checked against this configuration); also
        refuses a ``--checkpoint-dir`` target a rename could not replace, before any training."""
        config = self.config
        ckpt: dict[str, Any] | None = None
        if config.resume and config.checkpoint_dir:
            path = checkpoint_path(config.checkpoint_dir)
            if path.exists():
                ckpt = load_checkpoint(path)  # data only, checked: one line if unusable
                check_resumable(ckpt, config, path)
            else:
                self._fresh_start_note = f"no checkpoint at {path}; starting from scratch"
        if config.checkpoint_dir:
            # the checkpoint is written by renaming over this path: refuse what a rename would
            # replace (a directory, FIFO, device) now, not after the first epoch
            path = checkpoint_path(config.checkpoint_dir)
            why = target_problem(path)
            if why is not None:
                raise EngineError(f"--checkpoint-dir: {path} {why}; remove it or use another")
        return ckpt

    def _build_train_loader(
        self, loader_kw: dict[str, Any]
    ) -> tuple[DistributedSampler[Any] | None, Any]:
        """(the DDP sampler or None, the training loader): the task's own (sharded under
        torchrun), a DistributedSampler loader, or a loader shuffled by ``data_generator``."""
        setup, config = self.setup, self.config
        if setup.train_loader is not None:
            if self.dist.enabled:
                shard = getattr(setup.train_loader, "shard", None)
                if shard is None:
                    raise EngineError(
                        f"task {self.task.name!r} supplies a training loader that cannot be "
                        "sharded across ranks (it has no shard(rank, world_size) method)"
                    )
                shard(self.dist.rank, self.dist.world)
            return None, setup.train_loader
        if self.dist.enabled:
            # Same permutation on every rank (seeded by --seed and the epoch), padded to equal
            # shards; --batch-size is the per-rank batch.
            sampler: DistributedSampler[Any] = DistributedSampler(
                setup.train_data, self.dist.world, self.dist.rank, shuffle=True, seed=config.seed
            )
            return sampler, DataLoader(setup.train_data, sampler=sampler, **loader_kw)
        loader = DataLoader(
            setup.train_data, shuffle=True, generator=self.data_generator, **loader_kw
        )
        return None, loader

    def _build_schedulers(self) -> tuple[Any, Any]:
        """(epoch-level scheduler, per-step scheduler): exactly one is set, by the task's
        ``scheduler_unit``."""
        config = self.config
        if step_unit(self.task) == "step":
            # NLP (docs/protocols.md): stepped after every optimizer step; span in optimizer steps
            total = len(self.train_loader) * config.epochs
            step_scheduler = build_step_scheduler(
                self.optimizer,
                config.lr_scheduler,
                total_steps=config.scheduler_t_max or total,
                warmup_steps=int(config.warmup_epochs * total / config.epochs),
            )
            return None, step_scheduler
        scheduler = build_epoch_scheduler(
            self.optimizer,
            config.lr_scheduler,
            epochs=config.epochs,
            scheduler_t_max=config.scheduler_t_max,
            warmup_epochs=config.warmup_epochs,
        )
        return scheduler, None

    def _resume(self, ckpt: Mapping[str, Any]) -> None:
        """Restore the checkpoint into the built parts (one line if it does not fit them)."""
        where = checkpoint_path(self.config.checkpoint_dir or "")
        try:
            self.load_checkpoint(ckpt)
        except APPLY_ERRORS as exc:
            raise does_not_fit(where, exc) from None
        self.log(f"resumed from {where} after epoch {self.progress.epochs_done}")

    @property
    def _scheduler(self) -> Any:
        return self.scheduler if self.scheduler is not None else self.step_scheduler

    # -- output helpers
    def log(self, line: str) -> None:
        if self.show:
            print(line, flush=True)

    def _episode_closed(self, record: EpisodeRecord) -> None:
        """AEES episode-end hook (inside step_end / finalize): controller snapshots, tracking."""
        self.recorder.sync()
        if self.tracker is not None:
            self.tracker.log_episodes(self.aees.get_logs(), self.optimizer.param_groups[0]["lr"])

    # -- checkpoints
    def save_checkpoint(self, wall_now: float) -> None:
        if not self.config.checkpoint_dir:
            return
        # AEES.state_dict() closes pending statistics with a collective: every rank calls it.
        aees_state = self.aees.state_dict() if self.aees is not None else None
        if not self.dist.main:
            return
        state = {
            "version": CHECKPOINT_VERSION,
            "config": config_fingerprint(self.config),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self._scheduler.state_dict() if self._scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "aees": aees_state,
            "controller_logs": self.recorder.state_dict() if self.recorder is not None else None,
            "flops": self.flops.state_dict(),
            "progress": {**self.progress.state_dict(), "elapsed_before": wall_now},
            "provenance": self.provenance,
            "rng": rng_state(self.data_generator),
            "train_loader": (
                self.train_loader.state_dict() if hasattr(self.train_loader, "state_dict") else None
            ),
        }
        save_checkpoint_file(state, checkpoint_path(self.config.checkpoint_dir))

    def load_checkpoint(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self._scheduler is not None:
            self._scheduler.load_state_dict(state["scheduler"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        if self.aees is not None:
            self.aees.load_state_dict(state["aees"])
            self.recorder.load_state_dict(state["controller_logs"])
        self.flops = FlopAccumulator.from_state_dict(state["flops"])
        self.progress.load_state_dict(state["progress"])
        self.progress.segments += 1
        self.provenance = {**state["provenance"], "resumed": True}
        load_rng_state(state["rng"], self.data_generator)
        if state.get("train_loader") is not None:
            self.train_loader.load_state_dict(state["train_loader"])

    # -- the run
    def run(self) -> tuple[RunResult | None, Path]:
        """Train the remaining epochs, then finish: the result (rank 0) and its path."""
        start = time.perf_counter()
        for epoch in range(self.progress.epochs_done, self.config.epochs):
            if not self.run_epoch(epoch, start):
                break
        return self.finish(start)

    def run_epoch(self, epoch: int, start: float) -> bool:
        """Epoch ``epoch + 1``: train, validate, record, log, step the scheduler, checkpoint.
        False when training diverged (``--nonfinite raise``): the loop stops there."""
        config, p = self.config, self.progress
        episodes_before = self.recorder.count if self.recorder is not None else 0
        t0 = time.perf_counter()
        try:
            train_loss, train_acc = self.train_epoch(epoch + 1)
        except NonFiniteLossError as err:
            # --nonfinite raise: stop here; the result keeps the completed epochs.
            self.divergence = (err.step, epoch + 1)
            self.log(f"diverged: {err}")
            return False
        self.averaged_weights()  # evaluation, best weights and checkpoint see x
        val_acc = self.evaluate(self.val_loader)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        epoch_seconds = time.perf_counter() - t0
        self.flops.finish_epoch()
        p.train_losses.append(train_loss)
        p.train_accuracies.append(train_acc)
        p.val_accuracies.append(val_acc)
        p.epoch_wall_clock_seconds.append(epoch_seconds)
        if p.best_epoch is None or val_acc > p.best_val:
            p.best_val, p.best_epoch = max(val_acc, p.best_val), epoch + 1
            if self.dist.main:  # rank 0 computes the diagnostics
                p.best_weights = cpu_state(self.model)
        self.log(
            self.status_line(
                run_label(config),
                epoch + 1,
                train_loss,
                train_acc,
                val_acc,
                epoch_seconds,
                episodes_before,
            )
        )
        if self.tracker is not None:
            metrics = {
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "val_accuracy": val_acc,
                "seconds": epoch_seconds,
                "cum_tflops": self.flops.total_tflops,
                "lr": self.optimizer.param_groups[0]["lr"],
            }
            self.tracker.log_epoch(epoch + 1, p.global_step, metrics)
        if self.scheduler is not None:
            self.scheduler.step()
        p.epochs_done = epoch + 1
        self.save_checkpoint(p.elapsed_before + time.perf_counter() - start)
        return True

    def finish(self, start: float) -> tuple[RunResult | None, Path]:
        """Close the last episode, then (rank 0) diagnostics, the result, its files."""
        config, p = self.config, self.progress
        if self.aees is not None:
            assert self.recorder is not None
            if self.divergence is None:
                try:
                    self.aees.finalize()
                except NonFiniteLossError as err:  # the last, partial episode
                    self.divergence = (err.step, config.epochs)
            self.recorder.sync()
        if self.tracker is not None and self.aees is not None:
            self.tracker.log_episodes(self.aees.get_logs(), self.optimizer.param_groups[0]["lr"])
        self.averaged_weights()  # a diverged run stopped in train mode
        output = Path(config.output_path)
        logs = self.aees.get_logs() if self.aees is not None else None
        distributed = distributed_summary(self.dist, config.batch_size, logs)
        if not self.dist.main:
            finish_distributed(self.dist)
            return None, output
        diag = diagnostics(config, self.setup, p, self.model, self.predict)
        if self.scaler is not None:  # fp16: optimizer steps the GradScaler skipped
            diag["scaler_skipped_steps"] = (
                sum(self.aees.get_logs()["episode_scaler_skipped_steps"])
                if self.aees is not None
                else p.scaler_skipped_steps
            )
        if distributed is not None:
            diag["distributed"] = distributed
        if self.short_run is not None:
            diag["aees_short_run"] = self.short_run
        wall = p.elapsed_before + time.perf_counter() - start
        result = build_result(
            config,
            self.task,
            self.setup,
            self.device,
            steps_per_epoch=len(self.train_loader),
            world_size=self.dist.world,
            progress=p,
            flops=self.flops,
            aees=self.aees,
            recorder=self.recorder,
            plan=self.plan,
            provenance=self.provenance,
            divergence=self.divergence,
            wall=wall,
            diagnostics=diag,
        )
        write_side_file(self.setup, output, diag)
        save_run_result(result, output)
        if self.tracker is not None:
            self.tracker.finish(result, output)
        self.log(f"Saved result to {output}")
        finish_distributed(self.dist)
        return result, output

    def status_line(
        self,
        label: str,
        epoch: int,
        train_loss: float,
        train_acc: float,
        val_acc: float,
        seconds: float,
        episodes_before: int,
    ) -> str:
        parts = [
            f"[{label}]",
            f"epoch {epoch}/{self.config.epochs}",
            f"train_loss={train_loss:.4f}",
            f"train_acc={train_acc:.4f}",
            f"val_acc={val_acc:.4f}",
            f"time={seconds:.1f}s",
            f"cum_tflops={self.flops.total_tflops:.3f}",
        ]
        if self.aees is not None:
            logs = self.aees.get_logs()
            names = logs["selected_combined_names"]
            rewards = [r for r in logs["episode_rewards"][episodes_before:] if r is not None]
            mean = f"{sum(rewards) / len(rewards):.4f}" if rewards else "n/a"
            parts.append(
                f"episodes={len(names)} last_mode={names[-1] if names else '-'} "
                f"epoch_mean_reward={mean}"
            )
        return " | ".join(parts)


def run(
    config: RunConfig, task: Task, *, argv: Sequence[str] | None = None
) -> tuple[RunResult | None, Path]:
    """Train ``task`` as ``config`` says, write the result JSON, return it and its path.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) every rank trains its shard with DDP and takes the
    same AEES decisions; rank 0 evaluates, checkpoints and writes the one result (other ranks
    return ``None`` for the result).

    Raises:
        EngineError: a user-facing problem (one line), e.g. ``--resume`` with a checkpoint
            written by a different configuration.
    """
    runner = _Runner(config, task, argv)
    status = "FAILED"
    try:
        return runner.run()
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        if runner.tracker is not None:
            runner.tracker.close(status)  # no-op after a finished run
