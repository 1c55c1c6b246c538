"""Hostile files where the runner reads and writes: checkpoints, CIFAR pickles, output targets.

A checkpoint or data file on disk may come from anyone, so reading one must never run code and a
damaged one must end in one line (exit 2) naming it; a write must never replace a device, FIFO,
socket or directory, must keep a symbolic link, and must clean the temporary files a killed
writer left behind.
"""

from __future__ import annotations

import os
import pickle
import re
import socket
import stat
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import torch
from run_checks import aees, cli_error, one_line_error

from aees import cli
from aees.results import load_run_result
from aees.runner.checkpoint import CHECKPOINT_VERSION
from aees.runner.engine import CHECKPOINT_NAME

TINY = ["--epochs", "1", "--batch-size", "256", "--quiet"]
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0

pytestmark = pytest.mark.usefixtures("one_thread")


def kind(path: Path) -> str:
    mode = os.lstat(path).st_mode
    for name, test in (
        ("link", stat.S_ISLNK),
        ("dir", stat.S_ISDIR),
        ("chr", stat.S_ISCHR),
        ("fifo", stat.S_ISFIFO),
        ("sock", stat.S_ISSOCK),
        ("file", stat.S_ISREG),
    ):
        if test(mode):
            return name
    return "other"


def temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# ------------------------------------------------------------------------------ checkpoints


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 1-epoch digits checkpoint (the corruption cases start from a copy)."""
    root = tmp_path_factory.mktemp("ckpt")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    argv = ["train", "digits", *TINY, "--output", str(root / "r.json")]
    assert cli.main([*argv, "--checkpoint-dir", str(root / "ck")]) == 0
    torch.set_num_threads(before)
    return root / "ck" / CHECKPOINT_NAME


class _RunsShell:
    """Unpickling this calls ``os.system`` (what a crafted checkpoint would do)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return (os.system, (self.command,))


