"""Your own images: any image folder or torchvision on-disk dataset, any torchvision/timm
classifier (docs/protocols.md §4.6).

* Data: ``--data-dir`` in ImageFolder layout (``train/<class>/*.png``, optional ``val/`` and
  ``test/``) or a torchvision on-disk format read without downloading (``--dataset-format``,
  ``auto`` detects it; :mod:`aees.runner.images`). Classes are the sorted folder names (or the
  dataset's classes). Images are decoded once into a uint8 cache file (``--cache-dir``, default
  ``<data-dir>/.aees-cache``), keyed by the file list, sizes, mtimes and ``--image-size``.
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

import argparse
import difflib
import os
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from aees.runner.cifar import DeviceAugment
from aees.runner.config import RunConfig, UserError
from aees.runner.label_noise import (
    LabelCorruption,
    cifar_symmetric_noise,
    cyclic_asymmetric_noise,
    mapped_asymmetric_noise,
    no_label_noise,
    parse_label_noise_map,
    read_label_noise_map,
)
from aees.runner.tasks import TaskSetup

__all__ = ["DEFAULT_MODEL", "SPLIT_SEED", "ImageTask", "build_model", "model_names"]

DEFAULT_MODEL = "resnet18"
SPLIT_SEED = 0  # --val-split hold-out; fixed so every training seed sees the same split
DEFAULT_VAL_FRACTION = 0.1
TIMM_PREFIX = "timm:"
AUGMENTS = ("crop-flip", "flip", "none")
#: Models whose training-mode output adds auxiliary logits: built without them.
_AUX_HEADS = ("inception_v3", "googlenet")
#: The largest size the minimum-input-size search tries (each try is one blank forward).
_LARGEST_PROBE = 512


def _log(config: RunConfig, line: str) -> None:
    if not config.quiet and os.environ.get("RANK", "0") == "0":
        print(line, flush=True)


def model_names() -> list[str]:
    """torchvision's classification builders."""
    import torchvision

    return list(torchvision.models.list_models(module=torchvision.models))


def model_problem(name: str) -> str | None:
    """Why ``--model-name`` cannot be built (one line, with the closest names), or None."""
    if name.startswith(TIMM_PREFIX):
        try:
            import timm
        except ImportError:
            return f"--model-name {name}: timm is not installed (pip install timm)"
        arch = name[len(TIMM_PREFIX) :]
        if timm.is_model(arch):
            return None
        close = difflib.get_close_matches(arch, timm.list_models(), n=3)
        known = [TIMM_PREFIX + c for c in close]
    else:
        try:
            names = model_names()
        except ImportError:
            return "the image task needs torchvision: pip install 'aees[vision]'"
        if name in names:
            return None
        known = difflib.get_close_matches(name, names, n=3)
    hint = f"; closest: {', '.join(known)}" if known else ""
    return f"--model-name {name!r} is not a known classification model{hint}"


