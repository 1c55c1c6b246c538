"""Sweep executors on a 4-run digits plan: interrupt + resume, Ray, invalid results, bad input."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_presets import TINY, image_preset

from aees.cli.sweep import sweep_main
from aees.results import load_run_result
from aees.sweep.errors import SweepError
from aees.sweep.local import run_local
from aees.sweep.manifest import Manifest, load_manifest, write_manifest
from aees.sweep.plan import build_plan
from aees.sweep.ray import run_ray
from aees.sweep.result_check import check_result

pytestmark = pytest.mark.slow

RUN_IDS = ["adamw_seed0", "aees_seed0", "adamw_seed1", "aees_seed1"]
HEADER = "# aees sweep: "


def _plan(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    preset = directory / "tiny.toml"
    preset.write_text(TINY)
    manifest = build_plan(preset, output_root=directory / "out")
    return write_manifest(manifest, directory / "manifest.json")


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def _results(manifest: Manifest) -> dict[str, Path]:
    return {
        run.run_id: manifest.output_path(run)
        for run in manifest.runs
        if manifest.output_path(run).exists()
    }


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Sweep the 4-run plan with 2 workers, interrupt it after the first result, resume it."""
    base = tmp_path_factory.mktemp("local")
    manifest_path = _plan(base)
    out = base / "out"
    cli = [sys.executable, "-m", "aees.cli", "sweep", str(manifest_path)]
    sweep = subprocess.Popen(
        [*cli, "--workers", "2", "--grace-period", "5"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("*.json")):
        assert sweep.poll() is None, sweep.communicate()
        assert time.monotonic() < deadline, "no result within 120 s"
        time.sleep(0.05)
    sweep.send_signal(signal.SIGINT)
    _, stderr = sweep.communicate(timeout=60)
    interrupted = {
        "code": sweep.returncode,
        "stderr": stderr,
        "manifest": load_manifest(manifest_path),
        "leftover_processes": _processes_mentioning(str(out)),
    }
    first = load_manifest(manifest_path)
    before = {
        run_id: path.stat().st_mtime_ns
        for run_id, path in _results(first).items()
        if check_result(first.run(run_id), path) is None
    }
    stream = io.StringIO()
    summary = run_local(manifest_path, workers=2, stream=stream)
    return {
        "manifest_path": manifest_path,
        "interrupted": interrupted,
        "valid_before": before,
        "summary": summary,
        "report": stream.getvalue(),
        "manifest": load_manifest(manifest_path),
    }


def test_interrupted_sweep_stops_cleanly(local_sweep: dict) -> None:
    state = local_sweep["interrupted"]
    assert state["code"] == 130, state["stderr"]
    assert state["leftover_processes"] == []
    statuses = {run.run_id: run.status for run in state["manifest"].runs}
    assert "completed" in statuses.values()
    assert set(statuses.values()) <= {"completed", "pending"}
    assert list(statuses.values()).count("completed") < 4
    # A run cut by the signal is pending with an "interrupted" detail; one never started is
    # plain pending (under load the signal can land between runs, when none is running).
    pending = [run for run in state["manifest"].runs if run.status == "pending"]
    assert pending
    assert all("interrupted" in run.detail for run in pending if run.detail)
    # progress on a non-TTY: plain lines with counts and the running ids
    assert (
        "sweep: 0/4 done, 2 running, 0 failed | running: adamw_seed0, aees_seed0"
        in (state["stderr"])
    )
    assert "interrupted (SIGINT)" in state["stderr"]


def test_resume_runs_only_the_missing_runs(local_sweep: dict) -> None:
    summary, manifest = local_sweep["summary"], local_sweep["manifest"]
    before = local_sweep["valid_before"]
    assert summary.exit_code == 0, local_sweep["report"]
    assert summary.skipped == len(before) >= 1
    assert summary.completed == 4 - len(before)
    assert sorted(run.run_id for run in manifest.runs if run.done) == sorted(RUN_IDS)
    for run in manifest.runs:
        path = manifest.output_path(run)
        assert check_result(run, path) is None
        log = manifest.log_path(run).read_text()
        if run.run_id in before:
            assert path.stat().st_mtime_ns == before[run.run_id]  # not rerun
            assert log.count(HEADER) == 1
            assert run.status == "skipped"
        else:
            assert run.status == "completed"
            assert log.count(HEADER) >= 1
            assert "Saved result to" in log
        assert f"command: {sys.executable} -m aees.cli train digits" in log
    assert json.loads(local_sweep["manifest_path"].read_text())["status_counts"]["pending"] == 0


def test_ray_executor_gives_the_same_results(local_sweep: dict, tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    manifest_path = tmp_path / "manifest.json"
    shutil.copy(local_sweep["manifest_path"], manifest_path)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = run_ray(manifest_path, output_root=tmp_path / "shared", progress=False)
        again = run_ray(manifest_path, progress=False)  # resume: everything is skipped
    finally:
        ray.shutdown()
    assert summary.exit_code == 0, summary.format()
    assert summary.completed == 4
    assert (again.skipped, again.completed, again.exit_code) == (4, 0, 0)
    ray_manifest = load_manifest(manifest_path)
    local_manifest = local_sweep["manifest"]
    assert ray_manifest.output_root == str(tmp_path / "shared")
    assert sorted(_results(ray_manifest)) == sorted(_results(local_manifest)) == sorted(RUN_IDS)
    for run in ray_manifest.runs:
        path = ray_manifest.output_path(run)
        assert path.parent == tmp_path / "shared"
        assert check_result(run, path) is None
        assert ray_manifest.log_path(run).read_text().count(HEADER) == 1
        ours = load_run_result(path).val_accuracies
        theirs = load_run_result(local_manifest.output_path(run)).val_accuracies
        assert ours == theirs, run.run_id


def test_invalid_existing_result_is_kept_unless_overwrite(
    local_sweep: dict, tmp_path: Path
) -> None:
    src = local_sweep["manifest"]
    manifest = load_manifest(local_sweep["manifest_path"])
    manifest.relocate(tmp_path / "out")
    manifest_path = write_manifest(manifest, tmp_path / "manifest.json")
    for run in src.runs:
        (tmp_path / "out").mkdir(exist_ok=True)
        shutil.copy(src.output_path(run), manifest.output_path(run))
    corrupt = manifest.output_path(manifest.run("aees_seed1"))
    corrupt.write_text('{"not": "a result"')
    wrong = manifest.output_path(manifest.run("adamw_seed1"))
    shutil.copy(src.output_path(src.run("adamw_seed0")), wrong)  # a seed-0 result
    corrupt_bytes, wrong_bytes = corrupt.read_bytes(), wrong.read_bytes()

    stream = io.StringIO()
    summary = run_local(manifest_path, workers=2, stream=stream)
    assert summary.exit_code == 1
    assert (summary.skipped, summary.failed, summary.completed) == (2, 2, 0)
    assert corrupt.read_bytes() == corrupt_bytes and wrong.read_bytes() == wrong_bytes
    failed = {f.run_id: f for f in summary.failed_runs}
    assert set(failed) == {"aees_seed1", "adamw_seed1"}
    assert "seed is 0, plan says 1" in failed["adamw_seed1"].detail
    assert "--overwrite" in failed["aees_seed1"].detail
    assert summary.retry_command is not None
    assert summary.retry_command.endswith("--failed --overwrite")  # short: no list of ids
    report = stream.getvalue()
    assert "FAILED adamw_seed1" in report and "retry the failed runs with: aees sweep" in report
    statuses = {run.run_id: run.status for run in load_manifest(manifest_path).runs}
    assert statuses["aees_seed1"] == statuses["adamw_seed1"] == "failed"

    fixed = run_local(
        manifest_path, workers=2, overwrite=True, run_ids=["aees_seed1", "adamw_seed1"]
    )
    assert (fixed.exit_code, fixed.completed) == (0, 2)
    for run_id in ("aees_seed1", "adamw_seed1"):
        run = manifest.run(run_id)
        assert check_result(run, manifest.output_path(run)) is None
        assert (
            load_run_result(manifest.output_path(run)).val_accuracies
            == load_run_result(src.output_path(src.run(run_id))).val_accuracies
        )


def test_failed_run_reports_log_and_retry(tmp_path: Path) -> None:
    manifest = load_manifest(_plan(tmp_path))
    run = manifest.runs[0]
    run.flags["batch_size"] = 0  # rejected by aees train: exit 2
    manifest.relocate(manifest.output_root)  # the command matches the flags again
    manifest_path = write_manifest(manifest, tmp_path / "manifest.json")
    stream = io.StringIO()
    summary = run_local(manifest_path, run_ids=[run.run_id], stream=stream)
    assert summary.exit_code == 1
    (failed,) = summary.failed_runs
    assert failed.detail.startswith("exit status 2: aees train digits: error: --batch-size")
    assert failed.log_path == str(manifest.log_path(run))
    assert summary.retry_command.endswith("--failed")
    assert "--overwrite" not in summary.retry_command


def _sweep_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        sweep_main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("aees sweep: error:") and err.count("\n") == 1, err
    return err


def test_bad_manifests_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "no such manifest" in _sweep_error([str(tmp_path / "missing.json")], capsys)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert "not valid JSON" in _sweep_error([str(bad)], capsys)
    bad.write_text(json.dumps({"runs": []}))
    assert "schema_version" in _sweep_error([str(bad)], capsys)

    good = json.loads(_plan(tmp_path / "p").read_text())
    broken = json.loads(json.dumps(good))
    del broken["runs"][1]["command"]
    bad.write_text(json.dumps(broken))
    assert "runs[1] lacks 'command'" in _sweep_error([str(bad)], capsys)
    broken = json.loads(json.dumps(good))
    broken["runs"][2]["run_id"] = broken["runs"][0]["run_id"]
    bad.write_text(json.dumps(broken))
    assert "appears twice" in _sweep_error([str(bad)], capsys)
    broken = json.loads(json.dumps(good))
    broken["runs"][0]["status"] = "weird"
    bad.write_text(json.dumps(broken))
    assert "unknown status" in _sweep_error([str(bad)], capsys)

    path = str(tmp_path / "p" / "manifest.json")
    assert "'nope' is not a run" in _sweep_error([path, "--run-ids", "nope"], capsys)
    assert "--workers must be >= 1" in _sweep_error([path, "--workers", "0"], capsys)
    assert "--gpus" in _sweep_error([path, "--gpus", "0,x"], capsys)
    assert "--gpus" in _sweep_error([path, "--executor", "ray", "--gpus", "0"], capsys)
    assert "--address" in _sweep_error([path, "--address", "auto"], capsys)


def test_missing_ray_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    path = str(_plan(tmp_path))
    err = _sweep_error([path, "--executor", "ray"], capsys)
    assert "pip install 'aees[sweep]'" in err
    with pytest.raises(SweepError, match="aees\\[sweep\\]"):
        run_ray(path)


def test_second_sweep_on_the_same_manifest_is_refused(tmp_path: Path) -> None:
    import fcntl

    path = _plan(tmp_path)
    with open(path.with_name(f".{path.name}.lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        with pytest.raises(SweepError, match="another sweep"):
            run_local(path, progress=False)


def test_modules_do_not_import_ray() -> None:
    code = (
        "import sys, aees.sweep.plan, aees.sweep.local, aees.cli; assert 'ray' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_diverged_run_is_completed_with_its_detail(tmp_path: Path) -> None:
    manifest = load_manifest(_plan(tmp_path))
    run = manifest.runs[0]
    run.flags["lr"] = 1e6  # diverges in its first epoch: exit 3, result marked diverged
    manifest.relocate(manifest.output_root)
    manifest_path = write_manifest(manifest, tmp_path / "manifest.json")
    summary = run_local(manifest_path, run_ids=[run.run_id], stream=io.StringIO())
    assert summary.exit_code == 0 and not summary.failed_runs
    (done,) = [r for r in load_manifest(manifest_path).runs if r.run_id == run.run_id]
    assert done.status == "completed"
    assert done.detail is not None and done.detail.startswith("diverged at step ")
    assert load_run_result(Path(manifest.output_root) / run.output).diverged


# --------------------------------------------------------------------------------------------
# Through the CLI: caps, GPUs that do not exist, stopping early, --failed
# --------------------------------------------------------------------------------------------


def _cli_sweep(manifest: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aees.cli", "sweep", str(manifest), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=timeout,
    )


def _one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert proc.stderr.startswith("aees sweep: error:") and proc.stderr.count("\n") == 1
    for word in words:
        assert word in proc.stderr, proc.stderr
    return proc.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--workers", "100000"], "--workers must be <= "),
        (["--gpus", "0", "--runs-per-gpu", "100000"], "--runs-per-gpu must be <= "),
    ],
)
def test_workers_and_runs_per_gpu_are_capped(tmp_path: Path, args: list[str], named: str) -> None:
    """Issue 18 item 10: ``--workers 100000`` started every run at once (3 GB before it was
    killed). Capped like ``--num-workers``: one line naming the flag and the cap."""
    path = _plan(tmp_path)
    proc = _cli_sweep(path, *args)
    _one_line_error(proc, named, "CPUs")
    assert not (tmp_path / "out" / "_logs").exists()


def test_gpus_that_do_not_exist_are_refused_before_anything_starts(tmp_path: Path) -> None:
    """Issue 19 §5: ``--workers 4 --gpus 0,1,2,3`` on a machine without them started every run."""
    path = _plan(tmp_path)
    proc = _cli_sweep(path, "--workers", "4", "--gpus", "0,1,2,3,99")
    _one_line_error(proc, "--gpus 0,1,2,3,99: GPU ", "does not exist")
    assert not (tmp_path / "out" / "_logs").exists()
    assert {run.status for run in load_manifest(path).runs} == {"pending"}


def test_sweep_stops_early_when_the_first_runs_fail_alike_and_failed_retries_them(
    tmp_path: Path,
) -> None:
    """Issue 19 §5: a plan whose data is missing ran every run to the same error, then printed
    a retry command listing every id. Now the sweep stops after the first runs fail alike, says
    so in one line with a log, and ``--failed`` retries exactly the failed runs."""
    preset = tmp_path / "missing.toml"
    sgd = 'sgd = { control_mode = "baseline", optimizer = "SGD", lr = 0.1 }'
    preset.write_text(image_preset(tmp_path / "no-such-data", "[0, 1, 2]", sgd))
    path = write_manifest(
        build_plan(preset, output_root=tmp_path / "out"), tmp_path / "manifest.json"
    )

    proc = _cli_sweep(path, "--workers", "1")

    assert proc.returncode == 1, proc.stderr[-3000:]
    stopped = [line for line in proc.stderr.splitlines() if "stopped early" in line]
    assert len(stopped) == 1, proc.stderr[-3000:]
    assert "the first 3 runs all failed with the same error" in stopped[0]
    assert "no-such-data" in stopped[0] and "3 runs not started" in stopped[0]
    log = stopped[0].split("log: ", 1)[1].split(")", 1)[0]
    assert Path(log).is_file() and "no-such-data" in Path(log).read_text()
    runs = load_manifest(path).runs
    failed = [run.run_id for run in runs if run.status == "failed"]
    assert len(failed) == 3 and all(run.attempts == 1 for run in runs if run.status == "failed")
    assert [run.attempts for run in runs if run.status == "pending"] == [0, 0, 0]
    (retry,) = [line for line in proc.stderr.splitlines() if line.startswith("retry the failed")]
    assert retry.endswith(f"aees sweep {path} --workers 1 --failed") and "--run-ids" not in retry

    again = _cli_sweep(path, "--failed", "--workers", "2")

    assert again.returncode == 1, again.stderr[-3000:]
    assert "sweep: 3 runs: 0 completed" in again.stderr and "stopped early" not in again.stderr
    after = {run.run_id: run for run in load_manifest(path).runs}
    assert all(after[run_id].attempts == 2 for run_id in failed)
    assert all(run.attempts == 0 for run in after.values() if run.run_id not in failed)
