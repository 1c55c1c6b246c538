"""FLOP accounting for the runners: measured per input shape, accumulated per epoch.

The thesis hard-coded its FLOP models (docs/protocols.md §8): a ResNet-18/CIFAR
forward pass was taken as 3.7e7 FLOPs per image and training as 3x forward. That constant is about
**30x too low** (docs/protocols.md §8): a CIFAR-stem ResNet-18 (3x3 stride-1 stem, no max-pool)
costs
~0.56 GMACs ~= 1.1 GFLOPs per 32x32 image. Its DistilBERT formula counts MACs (~2x low) and assumes
2 labels. So every CIFAR "TFLOP/s" and "accuracy per TFLOP" in the thesis is off by ~30x.

Here FLOPs are *counted* rather than assumed: :class:`MeasuredFlopModel` runs the model once per
distinct input shape under :class:`torch.utils.flop_counter.FlopCounterMode` (FLOPs = 2 x MACs for
matmuls and convolutions; element-wise ops, norms and softmax count zero) and caches the result.

* eval FLOPs per batch  = forward;
* train FLOPs per batch = forward + backward, where the backward computes parameter gradients (and
  the input gradients that those need) exactly as a training step does -- not a fixed 3x.

Every record names its method (:data:`FLOP_COUNTER_METHOD`), so results can tell measured numbers
from the thesis's analytic ones (:data:`THESIS_ANALYTIC_METHOD`, kept only to reproduce and compare
thesis-era result files: :func:`thesis_resnet18_cifar_batch_flops`,
:func:`thesis_distilbert_batch_flops`).

:class:`FlopAccumulator` keeps the thesis accumulator's behaviour (docs/protocols.md §8): train and
eval totals, a
current-epoch sum, and ``epoch_tflops``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from aees.runner.tasks import call_model

__all__ = [
    "FLOP_COUNTER_METHOD",
    "THESIS_ANALYTIC_METHOD",
    "THESIS_DISTILBERT_FFN",
    "THESIS_DISTILBERT_HIDDEN",
    "THESIS_DISTILBERT_LAYERS",
    "THESIS_DISTILBERT_NUM_LABELS",
    "THESIS_RESNET18_CIFAR_FORWARD_FLOPS",
    "THESIS_TRAIN_MULTIPLIER",
    "FlopAccumulator",
    "FlopRecord",
    "MeasuredFlopModel",
    "measure_flops",
    "thesis_distilbert_batch_flops",
    "thesis_resnet18_cifar_batch_flops",
]

FLOP_COUNTER_METHOD = "torch.utils.flop_counter"
THESIS_ANALYTIC_METHOD = "thesis-analytic"

ShapeKey = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class FlopRecord:
    """FLOPs of one batch of a given input shape.

    ``backward_flops`` is None when only the forward pass was measured (an eval-only shape).
    """

    method: str
    batch_size: int
    input_shapes: ShapeKey
    forward_flops: int
    backward_flops: int | None = None

    @property
    def eval_flops(self) -> int:
        """Forward FLOPs of the batch."""
        return self.forward_flops

    @property
    def train_flops(self) -> int | None:
        """Forward + backward FLOPs of the batch (None if the backward was not measured)."""
        if self.backward_flops is None:
            return None
        return self.forward_flops + self.backward_flops

    @property
    def forward_flops_per_example(self) -> float:
        return self.forward_flops / self.batch_size if self.batch_size else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (shapes as ``{path: [dims]}``)."""
        return {
            "method": self.method,
            "batch_size": self.batch_size,
            "input_shapes": {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.input_shapes
            },
            "forward_flops": self.forward_flops,
            "backward_flops": self.backward_flops,
            "eval_flops": self.eval_flops,
            "train_flops": self.train_flops,
        }


