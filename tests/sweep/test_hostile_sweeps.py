"""Hostile sweep manifests, through ``aees sweep`` in a subprocess: path fields that escape the
output root, commands that are not the planned ones, fields of the wrong type, two sweeps on one
output root, and checkpoint directories holding files the sweep did not write.

A manifest is data that travels between people and machines; a sweep must neither delete nor
execute what a hand-edited one says. Every refusal is one line naming the run and the field,
exit status 2, before anything runs, is deleted or is rewritten.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sweep_presets import TINY, image_preset

from aees.sweep.manifest import write_manifest
from aees.sweep.plan import build_plan

pytestmark = pytest.mark.slow

RUN = "adamw_seed0"
ERROR = "aees sweep: error:"


def _plan(directory: Path, **options: Any) -> tuple[Path, dict[str, Any]]:
    """The 4-run digits plan with results under ``directory/out``: its path and its JSON."""
    directory.mkdir(parents=True, exist_ok=True)
    preset = directory / "tiny.toml"
    preset.write_text(TINY)
    manifest = build_plan(preset, output_root=directory / "out", **options)
    path = write_manifest(manifest, directory / "manifest.json")
    return path, json.loads(path.read_text())


def _run(data: dict[str, Any], run_id: str = RUN) -> dict[str, Any]:
    return next(run for run in data["runs"] if run["run_id"] == run_id)


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _sweep_argv(manifest: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "aees.cli", "sweep", str(manifest), *args]


def _sweep(manifest: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _sweep_argv(manifest, *args),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=timeout,
    )


def _one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """Assert exit 2 with one stderr line starting ``aees sweep: error:`` and holding ``words``."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    err = proc.stderr
    assert err.startswith(ERROR) and err.count("\n") == 1, err[-2000:]
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    return err


def _tree(path: Path) -> dict[str, bytes | str]:
    """Everything under ``path`` (file bytes, link targets), to compare before and after."""
    out: dict[str, bytes | str] = {}
    for entry in sorted(path.rglob("*")):
        key = str(entry.relative_to(path))
        if entry.is_symlink():
            out[key] = "-> " + os.readlink(entry)
        elif entry.is_file():
            out[key] = entry.read_bytes()
        else:
            out[key] = "<dir>"
    return out


# --------------------------------------------------------------------------------------------
# Path fields that leave the output root
# --------------------------------------------------------------------------------------------


def _escape(case: str, root: Path, outside: Path) -> tuple[str, Any]:
    """``(field, value)`` of the hostile manifest for ``case``; makes the links it needs."""
    if case == "checkpoint_dir=.":
        return "checkpoint_dir", "."
    if case == "checkpoint_dir=absolute":
        return "checkpoint_dir", str(outside)
    if case == "checkpoint_dir=../x":
        return "checkpoint_dir", f"../{outside.name}"
    if case == "checkpoint_dir=symlink":
        (root / "_checkpoints").mkdir()
        (root / "_checkpoints" / RUN).symlink_to(outside, target_is_directory=True)
        return "checkpoint_dir", f"_checkpoints/{RUN}"
    if case == "log=symlink":
        (root / "_logs").symlink_to(outside, target_is_directory=True)
        return "log", f"_logs/{RUN}.log"
    if case == "output=symlink":
        (root / "sub").symlink_to(outside, target_is_directory=True)
        return "output", f"sub/{RUN}.json"
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "checkpoint_dir=.",
        "checkpoint_dir=absolute",
        "checkpoint_dir=../x",
        "checkpoint_dir=symlink",
        "log=symlink",
        "output=symlink",
    ],
)
def test_path_outside_the_output_root_is_refused_and_nothing_deleted(
    tmp_path: Path, case: str
) -> None:
    path, data = _plan(tmp_path)
    root = tmp_path / "out"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel.txt").write_text("not the sweep's\n")
    root.mkdir()
    (root / "keep.txt").write_text("another result\n")
    # an existing (invalid) result: with --overwrite the sweep replaces it and drops the checkpoint
    (root / f"{RUN}.json").write_text("{}")
    key, value = _escape(case, root, outside)
    _run(data)[key] = value
    _write(path, data)
    manifest_bytes = path.read_bytes()
    before_root, before_outside = _tree(root), _tree(outside)

    proc = _sweep(path, "--run-ids", RUN, "--overwrite", "--workers", "1")

    _one_line_error(proc, RUN, key)
    assert _tree(outside) == before_outside
    assert _tree(root) == before_root  # nothing deleted, no log, no lock left in the root's files
    assert path.read_bytes() == manifest_bytes  # not rewritten: nothing ran