class _RunsExec:
    """Unpickling this calls ``builtins.exec`` with Python source."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __reduce__(self) -> tuple:
        return (exec, (self.source,))


def _flip_a_bit(path: Path) -> None:
    """Flip one bit in the middle of the largest record's data (a tensor's bytes)."""
    with zipfile.ZipFile(path) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    with path.open("r+b") as handle:
        handle.seek(info.header_offset + 26)
        name_len, extra_len = (int.from_bytes(handle.read(2), "little") for _ in range(2))
        where = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
        handle.seek(where)
        byte = handle.read(1)[0]
        handle.seek(where)
        handle.write(bytes([byte ^ 0x10]))


def _corrupt(kind_: str, path: Path, good: Path) -> None:
    if kind_ == "directory":
        path.mkdir()
        (path / "data.pkl").write_bytes(b"x")
        return
    if kind_ == "fifo":
        os.mkfifo(path)
        return
    if kind_ == "non-dict":
        torch.save([1, 2, 3], path)
        return
    if kind_ == "missing-key":
        state = torch.load(good, map_location="cpu", weights_only=True)
        del state["rng"]
        torch.save(state, path)
        return
    if kind_ == "bad-progress":
        state = torch.load(good, map_location="cpu", weights_only=True)
        state["progress"]["epochs_done"] = "one"
        torch.save(state, path)
        return
    data = good.read_bytes()
    if kind_ == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind_ == "empty":
        path.write_bytes(b"")
    elif kind_ == "garbage":
        path.write_bytes(os.urandom(4096))
    elif kind_ == "bit-flipped":
        path.write_bytes(data)
        _flip_a_bit(path)
    else:  # pragma: no cover
        raise AssertionError(kind_)


CORRUPTIONS = [
    "truncated",
    "empty",
    "garbage",
    "bit-flipped",
    "directory",
    "fifo",
    "non-dict",
    "missing-key",
    "bad-progress",
]


@pytest.mark.slow
@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_unusable_checkpoint_is_one_line_and_leaves_the_result(checkpoint, tmp_path, corruption):
    ck = tmp_path / "ck"
    ck.mkdir()
    last = ck / CHECKPOINT_NAME
    _corrupt(corruption, last, checkpoint)
    before = last.read_bytes() if last.is_file() else None
    out = tmp_path / "r.json"
    out.write_text("the existing result\n")
    done = aees("train", "digits", *TINY, "--output", str(out), "--checkpoint-dir", str(ck),
                "--resume")  # fmt: skip
    one_line_error(done, str(last), "delete it to start over")
    assert out.read_text() == "the existing result\n"
    if before is not None:
        assert last.read_bytes() == before
    assert kind(last) == {"directory": "dir", "fifo": "fifo"}.get(corruption, "file")
    assert temps(tmp_path) == [] and temps(ck) == []


@pytest.mark.slow
@pytest.mark.parametrize("payload", ["os.system", "exec", "raw-pickle"])
def test_crafted_checkpoint_runs_no_code(checkpoint, tmp_path, capsys, payload):
    """A ``last.pt`` whose unpickling would create a file: refused, and no file appears."""
    marker = tmp_path / "PWNED"
    ck = tmp_path / "ck"
    ck.mkdir()
    last = ck / CHECKPOINT_NAME
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if payload == "os.system":
        state["provenance"] = _RunsShell(f"touch {marker}")
        torch.save(state, last)
    elif payload == "exec":
        state["config"] = _RunsExec(f"import pathlib; pathlib.Path({str(marker)!r}).touch()")
        torch.save(state, last)
    else:  # a legacy (non-zip) torch file: a bare pickle stream
        last.write_bytes(pickle.dumps(_RunsShell(f"touch {marker}"), protocol=2))
    argv = ["train", "digits", *TINY, "--output", str(tmp_path / "r.json"),
            "--checkpoint-dir", str(ck), "--resume"]  # fmt: skip
    if payload == "os.system":  # as the user meets it; the others in-process (faster)
        one_line_error(aees(*argv), str(last), "delete it to start over")
    else:
        cli_error(capsys, argv, str(last), "delete it to start over")
    assert not marker.exists()
    assert not (tmp_path / "r.json").exists()


VARIANTS = {
    "sgd-cosine": ["--optimizer", "SGD", "--lr-scheduler", "cosine", "--lr", "0.05"],
    "adaptive-dual-trend": [
        "--control-mode", "adaptive", "--lr-candidates", "0.5,1", "--noise-candidates",
        "0,0.01", "--context-mode", "trend", "--structured-control-mode", "conditional",
        "--track-update-norm", "--episode-length", "2",
    ],
    "random-warmup": [
        "--control-mode", "random", "--lr-candidates", "0.5,2", "--lr-scheduler",
        "warmup_linear", "--warmup-epochs", "1", "--episode-length", "3",
    ],
    "uniform-open-loop": [
        "--control-mode", "uniform-random", "--lr-candidates", "0.5,1,2", "--episode-length",
        "2",
    ],
    "label-noise-bf16-linear": ["--label-noise-type", "symmetric", "--label-noise-rate", "0.2",
                                "--precision", "bf16", "--lr-scheduler", "linear"],
}  # fmt: skip


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_own_checkpoints_load_as_data_only_and_resume(tmp_path, variant):
    """Every kind of state the engine saves loads with ``weights_only=True`` and resumes."""
    from aees.runner.checkpoint import load_checkpoint

    ck = tmp_path / "ck"
    argv = ["train", "digits", *TINY, *VARIANTS[variant], "--checkpoint-dir", str(ck)]
    assert cli.main([*argv, "--output", str(tmp_path / "a.json")]) == 0
    torch.load(ck / CHECKPOINT_NAME, map_location="cpu", weights_only=True)
    state = load_checkpoint(ck / CHECKPOINT_NAME)
    assert state["progress"]["epochs_done"] == 1
    # resuming a finished run restores every part and writes the same result
    assert cli.main([*argv, "--output", str(tmp_path / "b.json"), "--resume"]) == 0
    a, b = load_run_result(tmp_path / "a.json"), load_run_result(tmp_path / "b.json")
    assert a.val_accuracies == b.val_accuracies and a.train_losses == b.train_losses
    assert a.diagnostics.get("final_test_accuracy") == b.diagnostics.get("final_test_accuracy")
    assert b.provenance["resumed"] is True


def test_options_that_may_change_on_resume_are_the_resumable_specs(monkeypatch):
    """One list: which options a resumed run may change is ``OptionSpec.resumable`` (no hand-kept
    list in the engine): where-things-are options may differ, what is trained may not."""
    from dataclasses import replace

    from aees.runner import resume
    from aees.runner.config import RunConfig
    from aees.runner.summary import EngineError

    base = RunConfig(task_name="sst2", task_options={"cache_dir": "a", "max_length": 32})
    saved = {"version": CHECKPOINT_VERSION, "config": resume.config_fingerprint(base)}
    moved = {"cache_dir": "b", "max_length": 32, "tokenized_dataset_dir": "t"}
    elsewhere = replace(base, task_options=moved, output="x.json", run_tag="r", num_workers=1)
    resume.check_resumable(saved, replace(elsewhere, quiet=True), Path("last.pt"))
    for changed in (replace(base, seed=2), replace(base, task_options={"max_length": 64})):
        with pytest.raises(EngineError, match=re.escape("--resume: last.pt was written with")):
            resume.check_resumable(saved, changed, Path("last.pt"))
    # the metadata decides: declare --seed resumable and a changed seed resumes
    specs = resume.option_specs("sst2")
    specs["seed"] = replace(specs["seed"], resumable=True)
    monkeypatch.setattr(resume, "option_specs", lambda task: specs)
    saved = {"version": CHECKPOINT_VERSION, "config": resume.config_fingerprint(base)}
    resume.check_resumable(saved, replace(base, seed=2), Path("last.pt"))


def test_cifar100_checkpoint_with_device_loader_loads_as_data_only(tmp_path):
    pytest.importorskip("torchvision")
    from cifar_fixture import write_cifar100

    from aees.runner.checkpoint import load_checkpoint

    write_cifar100(tmp_path / "data", 16, 8, seed=3)
    argv = ["train", "cifar100", "--data-dir", str(tmp_path / "data"), "--device", "cpu",
            "--epochs", "1", "--batch-size", "8", "--quiet", "--control-mode", "adaptive",
            "--lr-candidates", "0.5,2", "--output", str(tmp_path / "r.json"),
            "--checkpoint-dir", str(tmp_path / "ck")]  # fmt: skip
    assert cli.main(argv) == 0
    state = load_checkpoint(tmp_path / "ck" / CHECKPOINT_NAME)
    assert isinstance(state["train_loader"]["generator_state"], torch.Tensor)


# ------------------------------------------------------------------------------ CIFAR pickles


@pytest.mark.slow
@pytest.mark.parametrize("payload", ["os.system", "exec"])
def test_crafted_cifar_pickle_runs_no_code(tmp_path, capsys, payload):
    pytest.importorskip("torchvision")
    from cifar_fixture import write_cifar100

    write_cifar100(tmp_path / "data", 16, 8, seed=2)
    train = tmp_path / "data" / "cifar-100-python" / "train"
    marker = tmp_path / "PWNED"
    evil = (
        _RunsShell(f"touch {marker}")
        if payload == "os.system"
        else _RunsExec(f"import pathlib; pathlib.Path({str(marker)!r}).touch()")
    )
    with train.open("wb") as handle:  # a data batch whose 'data' entry runs code
        pickle.dump({b"data": evil, b"fine_labels": [0], b"coarse_labels": [0]}, handle, 2)
    argv = ["train", "cifar100", "--data-dir", str(tmp_path / "data"), "--device", "cpu",
            "--epochs", "1", "--quiet", "--output", str(tmp_path / "r.json")]  # fmt: skip
    if payload == "os.system":  # as the user meets it; the other in-process (faster)
        line = one_line_error(aees(*argv), "--data-dir", str(train))
    else:
        line = cli_error(capsys, argv, "--data-dir", str(train))
    assert "system" in line or "exec" in line
    assert not marker.exists()
    assert not (tmp_path / "r.json").exists()


# ------------------------------------------------------------------------------ output targets


def _make_special(what: str, path: Path) -> socket.socket | None:
    """Create ``what`` at ``path``; returns a socket to close for ``socket``."""
    if what == "fifo":
        os.mkfifo(path)
    elif what == "socket":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        return sock
    elif what == "directory":
        path.mkdir()
    elif what == "device":
        if not IS_ROOT:
            pytest.skip("creating a device node needs root")
        try:  # a private twin of /dev/null (1, 3): never the system's own
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except PermissionError:
            pytest.skip("this system does not allow creating device nodes")
    else:  # pragma: no cover
        raise AssertionError(what)
    return None


SPECIAL = ["fifo", "socket", "directory", "device"]
KIND = {"fifo": "fifo", "socket": "sock", "directory": "dir", "device": "chr"}


@pytest.mark.parametrize("what", SPECIAL)
def test_atomic_write_refuses_special_targets(tmp_path, what):
    from aees.results.io import atomic_write_text

    target = tmp_path / "target"
    sock = _make_special(what, target)
    try:
        with pytest.raises(OSError, match="refusing to write"):
            atomic_write_text(target, "new\n")
        link = tmp_path / "link"
        link.symlink_to(target)
        with pytest.raises(OSError, match="refusing to write"):
            atomic_write_text(link, "new\n")
        assert kind(target) == KIND[what] and kind(link) == "link"
    finally:
        if sock is not None:
            sock.close()
    assert temps(tmp_path) == []


@pytest.mark.parametrize("what", SPECIAL)
def test_cli_refuses_special_output_before_training(tmp_path, capsys, what):
    target = tmp_path / "r.json"
    sock = _make_special(what, target)
    try:
        cli_error(capsys, ["train", "digits", *TINY, "--output", str(target)], "--output")
        assert kind(target) == KIND[what]
    finally:
        if sock is not None:
            sock.close()
    assert temps(tmp_path) == []


@pytest.mark.parametrize("what", SPECIAL)
def test_cli_refuses_special_checkpoint_file_before_training(tmp_path, capsys, what):
    """``--checkpoint-dir D`` where ``D/last.pt`` is not a file: refused before epoch 1."""
    ck = tmp_path / "ck"
    ck.mkdir()
    sock = _make_special(what, ck / CHECKPOINT_NAME)
    out = tmp_path / "r.json"
    try:
        argv = ["train", "digits", *TINY, "--output", str(out), "--checkpoint-dir", str(ck)]
        cli_error(capsys, argv, "--checkpoint-dir", str(ck / CHECKPOINT_NAME))
        assert kind(ck / CHECKPOINT_NAME) == KIND[what]
    finally:
        if sock is not None:
            sock.close()
    assert not out.exists()


@pytest.mark.skipif(not IS_ROOT, reason="only root could replace /dev/null")
def test_dev_null_output_is_refused_and_stays_a_device(capsys):
    argv = ["train", "digits", *TINY, "--output", "/dev/null"]
    cli_error(capsys, argv, "--output", "/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.slow
def test_output_with_trailing_separator_is_a_directory(tmp_path):
    target = str(tmp_path / "results") + os.sep
    done = aees("train", "digits", *TINY, "--output", target)
    one_line_error(done, "--output", "separator")
    assert not (tmp_path / "results").exists()


def test_output_the_kernel_refuses_fails_before_training(tmp_path, capsys):
    """``os.access`` accepts ``/proc`` for root; creating a file there fails: probe it."""
    if not Path("/proc/self").exists():
        pytest.skip("no /proc here")
    cli_error(capsys, ["train", "digits", *TINY, "--output", "/proc/aees-x.json"], "--output")
    assert not Path("/proc/aees-x.json").exists()


@pytest.mark.slow
def test_symlinked_output_is_written_through(tmp_path):
    real = tmp_path / "store" / "real.json"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "r.json"
    link.symlink_to(real)
    done = aees("train", "digits", *TINY, "--output", str(link))
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and Path(os.readlink(link)) == real
    assert load_run_result(real).total_epochs == 1
    assert temps(tmp_path) == [] and temps(real.parent) == []


def test_atomic_write_through_a_link_keeps_it(tmp_path):
    from aees.results.io import atomic_write_text

    real = tmp_path / "a" / "real.txt"
    real.parent.mkdir()
    real.write_text("old\n")
    link = tmp_path / "link.txt"
    link.symlink_to(Path("a") / "real.txt")  # relative, as users make them
    chain = tmp_path / "chain.txt"
    chain.symlink_to(link)
    assert atomic_write_text(chain, "new\n") == chain
    assert chain.is_symlink() and link.is_symlink() and real.read_text() == "new\n"
    assert temps(tmp_path) == [] and temps(real.parent) == []


# ------------------------------------------------------------------------------ stale temps


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.slow
def test_stale_temps_of_the_same_target_are_removed(tmp_path):
    """Removed: any old one, a young one of a dead writer on this host. Kept: a live writer's,
    a young one of unknown origin, and every other target's."""
    from aees.results.io import STALE_TEMP_SECONDS, atomic_write_text

    host, old = _host(), time.time() - STALE_TEMP_SECONDS - 60
    names = {
        f".r.json.{host}-{_dead_pid()}.abcdefgh.tmp": False,  # writer gone
        ".r.json.k2j4h5g6.tmp": False,  # old, mkstemp name of earlier versions (aged below)
        f".r.json.otherhost-{os.getpid()}.zz99yy88.tmp": False,  # old, other host (aged below)
        f".r.json.{host}-{os.getpid()}.live1234.tmp": True,  # a live writer (this process)
        ".r.json.young123.tmp": True,  # young, writer unknown
        ".r.json.x.oldoldol.tmp": True,  # old, but the temp of target "r.json.x"
        ".other.json.oldoldol.tmp": True,  # old, another target
        "r.json.tmp": True,  # not a temp name at all
    }
    for name in names:
        (tmp_path / name).write_text("partial")
    for name in (".r.json.k2j4h5g6.tmp", f".r.json.otherhost-{os.getpid()}.zz99yy88.tmp",
                 ".r.json.x.oldoldol.tmp", ".other.json.oldoldol.tmp"):  # fmt: skip
        os.utime(tmp_path / name, (old, old))
    atomic_write_text(tmp_path / "r.json", "{}\n")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"r.json", *(n for n, keep in names.items() if keep)}


