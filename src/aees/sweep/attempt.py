"""One attempt of one run, shared by the local executor and the Ray task: whether an existing
result decides the run (:func:`existing_result_verdict`), its command and paths now
(:func:`run_argv`, :func:`paths_problem`), its log header and checkpoint clean-up
(:func:`prepare_attempt`), and the verdict on its exit (:func:`finish_attempt`).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from aees.results import RunResultError, load_run_result
from aees.runner.config import EXIT_DIVERGED
from aees.sweep.flags import write_flags
from aees.sweep.manifest import PlannedRun, run_command
from aees.sweep.paths import PATH_FIELDS, path_problem, write_flag_problem
from aees.sweep.progress import utc_now
from aees.sweep.result_check import check_result

__all__ = [
    "existing_result_verdict",
    "finish_attempt",
    "paths_problem",
    "prepare_attempt",
    "run_argv",
    "wrote_valid_result",
]


def existing_result_verdict(
    run: PlannedRun, output: Path, *, resume: bool, overwrite: bool
) -> tuple[str, str] | None:
    """``(status, detail)`` if the existing result decides the run without running it, else None."""
    if not output.exists():
        return None
    problem = check_result(run, output)
    if problem is None:
        if resume:
            return "skipped", "a valid result already exists"
        if overwrite:
            return None
        return "failed", "a valid result exists and resume is off; add --overwrite to replace it"
    if overwrite:
        return None
    return (
        "failed",
        f"existing result does not match the plan ({problem}); it was kept -- rerun with "
        "--overwrite to replace it",
    )


def run_argv(run: PlannedRun, root: Path) -> list[str]:
    """What a run executes: its command rebuilt from its fields under ``root``, with this
    interpreter -- never the argv stored in the manifest (which loading checked against it)."""
    return run_command(run, root, python=sys.executable)


def paths_problem(run: PlannedRun, root: Path) -> str | None:
    """Why a run's paths may not be used under ``root`` now (a link may have changed since the
    manifest was loaded, or a Ray worker sees other storage), or None."""
    for key in PATH_FIELDS:
        value = getattr(run, key)
        problem = path_problem(root, value) if value is not None else None
        if problem is not None:
            return f"{key} {problem}; not run"
    for key in write_flags(run.task):
        problem = write_flag_problem(root, key, run.flags.get(key))
        if problem is not None:
            return f"{problem}; not run"
    return None


def _is_checkpoint_file(name: str, checkpoint_name: str) -> bool:
    """The checkpoint, or a temporary file of an interrupted atomic write of it."""
    return name == checkpoint_name or (
        name.startswith(f".{checkpoint_name}.") and name.endswith(".tmp")
    )


def _remove_checkpoint_dir(run: PlannedRun, root: Path) -> str | None:
    """Remove the run's checkpoint directory if it holds only the runner's checkpoint files;
    else keep it (whatever else is there was not written by the sweep) and return why.

    Files are unlinked one by one and the directory removed with ``rmdir``: nothing is removed
    recursively, so a directory that gains a file meanwhile is kept too.
    """
    if not run.checkpoint_dir:
        return None
    from aees.runner.engine import checkpoint_path  # the name the runner writes

    checkpoint_name = checkpoint_path(".").name
    directory = root / run.checkpoint_dir
    problem = path_problem(root, run.checkpoint_dir)
    if problem is not None:
        return f"kept {directory}: {problem}"
    if not os.path.lexists(directory):
        return None
    if directory.is_symlink() or not directory.is_dir():
        return f"kept {directory}: not a directory the sweep made"
    try:
        with os.scandir(directory) as entries:
            listing = [(entry.name, entry.is_file(follow_symlinks=False)) for entry in entries]
        foreign = sorted(
            name
            for name, is_file in listing
            if not (is_file and _is_checkpoint_file(name, checkpoint_name))
        )
        if foreign:
            shown = ", ".join(foreign[:5]) + (
                f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
            )
            return f"kept {directory}: it holds {shown}, which the sweep did not write"
        for name, _ in listing:
            os.unlink(directory / name)
        os.rmdir(directory)
    except OSError as err:
        return f"kept {directory}: cannot remove it ({err.strerror or err})"
    return None


def _note_in_log(log: Path | IO[bytes], message: str) -> None:
    """Append a ``# aees sweep:`` line to a run's log (best effort)."""
    line = f"# aees sweep: {message}\n".encode()
    if isinstance(log, Path):
        with contextlib.suppress(OSError), log.open("ab") as handle:
            handle.write(line)
    else:
        log.write(line)
        log.flush()


