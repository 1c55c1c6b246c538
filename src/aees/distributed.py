"""One reduction per episode under ``torch.distributed``, so that every rank decides alike.

Each rank feeds its own losses; when an episode closes, the per-step statistics of all ranks are
averaged with a single ``all_reduce`` and every rank then computes the same reward from the same
numbers, so the controllers (seeded alike) pick the same arms everywhere.
"""

from __future__ import annotations

import secrets
from typing import Any

import torch
import torch.distributed as dist


def resolve_group(process_group: Any) -> Any | None:
    """The group to reduce over, or ``None`` when running as a single process.

    ``None`` means the default group when ``torch.distributed`` is initialised with more than
    one rank; an explicit group is used as given.
    """
    if process_group is not None:
        return process_group
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.group.WORLD
    return None


def _collective_device(group: Any) -> torch.device:
    if dist.get_backend(group) == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def average_across_ranks(values: list[float], group: Any) -> list[float]:
    """The element-wise mean of ``values`` over the ranks of ``group`` (one all_reduce)."""
    if not values:
        return []
    t = torch.tensor(values, dtype=torch.float64, device=_collective_device(group))
    dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
    t /= dist.get_world_size(group)
    return t.tolist()


def shared_random_seed(group: Any | None) -> int:
    """A fresh 62-bit seed from OS entropy, broadcast from the group's first rank."""
    seed = secrets.randbits(62)
    if group is None:
        return seed
    t = torch.tensor([seed], dtype=torch.int64, device=_collective_device(group))
    src = dist.get_global_rank(group, 0) if group is not dist.group.WORLD else 0
    dist.broadcast(t, src=src, group=group)
    return int(t.item())