def _leaves(inputs: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(inputs, Mapping):
        for k, v in inputs.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(inputs, (tuple, list)):
        for i, v in enumerate(inputs):
            yield from _leaves(v, f"{path}.{i}" if path else str(i))
    else:
        yield path or "0", inputs


def _shape_key(inputs: Any) -> tuple[ShapeKey, int]:
    key: list[tuple[str, Any]] = []
    batch_size: int | None = None
    for path, leaf in _leaves(inputs):
        if isinstance(leaf, torch.Tensor):
            shape = tuple(leaf.shape)
            key.append((path, shape))
            if batch_size is None and shape:
                batch_size = shape[0]
        else:
            key.append((path, repr(leaf)))
    if batch_size is None:
        raise ValueError("inputs must contain at least one tensor with a batch dimension")
    return tuple(key), batch_size


def _default_scalar(output: Any) -> torch.Tensor:
    """A scalar whose gradient reaches every output: the loss if the model returned one."""
    if isinstance(output, torch.Tensor):
        return output.sum()
    for name in ("loss", "logits"):
        value = output.get(name) if isinstance(output, Mapping) else getattr(output, name, None)
        if isinstance(value, torch.Tensor):
            return value.sum()
    for _path, leaf in _leaves(output if isinstance(output, (tuple, list, Mapping)) else ()):
        if isinstance(leaf, torch.Tensor) and leaf.requires_grad:
            return leaf.sum()
    raise ValueError(
        f"output of type {type(output).__name__} has no tensor to differentiate; pass loss_fn"
    )


def _cuda_devices(model: nn.Module) -> list[int]:
    devices = {t.device.index for t in (*model.parameters(), *model.buffers()) if t.is_cuda}
    return sorted(d if d is not None else torch.cuda.current_device() for d in devices)


def _cpu_attention_formulas() -> dict[Any, Callable[..., int]]:
    """Formulas torch's counter lacks: the CPU flash-attention kernels that
    ``scaled_dot_product_attention`` dispatches to on the CPU (same count as the CUDA ones:
    ``QK^T`` and ``PV`` matmuls forward, their gradients backward)."""
    from torch.utils import flop_counter

    aten = torch.ops.aten
    out: dict[Any, Callable[..., int]] = {}
    forward = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    backward = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if forward is not None:

        def fwd(query_shape: Any, key_shape: Any, value_shape: Any, *_: Any, **__: Any) -> int:
            return int(flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape))

        out[forward] = fwd
    if backward is not None:

        def bwd(
            grad_out_shape: Any,
            query_shape: Any,
            key_shape: Any,
            value_shape: Any,
            *_: Any,
            **__: Any,
        ) -> int:
            return int(
                flop_counter.sdpa_backward_flop_count(
                    grad_out_shape, query_shape, key_shape, value_shape
                )
            )

        out[backward] = bwd
    return out


def _counter() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping=_cpu_attention_formulas())


def measure_flops(
    model: nn.Module,
    inputs: Any,
    *,
    backward: bool = True,
    loss_fn: Callable[[Any], torch.Tensor] | None = None,
) -> FlopRecord:
    """Count one batch's forward (and backward) FLOPs with ``FlopCounterMode``.

    ``inputs`` is what a training step passes: the model is called by
    :func:`aees.runner.tasks.call_model`, as the engine calls it (a mapping as keyword arguments,
    anything else -- a tuple included -- as the one argument).
    The backward is ``torch.autograd.grad`` of ``loss_fn(output)`` (default: the output's ``loss``
    or the sum of its logits -- losses themselves carry no counted FLOPs) with respect to the
    trainable parameters, so it costs what a training step's backward costs.

    The measurement leaves no trace: ``.grad`` is not touched, buffers (BatchNorm running
    statistics) are restored, and the CPU/CUDA RNG states are forked so dropout does not shift the
    training stream. Pass the bare module, not a ``DistributedDataParallel`` or compiled wrapper.
    """
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    key, batch_size = _shape_key(inputs)
    buffers = list(model.buffers())
    saved = [b.detach().clone() for b in buffers]
    params = [p for p in model.parameters() if p.requires_grad]
    backward_flops: int | None = None
    try:
        with torch.random.fork_rng(devices=_cuda_devices(model)):
            if not backward:
                with torch.no_grad(), _counter() as fwd:
                    call_model(model, inputs)
            else:
                with torch.enable_grad():
                    with _counter() as fwd:
                        output = call_model(model, inputs)
                    scalar = (loss_fn or _default_scalar)(output)
                    backward_flops = 0
                    if params and scalar.requires_grad:
                        with _counter() as bwd:
                            torch.autograd.grad(scalar, params, allow_unused=True)
                        backward_flops = int(bwd.get_total_flops())
                    del output, scalar
    finally:
        with torch.no_grad():
            for buf, old in zip(buffers, saved, strict=True):
                buf.copy_(old)
    return FlopRecord(
        method=FLOP_COUNTER_METHOD,
        batch_size=batch_size,
        input_shapes=key,
        forward_flops=int(fwd.get_total_flops()),
        backward_flops=backward_flops,
    )


