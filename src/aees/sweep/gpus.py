"""The GPUs of a local sweep (docs/protocols.md §15): that every GPU of ``--gpus`` exists
(:func:`check_gpus_exist`), free memory per GPU from ``nvidia-smi``, a running CUDA MPS daemon,
and which GPU the next run gets under ``--runs-per-gpu`` (:class:`GpuSlots`).
Standard library only: the sweep process never opens a CUDA context.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence

from aees.sweep.errors import SweepError

__all__ = [
    "DEFAULT_MIN_FREE_MIB",
    "GpuSlots",
    "check_gpus_exist",
    "check_runs_per_gpu",
    "mps_pipe_directory",
    "nvidia_smi_free_mib",
]

#: Free memory (MiB) a GPU must have before one more run starts on it under --runs-per-gpu.
DEFAULT_MIN_FREE_MIB = 4096
#: Where ``nvidia-cuda-mps-control -d`` puts its pipes unless told otherwise.
DEFAULT_MPS_PIPE_DIRECTORY = "/tmp/nvidia-mps"


def _torch_gpu_count() -> int | None:
    """CUDA devices as a fresh process sees them without ``CUDA_VISIBLE_DEVICES`` (the sweep
    opens no CUDA context of its own), or None if that cannot be told."""
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    try:
        out = subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=True,
        ).stdout
        return int(out.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def check_gpus_exist(gpus: Sequence[int], probe: Callable[[], dict[int, int] | None]) -> None:
    """:class:`SweepError` unless every GPU of ``--gpus`` exists: ``probe`` (``nvidia-smi``)
    lists them, else torch counts them in a child process. Checked before anything starts, so
    ``--gpus 0,1,2,3`` on a machine without them is one line, not every run failing."""
    if not gpus:
        return
    found = probe()
    if found is not None:
        indices, source = set(found), "nvidia-smi"
    else:
        count = _torch_gpu_count()
        if count is None:
            return  # cannot tell: the runs will say
        indices, source = set(range(count)), "torch"
    missing = [g for g in gpus if g not in indices]
    if missing:
        have = ("GPUs " + ",".join(map(str, sorted(indices)))) if indices else "no GPU"
        raise SweepError(
            f"--gpus {','.join(map(str, gpus))}: GPU {missing[0]} does not exist (this machine "
            f"has {have}, says {source}); name GPUs that exist, or leave out --gpus"
        )


def check_runs_per_gpu(runs_per_gpu: int | None, min_free_mib: int | None) -> None:
    """The ``--runs-per-gpu`` / ``--min-free-mib`` values are usable (SweepError otherwise)."""
    if runs_per_gpu is not None and (isinstance(runs_per_gpu, bool) or runs_per_gpu < 1):
        raise SweepError(f"--runs-per-gpu must be >= 1, got {runs_per_gpu}")
    if min_free_mib is not None:
        if runs_per_gpu is None:
            raise SweepError("--min-free-mib needs --runs-per-gpu")
        if isinstance(min_free_mib, bool) or min_free_mib < 0:
            raise SweepError(f"--min-free-mib must be >= 0, got {min_free_mib}")


def nvidia_smi_free_mib() -> dict[int, int] | None:
    """Free memory per GPU index (MiB) from ``nvidia-smi``, or None where it is missing or fails.

    Asked of ``nvidia-smi`` rather than ``torch.cuda.mem_get_info`` so the sweep process never
    opens a CUDA context of its own. Indices are ``nvidia-smi``'s (PCI bus order); the sweep sets
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` for its runs under ``--runs-per-gpu`` so both agree.
    """
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,memory.free", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        pairs = (line.split(",") for line in out.splitlines() if line.strip())
        return {int(index): int(float(free)) for index, free in pairs}
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def mps_pipe_directory() -> str | None:
    """The pipe directory of a running CUDA MPS control daemon, or None.

    CUDA clients join a running daemon on their own; the sweep only detects it (the ``control``
    pipe in ``CUDA_MPS_PIPE_DIRECTORY`` or ``/tmp/nvidia-mps``), says so and passes the directory
    on. Start one with ``nvidia-cuda-mps-control -d`` (docs/protocols.md §15).
    """
    directory = os.environ.get("CUDA_MPS_PIPE_DIRECTORY") or DEFAULT_MPS_PIPE_DIRECTORY
    return directory if os.path.exists(os.path.join(directory, "control")) else None


class GpuSlots:
    """Which GPU the next run gets under ``--runs-per-gpu K``.

    A run goes to the listed GPU with the fewest runs of this sweep (the first listed on a tie)
    that holds fewer than ``per_gpu`` of them and, when ``probe`` answers, has at least
    ``min_free_mib`` free; when none qualifies :meth:`acquire` returns None and the run waits.
    ``probe`` returns free MiB per GPU index, or None (no ``nvidia-smi``): the memory check is
    then skipped and only the count limits.
    """

    def __init__(
        self,
        gpus: Sequence[int],
        per_gpu: int,
        *,
        min_free_mib: int = DEFAULT_MIN_FREE_MIB,
        probe: Callable[[], dict[int, int] | None] = nvidia_smi_free_mib,
    ) -> None:
        self.gpus = list(gpus)
        self.per_gpu = per_gpu
        self.min_free_mib = min_free_mib
        self.probe = probe
        self.load = dict.fromkeys(self.gpus, 0)
        #: why the last acquire() found no GPU ("full" / "memory"), for the progress note
        self.waiting_for: str | None = None

    @property
    def capacity(self) -> int:
        """Runs this sweep may have on its GPUs at once."""
        return len(self.gpus) * self.per_gpu

    def acquire(self) -> int | None:
        """A GPU index for one more run (counted until :meth:`release`), or None to wait."""
        open_gpus = [g for g in self.gpus if self.load[g] < self.per_gpu]
        if not open_gpus:
            self.waiting_for = "full"
            return None
        free = self.probe() if self.min_free_mib > 0 else None
        if free is not None:
            open_gpus = [g for g in open_gpus if free.get(g, 0) >= self.min_free_mib]
            if not open_gpus:
                self.waiting_for = "memory"
                return None
        gpu = min(open_gpus, key=lambda g: (self.load[g], self.gpus.index(g)))
        self.load[gpu] += 1
        self.waiting_for = None
        return gpu

    def release(self, gpu: int) -> None:
        """The run on ``gpu`` ended."""
        self.load[gpu] -= 1
