"""The offline task: scikit-learn's bundled 8x8 digits (1,797 real images, no download).

* Split: a fixed permutation (``torch.Generator().manual_seed(0)``, independent of ``--seed``)
  into 70 % train / 15 % validation / 15 % test (1,257 / 269 / 271). With ``--val-split N`` the
  test part stays the same and the first N of the remaining examples are the validation set.
* Inputs: pixel values / 16 in [0, 1], shape ``[1, 8, 8]``; everything lives in memory.
* Model: ``conv3x3(1→16)-ReLU-conv3x3(16→32)-ReLU-maxpool2-linear(512→10)`` (~7.5 k parameters).
* Label noise (training labels only; seeded with the training seed like the thesis CIFAR runner):
  ``symmetric`` is the thesis protocol with 10 classes (seeded shuffle, first round(N·rate)
  examples, new label uniform over the 9 other classes); ``asymmetric`` uses the same seeded
  selection and the cycle ``d → (d + 1) mod 10`` (a confusable-neighbour stand-in for CIFAR's
  within-superclass cycle; the noisy label never equals the true one).
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import TensorDataset

from aees.runner.config import ConfigError, RunConfig
from aees.runner.label_noise import (
    LabelCorruption,
    cifar_symmetric_noise,
    cyclic_asymmetric_noise,
    no_label_noise,
)
from aees.runner.tasks import TaskSetup, task_info

__all__ = [
    "DIGITS_NUM_CLASSES",
    "DigitsTask",
    "digits_asymmetric_noise",
    "load_digits_split",
    "load_digits_tensors",
]

DIGITS_NUM_CLASSES = 10
SPLIT_SEED = 0
DIGITS_ASYMMETRIC_MAPPING = "d -> (d + 1) mod 10"


def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits: ``x [N, 1, 8, 8]`` (pixels / 16) and ``y [N]``, in scikit-learn order.

    Reads the CSV that scikit-learn ships (``sklearn/datasets/data/digits.csv.gz``, the file
    ``load_digits`` parses) without importing scikit-learn, which saves ~1.5 s per process;
    falls back to ``sklearn.datasets.load_digits`` if the file is not where expected.
    """
    spec = importlib.util.find_spec("sklearn")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0], "datasets", "data", "digits.csv.gz") if locations else None
    if path is not None and path.is_file():
        with gzip.open(path, "rt", encoding="ascii") as handle:
            rows = [[float(v) for v in line.split(",")] for line in handle if line.strip()]
        table = torch.tensor(rows, dtype=torch.float64)
        pixels, labels = table[:, :-1], table[:, -1]
    else:  # pragma: no cover - unusual installs
        from sklearn.datasets import load_digits

        data = load_digits()
        pixels = torch.tensor(data.data, dtype=torch.float64)
        labels = torch.tensor(data.target, dtype=torch.float64)
    x = pixels.to(torch.float32).reshape(-1, 1, 8, 8) / 16.0
    return x, labels.to(torch.long)


def load_digits_split(val_split: int | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"train", "val", "test"}`` -> ``(x [N,1,8,8] float32, y [N] int64)``; fixed split."""
    x, y = load_digits_tensors()
    n = len(y)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    n_train, n_val = int(0.7 * n), int(0.15 * n)
    test = order[n_train + n_val :]
    pool = order[: n_train + n_val]
    if val_split is not None:
        n_val = val_split
        val, train = pool[:n_val], pool[n_val:]
    else:
        train, val = pool[:n_train], pool[n_train:]
    return {"train": (x[train], y[train]), "val": (x[val], y[val]), "test": (x[test], y[test])}


def digits_asymmetric_noise(targets: list[int], rate: float, seed: int) -> LabelCorruption:
    """Seeded shuffle selection (as the thesis CIFAR protocol), then ``d -> (d + 1) mod 10``:
    :func:`aees.runner.label_noise.cyclic_asymmetric_noise` with the digits' 10 classes."""
    return cyclic_asymmetric_noise(targets, rate, seed, num_classes=DIGITS_NUM_CLASSES)


def digits_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, DIGITS_NUM_CLASSES),
    )


class DigitsTask:
    """``aees train digits``: the embedded, offline default task (its facts: its record in
    :mod:`aees.runner.tasks`)."""

    name = task_info("digits").name
    dataset_name = task_info("digits").dataset_name
    model_name = task_info("digits").model_name

    def validate(self, config: RunConfig) -> None:
        if config.val_split is not None and config.val_split > 1000:
            raise ConfigError(
                "val_split",
                f"--val-split must be <= 1000 for digits (1,526 non-test), got {config.val_split}",
            )

    def build(self, config: RunConfig, device: torch.device) -> TaskSetup:
        split = load_digits_split(config.val_split)
        x_train, y_clean = split["train"]
        clean = y_clean.tolist()
        rate, kind = config.label_noise_rate, config.label_noise_type
        if kind == "symmetric":
            corruption = cifar_symmetric_noise(clean, rate, config.seed, num_classes=10)
        elif kind == "asymmetric":
            corruption = digits_asymmetric_noise(clean, rate, config.seed)
        else:
            corruption = no_label_noise(len(clean), seed=config.seed, num_classes=10)
        y_train = torch.tensor(corruption.apply(clean), dtype=torch.long)
        train = TensorDataset(x_train, y_train)
        info: dict[str, Any] = {
            "split": {
                "seed": SPLIT_SEED,
                "train": len(y_train),
                "val": len(split["val"][1]),
                "test": len(split["test"][1]),
            }
        }
        if kind == "asymmetric":
            info["label_noise_mapping"] = DIGITS_ASYMMETRIC_MAPPING
        model = digits_cnn().to(device)
        return TaskSetup(
            model=model,
            train_data=train,
            val_data=TensorDataset(*split["val"]),
            test_data=TensorDataset(*split["test"]),
            train_eval_data=train,
            loss_fn=nn.functional.cross_entropy,
            corruption=corruption if corruption.enabled else None,
            clean_train_targets=clean,
            info=info,
        )