# --------------------------------------------------------------------------------------------
# Commands that are not the planned ones
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_foreign_command_is_refused_not_executed(tmp_path: Path, executor: str) -> None:
    if executor == "ray":
        pytest.importorskip("ray")
    path, data = _plan(tmp_path)
    marker = tmp_path / "x"
    run = _run(data)
    run["command"] = ["touch", str(marker)]  # command_str left as planned: looks harmless
    _write(path, data)

    proc = _sweep(path, "--run-ids", RUN, "--executor", executor)

    _one_line_error(proc, RUN, "command")
    assert not marker.exists()
    assert not (tmp_path / "out").exists()


def test_extra_arguments_in_the_command_are_refused(tmp_path: Path) -> None:
    path, data = _plan(tmp_path)
    elsewhere = tmp_path / "elsewhere.json"
    run = _run(data)
    run["command"] = [*run["command"], "--output", str(elsewhere)]
    _write(path, data)

    proc = _sweep(path, "--run-ids", RUN)

    _one_line_error(proc, RUN, "command")
    assert not elsewhere.exists()


# --------------------------------------------------------------------------------------------
# Fields of the wrong type
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("attempts", "many", "attempts"),
        ("checkpoint_dir", 5, "checkpoint_dir"),
        ("seed", True, "seed"),
        ("flags", {"control_mode": "baseline", "device": "cpu", "epochs": "one"}, "epochs"),
        ("output_root", "relative/out", "output_root"),
    ],
)
def test_wrong_types_are_one_line_errors(tmp_path: Path, key: str, value: Any, named: str) -> None:
    path, data = _plan(tmp_path)
    if key == "output_root":
        data[key] = value
    else:
        _run(data)[key] = value
    _write(path, data)
    manifest_bytes = path.read_bytes()

    proc = subprocess.run(
        _sweep_argv(path, "--run-ids", RUN),
        capture_output=True,
        text=True,
        env=_env(),
        timeout=180,
        cwd=tmp_path,
    )

    err = _one_line_error(proc, named)
    if key != "output_root":
        assert RUN in err
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "relative").exists()
    assert path.read_bytes() == manifest_bytes


# --------------------------------------------------------------------------------------------
# Two sweeps on one output root
# --------------------------------------------------------------------------------------------


