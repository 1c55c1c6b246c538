"""build_runtime_metrics: the seed's expectations (docs/results-schema.md §7) as exact values."""

from __future__ import annotations

import math
from typing import Any

import pytest

from aees.results import (
    STEADY_STATE_RULE,
    RunResult,
    build_runtime_metrics,
    result_to_dict,
)

HOST = {"hostname": "test-host", "cuda_available": False, "gpu_count": 0}


def _payload() -> dict[str, Any]:
    """The seed test payload: wall 20 s, 100 steps, 5 epochs, batch 16 x accumulation 2,
    4e12 FLOPs, epoch times [3, 4, 5, 4, 4], a fixed LR axis and an adaptive noise axis."""
    return {
        "method_name": "AdaptiveScheduler",
        "wall_clock_seconds": 20.0,
        "total_steps": 100,
        "total_epochs": 5,
        "estimated_flops": 4e12,
        "epoch_wall_clock_seconds": [3.0, 4.0, 5.0, 4.0, 4.0],
        "epoch_tflops": [0.8, 0.8, 0.8, 0.8, 0.8],
        "config": {
            "batch_size": 16,
            "gradient_accumulation_steps": 2,
            "control_mode": "adaptive",
            "control_regime": "AdaptiveScheduler",
            "structured_control_mode": "independent",
            "context_mode": "none",
            "lr_scheduler": "none",
            "episode_length": 20,
            "lr_candidates": [1.0],
            "noise_candidates": [0.0, 0.005, 0.01],
            "device": "cpu",
            "num_workers": 2,
            "pin_memory": False,
            "run_tag": "from-config",
        },
        "controller_logs": {
            "structured_control_mode": "independent",
            "context_mode": "none",
            "_logged_episode_count": 5,
            "lr_controller_logs": {
                "controller_type": "FixedAxis",
                "axis_name": "lr",
                "arm_values": [1.0],
                "controller_created": False,
                "fixed_arm_value": 1.0,
            },
            "noise_controller_logs": {
                "controller_type": "DiscountedUCBController",
                "axis_name": "noise",
                "arm_values": [0.0, 0.005, 0.01],
                "controller_created": True,
                "value_estimates_history": [{"0.0": 0.1}, {"0.0": 0.2, "0.005": 0.3}],
                "effective_counts_history": [{"0.0": 1.0}, {"0.0": 0.95, "0.005": 1.0}],
                "warmup_counts_history": [{"0.0": 1}, {"0.0": 1, "0.005": 1}],
                "controller_updates_history": [4, 5],
            },
        },
    }


