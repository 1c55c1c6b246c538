"""Where ``--tensorboard`` / ``--mlflow`` write, and which tracking URIs a run accepts.

Checked before training by the flag validation (:mod:`aees.runner.config`) and used again when
the trackers open (:mod:`aees.runner.tracking`); standard library only, so both can import it
(docs/protocols.md §3, "Tracking").
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import SplitResult, urlsplit
from urllib.request import url2pathname

from aees.results.secrets import redact_uris

__all__ = [
    "MLFLOW_URI_SCHEMES",
    "check_mlflow_uri",
    "result_stem",
    "split_uri",
    "sqlite_database",
    "tensorboard_run_dir",
    "uri_scheme",
]

#: ``--mlflow URI`` schemes MLflow's tracking client serves (``+driver`` suffixes allowed).
MLFLOW_URI_SCHEMES = ("http", "https", "databricks", "sqlite", "postgresql", "mysql", "mssql")


def result_stem(output_path: str | os.PathLike[str]) -> str:
    """``runs/r.json`` -> ``r``: the run's name in every tracker (unique per output path)."""
    name = Path(output_path).name
    return name[: -len(".json")] if name.endswith(".json") else name


def tensorboard_run_dir(board: str | os.PathLike[str], output_path: str | os.PathLike[str]) -> Path:
    """The directory ``--tensorboard DIR`` writes for the run whose result is ``output_path``."""
    return Path(os.path.expanduser(os.fspath(board))) / result_stem(output_path)


def split_uri(uri: str) -> SplitResult:
    """``urlsplit(uri)``, port included; :class:`ValueError` (credentials redacted) if it
    does not parse."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - parsing the port raises for a bad one
    except ValueError as err:
        raise ValueError(f"{redact_uris(uri)!r} is not a valid URI ({err})") from None
    return parts


def uri_scheme(parts: SplitResult) -> str:
    """The scheme without a ``+driver`` suffix, lower case."""
    return parts.scheme.lower().split("+")[0]


def sqlite_database(uri: str) -> Path | None:
    """The database file of an ``sqlite:`` tracking URI, else None (``sqlite:///x.db`` is
    ``x.db`` under the current directory, ``sqlite:////abs/x.db`` an absolute path)."""
    parts = split_uri(uri)
    if uri_scheme(parts) != "sqlite":
        return None
    return Path(url2pathname(parts.path[1:] if parts.path.startswith("/") else parts.path))


def check_mlflow_uri(uri: str) -> str:
    """``uri`` as the run will use it, or :class:`ValueError` saying why it cannot be used
    (one phrase, credentials redacted). A local store (a path or ``file:`` URI) is returned
    as given; an ``sqlite:`` URI gets an absolute database path, so a resumed run started
    from another directory finds the same database."""
    parts = split_uri(uri)
    shown = repr(redact_uris(uri))
    scheme = uri_scheme(parts)
    if not parts.scheme or parts.scheme.lower() == "file":
        return uri  # a directory (a bare word such as "databricks" is one too)
    if scheme not in MLFLOW_URI_SCHEMES:
        raise ValueError(f"{shown}: unsupported scheme {parts.scheme!r}")
    if parts.password is not None or (parts.username and scheme in ("http", "https")):
        raise ValueError(
            "must not carry credentials (they would be written to the result); set "
            "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN"
        )
    if scheme in ("http", "https") and not parts.hostname:
        raise ValueError(f"{shown} names no host (e.g. http://mlflow.example:5000)")
    if scheme != "sqlite":
        return uri
    if parts.netloc:
        raise ValueError(
            f"{shown}: an sqlite URI names a file, not a host "
            "(sqlite:///relative.db or sqlite:////absolute.db)"
        )
    database = sqlite_database(uri)
    if database is None or str(database) in ("", ".", ":memory:"):
        raise ValueError(
            f"{shown} names no database file (sqlite:///relative.db or sqlite:////absolute.db; "
            "an in-memory database would vanish with the run)"
        )
    absolute = database.expanduser().absolute().as_posix()  # "/abs/x.db": sqlite:////abs/x.db
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}:///{absolute}{query}"
