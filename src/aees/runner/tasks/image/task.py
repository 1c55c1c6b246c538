"""Your own images: any image folder or torchvision on-disk dataset, any torchvision/timm
classifier (docs/protocols.md §4.6).

* Data: ``--data-dir`` in ImageFolder layout (``train/<class>/*.png``, optional ``val/`` and
  ``test/``) or a torchvision on-disk format read without downloading (``--dataset-format``,
  ``auto`` detects it; :mod:`aees.runner.tasks.image.formats`). Classes are the sorted folder
  names (or the dataset's classes). Images are decoded once into a uint8 cache file
  (``--cache-dir``, default ``<data-dir>/.aees-cache``; :mod:`aees.runner.tasks.image.cache`),
  keyed by the file list, sizes, mtimes and ``--image-size``.
* Splits: the data's own ``val/`` when present; otherwise ``--val-split N`` training images (a
  fixed split, seed 0, independent of ``--seed``; default 10 %) are held out. A ``test/`` split (or
  the format's test set) is evaluated at the final epoch and with the best-validation weights.
* Batches: device-resident with on-device crop/flip (as ``cifar100``) when every split fits in
  ``--memory-budget-mb``; otherwise a streaming ``DataLoader`` over the (memory-mapped) cache.
  Normalisation by the training split's own per-channel mean/std; grayscale is repeated to the
  model's input channels.
* Model: ``--model-name`` a torchvision classification builder (default ``resnet18``) or
  ``timm:<name>``, built untrained with the data's class count (Inception v3 and GoogLeNet
  without their auxiliary heads); ``--cifar-stem``; ``--pretrained PATH`` a local state_dict
  (``weights_only``; a head of another shape is re-initialised and logged). One forward of a
  blank image before training refuses a model the image size does not fit, naming the
  smallest size that does.
* Label noise: ``symmetric`` (thesis protocol), ``asymmetric`` as ``c -> (c + 1) mod C`` or by
  ``--label-noise-map FILE`` (JSON ``{src: dst}``, class names or indices).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aees.runner.config import ConfigError, RunConfig, UserError
from aees.runner.label_noise import (
    LabelCorruption,
    cifar_symmetric_noise,
    cyclic_asymmetric_noise,
    mapped_asymmetric_noise,
    no_label_noise,
)
from aees.runner.tasks import TaskSetup, task_info
from aees.runner.tasks.image.formats import ImageData, load_image_data
from aees.runner.tasks.image.models import (
    DEFAULT_MODEL,
    TIMM_PREFIX,
    build_model,
    check_model,
    input_channels,
    load_pretrained,
    model_problem,
)
from aees.runner.tasks.image.noise_map import parse_label_noise_map, read_label_noise_map
from aees.runner.tasks.image.pipeline import (
    ChannelNormalize,
    DeviceAugment,
    FlipOnly,
    InMemoryLoader,
    StreamingImages,
    channel_stats,
    fits_in_memory,
    holdout_split,
)

__all__ = ["SPLIT_SEED", "ImageTask"]

SPLIT_SEED = 0  # --val-split hold-out; fixed so every training seed sees the same split
DEFAULT_VAL_FRACTION = 0.1


def _log(config: RunConfig, line: str) -> None:
    if not config.quiet and os.environ.get("RANK", "0") == "0":
        print(line, flush=True)


class ImageTask:
    """``aees train image``: your own image data and a torchvision/timm classifier (its facts and
    options: its record in :mod:`aees.runner.tasks.registry`, :mod:`.options`)."""

    name = task_info("image").name
    dataset_name = task_info("image").dataset_name
    model_name = task_info("image").model_name

    def validate(self, config: RunConfig) -> None:
        opts = config.task_options
        if not config.data_dir:
            raise ConfigError("data_dir", "--data-dir is required for the image task")
        size, bad = opts.get("image_size"), opts["max_bad_images"]
        if size is not None and not 1 <= size <= 4096:
            raise ConfigError("image_size", f"--image-size must be in [1, 4096], got {size}")
        if not 0.0 <= bad <= 1.0:
            raise ConfigError("max_bad_images", f"--max-bad-images must be in [0, 1], got {bad:g}")
        if not opts["memory_budget_mb"] >= 0:
            raise ConfigError(
                "memory_budget_mb",
                f"--memory-budget-mb must be >= 0, got {opts['memory_budget_mb']:g}",
            )
        problem = model_problem(config.model_name or DEFAULT_MODEL)
        if problem is not None:
            raise ConfigError("model_name", problem)
        if opts["cifar_stem"] and (config.model_name or "").startswith(TIMM_PREFIX):
            raise ConfigError(
                "cifar_stem", "--cifar-stem applies to torchvision ResNet-family models"
            )
        pretrained, noise_map = opts.get("pretrained"), opts.get("label_noise_map")
        if pretrained is not None and not Path(pretrained).is_file():
            raise ConfigError("pretrained", f"--pretrained {pretrained}: no such file")
        if noise_map is not None:
            if config.label_noise_type != "asymmetric":
                raise ConfigError(
                    "label_noise_map", "--label-noise-map needs --label-noise-type asymmetric"
                )
            try:
                read_label_noise_map(noise_map)
            except ValueError as err:
                raise ConfigError("label_noise_map", str(err)) from None

    # -- build
    def build(self, config: RunConfig, device: torch.device) -> TaskSetup:
        data = _load(config)
        images, labels, val, test, split_info = _splits(config, data)
        clean = labels.tolist()
        corruption, mapping = self._label_noise(config, clean, data.class_names)
        noisy = torch.tensor(corruption.apply(clean), dtype=torch.int64)
        height, width = int(images.shape[2]), int(images.shape[3])
        model, channels, info = _model(config, data, height, width, n_train=len(labels))
        mean, std = channel_stats(images)
        normalize = ChannelNormalize(mean, std, channels)
        augment = _augment(config.task_options.get("augment", "crop-flip"), height, width)
        budget = float(config.task_options.get("memory_budget_mb", 4096.0))
        resident = fits_in_memory(data.nbytes(), budget)
        info.update(
            {
                "data_dir": str(data.root),
                "dataset_format": data.format,
                "class_names": list(data.class_names),
                "num_classes": len(data.class_names),
                "image_shape": [data.channels, height, width],
                "model_input_channels": channels,
                "normalization": {"mean": mean, "std": std, "source": "training split"},
                "split": split_info,
                "image_cache": dict(data.cache),
                "data_pipeline": "device-resident" if resident else "streaming",
                "skipped_images": {"count": len(data.skipped), "files": data.skipped[:1000]},
                "linked_outside_data_dir": data.linked_outside[:1000],
                "num_image_files": data.num_files,
            }
        )
        if mapping is not None:
            info["label_noise_mapping"] = mapping
        setup = TaskSetup(
            model=model,
            train_data=None,
            val_data=None,
            loss_fn=nn.functional.cross_entropy,
            corruption=corruption if corruption.enabled else None,
            clean_train_targets=clean,
            # the un-augmented training split in index order: the label-noise diagnostics'
            # fallback and what a schedule-free optimizer recomputes BatchNorm statistics on
            train_eval_data=StreamingImages(images, noisy, normalize),
            info=info,
            dataset_name=data.name,
        )
        if resident:

            def loader(x: torch.Tensor, y: torch.Tensor, **kw: Any) -> InMemoryLoader:
                return InMemoryLoader(
                    x, y, batch_size=config.batch_size, device=device, normalize=normalize, **kw
                )

            train_images = images.to(device)  # one device copy, shared by train and train-eval
            setup.train_loader = loader(
                train_images, noisy, shuffle=True, augment=augment, seed=config.seed
            )
            setup.val_loader = loader(*val)
            setup.test_loader = loader(*test) if test else None
            if corruption.enabled:
                setup.train_eval_loader = loader(train_images, noisy)
        else:
            setup.train_data = StreamingImages(images, noisy, normalize, augment)
            setup.val_data = StreamingImages(*val, normalize)
            setup.test_data = StreamingImages(*test, normalize) if test else None
        return setup

    def _label_noise(
        self, config: RunConfig, clean: list[int], class_names: tuple[str, ...]
    ) -> tuple[LabelCorruption, Any]:
        kind, rate, seed = config.label_noise_type, config.label_noise_rate, config.seed
        k = len(class_names)
        map_file = config.task_options.get("label_noise_map")
        if kind == "symmetric":
            return cifar_symmetric_noise(clean, rate, seed, num_classes=k), None
        if kind == "asymmetric" and map_file:
            try:
                table = parse_label_noise_map(read_label_noise_map(map_file), class_names)
            except ValueError as err:
                raise UserError(f"--label-noise-map {map_file}: {err}") from None
            mapping = {class_names[s]: class_names[d] for s, d in sorted(table.items())}
            return mapped_asymmetric_noise(clean, rate, seed, table, num_classes=k), mapping
        if kind == "asymmetric":
            return cyclic_asymmetric_noise(clean, rate, seed, num_classes=k), "c -> (c + 1) mod C"
        return no_label_noise(len(clean), seed=seed, num_classes=k), None


Pair = tuple[torch.Tensor, torch.Tensor]  # (uint8 images N x C x H x W, int64 labels)


def _load(config: RunConfig) -> ImageData:
    """``--data-dir`` decoded (or read from the cache), logged."""
    opts = config.task_options
    assert config.data_dir is not None  # validate() requires it
    data = load_image_data(
        config.data_dir,
        dataset_format=opts.get("dataset_format", "auto"),
        image_size=opts.get("image_size"),
        cache_dir=opts.get("cache_dir"),
        max_bad_fraction=opts.get("max_bad_images", 0.01),
        log=lambda line: _log(config, line),
    )
    cache = "read" if data.cache["hit"] else "built"
    _log(config, f"image data: {data.name} ({data.format}), cache {cache}: {data.cache['path']}")
    if data.skipped:
        _log(
            config,
            f"skipped {len(data.skipped)} undecodable image files, e.g. {data.skipped[0]}",
        )
    return data


def _splits(
    config: RunConfig, data: ImageData
) -> tuple[torch.Tensor, torch.Tensor, Pair, Pair | None, dict[str, Any]]:
    """Training images and labels, the validation pair (the data's own ``val/`` or a fixed
    ``--val-split`` hold-out), the test pair (or None) and what the result records of them."""
    images, labels = data.splits["train"]
    split_info: dict[str, Any] = {}
    if "val" in data.splits:
        if config.val_split is not None:
            raise UserError(f"--val-split: {data.root} has its own val/ split; drop --val-split")
        val = data.splits["val"]
        split_info["val_source"] = "val/"
    else:
        n_val = config.val_split
        if n_val is None:
            n_val = max(1, round(DEFAULT_VAL_FRACTION * len(labels)))
        if n_val >= len(labels):
            raise UserError(
                f"--val-split {n_val} leaves no training images ({len(labels)} in {data.root})"
            )
        train_idx, val_idx = holdout_split(len(labels), n_val, SPLIT_SEED)
        val = (images[val_idx], labels[val_idx])
        images, labels = images[train_idx], labels[train_idx]
        split_info.update({"val_source": "holdout", "seed": SPLIT_SEED})
    test = data.splits.get("test")
    split_info.update(
        {"train": len(labels), "val": len(val[1]), "test": len(test[1]) if test else 0}
    )
    return images, labels, val, test, split_info


def _model(
    config: RunConfig, data: ImageData, height: int, width: int, n_train: int
) -> tuple[nn.Module, int, dict[str, Any]]:
    """The model (``--pretrained`` loaded), its input channels and what the result records;
    refused in one line when the data's channels or image size do not fit it."""
    opts = config.task_options
    name = config.model_name or DEFAULT_MODEL
    num_classes = len(data.class_names)
    model = build_model(
        name, num_classes, cifar_stem=bool(opts.get("cifar_stem")), image_size=height
    )
    info: dict[str, Any] = {}
    if opts.get("pretrained"):
        info["pretrained"] = load_pretrained(model, opts["pretrained"])
        if info["pretrained"]["reinitialised"]:
            _log(
                config,
                f"--pretrained: re-initialised {', '.join(info['pretrained']['reinitialised'])}"
                f" (shape differs from the checkpoint's; {num_classes} classes here)",
            )
    channels = input_channels(model)
    if channels % data.channels != 0:
        raise UserError(
            f"--model-name {name} takes {channels}-channel input; the data has {data.channels}"
        )
    check_model(
        model,
        name,
        batch_size=config.batch_size,
        n_train=n_train,
        shape=(channels, height, width),
        num_classes=num_classes,
    )
    return model, channels, info


def _augment(kind: str, height: int, width: int) -> DeviceAugment | None:
    """The training augmentation ``--augment`` names (crop-flip needs square images)."""
    if kind == "none":
        return None
    if height != width and kind == "crop-flip":
        raise UserError(
            f"--augment crop-flip needs square images, these are {height}x{width}: "
            "pass --image-size N or --augment flip"
        )
    if kind == "flip":
        return FlipOnly()
    return DeviceAugment(size=height, padding=max(1, height // 8))
