"""The checks of a run's configuration that ask the machine (docs/protocols.md §3): the device
exists, a peer optimizer's package is installed, the places the run writes can be written. Every
problem ends the process through ``parser.error``: exit status 2, one line, before any data is
loaded, so a run never trains for hours and then fails to save."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit
from urllib.request import url2pathname

from aees.runner.config.options import PEER_PACKAGES, device_format_problem
from aees.runner.config.run import RunConfig


def writable_location_problem(path: str | os.PathLike[str], *, is_dir: bool) -> str | None:
    """Why ``path`` could not be created/written (a short phrase), or None if it can.

    A file target must be nothing yet or a regular file (a symbolic link counts as what it
    points to; a directory, device, FIFO or socket is refused, since the atomic write would
    replace it), and a trailing separator names a directory. Writability is asked of the kernel,
    not only of ``os.access`` (which as root accepts e.g. ``/proc``): a temporary file is
    created and removed in the directory that will hold the file, or in its nearest existing
    ancestor when that does not exist yet. Nothing else is created.
    """
    from aees.results.io import target_problem, write_probe

    text = os.path.expanduser(os.fspath(path))
    target = Path(text)
    if not is_dir:
        why = target_problem(text)
        if why is not None:
            return why
        if target.is_symlink():  # written through: what counts is where the link leads
            target = Path(os.path.realpath(target))
            if not target.parent.is_dir():
                return f"is a link into {str(target.parent)!r}, which is not a directory"
    if target.exists():
        if is_dir and not target.is_dir():
            return "exists and is not a directory"
        check = target if is_dir else target.parent
        if not os.access(check, os.W_OK | os.X_OK):
            return f"directory {str(check)!r} is not writable"
        if not is_dir and not os.access(target, os.W_OK):
            return "exists and is not writable"
        refused = write_probe(check, target.name if not is_dir else "aees-probe")
        if refused is not None:
            return f"directory {str(check)!r} refuses new files ({refused})"
        return None
    parent = target if is_dir else target.parent
    probe = parent.absolute()
    child = target.name
    while not probe.exists():
        if probe.parent == probe:
            return "has no existing parent directory"
        probe, child = probe.parent, probe.name
    if not probe.is_dir():
        return f"{str(probe)!r} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"directory {str(probe)!r} is not writable"
    refused = write_probe(probe, child)
    if refused is not None:
        return f"directory {str(probe)!r} refuses new files ({refused})"
    return None


def _device_problem(device: str, precision: str) -> tuple[str, str] | None:
    """(flag, message) for an unusable ``--device`` / ``--precision``, else None."""
    why = device_format_problem(device)
    if why is not None:
        return "--device", why
    if device in ("cpu", "auto") and precision != "fp16":
        return None  # nothing to check (auto falls back to the CPU)
    import torch

    cuda = torch.cuda.is_available()
    if device.startswith("cuda"):
        if not cuda:
            return "--device", f"{device} requested but CUDA is not available"
        if ":" in device and int(device[5:]) >= torch.cuda.device_count():
            return "--device", f"{device} requested but only {torch.cuda.device_count()} GPU(s)"
    if precision == "fp16" and (device == "cpu" or not cuda):
        return "--precision", "fp16 needs a CUDA device (use bf16 or fp32 on the CPU)"
    return None


def _local_store_path(uri: str) -> str | None:
    """The directory of a local MLflow file store URI (a path or ``file:``), else None."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        return url2pathname(parts.path)
    if not parts.scheme or (len(parts.scheme) == 1 and os.name == "nt"):  # a drive letter
        return uri
    return None


def _validate_tracking(fail: Any, board: str | None, uri: str | None, output: str) -> str | None:
    """``--tensorboard DIR`` / ``--mlflow [URI]``: the package is installed, a local target
    (the run's TensorBoard directory, an sqlite database) is writable, and a URI parses and
    holds no credentials (:func:`aees.runner.tracking_targets.check_mlflow_uri`). A local
    MLflow store becomes an absolute ``file:`` URI, an sqlite database an absolute path: the
    returned ``--mlflow`` value."""
    from importlib.util import find_spec

    from aees.runner.tracking_targets import (
        check_mlflow_uri,
        sqlite_database,
        tensorboard_run_dir,
    )

    if board is not None:
        if not str(board).strip():
            fail("--tensorboard", "must name a directory")
        if find_spec("tensorboard") is None:
            fail("--tensorboard", "needs the tensorboard package: pip install 'aees[tracking]'")
        why = writable_location_problem(board, is_dir=True)
        if why is not None:
            fail("--tensorboard", f"{board!r} cannot be written: {why}")
        run_dir = tensorboard_run_dir(board, output)
        why = writable_location_problem(run_dir, is_dir=True)
        if why is not None:
            fail("--tensorboard", f"run directory {str(run_dir)!r} cannot be written: {why}")
    if uri is None:
        return None
    uri = str(uri).strip()
    if not uri:
        fail("--mlflow", "must be a tracking URI or a directory (or give no value: ./mlruns)")
    if find_spec("mlflow") is None:
        fail("--mlflow", "needs the mlflow package: pip install 'aees[tracking]'")
    try:
        uri = check_mlflow_uri(uri)
    except ValueError as err:
        fail("--mlflow", str(err))
    local = _local_store_path(uri)
    if local is not None:
        why = writable_location_problem(local, is_dir=True)
        if why is not None:
            fail("--mlflow", f"{local!r} cannot be written: {why}")
        return Path(local).expanduser().absolute().as_uri()
    database = sqlite_database(uri)
    if database is not None:
        why = writable_location_problem(database, is_dir=False)
        if why is not None:
            fail("--mlflow", f"database {str(database)!r} cannot be written: {why}")
    return uri


def fail_with(parser: argparse.ArgumentParser) -> Any:
    def fail(flag: str, message: str) -> NoReturn:
        from aees.results.secrets import redact_uris  # a message never shows a URI's secrets

        parser.error(redact_uris(f"{flag} {message}"))

    return fail


def check_machine(parser: argparse.ArgumentParser, config: RunConfig) -> RunConfig:
    """The checks that ask the machine, after the values were checked (by :class:`RunConfig`):
    the device exists, fast mode works here, a peer optimizer's package is installed,
    ``--output`` / ``--checkpoint-dir`` / the trackers can be written. The first problem ends
    the process via ``parser.error``. Returns ``config`` with a local MLflow store resolved to an
    absolute ``file:`` URI (an sqlite database to an absolute path)."""
    from aees.runner.fast import fast_mode_problem  # imports torch: only when validating

    fail = fail_with(parser)
    problem = _device_problem(config.device, config.precision) or fast_mode_problem(config)
    if problem is not None:
        fail(*problem)
    package = PEER_PACKAGES.get(config.optimizer)
    if package is not None:
        from importlib.util import find_spec

        if find_spec(package) is None:
            fail(
                "--optimizer",
                f"{config.optimizer} needs the {package} package: pip install 'aees[peers]' "
                f"(or pip install {package})",
            )
    output = config.output_path
    why = writable_location_problem(output, is_dir=False)
    if why is not None:
        fail("--output", f"{output!r} cannot be written: {why}")
    if config.checkpoint_dir:
        why = writable_location_problem(config.checkpoint_dir, is_dir=True)
        if why is not None:
            fail("--checkpoint-dir", f"{config.checkpoint_dir!r} cannot be written: {why}")
    mlflow = _validate_tracking(fail, config.tensorboard, config.mlflow, output)
    if mlflow != config.mlflow:
        object.__setattr__(config, "mlflow", mlflow)  # the same store, checked: no new check
    return config