def test_cli_cleans_temps_a_killed_run_left(tmp_path):
    """The result's and the checkpoint's leftovers go with the next write of each."""
    ck = tmp_path / "ck"
    ck.mkdir()
    out = tmp_path / "r.json"
    leftovers = [tmp_path / ".r.json.a1b2c3d4.tmp", ck / f".{CHECKPOINT_NAME}.e5f6g7h8.tmp"]
    old = time.time() - 3600
    for path in leftovers:
        path.write_bytes(b"half a file")
        os.utime(path, (old, old))
    argv = ["train", "digits", *TINY, "--output", str(out), "--checkpoint-dir", str(ck)]
    assert cli.main(argv) == 0
    assert temps(tmp_path) == [] and temps(ck) == []
    assert load_run_result(out).total_epochs == 1


def test_probe_leaves_nothing_behind(tmp_path):
    from aees.runner.config import writable_location_problem

    assert writable_location_problem(tmp_path / "new" / "r.json", is_dir=False) is None
    assert writable_location_problem(tmp_path / "ck", is_dir=True) is None
    assert writable_location_problem(tmp_path / "r.json", is_dir=False) is None
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ disk full
# A write that runs out of room ends the command with one line naming the file, what it needs
# and what there is (exit status 1), leaves the previous result and checkpoint as they were and
# no temporary file behind. Two ways to run out: a real 2 MB tmpfs (root, where mount works)
# and the process's file-size limit (EFBIG through the same write() calls, anywhere on POSIX).


