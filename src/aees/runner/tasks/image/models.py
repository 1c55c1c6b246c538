"""The ``image`` task's models: torchvision/timm classifiers, built untrained, the CIFAR stem,
a local ``--pretrained`` state_dict, and the one blank forward that refuses a model the image size
does not fit (docs/protocols.md §4.1, §4.6).

Imports torch at module import; torchvision and timm only inside the functions that build a model.
"""

from __future__ import annotations

import difflib
import os
from typing import Any

import torch
from torch import nn

from aees.runner.cifar100_classes import CIFAR100_NUM_CLASSES
from aees.runner.config import UserError

__all__ = [
    "DEFAULT_MODEL",
    "TIMM_PREFIX",
    "build_model",
    "check_model",
    "cifar_resnet18",
    "input_channels",
    "load_pretrained",
    "model_names",
    "model_problem",
    "with_cifar_stem",
]

DEFAULT_MODEL = "resnet18"
TIMM_PREFIX = "timm:"
#: Models whose training-mode output adds auxiliary logits: built without them.
_AUX_HEADS = ("inception_v3", "googlenet")
#: The largest size the minimum-input-size search tries (each try is one blank forward).
_LARGEST_PROBE = 512


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
        try:
            with_cifar_stem(model)
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


def check_model(
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


def cifar_resnet18(num_classes: int = CIFAR100_NUM_CLASSES) -> nn.Module:
    """torchvision ResNet-18, untrained, with the CIFAR stem (docs/protocols.md §4.1).

    ``conv1`` is ``Conv2d(3, 64, 3, stride=1, padding=1, bias=False)`` and ``maxpool`` is
    ``Identity``, so a 32 x 32 input reaches the last stage at 4 x 4.
    """
    try:
        from torchvision.models import resnet18
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the CIFAR-100 task needs torchvision: pip install 'aees[vision]'"
        ) from exc
    return with_cifar_stem(resnet18(weights=None, num_classes=num_classes))


def with_cifar_stem(model: nn.Module) -> nn.Module:
    """``model`` (a ResNet-family network: ``conv1`` + ``maxpool``) with the CIFAR stem, in place.

    ``conv1`` becomes a 3x3 stride-1 convolution with the same channels (no bias when the
    original had none) and ``maxpool`` an ``Identity``, so small inputs keep their resolution
    (docs/protocols.md §4.1, §4.6). ``ValueError`` for a model without that stem.
    """
    conv, pool = getattr(model, "conv1", None), getattr(model, "maxpool", None)
    if not isinstance(conv, nn.Conv2d) or not isinstance(pool, nn.Module):
        raise ValueError(
            f"--cifar-stem needs a ResNet-style stem (conv1 + maxpool); {type(model).__name__} "
            "has none"
        )
    model.conv1 = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=3,
        stride=1,
        padding=1,
        bias=conv.bias is not None,
    )
    model.maxpool = nn.Identity()
    return model
