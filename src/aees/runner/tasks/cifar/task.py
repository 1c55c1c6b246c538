"""CIFAR-100 / ResNet-18 with the CIFAR stem, the main thesis task (docs/protocols.md §4.1).

* Data: the official ``cifar-100-python`` pickles under ``--data-dir`` (default
  ``data/cifar100``; missing files end in one line naming the download command). All images live
  on the training device as one uint8 tensor; each training batch is cropped (4-pixel zero
  padding) and flipped per sample on the device, then normalised with the thesis mean/std
  (:mod:`aees.runner.tasks.image.pipeline`), so the input pipeline never waits on host workers.
* Validation: the thesis evaluates every epoch on the official test set (docs/protocols.md §4.1)
and that stays
  the default. ``--val-split N`` holds N training images out (a fixed split, seed 0, independent
  of ``--seed``) as the validation set; the test set is then evaluated at the final epoch and
  with the best-validation weights.
* Label noise: ``--label-noise-type symmetric|asymmetric --label-noise-rate r`` corrupts the
  training labels by the thesis protocols (docs/protocols.md §7), seeded with ``--seed``
  (:func:`aees.runner.label_noise.cifar100_label_noise`).
* Open-loop controls (``--control-mode uniform-random|frequency-matched``, docs/protocols.md §11)
are limited
  to the thesis regimes asym 0.2, sym 0.2 and sym 0.4 (the digits task has no such restriction).
* Model: torchvision ``resnet18(num_classes=100)`` with a 3x3 stride-1 stem and no max-pool;
  loss ``cross_entropy`` (mean, no smoothing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from aees.runner.config import OPEN_LOOP_MODES, ConfigError, RunConfig, UserError
from aees.runner.label_noise import cifar100_label_noise
from aees.runner.tasks import TaskSetup, task_info
from aees.runner.tasks.cifar.data import load_cifar100
from aees.runner.tasks.image.models import cifar_resnet18
from aees.runner.tasks.image.pipeline import DeviceAugment, InMemoryLoader, holdout_split

__all__ = ["DEFAULT_DATA_DIR", "SPLIT_SEED", "Cifar100Task", "CifarLoaders", "cifar100_loaders"]

DEFAULT_DATA_DIR = "data/cifar100"
SPLIT_SEED = 0  # --val-split hold-out; fixed so every training seed sees the same split
MODEL_NAMES = ("resnet18",)
NUM_TRAIN = 50_000


class Cifar100Task:
    """``aees train cifar100``: CIFAR-100, ResNet-18 (CIFAR stem), thesis flags and protocols."""

    name = task_info("cifar100").name
    dataset_name = task_info("cifar100").dataset_name
    model_name = task_info("cifar100").model_name

    def validate(self, config: RunConfig) -> None:
        if config.model_name is not None and config.model_name not in MODEL_NAMES:
            raise ConfigError(
                "model_name", f"--model-name must be one of {', '.join(MODEL_NAMES)} for cifar100"
            )
        if config.val_split is not None and config.val_split >= NUM_TRAIN:
            raise ConfigError(
                "val_split", f"--val-split must be < {NUM_TRAIN}, got {config.val_split}"
            )
        if config.control_mode in OPEN_LOOP_MODES:
            # thesis v-B: only the three noisy regimes have AEES source traces
            from aees.runner.open_loop import NOISE_REGIMES

            regime = (config.label_noise_type, config.label_noise_rate)
            if not any(
                regime[0] == kind and abs(regime[1] - rate) <= 1e-12
                for kind, rate in NOISE_REGIMES.values()
            ):
                raise ConfigError(
                    "control_mode",
                    f"--control-mode {config.control_mode} needs --label-noise-type/--label-noise-"
                    "rate asymmetric 0.2, symmetric 0.2 or symmetric 0.4, got "
                    f"{config.label_noise_type} {config.label_noise_rate:g}",
                )

    def load_data(self, data_dir: str) -> dict[str, Any]:
        """:func:`aees.runner.tasks.cifar.data.load_cifar100`, errors as one-line ``UserError``."""
        try:
            return load_cifar100(data_dir)
        except (FileNotFoundError, ValueError) as err:
            raise UserError(f"--data-dir: {err}") from None

    def build(self, config: RunConfig, device: torch.device) -> TaskSetup:
        data = self.load_data(config.data_dir or DEFAULT_DATA_DIR)
        images, labels = data["train_images"], data["train_labels"]
        info: dict[str, Any] = {"data_dir": str(data["root"])}
        val_images = val_labels = None
        if config.val_split is not None:
            if config.val_split >= len(labels):
                raise UserError(
                    f"--val-split {config.val_split} leaves no training images "
                    f"({len(labels)} in {data['root']})"
                )
            train_idx, val_idx = holdout_split(len(labels), config.val_split, SPLIT_SEED)
            val_images, val_labels = images[val_idx], labels[val_idx]
            images, labels = images[train_idx], labels[train_idx]
            info["split"] = {
                "seed": SPLIT_SEED,
                "train": len(train_idx),
                "val": len(val_idx),
                "test": len(data["test_labels"]),
            }

        clean = labels.tolist()
        corruption = cifar100_label_noise(
            clean, config.label_noise_type, config.label_noise_rate, config.seed
        )
        noisy = torch.tensor(corruption.apply(clean), dtype=torch.int64)

        def loader(x: torch.Tensor, y: torch.Tensor, **kw: Any) -> InMemoryLoader:
            return InMemoryLoader(x, y, batch_size=config.batch_size, device=device, **kw)

        train_images = images.to(device)  # one device copy, shared by train and train-eval
        train = loader(train_images, noisy, shuffle=True, augment=DeviceAugment(), seed=config.seed)
        test = loader(data["test_images"], data["test_labels"])
        if val_images is None:
            val, test_loader = test, None  # thesis protocol: "validation" = the test set
        else:
            assert val_labels is not None
            val, test_loader = loader(val_images, val_labels), test
        return TaskSetup(
            model=cifar_resnet18(),
            train_data=None,
            val_data=None,
            loss_fn=nn.functional.cross_entropy,
            train_loader=train,
            val_loader=val,
            test_loader=test_loader,
            train_eval_loader=loader(train_images, noisy) if corruption.enabled else None,
            corruption=corruption if corruption.enabled else None,
            clean_train_targets=clean,
            info=info,
        )


class CifarLoaders(NamedTuple):
    train: InMemoryLoader  # shuffled, augmented
    test: InMemoryLoader  # the thesis's "validation" set (docs/protocols.md §4.1)
    train_eval: (
        InMemoryLoader  # training images un-augmented, with indices (label-noise diagnostics)
    )


def cifar100_loaders(
    data: Mapping[str, Any],
    *,
    batch_size: int,
    device: str | torch.device,
    seed: int,
    train_labels: Tensor | None = None,
    drop_last: bool = False,
) -> CifarLoaders:
    """The three loaders of the thesis CIFAR runner from :func:`load_cifar100`'s dict.

    ``train_labels`` replaces the training targets (e.g. label-noised ones) in both training
    loaders. The training images are stored on the device once and shared by both.
    """
    device = torch.device(device)
    train_images = data["train_images"].to(device)
    labels = data["train_labels"] if train_labels is None else train_labels
    train = InMemoryLoader(
        train_images,
        labels,
        batch_size=batch_size,
        device=device,
        shuffle=True,
        augment=DeviceAugment(),
        drop_last=drop_last,
        seed=seed,
    )
    test = InMemoryLoader(
        data["test_images"], data["test_labels"], batch_size=batch_size, device=device
    )
    train_eval = InMemoryLoader(
        train_images, labels, batch_size=batch_size, device=device, return_indices=True
    )
    return CifarLoaders(train, test, train_eval)
