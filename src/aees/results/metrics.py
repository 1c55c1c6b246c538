"""The derived ``runtime_metrics`` block of a result (:func:`build_runtime_metrics`)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aees.results.hardware import hardware_from_config, probe_host
from aees.results.values import as_int, candidate_values, is_number

__all__ = [
    "STEADY_STATE_RULE",
    "build_runtime_metrics",
]


STEADY_STATE_RULE = "mean of epoch_wall_clock_seconds[1:] (first epoch excluded as warm-up)"
"""How the ``steady_state_*`` runtime metrics are computed (written next to them)."""


# --------------------------------------------------------------------------------------------
# Runtime metrics (docs/results-schema.md §7)
# --------------------------------------------------------------------------------------------


def _as_float(value: Any) -> float | None:
    return float(value) if is_number(value) else None


def _ratio_or_none(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def _number_list(value: Any) -> list[float] | None:
    """The list as floats, or None if absent or holding anything but numbers."""
    if not isinstance(value, (list, tuple)) or not all(is_number(v) for v in value):
        return None
    return [float(v) for v in value]


def _mean(values: list[float] | None) -> float | None:
    return statistics.fmean(values) if values else None


def _pstd(values: list[float] | None) -> float | None:
    if not values:
        return None
    return 0.0 if len(values) == 1 else statistics.pstdev(values)


def _positive(count: int | None) -> bool:
    return count is not None and count > 0


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _axis_entries(logs: Mapping[str, Any], axis: str) -> tuple[list[Mapping[str, Any]], bool]:
    """The axis logs of one axis and whether they are per-LR noise controllers."""
    if axis == "lr":
        entry = _mapping(logs.get("lr_controller_logs"))
        return ([entry] if entry is not None else []), False
    entry = _mapping(logs.get("noise_controller_logs"))
    if entry is not None:
        return [entry], False
    by_lr = _mapping(logs.get("noise_controller_logs_by_lr"))
    if by_lr is not None:
        return [v for v in by_lr.values() if isinstance(v, Mapping)], True
    return [], False


def _entry_created(entry: Mapping[str, Any]) -> bool | None:
    created = entry.get("controller_created")
    if isinstance(created, bool):
        return created
    controller_type = entry.get("controller_type")
    if isinstance(controller_type, str):
        return controller_type != "FixedAxis"
    return None


def _last_int(value: Any) -> int | None:
    if isinstance(value, list) and value:
        return as_int(value[-1])
    return None


def _entry_updates(entry: Mapping[str, Any]) -> int | None:
    if _entry_created(entry) is False:
        return 0
    updates = _last_int(entry.get("controller_updates_history"))
    if updates is None:
        prior = _mapping(entry.get("global_prior_logs")) or {}
        updates = _last_int(prior.get("controller_updates_history"))
    return updates


def _entry_history_length(entry: Mapping[str, Any]) -> int | None:
    if _entry_created(entry) is False:
        return 0
    prior = _mapping(entry.get("global_prior_logs")) or {}
    for history in (
        entry.get("value_estimates_history"),
        prior.get("value_estimates_history"),
        prior.get("controller_updates_history"),
        entry.get("controller_updates_history"),
    ):
        if isinstance(history, list):
            return len(history)
    return None


def _combine(values: Iterable[Any], how: Callable[[list[Any]], Any]) -> Any:
    known = [v for v in values if v is not None]
    return how(known) if known else None


def _axis_value(
    logs: Mapping[str, Any],
    axis: str,
    per_entry: Callable[[Mapping[str, Any]], Any],
    across_lr: Callable[[list[Any]], Any],
) -> Any:
    entries, by_lr = _axis_entries(logs, axis)
    if not entries:
        return None
    if by_lr:
        return _combine((per_entry(e) for e in entries), across_lr)
    return per_entry(entries[0])


def _fmt_g(value: float) -> str:
    return format(value, "g")


def _fixed_axis_optimization(
    created: dict[str, bool | None] | None, config_cands: dict[str, list[float] | None]
) -> bool | None:
    """Whether an axis with one candidate ran without a controller (None: unknown)."""
    if created is not None and any(v is False for v in created.values()):
        return True
    if created is not None and all(v is not None for v in created.values()):
        return False
    if any(c is not None and len(c) == 1 for c in config_cands.values()):
        return True
    return None


def _axis_summaries(
    logs: Mapping[str, Any] | None,
    created: dict[str, bool | None] | None,
    config_cands: dict[str, list[float] | None],
) -> tuple[list[str], list[str]]:
    """(adaptive, fixed) axes as ``lr=[0.5, 1, 2]`` / ``noise=0``: from the controller logs
    where they say, else from the config's candidates."""
    adaptive: list[str] = []
    fixed: list[str] = []
    for axis in ("lr", "noise"):
        axis_created = created.get(axis) if created is not None else None
        if axis_created is not None and logs is not None:
            entries, _ = _axis_entries(logs, axis)
            values = next(
                (vals for vals in (_number_list(e.get("arm_values")) for e in entries) if vals),
                None,
            ) or (config_cands[axis] or [])
            if axis_created:
                adaptive.append(f"{axis}=[{', '.join(_fmt_g(v) for v in values)}]")
            else:
                fixed_value = next(
                    (
                        float(e["fixed_arm_value"])
                        for e in entries
                        if is_number(e.get("fixed_arm_value"))
                    ),
                    values[0] if values else None,
                )
                if fixed_value is not None:
                    fixed.append(f"{axis}={_fmt_g(fixed_value)}")
            continue
        cands = config_cands[axis]
        if cands is None:
            continue
        if len(cands) > 1:
            adaptive.append(f"{axis}=[{', '.join(_fmt_g(v) for v in cands)}]")
        else:
            fixed.append(f"{axis}={_fmt_g(cands[0])}")
    return adaptive, fixed


