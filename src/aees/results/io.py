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

A write that fails for lack of space (``ENOSPC``: the disk is full; ``EDQUOT``: a quota;
``EFBIG``: the process's file-size limit, ``ulimit -f``) raises :class:`OutOfSpaceError`, an
``OSError`` whose message is one line naming the file, the size it needs and the space there is
(docs/results-schema.md §1). ``torch.save`` reports a failed write of its handle as a
``RuntimeError`` (``enforce fail at inline_container.cc``) that drops the errno, so the handle
given to ``write`` keeps the first ``OSError`` of its writes, and that is what decides.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from aees.results.schema import RunResultError

__all__ = [
    "MAX_RESULT_BYTES",
    "STALE_TEMP_SECONDS",
    "OutOfSpaceError",
    "UnsafeTargetError",
    "atomic_write",
    "atomic_write_text",
    "display_path",
    "open_regular_file",
    "out_of_space",
    "read_regular_file",
    "read_result_bytes",
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


#: errnos that mean "no room for this file": disk full, quota exceeded, file-size limit
_SPACE_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG) if code
)


class OutOfSpaceError(OSError):
    """A file could not be written for lack of space; ``str()`` is one line: the file, the size
    it needs and the space there is. ``filename`` is the file, ``strerror`` the rest."""

    def __str__(self) -> str:
        return f"{display_path(self.filename)}: {self.strerror}"


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    unit = "KiB" if count < 2**20 else "MiB" if count < 2**30 else "GiB"
    scale = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]
    return f"{count / scale:.1f} {unit}"


def _free_bytes(directory: Path) -> int | None:
    for where in (directory, *directory.parents):  # the nearest one that exists
        try:
            info = os.statvfs(where)
        except (OSError, AttributeError):
            continue
        return info.f_bavail * info.f_frsize
    return None


def _file_size_limit() -> int | None:
    try:
        import resource
    except ImportError:  # not on POSIX
        return None
    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return None if soft == resource.RLIM_INFINITY else soft


def out_of_space(
    err: BaseException, path: str | os.PathLike[str] | None = None, *, needs: int | None = None
) -> OutOfSpaceError | None:
    """``err`` as an :class:`OutOfSpaceError` if it is a lack of space (see the module
    docstring), else None. ``path``: the file being written (default: ``err.filename``);
    ``needs``: its size in bytes when known. The free space is asked of the file system after
    the failed write's temporary file is gone."""
    if not isinstance(err, OSError) or err.errno not in _SPACE_ERRNOS:
        return None
    if isinstance(err, OutOfSpaceError):
        return err
    where = path if path is not None else err.filename
    if where is None:
        return None
    target = Path(os.fsdecode(where))
    need = f"it needs {_size(needs)}" if needs is not None else "it needs more room"
    limit = _file_size_limit()
    if err.errno == errno.EFBIG and limit is not None:
        why = f"{need}, more than this process's file-size limit (ulimit -f) of {_size(limit)}"
    elif err.errno == errno.EFBIG:
        why = f"{need}, more than its file system allows in one file"
    else:
        free = _free_bytes(target.parent)
        room = "" if free is None else f"; {_size(free)} free there"
        what = "disk quota exceeded" if err.errno != errno.ENOSPC else "no space left on device"
        why = f"{what} ({need}{room})"
    return OutOfSpaceError(err.errno, f"cannot be written: {why}", os.fspath(target))


