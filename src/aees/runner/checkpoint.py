"""Reading a training checkpoint back for ``--resume``: data only, checked, one line if unusable.

A checkpoint is a file on disk, and a file on disk may come from anyone (a shared directory, a
copied run, a crafted ``last.pt``), so reading one must never run code and a damaged one must
never end in a traceback. :func:`load_checkpoint` therefore

1. opens only a regular file (a directory, FIFO or device is refused without reading it, so a
   FIFO cannot hang the run);
2. requires the zip archive ``torch.save`` writes and verifies the CRC-32 of every record in it
   (torch's own reader skips that check, so a flipped bit in a tensor would otherwise be
   resumed from silently);
3. unpickles with ``torch.load(..., weights_only=True)``: the restricted unpickler builds
   tensors, dicts, lists, tuples, strings and numbers and refuses every other global, so no
   ``__reduce__`` trick can call ``os.system`` or ``exec``. The project's own checkpoints hold
   only such plain data (RNG states are tensors and tuples of ints, scheduler / optimizer /
   GradScaler / AEES states are dicts of numbers, lists and tensors), so no safe globals are
   registered;
4. checks the structure the engine relies on (every top-level key, its type, the progress
   fields).

Any failure raises :class:`CheckpointError` (a :class:`~aees.runner.config.UserError`:
one line, exit status 2) naming the file and saying to delete it to start over.
"""

from __future__ import annotations

import os
import pickle
import stat
import zipfile
from collections.abc import Mapping
from numbers import Real
from pathlib import Path
from typing import Any, BinaryIO

import torch

from aees.runner.config import UserError

__all__ = [
    "APPLY_ERRORS",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "does_not_fit",
    "load_checkpoint",
    "unusable",
]

CHECKPOINT_VERSION = 1
#: what restoring a checked checkpoint into a run may still raise (wrong shapes, a bad RNG state)
APPLY_ERRORS: tuple[type[Exception], ...] = (
    KeyError,
    TypeError,
    ValueError,
    RuntimeError,
    IndexError,
    AttributeError,
)

# top-level key -> the type its value must have (None allowed where the run has no such part)
_REQUIRED: dict[str, tuple[type, ...]] = {
    "version": (int,),
    "config": (dict,),
    "model": (dict,),
    "optimizer": (dict,),
    "flops": (dict,),
    "progress": (dict,),
    "provenance": (dict,),
    "rng": (dict,),
}
_OPTIONAL: tuple[str, ...] = ("scheduler", "scaler", "aees", "controller_logs", "train_loader")
_FLOAT_LISTS = ("train_losses", "train_accuracies", "val_accuracies", "epoch_wall_clock_seconds")
_COUNTS = ("epochs_done", "global_step", "segments")


class CheckpointError(UserError):
    """A checkpoint that cannot be resumed from; the message names the file and what to do."""


def unusable(path: str | os.PathLike[str], what: str) -> CheckpointError:
    """The one-line error for a checkpoint at ``path`` that ``what`` (a short phrase)."""
    return CheckpointError(
        f"--resume: checkpoint {os.fspath(path)} {what}; delete it to start over "
        "(or point --checkpoint-dir elsewhere)"
    )


