"""The device side of an AEES step, with no host sync: the LR multiplier and the step records.

* :func:`multiply_lrs` / :func:`restore_lrs`: the episode's LR multiplier applied to every param
  group for one optimizer step and undone afterwards; a tensor LR is scaled in place (the
  optimizer sees the same tensor at every step) and restored bit for bit from a buffer.
* :class:`StepRecords`: the open episode's per-step losses, ``GradScaler`` skip flags and update
  norms, kept on the device where they were produced and read back once, when the episode
  closes (:meth:`StepRecords.read`: one stack and transfer per device and dtype, then one
  ``all_reduce`` under ``torch.distributed``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from aees.distributed import average_across_ranks, resolve_group

Loss = Tensor | float


def multiply_lrs(
    groups: list[dict[str, Any]],
    saved: list[Any],
    mult: float,
    scaled: list[tuple[Tensor, Tensor]],
    buffers: dict[int, Tensor],
) -> None:
    """Set every group's LR to ``saved[i] * mult``; tensor LRs in place (see
    :func:`scale_tensor_lrs`), appending to ``scaled`` what :func:`restore_lrs` copies back."""
    scale_tensor_lrs(saved, mult, scaled, buffers)
    for g, lr in zip(groups, saved, strict=True):
        if not isinstance(lr, Tensor):
            g["lr"] = lr * mult


def restore_lrs(
    groups: list[dict[str, Any]], saved: list[Any] | None, scaled: list[tuple[Tensor, Tensor]]
) -> None:
    """Undo :func:`multiply_lrs` (also after it raised part way)."""
    if saved is not None:
        for g, lr in zip(groups, saved, strict=True):
            g["lr"] = lr
    with torch.no_grad():
        for lr, base in scaled:
            lr.copy_(base)


def scale_tensor_lrs(
    lrs: list[Any], mult: float, scaled: list[tuple[Tensor, Tensor]], buffers: dict[int, Tensor]
) -> None:
    """Multiply each distinct tensor LR in place; append (lr, buffer holding its base value).

    In place, so the optimizer sees the same tensor object (same storage) at every step:
    a compiled or CUDA-graph-captured step keeps its inputs and does not recompile when the
    arm changes. The base value is copied into a buffer (in ``buffers``, by the tensor's id)
    allocated once per tensor and copied back afterwards, so it is restored bit for bit (no
    division). A tensor shared by several groups (torch's defaults are shared) is scaled once.
    """
    seen: set[int] = set()
    with torch.no_grad():
        for lr in lrs:
            if not isinstance(lr, Tensor) or id(lr) in seen:
                continue
            seen.add(id(lr))
            buf = buffers.get(id(lr))
            fits = buf is not None and (buf.shape, buf.dtype, buf.device) == (
                lr.shape,
                lr.dtype,
                lr.device,
            )
            if not fits:
                buf = buffers[id(lr)] = torch.empty_like(lr, requires_grad=False)
            buf.copy_(lr)
            scaled.append((lr, buf))  # before mul_: restored even if mul_ raised
            lr.mul_(mult)
    if len(buffers) > len(seen):  # LR tensors the groups no longer hold
        for key in buffers.keys() - seen:
            del buffers[key]


class StepRecords:
    """The open episode's per-step records, still on the device where they were produced.

    ``losses`` holds tensors (detached) or floats, ``skipped`` the ``GradScaler`` skip flags
    (0-d tensors), ``norms`` the update norms (float64 0-d tensors). ``snapshot`` is the one
    persistent copy of the parameters that update norms need (``None`` until the first step
    that tracks them).
    """

    def __init__(self) -> None:
        self.losses: list[Loss] = []
        self.skipped: list[Tensor] = []
        self.norms: list[Tensor] = []
        self.snapshot: list[Tensor] | None = None

    def __len__(self) -> int:
        return len(self.losses)

    def take_snapshot(self, params: list[Tensor]) -> None:
        """Copy ``params`` into the snapshot (allocated once, again if the groups change)."""
        snap = self.snapshot
        if snap is None or len(snap) != len(params):
            snap = self.snapshot = [torch.empty_like(p) for p in params]
        torch._foreach_copy_(snap, params)

    def record_update_norm(self, params: list[Tensor]) -> None:
        """Append ‖θ_old − θ_new‖ (over all parameters) against the snapshot, on the device."""
        snap = self.snapshot
        assert snap is not None
        torch._foreach_sub_(snap, params)  # θ_old − θ_new, in the preallocated buffers
        norms = torch._foreach_norm(snap, 2, dtype=torch.float32)
        device = norms[0].device
        if any(n.device != device for n in norms):
            norms = [n.to(device) for n in norms]
        self.norms.append(torch.linalg.vector_norm(torch.stack(norms)).to(torch.float64))

    def read(self, process_group: Any) -> tuple[list[float], list[float], list[float]]:
        """The losses, skip flags and update norms as host floats.

        One stack and transfer per (device, dtype) involved; under ``torch.distributed`` the
        values are then averaged across the ranks of ``process_group`` with one ``all_reduce``.
        """
        tensors = [x for x in self.losses if isinstance(x, Tensor)] + self.skipped + self.norms
        by_kind: dict[tuple[torch.device, torch.dtype], list[int]] = {}
        for i, t in enumerate(tensors):
            by_kind.setdefault((t.device, t.dtype), []).append(i)
        values = [0.0] * len(tensors)
        for idx in by_kind.values():  # one stack + one transfer per (device, dtype); no casts
            host = torch.stack([tensors[i].reshape(()) for i in idx]).tolist()
            for i, v in zip(idx, host, strict=True):
                values[i] = float(v)
        it = iter(values)
        losses = [next(it) if isinstance(x, Tensor) else x for x in self.losses]
        skipped = [next(it) for _ in self.skipped]
        norms = [next(it) for _ in self.norms]
        group = resolve_group(process_group)
        if group is not None:
            n_l, n_s = len(losses), len(skipped)
            flat = average_across_ranks(losses + skipped + norms, group)
            losses, skipped, norms = flat[:n_l], flat[n_l : n_l + n_s], flat[n_l + n_s :]
        return losses, skipped, norms

    def clear(self) -> None:
        """Forget the records (the episode closed); the snapshot buffers are kept."""
        self.losses, self.skipped, self.norms = [], [], []

    def load(self, pending: dict[str, list[float]]) -> None:
        """Take the checked ``pending`` part of a state dict (host floats)."""
        self.losses = list(pending["losses"])
        self.skipped = [torch.tensor(v, dtype=torch.float64) for v in pending["scaler_skipped"]]
        self.norms = [torch.tensor(v, dtype=torch.float64) for v in pending["update_norms"]]
