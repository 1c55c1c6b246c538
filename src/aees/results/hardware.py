"""The hardware block written into ``runtime_metrics["hardware"]`` and ``provenance["hardware"]``.

It describes the machine a run used: host, Python and torch versions, CUDA / cuDNN, every visible
GPU (name, memory, compute capability), the CPU model and the distributed world size. Probing never
fails on CPU-only machines, or without torch: unknown values are ``None`` (or ``0`` / ``[]`` for
counts and lists), so a result can always be saved.

``torch`` is imported lazily, inside :func:`probe_host`, so importing this module (and therefore
``aees.results``) stays cheap for reporting code that only reads result JSON.

The key set is the thesis one (``hostname``, ``platform``, ``python_version``, ``torch_version``,
``cuda_available``, ``torch_cuda_version``, ``cudnn_version``, ``gpu_count``, ``gpu_names``,
``gpu_total_memory_mb``, ``current_device_index``, ``current_device_name`` and the
``*_from_config`` fields), plus ``accelerator``, ``device_name``, ``gpu_compute_capabilities``,
``cpu_model``, ``cpu_count``, ``world_size`` and ``rank``.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from collections.abc import Mapping
from typing import Any

__all__ = [
    "CONFIG_HARDWARE_KEYS",
    "collect_hardware",
    "cpu_model",
    "hardware_from_config",
    "probe_host",
    "world_size_and_rank",
]

#: ``hardware`` key -> config keys tried in order (the first present one wins).
CONFIG_HARDWARE_KEYS: dict[str, tuple[str, ...]] = {
    "device_from_config": ("device",),
    "num_workers_from_config": ("num_workers",),
    "pin_memory_from_config": ("pin_memory",),
    "mixed_precision_from_config": ("mixed_precision", "amp", "precision"),
    "bf16_from_config": ("bf16",),
    "fp16_from_config": ("fp16",),
}


def cpu_model() -> str | None:
    """The CPU model name (``/proc/cpuinfo`` on Linux, ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def world_size_and_rank(torch_module: Any = None) -> tuple[int, int]:
    """``(world_size, rank)``: from an initialised ``torch.distributed``, else the torchrun
    environment variables (``WORLD_SIZE``, ``RANK``), else ``(1, 0)``."""
    if torch_module is not None:
        try:
            dist = torch_module.distributed
            if dist.is_available() and dist.is_initialized():
                return int(dist.get_world_size()), int(dist.get_rank())
        except Exception:  # an odd torch build must not stop a result from being saved
            pass
    world = _env_int("WORLD_SIZE")
    rank = _env_int("RANK")
    return (world if world and world > 0 else 1), (rank if rank is not None and rank >= 0 else 0)


def _torch_block() -> dict[str, Any]:
    block: dict[str, Any] = {
        "torch_version": None,
        "cuda_available": False,
        "torch_cuda_version": None,
        "cudnn_version": None,
        "gpu_count": 0,
        "gpu_names": [],
        "gpu_total_memory_mb": [],
        "gpu_compute_capabilities": [],
        "current_device_index": None,
        "current_device_name": None,
        "accelerator": "cpu",
        "cpu_capability": None,
    }
    try:
        import torch
    except Exception:
        block["world_size"], block["rank"] = world_size_and_rank(None)
        return block

    block["torch_version"] = str(torch.__version__)
    # The SIMD level of torch's CPU kernels (AVX2, AVX512, ...): CPU results are bit-identical
    # only between machines where it (and the torch build) agree; see the README's caveats.
    try:
        block["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except Exception:
        block["cpu_capability"] = None
    block["torch_cuda_version"] = getattr(torch.version, "cuda", None)
    try:
        if torch.backends.cudnn.is_available():
            block["cudnn_version"] = torch.backends.cudnn.version()
    except Exception:
        block["cudnn_version"] = None
    try:
        cuda_available = bool(torch.cuda.is_available())
    except Exception:
        cuda_available = False
    block["cuda_available"] = cuda_available
    if cuda_available:
        block["accelerator"] = "cuda"
        try:
            count = int(torch.cuda.device_count())
        except Exception:
            count = 0
        names: list[str] = []
        memory_mb: list[int] = []
        capabilities: list[str | None] = []
        for index in range(count):
            try:
                props = torch.cuda.get_device_properties(index)
                names.append(str(props.name))
                memory_mb.append(int(props.total_memory / 2**20))
                capabilities.append(f"{props.major}.{props.minor}")
            except Exception:
                names.append(f"cuda:{index}")
                memory_mb.append(0)
                capabilities.append(None)
        block["gpu_count"] = count
        block["gpu_names"] = names
        block["gpu_total_memory_mb"] = memory_mb
        block["gpu_compute_capabilities"] = capabilities
        try:
            current = int(torch.cuda.current_device())
        except Exception:
            current = None
        block["current_device_index"] = current
        if current is not None and 0 <= current < len(names):
            block["current_device_name"] = names[current]
    else:
        try:
            mps = getattr(torch.backends, "mps", None)
            if mps is not None and mps.is_available():
                block["accelerator"] = "mps"
        except Exception:
            pass
    block["world_size"], block["rank"] = world_size_and_rank(torch)
    return block


def probe_host() -> dict[str, Any]:
    """Describe this machine and its software (no config fields). Never raises."""
    try:
        hostname: str | None = socket.gethostname()
    except OSError:
        hostname = None
    cpu = cpu_model()
    block: dict[str, Any] = {
        "hostname": hostname,
        "platform": platform.platform(),
        "python_version": sys.version.split()[0],
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
    }
    block.update(_torch_block())
    block["device_name"] = block["current_device_name"] or cpu
    return block


def hardware_from_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``*_from_config`` fields: what the run configuration asked for (device, loader
    workers, pinned memory, precision). Missing keys give ``None``."""
    config = config if isinstance(config, Mapping) else {}
    block: dict[str, Any] = {}
    for out_key, candidates in CONFIG_HARDWARE_KEYS.items():
        block[out_key] = next((config[key] for key in candidates if key in config), None)
    return block


def collect_hardware(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The full hardware block: :func:`probe_host` plus :func:`hardware_from_config`."""
    return {**probe_host(), **hardware_from_config(config)}
