"""The bookkeeping of one sweep, shared by both executors (:class:`Sweep`): the manifest and the
selected runs, their statuses, the locks, signals, early stop and the summary; and the checks of
the executors' options. The semantics are those of :mod:`aees.sweep.local` (see there).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from aees.sweep.errors import PlanError, SweepError
from aees.sweep.manifest import DONE_STATUSES, Manifest, PlannedRun, load_manifest, write_manifest
from aees.sweep.paths import PATH_FIELDS, tracking_server
from aees.sweep.progress import EARLY_STOP_RUNS, FailedRun, Progress, SweepSummary, utc_now

__all__ = [
    "ROOT_LOCK_NAME",
    "Sweep",
    "check_common",
    "check_local_caps",
    "default_workers",
    "new_sweep",
]

ROOT_LOCK_NAME = ".aees-sweep.lock"
#: A sweep stops starting runs when its first this-many finished runs all failed with the same


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
        run.started_at, run.finished_at, run.duration_s = utc_now(), None, None
        run.environment, run.host = dict(environment), host
        self.running[run.run_id] = run
        self.save()

    def mark_finished(
        self, run: PlannedRun, status: str, detail: str | None, return_code: int | None
    ) -> None:
        self.running.pop(run.run_id, None)
        run.status, run.detail, run.return_code = status, detail, return_code
        run.finished_at = utc_now()
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
        run.finished_at = utc_now()

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
