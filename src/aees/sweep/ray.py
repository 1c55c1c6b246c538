"""The Ray executor: the semantics of :func:`aees.sweep.local.run_local` on a Ray cluster.

Ray is optional (``pip install 'aees[sweep]'``) and imported only when :func:`run_ray` runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from aees.sweep.attempt import (
    existing_result_verdict,
    finish_attempt,
    paths_problem,
    prepare_attempt,
    run_argv,
)
from aees.sweep.bookkeeping import Sweep, check_common, new_sweep
from aees.sweep.errors import SweepError
from aees.sweep.gpus import check_runs_per_gpu
from aees.sweep.manifest import PlannedRun, gpu_use
from aees.sweep.processes import (
    DEFAULT_GRACE_PERIOD,
    POLL_SECONDS,
    RUN_ENVIRONMENT,
    spawn_run,
    stop_processes,
)
from aees.sweep.progress import SweepSummary

__all__ = ["RAY_INSTALL_HINT", "ray_task_resources", "run_ray"]

RAY_INSTALL_HINT = "pip install 'aees[sweep]'"


# --------------------------------------------------------------------------------------------
# Ray executor
# --------------------------------------------------------------------------------------------


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise SweepError(
            f"the ray executor needs Ray, which is not installed: {RAY_INSTALL_HINT}"
        ) from None
    return ray


def _ray_verdicts(
    runs: list[PlannedRun], root: str, resume: bool, overwrite: bool
) -> list[tuple[str, str] | None]:
    """Ray task: resume/overwrite verdicts, computed where the shared storage is mounted."""
    base = Path(root)
    return [
        existing_result_verdict(r, base / r.output, resume=resume, overwrite=overwrite)
        for r in runs
    ]


def _ray_execute(run: PlannedRun, root: str, overwrite: bool, grace: float) -> dict[str, Any]:
    """Ray task: run one attempt on this worker, writing result and log under ``root``.

    Cancellation (``ray.cancel``) stops the run: SIGTERM, SIGKILL after ``grace`` seconds.
    """
    base = Path(root)
    problem = paths_problem(run, base)  # as this worker sees the shared storage
    if problem is not None:
        return {
            "status": "failed",
            "detail": problem,
            "return_code": None,
            "environment": {},
            "host": socket.gethostname(),
            "seconds": 0.0,
        }
    command = run_argv(run, base)
    env = dict(RUN_ENVIRONMENT)
    for key in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS"):  # what Ray assigned to this task
        if key in os.environ:
            env[key] = os.environ[key]
    started = time.monotonic()
    log = prepare_attempt(run, base, command, env, overwrite)
    try:
        proc = spawn_run(command, {**os.environ, **env}, log)
    finally:
        log.close()
    try:
        while proc.poll() is None:
            time.sleep(POLL_SECONDS * 2)
    except BaseException:
        stop_processes([proc], grace, lambda: False)
        raise
    status, detail = finish_attempt(run, base, proc.returncode)
    return {
        "status": status,
        "detail": detail,
        "return_code": proc.returncode,
        "environment": env,
        "host": socket.gethostname(),
        "seconds": time.monotonic() - started,
    }


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[-1] if text else ''}".strip()


def run_ray(
    manifest_path: str | os.PathLike[str],
    *,
    address: str | None = None,
    workers: int | None = None,
    runs_per_gpu: int | None = None,
    resume: bool = True,
    overwrite: bool = False,
    run_ids: Sequence[str] | None = None,
    output_root: str | os.PathLike[str] | None = None,
    grace_period: float = DEFAULT_GRACE_PERIOD,
    progress: bool = True,
    stream: IO[str] | None = None,
    failed_only: bool = False,
    allow_tracking_uris: Sequence[str] = (),
    keep_going: bool = False,
) -> SweepSummary:
    """Run the manifest's selected runs as Ray tasks: one GPU (and one CPU) per run that uses a
    GPU, one CPU otherwise; Ray sets ``CUDA_VISIBLE_DEVICES``. A run with ``device`` ``auto``
    uses a GPU when the cluster has one and runs on a CPU otherwise; a run with ``device cuda``
    on a cluster without GPUs is refused.

    The tasks write results and logs under the output root (``output_root`` or the manifest's),
    which must be storage every node sees; they also decide resume/overwrite and validate results
    there. Workers run the command with their own Python interpreter.

    Args:
        address: ``auto``, ``ray://host:port`` or None (connect to / start a local instance).
            Ignored when Ray is already initialised in this process.
        workers: maximum runs in flight (default: the cluster's GPUs times ``runs_per_gpu``,
            or CPUs for a CPU-only plan).
        runs_per_gpu: K runs share each GPU: a run that needs a GPU requests ``1/K`` of one
            (docs/protocols.md §15).
        failed_only, allow_tracking_uris, keep_going: as :func:`~aees.sweep.local.run_local`.

    Every run takes one CPU of the cluster, so ``workers`` and ``runs_per_gpu`` are at most its
    CPUs (:class:`SweepError` after connecting, before any run starts).

    Same statuses, logs, manifest updates, Ctrl-C and exit codes as :func:`run_local`.
    """
    check_common(workers, grace_period)
    check_runs_per_gpu(runs_per_gpu, None)
    ray = _import_ray()
    retry = ["--executor", "ray"]
    if address:
        retry += ["--address", address]
    if workers is not None:
        retry += ["--workers", str(workers)]
    if runs_per_gpu is not None:
        retry += ["--runs-per-gpu", str(runs_per_gpu)]
    sweep = new_sweep(
        manifest_path,
        retry,
        resume,
        overwrite,
        run_ids,
        output_root,
        progress,
        stream,
        failed_only=failed_only,
        allow_tracking_uris=allow_tracking_uris,
        keep_going=keep_going,
    )
    started_ray = False
    if not ray.is_initialized():
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(include_dashboard=False, log_to_driver=False)
        except Exception as err:  # connection refused, bad address, ...
            raise SweepError(
                f"cannot start or reach Ray ({address or 'local'}): {_first_line(err)}"
            ) from None
        started_ray = True
    try:
        return _run_ray_sweep(ray, sweep, workers, grace_period, runs_per_gpu or 1)
    finally:
        if started_ray:
            ray.shutdown()


def ray_task_resources(needs_gpu: bool, runs_per_gpu: int) -> dict[str, float]:
    """The Ray resources of one run: one CPU, and ``1/runs_per_gpu`` GPU when it needs one."""
    if not needs_gpu:
        return {"num_cpus": 1}
    return {"num_gpus": 1 / runs_per_gpu, "num_cpus": 1}


def _ray_capacity(
    ray: Any, sweep: Sweep, workers: int | None, runs_per_gpu: int
) -> tuple[dict[str, bool], int]:
    """Which runs get a GPU on this cluster and how many run at once; :class:`SweepError` for a
    run that needs a GPU the cluster lacks, or options over the cluster's CPUs."""
    resources = ray.cluster_resources()
    has_gpu = resources.get("GPU", 0) >= 1
    use = {run.run_id: gpu_use(run.task, run.flags) for run in sweep.selected}
    required = [run_id for run_id, how in use.items() if how == "required"]
    if required and not has_gpu:
        raise SweepError(
            f"run {required[0]} needs a GPU (device cuda) but the Ray cluster has none "
            "(plan with --set device=auto or cpu to run on CPUs)"
        )
    wants_gpu = {
        run_id: how == "required" or (how == "if-available" and has_gpu)
        for run_id, how in use.items()
    }
    cpus = int(resources.get("CPU", 0)) or 1
    if runs_per_gpu > cpus:
        raise SweepError(
            f"--runs-per-gpu must be <= {cpus} (the CPUs of the Ray cluster; each run takes "
            f"one), got {runs_per_gpu}"
        )
    if workers is not None and workers > cpus:
        raise SweepError(
            f"--workers must be <= {cpus} (the CPUs of the Ray cluster; each run takes one), "
            f"got {workers}"
        )
    needs_gpu = any(wants_gpu.values())
    capacity = int(resources.get("GPU" if needs_gpu else "CPU", 1)) or 1
    if needs_gpu:
        capacity = min(capacity * runs_per_gpu, cpus)
    return wants_gpu, workers if workers is not None else capacity


def _run_ray_sweep(
    ray: Any, sweep: Sweep, workers: int | None, grace: float, runs_per_gpu: int
) -> SweepSummary:
    root = str(sweep.root)
    wants_gpu, limit = _ray_capacity(ray, sweep, workers, runs_per_gpu)
    verdict_task = ray.remote(num_cpus=1, max_retries=0)(_ray_verdicts)
    execute = ray.remote(max_retries=0)(_ray_execute)

    with sweep.locked(), sweep.signals():
        try:
            todo = sweep.verdicts(
                lambda runs: ray.get(verdict_task.remote(runs, root, sweep.resume, sweep.overwrite))
            )
        except KeyboardInterrupt:
            sweep.stop_signal = sweep.stop_signal or signal.SIGINT
            return sweep.summary()
        except Exception as err:  # e.g. aees not importable on the workers
            raise SweepError(
                f"Ray task checking existing results failed: {_first_line(err)}"
            ) from None
        in_flight: dict[Any, PlannedRun] = {}
        try:
            while (todo or in_flight) and not sweep.stopping:
                while todo and len(in_flight) < limit and not sweep.stopping:
                    run = todo.pop(0)
                    options = ray_task_resources(wants_gpu[run.run_id], runs_per_gpu)
                    sweep.mark_started(run, {}, None)
                    ref = execute.options(**options).remote(run, root, sweep.overwrite, grace)
                    in_flight[ref] = run
                if not in_flight:
                    break
                ready, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
                for ref in ready:
                    _record(ray, sweep, ref, in_flight.pop(ref))
                sweep.show()
        except KeyboardInterrupt:
            sweep.stop_signal = sweep.stop_signal or signal.SIGINT
        finally:
            if in_flight:
                _stop_in_flight(ray, sweep, in_flight, grace)
        return sweep.summary()


def _record(ray: Any, sweep: Sweep, ref: Any, run: PlannedRun) -> None:
    """Record the outcome of a finished Ray task."""
    try:
        out = ray.get(ref)
    except Exception as err:  # the task itself failed (worker died, ...)
        sweep.mark_finished(run, "failed", f"Ray task failed: {_first_line(err)}", None)
        return
    run.environment, run.host = out["environment"], out["host"]
    sweep.mark_finished(run, out["status"], out["detail"], out["return_code"])


def _stop_in_flight(ray: Any, sweep: Sweep, in_flight: dict[Any, PlannedRun], grace: float) -> None:
    """Cancel the running tasks (their runs get SIGTERM, then SIGKILL); each run counts as
    completed if its task reported so, else goes back to ``pending``."""
    if not sweep.stopping:
        sweep.stop_signal = signal.SIGTERM
    for ref in in_flight:
        ray.cancel(ref)
    deadline = time.monotonic() + grace + 5
    pending = list(in_flight)
    while pending and time.monotonic() < deadline and not sweep.kill_now:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
    for ref in pending:
        ray.cancel(ref, force=True)
    for ref, run in in_flight.items():
        result = None
        if ref not in pending:
            with contextlib.suppress(Exception):
                result = ray.get(ref, timeout=1)
        if result is not None and result.get("status") == "completed":
            sweep.mark_finished(run, "completed", None, result["return_code"])
        else:
            sweep.mark_interrupted(run)
    sweep.save()
