"""The run's summary: from a finished run's built parts to the :class:`~aees.results.RunResult`.

The engine (:mod:`aees.runner.engine`) trains; this module turns what it built and what it
measured into the result: the result's ``config`` (``asdict(config)`` plus the derived fields),
the ``diagnostics`` (test accuracy and the label-noise accuracies at the final and the
best-validation epoch), ``config.open_loop_policy`` of an open-loop run and the label-noise side
file. :class:`RunProgress` is the partial result a checkpoint carries.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from aees import AEES
from aees.console import UserError
from aees.results import RunResult
from aees.runner.config import RunConfig
from aees.runner.flops import FlopAccumulator, MeasuredFlopModel
from aees.runner.label_noise import label_noise_accuracies
from aees.runner.open_loop import OpenLoopPlan, check_executed
from aees.runner.record import ControllerLogRecorder
from aees.runner.schedules import resolve_span
from aees.runner.tasks import Task, TaskSetup, result_labels, task_info
from aees.types import candidate_name

__all__ = [
    "EngineError",
    "RunProgress",
    "build_result",
    "cpu_state",
    "diagnostics",
    "open_loop_metadata",
    "result_config",
    "run_label",
    "step_unit",
    "write_side_file",
]

#: ``predict(loader, flops)`` -> (accuracy, predictions on the CPU in loader order)
Predict = Callable[[Iterable[Any], "FlopAccumulator | None"], tuple[float, torch.Tensor]]


class EngineError(UserError):
    """A user-facing problem found at run time (e.g. a checkpoint from another configuration).

    The CLI prints it as one line and exits with status 2. (Defined here, where the result
    assembly raises it too; the engine and :mod:`aees.runner.resume` raise it.)
    """


@dataclass
class RunProgress:
    """Everything of the partial result that a checkpoint carries."""

    epochs_done: int = 0
    global_step: int = 0
    train_losses: list[float] = field(default_factory=list)
    train_accuracies: list[float] = field(default_factory=list)
    val_accuracies: list[float] = field(default_factory=list)
    epoch_wall_clock_seconds: list[float] = field(default_factory=list)
    best_val: float = 0.0
    best_epoch: int | None = None  # 1-based
    best_weights: dict[str, torch.Tensor] | None = None
    elapsed_before: float = 0.0  # wall seconds of earlier (interrupted) segments
    segments: int = 1
    #: fp16 runs without AEES: optimizer steps the GradScaler skipped (inf/NaN gradients); AEES
    #: runs count them per episode (``episode_scaler_skipped_steps``)
    scaler_skipped_steps: int = 0

    def state_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A host-memory copy of ``module``'s state dict."""
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def run_label(config: RunConfig) -> str:
    """Status-line label: ``AdaptiveScheduler+AdamW`` (CIFAR style) or the NLP ``--method``."""
    return config.method or f"{config.method_name}+{config.optimizer}"


def step_unit(task: Task) -> str:
    """``"step"`` when the task's LR scheduler steps every optimizer step, else ``"epoch"``
    (its registry record's ``scheduler_unit``)."""
    return task_info(task.name).scheduler_unit


def result_config(
    config: RunConfig, task: Task, setup: TaskSetup, device: torch.device, steps_per_epoch: int
) -> dict[str, Any]:
    """``asdict(config)`` plus the derived fields (docs/results-schema.md)."""
    out = config.to_dict()
    out["output"] = config.output_path
    info = task_info(task.name)  # the task's facts: its registry record
    per_step = info.scheduler_unit == "step"
    total_steps = steps_per_epoch * config.epochs
    out.update(
        {
            "model_name": config.model_name or info.model_name,
            "dataset_name": setup.dataset_name or info.dataset_name,
            **result_labels(config),
            "device": str(device),
            "pin_memory": device.type == "cuda",
            "mixed_precision": config.precision != "fp32",
            "bf16": config.precision == "bf16",
            "fp16": config.precision == "fp16",
            "control_regime": config.method_name,
            "experiment_label": run_label(config),
            "base_lr": config.lr,
            "base_weight_decay": config.weight_decay,
            "optimizer_family": config.optimizer,
            "optimizer_momentum": config.momentum if config.optimizer == "SGD" else None,
            "scheduler_t_max": (
                config.scheduler_t_max
                if per_step
                else resolve_span(config.epochs, config.scheduler_t_max)
            ),
            "scheduler_active": config.lr_scheduler != "none",
            "scheduler_step_unit": "optimizer_step" if per_step else "epoch",
            "steps_per_epoch": steps_per_epoch,
            "label_noise_seed": config.seed,
            "flop_method": MeasuredFlopModel.method,
        }
    )
    if config.uses_aees:
        names, definitions = [], []
        for lr in config.lr_candidates:
            for noise in config.noise_candidates:
                name = candidate_name(lr, noise)
                names.append(name)
                definitions.append({"name": name, "lr_multiplier": lr, "noise_std": noise})
        out["candidate_config_names"] = names
        out["candidate_config_definitions"] = definitions
    if per_step:
        out["scheduler_span_steps"] = config.scheduler_t_max or total_steps
    out.update(setup.info)
    return out


