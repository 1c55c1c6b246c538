"""What both sweep executors share: the sweep bookkeeping (:class:`Sweep`), one attempt of one
run (its command, log, checkpoint clean-up and result check), progress and the summary.

The semantics are those of :mod:`aees.sweep.local` (see there).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from aees.results import RunResultError, load_run_result
from aees.runner.config import EXIT_DIVERGED
from aees.sweep.manifest import (
    DONE_STATUSES,
    PATH_FIELDS,
    Manifest,
    PlanError,
    PlannedRun,
    check_result,
    load_manifest,
    path_problem,
    run_command,
    tracking_server,
    write_flag_problem,
    write_flags,
    write_manifest,
)

__all__ = [
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_MIN_FREE_MIB",
    "EARLY_STOP_RUNS",
    "POLL_SECONDS",
    "RAY_INSTALL_HINT",
    "ROOT_LOCK_NAME",
    "RUN_ENVIRONMENT",
    "FailedRun",
    "GpuSlots",
    "Progress",
    "Sweep",
    "SweepError",
    "SweepSummary",
    "check_common",
    "check_gpus_exist",
    "check_local_caps",
    "check_runs_per_gpu",
    "default_workers",
    "existing_result_verdict",
    "finish_attempt",
    "mps_pipe_directory",
    "new_sweep",
    "nvidia_smi_free_mib",
    "paths_problem",
    "prepare_attempt",
    "run_argv",
    "spawn_run",
    "stop_processes",
    "wrote_valid_result",
]

RAY_INSTALL_HINT = "pip install 'aees[sweep]'"
DEFAULT_GRACE_PERIOD = 10.0
POLL_SECONDS = 0.1
#: Set for every run: unbuffered output (logs follow the run live), no tqdm bars in log files.
RUN_ENVIRONMENT = {"PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1"}
#: The lock file in the output root that keeps two sweeps off one output root.
ROOT_LOCK_NAME = ".aees-sweep.lock"
#: A sweep stops starting runs when its first this-many finished runs all failed with the same
#: error (a missing data set, no GPU, ...), unless ``--keep-going``.
EARLY_STOP_RUNS = 3
#: Failed runs listed one by one in the summary; the rest are counted.
LISTED_FAILURES = 10


class SweepError(ValueError):
    """A sweep that cannot start (bad manifest, options, missing Ray); one-line message."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


# --------------------------------------------------------------------------------------------
# Results of a sweep
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FailedRun:
    run_id: str
    detail: str
    log_path: str
    has_output: bool


@dataclass
class SweepSummary:
    """What a sweep did to the runs it was asked to run (the selected runs)."""

    manifest_path: str
    selected: int
    completed: int = 0
    skipped: int = 0
    failed: int = 0
    pending: int = 0
    interrupted_by: int | None = None
    elapsed_s: float = 0.0
    failed_runs: list[FailedRun] = field(default_factory=list)
    retry_command: str | None = None
    #: ``(error, log path)`` when the first runs all failed alike and the sweep stopped early
    stopped_early: tuple[str, str] | None = None

    @property
    def done(self) -> int:
        return self.completed + self.skipped

    @property
    def exit_code(self) -> int:
        """128 + signal if interrupted, 1 if any run failed, else 0."""
        if self.interrupted_by is not None:
            return 128 + self.interrupted_by
        return 1 if self.failed else 0

    def format(self) -> str:
        """The end-of-sweep report: a count line, failed runs, the retry command."""
        head = (
            f"sweep: {self.selected} runs: {self.completed} completed, {self.skipped} skipped "
            f"(already complete), {self.failed} failed, {self.pending} pending "
            f"({_duration(self.elapsed_s)})"
        )
        lines = [head]
        if self.interrupted_by is not None:
            lines.append(
                f"sweep: interrupted ({signal.Signals(self.interrupted_by).name}); "
                "rerun the same command to continue"
            )
        for failed in self.failed_runs[:LISTED_FAILURES]:
            lines.append(f"  FAILED {failed.run_id}: {failed.detail}")
            lines.append(f"         log: {failed.log_path}")
        if len(self.failed_runs) > LISTED_FAILURES:
            lines.append(
                f"  ... and {len(self.failed_runs) - LISTED_FAILURES} more failed runs "
                "(status and detail in the manifest, logs beside the first)"
            )
        if self.stopped_early is not None:
            error, log = self.stopped_early
            lines.append(
                f"sweep: stopped early: the first {EARLY_STOP_RUNS} runs all failed with the same "
                f"error ({error}; log: {log}); {self.pending} runs not started -- fix the cause "
                "and rerun the same command (--keep-going runs them all regardless)"
            )
        if self.retry_command:
            lines.append(f"retry the failed runs with: {self.retry_command}")
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------


