"""Fast mode (docs/protocols.md §17): ``--compile``, ``--channels-last``, ``--cudnn-benchmark``,
``--tf32``, the opt-in departures from the thesis protocol that make a GPU epoch cheaper.

All off is the thesis protocol: every helper here then returns its input unchanged and touches
no global setting except the ones :func:`apply_backend_flags` sets explicitly (so in-process runs
one after another do not inherit each other's flags). The flags are recorded in the result's
``config`` and separate variants (:func:`aees.results.identity.protocol_spec`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = [
    "FAST_FIELDS",
    "apply_backend_flags",
    "compile_net",
    "fast_mode_problem",
    "to_memory_format",
]

#: The RunConfig fields of fast mode (besides ``precision``, which predates it).
FAST_FIELDS = (
    "compile",
    "compile_backend",
    "compile_mode",
    "channels_last",
    "cudnn_benchmark",
    "tf32",
)
DEFAULT_COMPILE_BACKEND = "inductor"


def _cuda_target(device: str) -> bool:
    """Whether ``--device`` resolves to a CUDA device on this machine."""
    if device.startswith("cuda"):
        return True
    return device == "auto" and torch.cuda.is_available()


def fast_mode_problem(config: Any) -> tuple[str, str] | None:
    """(flag, message) for a fast-mode combination that cannot work, else None.

    Refused rather than recorded as a no-op, so that no result claims a setting that did
    nothing: ``--tf32`` / ``--cudnn-benchmark`` off CUDA, ``--channels-last`` on a text task
    (no 4-D inputs), ``--compile-backend`` / ``--compile-mode`` without ``--compile``, an unknown
    compile backend.
    """
    if not config.compile:
        if config.compile_backend != DEFAULT_COMPILE_BACKEND:
            return "--compile-backend", "needs --compile"
        if config.compile_mode is not None:
            return "--compile-mode", "needs --compile"
    else:
        import torch._dynamo

        backends = torch._dynamo.list_backends(exclude_tags=())
        if config.compile_backend not in backends:
            known = ", ".join(sorted(backends))
            return "--compile-backend", f"must be one of {known}, got {config.compile_backend!r}"
    for flag, on in (("--tf32", config.tf32), ("--cudnn-benchmark", config.cudnn_benchmark)):
        if on and not _cuda_target(config.device):
            return flag, f"needs a CUDA device (it changes nothing on --device {config.device})"
    if config.channels_last and config.method is not None:
        return "--channels-last", f"is for image tasks (4-D inputs), not {config.task_name}"
    return None


def apply_backend_flags(config: Any) -> None:
    """Set cuDNN autotuning and TF32 matmuls as the run says; call after ``set_seed``.

    Off, the thesis settings stay: ``set_seed`` made cuDNN deterministic without autotuning, and
    matmuls are full fp32 (torch's default; cuDNN convolutions use TF32 under torch's default
    ``torch.backends.cudnn.allow_tf32 = True`` in both modes, as the thesis runs did).
    """
    if config.cudnn_benchmark and torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = False
    torch.backends.cuda.matmul.allow_tf32 = bool(config.tf32)
    if config.tf32:
        torch.backends.cudnn.allow_tf32 = True


def to_memory_format(obj: Any, channels_last: bool) -> Any:
    """``obj`` in channels-last layout when asked and it is a 4-D tensor (a model is moved as
    a whole); anything else, or the flag off, unchanged (the same object)."""
    if not channels_last:
        return obj
    if isinstance(obj, nn.Module):
        return obj.to(memory_format=torch.channels_last)
    if isinstance(obj, torch.Tensor) and obj.dim() == 4:
        return obj.contiguous(memory_format=torch.channels_last)
    return obj


def compile_net(net: nn.Module, config: Any) -> nn.Module:
    """``torch.compile`` of what the training step calls (the DDP wrapper when there is one),
    or ``net`` itself with ``--compile`` off.

    Only the training forward/backward is compiled: evaluation, FLOP counting and checkpoints use
    the bare module, so a checkpoint's state-dict keys are the same with and without
    ``--compile`` (no ``_orig_mod.`` prefix). The optimizer step is not compiled: AEES sets the
    LR as a Python float per arm, which a compiled step would specialise on (one recompile per
    arm) unless the LR were a tensor (docs/protocols.md §17).
    """
    if not config.compile:
        return net
    kwargs: dict[str, Any] = {"backend": config.compile_backend}
    if config.compile_mode is not None:
        kwargs["mode"] = config.compile_mode
    return torch.compile(net, **kwargs)