def prepare_attempt(
    run: PlannedRun, root: Path, command: Sequence[str], extra_env: dict[str, str], overwrite: bool
) -> IO[bytes]:
    """Create the run's directories, open the log (append) with the attempt header, and drop the
    run's own stale checkpoint when replacing a result. Returns the open log."""
    output, log = root / run.output, root / run.log
    output.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("ab")
    cuda = extra_env.get("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES"))
    header = [
        f"# aees sweep: {run.run_id}, attempt {run.attempts}, {utc_now()}, "
        f"host {socket.gethostname()}",
        f"command: {shlex.join(command)}",
        f"CUDA_VISIBLE_DEVICES={'<unset>' if cuda is None else cuda}",
        *(f"{k}={v}" for k, v in sorted(extra_env.items()) if k != "CUDA_VISIBLE_DEVICES"),
        "",
    ]
    handle.write(("\n".join(header) + "\n").encode())
    handle.flush()
    if overwrite and output.exists() and run.checkpoint_dir:
        # replacing a result means starting over, not resuming an old checkpoint
        kept = _remove_checkpoint_dir(run, root)
        if kept is not None:
            _note_in_log(handle, kept)
    return handle


def _last_log_line(log: Path, limit: int = 300) -> str | None:
    try:
        with log.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 8192))
            tail = handle.read().decode("utf-8", "replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        line = line.strip().split("\r")[-1].strip()
        if line and not line.startswith("#"):
            return line if len(line) <= limit else line[: limit - 3] + "..."
    return None


def finish_attempt(run: PlannedRun, root: Path, return_code: int) -> tuple[str, str | None]:
    """``(status, detail)`` of a finished attempt; removes the checkpoint of a completed run."""
    output, log = root / run.output, root / run.log
    if return_code == 0:
        problem = check_result(run, output)
        if problem is None:
            kept = _remove_checkpoint_dir(run, root)
            if kept is not None:
                _note_in_log(log, kept)
            return "completed", None
        return "failed", f"exited 0 but its result does not validate: {problem}"
    if return_code == EXIT_DIVERGED:
        # A run stopped by a non-finite loss wrote a valid result marked diverged: an outcome
        # of the plan (reports list it), not a failure to retry -- rerunning diverges again.
        diverged = _diverged_detail(run, output)
        if diverged is not None:
            kept = _remove_checkpoint_dir(run, root)
            if kept is not None:
                _note_in_log(log, kept)
            return "completed", diverged
    if return_code < 0:
        with contextlib.suppress(ValueError):
            return "failed", f"killed by {signal.Signals(-return_code).name}"
        return "failed", f"killed by signal {-return_code}"
    last = _last_log_line(log)
    return "failed", f"exit status {return_code}" + (f": {last}" if last else "")


def _diverged_detail(run: PlannedRun, output: Path) -> str | None:
    """``"diverged at step S (epoch E)"`` if ``output`` is a valid result of ``run`` marked
    diverged, else None."""
    if check_result(run, output) is not None:
        return None
    try:
        result = load_run_result(output)
    except RunResultError:
        return None
    if not result.diverged:
        return None
    return f"diverged at step {result.diverged_at_step} (epoch {result.diverged_at_epoch})"


def wrote_valid_result(run: PlannedRun, root: Path, since: float) -> bool:
    """Whether a stopped attempt had already written its (valid) result: it then counts as
    complete, whatever its exit status (it may be stopped while exiting)."""
    output = root / run.output
    try:
        fresh = output.stat().st_mtime >= since - 1.0
    except OSError:
        return False
    return fresh and check_result(run, output) is None