class Progress:
    """Live done / running / failed counts on ``stream`` (default stderr).

    On a terminal one line is redrawn in place; otherwise a plain line is printed whenever the
    counts or the running set change. :meth:`note` prints a full line (e.g. a failure) above it.
    """

    def __init__(self, total: int, *, stream: IO[str] | None = None, enabled: bool = True) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty and isatty())
        self._last = ""

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # closed or broken stream: progress is best effort
            self.enabled = False

    def _draw(self, line: str) -> None:
        width = shutil.get_terminal_size((120, 20)).columns
        shown = line if len(line) < width else line[: max(width - 4, 10)] + "..."
        self._write("\r\x1b[K" + shown)

    def show(self, done: int, running: Sequence[str], failed: int) -> None:
        if not self.enabled:
            return
        line = f"sweep: {done}/{self.total} done, {len(running)} running, {failed} failed"
        if running:
            line += " | running: " + ", ".join(running)
        if line == self._last:
            return
        self._last = line
        if self.tty:
            self._draw(line)
        else:
            self._write(line + "\n")

    def note(self, message: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            self._write("\r\x1b[K" + message + "\n")
            if self._last:
                self._draw(self._last)
        else:
            self._write(message + "\n")

    def close(self) -> None:
        if self.enabled and self.tty and self._last:
            self._write("\n")
        self._last = ""


# --------------------------------------------------------------------------------------------
# One attempt of one run (shared by the local executor and the Ray task)
# --------------------------------------------------------------------------------------------


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
        f"# aees sweep: {run.run_id}, attempt {run.attempts}, {_now()}, "
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


# --------------------------------------------------------------------------------------------
# The sweep bookkeeping shared by both executors
# --------------------------------------------------------------------------------------------


class Sweep:
    """Manifest, selection, statuses, lock, progress and the summary of one sweep."""

    def __init__(
        self,
        manifest_path: str | os.PathLike[str],
        *,
        resume: bool,
        overwrite: bool,
        run_ids: Sequence[str] | None,
        output_root: str | os.PathLike[str] | None,
        retry_options: Sequence[str],
        progress: bool,
        stream: IO[str] | None,
        failed_only: bool = False,
        allow_tracking_uris: Sequence[str] = (),
        keep_going: bool = False,
    ) -> None:
        self.path = Path(manifest_path)
        try:
            self.manifest: Manifest = load_manifest(self.path)
        except PlanError as err:
            raise SweepError(str(err)) from None
        try:
            if output_root is not None:
                self.manifest.relocate(output_root)
                self.manifest.check_paths(str(self.path))
            self._check_reserved_paths()
        except PlanError as err:
            raise SweepError(str(err)) from None
        self.root = Path(self.manifest.output_root)
        self.resume, self.overwrite = resume, overwrite
        self.retry_options = [*retry_options, *([] if resume else ["--no-resume"])]
        if run_ids and failed_only:
            raise SweepError("--failed and --run-ids select runs both; give one of them")
        if failed_only:
            self.selected = [run for run in self.manifest.runs if run.status == "failed"]
        elif run_ids:
            known = {run.run_id for run in self.manifest.runs}
            unknown = [r for r in run_ids if r not in known]
            if unknown:
                raise SweepError(f"--run-ids: {unknown[0]!r} is not a run of {self.path}")
            wanted = set(run_ids)
            self.selected = [run for run in self.manifest.runs if run.run_id in wanted]
        else:
            self.selected = list(self.manifest.runs)
        self._check_tracking_servers(allow_tracking_uris)
        self.keep_going = keep_going
        #: (status, error with the run id masked, log) of the first attempts that finished
        self.first_outcomes: list[tuple[str, str, str]] = []
        self.stopped_early: tuple[str, str] | None = None
        self.stream = stream if stream is not None else sys.stderr
        self.progress = Progress(len(self.selected), stream=self.stream, enabled=progress)
        self.report = progress
        self.running: dict[str, PlannedRun] = {}
        self.started = time.monotonic()
        self.stop_signal: int | None = None
        self.kill_now = False
        self._lock_handle: IO[str] | None = None

    def _check_tracking_servers(self, allowed: Sequence[str]) -> None:
        """A run that would report to a tracking server (``--mlflow http(s)://...``) is refused
        unless the person running the sweep named that server (``--allow-tracking-uri``): a
        shared manifest must not send runs, their configs and metrics anywhere on its own."""
        names = {uri.rstrip("/") for uri in allowed}
        for run in self.selected:
            server = tracking_server(run.flags.get("mlflow"))
            if server is not None and server.rstrip("/") not in names:
                parts = urlsplit(server)
                shown = f"{parts.scheme}://{parts.hostname or ''}" + (
                    f":{parts.port}" if parts.port else ""
                )
                raise SweepError(
                    f"{self.path}: run {run.run_id}: --mlflow names the tracking server {shown} "
                    "(not a store inside the output root); allow it with "
                    "aees sweep --allow-tracking-uri URI"
                )

    @property
    def stopping(self) -> bool:
        """No new runs: a signal came, or the first runs all failed alike."""
        return self.stop_signal is not None or self.stopped_early is not None

    def _check_reserved_paths(self) -> None:
        """No run may write over the manifest or the sweep's lock files."""
        root = Path(self.manifest.output_root)
        reserved = {
            self.path.resolve(),
            self.path.with_name(f".{self.path.name}.lock").resolve(),
            (root / ROOT_LOCK_NAME).resolve(),
        }
        for run in self.manifest.runs:
            for key in PATH_FIELDS:
                value = getattr(run, key)
                if value is not None and (root / value).resolve() in reserved:
                    raise PlanError(
                        f"{self.path}: run {run.run_id}: {key} {value!r} is the manifest or a "
                        "sweep lock file"
                    )

    # -- lock and persistence
    @staticmethod
    @contextlib.contextmanager
    def _flock(lock_path: Path, busy: str) -> Iterator[None]:
        """Hold an exclusive ``flock`` on ``lock_path``; :class:`SweepError` ``busy`` if taken."""
        try:
            handle = lock_path.open("a")
        except OSError as err:
            raise SweepError(f"{lock_path}: cannot create lock file ({err.strerror})") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise SweepError(busy) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Lock the output root (copies of one manifest share it), then the manifest itself."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SweepError(
                f"{self.root}: cannot create the output root ({err.strerror or err})"
            ) from None
        root_busy = f"{self.root}: another sweep is running on this output root"
        manifest_busy = f"{self.path}: another sweep is running on this manifest"
        with (
            self._flock(self.root / ROOT_LOCK_NAME, root_busy),
            self._flock(self.path.with_name(f".{self.path.name}.lock"), manifest_busy),
        ):
            yield

    def save(self) -> None:
        try:
            write_manifest(self.manifest, self.path)
        except OSError as err:
            raise SweepError(f"{self.path}: cannot write manifest ({err.strerror or err})") from err

    # -- statuses
    def set_status(self, run: PlannedRun, status: str, detail: str | None) -> None:
        run.status, run.detail = status, detail

    def verdicts(
        self, decide: Callable[[list[PlannedRun]], list[tuple[str, str] | None]]
    ) -> list[PlannedRun]:
        """Apply resume/overwrite to the selected runs; returns those that must run."""
        todo: list[PlannedRun] = []
        for run, verdict in zip(self.selected, decide(self.selected), strict=True):
            if verdict is None:
                self.set_status(run, "pending", None)
                todo.append(run)
            else:
                self.set_status(run, *verdict)
                if verdict[0] == "failed":
                    self.progress.note(f"sweep: {run.run_id}: {verdict[1]}")
        self.save()
        self.show()
        return todo

    def mark_started(self, run: PlannedRun, environment: dict[str, str], host: str | None) -> None:
        run.attempts += 1
        run.status, run.detail, run.return_code = "running", None, None
        run.started_at, run.finished_at, run.duration_s = _now(), None, None
        run.environment, run.host = dict(environment), host
        self.running[run.run_id] = run
        self.save()

    def mark_finished(
        self, run: PlannedRun, status: str, detail: str | None, return_code: int | None
    ) -> None:
        self.running.pop(run.run_id, None)
        run.status, run.detail, run.return_code = status, detail, return_code
        run.finished_at = _now()
        if run.started_at is not None:
            started = datetime.fromisoformat(run.started_at)
            run.duration_s = round((datetime.now(UTC) - started).total_seconds(), 1)
        if status == "failed":
            self.progress.note(f"sweep: FAILED {run.run_id}: {detail} (log: {self.root / run.log})")
        self._watch_first_outcomes(run, status, detail)
        self.save()

    def _watch_first_outcomes(self, run: PlannedRun, status: str, detail: str | None) -> None:
        """Stop early once the first :data:`EARLY_STOP_RUNS` finished runs all failed with the
        same error (the run's own id masked): the rest would fail alike, for hours."""
        if len(self.first_outcomes) >= EARLY_STOP_RUNS:
            return
        error = (detail or "failed").replace(run.run_id, "<run>")
        self.first_outcomes.append((status, error, str(self.root / run.log)))
        if self.keep_going or len(self.first_outcomes) < EARLY_STOP_RUNS:
            return
        if all(s == "failed" for s, _, _ in self.first_outcomes) and (
            len({e for _, e, _ in self.first_outcomes}) == 1
        ):
            self.stopped_early = (detail or "failed", str(self.root / run.log))

    def mark_interrupted(self, run: PlannedRun) -> None:
        self.running.pop(run.run_id, None)
        if self.stop_signal is None and self.stopped_early is not None:
            why = "stopped early: the first runs all failed alike"
        else:
            why = f"interrupted ({signal.Signals(self.stop_signal or signal.SIGINT).name})"
        run.status, run.detail = "pending", f"{why}; rerun the sweep to continue"
        run.finished_at = _now()

    def show(self) -> None:
        done = sum(run.status in DONE_STATUSES for run in self.selected)
        failed = sum(run.status == "failed" for run in self.selected)
        self.progress.show(done, list(self.running), failed)

    # -- signals
    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
            self.progress.note(
                f"sweep: {signal.Signals(signum).name}: stopping the running runs "
                "(again to kill them now)"
            )
        else:
            self.kill_now = True

    @contextlib.contextmanager
    def signals(self) -> Iterator[None]:
        """Turn SIGINT / SIGTERM into a clean stop (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # -- the end
    def summary(self) -> SweepSummary:
        self.progress.close()
        counts = {status: 0 for status in ("completed", "skipped", "failed", "pending", "running")}
        for run in self.selected:
            counts[run.status] = counts.get(run.status, 0) + 1
        failed = [
            FailedRun(
                run.run_id,
                run.detail or "failed",
                str(self.root / run.log),
                (self.root / run.output).exists(),
            )
            for run in self.selected
            if run.status == "failed"
        ]
        retry = None
        if failed:
            parts = ["aees", "sweep", str(self.path), *self.retry_options, "--failed"]
            if any(f.has_output for f in failed):
                parts.append("--overwrite")
            retry = shlex.join(parts)
        summary = SweepSummary(
            manifest_path=str(self.path),
            selected=len(self.selected),
            completed=counts["completed"],
            skipped=counts["skipped"],
            failed=counts["failed"],
            pending=counts["pending"] + counts["running"],
            interrupted_by=self.stop_signal,
            elapsed_s=time.monotonic() - self.started,
            failed_runs=failed,
            retry_command=retry,
            stopped_early=self.stopped_early
            if self.stopped_early is not None and counts["pending"]
            else None,
        )
        if self.report:
            with contextlib.suppress(OSError, ValueError):
                print(summary.format(), file=self.stream, flush=True)
        return summary


def check_common(workers: int | None, grace_period: float) -> None:
    if workers is not None and (isinstance(workers, bool) or workers < 1):
        raise SweepError(f"--workers must be >= 1, got {workers}")
    if not grace_period >= 0:
        raise SweepError(f"--grace-period must be >= 0, got {grace_period}")


def check_local_caps(
    workers: int | None, gpus: Sequence[int], runs_per_gpu: int | None, cpus: int
) -> None:
    """``--workers`` and ``--runs-per-gpu`` within what this machine can run, as ``--num-workers``
    is capped: every run is a process that needs a CPU core, so at most ``cpus`` runs per GPU,
    and at most ``cpus`` runs at once (or the GPU places, #gpus x K, where there are more).
    Without the cap ``--workers 100000`` started every run of the plan at once."""
    if runs_per_gpu is not None and runs_per_gpu > cpus:
        raise SweepError(
            f"--runs-per-gpu must be <= {cpus} (the CPUs this sweep may use; each run is a "
            f"process that needs one), got {runs_per_gpu}"
        )
    places = len(gpus) * (runs_per_gpu or 1)
    cap = max(cpus, places)
    if workers is not None and workers > cap:
        where = f"the CPUs this sweep may use ({cpus})"
        if places > cpus:
            where = f"the GPU places, {len(gpus)} GPUs x {runs_per_gpu or 1} runs"
        raise SweepError(f"--workers must be <= {cap} ({where}), got {workers}")


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


# --------------------------------------------------------------------------------------------
# Local executor
# --------------------------------------------------------------------------------------------


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def new_sweep(
    manifest_path: str | os.PathLike[str],
    retry: list[str],
    resume: bool,
    overwrite: bool,
    run_ids: Sequence[str] | None,
    output_root: str | os.PathLike[str] | None,
    progress: bool,
    stream: IO[str] | None,
    *,
    failed_only: bool = False,
    allow_tracking_uris: Sequence[str] = (),
    keep_going: bool = False,
) -> Sweep:
    """The shared sweep state of both executors; ``retry`` = the executor's own retry flags."""
    if output_root is not None:
        retry = [*retry, "--output-root", os.fspath(output_root)]
    for uri in allow_tracking_uris:
        retry = [*retry, "--allow-tracking-uri", uri]
    if keep_going:
        retry = [*retry, "--keep-going"]
    return Sweep(
        manifest_path,
        resume=resume,
        overwrite=overwrite,
        run_ids=run_ids,
        output_root=output_root,
        retry_options=retry,
        progress=progress,
        stream=stream,
        failed_only=failed_only,
        allow_tracking_uris=allow_tracking_uris,
        keep_going=keep_going,
    )


# --------------------------------------------------------------------------------------------
# Several runs per GPU (docs/protocols.md §15)
# --------------------------------------------------------------------------------------------

#: Free memory (MiB) a GPU must have before one more run starts on it under --runs-per-gpu.
DEFAULT_MIN_FREE_MIB = 4096
#: Where ``nvidia-cuda-mps-control -d`` puts its pipes unless told otherwise.
DEFAULT_MPS_PIPE_DIRECTORY = "/tmp/nvidia-mps"


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
