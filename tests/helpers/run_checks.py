"""Checks shared by the end-to-end runner tests: what every result must satisfy, and how a
refusal through the CLI must look (one line, exit 2, no traceback, nothing trained or saved)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from aees import cli
from aees.results import RunResult, load_run_result
from aees.runner.engine import CHECKPOINT_NAME

#: The environment of :func:`aees` subprocesses: one thread, so parallel tests do not contend.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def aees(*args: str, timeout: float = 180, **popen: Any) -> subprocess.CompletedProcess[str]:
    """``aees *args`` in a subprocess (``popen``: more :func:`subprocess.run` arguments)."""
    return subprocess.run(
        [sys.executable, "-m", "aees.cli", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
        **popen,
    )


def one_line_error(done: subprocess.CompletedProcess[str], *needles: str) -> str:
    """``done`` refused before training with exit 2 and one line holding every needle."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "epoch 1/1" not in done.stdout  # refused before training
    return lines[0]


def cli_error(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    """``cli.main(argv)`` in-process (faster) must refuse with exit 2 and one line holding every
    needle, saving no result."""
    try:
        code = cli.main(argv)
    except SystemExit as exit_:  # argparse-time refusals exit; run-time ones return
        code = exit_.code
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Saved result" not in captured.out
    return lines[0]


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
