"""Atomic file replacement: readers see the old file or the new one, never a partial one.

Every file the project writes (results, checkpoints, label-noise side files, manifests, tables,
figures) goes through :func:`atomic_write`: the content is written to a temporary file in the
target's directory, flushed and fsynced, then renamed over the target (``os.replace``); on any
failure the temporary file is removed and the target is untouched.

What is at the target decides what happens, because a rename replaces whatever is there:

* nothing or a regular file: replaced;
* a symbolic link: followed; the file it points to is replaced (atomically, in *its*
  directory) and the link itself is kept;
* a directory, device, FIFO or socket: refused (:class:`UnsafeTargetError`) before anything is
  written, so e.g. ``/dev/null`` is never turned into a regular file;
* a path that ends with a separator (``out/``) names a directory: refused likewise.

Temporary files are named ``.<name>.<host>-<pid>.<random>.tmp``. A writer killed before its
rename leaves one behind; each write removes the leftovers of the *same* target that are stale:
written by a process of this host that no longer exists, or (any writer, and the older
``.<name>.<random>.tmp`` names) not modified for :data:`STALE_TEMP_SECONDS`. A live writer's
temporary file on this host is never touched, whatever its age.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "STALE_TEMP_SECONDS",
    "UnsafeTargetError",
    "atomic_write",
    "atomic_write_text",
    "remove_stale_temps",
    "resolve_target",
    "target_problem",
    "write_probe",
]

#: a temporary file of another host's writer, or of an unknown one, is stale after this long
STALE_TEMP_SECONDS = 15 * 60

# the random part tempfile.mkstemp puts in a name
_RANDOM = r"[a-z0-9_]{8}"


class UnsafeTargetError(OSError):
    """The target of a write is not something a rename may replace (a directory, device, ...)."""


def _host_tag() -> str:
    """This host's name reduced to ``[A-Za-z0-9-]`` (a name fragment, at most 32 characters)."""
    name = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32]
    return name or "host"


def _kind(mode: int) -> str | None:
    """What a non-regular file is, in words; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _ends_with_separator(path: str | os.PathLike[str]) -> bool:
    text = os.fspath(path)
    return text.endswith(os.sep) or bool(os.altsep and text.endswith(os.altsep))


def target_problem(path: str | os.PathLike[str]) -> str | None:
    """Why a file may not be written at ``path`` (a short phrase), or None if it may.

    Symbolic links are followed: what matters is what the link points to.
    """
    if _ends_with_separator(path):
        return "ends with a path separator, so it names a directory, not a file"
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return None  # nothing there (or a dangling link): a new file is created
    except OSError as err:
        return f"cannot be examined ({err.strerror or err})"
    kind = _kind(mode)
    return None if kind is None else f"is {kind}, not a regular file"


def resolve_target(path: str | os.PathLike[str]) -> Path:
    """Where a write to ``path`` really lands: ``path`` itself, or the file a link points to.

    Raises :class:`UnsafeTargetError` when that is not a regular file (or nothing yet).
    """
    why = target_problem(path)
    if why is not None:
        raise UnsafeTargetError(f"refusing to write {os.fspath(path)!r}: it {why}")
    target = Path(path)
    if target.is_symlink():
        return Path(os.path.realpath(target))
    return target


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    except OSError:
        return True  # cannot tell: keep its file
    return True


def remove_stale_temps(target: Path, *, now: float | None = None) -> list[Path]:
    """Remove the stale temporary files of ``target`` (see the module docstring); returns them.

    Only regular files whose names match this module's temporary names for ``target`` exactly
    are considered; anything else in the directory is left alone.
    """
    directory = target.parent
    pattern = re.compile(
        re.escape(f".{target.name}.")
        + rf"(?:(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.)?{_RANDOM}\.tmp"
    )
    now = time.time() if now is None else now
    host = _host_tag()
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        if match["pid"] is not None and match["host"] == host:
            pid = int(match["pid"])
            if pid == os.getpid() or _pid_alive(pid):
                continue  # a live writer on this host (possibly another thread of ours)
            stale = True
        else:
            stale = now - info.st_mtime > STALE_TEMP_SECONDS
        if stale:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
    return removed


def _make_temp(target: Path) -> tuple[int, str]:
    """A new temporary file for ``target`` in its directory: (fd, name)."""
    prefix = f".{target.name}.{_host_tag()}-{os.getpid()}."
    return tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=target.parent)


def write_probe(directory: str | os.PathLike[str], name: str) -> str | None:
    """Create and remove a temporary file for ``name`` in ``directory``: None if that worked,
    else why not (the OS's words). Asks the kernel itself, which ``os.access`` does not (as root
    it accepts e.g. ``/proc``, where nothing can be created)."""
    try:
        fd, tmp_name = _make_temp(Path(directory) / name)
    except OSError as err:
        return err.strerror or str(err)
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp_name)
    return None


def _fsync_directory(directory: Path) -> None:
    """Persist the rename itself (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Replace ``path`` with what ``write(handle)`` writes to a binary handle; returns the path.

    Creates parent directories. The new file gets mode 0644. A symbolic link is written
    through (the file it points to is replaced, the link kept); a directory, device, FIFO or
    socket at ``path``, or a ``path`` ending with a separator, raises :class:`UnsafeTargetError`
    and nothing is written.
    """
    target = resolve_target(path)  # refuses before any directory is created
    given = Path(path)
    if target == given:
        target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(target)
    fd, tmp_name = _make_temp(target)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        # checked again right before the rename: something may have appeared meanwhile
        why = target_problem(target)
        if why is not None:
            raise UnsafeTargetError(f"refusing to write {os.fspath(path)!r}: it {why}")
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(target.parent)
    return given


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write` of ``text`` as UTF-8 (``\\n`` line ends kept as given)."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda handle: handle.write(data))