def _limited(limit: int):
    """A ``preexec_fn``: files of at most ``limit`` bytes; an over-long write fails with EFBIG
    instead of killing the process with SIGXFSZ."""
    import resource
    import signal

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def aees_limited(limit: int, *args: str) -> subprocess.CompletedProcess[str]:
    return aees(*args, timeout=300, preexec_fn=_limited(limit))


def out_of_space_line(done: subprocess.CompletedProcess[str], path: Path, *needles: str) -> str:
    assert done.returncode == 1, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and "inline_container" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"error: {path}: cannot be written" in lines[0], lines[0]
    for needle in ("it needs", *needles):
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def no_temps_under(root: Path) -> None:
    assert sorted(p.name for p in root.rglob("*.tmp")) == []


def snapshot(*paths: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in paths}


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
def test_write_over_the_file_size_limit_is_one_line_and_keeps_the_old_files(checkpoint, tmp_path):
    """The checkpoint (``torch.save``: a RuntimeError from inline_container.cc before) and the
    result JSON (an OSError traceback before), each too large for ``ulimit -f``."""
    out, ck = tmp_path / "r.json", tmp_path / "ck"
    ck.mkdir()
    (ck / CHECKPOINT_NAME).write_bytes(checkpoint.read_bytes())
    out.write_bytes((checkpoint.parent.parent / "r.json").read_bytes())
    before = snapshot(out, ck / CHECKPOINT_NAME)
    argv = ["train", "digits", *TINY, "--output", str(out)]
    # the checkpoint (~180 KiB) is written first, at the end of the epoch
    done = aees_limited(64 * 1024, *argv, "--checkpoint-dir", str(ck))
    line = out_of_space_line(done, ck / CHECKPOINT_NAME, "ulimit -f", "64.0 KiB")
    assert "KiB, more than" in line
    assert snapshot(out, ck / CHECKPOINT_NAME) == before
    no_temps_under(tmp_path)
    # the result (~8 KiB) under a 4 KiB limit
    done = aees_limited(4096, *argv)
    out_of_space_line(done, out, "ulimit -f")
    assert snapshot(out, ck / CHECKPOINT_NAME) == before
    no_temps_under(tmp_path)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX resource limits")