def build_model(
    name: str, num_classes: int, *, cifar_stem: bool = False, image_size: int | None = None
) -> nn.Module:
    """An untrained classifier with ``num_classes`` outputs (torchvision or ``timm:<name>``);
    ``UserError`` (one line) for a model that cannot be built for ``image_size``."""
    kwargs: dict[str, Any] = {}
    if name.startswith("vit_") and image_size is not None:
        patch = int(name.rsplit("_", 1)[-1])  # vit_b_16, vit_l_32, vit_h_14
        if image_size % patch:
            raise UserError(
                f"--model-name {name} takes images whose size is a multiple of its patch size "
                f"{patch} (at least {patch}x{patch}); these are {image_size}x{image_size}: pass "
                f"--image-size {max(patch, image_size - image_size % patch)}"
            )
        kwargs["image_size"] = image_size  # ViT's position embedding follows the input size
    if name in _AUX_HEADS:  # training-mode outputs would be (logits, aux logits) tuples
        kwargs.update(aux_logits=False, init_weights=True)
    try:
        if name.startswith(TIMM_PREFIX):
            import timm

            model = timm.create_model(
                name[len(TIMM_PREFIX) :], pretrained=False, num_classes=num_classes
            )
        else:
            import torchvision

            model = torchvision.models.get_model(
                name, weights=None, num_classes=num_classes, **kwargs
            )
    except (AssertionError, ValueError, RuntimeError) as err:
        raise UserError(f"--model-name {name}: cannot be built ({_first_line(err)})") from None
    if cifar_stem:
        from aees.runner.cifar import cifar_stem as apply_stem

        try:
            apply_stem(model)
        except ValueError as err:
            raise UserError(f"{err} (--model-name {name})") from None
    return model


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def input_channels(model: nn.Module) -> int:
    """The input channels of the model's first convolution (3 when it has none)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return int(module.in_channels)
    return 3


def load_pretrained(model: nn.Module, path: str) -> dict[str, Any]:
    """Load a local state_dict (``weights_only``: no code runs); tensors whose shape differs
    from the model's (the head) keep their fresh initialisation. Returns what was done."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"--pretrained {path}: no such file") from None
    except Exception as err:  # not a torch file, or refused by weights_only
        raise UserError(f"--pretrained {path}: not a loadable state_dict ({err})") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"--pretrained {path}: expected a state_dict of tensors")
    odd = next((k for k in state if not isinstance(k, str)), None)
    if odd is not None:
        raise UserError(
            f"--pretrained {path}: a state_dict's keys are parameter names, this one has "
            f"{type(odd).__name__} key {str(odd)[:40]!r}"
        )
    own = model.state_dict()
    state = {k.removeprefix("module."): v for k, v in state.items()}
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matched:
        raise UserError(f"--pretrained {path}: no tensor matches the model's parameters")
    reinit = sorted(k for k, v in state.items() if k in own and own[k].shape != v.shape)
    model.load_state_dict(matched, strict=False)
    return {
        "path": str(path),
        "loaded": len(matched),
        "reinitialised": reinit,
        "missing": sorted(set(own) - set(state)),
        "unexpected": sorted(set(state) - set(own)),
    }


