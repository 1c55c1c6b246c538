"""Sweep executors: run the pending runs of a manifest locally (N at a time) or on a Ray cluster.

Both executors share the semantics of the thesis launcher (docs/protocols.md §15):

* **Resume** (default): a run whose result file exists, parses and matches the plan
  (:func:`aees.sweep.result_check.check_result`) is ``skipped``. An existing result that does not
  match is reported and the run marked ``failed``; it is never replaced unless ``overwrite``.
  Without resume every existing result needs ``overwrite`` to be replaced.
* A finished run is ``completed`` only if it exited 0 and its result validates; otherwise
  ``failed`` with the reason (exit status and the last line of its log, or what did not match).
* One log per run, ``<output_root>/_logs/<run_id>.log``, appended to per attempt, each attempt
  starting with a header (command, ``CUDA_VISIBLE_DEVICES``, the environment the sweep set).
* The manifest is rewritten atomically after every change of a run's status. Two locks
  (``flock``) keep a second sweep off: ``<output_root>/.aees-sweep.lock`` (copies of one manifest
  share the output root) and ``.<manifest>.lock`` next to the manifest.
* A manifest is data, never a script. Loading it checks every field's type, that every path
  field resolves inside the output root and that each stored ``command`` is the one
  :func:`aees.sweep.manifest.run_command` builds from the run's task, flags, seed and paths;
  a manifest failing any check is refused (one line, exit status 2) before anything runs or is
  deleted. The executors run the command they build themselves, with their own interpreter.
* The sweep deletes only what it wrote: a run's checkpoint directory (after the run completes,
  or with ``--overwrite`` before it starts over) is removed only while it holds nothing but the
  runner's checkpoint files; otherwise it is kept and the run's log says why.
* Ctrl-C / SIGTERM: no new runs start; running ones get SIGTERM, then SIGKILL after a grace
  period (a second Ctrl-C kills at once); they go back to ``pending``. The exit status is
  128 + the signal number (130 for Ctrl-C).
* At the end: a summary, each failed run with its log path (the first ten), and the short
  ``aees sweep M --failed`` command that retries exactly the failed runs. Exit status 0 (all
  done), 1 (some failed), 2 (bad input).
* When the first :data:`~aees.sweep.progress.EARLY_STOP_RUNS` runs to finish all failed with the
  same error, no more runs start (the running ones are stopped and stay ``pending``): one line
  says so with the log of one (``keep_going`` runs them all regardless).
* Every path a run writes -- the path fields and the write flags of its task
  (:func:`aees.sweep.flags.write_flags`: ``--tensorboard``, a local ``--mlflow`` store or
  database, ``--cache-dir``, ``--tokenized-dataset-dir``, ...) -- resolves inside the output root
  (a relative one is taken relative to it), symbolic links as they are when the run starts, or
  the run is refused naming the flag. A tracking server in ``--mlflow`` needs
  ``allow_tracking_uris``. Paths a run only reads (``--data-dir``, ``--pretrained``, ...) may
  point anywhere.
* Progress on stderr: done / running / failed counts and the running run ids -- one updating line
  on a terminal, plain lines otherwise.

This module is the local executor (:func:`run_local`); the Ray one is :func:`aees.sweep.ray.run_ray`
(Ray is optional, ``pip install 'aees[sweep]'``, and imported only when it runs). Both share
:mod:`aees.sweep.bookkeeping` (the :class:`~aees.sweep.bookkeeping.Sweep`),
:mod:`aees.sweep.attempt` (one attempt of one run), :mod:`aees.sweep.processes`,
:mod:`aees.sweep.gpus` and :mod:`aees.sweep.progress`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from aees.sweep.attempt import (
    existing_result_verdict,
    finish_attempt,
    paths_problem,
    prepare_attempt,
    run_argv,
    wrote_valid_result,
)
from aees.sweep.bookkeeping import (
    Sweep,
    check_common,
    check_local_caps,
    default_workers,
    new_sweep,
)
from aees.sweep.errors import SweepError
from aees.sweep.gpus import (
    DEFAULT_MIN_FREE_MIB,
    GpuSlots,
    check_gpus_exist,
    check_runs_per_gpu,
    mps_pipe_directory,
    nvidia_smi_free_mib,
)
from aees.sweep.manifest import PlannedRun
from aees.sweep.processes import (
    DEFAULT_GRACE_PERIOD,
    POLL_SECONDS,
    RUN_ENVIRONMENT,
    spawn_run,
    stop_processes,
)
from aees.sweep.progress import SweepSummary

__all__ = ["run_local"]


# Long by its docstring (every option, documented once); the steps are the helpers below.
def run_local(
    manifest_path: str | os.PathLike[str],
    *,
    workers: int | None = None,
    gpus: Sequence[int] | None = None,
    runs_per_gpu: int | None = None,
    min_free_mib: int | None = None,
    gpu_probe: Callable[[], dict[int, int] | None] = nvidia_smi_free_mib,
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
    """Run the manifest's selected runs as subprocesses, ``workers`` at a time.

    Args:
        workers: concurrent runs (default: the number of ``gpus`` times ``runs_per_gpu``, else
            1).
        gpus: GPU ids; worker slot ``i`` runs with ``CUDA_VISIBLE_DEVICES=gpus[i % len(gpus)]``.
            Without it ``CUDA_VISIBLE_DEVICES`` is inherited.
        runs_per_gpu: K runs share each GPU of ``gpus`` (docs/protocols.md §15): a starting run
            gets the least-loaded GPU with fewer than K runs and ``min_free_mib`` free (default
            :data:`DEFAULT_MIN_FREE_MIB`; ``gpu_probe``, by default ``nvidia-smi``; no probe, no
            memory check), else it waits; a CUDA MPS daemon, when one runs, is used.
        resume, overwrite: see the module docstring.
        run_ids: run only these (default all).
        failed_only: run only the runs whose status is ``failed`` (``aees sweep --failed``).
        allow_tracking_uris: tracking servers (``--mlflow http(s)://...``) runs may report to;
            a run naming another is refused before anything starts.
        keep_going: do not stop when the first runs all fail with the same error.
        output_root: results, logs and checkpoints go here instead of the manifest's root (the
            manifest is updated).
        grace_period: seconds between SIGTERM and SIGKILL when stopping runs.
        progress: print progress and the final report to ``stream`` (default stderr).

    ``workers`` is at most the usable CPUs (or #gpus x ``runs_per_gpu`` where more),
    ``runs_per_gpu`` at most the CPUs, and every GPU of ``gpus`` must exist.
    Each run gets ``OMP_NUM_THREADS = cores // workers`` unless the environment sets it.
    Raises :class:`SweepError` for bad input; Ctrl-C / SIGTERM end the sweep cleanly (the summary's
    ``exit_code`` is 130 / 143).
    """
    gpu_list = _checked_gpus(gpus)
    check_common(workers, grace_period)
    check_runs_per_gpu(runs_per_gpu, min_free_mib)
    if runs_per_gpu is not None and not gpu_list:
        raise SweepError("--runs-per-gpu needs --gpus")
    check_local_caps(workers, gpu_list, runs_per_gpu, default_workers())
    n_workers = workers if workers is not None else max(1, len(gpu_list) * (runs_per_gpu or 1))
    slots: GpuSlots | None = None
    if runs_per_gpu is not None:
        slots = GpuSlots(
            gpu_list,
            runs_per_gpu,
            min_free_mib=DEFAULT_MIN_FREE_MIB if min_free_mib is None else min_free_mib,
            probe=gpu_probe,
        )
    sweep = new_sweep(
        manifest_path,
        _retry_flags(n_workers, gpu_list, runs_per_gpu, min_free_mib),
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
    check_gpus_exist(gpu_list, gpu_probe)
    base_env = _base_environment(sweep, n_workers, gpu_list, runs_per_gpu)
    pool = _LocalPool(sweep, n_workers, gpu_list, slots, base_env, overwrite)
    root = sweep.root
    with sweep.locked(), sweep.signals():
        todo = sweep.verdicts(
            lambda runs: [
                existing_result_verdict(r, root / r.output, resume=resume, overwrite=overwrite)
                for r in runs
            ]
        )
        try:
            while (todo or pool.active) and not sweep.stopping:
                pool.reap()
                pool.start(todo)
                sweep.show()
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:  # signal handlers not installed (not the main thread)
            sweep.stop_signal = sweep.stop_signal or signal.SIGINT
        finally:
            pool.stop_all(grace_period)
        return sweep.summary()


def _checked_gpus(gpus: Sequence[int] | None) -> list[int]:
    """``--gpus`` as a list of distinct indices >= 0 (:class:`SweepError` otherwise)."""
    gpu_list = list(gpus or [])
    if any(isinstance(g, bool) or not isinstance(g, int) or g < 0 for g in gpu_list):
        raise SweepError(f"--gpus must list GPU indices >= 0, got {gpu_list}")
    if len(set(gpu_list)) != len(gpu_list):
        raise SweepError(f"--gpus must not repeat an index, got {gpu_list}")
    return gpu_list


def _retry_flags(
    n_workers: int, gpu_list: list[int], runs_per_gpu: int | None, min_free_mib: int | None
) -> list[str]:
    """The local executor's own options, as the retry command repeats them."""
    retry = ["--workers", str(n_workers)]
    if gpu_list:
        retry += ["--gpus", ",".join(map(str, gpu_list))]
    if runs_per_gpu is not None:
        retry += ["--runs-per-gpu", str(runs_per_gpu)]
        if min_free_mib is not None:
            retry += ["--min-free-mib", str(min_free_mib)]
    return retry


def _base_environment(
    sweep: Sweep, n_workers: int, gpu_list: list[int], runs_per_gpu: int | None
) -> dict[str, str]:
    """The environment every run gets: :data:`RUN_ENVIRONMENT`, ``OMP_NUM_THREADS`` = cores //
    workers (unless set), and under ``--runs-per-gpu`` the PCI bus order and a running MPS
    daemon."""
    base_env = {**RUN_ENVIRONMENT}
    if "OMP_NUM_THREADS" not in os.environ:
        base_env["OMP_NUM_THREADS"] = str(max(1, default_workers() // n_workers))
    if runs_per_gpu is not None:
        base_env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"  # the order nvidia-smi's indices use
        mps = mps_pipe_directory()
        if mps is not None:
            base_env["CUDA_MPS_PIPE_DIRECTORY"] = mps
        sweep.progress.note(
            f"sweep: {runs_per_gpu} run(s) per GPU on {','.join(map(str, gpu_list))}; CUDA MPS: "
            + (f"on ({mps})" if mps else "off (start it with nvidia-cuda-mps-control -d)")
        )
    return base_env


class _LocalPool:
    """The worker slots of a local sweep: which run each runs, on which GPU, since when."""

    def __init__(
        self,
        sweep: Sweep,
        n_workers: int,
        gpu_list: list[int],
        slots: GpuSlots | None,
        base_env: dict[str, str],
        overwrite: bool,
    ) -> None:
        self.sweep, self.root = sweep, Path(sweep.root)
        self.gpu_list, self.slots = gpu_list, slots
        self.base_env, self.overwrite = base_env, overwrite
        self.host = socket.gethostname()
        self.free_slots = list(range(n_workers))
        self.active: dict[int, tuple[PlannedRun, subprocess.Popen[bytes]]] = {}
        self.gpu_of: dict[int, int] = {}  # slot -> GPU, under --runs-per-gpu
        self.started_at: dict[str, float] = {}
        self.noted_memory = False

    def _free(self, slot: int) -> None:
        self.free_slots.append(slot)
        if self.slots is not None and slot in self.gpu_of:
            self.slots.release(self.gpu_of.pop(slot))

    def reap(self) -> None:
        """Record every run that has exited and free its slot."""
        for slot, (run, proc) in list(self.active.items()):
            code = proc.poll()
            if code is None:
                continue
            del self.active[slot]
            self._free(slot)
            status, detail = finish_attempt(run, self.root, code)
            self.sweep.mark_finished(run, status, detail, code)

    def _gpu(self) -> tuple[bool, int | None]:
        """``(may start, GPU)`` for one more run: under ``--runs-per-gpu`` a GPU with room."""
        if self.slots is None:
            return True, None
        gpu = self.slots.acquire()
        if gpu is None and self.slots.waiting_for == "memory" and not self.noted_memory:
            self.noted_memory = True
            self.sweep.progress.note(
                f"sweep: waiting: no GPU of {self.gpu_list} has {self.slots.min_free_mib} MiB free"
            )
        return gpu is not None, gpu

    def start(self, todo: list[PlannedRun]) -> None:
        """Start runs of ``todo`` (taking them off it) while slots and GPUs are free."""
        while todo and self.free_slots and not self.sweep.stopping:
            may_start, gpu = self._gpu()
            if not may_start:
                break  # every GPU full or short of memory: wait for a run to end
            slot = self.free_slots.pop(0)
            env = dict(self.base_env)
            if gpu is not None:
                self.gpu_of[slot] = gpu
                env["CUDA_VISIBLE_DEVICES"] = str(gpu)
            elif self.gpu_list:
                env["CUDA_VISIBLE_DEVICES"] = str(self.gpu_list[slot % len(self.gpu_list)])
            self._start_one(todo.pop(0), slot, env)

    def _start_one(self, run: PlannedRun, slot: int, env: dict[str, str]) -> None:
        command = run_argv(run, self.root)
        self.sweep.mark_started(run, env, self.host)
        moved = paths_problem(run, self.root)  # a link changed since loading?
        if moved is not None:
            self.sweep.mark_finished(run, "failed", moved, None)
            self._free(slot)
            return
        log = prepare_attempt(run, self.root, command, env, self.overwrite)
        try:
            proc = spawn_run(command, {**os.environ, **env}, log)
        except OSError as err:
            self.sweep.mark_finished(run, "failed", f"cannot start: {err}", None)
            self._free(slot)
            return
        finally:
            log.close()
        self.active[slot] = (run, proc)
        self.started_at[run.run_id] = time.time()

    def stop_all(self, grace_period: float) -> None:
        """Stop the runs still running; each counts as completed if it wrote a valid result, else
        goes back to ``pending``."""
        if not self.active:
            return
        sweep = self.sweep
        if not sweep.stopping:  # an unexpected error: do not leave runs behind
            sweep.stop_signal = signal.SIGTERM
        procs = [proc for _, proc in self.active.values()]
        stop_processes(procs, grace_period, lambda: sweep.kill_now)
        for run, proc in self.active.values():
            if wrote_valid_result(run, self.root, self.started_at[run.run_id]):
                sweep.mark_finished(run, "completed", None, proc.returncode)
            else:
                sweep.mark_interrupted(run)
        sweep.save()
