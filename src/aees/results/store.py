"""Saving and loading one result file: the JSON that :func:`save_run_result` writes and the one
reader every consumer of results uses (:func:`load_run_result`, :func:`decode_result_json`).

Writes go through :func:`aees.results.io.atomic_write_text`; reads through
:func:`aees.results.io.read_result_bytes` (a regular file, size-capped). Standard library only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from aees.results.identity import variant_id
from aees.results.io import atomic_write_text, read_result_bytes
from aees.results.metrics import build_runtime_metrics
from aees.results.schema import RunResult, RunResultError
from aees.results.secrets import scrub_secrets
from aees.results.values import type_name

__all__ = ["decode_result_json", "load_run_result", "result_to_dict", "save_run_result"]


def result_to_dict(
    result: RunResult, *, hardware: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The dict that :func:`save_run_result` writes.

    :meth:`RunResult.to_dict`, then: ``run_tag`` falls back to ``config.run_tag``;
    ``config["diagnostics"]`` (the thesis location) moves to ``diagnostics``; a missing
    ``variant`` is computed with :func:`variant_id`; ``runtime_metrics`` is always recomputed
    (:func:`build_runtime_metrics`); finally secrets are redacted (:func:`scrub_secrets`).
    """
    data = result.to_dict()
    config = data["config"]
    if data.get("run_tag") is None:
        tag = config.get("run_tag")
        data["run_tag"] = tag if isinstance(tag, str) else None
    if isinstance(config.get("diagnostics"), Mapping):
        moved = config.pop("diagnostics")
        data["diagnostics"] = {**moved, **data["diagnostics"]}
    if data.get("variant") is None:
        data["variant"] = variant_id(config, data["method_name"])
    data["runtime_metrics"] = build_runtime_metrics(data, hardware=hardware)
    return scrub_secrets(data)


def save_run_result(
    result: RunResult,
    path: str | os.PathLike[str],
    *,
    hardware: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``result`` as JSON (indent 2, sorted keys, trailing newline) atomically.

    The written dict is :func:`result_to_dict` (derived ``runtime_metrics``, no secrets).
    Non-finite floats are written as ``NaN`` / ``Infinity``, as the thesis did. Returns the
    path written.
    """
    payload = result_to_dict(result, hardware=hardware)
    text = json.dumps(payload, indent=2, sort_keys=True, allow_nan=True) + "\n"
    return atomic_write_text(path, text)


def decode_result_json(raw: bytes, shown: str) -> dict[str, Any]:
    """The JSON object in ``raw``, or :class:`RunResultError` naming ``shown`` with one line:
    empty, not UTF-8, truncated or corrupt JSON, nested too deeply, an integer literal too long
    to convert, or a top level that is not an object. One decoder for every reader of results.
    """
    if not raw.strip():
        raise RunResultError(shown, "empty file (expected a JSON object)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RunResultError(shown, f"not UTF-8 text (bad byte at offset {exc.start})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # a string cut by the end of the file is reported at its opening quote
        truncated = exc.pos >= len(text.rstrip()) or (
            exc.msg.startswith("Unterminated string") and "\n" not in text[exc.pos :].rstrip()
        )
        kind = "truncated JSON" if truncated else "corrupt JSON"
        raise RunResultError(
            shown, f"{kind}: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise RunResultError(shown, "corrupt JSON: nested too deeply") from exc
    except ValueError as exc:  # an integer literal with thousands of digits
        raise RunResultError(shown, f"corrupt JSON: {str(exc).split(':')[0]}") from exc
    if not isinstance(data, dict):
        raise RunResultError(
            shown, f"top-level JSON value must be an object, got {type_name(data)}"
        )
    return data


def load_run_result(path: str | os.PathLike[str]) -> RunResult:
    """Read and validate one result file: ours or a thesis-era one (any file name, with or
    without ``.json``). Secrets still present in old files are redacted on load.

    Raises:
        RunResultError: (a ``ValueError``) with a one-line ``"<path>: <problem>"`` message for a
            missing, unreadable, empty, truncated or corrupt file, a non-object top level, a
            missing required field, a field of the wrong type, or an unknown schema version.
    """
    source = Path(path)
    if source.is_dir():
        raise RunResultError(source, "is a directory, not a result file")
    # Regular files only, non-blocking, size-capped: a FIFO or /dev/zero under an output root
    # must not hang a sweep (the reader reporting uses).
    raw = read_result_bytes(source)
    data = decode_result_json(raw, str(source))
    return RunResult.from_dict(scrub_secrets(data), source=str(source))
