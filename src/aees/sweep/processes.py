"""POSIX process control of the runs a sweep starts: each in its own process group, killed
with its parent (Linux), stopped with SIGTERM then SIGKILL after a grace period.
Standard library only.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "POLL_SECONDS",
    "RUN_ENVIRONMENT",
    "spawn_run",
    "stop_processes",
]

DEFAULT_GRACE_PERIOD = 10.0
POLL_SECONDS = 0.1
#: Set for every run: unbuffered output (logs follow the run live), no tqdm bars in log files.
RUN_ENVIRONMENT = {"PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
#: The lock file in the output root that keeps two sweeps off one output root.


def _death_signal_preexec() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGTERM when its parent dies (Linux), so runs
    never outlive a killed sweep or Ray worker; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


def spawn_run(
    command: Sequence[str], env: dict[str, str], log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Start a run in its own process group (so a terminal Ctrl-C reaches only the sweep, which
    then stops the run itself), output to ``log``."""
    return subprocess.Popen(
        list(command),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        process_group=0,
        preexec_fn=_death_signal_preexec(),
    )


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_processes(
    procs: Sequence[subprocess.Popen[bytes]], grace: float, kill_now: Callable[[], bool]
) -> None:
    """SIGTERM every process group, wait up to ``grace`` seconds (or until ``kill_now()``), then
    SIGKILL the rest and reap all."""
    for proc in procs:
        if proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(p.poll() is None for p in procs):
        if time.monotonic() >= deadline or kill_now():
            for proc in procs:
                if proc.poll() is None:
                    _signal_group(proc, signal.SIGKILL)
            break
        time.sleep(POLL_SECONDS)
    for proc in procs:
        proc.wait()
