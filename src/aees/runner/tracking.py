"""Experiment tracking for ``aees train``: ``--tensorboard DIR`` and ``--mlflow [URI]``.

Both are *observers*: they read host-side numbers the engine already has (the per-epoch metrics
and the closed episodes' log entries) and never touch the device, the RNGs or the result, so a
tracked run trains exactly like an untracked one.

What is written, against the global optimizer step (the x-axis the Hugging Face Trainer and
Lightning use, so curves of every framework line up):

* per epoch: ``epoch/train_loss``, ``epoch/train_accuracy``, ``epoch/val_accuracy``,
  ``epoch/seconds``, ``epoch/cum_tflops``, ``epoch/lr`` (the base LR) and ``epoch/index``;
* per closed AEES episode (logged when the episode closes, at its last step + 1):
  ``episode/lr_multiplier``, ``episode/noise_std``, ``episode/lr_arm``, ``episode/noise_arm``,
  ``episode/reward`` (absent when no step counted), ``episode/effective_lr`` (multiplier x the
  base LR of group 0 when the close was seen) and ``episode/ema_loss_end``;
* MLflow also gets the run configuration as params (secrets redacted, nested keys dotted), the
  summary metrics of the result and the result JSON as an artifact; TensorBoard gets the
  configuration as a text summary.

``--tensorboard DIR`` writes one run directory ``DIR/<result stem>`` (several runs may share
``DIR``: point ``tensorboard --logdir DIR`` at it); something there that is not a directory (a
file, a FIFO) is refused before training. A resumed run appends to it with
``purge_step`` just past the checkpoint's step, so TensorBoard drops what the killed segment
logged after the checkpoint. ``--mlflow`` uses the experiment ``aees-<task>``; a resumed run
continues the unfinished MLflow run of the same result path (tag ``aees.run_key``) instead of
opening a second.

What ``--mlflow URI`` may be is checked before training (:mod:`.tracking_targets`): a URI
that does not parse, an unsupported scheme, credentials in it, an HTTP URI without a host or
with a bad port, and an ``sqlite:`` URI without a database file are refused in one line, and no
message ever shows a password or a secret query parameter (``aees.results.secrets.redact_uris``).
Opening the MLflow run waits a few seconds at most for an unreachable server (one retry, a
5 s timeout; MLflow's defaults retry for minutes) unless ``MLFLOW_HTTP_REQUEST_*`` are set.
Artifacts (the result JSON) go next to what the user named: ``<database dir>/mlruns/<experiment>``
for ``sqlite:``, ``<result dir>/mlruns/<experiment>`` for the other databases (MLflow's default,
``./mlruns`` under the current directory, is a folder nobody named); a server decides for
itself (docs/protocols.md §3, "Tracking").

The writers are imported only when asked for (``import aees`` stays torch-only); only rank 0 of a
``torchrun`` job tracks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aees.results import scrub_secrets, variant_id
from aees.results.secrets import redact_uris
from aees.runner.config import RunConfig, UserError
from aees.runner.tracking_targets import (
    result_stem,
    sqlite_database,
    tensorboard_run_dir,
    uri_scheme,
)

__all__ = [
    "MlflowWriter",
    "RunTracker",
    "TensorBoardWriter",
    "open_tracker",
    "run_name",
]

#: MLflow limits every version accepts (newer ones allow longer param values).
_PARAM_VALUE_MAX = 500
_BATCH_MAX = 100
#: While the MLflow run is opened: bounds on MLflow's HTTP retries (its defaults, 7 retries with
#: exponential backoff and a 120 s timeout, kept an unreachable server waiting for 4 minutes).
#: A variable the user set wins; later logging uses MLflow's (or the user's) settings.
_OPEN_HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}
#: database schemes whose artifact root MLflow would otherwise put under ./mlruns
_DATABASE_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")


def run_name(config: RunConfig) -> str:
    """The run's name in every tracker: the result file's stem (unique per output path)."""
    return result_stem(config.output_path)


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"a": {"b": 1}, "c": [1, 2]}`` -> ``{"a.b": "1", "c": "[1, 2]"}`` (MLflow params)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, name + "."))
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(list(value), default=str)
        else:
            out[name] = str(value)
    return out


def _finite(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _episode_metrics(logs: Mapping[str, Sequence[Any]], index: int, base_lr: float) -> dict:
    multiplier = float(logs["selected_lr_values"][index])
    metrics: dict[str, float | None] = {
        "episode/lr_multiplier": multiplier,
        "episode/noise_std": float(logs["selected_noise_values"][index]),
        "episode/lr_arm": float(logs["selected_lr_indices"][index]),
        "episode/noise_arm": float(logs["selected_noise_indices"][index]),
        "episode/reward": _finite(logs["episode_rewards"][index]),
        "episode/effective_lr": multiplier * base_lr,
        "episode/ema_loss_end": _finite(logs["episode_ema_loss_ends"][index]),
    }
    return {k: v for k, v in metrics.items() if v is not None}


class TensorBoardWriter:
    """Scalars through torch's ``SummaryWriter`` (needs the ``tensorboard`` package)."""

    def __init__(self, log_dir: Path, *, purge_step: int | None, config_text: str) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = log_dir
        self._writer = SummaryWriter(log_dir=str(log_dir), purge_step=purge_step)
        if purge_step is None:
            self._writer.add_text("config", config_text, global_step=0)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar(key, value, global_step=step)

    def finish(self, summary: Mapping[str, float], result_path: Path, status: str) -> None:
        self._writer.flush()

    def close(self, status: str) -> None:
        self._writer.close()


