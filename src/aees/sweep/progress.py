"""What a sweep shows: the live done / running / failed line (:class:`Progress`) and the
end-of-sweep report (:class:`SweepSummary`). Standard library only.
"""

from __future__ import annotations

import shutil
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO

__all__ = ["EARLY_STOP_RUNS", "LISTED_FAILURES", "FailedRun", "Progress", "SweepSummary", "utc_now"]

#: error (a missing data set, no GPU, ...), unless ``--keep-going``.
EARLY_STOP_RUNS = 3
#: Failed runs listed one by one in the summary; the rest are counted.
LISTED_FAILURES = 10


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


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
