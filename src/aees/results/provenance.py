"""Provenance: command line, git state, package versions, start time and hardware of a run."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from aees.results.hardware import probe_host
from aees.results.secrets import scrub_secrets

__all__ = [
    "DEFAULT_PROVENANCE_PACKAGES",
    "collect_provenance",
]


DEFAULT_PROVENANCE_PACKAGES = (
    "aees",
    "torch",
    "pulseopt",
    "torchvision",
    "transformers",
    "datasets",
    "numpy",
    "ray",
)


# --------------------------------------------------------------------------------------------
# Provenance
# --------------------------------------------------------------------------------------------


def _git_state(directory: Path) -> dict[str, Any]:
    """``{"revision": sha or None, "dirty": bool or None}`` of the repository holding
    ``directory``; both None outside a git checkout or without git."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(directory), *args],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    inside = git("rev-parse", "--is-inside-work-tree")
    if inside != "true":
        return {"revision": None, "dirty": None}
    revision = git("rev-parse", "HEAD") or None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"revision": revision, "dirty": None if status is None else bool(status)}


def _package_versions(names: Iterable[str]) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


_PROVENANCE_ENV_VARS = (
    "CUDA_VISIBLE_DEVICES",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "OMP_NUM_THREADS",
    "SLURM_JOB_ID",
    # the CPU kernel settings (aees demo pins them; docs/protocols.md §15.1)
    "MKL_NUM_THREADS",
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_CBWR",
    "MKL_ENABLE_INSTRUCTIONS",
)


def collect_provenance(
    argv: Sequence[str] | None = None,
    *,
    started_at: datetime | None = None,
    packages: Iterable[str] = DEFAULT_PROVENANCE_PACKAGES,
    repo_dir: str | os.PathLike[str] | None = None,
    include_hardware: bool = True,
) -> dict[str, Any]:
    """Where a run came from; call it when the run starts and store it in ``provenance``.

    Args:
        argv: the command line (default ``sys.argv``); secret flag values are redacted.
        started_at: the start time (default now); written as ISO 8601 in UTC.
        packages: distributions whose installed versions are recorded (None if absent).
        repo_dir: where to look for the git checkout (default: this package's directory, so
            the revision is that of the code that ran, not of the working directory).
        include_hardware: add the host block of :mod:`aees.results.hardware`.

    Returns:
        ``{"command", "command_str", "cwd", "python_executable", "python_version",
        "started_at", "git": {"revision", "dirty"}, "packages", "environment"[, "hardware"]}``.
    """
    command = [str(token) for token in (sys.argv if argv is None else argv)]
    start = started_at or datetime.now(UTC)
    if start.tzinfo is None:
        start = start.astimezone()
    provenance: dict[str, Any] = {
        "command": command,
        "command_str": shlex.join(command),
        "cwd": os.getcwd(),
        "python_executable": sys.executable,
        "python_version": sys.version.split()[0],
        "started_at": start.astimezone(UTC).isoformat(timespec="seconds"),
        "git": _git_state(Path(repo_dir) if repo_dir is not None else Path(__file__).parent),
        "packages": _package_versions(packages),
        "environment": {
            name: os.environ[name] for name in _PROVENANCE_ENV_VARS if name in os.environ
        },
    }
    if include_hardware:
        provenance["hardware"] = probe_host()
    return scrub_secrets(provenance)