class MlflowWriter:
    """Params, metrics and the result artifact through ``MlflowClient`` (no global run state).

    The client API is used instead of ``mlflow.start_run`` so nothing is picked up from, or
    left in, the process's fluent-API state, and no context tags (user, source, git) are added
    beyond the ones set here.
    """

    def __init__(
        self,
        uri: str,
        *,
        experiment: str,
        name: str,
        run_key: str,
        tags: Mapping[str, str],
        params: Mapping[str, str],
        resumed: bool,
        artifact_location: str | None = None,
    ) -> None:
        if uri.startswith("file:"):
            # MLflow 3 refuses the file store unless opted in; a local ``mlruns/`` directory is
            # what ``--mlflow`` without a URI promises (``sqlite:`` URIs need no opt-in).
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        from mlflow.entities import Param, RunStatus
        from mlflow.tracking import MlflowClient

        try:
            from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH as limit
        except ImportError:
            limit = _PARAM_VALUE_MAX
        self._client = client = MlflowClient(tracking_uri=uri)
        #: per metric key, the last step already in the run (a continued run skips up to it:
        #: the killed segment logged those points already, with the same values)
        self._logged_until: dict[str, int] = {}
        with _bounded_http():
            found = client.get_experiment_by_name(experiment)
            experiment_id = (
                found.experiment_id
                if found is not None
                else client.create_experiment(experiment, artifact_location=artifact_location)
            )
            run_id = self._unfinished_run(experiment_id, run_key) if resumed else None
            if run_id is not None:
                client.update_run(run_id, status=RunStatus.to_string(RunStatus.RUNNING))
                client.set_tag(run_id, "aees.resumed", "true")
                for key in client.get_run(run_id).data.metrics:
                    history = client.get_metric_history(run_id, key)
                    self._logged_until[key] = max(m.step for m in history)
            else:
                all_tags = {**tags, "aees.run_key": run_key}
                run_id = client.create_run(experiment_id, tags=all_tags, run_name=name).info.run_id
                items = [Param(k, v[:limit]) for k, v in sorted(params.items())]
                for i in range(0, len(items), _BATCH_MAX):
                    client.log_batch(run_id, params=items[i : i + _BATCH_MAX])
        self.run_id = run_id
        self.experiment_id = experiment_id

    def _unfinished_run(self, experiment_id: str, run_key: str) -> str | None:
        """The latest run of this result path that did not finish (a killed segment)."""
        runs = self._client.search_runs(
            [experiment_id],
            filter_string=f"tags.`aees.run_key` = '{run_key}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if runs and runs[0].info.status != "FINISHED":
            return runs[0].info.run_id
        return None

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [
            Metric(k, float(v), now, step)
            for k, v in metrics.items()
            if step > self._logged_until.get(k, -1)
        ]
        for i in range(0, len(items), _BATCH_MAX):
            self._client.log_batch(self.run_id, metrics=items[i : i + _BATCH_MAX])

    def finish(self, summary: Mapping[str, float], result_path: Path, status: str) -> None:
        self.log({f"result/{k}": v for k, v in summary.items()}, step=0)
        self._client.log_artifact(self.run_id, str(result_path))

    def close(self, status: str) -> None:
        self._client.set_terminated(self.run_id, status=status)


class RunTracker:
    """Fans the engine's per-epoch and per-episode numbers out to the configured writers."""

    def __init__(self, writers: Sequence[Any], *, episodes_logged: int = 0) -> None:
        self.writers = list(writers)
        self._episodes_logged = episodes_logged
        self._closed = False

    def _log(self, metrics: Mapping[str, float], step: int) -> None:
        for writer in self.writers:
            writer.log(metrics, step)

    def log_epoch(self, epoch: int, step: int, metrics: Mapping[str, Any]) -> None:
        """One epoch's metrics (``train_loss``, ``val_accuracy``, ...) at global step ``step``."""
        values = {f"epoch/{k}": _finite(v) for k, v in metrics.items()}
        values["epoch/index"] = float(epoch)
        self._log({k: v for k, v in values.items() if v is not None}, step)

    def log_episodes(self, logs: Mapping[str, Sequence[Any]], base_lr: Any) -> None:
        """Every episode closed since the last call (``logs``: ``AEES.get_logs()``)."""
        closed = len(logs["episode_rewards"])
        lr = float(base_lr)  # a tensor LR is read once per episode, never per step
        for index in range(self._episodes_logged, closed):
            step = int(logs["episode_end_steps"][index]) + 1
            self._log(_episode_metrics(logs, index, lr), step)
        self._episodes_logged = max(self._episodes_logged, closed)

    def finish(self, result: Any, result_path: Path) -> None:
        """The result's summary numbers and file; marks the run finished (or failed if it
        diverged)."""
        diagnostics = getattr(result, "diagnostics", None) or {}
        summary = {
            "best_val_accuracy": _finite(result.best_val_accuracy),
            "final_val_accuracy": _finite(result.final_val_accuracy),
            "final_train_loss": _finite(result.final_train_loss),
            "final_test_accuracy": _finite(diagnostics.get("final_test_accuracy")),
            "test_accuracy_at_best_val": _finite(diagnostics.get("test_accuracy_at_best_val")),
            "total_tflops": _finite((result.estimated_flops or 0.0) / 1e12),
            "wall_clock_seconds": _finite(result.wall_clock_seconds),
        }
        clean = {k: v for k, v in summary.items() if v is not None}
        status = "FAILED" if getattr(result, "diverged", False) else "FINISHED"
        for writer in self.writers:
            writer.finish(clean, result_path, status)
        self.close(status)

    def close(self, status: str = "FAILED") -> None:
        """Flush and close every writer once; a run that never reached :meth:`finish` ends
        ``FAILED`` (or ``KILLED`` when interrupted)."""
        if self._closed:
            return
        self._closed = True
        for writer in self.writers:
            writer.close(status)


@contextlib.contextmanager
def _bounded_http() -> Iterator[None]:
    """:data:`_OPEN_HTTP_LIMITS` in the environment (MLflow reads them per request)."""
    added = [key for key in _OPEN_HTTP_LIMITS if key not in os.environ]
    for key in added:
        os.environ[key] = _OPEN_HTTP_LIMITS[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def _artifact_location(uri: str, experiment: str, output_path: str) -> str | None:
    """Where a new experiment keeps artifacts: next to what the user named (module docstring);
    None lets the store decide (a local store, a server)."""
    parts = urlsplit(uri)
    scheme = uri_scheme(parts)
    if scheme not in _DATABASE_SCHEMES:
        return None
    database = sqlite_database(uri) if scheme == "sqlite" else None
    base = database.parent if database is not None else Path(output_path).absolute().parent
    return (base / "mlruns" / experiment).as_uri()


def _run_key(config: RunConfig) -> str:
    """Which MLflow run a resumed segment continues: the same result path."""
    return hashlib.sha256(os.path.abspath(config.output_path).encode()).hexdigest()[:16]


def open_tracker(
    config: RunConfig, *, start_step: int = 0, episodes_done: int = 0, resumed: bool = False
) -> RunTracker | None:
    """The tracker ``config`` asks for (``--tensorboard`` / ``--mlflow``), or None.

    ``start_step`` / ``episodes_done``: where a resumed run continues (its checkpoint's global
    step and closed-episode count), so nothing is logged twice.
    """
    if not config.tensorboard and not config.mlflow:
        return None
    params = scrub_secrets(config.to_dict())
    name = run_name(config)
    writers: list[Any] = []
    board = (
        tensorboard_run_dir(config.tensorboard, config.output_path) if config.tensorboard else None
    )
    if board is not None and board.exists() and not board.is_dir():
        # checked at validation too; this is the moment before anything is written
        raise UserError(f"--tensorboard {str(board)!r} exists and is not a directory")
    # MLflow first: it is the one that can fail (an unreachable server), and then nothing of
    # this run has been written anywhere yet.
    if config.mlflow:
        tags = {
            "aees.task": config.task_name,
            "aees.method": config.method_name,
            "aees.variant": variant_id(config.to_dict(), config.method_name),
            "aees.seed": str(config.seed),
        }
        if config.run_tag:
            tags["aees.run_tag"] = str(scrub_secrets(config.run_tag))
        experiment = f"aees-{config.task_name}"
        try:
            writers.append(
                MlflowWriter(
                    config.mlflow,
                    experiment=experiment,
                    name=name,
                    run_key=_run_key(config),
                    tags=tags,
                    params=_flatten(params),
                    resumed=resumed,
                    artifact_location=_artifact_location(
                        config.mlflow, experiment, config.output_path
                    ),
                )
            )
        except Exception as err:  # any client failure is the user's URI / server
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise UserError(redact_uris(f"--mlflow {config.mlflow}: {first}")) from None
    if board is not None:
        try:
            writer = TensorBoardWriter(
                board,
                # everything up to the checkpoint's step was logged before it was written
                purge_step=start_step + 1 if resumed else None,
                config_text="```json\n" + json.dumps(params, indent=2, sort_keys=True) + "\n```",
            )
        except OSError as err:
            RunTracker(writers).close()
            raise UserError(
                f"--tensorboard {str(board)!r} cannot be written ({err.strerror or err})"
            ) from None
        writers.append(writer)
    return RunTracker(writers, episodes_logged=episodes_done)
