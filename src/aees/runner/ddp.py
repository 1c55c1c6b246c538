"""A run's place in a ``torchrun`` job: joining the process group, the collectives the engine
uses, the result's ``distributed`` summary and the teardown.

Outside ``torchrun`` a run is rank 0 of 1 (:class:`Dist` with no backend) and none of the
collectives is called. Under ``torchrun`` every rank trains its shard with DDP and takes the same
AEES decisions (checked at the end: ``diagnostics.distributed.decisions_identical``); rank 0
evaluates, checkpoints and writes the one result (docs/protocols.md §14).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from aees.runner.config import RunConfig

__all__ = [
    "Dist",
    "all_reduce_sum",
    "broadcast_float",
    "distributed_summary",
    "finish_distributed",
    "init_distributed",
    "joins_torchrun_job",
]


@dataclass(frozen=True)
class Dist:
    """This process's place in a ``torchrun`` job (rank 0 of 1 without one)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.backend is not None  # in a process group, one rank included

    @property
    def main(self) -> bool:
        return self.rank == 0

    def collective_device(self, device: torch.device) -> torch.device:
        """Where collectives run: the run's device under NCCL, else the CPU (gloo)."""
        return device if self.backend == "nccl" else torch.device("cpu")


def joins_torchrun_job() -> bool:
    """Whether this process is a rank of a ``torchrun`` job that :func:`init_distributed` joins:
    ``WORLD_SIZE`` > 1, or any world size under ``torchrun`` itself."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return False
    return world > 1 or "TORCHELASTIC_RUN_ID" in os.environ


def init_distributed(config: RunConfig) -> Dist:
    """Join the ``torchrun`` job described by the environment, if any: ``WORLD_SIZE`` > 1, or
    any world size under ``torchrun`` itself (``--nproc_per_node=1`` is the single-GPU DDP smoke
    test of bench/gpu_smoke.py, and it must run the same NCCL path as a larger job).

    NCCL with one GPU per process (``cuda:LOCAL_RANK``) when CUDA is used, gloo on the CPU.
    """
    if not joins_torchrun_job():
        return Dist()
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = config.device != "cpu" and torch.cuda.is_available()
    owns = not dist.is_initialized()
    if owns:
        if cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), local_rank, dist.get_backend(), owns)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_float(value: float, device: torch.device) -> float:
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def _decision_digest(logs: Mapping[str, Any] | None) -> str | None:
    if logs is None:
        return None
    keys = ("selected_combined_names", "episode_rewards", "episode_start_steps")
    blob = json.dumps({k: logs.get(k) for k in keys}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def distributed_summary(
    dist_info: Dist, batch_size: int, aees_logs: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """World size and backend; whether every rank made the same AEES decisions (checked: a
    collective, so every rank calls it). None outside a process group."""
    if not dist_info.enabled:
        return None
    import torch.distributed as dist

    digests: list[Any] = [None] * dist_info.world
    dist.all_gather_object(digests, _decision_digest(aees_logs))
    return {
        "world_size": dist_info.world,
        "backend": dist_info.backend,
        "per_rank_batch_size": batch_size,
        "global_batch_size": batch_size * dist_info.world,
        "decisions_identical": len(set(digests)) == 1,
    }


def finish_distributed(dist_info: Dist) -> None:
    """Wait for every rank, then leave the process group if this run created it."""
    if dist_info.enabled:
        import torch.distributed as dist

        dist.barrier()
        if dist_info.owns_group:
            dist.destroy_process_group()
