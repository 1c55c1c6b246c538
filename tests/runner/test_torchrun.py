"""Multi-process runs: ``torchrun --nproc_per_node=2`` (gloo, CPU) on the digits and image tasks."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from aees.results import load_run_result
from aees.runner.checkpoint import load_checkpoint
from aees.runner.engine import CHECKPOINT_NAME
from aees.runner.tasks.digits import digits_cnn, load_digits_split
from aees.runner.tasks.image.pipeline import InMemoryLoader

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

# Imported by every process of the job (torchrun's agent and the ranks) through PYTHONPATH: a
# rank whose interpreter starts its teardown while gloo's threads (the worker loop threads and
# the TCP event loop) are still alive aborts, as a rank of the real job could (SIGABRT,
# "terminate called without an active exception"; docs/protocols.md §14).
GLOO_TEARDOWN_GUARD = """
import atexit, os
def _gloo_threads_alive():
    if "RANK" not in os.environ:  # torchrun's agent: no process group
        return
    names = []
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/comm") as handle:
            names.append(handle.read().strip())
    alive = [n for n in names if "gloo" in n]
    if alive:
        os.write(2, f"interpreter teardown with gloo threads alive: {alive}\\n".encode())
        os.abort()
atexit.register(_gloo_threads_alive)
"""


def _job_env(tmp_path) -> dict[str, str]:
    """``ENV`` plus the teardown guard above (Linux: it reads ``/proc/self/task``)."""
    if not Path("/proc/self/task").is_dir():
        return dict(ENV)
    guard = tmp_path / "teardown_guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(GLOO_TEARDOWN_GUARD, encoding="utf-8")
    path = os.pathsep.join(p for p in (str(guard), ENV.get("PYTHONPATH", "")) if p)
    return {**ENV, "PYTHONPATH": path}


def test_torchrun_two_ranks_identical_decisions_one_result(tmp_path):
    out, ckpt = tmp_path / "results" / "ddp.json", tmp_path / "ck"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "aees.cli", "train", "digits", "--epochs", "2", "--device", "cpu",
        "--control-mode", "adaptive", "--lr-candidates", "0.5,1,2", "--noise-candidates",
        "0,0.01", "--episode-length", "4", "--quiet", "--output", str(out),
        "--checkpoint-dir", str(ckpt),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_job_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # one result (plus nothing else) written, by rank 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["ddp.json"]
    result = load_run_result(out)
    dist = result.diagnostics["distributed"]
    assert dist["world_size"] == 2 and dist["backend"] == "gloo"
    assert dist["decisions_identical"] is True
    assert dist["global_batch_size"] == 2 * dist["per_rank_batch_size"] == 128
    assert result.config["world_size"] == 2
    n_train = 1257
    assert result.config["steps_per_epoch"] == math.ceil(math.ceil(n_train / 2) / 64)
    assert result.total_steps == 2 * result.config["steps_per_epoch"]
    logs = result.episode_logs
    assert logs["episode_end_steps"][-1] == result.total_steps - 1
    assert len(logs["selected_combined_names"]) == math.ceil(result.total_steps / 4)

    # validation accuracy == a single-process evaluation of the same final weights
    state = load_checkpoint(ckpt / CHECKPOINT_NAME)
    model = digits_cnn()
    model.load_state_dict(state["model"])
    model.eval()
    x_val, y_val = load_digits_split()["val"]
    with torch.no_grad():
        accuracy = (model(x_val).argmax(dim=-1) == y_val).sum().item() / len(y_val)
    assert result.final_val_accuracy == pytest.approx(accuracy, abs=1e-12)


def test_in_memory_loader_shards_are_disjoint_equal_and_cover():
    images = torch.zeros(10, 3, 4, 4, dtype=torch.uint8)
    labels = torch.arange(10)
    seen = []
    for rank in range(3):
        loader = InMemoryLoader(images, labels, batch_size=2, shuffle=True, seed=5, normalize=None)
        loader.shard(rank, 3)
        assert len(loader) == 2 and loader.num_examples == 4
        seen.append([int(v) for _, y in loader for v in y])
    assert all(len(s) == 4 for s in seen)
    flat = [v for s in seen for v in s]
    assert set(flat) == set(range(10))  # every example, 2 repeated as padding
    assert len(flat) - len(set(flat)) == 2
    with pytest.raises(ValueError, match="rank"):
        loader.shard(3, 3)


@pytest.mark.parametrize("budget", ["4096", "0"], ids=["device-resident", "streaming"])
def test_torchrun_image_task_on_both_data_paths(tmp_path, budget):
    """``aees train image`` under DDP: the device-resident loader is sharded per rank, the
    streaming path uses the engine's DistributedSampler (docs/protocols.md §4.6, §14); both
    ranks take the same AEES decisions and rank 0 writes one result."""
    from image_fixtures import write_image_folder

    root = tmp_path / "imgs"
    write_image_folder(root, per_class=8, size=16)  # 3 classes x 8 = 24 training images
    write_image_folder(root, per_class=2, size=16, split="val", seed=1)
    out = tmp_path / "results" / "ddp.json"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "aees.cli", "train", "image", "--data-dir", str(root), "--epochs", "2",
        "--batch-size", "4", "--model-name", "shufflenet_v2_x0_5", "--memory-budget-mb", budget,
        "--control-mode", "adaptive", "--lr-candidates", "0.5,1,2", "--episode-length", "2",
        "--device", "cpu", "--quiet", "--output", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_job_env(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.parent.iterdir()) == ["ddp.json"]
    result = load_run_result(out)
    dist = result.diagnostics["distributed"]
    assert dist["world_size"] == 2 and dist["decisions_identical"] is True
    assert result.config["data_pipeline"] == ("streaming" if budget == "0" else "device-resident")
    assert result.config["steps_per_epoch"] == math.ceil(math.ceil(24 / 2) / 4)  # 3 per rank
    assert len(result.episode_logs["selected_combined_names"]) == math.ceil(result.total_steps / 2)