class MeasuredFlopModel:
    """Per-batch FLOPs of one model, measured once per distinct input shape and cached.

    ``train_flops(batch)`` = forward + backward and ``eval_flops(batch)`` = forward, in FLOPs
    (2 x MACs). A short final batch or a new padded sequence length is a new shape and costs one
    extra (side-effect-free) measurement; every later batch of that shape is a dictionary lookup.
    """

    method = FLOP_COUNTER_METHOD

    def __init__(
        self, model: nn.Module, *, loss_fn: Callable[[Any], torch.Tensor] | None = None
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ValueError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.loss_fn = loss_fn
        self._cache: dict[ShapeKey, FlopRecord] = {}

    def record(self, inputs: Any, *, backward: bool = True) -> FlopRecord:
        """The record for ``inputs``' shape; measured (with backward if asked) on a miss."""
        key, _ = _shape_key(inputs)
        cached = self._cache.get(key)
        if cached is None or (backward and cached.backward_flops is None):
            cached = measure_flops(self.model, inputs, backward=backward, loss_fn=self.loss_fn)
            self._cache[key] = cached
        return cached

    def train_flops(self, inputs: Any) -> int:
        """Forward + backward FLOPs of a training batch shaped like ``inputs``."""
        flops = self.record(inputs, backward=True).train_flops
        if flops is None:  # unreachable: record(backward=True) always measures the backward
            raise RuntimeError("backward FLOPs were not measured")
        return flops

    def eval_flops(self, inputs: Any) -> int:
        """Forward FLOPs of an evaluation batch shaped like ``inputs``."""
        return self.record(inputs, backward=False).eval_flops

    @property
    def records(self) -> tuple[FlopRecord, ...]:
        """Every measured shape, in measurement order."""
        return tuple(self._cache.values())

    def clear(self) -> None:
        self._cache.clear()


def _check_flops(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return value


@dataclass
class FlopAccumulator:
    """Run-level FLOP totals (docs/protocols.md §8): train, eval, the open epoch, and per-epoch
    TFLOPs."""

    method: str = FLOP_COUNTER_METHOD
    train_flops: float = 0.0
    eval_flops: float = 0.0
    current_epoch_flops: float = 0.0
    epoch_tflops: list[float] = field(default_factory=list)

    def add_train_batch(self, flops: float) -> None:
        value = _check_flops(flops, "flops")
        self.train_flops += value
        self.current_epoch_flops += value

    def add_eval_batch(self, flops: float) -> None:
        value = _check_flops(flops, "flops")
        self.eval_flops += value
        self.current_epoch_flops += value

    def finish_epoch(self) -> float:
        """Close the epoch: append its TFLOPs (train + eval) to ``epoch_tflops`` and return them."""
        tflops = self.current_epoch_flops / 1e12
        self.epoch_tflops.append(tflops)
        self.current_epoch_flops = 0.0
        return tflops

    @property
    def total_flops(self) -> float:
        return self.train_flops + self.eval_flops

    @property
    def total_tflops(self) -> float:
        return self.total_flops / 1e12

    def state_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "train_flops": self.train_flops,
            "eval_flops": self.eval_flops,
            "current_epoch_flops": self.current_epoch_flops,
            "epoch_tflops": list(self.epoch_tflops),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> FlopAccumulator:
        return cls(
            method=str(state["method"]),
            train_flops=_check_flops(state["train_flops"], "train_flops"),
            eval_flops=_check_flops(state["eval_flops"], "eval_flops"),
            current_epoch_flops=_check_flops(state["current_epoch_flops"], "current_epoch_flops"),
            epoch_tflops=[_check_flops(v, "epoch_tflops") for v in state["epoch_tflops"]],
        )


# --------------------------------------------------------------------------- thesis (legacy)

#: Thesis forward FLOPs per CIFAR image for ResNet-18 -- ~30x too low (see the module docstring).
THESIS_RESNET18_CIFAR_FORWARD_FLOPS = 3.7e7
#: Thesis train/forward ratio.
THESIS_TRAIN_MULTIPLIER = 3.0
THESIS_DISTILBERT_LAYERS = 6
THESIS_DISTILBERT_HIDDEN = 768
THESIS_DISTILBERT_FFN = 3072
THESIS_DISTILBERT_NUM_LABELS = 2


def _check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be an int > 0, got {value!r}")
    return value


def thesis_resnet18_cifar_batch_flops(batch_size: int, *, train: bool) -> float:
    """Legacy thesis estimate (docs/protocols.md §8): ``B * 3.7e7`` eval, ``B * 3.7e7 * 3`` train.

    Only for reproducing or rescaling thesis-era result files; it undercounts ~30x.
    """
    b = _check_positive_int(batch_size, "batch_size")
    forward = b * THESIS_RESNET18_CIFAR_FORWARD_FLOPS
    return forward * THESIS_TRAIN_MULTIPLIER if train else forward


def thesis_distilbert_batch_flops(
    batch_size: int,
    seq_len: int,
    *,
    train: bool,
    num_labels: int = THESIS_DISTILBERT_NUM_LABELS,
) -> float:
    """Legacy thesis estimate (docs/protocols.md §8) for DistilBERT, effectively MAC-counted (~2x
    low).

    eval = ``B * [L * (4 T H^2 + 2 T^2 H + 2 T H F) + 2 T H + 2 H C]``; train = 3 x eval. The thesis
    used ``C = 2`` for AG News too.
    """
    b = _check_positive_int(batch_size, "batch_size")
    t = _check_positive_int(seq_len, "seq_len")
    c = _check_positive_int(num_labels, "num_labels")
    layers, h, f = THESIS_DISTILBERT_LAYERS, THESIS_DISTILBERT_HIDDEN, THESIS_DISTILBERT_FFN
    per_layer = 4 * t * h * h + 2 * t * t * h + 2 * t * h * f
    forward = float(b * (layers * per_layer + 2 * t * h + 2 * h * c))
    return forward * THESIS_TRAIN_MULTIPLIER if train else forward
