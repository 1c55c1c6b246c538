"""``aees sweep --runs-per-gpu K`` (docs/protocols.md §15) on the CPU with a fake GPU list: which
run gets which GPU, never more than K per GPU, a run waits while memory is short, the Ray
resource request, the one-line errors."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sweep_presets import TINY

from aees.cli.sweep import sweep_main
from aees.sweep import local
from aees.sweep.gpus import GpuSlots
from aees.sweep.manifest import load_manifest, write_manifest
from aees.sweep.plan import build_plan
from aees.sweep.ray import ray_task_resources


def test_runs_go_to_the_least_loaded_gpu_and_never_more_than_k():
    slots = GpuSlots([3, 1], 2, probe=lambda: None)  # no nvidia-smi: count only
    assert slots.capacity == 4
    assert [slots.acquire() for _ in range(4)] == [3, 1, 3, 1]
    assert slots.acquire() is None and slots.waiting_for == "full"
    slots.release(1)
    assert slots.acquire() == 1 and slots.acquire() is None
    assert slots.load == {3: 2, 1: 2}


def test_a_run_waits_while_no_gpu_has_the_memory():
    free = {0: 1000, 1: 8000}
    slots = GpuSlots([0, 1], 3, min_free_mib=4096, probe=lambda: dict(free))
    assert slots.acquire() == 1 and slots.acquire() == 1  # 0 is short of memory
    free[1] = 100
    assert slots.acquire() is None and slots.waiting_for == "memory"
    free[0] = 5000
    assert slots.acquire() == 0
    unprobed = GpuSlots([0], 1, min_free_mib=0, probe=lambda: pytest.fail("probed"))
    assert unprobed.acquire() == 0


def test_ray_requests_one_kth_of_a_gpu_per_run():
    assert ray_task_resources(True, 4) == {"num_gpus": 0.25, "num_cpus": 1}
    assert ray_task_resources(True, 1) == {"num_gpus": 1, "num_cpus": 1}
    assert ray_task_resources(False, 4) == {"num_cpus": 1}


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--runs-per-gpu", "2"], "--runs-per-gpu"),
        (["--gpus", "0", "--runs-per-gpu", "0"], "--runs-per-gpu"),
        (["--gpus", "0", "--runs-per-gpu", "100000"], "--runs-per-gpu must be <="),
        (["--gpus", "0", "--min-free-mib", "10"], "--min-free-mib"),
        (["--gpus", "0", "--runs-per-gpu", "2", "--min-free-mib", "-1"], "--min-free-mib"),
        (["--executor", "ray", "--runs-per-gpu", "2", "--min-free-mib", "1"], "--min-free-mib"),
    ],
)
def test_bad_runs_per_gpu_flags_are_one_line_exit_2(tmp_path, capsys, flags, named):
    with pytest.raises(SystemExit) as exit_:
        sweep_main([str(tmp_path / "missing.json"), "--quiet", *flags])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err


@pytest.mark.slow
def test_sweep_pins_runs_to_fake_gpus_caps_them_and_waits_for_memory(tmp_path, monkeypatch):
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY)
    manifest = write_manifest(build_plan(preset, output_root=tmp_path / "out"), tmp_path / "m.json")
    peak: dict[int, int] = {}

    class Recording(GpuSlots):
        def acquire(self) -> int | None:
            gpu = super().acquire()
            for g, n in self.load.items():
                peak[g] = max(peak.get(g, 0), n)
            return gpu

    monkeypatch.setattr(local, "GpuSlots", Recording)
    monkeypatch.setattr(local, "default_workers", lambda: 8)  # 8 CPUs: 4 workers allowed
    # the assignment is under test, not training: each run is a short sleep that writes no result
    monkeypatch.setattr(local, "run_argv", lambda run, root: ["/bin/sh", "-c", "sleep 0.3"])
    calls = []

    def probe() -> dict[int, int]:
        calls.append(1)
        return {0: 10, 1: 10} if len(calls) <= 3 else {0: 9000, 1: 9000}

    stream = io.StringIO()
    summary = local.run_local(
        manifest,
        gpus=[0, 1],
        runs_per_gpu=1,
        workers=4,  # more workers than GPU places: K caps them
        gpu_probe=probe,
        stream=stream,
        keep_going=True,  # every run "fails" alike here: do not stop early
    )
    assert summary.exit_code == 1  # every run "failed": no result written
    assert peak == {0: 1, 1: 1}
    assert "waiting: no GPU of [0, 1] has 4096 MiB free" in stream.getvalue()
    assert "1 run(s) per GPU on 0,1; CUDA MPS: off" in stream.getvalue()
    runs = load_manifest(manifest).runs
    assert all(r.status == "failed" and r.started_at for r in runs)
    devices = [r.environment["CUDA_VISIBLE_DEVICES"] for r in runs]
    assert set(devices) == {"0", "1"} and devices[0] != devices[1]  # the first two: one each
    assert all(r.environment["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID" for r in runs)
    log = Path(tmp_path / "out" / runs[0].log).read_text()
    assert f"CUDA_VISIBLE_DEVICES={devices[0]}" in log