def _metrics(payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return build_runtime_metrics(_payload() if payload is None else payload, hardware=HOST)


def test_whole_run_rates_and_throughput() -> None:
    m = _metrics()
    assert m["wall_clock_seconds"] == 20.0
    assert m["wall_clock_minutes"] == pytest.approx(20.0 / 60, rel=1e-15)
    assert m["wall_clock_hours"] == pytest.approx(20.0 / 3600, rel=1e-15)
    assert m["total_steps"] == 100
    assert m["total_epochs"] == 5
    assert m["seconds_per_step"] == 0.2
    assert m["steps_per_second"] == 5.0
    assert m["seconds_per_epoch"] == 4.0  # includes the first epoch, as in the thesis
    assert m["epochs_per_hour"] == 900.0
    assert m["batch_size"] == 16
    assert m["gradient_accumulation_steps"] == 2
    assert m["effective_batch_size"] == 32
    assert m["estimated_train_examples_processed"] == 3200
    assert m["estimated_examples_per_second"] == 160.0
    assert m["estimated_flops"] == 4e12
    assert m["estimated_tflops_total"] == 4.0
    assert m["estimated_tflops_per_second"] == 0.2
    assert m["estimated_tflops_per_hour"] == 720.0
    assert m["epoch_tflops"] == [0.8] * 5
    assert m["mean_epoch_tflops"] == pytest.approx(0.8, rel=1e-15)
    assert "controller_select_count_by_axis" not in m  # was always null (issue 20)


def test_epoch_time_statistics_use_population_std_without_first_epoch_exclusion() -> None:
    m = _metrics()
    assert m["epoch_wall_clock_seconds"] == [3.0, 4.0, 5.0, 4.0, 4.0]
    assert m["mean_epoch_wall_clock_seconds"] == 4.0
    assert m["std_epoch_wall_clock_seconds"] == pytest.approx(math.sqrt(0.4), rel=1e-15)
    assert m["min_epoch_wall_clock_seconds"] == 3.0
    assert m["max_epoch_wall_clock_seconds"] == 5.0
    assert m["first_epoch_wall_clock_seconds"] == 3.0
    assert m["last_epoch_wall_clock_seconds"] == 4.0


def test_steady_state_metrics_exclude_the_first_epoch() -> None:
    m = _metrics()
    assert m["steady_state_rule"] == STEADY_STATE_RULE
    assert m["steady_state_epochs_counted"] == 4
    assert m["steady_state_mean_epoch_wall_clock_seconds"] == 4.25  # mean of [4, 5, 4, 4]
    assert m["steady_state_std_epoch_wall_clock_seconds"] == pytest.approx(
        math.sqrt(0.1875), rel=1e-15
    )
    # 20 steps per epoch -> 4.25 s / 20 steps
    assert m["steady_state_seconds_per_step"] == pytest.approx(0.2125, rel=1e-15)
    assert m["steady_state_steps_per_second"] == pytest.approx(1 / 0.2125, rel=1e-15)


def test_single_epoch_has_zero_std_and_no_steady_state() -> None:
    payload = _payload()
    payload.update(epoch_wall_clock_seconds=[7.5], total_epochs=1)
    m = _metrics(payload)
    assert m["std_epoch_wall_clock_seconds"] == 0.0
    assert m["mean_epoch_wall_clock_seconds"] == 7.5
    assert m["steady_state_epochs_counted"] == 0
    assert m["steady_state_mean_epoch_wall_clock_seconds"] is None
    assert m["steady_state_seconds_per_step"] is None


def test_missing_fields_map_to_none() -> None:
    payload = {
        "method_name": "AdamW",
        "total_steps": 0,
        "total_epochs": 0,
        "config": {},
    }
    m = _metrics(payload)
    for key in (
        "wall_clock_seconds",
        "wall_clock_minutes",
        "seconds_per_step",
        "steps_per_second",
        "seconds_per_epoch",
        "epochs_per_hour",
        "epoch_wall_clock_seconds",
        "mean_epoch_wall_clock_seconds",
        "std_epoch_wall_clock_seconds",
        "first_epoch_wall_clock_seconds",
        "batch_size",
        "effective_batch_size",
        "estimated_train_examples_processed",
        "estimated_examples_per_second",
        "estimated_flops",
        "estimated_tflops_total",
        "estimated_tflops_per_second",
        "estimated_tflops_per_hour",
        "epoch_tflops",
        "mean_epoch_tflops",
        "logged_episode_count",
        "controller_update_count_by_axis",
        "controller_history_length_by_axis",
    ):
        assert m[key] is None, key
    assert m["gradient_accumulation_steps"] == 1
    meta = m["aees_overhead_metadata"]
    assert meta["controller_created_by_axis"] is None
    assert meta["fixed_axis_optimization_enabled"] is None
    assert meta["adaptive_axes"] is None and meta["fixed_axes"] is None
    assert meta["num_controllers_created"] is None


def test_zero_counts_with_wall_time_still_give_none_rates() -> None:
    payload = _payload()
    payload.update(total_steps=0, total_epochs=0)
    m = _metrics(payload)
    assert m["seconds_per_step"] is None
    assert m["steps_per_second"] is None
    assert m["seconds_per_epoch"] is None
    assert m["epochs_per_hour"] is None
    assert m["wall_clock_minutes"] == pytest.approx(1 / 3, rel=1e-15)


def test_zero_wall_time_gives_none_rates() -> None:
    payload = _payload()
    payload["wall_clock_seconds"] = 0
    m = _metrics(payload)
    assert m["wall_clock_seconds"] == 0.0
    assert m["seconds_per_step"] == 0.0
    assert m["steps_per_second"] is None
    assert m["estimated_tflops_per_second"] is None
    assert m["estimated_examples_per_second"] is None


def test_counts_reject_bools_and_floats() -> None:
    payload = _payload()
    payload.update(total_steps=100.0, total_epochs=True)
    payload["config"]["batch_size"] = True
    m = _metrics(payload)
    assert m["total_steps"] is None
    assert m["total_epochs"] is None
    assert m["seconds_per_step"] is None
    assert m["seconds_per_epoch"] is None
    assert m["batch_size"] is None
    assert m["effective_batch_size"] is None


def test_wall_clock_rejects_bool_and_strings() -> None:
    for bad in (True, "20"):
        payload = _payload()
        payload["wall_clock_seconds"] = bad
        m = _metrics(payload)
        assert m["wall_clock_seconds"] is None
        assert m["steps_per_second"] is None


def test_epoch_lists_with_non_numbers_are_none() -> None:
    payload = _payload()
    payload["epoch_wall_clock_seconds"] = [3.0, "4", 5.0]
    payload["epoch_tflops"] = [0.8, None]
    m = _metrics(payload)
    assert m["epoch_wall_clock_seconds"] is None
    assert m["mean_epoch_wall_clock_seconds"] is None
    assert m["epoch_tflops"] is None
    assert m["mean_epoch_tflops"] is None


def test_empty_epoch_list_has_none_statistics() -> None:
    payload = _payload()
    payload["epoch_wall_clock_seconds"] = []
    m = _metrics(payload)
    assert m["epoch_wall_clock_seconds"] == []
    assert m["mean_epoch_wall_clock_seconds"] is None
    assert m["std_epoch_wall_clock_seconds"] is None
    assert m["min_epoch_wall_clock_seconds"] is None
    assert m["last_epoch_wall_clock_seconds"] is None


def test_fixed_axis_inference_from_controller_logs() -> None:
    m = _metrics()
    meta = m["aees_overhead_metadata"]
    assert meta["method_name"] == "AdaptiveScheduler"
    assert meta["control_regime"] == "AdaptiveScheduler"
    assert meta["controller_created_by_axis"] == {"lr": False, "noise": True}
    assert meta["fixed_axis_optimization_enabled"] is True
    assert meta["num_controllers_created"] == 1
    assert meta["num_adaptive_axes"] == 1
    assert meta["num_fixed_axes"] == 1
    assert meta["adaptive_axes"] == ["noise=[0, 0.005, 0.01]"]
    assert meta["fixed_axes"] == ["lr=1"]
    assert meta["episode_length"] == 20
    assert meta["lr_candidates"] == [1.0]
    assert meta["noise_candidates"] == [0.0, 0.005, 0.01]
    assert m["logged_episode_count"] == 5
    assert m["controller_update_count_by_axis"] == {"lr": 0, "noise": 5}
    assert m["controller_history_length_by_axis"] == {"lr": 0, "noise": 2}


def test_created_flag_inferred_from_controller_type() -> None:
    payload = _payload()
    logs = payload["controller_logs"]
    del logs["lr_controller_logs"]["controller_created"]
    del logs["noise_controller_logs"]["controller_created"]
    m = _metrics(payload)
    assert m["aees_overhead_metadata"]["controller_created_by_axis"] == {
        "lr": False,
        "noise": True,
    }
    assert m["controller_update_count_by_axis"] == {"lr": 0, "noise": 5}


def test_both_axes_adaptive_disables_fixed_axis_optimization() -> None:
    payload = _payload()
    payload["config"]["lr_candidates"] = [0.5, 1.0, 2.0]
    payload["controller_logs"]["lr_controller_logs"] = {
        "controller_type": "DiscountedUCBController",
        "axis_name": "lr",
        "arm_values": [0.5, 1.0, 2.0],
        "controller_created": True,
        "value_estimates_history": [{}, {}, {}],
        "controller_updates_history": [1, 2, 3],
    }
    m = _metrics(payload)
    meta = m["aees_overhead_metadata"]
    assert meta["fixed_axis_optimization_enabled"] is False
    assert meta["adaptive_axes"] == ["lr=[0.5, 1, 2]", "noise=[0, 0.005, 0.01]"]
    assert meta["fixed_axes"] is None
    assert meta["num_fixed_axes"] == 0
    assert meta["num_controllers_created"] == 2
    assert m["controller_update_count_by_axis"] == {"lr": 3, "noise": 5}
    assert m["controller_history_length_by_axis"] == {"lr": 3, "noise": 2}


def _ucb_axis(values: list[float], updates: list[int], history: int) -> dict[str, Any]:
    return {
        "controller_type": "DiscountedUCBController",
        "axis_name": "noise",
        "arm_values": values,
        "controller_created": True,
        "value_estimates_history": [{} for _ in range(history)],
        "controller_updates_history": updates,
    }


def test_conditional_noise_controllers_sum_updates_and_take_max_history() -> None:
    payload = _payload()
    payload["config"].update(structured_control_mode="conditional", lr_candidates=[0.5, 2.0])
    logs = payload["controller_logs"]
    del logs["noise_controller_logs"]
    logs["lr_controller_logs"] = {
        "controller_type": "DiscountedUCBController",
        "axis_name": "lr",
        "arm_values": [0.5, 2.0],
        "controller_created": True,
        "value_estimates_history": [{}] * 7,
        "controller_updates_history": [1, 2, 3, 4, 5, 6, 7],
    }
    logs["noise_controller_logs_by_lr"] = {
        "0.5": {**_ucb_axis([0.0, 0.01], [1, 2, 3], 3), "conditioned_on_lr_value": 0.5},
        "2.0": {**_ucb_axis([0.0, 0.01], [1, 2, 3, 4], 4), "conditioned_on_lr_value": 2.0},
    }
    m = _metrics(payload)
    meta = m["aees_overhead_metadata"]
    assert meta["controller_created_by_axis"] == {"lr": True, "noise": True}
    assert meta["num_controllers_created"] == 3
    assert meta["adaptive_axes"] == ["lr=[0.5, 2]", "noise=[0, 0.01]"]
    assert m["controller_update_count_by_axis"] == {"lr": 7, "noise": 7}
    assert m["controller_history_length_by_axis"] == {"lr": 7, "noise": 4}


def test_bucketed_controller_falls_back_to_global_prior() -> None:
    payload = _payload()
    payload["controller_logs"]["noise_controller_logs"] = {
        "controller_type": "BucketedContextualController",
        "axis_name": "noise",
        "arm_values": [0.0, 0.005, 0.01],
        "controller_created": True,
        "context_bucket_names": ["improving", "stable", "worsening"],
        "prior_from_global": True,
        "global_prior_logs": {
            "value_estimates_history": [{}, {}, {}],
            "controller_updates_history": [1, 2, 3],
        },
    }
    m = _metrics(payload)
    assert m["controller_update_count_by_axis"] == {"lr": 0, "noise": 3}
    assert m["controller_history_length_by_axis"] == {"lr": 0, "noise": 3}


def test_axes_fall_back_to_config_candidates_without_logs() -> None:
    payload = _payload()
    payload["controller_logs"] = None
    payload["config"].update(lr_candidates=[0.5, 1.0, 2.0], noise_candidates=[0.0])
    meta = _metrics(payload)["aees_overhead_metadata"]
    assert meta["controller_created_by_axis"] is None
    assert meta["fixed_axis_optimization_enabled"] is True  # one candidate list has length 1
    assert meta["adaptive_axes"] == ["lr=[0.5, 1, 2]"]
    assert meta["fixed_axes"] == ["noise=0"]
    assert meta["num_controllers_created"] == 1


def test_config_count_of_conditional_noise_controllers() -> None:
    payload = _payload()
    payload["controller_logs"] = None
    payload["config"].update(
        structured_control_mode="conditional",
        lr_candidates="0.5,1,2",
        noise_candidates=[0.0, 0.01],
    )
    meta = _metrics(payload)["aees_overhead_metadata"]
    assert meta["num_controllers_created"] == 1 + 3
    assert meta["fixed_axis_optimization_enabled"] is None
    assert meta["num_adaptive_axes"] == 2


def test_control_regime_falls_back_to_control_mode() -> None:
    payload = _payload()
    del payload["config"]["control_regime"]
    assert _metrics(payload)["aees_overhead_metadata"]["control_regime"] == "adaptive"


def test_cpu_only_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    payload = _payload()
    payload["config"].update(bf16=True, mixed_precision="bf16")
    hardware = build_runtime_metrics(payload)["hardware"]
    assert hardware["cuda_available"] is False
    assert hardware["gpu_count"] == 0
    assert hardware["gpu_names"] == []
    assert hardware["current_device_index"] is None
    assert hardware["current_device_name"] is None
    assert hardware["torch_version"] == str(torch.__version__)
    assert hardware["device_from_config"] == "cpu"
    assert hardware["num_workers_from_config"] == 2
    assert hardware["pin_memory_from_config"] is False
    assert hardware["mixed_precision_from_config"] == "bf16"
    assert hardware["bf16_from_config"] is True
    assert hardware["fp16_from_config"] is None
    for key in ("hostname", "platform", "python_version", "cudnn_version", "world_size"):
        assert key in hardware


def test_gpu_hardware_block_with_a_failing_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CUDA branch, with a fake two-GPU torch.cuda whose second device cannot be queried."""
    import types

    import torch

    def properties(index: int) -> Any:
        if index == 1:
            raise RuntimeError("device lost")
        return types.SimpleNamespace(
            name="NVIDIA H100 80GB HBM3", total_memory=80 * 2**30 + 5, major=9, minor=0
        )

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", properties)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    hardware = build_runtime_metrics(_payload())["hardware"]
    assert hardware["cuda_available"] is True
    assert hardware["accelerator"] == "cuda"
    assert hardware["gpu_count"] == 2
    assert hardware["gpu_names"] == ["NVIDIA H100 80GB HBM3", "cuda:1"]
    assert hardware["gpu_total_memory_mb"] == [81920, 0]
    assert hardware["gpu_compute_capabilities"] == ["9.0", None]
    assert hardware["current_device_index"] == 0
    assert hardware["current_device_name"] == "NVIDIA H100 80GB HBM3"
    assert hardware["device_name"] == "NVIDIA H100 80GB HBM3"


def test_world_size_from_torchrun_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    hardware = build_runtime_metrics(_payload())["hardware"]
    assert (hardware["world_size"], hardware["rank"]) == (4, 2)


def test_hardware_comes_from_provenance_then_existing_block() -> None:
    payload = _payload()
    payload["runtime_metrics"] = {"hardware": {"hostname": "old-box", "gpu_count": 8}}
    assert build_runtime_metrics(payload)["hardware"]["hostname"] == "old-box"
    payload["provenance"] = {"hardware": {"hostname": "run-box", "gpu_count": 1}}
    hardware = build_runtime_metrics(payload)["hardware"]
    assert hardware["hostname"] == "run-box"
    assert hardware["gpu_count"] == 1
    assert hardware["device_from_config"] == "cpu"  # config fields always overlay


def _result(**overrides: Any) -> RunResult:
    payload = _payload()
    fields: dict[str, Any] = {
        "method_name": "AdaptiveScheduler",
        "task_name": "cifar100",
        "seed": 0,
        "model_name": "resnet18",
        "dataset_name": "CIFAR-100",
        "config": payload["config"],
        "best_val_accuracy": 0.5,
        "final_val_accuracy": 0.4,
        "final_train_loss": 1.5,
        "total_steps": 100,
        "total_epochs": 5,
        "wall_clock_seconds": 20.0,
        "estimated_flops": 4e12,
        "accuracy_per_tflop": 0.125,
        "train_losses": [3.0, 2.5, 2.0, 1.8, 1.5],
        "train_accuracies": None,
        "val_accuracies": [0.1, 0.3, 0.5, 0.45, 0.4],
        "epoch_wall_clock_seconds": payload["epoch_wall_clock_seconds"],
        "epoch_tflops": payload["epoch_tflops"],
        "episode_logs": None,
        "controller_logs": payload["controller_logs"],
    }
    fields.update(overrides)
    return RunResult(**fields)


def test_result_to_dict_preserves_wall_and_takes_run_tag_from_config() -> None:
    data = result_to_dict(_result(), hardware=HOST)
    assert data["wall_clock_seconds"] == 20.0
    assert data["runtime_metrics"]["wall_clock_seconds"] == 20.0
    assert data["run_tag"] == "from-config"
    assert data["runtime_metrics"]["seconds_per_step"] == 0.2
    explicit = result_to_dict(_result(run_tag="explicit"), hardware=HOST)
    assert explicit["run_tag"] == "explicit"


def test_runtime_metrics_are_always_recomputed() -> None:
    stale = {"seconds_per_step": 99.0, "hardware": {"hostname": "old-box"}}
    data = result_to_dict(_result(runtime_metrics=stale))
    assert data["runtime_metrics"]["seconds_per_step"] == 0.2
    assert data["runtime_metrics"]["hardware"]["hostname"] == "old-box"
