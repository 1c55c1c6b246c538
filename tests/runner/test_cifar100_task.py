"""End-to-end: the CIFAR-100 runner on a tiny dataset in the real pickle layout (CPU, 1 epoch)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cifar_fixture import write_cifar100
from run_checks import check_consistent, check_episodes

from aees.cli.train import task_script_main
from aees.results import load_run_result
from aees.runner import engine
from aees.runner.label_noise import LabelCorruption, cifar_asymmetric_noise

pytest.importorskip("torchvision")

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "experiments" / "task_cifar100.py"
N_TRAIN, N_TEST, BATCH = 32, 8, 16
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    parent = tmp_path_factory.mktemp("cifar") / "data"
    write_cifar100(parent, N_TRAIN, N_TEST, seed=1)
    return parent


@pytest.fixture(autouse=True)
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def flags(data_dir: Path, out: Path, *extra: str, epochs: int = 1) -> list[str]:
    return [
        "--data-dir", str(data_dir), "--epochs", str(epochs), "--batch-size", str(BATCH),
        "--device", "cpu", "--output", str(out), *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_script_baseline_thesis_protocol(data_dir, tmp_path):
    """The seed's script path; validation = the official test set; no test diagnostics."""
    out = tmp_path / "base.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *flags(data_dir, out)],
        capture_output=True, text=True, env=ENV, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "[Baseline+AdamW] | epoch 1/1" in proc.stdout and f"Saved result to {out}" in proc.stdout
    result = check_consistent(out, 1, test_split=False)
    assert (result.task_name, result.dataset_name, result.model_name) == (
        "cifar100",
        "CIFAR-100",
        "resnet18",
    )
    assert result.config["steps_per_epoch"] == N_TRAIN // BATCH
    assert result.episode_logs is None
    assert result.provenance["command"][0].endswith("task_cifar100.py")
    # FLOPs are counted: a CIFAR-stem ResNet-18 forward is ~1.1 GFLOPs per image.
    per_image = result.estimated_flops / (N_TRAIN * 3 + N_TEST)  # train = fwd + bwd ~ 3x
    assert 0.8e9 < per_image < 1.5e9


def test_adaptive_dual_with_asymmetric_noise(data_dir, tmp_path):
    out = tmp_path / "aees.json"
    extra = ["--control-mode", "adaptive", "--lr-candidates", "0.5,1,2"]
    extra += ["--noise-candidates", "0,0.001", "--episode-length", "2", "--quiet"]
    extra += ["--label-noise-type", "asymmetric", "--label-noise-rate", "0.25", "--seed", "3"]
    assert task_script_main("cifar100", flags(data_dir, out, *extra)) == 0
    result = check_consistent(out, 1, test_split=False)
    assert result.method_name == "AdaptiveScheduler"
    check_episodes(result, 2)
    diag = result.diagnostics
    # The realised corruption is exactly the thesis protocol for this seed.
    expected = cifar_asymmetric_noise(_train_labels(data_dir), 0.25, 3)
    assert diag["label_noise"]["num_corrupted_examples"] == round(N_TRAIN * 0.25)
    for key in ("indices_sha256", "noisy_labels_sha256", "protocol", "seed"):
        assert diag["label_noise"][key] == expected.manifest()[key]
    side = LabelCorruption.read_side_file(tmp_path / diag["label_noise"]["corrupted_indices_file"])
    assert side.corrupted_indices == expected.corrupted_indices
    assert side.noisy_labels == expected.noisy_labels
    subsets = diag["final_subset_accuracies"]
    for key in (
        "train_all_accuracy",
        "train_clean_accuracy",
        "train_corrupted_accuracy_vs_noisy_labels",
        "train_corrupted_accuracy_vs_clean_labels",
    ):
        assert 0.0 <= subsets[key] <= 1.0
        assert key in diag["best_val_subset_accuracies"]


def _train_labels(data_dir: Path) -> list[int]:
    from aees.runner.tasks.cifar.data import load_cifar100

    return load_cifar100(data_dir)["train_labels"].tolist()


def test_random_sgd_with_val_split(data_dir, tmp_path):
    out = tmp_path / "random.json"
    extra = ["--control-mode", "random", "--optimizer", "SGD", "--lr", "0.05"]
    extra += ["--lr-candidates", "0.5,1,2", "--episode-length", "2", "--quiet"]
    extra += ["--val-split", "16", "--lr-scheduler", "cosine"]
    assert task_script_main("cifar100", flags(data_dir, out, *extra)) == 0
    result = check_consistent(out, 1, test_split=True)
    assert result.method_name == "RandomScheduler"
    assert result.config["split"] == {"seed": 0, "train": 16, "val": 16, "test": N_TEST}
    assert result.config["steps_per_epoch"] == 16 // BATCH
    check_episodes(result, 2)


def test_missing_data_is_one_line_with_fetch_command(tmp_path, capsys):
    argv = flags(tmp_path / "nowhere", tmp_path / "x.json", "--quiet")
    assert task_script_main("cifar100", argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--data-dir" in err and "torchvision.datasets.CIFAR100(" in err
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize(
    ("extra", "flag"),
    [
        (["--model-name", "resnet50"], "--model-name"),
        (["--val-split", "50000"], "--val-split"),
        (["--label-noise-type", "none", "--label-noise-rate", "0.2"], "--label-noise-rate"),
    ],
)
def test_bad_flags(tmp_path, capsys, extra, flag):
    with pytest.raises(SystemExit) as info:
        task_script_main("cifar100", flags(tmp_path, tmp_path / "x.json", *extra))
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err


@pytest.mark.slow
def test_resume_restores_the_device_loader_stream(data_dir, tmp_path, monkeypatch):
    """Interrupted after epoch 1 and resumed == uninterrupted: augmentation + order included."""
    common = ["--control-mode", "adaptive", "--lr-candidates", "0.5,2"]
    common += ["--episode-length", "2", "--quiet"]

    def argv(name: str, *more: str) -> list[str]:
        return flags(data_dir, tmp_path / name, *common, *more, epochs=2)

    ref = tmp_path / "ref.json"
    assert task_script_main("cifar100", argv("ref.json")) == 0

    ckpt = ["--checkpoint-dir", str(tmp_path / "ck")]
    original = engine._Runner.save_checkpoint

    def stop_after_first(self, wall_now):
        original(self, wall_now)
        raise KeyboardInterrupt

    monkeypatch.setattr(engine._Runner, "save_checkpoint", stop_after_first)
    assert task_script_main("cifar100", argv("cut.json", *ckpt)) == 130
    monkeypatch.setattr(engine._Runner, "save_checkpoint", original)
    assert task_script_main("cifar100", argv("cut.json", *ckpt, "--resume")) == 0
    a, b = load_run_result(ref), load_run_result(tmp_path / "cut.json")
    assert b.provenance["segments"] == 2
    assert a.val_accuracies == b.val_accuracies and a.train_losses == b.train_losses
    assert a.episode_logs == b.episode_logs