class _RecordingHandle:
    """The handle ``atomic_write`` passes on: the real one, counting what was written and
    keeping the first ``OSError`` of its writes (``torch.save`` turns it into a RuntimeError)."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.error: OSError | None = None
        self.written = 0

    def write(self, data: Any) -> int:
        try:
            count = self._handle.write(data)
        except OSError as err:
            if self.error is None:
                self.error = err
            raise
        self.written += count or 0
        return count

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


class _SizeCounter(io.RawIOBase):
    """A sink that only counts: what ``write`` would have written, without storing it."""

    def __init__(self) -> None:
        self.position = self.size = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        count = memoryview(data).nbytes
        self.position += count
        self.size = max(self.size, self.position)
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def tell(self) -> int:
        return self.position


def _size_of(write: Callable[[BinaryIO], object], at_least: int) -> int | None:
    """How many bytes ``write`` writes (run again into a counter), for the message of a write
    that failed for lack of space; at least ``at_least``; None if it cannot be told."""
    counter = _SizeCounter()
    try:
        write(counter)  # type: ignore[arg-type]
    except Exception:
        return at_least or None
    return max(counter.size, at_least)


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
    and nothing is written. A write that fails for lack of space raises
    :class:`OutOfSpaceError` (one line: the file, the size it needs, the space there is); the
    temporary file is removed and what was at ``path`` is left as it was.
    """
    target = resolve_target(path)  # refuses before any directory is created
    given = Path(path)
    try:
        if target == given:
            target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(target)
        fd, tmp_name = _make_temp(target)
    except OSError as err:
        raise (out_of_space(err, target) or err) from None
    recorder: _RecordingHandle | None = None
    try:
        with os.fdopen(fd, "wb") as handle:
            recorder = _RecordingHandle(handle)
            write(recorder)  # type: ignore[arg-type]
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        # checked again right before the rename: something may have appeared meanwhile
        why = target_problem(target)
        if why is not None:
            raise UnsafeTargetError(f"refusing to write {os.fspath(path)!r}: it {why}")
        os.replace(tmp_name, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        recorded = recorder.error if recorder is not None else None
        cause = recorded if recorded is not None and not isinstance(exc, OSError) else exc
        if isinstance(cause, OSError) and cause.errno in _SPACE_ERRNOS:
            needs = _size_of(write, recorder.written if recorder is not None else 0)
            raise out_of_space(cause, target, needs=needs) from None
        raise
    _fsync_directory(target.parent)
    return given


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write` of ``text`` as UTF-8 (``\\n`` line ends kept as given)."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda handle: handle.write(data))


# --------------------------------------------------------------------------------------------
# Reading result files safely
# --------------------------------------------------------------------------------------------

MAX_RESULT_BYTES = 64 * 1024 * 1024
"""Largest file discovery reads (64 MiB; results are kilobytes, thesis-era noisy CIFAR files
a few MB). A larger file is listed and skipped unread, so one stray file cannot exhaust memory."""

_FILE_KINDS = (
    (stat.S_ISDIR, "directory"),
    (stat.S_ISFIFO, "FIFO"),
    (stat.S_ISCHR, "character device"),
    (stat.S_ISBLK, "block device"),
    (stat.S_ISSOCK, "socket"),
)


def display_path(path: str | os.PathLike[str]) -> str:
    """``path`` as one printable line: control characters (a newline in a file name) and bytes
    that are not UTF-8 are shown as backslash escapes, so a listing stays one line per file."""
    text = os.fsencode(path).decode("utf-8", "backslashreplace")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        text = "".join(
            ch.encode("unicode_escape").decode("ascii") if ord(ch) < 32 or ord(ch) == 127 else ch
            for ch in text
        )
    return text


def _file_kind(mode: int) -> str:
    return next((name for test, name in _FILE_KINDS if test(mode)), "special file")


def read_result_bytes(path: str | os.PathLike[str], limit: int = MAX_RESULT_BYTES) -> bytes:
    """The bytes of result file ``path``: :func:`read_regular_file` with the result cap."""
    return read_regular_file(path, max_bytes=limit)


@contextlib.contextmanager
def open_regular_file(
    path: str | os.PathLike[str], *, max_bytes: int | None = None, what: str = ""
) -> Iterator[BinaryIO]:
    """``path`` opened for binary reading if it is (or links to) a regular file of at most
    ``max_bytes`` bytes (None: any size); for a reader that streams instead of loading.

    Why so careful: opening a FIFO blocks until a writer appears and reading a link to
    ``/dev/zero`` never ends. So the target is stat-ed first (following links, which is what a
    read would reach), opened non-blocking, and checked again on the open descriptor (the path
    may have been swapped in between).

    Raises:
        RunResultError: (a ``ValueError``) one line, ``"<what> <path>: <problem>"``: missing,
            not a regular file, larger than ``max_bytes``, or unreadable.
    """
    source = Path(path)
    shown = f"{what} {display_path(source)}" if what else display_path(source)
    try:
        before = os.stat(source)
    except FileNotFoundError as exc:
        problem = "broken link" if source.is_symlink() else "no such file"
        raise RunResultError(shown, problem) from exc
    except OSError as exc:
        raise RunResultError(shown, f"cannot stat ({exc.strerror or exc})") from exc
    _check_regular(source, shown, before, max_bytes)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(source, flags | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise RunResultError(shown, f"cannot read file ({exc.strerror or exc})") from exc
    try:
        _check_regular(source, shown, os.fstat(fd), max_bytes)
        handle = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def read_regular_file(path: str | os.PathLike[str], *, max_bytes: int, what: str = "") -> bytes:
    """The bytes of ``path`` if it is (or links to) a regular file of at most ``max_bytes``
    bytes: the one reader of files a user hands over (results, label-noise maps, ...).

    ``what`` names the input in the message (``"--label-noise-map"``). The file is checked as by
    :func:`open_regular_file` and read for at most ``max_bytes + 1`` bytes, so a file that grows
    while being read is refused too.

    Raises:
        RunResultError: (a ``ValueError``) one line, ``"<what> <path>: <problem>"``: missing,
            not a regular file, larger than ``max_bytes``, or unreadable.
    """
    shown = f"{what} {display_path(path)}" if what else display_path(path)
    with open_regular_file(path, max_bytes=max_bytes, what=what) as handle:
        chunks, size = [], 0
        try:
            while size <= max_bytes:
                chunk = handle.read(min(1 << 20, max_bytes + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except OSError as exc:
            raise RunResultError(shown, f"cannot read file ({exc.strerror or exc})") from exc
    if size > max_bytes:
        raise RunResultError(shown, _too_large(size, max_bytes, grew=True))
    return b"".join(chunks)


def _check_regular(source: Path, shown: str, st: os.stat_result, limit: int | None) -> None:
    if not stat.S_ISREG(st.st_mode):
        kind = _file_kind(st.st_mode)
        via = ", reached through a link" if source.is_symlink() else ""
        raise RunResultError(shown, f"not a regular file ({kind}{via}); not read")
    if limit is not None and st.st_size > limit:
        raise RunResultError(shown, _too_large(st.st_size, limit))


def _too_large(size: int, limit: int, *, grew: bool = False) -> str:
    cap = f"the {limit / 2**20:g} MiB cap" if limit >= 2**20 else f"the {limit}-byte cap"
    if grew:
        return f"grew larger than {cap} while being read; not used"
    return f"larger than {cap} ({size} bytes); not read"