def test_report_over_the_file_size_limit_is_one_line(checkpoint, tmp_path):
    pytest.importorskip("matplotlib")
    results = tmp_path / "results"
    results.mkdir()
    (results / "r.json").write_bytes((checkpoint.parent.parent / "r.json").read_bytes())
    out = tmp_path / "report"
    done = aees_limited(1024, "report", str(results), "--out", str(out))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "cannot be written: it needs" in errors[0], done.stderr
    assert f"{out}{os.sep}" in errors[0] and "ulimit -f" in errors[0]
    no_temps_under(tmp_path)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 2 MB tmpfs at ``tmp_path/small`` (skips where it cannot be mounted: not root, no
    mount(8), a container without CAP_SYS_ADMIN)."""
    where = tmp_path / "small"
    where.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError) as err:
        pytest.skip(f"cannot mount a tmpfs here: {err}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


def _fill(disk: Path, leave: int) -> None:
    """Fill ``disk`` until about ``leave`` bytes are free."""
    info = os.statvfs(disk)
    free = info.f_bavail * info.f_frsize
    with open(disk / "filler", "ab") as handle:
        handle.write(b"\0" * max(0, free - leave))


@pytest.mark.slow
def test_full_disk_is_one_line_and_keeps_the_old_files(small_disk):
    """The issue's setting: a 2 MB tmpfs output root that a run fills. ENOSPC at the checkpoint
    and then at the result: one line with the size needed and the space free, exit 1, the
    previous result and checkpoint intact, no partial file."""
    out, ck = small_disk / "r.json", small_disk / "ck"
    argv = ["train", "digits", *TINY, "--output", str(out)]
    done = aees(*argv, "--checkpoint-dir", str(ck))
    assert done.returncode == 0, done.stderr
    before = snapshot(out, ck / CHECKPOINT_NAME)
    _fill(small_disk, 64 * 1024)  # less than the ~180 KiB checkpoint
    done = aees(*argv, "--checkpoint-dir", str(ck))
    line = out_of_space_line(done, ck / CHECKPOINT_NAME, "no space left on device", "free there")
    assert re.search(r"it needs 1\d\d\.\d KiB; \d+(\.\d)? KiB free there", line), line
    assert snapshot(out, ck / CHECKPOINT_NAME) == before
    no_temps_under(small_disk)
    _fill(small_disk, 0)  # not even the ~8 KiB result fits
    done = aees(*argv)
    out_of_space_line(done, out, "no space left on device")
    assert snapshot(out, ck / CHECKPOINT_NAME) == before
    no_temps_under(small_disk)