def test_second_sweep_on_the_same_output_root_is_refused(tmp_path: Path) -> None:
    path_a, _ = _plan(tmp_path / "a", overrides={"epochs": 300})
    out = tmp_path / "a" / "out"
    path_b = tmp_path / "b" / "manifest.json"
    path_b.parent.mkdir()
    shutil.copy(path_a, path_b)  # a copy of the manifest: same runs, same output root

    first = subprocess.Popen(
        _sweep_argv(path_a, "--run-ids", RUN, "--grace-period", "2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        deadline = time.monotonic() + 120
        while _run(json.loads(path_a.read_text()))["status"] != "running":
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first sweep never started its run"
            time.sleep(0.1)
        b_bytes = path_b.read_bytes()

        second = _sweep(path_b, "--run-ids", RUN, timeout=120)

        _one_line_error(second, "another sweep", str(out))
        assert path_b.read_bytes() == b_bytes
        assert first.poll() is None  # the first one still runs, undisturbed
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130
    assert _run(json.loads(path_a.read_text()))["status"] == "pending"


# --------------------------------------------------------------------------------------------
# A real sweep: the interpreter and the checkpoint directories
# --------------------------------------------------------------------------------------------

FOREIGN_RUN = "aees_seed0"


@pytest.fixture(scope="module")
def checkpoint_sweep(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two checkpointed 1-epoch runs. ``adamw_seed0``'s command names a fake interpreter (a script
    that only touches a marker); ``aees_seed0``'s checkpoint directory already holds a file the
    sweep did not write."""
    base = tmp_path_factory.mktemp("ckpt")
    path, data = _plan(base, checkpoint=True)
    root = base / "out"
    marker = base / "x"
    fake = base / "fakepython"
    fake.write_text(f"#!/bin/sh\ntouch {marker}\nexit 0\n")
    fake.chmod(0o755)
    run = _run(data)
    run["command"][0] = str(fake)
    run["command_str"] = shlex.join(run["command"])
    _write(path, data)
    foreign_dir = root / "_checkpoints" / FOREIGN_RUN
    foreign_dir.mkdir(parents=True)
    (foreign_dir / "notes.txt").write_text("mine\n")

    proc = _sweep(path, "--run-ids", f"{RUN},{FOREIGN_RUN}", "--workers", "2", timeout=600)
    return {
        "proc": proc,
        "root": root,
        "marker": marker,
        "manifest": json.loads(path.read_text()),
        "foreign_dir": foreign_dir,
    }


def test_interpreter_from_the_manifest_is_not_executed(checkpoint_sweep: dict[str, Any]) -> None:
    state = checkpoint_sweep
    assert not state["marker"].exists()
    run = _run(state["manifest"])
    assert run["status"] == "completed", (run["detail"], state["proc"].stderr[-2000:])
    log = (state["root"] / run["log"]).read_text()
    assert f"command: {sys.executable} -m aees.cli train digits" in log
    # the sweep's own checkpoint directory (only last.pt) is removed once the run is complete
    assert not (state["root"] / run["checkpoint_dir"]).exists()


def test_checkpoint_dir_with_foreign_files_is_kept(checkpoint_sweep: dict[str, Any]) -> None:
    state = checkpoint_sweep
    run = _run(state["manifest"], FOREIGN_RUN)
    assert run["status"] == "completed", (run["detail"], state["proc"].stderr[-2000:])
    assert (state["foreign_dir"] / "notes.txt").read_text() == "mine\n"
    log = (state["root"] / run["log"]).read_text()
    assert f"kept {state['foreign_dir']}" in log and "notes.txt" in log
    assert (state["root"] / "_checkpoints").is_dir()


def test_fifo_at_a_planned_output_does_not_hang_the_sweep(tmp_path: Path) -> None:
    """The resume check reads results with the regular-file, non-blocking reader: a FIFO where
    a result should be is an invalid existing result (kept, run failed), not a hang."""
    manifest, data = _plan(tmp_path)
    output = Path(data["output_root"]) / _run(data)["output"]
    output.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(output)
    proc = _sweep(manifest, "--run-ids", RUN, timeout=60)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert "not a regular file (FIFO)" in proc.stderr, proc.stderr[-2000:]


def test_existing_result_with_impossible_values_is_not_skipped(tmp_path: Path) -> None:
    """Resume skips a run only if its result's values can be reported (the value checks of
    ``aees.results.checks``, which reporting applies too): a result that matches the plan but
    holds an accuracy of 1.5 is an invalid existing result (kept, run failed), not "complete"."""
    manifest, data = _plan(tmp_path)
    first = _sweep(manifest, "--run-ids", RUN, timeout=300)
    assert first.returncode == 0, (first.returncode, first.stderr[-2000:])
    output = Path(data["output_root"]) / _run(data)["output"]
    result = json.loads(output.read_text())
    result["best_val_accuracy"] = 1.5
    output.write_text(json.dumps(result))
    before = output.read_bytes()

    proc = _sweep(manifest, "--run-ids", RUN, timeout=60)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    run = _run(json.loads(manifest.read_text()))
    assert run["status"] == "failed", run
    assert "best_val_accuracy is 1.5, outside [0, 1]" in run["detail"], run["detail"]
    assert "it was kept" in run["detail"], run["detail"]
    assert output.read_bytes() == before


# --------------------------------------------------------------------------------------------
# Flags that write: every path a run writes stays inside the output root (docs/protocols.md §15)
# --------------------------------------------------------------------------------------------

TEXT = """
seeds = [0]
[base]
task = "text"
device = "cpu"
epochs = 1
data_dir = "{data}"
model_name = "{data}"
[axes.method]
adamw = {{ method = "AdamW" }}
"""


def _hostile_flag(tmp_path: Path, key: str, value: str) -> tuple[Path, Path]:
    """A manifest whose one run sets write flag ``key`` to ``value`` (``{out}`` is replaced by a
    directory outside the output root), its command consistent with its flags, as a plan made
    with ``--set key=value`` by a version that allowed it would hold.

    Returns (manifest, outside)."""
    from aees.sweep.manifest import PlannedRun, run_command

    outside = tmp_path / "outside"
    outside.mkdir()
    task = {"cache_dir": "image", "tokenized_dataset_dir": "text"}.get(key, "digits")
    if task == "digits":
        path, data = _plan(tmp_path)
    else:
        preset = tmp_path / f"{task}.toml"
        data_dir = tmp_path / "data"
        text = TEXT.format(data=data_dir)
        preset.write_text(image_preset(data_dir) if task == "image" else text)
        path = write_manifest(
            build_plan(preset, output_root=tmp_path / "out"), tmp_path / "manifest.json"
        )
        data = json.loads(path.read_text())
    run = data["runs"][0]
    if "{link}" in value:  # a link inside the root that leads out
        (tmp_path / "out").mkdir(exist_ok=True)
        (tmp_path / "out" / "link").symlink_to(outside, target_is_directory=True)
    run["flags"][key] = value.format(out=outside, link="link")
    planned = PlannedRun(**run)
    run["command"] = run_command(planned, data["output_root"], python=run["command"][0])
    run["command_str"] = shlex.join(run["command"])
    data["runs"] = [run]
    return _write(path, data), outside


@pytest.mark.parametrize(
    ("key", "value", "flag"),
    [
        ("tensorboard", "{out}/tb", "--tensorboard"),
        ("tensorboard", "{link}/tb", "--tensorboard"),
        ("mlflow", "sqlite:///{out}/track.db", "--mlflow"),
        ("mlflow", "file://{out}/mlruns", "--mlflow"),
        ("cache_dir", "{out}/cache", "--cache-dir"),
        ("tokenized_dataset_dir", "{out}/tok", "--tokenized-dataset-dir"),
    ],
)
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_write_flags_outside_the_output_root_are_refused(
    tmp_path: Path, key: str, value: str, flag: str, executor: str
) -> None:
    """Issue 18 item 2: ``--set tensorboard=/elsewhere`` (and an MLflow database, an image cache,
    a tokenized cache, a link that leads out) made the sweep write outside its output root, with
    either executor. Now: one line naming the run and the flag, before anything starts."""
    if executor == "ray":
        pytest.importorskip("ray")
    path, outside = _hostile_flag(tmp_path, key, value)
    manifest_bytes = path.read_bytes()

    proc = _sweep(path, "--executor", executor, timeout=300)

    err = _one_line_error(proc, flag, "outside the output root")
    assert json.loads(manifest_bytes)["runs"][0]["run_id"] in err
    assert _tree(outside) == {}
    assert not (tmp_path / "out" / "_logs").exists()
    assert path.read_bytes() == manifest_bytes


def test_unset_task_write_options_stay_inside_the_output_root(tmp_path: Path) -> None:
    """docs/protocols.md §15 (issue 18's known gap): an image run without ``--cache-dir`` wrote
    its cache beside the data set (``<data-dir>/.aees-cache``), outside the output root. The
    planner now sets a task's unset own write options to ``<root>/_cache/<task>/<option>``; the
    sweep writes nothing outside the output root."""
    from image_fixtures import write_image_folder

    data_dir = tmp_path / "data"
    write_image_folder(data_dir, per_class=4, size=8)
    write_image_folder(data_dir, per_class=2, size=8, split="val")
    before = _tree(data_dir)
    preset = tmp_path / "image.toml"
    preset.write_text(image_preset(data_dir))
    manifest = write_manifest(
        build_plan(preset, output_root=tmp_path / "out"), tmp_path / "manifest.json"
    )
    proc = _sweep(manifest, timeout=300)

    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _tree(data_dir) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".manifest.json.lock",
        "data",
        "image.toml",
        "manifest.json",
        "out",
    ]
    run = json.loads(manifest.read_text())["runs"][0]
    assert run["flags"]["cache_dir"] == "_cache/image/cache_dir"
    assert (
        f"--cache-dir {tmp_path / 'out' / '_cache' / 'image' / 'cache_dir'}" in run["command_str"]
    )


def test_plan_refuses_a_write_flag_outside_the_root_and_roots_a_relative_one(
    tmp_path: Path,
) -> None:
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY)
    plan = [sys.executable, "-m", "aees.cli", "plan", str(preset), "--output-root"]
    out = tmp_path / "out"

    refused = subprocess.run(
        [*plan, str(out), "--set", f"tensorboard={tmp_path / 'elsewhere'}"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.count("\n") == 1 and "--tensorboard" in refused.stderr
    assert "outside the output root" in refused.stderr and not out.exists()

    planned = subprocess.run(
        [*plan, str(out), "--set", "tensorboard=tb", "--set", "mlflow=sqlite:///track.db"],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
        cwd=tmp_path,
    )
    assert planned.returncode == 0, planned.stderr
    command = json.loads((out / "manifest.json").read_text())["runs"][0]["command"]
    assert command[command.index("--tensorboard") + 1] == str(out / "tb")
    assert command[command.index("--mlflow") + 1] == f"sqlite:///{out / 'track.db'}"


def test_ray_worker_refuses_a_write_path_that_leads_out_when_the_run_starts(
    tmp_path: Path,
) -> None:
    """A link made after the manifest was checked: the Ray task checks the write flags again
    where it runs, as it does the path fields; and the Ray caps (every run takes a CPU)."""
    ray = pytest.importorskip("ray")
    from aees.sweep.errors import SweepError
    from aees.sweep.manifest import PlannedRun, load_manifest, run_command
    from aees.sweep.ray import _ray_execute, run_ray

    clean, _ = _plan(tmp_path / "clean")
    path, data = _plan(tmp_path)
    run = _run(data)
    run["flags"]["tensorboard"] = "tb"
    run["command"] = run_command(PlannedRun(**run), data["output_root"])
    run["command_str"] = shlex.join(run["command"])
    _write(path, data)
    planned = load_manifest(path).run(RUN)  # checked: tb is inside the root
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "tb").symlink_to(outside, target_is_directory=True)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(_ray_execute)
        out = ray.get(task.remote(planned, data["output_root"], False, 1.0), timeout=120)
        assert out["status"] == "failed" and out["return_code"] is None, out
        assert "--tensorboard" in out["detail"] and "outside the output root" in out["detail"]
        assert _tree(outside) == {}
        assert not (tmp_path / "out" / "_logs").exists()
        with pytest.raises(SweepError, match="--workers must be <= 2"):
            run_ray(clean, workers=100000, progress=False)
        with pytest.raises(SweepError, match="--runs-per-gpu must be <= 2"):
            run_ray(clean, runs_per_gpu=100000, progress=False)
    finally:
        ray.shutdown()
    assert not (tmp_path / "clean" / "out" / "_logs").exists()  # refused before any run