def does_not_fit(path: str | os.PathLike[str], exc: BaseException) -> CheckpointError:
    """The one-line error for a checkpoint that loaded but could not be applied to this run."""
    return unusable(path, f"does not fit this run ({_first_line(exc)})")


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refusal(exc: pickle.UnpicklingError) -> str:
    """What the restricted unpickler refused, without torch's advice to load it unrestricted."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in lines if "global" in line.lower()]
    if not lines or not lines[0].startswith("Weights only load failed"):
        return f"cannot be read ({_first_line(exc)})"
    detail = (named or lines[1:2] or ["it holds something other than plain data"])[0]
    if len(detail) > 160:
        detail = detail[:157] + "..."
    return f"holds more than plain data and is not loaded, as it could run code ({detail})"


def _open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file (without blocking on a FIFO)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except IsADirectoryError:
        raise unusable(path, "is a directory, not a checkpoint file") from None
    except OSError as err:
        raise unusable(path, f"cannot be opened ({err.strerror or err})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise unusable(path, f"is {kind}, not a checkpoint file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _verify_archive(path: Path, handle: BinaryIO) -> None:
    """The file is a ``torch.save`` zip archive whose records all match their CRC-32."""
    if os.fstat(handle.fileno()).st_size == 0:
        raise unusable(path, "is empty")
    try:
        with zipfile.ZipFile(handle) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile:
        raise unusable(
            path, "is not a checkpoint written by aees (not a torch zip archive)"
        ) from None
    except (OSError, EOFError, ValueError, RuntimeError, OverflowError) as exc:
        raise unusable(path, f"is corrupt ({_first_line(exc)})") from None
    if bad is not None:
        raise unusable(path, f"is corrupt (record {bad!r} fails its checksum)")
    handle.seek(0)


def _check_progress(path: Path, progress: Mapping[str, Any]) -> None:
    for key in _COUNTS:
        value = progress.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise unusable(path, f"is malformed (progress {key!r} is not a count)")
    for key in _FLOAT_LISTS:
        values = progress.get(key)
        if not isinstance(values, list) or not all(isinstance(v, Real) for v in values):
            raise unusable(path, f"is malformed (progress {key!r} is not a list of numbers)")
        if len(values) != progress["epochs_done"]:
            raise unusable(path, f"is malformed (progress {key!r} does not cover every epoch)")
    skipped = progress.get("scaler_skipped_steps", 0)  # absent in checkpoints before it
    if not isinstance(skipped, int) or isinstance(skipped, bool) or skipped < 0:
        raise unusable(path, "is malformed (progress 'scaler_skipped_steps' is not a count)")
    best = progress.get("best_epoch")
    if best is not None and (not isinstance(best, int) or isinstance(best, bool)):
        raise unusable(path, "is malformed (progress 'best_epoch' is not an epoch number)")
    for key in ("best_val", "elapsed_before"):
        if not isinstance(progress.get(key), Real):
            raise unusable(path, f"is malformed (progress {key!r} is not a number)")
    weights = progress.get("best_weights")
    if weights is not None and not isinstance(weights, dict):
        raise unusable(path, "is malformed (progress 'best_weights' is not a state dict)")


def _check_structure(path: Path, state: Any) -> dict[str, Any]:
    if not isinstance(state, dict):
        raise unusable(path, f"holds a {type(state).__name__}, not an aees checkpoint")
    missing = [key for key in (*_REQUIRED, *_OPTIONAL) if key not in state]
    if missing:
        raise unusable(path, f"is incomplete (no {', '.join(repr(k) for k in missing)})")
    if state["version"] != CHECKPOINT_VERSION or isinstance(state["version"], bool):
        raise unusable(path, f"is not an aees checkpoint of version {CHECKPOINT_VERSION}")
    for key, types in _REQUIRED.items():
        if not isinstance(state[key], types):
            raise unusable(path, f"is malformed ({key!r} is a {type(state[key]).__name__})")
    for key in _OPTIONAL:
        if state[key] is not None and not isinstance(state[key], dict):
            raise unusable(path, f"is malformed ({key!r} is a {type(state[key]).__name__})")
    rng = state["rng"]
    if not (
        isinstance(rng.get("torch"), torch.Tensor)
        and isinstance(rng.get("data_order"), torch.Tensor)
        and isinstance(rng.get("python"), tuple)
    ):
        raise unusable(path, "is malformed (its RNG states are incomplete)")
    _check_progress(path, state["progress"])
    return state


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint at ``path`` (on the CPU), read as data only and checked.

    Raises:
        CheckpointError: it is not a regular file, not a ``torch.save`` archive, corrupt,
            refers to anything but plain data (a crafted pickle), or lacks what a resume needs.
    """
    where = Path(path)
    with _open_regular(where) as handle:
        _verify_archive(where, handle)
        try:
            state = torch.load(handle, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise unusable(where, _refusal(exc)) from None
        except Exception as exc:  # any other failure to read it gets the same answer
            raise unusable(where, f"cannot be read ({_first_line(exc)})") from None
    return _check_structure(where, state)