def diagnostics(
    config: RunConfig,
    setup: TaskSetup,
    progress: RunProgress,
    model: nn.Module,
    predict: Predict,
) -> dict[str, Any]:
    """Test accuracy and label-noise accuracies at the final and best-validation epochs.

    ``predict`` evaluates ``model`` (the engine's pass); for the best-validation point the
    model holds ``progress.best_weights`` meanwhile, and its final weights again afterwards.
    """
    p = progress
    out: dict[str, Any] = {"best_val_epoch": p.best_epoch}
    loader_kw = {"batch_size": config.batch_size, "collate_fn": setup.collate_fn}
    test_loader = setup.test_loader or (
        DataLoader(setup.test_data, shuffle=False, **loader_kw)
        if setup.test_data is not None
        else None
    )
    noisy = setup.corruption is not None and setup.corruption.enabled
    train_eval_loader = None
    if noisy:
        train_eval_loader = setup.train_eval_loader or (
            DataLoader(setup.train_eval_data, shuffle=False, **loader_kw)
            if setup.train_eval_data is not None
            else None
        )
    diag_flops = FlopAccumulator()

    def measure() -> dict[str, Any]:
        """The accuracies of the weights ``model`` holds now."""
        block: dict[str, Any] = {}
        if test_loader is not None:
            block["test_accuracy"], _ = predict(test_loader, None)
        if train_eval_loader is not None:
            corruption = setup.corruption
            assert corruption is not None and setup.clean_train_targets is not None
            _, preds = predict(train_eval_loader, diag_flops)
            clean = list(setup.clean_train_targets)
            block.update(
                label_noise_accuracies(
                    preds.tolist(),
                    clean,
                    corruption.apply(clean),
                    corruption.corrupted_mask(),
                )
            )
        return block

    final = measure()
    final["final_val_accuracy"] = p.val_accuracies[-1] if p.val_accuracies else None
    best: dict[str, Any] = {}
    if p.best_weights is not None:
        final_weights = cpu_state(model)
        model.load_state_dict(p.best_weights)
        best = measure()
        model.load_state_dict(final_weights)
        best["best_val_accuracy"] = p.best_val
        best["epoch"] = p.best_epoch
    if test_loader is not None:
        out["final_test_accuracy"] = final.get("test_accuracy")
        out["test_accuracy_at_best_val"] = best.get("test_accuracy")
    if noisy:
        assert setup.corruption is not None
        out["label_noise"] = setup.corruption.manifest()
        if "label_noise_mapping" in setup.info:
            out["label_noise"]["mapping"] = setup.info["label_noise_mapping"]
        out["final_subset_accuracies"] = {k: v for k, v in final.items() if k != "test_accuracy"}
        out["best_val_subset_accuracies"] = {k: v for k, v in best.items() if k != "test_accuracy"}
        out["label_noise_diagnostic_eval_flops"] = diag_flops.eval_flops
    return out


