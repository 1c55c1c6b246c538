"""Consistency checks shared by the end-to-end runner tests: what every result must satisfy."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from aees.results import RunResult, load_run_result
from aees.runner.engine import CHECKPOINT_NAME


def check_consistent(path: Path, epochs: int = 2, *, test_split: bool | None = True) -> RunResult:
    """Load ``path`` and check the per-epoch series, summary fields and derived metrics agree.

    ``test_split``: whether test diagnostics must be present (True) or absent (False); None
    leaves them unchecked.
    """
    result = load_run_result(path)
    assert result.total_epochs == epochs
    for series in (
        result.train_losses,
        result.train_accuracies,
        result.val_accuracies,
        result.epoch_wall_clock_seconds,
        result.epoch_tflops,
    ):
        assert len(series) == epochs
    assert result.best_val_accuracy >= result.final_val_accuracy
    assert result.best_val_accuracy == max(result.val_accuracies)
    assert result.final_val_accuracy == result.val_accuracies[-1]
    assert result.final_train_loss == result.train_losses[-1]
    assert result.total_steps == epochs * result.config["steps_per_epoch"]
    assert result.estimated_flops > 0 and result.accuracy_per_tflop >= 0
    assert result.runtime_metrics["total_steps"] == result.total_steps
    assert result.variant and result.provenance["command"]
    if test_split:
        assert 0.0 <= result.diagnostics["final_test_accuracy"] <= 1.0
        assert result.diagnostics["test_accuracy_at_best_val"] is not None
    elif test_split is False:
        assert "final_test_accuracy" not in result.diagnostics
    return result


def check_episodes(result: RunResult, episode_length: int) -> None:
    """Episodes tile the run: contiguous, full length but the last, one reward each."""
    logs = result.episode_logs
    assert logs is not None and result.controller_logs is not None
    starts, ends = logs["episode_start_steps"], logs["episode_end_steps"]
    assert starts[0] == 0 and ends[-1] == result.total_steps - 1
    assert all(e + 1 == s for e, s in zip(ends, starts[1:], strict=False))
    assert all(e - s + 1 == episode_length for s, e in zip(starts[:-1], ends[:-1], strict=True))
    assert len(logs["episode_rewards"]) == len(starts)
    assert logs["selected_candidate_names"] == logs["selected_combined_names"]
    assert result.controller_logs["_logged_episode_count"] == len(starts)


def kill_at_first_checkpoint(
    proc: subprocess.Popen, ckpt_dir: Path, output: Path, *, timeout: float = 180.0
) -> None:
    """SIGKILL ``proc`` (an ``aees train ... --checkpoint-dir ckpt_dir --output output`` run) as
    soon as its first checkpoint exists; skip the test if the run finished before the kill."""
    deadline = time.monotonic() + timeout
    while not (ckpt_dir / CHECKPOINT_NAME).exists():
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, f"no checkpoint in {ckpt_dir} after {timeout} s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    if output.exists():  # pragma: no cover - the run outpaced the kill; nothing to test
        pytest.skip("the run finished before it could be killed")