def _forward_problem(model: nn.Module, shape: tuple[int, ...], num_classes: int) -> str | None:
    """Why one blank image of ``shape`` does not give ``num_classes`` logits, or None."""
    try:
        with torch.no_grad():
            out = model(torch.zeros(1, *shape))
    except (RuntimeError, ValueError, AssertionError, IndexError, TypeError) as err:
        return _first_line(err)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (1, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return f"its output is {got}, not 1 x {num_classes} logits"
    return None


def _smallest_input(model: nn.Module, channels: int, failed: int, num_classes: int) -> int | None:
    """The smallest square size above ``failed`` the model takes (blank forwards: doubling up
    to 512, then bisection), or None when none up to 512 does."""

    def works(size: int) -> bool:
        return _forward_problem(model, (channels, size, size), num_classes) is None

    low, high = failed, None  # low fails; high works
    size = max(2 * failed, failed + 1)
    while high is None and low < _LARGEST_PROBE:
        size = min(size, _LARGEST_PROBE)
        if works(size):
            high = size
        else:
            low, size = size, 2 * size
    while high is not None and high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if works(mid) else (mid, high)
    return high


def _check_model(
    model: nn.Module,
    name: str,
    *,
    batch_size: int,
    n_train: int,
    shape: tuple[int, int, int],
    num_classes: int,
) -> None:
    """One forward of a single blank image in eval mode (running statistics untouched), before
    training, refuses in one line:

    * a model the image size does not fit (Inception v3 below 75 x 75, SqueezeNet, ...), with
      the smallest square size that works when one up to 512 does;
    * a ``--batch-size`` whose last training batch (per rank under torchrun, whose shards are
      padded to equal size) holds one image when the model has a BatchNorm layer that then
      sees one value per channel: training would stop there with torch's error.
    """
    world = max(1, int(os.environ.get("WORLD_SIZE", "1")))
    per_rank = -(-n_train // world)
    single: list[str] = []
    hooks = [
        module.register_forward_hook(
            lambda mod, args, out, where=where: (
                single.append(where)
                if args[0][0].numel() == args[0].shape[1]  # one value per channel at batch 1
                else None
            )
        )
        for where, module in model.named_modules()
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d | nn.SyncBatchNorm)
    ]
    was_training = model.training
    try:
        model.eval()
        problem = _forward_problem(model, shape, num_classes)
        for hook in hooks:
            hook.remove()
        if problem is not None:
            c, h, w = shape
            smallest = _smallest_input(model, c, max(h, w), num_classes) if h == w else None
            hint = f"; it takes {smallest}x{smallest} and larger" if smallest else ""
            raise UserError(f"--model-name {name} cannot take {h}x{w} images ({problem}){hint}")
    finally:
        model.train(was_training)
        for hook in hooks:
            hook.remove()  # idempotent
    if per_rank % batch_size == 1 and single:
        where = f" per rank ({world} ranks)" if world > 1 else ""
        raise UserError(
            f"--batch-size {batch_size}: the last training batch of each epoch holds 1 of "
            f"{per_rank} images{where}, and BatchNorm layer {single[0]!r} cannot train on one "
            "value per channel; use another --batch-size"
        )


class ImageTask:
    """``aees train image``: your own image data and a torchvision/timm classifier."""

    name = "image"
    dataset_name = "image-folder"  # replaced by the data's name in build()
    model_name = DEFAULT_MODEL
    defaults: ClassVar[dict[str, Any]] = {}
    option_names: ClassVar[tuple[str, ...]] = (
        "dataset_format",
        "image_size",
        "cache_dir",
        "max_bad_images",
        "memory_budget_mb",
        "cifar_stem",
        "pretrained",
        "label_noise_map",
        "augment",
    )
    #: Its flags that name a place the run writes (a sweep keeps them in its output root).
    write_options: ClassVar[tuple[str, ...]] = ("cache_dir",)

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        from aees.runner.images import DATASET_FORMATS

        group = parser.add_argument_group("image data and model")
        group.add_argument("--dataset-format", default="auto", choices=DATASET_FORMATS)
        group.add_argument(
            "--image-size", type=int, default=None, help="resize to N x N when caching"
        )
        group.add_argument("--cache-dir", default=None, help="default <data-dir>/.aees-cache")
        group.add_argument(
            "--max-bad-images",
            type=float,
            default=0.01,
            help="refuse the data above this fraction of undecodable files (default 0.01)",
        )
        group.add_argument(
            "--memory-budget-mb",
            type=float,
            default=4096.0,
            help="device-resident batches up to this size of uint8 images, else streaming",
        )
        group.add_argument(
            "--cifar-stem", action="store_true", help="3x3 stride-1 stem, no max-pool"
        )
        group.add_argument("--pretrained", default=None, metavar="PATH", help="local state_dict")
        group.add_argument(
            "--label-noise-map",
            default=None,
            metavar="FILE",
            help="asymmetric noise by a JSON {src: dst} class map",
        )
        group.add_argument("--augment", default="crop-flip", choices=AUGMENTS)

    def validate(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
        if not args.data_dir:
            parser.error("--data-dir is required for the image task")
        if args.image_size is not None and not 1 <= args.image_size <= 4096:
            parser.error(f"--image-size must be in [1, 4096], got {args.image_size}")
        if not 0.0 <= args.max_bad_images <= 1.0:
            parser.error(f"--max-bad-images must be in [0, 1], got {args.max_bad_images:g}")
        if not args.memory_budget_mb >= 0:
            parser.error(f"--memory-budget-mb must be >= 0, got {args.memory_budget_mb:g}")
        problem = model_problem(args.model_name or DEFAULT_MODEL)
        if problem is not None:
            parser.error(problem)
        if args.cifar_stem and (args.model_name or "").startswith(TIMM_PREFIX):
            parser.error("--cifar-stem applies to torchvision ResNet-family models")
        if args.pretrained is not None and not Path(args.pretrained).is_file():
            parser.error(f"--pretrained {args.pretrained}: no such file")
        if args.label_noise_map is not None:
            if args.label_noise_type != "asymmetric":
                parser.error("--label-noise-map needs --label-noise-type asymmetric")
            try:
                read_label_noise_map(args.label_noise_map)
            except ValueError as err:
                parser.error(str(err))

    # -- build
    def build(self, config: RunConfig, device: torch.device) -> TaskSetup:
        from aees.runner.cifar import InMemoryLoader, holdout_split
        from aees.runner.images import (
            ChannelNormalize,
            StreamingImages,
            channel_stats,
            fits_in_memory,
            load_image_data,
        )

        opts = dict(config.task_options)
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
        _log(
            config, f"image data: {data.name} ({data.format}), cache {cache}: {data.cache['path']}"
        )
        if data.skipped:
            _log(
                config,
                f"skipped {len(data.skipped)} undecodable image files, e.g. {data.skipped[0]}",
            )
        self.dataset_name = data.name
        self.model_name = config.model_name or DEFAULT_MODEL
        images, labels = data.splits["train"]
        num_classes = len(data.class_names)
        split_info: dict[str, Any] = {}
        if "val" in data.splits:
            if config.val_split is not None:
                raise UserError(
                    f"--val-split: {data.root} has its own val/ split; drop --val-split"
                )
            val_images, val_labels = data.splits["val"]
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
            val_images, val_labels = images[val_idx], labels[val_idx]
            images, labels = images[train_idx], labels[train_idx]
            split_info.update({"val_source": "holdout", "seed": SPLIT_SEED})
        test = data.splits.get("test")
        split_info.update(
            {"train": len(labels), "val": len(val_labels), "test": len(test[1]) if test else 0}
        )

        clean = labels.tolist()
        corruption, mapping = self._label_noise(config, clean, data.class_names)
        noisy = torch.tensor(corruption.apply(clean), dtype=torch.int64)

        name = config.model_name or DEFAULT_MODEL
        height, width = int(images.shape[2]), int(images.shape[3])
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
        _check_model(
            model,
            name,
            batch_size=config.batch_size,
            n_train=len(labels),
            shape=(channels, height, width),
            num_classes=num_classes,
        )
        mean, std = channel_stats(images)
        normalize = ChannelNormalize(mean, std, channels)
        augment_kind = opts.get("augment", "crop-flip")
        augment = None
        if augment_kind != "none":
            if height != width and augment_kind == "crop-flip":
                raise UserError(
                    f"--augment crop-flip needs square images, these are {height}x{width}: "
                    "pass --image-size N or --augment flip"
                )
            if augment_kind == "flip":
                augment = _FlipOnly()
            else:
                augment = DeviceAugment(size=height, padding=max(1, height // 8))

        resident = fits_in_memory(data.nbytes(), float(opts.get("memory_budget_mb", 4096.0)))
        info.update(
            {
                "data_dir": str(data.root),
                "dataset_format": data.format,
                "class_names": list(data.class_names),
                "num_classes": num_classes,
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
            setup.val_loader = loader(val_images, val_labels)
            setup.test_loader = loader(*test) if test else None
            if corruption.enabled:
                setup.train_eval_loader = loader(train_images, noisy)
        else:
            setup.train_data = StreamingImages(images, noisy, normalize, augment)
            setup.val_data = StreamingImages(val_images, val_labels, normalize)
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


class _FlipOnly(DeviceAugment):
    """``--augment flip``: a per-sample horizontal flip (p = 0.5) with the loader's generator."""

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        flip = torch.rand(images.shape[0], generator=generator, device=generator.device) < 0.5
        flip = flip.to(images.device)[:, None, None, None]
        return torch.where(flip, images.flip(-1), images)