def write_side_file(setup: TaskSetup, output: Path, diagnostics: dict[str, Any]) -> None:
    """The realised label corruption as a gzip file next to ``output`` (named in
    ``diagnostics["label_noise"]``); nothing without label noise."""
    corruption = setup.corruption
    if corruption is None or not corruption.enabled:
        return
    stem = output.name[: -len(".json")] if output.name.endswith(".json") else output.name
    side = output.with_name(f"{stem}.label_noise.json.gz")
    corruption.write_side_file(side)
    diagnostics["label_noise"]["corrupted_indices_file"] = side.name


def open_loop_metadata(
    plan: OpenLoopPlan, aees: AEES, seed: int, episode_logs: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``config.open_loop_policy`` (docs/protocols.md): the plan, the executed multipliers
    (checked to equal the plan) and the precomputed controller's state."""
    try:
        executed = check_executed(plan, episode_logs)
    except ValueError as err:
        raise EngineError(f"open-loop run: {err}") from None
    state = aees.episode_manager.lr_controller.state_dict()
    return {
        **plan.to_metadata(),
        "executed_lr_multipliers": executed,
        "controller_state": {
            "kind": state["kind"],
            "n_arms": state["n_arms"],
            "schedule_length": len(state["schedule"]),
            "selection_count": state["position"],
            "feedback_ignored": True,
            "bandit_statistics_updated": False,
        },
        "training_seeds": {
            "model": seed,
            "data_order_and_augmentation": seed,
            "label_corruption": seed,
            "optimizer_noise": seed,
        },
    }


def build_result(
    config: RunConfig,
    task: Task,
    setup: TaskSetup,
    device: torch.device,
    *,
    steps_per_epoch: int,
    world_size: int,
    progress: RunProgress,
    flops: FlopAccumulator,
    aees: AEES | None,
    recorder: ControllerLogRecorder | None,
    plan: OpenLoopPlan | None,
    provenance: Mapping[str, Any],
    divergence: tuple[int, int] | None,
    wall: float,
    diagnostics: dict[str, Any],
) -> RunResult:
    """The :class:`RunResult` of a finished run (``divergence``: (global step, 1-based epoch) of
    the first non-finite loss under ``--nonfinite raise``, or None)."""
    p = progress
    total = flops.total_flops
    tflops = total / 1e12
    episode_logs = controller_logs = None
    if aees is not None:
        assert recorder is not None
        episode_logs = aees.get_logs()
        episode_logs["selected_candidate_names"] = list(episode_logs["selected_combined_names"])
        controller_logs = recorder.to_dict()
    run_provenance = dict(provenance)
    run_provenance["segments"] = p.segments
    run_config = result_config(config, task, setup, device, steps_per_epoch)
    run_config["world_size"] = world_size
    if plan is not None:
        assert aees is not None
        run_config["open_loop_policy"] = open_loop_metadata(plan, aees, config.seed, episode_logs)
        if controller_logs is not None:
            controller_logs["open_loop_note"] = (
                f"{plan.policy}: LR arms precomputed before training "
                f"(schedule_seed={plan.schedule_seed}); rewards are logged but no "
                "controller consumes them"
            )
    return RunResult(
        method_name=config.method_name,
        task_name=task.name,
        seed=config.seed,
        model_name=run_config["model_name"],
        dataset_name=run_config["dataset_name"],
        config=run_config,
        best_val_accuracy=p.best_val,
        final_val_accuracy=p.val_accuracies[-1] if p.val_accuracies else 0.0,
        final_train_loss=p.train_losses[-1] if p.train_losses else math.nan,
        total_steps=p.global_step,
        total_epochs=config.epochs,
        wall_clock_seconds=wall,
        estimated_flops=total,
        accuracy_per_tflop=p.best_val / tflops if tflops > 0 else None,
        train_losses=list(p.train_losses),
        train_accuracies=list(p.train_accuracies),
        val_accuracies=list(p.val_accuracies),
        epoch_wall_clock_seconds=list(p.epoch_wall_clock_seconds),
        epoch_tflops=list(flops.epoch_tflops),
        episode_logs=episode_logs,
        controller_logs=controller_logs,
        run_tag=config.run_tag,
        provenance=run_provenance,
        diagnostics=diagnostics,
        diverged=divergence is not None,
        diverged_at_step=divergence[0] if divergence else None,
        diverged_at_epoch=divergence[1] if divergence else None,
    )
