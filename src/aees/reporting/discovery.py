"""Run discovery: every result file under a directory -> :class:`~aees.reporting.runs.Run`.

Discovery trusts no file: it reads regular files only, at most
:data:`~aees.results.io.MAX_RESULT_BYTES`, never following a link to a device or blocking on a
FIFO; and it checks *values*, not only keys (:mod:`aees.results.checks`, shared with the sweep):
every number the reports use finite and in range, per-epoch lists with one entry per epoch. A
file that fails is listed (one line, path and reason) and skipped. A result marked ``diverged``
is listed as diverged and kept out of every statistic (docs/reporting.md §2).
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aees.reporting.runs import ReportError, Run, identify
from aees.results import RunResult, RunResultError, scrub_secrets
from aees.results.checks import (
    ValueProblem,
    check_method_values,
    check_values,
    divergence_marker,
)
from aees.results.io import display_path, read_result_bytes
from aees.results.store import decode_result_json

__all__ = [
    "COMPANION_SUFFIXES",
    "MANIFEST_NAMES",
    "Discovery",
    "discover_runs",
    "has_extension",
    "load_run",
]

# --------------------------------------------------------------------------------------------
# Discovery
# --------------------------------------------------------------------------------------------


def _name_problem(path: Path) -> str | None:
    """Why a file name cannot be reported faithfully (every table, note and CSV names files)."""
    text = str(path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not UTF-8 text; rename it"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        return "file name contains control characters (a newline?); rename it"
    return None


#: What a result with odd values inside its free-form blocks (config, logs) can raise while it
#: is identified; such a file is listed with the error, never allowed to abort discovery.
_INTERPRET_ERRORS = (
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    RecursionError,
)


def load_run(path: str | os.PathLike[str]) -> Run:
    """Read, parse, validate and identify one result file (see :func:`discover_runs`).

    Raises:
        RunResultError: one line ``"<path>: <problem>"`` for a file that is not a regular
            file, too large, unreadable, not a result, or whose values fail
            :func:`aees.results.checks.value_problems`.
    """
    source = Path(path)
    shown = display_path(source)
    raw = decode_result_json(read_result_bytes(source), shown)
    try:
        result = RunResult.from_dict(scrub_secrets(raw), source=shown)
        divergence = divergence_marker(raw, result)
        check_values(result, diverged=divergence is not None)
        info = identify(result, source)
        check_method_values(
            info.lr_candidates, info.noise_candidates, info.instability_lambda, info.episode_length
        )
    except ValueProblem as bad:
        raise RunResultError(shown, str(bad)) from None
    except RunResultError:
        raise
    except _INTERPRET_ERRORS as exc:
        detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        raise RunResultError(shown, f"cannot interpret its config or logs ({detail})") from exc
    return Run(path=source, result=result, info=info, divergence=divergence)


@dataclass
class Discovery:
    """What :func:`discover_runs` found: the runs, the unreadable files (one line each), the
    runs marked as diverged (listed, not in ``runs``) and the files skipped for their
    extension."""

    root: Path
    runs: list[Run]
    problems: list[str] = field(default_factory=list)
    skipped_files: list[Path] = field(default_factory=list)
    diverged: list[Run] = field(default_factory=list)

    @property
    def skipped_count(self) -> int:
        return len(self.skipped_files)

    def diverged_lines(self) -> list[str]:
        """One line per diverged run (path, where it diverged, what run it was)."""
        return [run.diverged_line() for run in self.diverged]

    def skipped_summary(self) -> str | None:
        """``"skipped 3 files that are not .json or extensionless (.gz: 2, .png: 1)"``."""
        if not self.skipped_files:
            return None
        counts = Counter(p.suffix.lower() for p in self.skipped_files)  # all have a suffix
        detail = ", ".join(f"{display_path(ext)}: {n}" for ext, n in sorted(counts.items()))
        return (
            f"{display_path(self.root)}: skipped {len(self.skipped_files)} files that are not "
            f".json or extensionless ({detail})"
        )


def has_extension(path: Path) -> bool:
    """True when the name ends in a real extension (a suffix with a letter: ``.json``, ``.gz``);
    ``sgd_fixed_lr0.5`` has none (thesis names may carry numbers with a dot)."""
    return any(ch.isalpha() for ch in path.suffix)


#: Files that runs and sweeps write next to results; known, so neither read nor counted.
COMPANION_SUFFIXES = (".label_noise.json.gz", ".log")
MANIFEST_NAMES = ("manifest.json",)


def _is_companion(name: str) -> bool:
    """A label-noise side file, a run log or a sweep manifest (``manifest.json``,
    ``*.manifest.json``)."""
    return name.endswith(COMPANION_SUFFIXES) or any(
        name == m or name.endswith("." + m) for m in MANIFEST_NAMES
    )


def _candidate_files(root: Path, problems: list[str]) -> Iterable[Path]:
    """Files under ``root`` (links to directories are not followed); a directory that cannot
    be listed is a problem line."""

    def unlisted(err: OSError) -> None:
        where = display_path(err.filename or root)
        problems.append(f"{where}: cannot list directory ({err.strerror or err}); skipped")

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlisted):
        # hidden directories, and the sweep's own (_logs, _checkpoints)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            # hidden files (in-progress atomic-write temporaries) and known companions
            if not name.startswith(".") and not _is_companion(name):
                yield Path(dirpath) / name


def discover_runs(root: str | os.PathLike[str], *, strict: bool = False) -> Discovery:
    """Load every result under ``root`` (recursively, sorted by path).

    ``.json`` files and files without an extension (:func:`has_extension`; thesis noisy-CIFAR
    files have none) are candidates; every other file is skipped and counted, with one
    ``warnings.warn`` for the lot. What runs and sweeps write beside results (label-noise side
    files, logs, ``manifest.json``, ``_logs/`` and ``_checkpoints/``) is passed over silently.
    A candidate that cannot be trusted (:func:`load_run`: a special file, too large, corrupt,
    truncated, foreign JSON, values out of range) is recorded as a one-line problem
    ``"<path>: <problem>"`` and skipped; with ``strict`` it raises. A run marked as diverged
    goes to ``diverged``, not ``runs``: it is listed, never averaged.

    Raises:
        ReportError: ``root`` is not a directory, or (``strict``) a candidate is unreadable.
    """
    base = Path(root)
    if not base.exists():
        raise ReportError(f"{display_path(base)}: no such directory")
    if not base.is_dir():
        raise ReportError(f"{display_path(base)}: not a directory")
    found = Discovery(root=base, runs=[])
    for path in _candidate_files(base, found.problems):
        if has_extension(path) and path.suffix.lower() != ".json":
            found.skipped_files.append(path)
            continue
        try:
            problem = _name_problem(path)
            if problem is not None:
                raise RunResultError(display_path(path), problem)
            run = load_run(path)
        except RunResultError as err:
            if strict:
                raise ReportError(str(err)) from err
            found.problems.append(str(err))
            continue
        (found.runs if run.divergence is None else found.diverged).append(run)
    summary = found.skipped_summary()
    if summary:
        warnings.warn(summary, stacklevel=2)
    return found