def _num_controllers(
    logs: Mapping[str, Any] | None,
    config: Mapping[str, Any],
    lr_cands: list[float] | None,
    noise_cands: list[float] | None,
) -> int | None:
    """Controllers created: counted in the logs, else derived from the candidates."""
    if logs is not None:
        lr_entries, _ = _axis_entries(logs, "lr")
        noise_entries, _ = _axis_entries(logs, "noise")
        return sum(1 for e in (*lr_entries, *noise_entries) if _entry_created(e) is True)
    if lr_cands is None or noise_cands is None:
        return None
    conditional = config.get("structured_control_mode") == "conditional"
    lr_count = 1 if len(lr_cands) > 1 else 0
    if len(noise_cands) > 1:
        noise_count = len(lr_cands) if conditional and len(lr_cands) > 1 else 1
    else:
        noise_count = 0
    return lr_count + noise_count


def _overhead_metadata(result: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    logs = _mapping(result.get("controller_logs"))
    lr_cands = candidate_values(config.get("lr_candidates"))
    noise_cands = candidate_values(config.get("noise_candidates"))
    config_cands = {"lr": lr_cands, "noise": noise_cands}
    created: dict[str, bool | None] | None = None
    if logs is not None:
        created = {axis: _axis_value(logs, axis, _entry_created, any) for axis in ("lr", "noise")}
    fixed_axis_optimization = _fixed_axis_optimization(created, config_cands)
    adaptive, fixed = _axis_summaries(logs, created, config_cands)
    num_controllers = _num_controllers(logs, config, lr_cands, noise_cands)
    return {
        "method_name": result.get("method_name"),
        "control_regime": config.get("control_regime", config.get("control_mode")),
        "structured_control_mode": config.get("structured_control_mode"),
        "context_mode": config.get("context_mode"),
        "lr_scheduler": config.get("lr_scheduler"),
        "episode_length": config.get("episode_length"),
        "lr_candidates": config.get("lr_candidates"),
        "noise_candidates": config.get("noise_candidates"),
        "controller_created_by_axis": created,
        "fixed_axis_optimization_enabled": fixed_axis_optimization,
        "adaptive_axes": adaptive or None,
        "fixed_axes": fixed or None,
        "num_adaptive_axes": len(adaptive),
        "num_fixed_axes": len(fixed),
        "num_controllers_created": num_controllers,
    }


def _hardware_block(
    result: Mapping[str, Any], config: Mapping[str, Any], hardware: Mapping[str, Any] | None
) -> dict[str, Any]:
    """Host fields from (in order) the argument, ``provenance.hardware`` (captured when the
    run started), an existing ``runtime_metrics.hardware`` (a re-saved file keeps the machine
    it ran on), else a probe of this machine; then the ``*_from_config`` fields."""
    host = hardware
    if host is None:
        host = _mapping((_mapping(result.get("provenance")) or {}).get("hardware"))
    if host is None:
        host = _mapping((_mapping(result.get("runtime_metrics")) or {}).get("hardware"))
    if host is None:
        host = probe_host()
    return {**host, **hardware_from_config(config)}


def build_runtime_metrics(
    result: Mapping[str, Any], *, hardware: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Derive the ``runtime_metrics`` block from a result dict (docs/results-schema.md §7, key for
    key).

    Whole-run rates (``seconds_per_epoch``, ``seconds_per_step``, TFLOP/s, ...) include the
    first epoch, as in the thesis. The ``steady_state_*`` keys added here exclude it
    (:data:`STEADY_STATE_RULE`); ``steady_state_seconds_per_step`` assumes an equal number of
    steps per epoch. Counts must be ints (bools and floats count as missing); a rate whose
    count is 0 or missing, or whose wall time is 0 or missing, is None. Std is the population
    std (0.0 for one value). ``hardware`` overrides the host part of the hardware block.
    """
    config = _mapping(result.get("config")) or {}
    logs = _mapping(result.get("controller_logs"))
    return {
        **_timing_metrics(result),
        **_throughput_metrics(result, config),
        "hardware": _hardware_block(result, config, hardware),
        "aees_overhead_metadata": _overhead_metadata(result, config),
        **_controller_metrics(logs),
    }


def _timing_metrics(result: Mapping[str, Any]) -> dict[str, Any]:
    """Wall clock, per-epoch times, whole-run rates and the steady-state keys."""
    wall = _as_float(result.get("wall_clock_seconds"))
    epoch_times = _number_list(result.get("epoch_wall_clock_seconds"))
    total_steps = as_int(result.get("total_steps"))
    total_epochs = as_int(result.get("total_epochs"))
    steady = epoch_times[1:] if epoch_times is not None and len(epoch_times) >= 2 else None
    steady_mean = _mean(steady)
    steps_per_epoch = (
        total_steps / total_epochs if _positive(total_steps) and _positive(total_epochs) else None
    )
    steady_sec_per_step = _ratio_or_none(steady_mean, steps_per_epoch)
    return {
        "wall_clock_seconds": wall,
        "wall_clock_minutes": wall / 60 if wall is not None else None,
        "wall_clock_hours": wall / 3600 if wall is not None else None,
        "epoch_wall_clock_seconds": epoch_times,
        "mean_epoch_wall_clock_seconds": _mean(epoch_times),
        "std_epoch_wall_clock_seconds": _pstd(epoch_times),
        "min_epoch_wall_clock_seconds": min(epoch_times) if epoch_times else None,
        "max_epoch_wall_clock_seconds": max(epoch_times) if epoch_times else None,
        "first_epoch_wall_clock_seconds": epoch_times[0] if epoch_times else None,
        "last_epoch_wall_clock_seconds": epoch_times[-1] if epoch_times else None,
        "total_steps": total_steps,
        "total_epochs": total_epochs,
        "seconds_per_step": _ratio_or_none(wall, total_steps) if _positive(total_steps) else None,
        "steps_per_second": _ratio_or_none(total_steps, wall) if _positive(total_steps) else None,
        "seconds_per_epoch": (
            _ratio_or_none(wall, total_epochs) if _positive(total_epochs) else None
        ),
        "epochs_per_hour": (
            _ratio_or_none(total_epochs * 3600, wall)
            if total_epochs is not None and _positive(total_epochs)
            else None
        ),
        "steady_state_rule": STEADY_STATE_RULE,
        "steady_state_epochs_counted": len(steady) if steady is not None else 0,
        "steady_state_mean_epoch_wall_clock_seconds": steady_mean,
        "steady_state_std_epoch_wall_clock_seconds": _pstd(steady),
        "steady_state_seconds_per_step": steady_sec_per_step,
        "steady_state_steps_per_second": _ratio_or_none(1.0, steady_sec_per_step)
        if steady_sec_per_step is not None
        else None,
    }


def _throughput_metrics(result: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """Batch sizes, examples processed and FLOP rates."""
    wall = _as_float(result.get("wall_clock_seconds"))
    total_steps = as_int(result.get("total_steps"))
    batch_size = as_int(config.get("batch_size"))
    grad_accum = as_int(config.get("gradient_accumulation_steps"))
    if grad_accum is None:
        grad_accum = 1
    effective_batch = batch_size * grad_accum if batch_size is not None else None
    examples = (
        total_steps * effective_batch
        if total_steps is not None and effective_batch is not None
        else None
    )
    flops = _as_float(result.get("estimated_flops"))
    tflops_total = flops / 1e12 if flops is not None else None
    epoch_tflops = _number_list(result.get("epoch_tflops"))
    return {
        "batch_size": batch_size,
        "gradient_accumulation_steps": grad_accum,
        "effective_batch_size": effective_batch,
        "estimated_train_examples_processed": examples,
        "estimated_examples_per_second": _ratio_or_none(examples, wall),
        "estimated_flops": flops,
        "estimated_tflops_total": tflops_total,
        "estimated_tflops_per_second": _ratio_or_none(tflops_total, wall),
        "estimated_tflops_per_hour": (
            _ratio_or_none(tflops_total * 3600, wall) if tflops_total is not None else None
        ),
        "epoch_tflops": epoch_tflops,
        "mean_epoch_tflops": _mean(epoch_tflops),
    }


def _controller_metrics(logs: Mapping[str, Any] | None) -> dict[str, Any]:
    """Episode and controller counts from ``controller_logs`` (None without logs)."""
    return {
        "logged_episode_count": (
            as_int(logs.get("_logged_episode_count")) if logs is not None else None
        ),
        "controller_update_count_by_axis": (
            {axis: _axis_value(logs, axis, _entry_updates, sum) for axis in ("lr", "noise")}
            if logs is not None
            else None
        ),
        "controller_history_length_by_axis": (
            {axis: _axis_value(logs, axis, _entry_history_length, max) for axis in ("lr", "noise")}
            if logs is not None
            else None
        ),
    }
