"""Where a planned run may write: every path field and every path a write flag names must lie
strictly inside the output root (:func:`path_problem`, :func:`write_flag_problem`); a relative
write-flag value is taken relative to the root (:func:`rooted`); an ``--mlflow`` tracking server
is not a path (:func:`tracking_server`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from aees.runner.config import flag_of

__all__ = [
    "PATH_FIELDS",
    "path_problem",
    "rooted",
    "tracking_server",
    "write_flag_problem",
]

#: The run fields that name a file or directory, relative to the output root.
PATH_FIELDS = ("output", "log", "checkpoint_dir")


def _tracking_path(uri: str) -> str | None:
    """The local path an MLflow ``--mlflow`` value writes (a store directory, a ``file:`` URI's
    path, a ``sqlite:`` database file: ``sqlite:///rel.db`` is relative, ``sqlite:////abs.db``
    absolute), or None for a tracking server."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if not scheme:
        return uri
    if scheme == "file":
        return url2pathname(parts.path)
    if scheme == "sqlite":
        return parts.path[1:] if parts.path.startswith("/") else parts.path
    return None


def tracking_server(value: Any) -> str | None:
    """``value`` (an ``mlflow`` flag) if it names a tracking server (``http(s)://``,
    ``databricks``, a database server, ...), else None (a local store, or not set)."""
    if not isinstance(value, str) or not value.strip():
        return None
    return value if _tracking_path(value) is None else None


def _write_target(key: str, value: str) -> str | None:
    """The file-system path a write flag's value names (None: a tracking server)."""
    return _tracking_path(value) if key == "mlflow" else value


def write_flag_problem(output_root: str | os.PathLike[str], key: str, value: Any) -> str | None:
    """Why write flag ``key`` = ``value`` may not be used under ``output_root``, or None.

    The path it names (for ``mlflow``, the local store or database file a URI names) must lie
    strictly inside the output root once resolved, symbolic links as they are now; a relative
    path is taken relative to the output root (:func:`run_command` passes it so). A tracking
    server is not a path: :func:`tracking_server`, which the sweep checks against
    ``--allow-tracking-uri``. The message names the flag.
    """
    if not isinstance(value, str):
        return None  # types are checked elsewhere; None = not set
    flag = flag_of(key)
    target = _write_target(key, value)
    if target is None:
        return None
    if not target.strip() or "\0" in target:
        return f"{flag} {value!r} names no path to write"
    root = Path(output_root).resolve()
    resolved = (root / os.path.expanduser(target)).resolve()
    if resolved == root or root not in resolved.parents:
        return (
            f"{flag} {value!r} resolves to {resolved}, outside the output root {root}; a "
            "planned run may write only inside its output root"
        )
    return None


def rooted(key: str, value: Any, output_root: str | os.PathLike[str]) -> Any:
    """A write flag's value with a relative path made absolute under ``output_root``."""
    if not isinstance(value, str):
        return value
    target = _write_target(key, value)
    if target is None or not target.strip() or os.path.isabs(os.path.expanduser(target)):
        return value
    path = Path(os.path.abspath(Path(output_root, target)))
    if key != "mlflow" or target == value:
        return str(path)
    parts = urlsplit(value)
    if parts.scheme.lower() == "file":
        return path.as_uri()
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}:///{path}{query}"  # sqlite:////abs/path.db


def path_problem(output_root: str | os.PathLike[str], relative: str) -> str | None:
    """Why ``<output_root>/<relative>`` is not a place a run may use, or None.

    It must lie strictly inside the output root once resolved (``..``, absolute paths and
    symbolic links that lead out, or back to the root itself, are refused): the sweep writes
    there and deletes checkpoint directories there, so a path in a hand-edited manifest must never
    reach anything else.
    """
    if "\0" in relative:
        return "contains a NUL character"
    pure = Path(relative)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        return f"{relative!r} must be a path inside output_root (relative, without '..')"
    root = Path(output_root).resolve()
    target = (root / pure).resolve()
    if target == root or root not in target.parents:
        return f"{relative!r} resolves to {target}, outside the output root {root}"
    return None
