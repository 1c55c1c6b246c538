"""Result fixtures for the reporting tests: real ``RunResult`` files with controlled numbers.

Every number a test checks is a simple function of (method, seed) defined here, so the tests
can recompute expected table cells independently (with numpy) from the same definitions.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aees.results import RunResult, save_run_result

HARDWARE = {"current_device_name": "Fixture GPU", "gpu_names": ["Fixture GPU"], "gpu_count": 1}


@dataclass(frozen=True)
class Spec:
    """A method configuration for the fixture runs (thesis config keys)."""

    control_mode: str = "baseline"  # baseline | adaptive | random
    optimizer: str = "AdamW"
    scheduler: str = "none"
    lr: tuple[float, ...] = (1.0,)
    noise: tuple[float, ...] = (0.0,)
    context: str = "none"
    penalty: float = 0.0


def curve(offset: float, seed: int, epochs: int, peak_at: int) -> list[float]:
    """A validation curve rising to ``0.5 + offset + 0.01·seed + jitter`` at ``peak_at``
    (1-based), then falling linearly by ``0.002·(1 + seed)`` per epoch. The jitter,
    0.002·((7·seed + round(1000·offset)) mod 5), makes paired differences vary by seed."""
    top = 0.5 + offset + 0.01 * seed + 0.002 * ((7 * seed + round(1000 * offset)) % 5)
    vals = []
    for e in range(1, epochs + 1):
        if e <= peak_at:
            vals.append(top - 0.03 * (peak_at - e))
        else:
            vals.append(top - 0.002 * (1 + seed) * (e - peak_at))
    return vals


def config(spec: Spec, *, task: str, seed: int, epochs: int, noise_type: str, rate: float) -> dict:
    return {
        "task_name": task,
        "control_mode": spec.control_mode,
        "optimizer": spec.optimizer,
        "optimizer_family": spec.optimizer,
        "lr": 0.1 if spec.optimizer == "SGD" else 1e-3,
        "weight_decay": 1e-4,
        "momentum": 0.9,
        "batch_size": 128,
        "epochs": epochs,
        "lr_scheduler": spec.scheduler,
        "warmup_epochs": 0,
        "lr_candidates": list(spec.lr),
        "noise_candidates": list(spec.noise),
        "episode_length": 200,
        "structured_control_mode": "independent",
        "context_mode": spec.context,
        "context_trend_window": 3,
        "context_trend_epsilon": 1e-3,
        "reward_epsilon": 1e-8,
        "reward_instability_lambda": spec.penalty,
        "reward_clip_min": -1.0,
        "reward_clip_max": 1.0,
        "ema_alpha": 0.1,
        "label_noise_type": noise_type,
        "label_noise_rate": rate,
        "seed": seed,
    }


def episode_logs(spec: Spec, seed: int, episodes: int, steps_per_episode: int = 10) -> dict:
    """Arm choices cycle with the seed; reward = 0.01·(arm index + 1) − 0.005·seed; update
    norms decay as 0.1/(e + 1)."""
    lr_idx = [(e + seed) % len(spec.lr) for e in range(episodes)]
    noise_idx = [(e * 2 + seed) % len(spec.noise) for e in range(episodes)]
    return {
        "selected_lr_indices": lr_idx,
        "selected_noise_indices": noise_idx,
        "selected_lr_values": [spec.lr[i] for i in lr_idx],
        "selected_noise_values": [spec.noise[i] for i in noise_idx],
        "selected_combined_names": [f"lr{i}_n{j}" for i, j in zip(lr_idx, noise_idx, strict=True)],
        "episode_rewards": [0.01 * (i + 1) - 0.005 * seed for i in lr_idx],
        "episode_start_steps": [e * steps_per_episode for e in range(episodes)],
        "episode_end_steps": [(e + 1) * steps_per_episode - 1 for e in range(episodes)],
        "mean_update_norms": [0.1 / (e + 1) for e in range(episodes)],
    }


def diagnostics(offset: float, seed: int, epochs: int, peak_at: int) -> dict[str, Any]:
    """Label-noise diagnostics: at the best epoch corr_noisy = 0.2 + offset + 0.01·seed,
    corr_clean = 0.5 − offset, train_clean = 0.8; at the final epoch corr_noisy = 0.9 + 0.01·seed,
    corr_clean = 0.05, train_clean = 0.99."""
    return {
        "best_val_epoch": peak_at,
        "final_test_accuracy": 0.4,
        "test_accuracy_at_best_val": 0.45,
        "final_subset_accuracies": {
            "train_all_accuracy": 0.9,
            "train_clean_accuracy": 0.99,
            "train_corrupted_accuracy_vs_noisy_labels": 0.9 + 0.01 * seed,
            "train_corrupted_accuracy_vs_clean_labels": 0.05,
        },
        "best_val_subset_accuracies": {
            "epoch": peak_at,
            "train_all_accuracy": 0.7,
            "train_clean_accuracy": 0.8,
            "train_corrupted_accuracy_vs_noisy_labels": 0.2 + offset + 0.01 * seed,
            "train_corrupted_accuracy_vs_clean_labels": 0.5 - offset,
        },
    }


def make_result(
    spec: Spec,
    *,
    task: str = "cifar100",
    seed: int = 0,
    epochs: int = 12,
    offset: float = 0.0,
    peak_at: int = 8,
    noise_type: str = "none",
    rate: float = 0.0,
    epoch_times: list[float] | None = None,
) -> RunResult:
    vals = curve(offset, seed, epochs, peak_at)
    adaptive = spec.control_mode != "baseline"
    times = epoch_times or [2.0] * epochs
    method = {"baseline": "Baseline", "adaptive": "AdaptiveScheduler", "random": "RandomScheduler"}
    diag = diagnostics(offset, seed, epochs, peak_at) if noise_type != "none" else {}
    return RunResult(
        method_name=method[spec.control_mode],
        task_name=task,
        seed=seed,
        model_name="resnet18",
        dataset_name=task,
        config=config(spec, task=task, seed=seed, epochs=epochs, noise_type=noise_type, rate=rate),
        best_val_accuracy=max(vals),
        final_val_accuracy=vals[-1],
        final_train_loss=0.5,
        total_steps=epochs * 100,
        total_epochs=epochs,
        wall_clock_seconds=sum(times),
        estimated_flops=1e12 * epochs,
        accuracy_per_tflop=None,
        train_losses=[1.0 / (e + 1) for e in range(epochs)],
        train_accuracies=None,
        val_accuracies=vals,
        epoch_wall_clock_seconds=times,
        epoch_tflops=[1.0] * epochs,
        episode_logs=episode_logs(spec, seed, episodes=3 * epochs) if adaptive else None,
        controller_logs=None,
        diagnostics=diag,
    )


def write(result: RunResult, path: Path) -> Path:
    return save_run_result(result, path, hardware=HARDWARE)


# Offsets (accuracy fraction) per method; the tests recompute cells from these.
CLEAN = {
    "AdamW": (Spec(), 0.20),
    "AdamW + Cosine": (Spec(scheduler="cosine"), 0.22),
    "AdamW + Linear": (Spec(scheduler="linear"), 0.215),
    "AEES": (Spec("adaptive", lr=(0.5, 1.0, 2.0)), 0.225),
    "AEES + Cosine": (Spec("adaptive", scheduler="cosine", lr=(0.5, 1.0, 2.0)), 0.23),
    "AEES + Linear": (Spec("adaptive", scheduler="linear", lr=(0.5, 1.0, 2.0)), 0.24),
    "Fixed ×0.5": (Spec("adaptive", lr=(0.5,)), 0.21),
    "Fixed ×2.0": (Spec("adaptive", lr=(2.0,)), 0.18),
}
NOISY = {
    "Baseline": (Spec(), 0.05),
    "AEES": (Spec("adaptive", lr=(0.5, 1.0, 2.0)), 0.10),
    "Cosine": (Spec(scheduler="cosine"), 0.06),
    "Cosine + AEES": (Spec("adaptive", scheduler="cosine", lr=(0.5, 1.0, 2.0)), 0.09),
    "Fixed ×0.5": (Spec("adaptive", lr=(0.5,)), 0.071),
    "Fixed ×1.0": (Spec("adaptive", lr=(1.0,)), 0.04),
    "Fixed ×2.0": (Spec("adaptive", lr=(2.0,)), 0.03),
}
SEEDS = (0, 1, 2)
PEAK = {"clean": 10, "sym40": 5}


def _slug(label: str) -> str:
    return "".join(ch for ch in label.lower() if ch.isalnum())


def sgd(spec: Spec) -> Spec:
    return Spec(**{**spec.__dict__, "optimizer": "SGD"})


def write_cifar(root: Path, task: str = "cifar100") -> None:
    """Clean AdamW runs and sym40 AdamW + SGD runs (SGD offsets +0.01), seeds 0-2."""
    for label, (spec, off) in CLEAN.items():
        for seed in SEEDS:
            name = f"clean_{_slug(label)}_seed{seed}"
            write(
                make_result(spec, task=task, seed=seed, offset=off, peak_at=PEAK["clean"]),
                root / "clean" / f"{name}.json",
            )
    for opt, extra in (("AdamW", 0.0), ("SGD", 0.01)):
        for label, (spec, off) in NOISY.items():
            s = spec if opt == "AdamW" else sgd(spec)
            for seed in SEEDS:
                result = make_result(
                    s,
                    task=task,
                    seed=seed,
                    offset=off + extra,
                    peak_at=PEAK["sym40"],
                    noise_type="symmetric",
                    rate=0.4,
                )
                # thesis-style extensionless files in per-seed directories
                write(result, root / f"{task}_sym40_seed{seed}" / f"{opt.lower()}_{_slug(label)}")


def noisy_offset(label: str, opt: str) -> float:
    return NOISY[label][1] + (0.01 if opt == "SGD" else 0.0)


def write_ablations(root: Path) -> None:
    """sym20 CIFAR-100 (AdamW, 6 epochs, seeds 0-1): main AEES (context none, λ=0), AEES with
    λ=0.1, AEES trend (LR only) and AEES trend with noise candidates [0, 0.005]."""
    lr = (0.5, 1.0, 2.0)
    variants = {
        "main": (Spec("adaptive", lr=lr), 0.10),
        "penalty": (Spec("adaptive", lr=lr, penalty=0.1), 0.11),
        "trend": (Spec("adaptive", lr=lr, context="trend"), 0.08),
        "trend_noise": (Spec("adaptive", lr=lr, noise=(0.0, 0.005), context="trend"), 0.06),
    }
    for name, (spec, off) in variants.items():
        for seed in (0, 1):
            result = make_result(
                spec,
                seed=seed,
                epochs=6,
                peak_at=3,
                offset=off,
                noise_type="symmetric",
                rate=0.2,
            )
            write(result, root / "ablations" / f"{name}_seed{seed}.json")


ABLATION_OFFSETS = {"main": 0.10, "penalty": 0.11, "trend": 0.08, "trend_noise": 0.06}

TIMING = {
    # config -> (spec, steady epoch seconds per repeat)
    "baseline_none": (Spec(), (2.0, 2.2, 2.1)),
    "baseline_cosine": (Spec(scheduler="cosine"), (2.05, 2.1, 2.15)),
    "aees_lr_only_none": (Spec("adaptive", lr=(0.5, 1.0, 2.0)), (2.3, 2.4, 2.5)),
    "aees_noise_only_none": (Spec("adaptive", noise=(0.0, 0.01)), (2.6, 2.6, 2.6)),
}


def write_timing(root: Path) -> None:
    """digits timing runs: 3 repeats of seed 0 per config; epoch 1 takes 9 s (warm-up)."""
    for name, (spec, secs) in TIMING.items():
        for k, sec in enumerate(secs):
            result = make_result(spec, task="digits", seed=0, epochs=4, peak_at=2,
                                 epoch_times=[9.0, sec, sec, sec])  # fmt: skip
            write(result, root / "timing" / f"{name}_run{k + 1}.json")


NLP = {
    "AdamW": (Spec(), 0.40),
    "AdamW + warmup-linear": (Spec(scheduler="warmup_linear"), 0.41),
    "AEES": (Spec("adaptive", lr=(0.5, 1.0, 2.0), noise=(0.0, 0.005, 0.01)), 0.42),
    "AEES + warmup-linear": (
        Spec("adaptive", "AdamW", "warmup_linear", (0.5, 1.0, 2.0), (0.0, 0.005, 0.01)),
        0.43,
    ),
    "Fixed σ=0.005 + WL": (Spec("random", scheduler="warmup_linear", noise=(0.005,)), 0.435),
    "Random σ + WL": (Spec("random", scheduler="warmup_linear", noise=(0.0, 0.005, 0.01)), 0.44),
    "AEES-Noise + WL": (
        Spec("adaptive", scheduler="warmup_linear", noise=(0.0, 0.005, 0.01)),
        0.425,
    ),
}


def write_nlp(root: Path) -> None:
    """AG News sym20 (5 epochs, seeds 0-2): baselines, AEES-Dual with/without WL, fixed σ,
    random σ, AEES-Noise + WL."""
    for label, (spec, off) in NLP.items():
        for seed in SEEDS:
            result = make_result(spec, task="agnews", seed=seed, epochs=5, peak_at=3, offset=off,
                                 noise_type="symmetric", rate=0.2)  # fmt: skip
            slug = "".join(ch for ch in label if ch.isalnum())
            write(result, root / "nlp" / f"agnews_{slug}_seed{seed}.json")


def thesis_era_record(seed: int = 3) -> dict[str, Any]:
    """A thesis-era noisy CIFAR record written by hand: no schema_version, the old
    ``val_accuracy`` key, diagnostics inside config, no control mode in the config and a
    method name the current schema does not know; controller logs with three LR arms."""
    vals = [0.3, 0.45, 0.52, 0.5, 0.48]
    return {
        "method_name": "AdaptiveModeSGD",
        "task_name": "cifar100",
        "seed": seed,
        "model_name": "resnet18",
        "dataset_name": "CIFAR-100",
        "config": {
            "epochs": 5,
            "batch_size": 128,
            "lr": 0.1,
            "weight_decay": 1e-4,
            "lr_scheduler": "none",
            "episode_length": 200,
            "lr_candidates": [0.5, 1.0, 2.0],
            "noise_candidates": [0.0],
            "label_noise_type": "symmetric",
            "label_noise_rate": 0.4,
            "seed": seed,
            "hf_token": "hf_abcdefghijklmnopqrstuvwxyz0123",
            "diagnostics": {
                "final_subset_accuracies": {
                    "train_all_accuracy": 0.8,
                    "train_clean_accuracy": 0.85,
                    "train_corrupted_accuracy_vs_noisy_labels": 0.7,
                    "train_corrupted_accuracy_vs_clean_labels": 0.1,
                }
            },
        },
        "final_train_loss": 0.9,
        "total_steps": 500,
        "wall_clock_seconds": 50.0,
        "estimated_flops": None,
        "accuracy_per_tflop": None,
        "train_losses": [2.0, 1.5, 1.2, 1.0, 0.9],
        "train_accuracies": None,
        "val_accuracy": vals,
        "epoch_wall_clock_seconds": [12.0, 9.0, 10.0, 9.0, 10.0],
        "epoch_tflops": None,
        "episode_logs": {"selected_lr_values": [0.5, 1.0, 2.0], "episode_rewards": [0.1, 0.2, 0.0]},
        "controller_logs": {
            "lr_controller_logs": {"arm_values": [0.5, 1.0, 2.0], "controller_created": True},
            "noise_controller_logs": {"arm_values": [0.0], "controller_created": False},
        },
    }


def write_thesis_era(path: Path, seed: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(thesis_era_record(seed), indent=2))
    return path


def fmt_pm(values: list[float], digits: int = 2, scale: float = 100.0) -> str:
    """Independent "m ± s" (numpy mean, ddof=1 SD; SD 0 for one value)."""
    import numpy as np

    x = np.asarray(values, dtype=float) * scale
    sd = float(np.std(x, ddof=1)) if x.size > 1 else 0.0
    return f"{float(np.mean(x)):.{digits}f} ± {sd:.{digits}f}"


def read_csv(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def isclose(a: float, b: float, tol: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
