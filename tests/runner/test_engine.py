"""End-to-end tests of the runner core on the offline digits task (CPU, a few seconds each)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import run_checks
import torch
from run_checks import check_episodes, kill_at_first_checkpoint

from aees import cli
from aees.results import load_run_result
from aees.runner.config import RunConfig, parse_candidates
from aees.runner.schedules import build_epoch_scheduler
from aees.runner.tasks.digits import DigitsTask

# One thread: tiny models are slower with more, and CI machines are shared.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
DUAL = ["--lr-candidates", "0.5,1,2", "--noise-candidates", "0,0.01"]


pytestmark = pytest.mark.usefixtures("one_thread")


def train(tmp_path: Path, *flags: str, name: str = "run.json") -> Path:
    out = tmp_path / name
    assert (
        cli.main(["train", "digits", "--epochs", "2", "--quiet", "--output", str(out), *flags]) == 0
    )
    return out


def cli_subprocess(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aees.cli", *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
        **kwargs,
    )


def check_consistent(path: Path, epochs: int = 2):
    result = run_checks.check_consistent(path, epochs)
    assert result.task_name == "digits" and result.dataset_name == "sklearn-digits"
    return result


# ------------------------------------------------------------------------------ runs


def test_baseline_run(tmp_path):
    result = check_consistent(train(tmp_path))
    assert result.method_name == "Baseline"
    assert result.episode_logs is None and result.controller_logs is None
    assert result.variant.startswith("baseline-adamw")
    assert "label_noise" not in result.diagnostics


def test_adaptive_dual_run_with_symmetric_noise(tmp_path):
    out = train(
        tmp_path,
        "--control-mode", "adaptive", *DUAL, "--episode-length", "7",
        "--label-noise-type", "symmetric", "--label-noise-rate", "0.2",
    )  # fmt: skip
    result = check_consistent(out)
    assert result.method_name == "AdaptiveScheduler"
    check_episodes(result, 7)
    lr_log = result.controller_logs["lr_controller_logs"]
    assert lr_log["controller_type"] == "DiscountedUCBController"
    assert len(lr_log["value_estimates_history"]) == len(result.episode_logs["episode_rewards"])
    assert set(result.episode_logs["selected_noise_values"]) <= {0.0, 0.01}
    assert result.config["candidate_config_names"][:2] == ["lr0p5_n0", "lr0p5_n0p01"]
    diag = result.diagnostics
    assert diag["label_noise"]["num_corrupted_examples"] == round(0.2 * 1257)
    assert (tmp_path / diag["label_noise"]["corrupted_indices_file"]).exists()
    for block in ("final_subset_accuracies", "best_val_subset_accuracies"):
        assert set(diag[block]) >= {
            "train_all_accuracy",
            "train_clean_accuracy",
            "train_corrupted_accuracy_vs_noisy_labels",
            "train_corrupted_accuracy_vs_clean_labels",
        }


def test_random_run_sgd_cosine_asymmetric_noise(tmp_path):
    out = train(
        tmp_path,
        "--control-mode", "random", *DUAL, "--episode-length", "9", "--optimizer", "SGD",
        "--lr", "0.05", "--lr-scheduler", "cosine",
        "--label-noise-type", "asymmetric", "--label-noise-rate", "0.1",
    )  # fmt: skip
    result = check_consistent(out)
    assert result.method_name == "RandomScheduler"
    check_episodes(result, 9)
    assert result.controller_logs["lr_controller_logs"]["controller_type"] == "RandomController"
    assert result.config["scheduler_t_max"] == 2 and result.config["scheduler_active"]
    assert result.diagnostics["label_noise"]["mapping"] == "d -> (d + 1) mod 10"


def test_trend_context_conditional_run(tmp_path):
    out = train(
        tmp_path,
        "--control-mode", "adaptive", *DUAL, "--episode-length", "5",
        "--structured-control-mode", "conditional", "--context-mode", "trend",
    )  # fmt: skip
    result = check_consistent(out)
    check_episodes(result, 5)
    by_lr = result.controller_logs["noise_controller_logs_by_lr"]
    assert set(by_lr) == {"0.5", "1.0", "2.0"}
    n = len(result.episode_logs["episode_rewards"])
    for log in by_lr.values():
        assert log["controller_type"] == "BucketedContextualController"
        assert len(log["bucket_visit_counts_history"]) == n
    lr_log = result.controller_logs["lr_controller_logs"]
    assert sum(lr_log["bucket_visit_counts_history"][-1].values()) == n


# ------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--epochs", "0"], "--epochs"),
        (["--lr", "-1"], "--lr"),
        (["--lr", "nan"], "--lr"),
        (["--weight-decay", "-0.1"], "--weight-decay"),
        (["--lr-candidates", "1,1"], "--lr-candidates"),
        (["--lr-candidates", "0,1"], "--lr-candidates"),
        (["--noise-candidates", "-0.1"], "--noise-candidates"),
        (["--noise-candidates", "a"], "--noise-candidates"),
        (["--reward-clip-min", "2"], "--reward-clip-min"),
        (["--label-noise-rate", "0.2"], "--label-noise-rate"),
        (["--label-noise-type", "symmetric", "--label-noise-rate", "1.5"], "--label-noise-rate"),
        (["--episode-length", "-3"], "--episode-length"),
        (["--scheduler-t-max", "0"], "--scheduler-t-max"),
        (["--resume"], "--resume"),
        (["--device", "tpu"], "--device"),
        (["--optimizer", "Adam"], "--optimizer"),
        (["--ema-alpha", "0"], "--ema-alpha"),
        (["--batch-size", "x"], "--batch-size"),
    ],
)
def test_bad_flags_exit_2_before_data(tmp_path, monkeypatch, capsys, flags, flag):
    def no_data(*_args, **_kwargs):
        raise AssertionError("data was loaded before validation")

    monkeypatch.setattr(DigitsTask, "build", no_data)
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "digits", "--output", str(tmp_path / "r.json"), *flags])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err, err


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "flag"),
    [
        (["--epochs", "-1"], "--epochs"),
        (["--control-mode", "greedy"], "--control-mode"),
    ],
)
def test_bad_flags_subprocess_one_line(tmp_path, flags, flag):
    done = cli_subprocess("train", "digits", "--output", str(tmp_path / "r.json"), *flags)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and flag in lines[0] and "Traceback" not in done.stderr
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_unwritable_output_fails_before_training(tmp_path):
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where a directory should be\n")
    done = cli_subprocess("train", "digits", "--output", str(blocker / "r.json"))
    assert done.returncode == 2
    assert "--output" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "epoch" not in done.stdout


def test_run_config_and_candidates():
    assert parse_candidates(" 0.5, 1,,2 ", flag="--lr-candidates", allow_zero=False) == (
        0.5,
        1.0,
        2.0,
    )
    assert parse_candidates(None, flag="--noise-candidates", allow_zero=True) == (0.0,)
    config = RunConfig(task_name="digits")
    with pytest.raises(AttributeError):
        config.epochs = 3  # type: ignore[misc]
    assert config.output_path == os.path.join("results", "digits_baseline_adamw_seed0.json")


def test_digits_data_matches_sklearn():
    from sklearn.datasets import load_digits

    from aees.runner.tasks.digits import load_digits_split, load_digits_tensors

    x, y = load_digits_tensors()
    data = load_digits()
    assert torch.equal(x, torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0)
    assert torch.equal(y, torch.tensor(data.target))
    split = load_digits_split()
    assert [len(split[k][1]) for k in ("train", "val", "test")] == [1257, 269, 271]
    assert len(load_digits_split(100)["val"][1]) == 100


def test_epoch_schedules_match_thesis_formulas():
    def lrs(name, epochs=4, **kw):
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched = build_epoch_scheduler(opt, name, epochs=epochs, **kw)
        out = []
        for _ in range(epochs):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return out

    assert lrs("cosine") == pytest.approx([1.0, 0.8535533905932737, 0.5, 0.14644660940672627])
    assert lrs("linear") == pytest.approx([0.75, 0.5, 0.25, 0.0])
    assert lrs("warmup_linear") == pytest.approx(lrs("linear"))
    assert lrs("warmup_linear", warmup_epochs=2) == pytest.approx([0.5, 1.0, 0.5, 0.0])
    assert lrs("cosine", scheduler_t_max=8)[1] == pytest.approx(0.9619397662556434)


# ------------------------------------------------------------------------------ resume


VOLATILE = {"wall_clock_seconds", "epoch_wall_clock_seconds", "runtime_metrics", "provenance"}


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    flags = [
        "train", "digits", "--epochs", "4", "--batch-size", "32", "--control-mode", "adaptive",
        *DUAL, "--episode-length", "7", "--quiet",
    ]  # fmt: skip
    ckpt_dir = tmp_path / "ckpt"
    killed_out = tmp_path / "resumed.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "aees.cli", *flags, "--output", str(killed_out),
         "--checkpoint-dir", str(ckpt_dir)],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    # the uninterrupted reference runs alongside
    reference = subprocess.Popen(
        [sys.executable, "-m", "aees.cli", *flags,
         "--output", str(tmp_path / "reference.json")],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        kill_at_first_checkpoint(proc, ckpt_dir, killed_out, timeout=120)
    except pytest.skip.Exception:  # pragma: no cover - the run outpaced the kill
        reference.wait(timeout=120)
        raise

    resumed = cli_subprocess(
        *[f for f in flags if f != "--quiet"],
        "--output", str(killed_out), "--checkpoint-dir", str(ckpt_dir), "--resume",
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    assert reference.wait(timeout=120) == 0, reference.stderr.read() if reference.stderr else ""

    a = load_run_result(tmp_path / "reference.json").to_dict()
    b = load_run_result(killed_out).to_dict()
    assert b["provenance"].get("resumed") is True
    for key in set(a) - VOLATILE - {"config"}:
        assert a[key] == b[key], key
    for key in set(a["config"]) - {"output", "checkpoint_dir", "resume", "quiet"}:
        assert a["config"][key] == b["config"][key], key
    assert len(b["epoch_wall_clock_seconds"]) == 4


def test_resume_with_other_config_is_refused(tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    base = ["--epochs", "1", "--checkpoint-dir", str(ckpt)]
    train(tmp_path, *base)
    argv = ["train", "digits", "--quiet", *base, "--output", str(tmp_path / "other.json")]
    assert cli.main([*argv, "--resume", "--lr", "0.01"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--lr" in err and "--resume" in err
    assert not (tmp_path / "other.json").exists()


def test_progress_output_does_not_change_training(tmp_path, capsys):
    """Status lines and the tqdm bar are display only: the same run with and without them."""
    pytest.importorskip("tqdm")
    flags = ["train", "digits", "--epochs", "2", *DUAL, "--control-mode", "adaptive"]
    flags += ["--episode-length", "7"]
    assert cli.main([*flags, "--quiet", "--output", str(tmp_path / "q.json")]) == 0
    assert cli.main([*flags, "--output", str(tmp_path / "v.json")]) == 0
    shown = capsys.readouterr()
    assert "epoch 2/2" in shown.out and "train_loss=" in shown.out
    quiet, verbose = (load_run_result(tmp_path / n) for n in ("q.json", "v.json"))
    assert quiet.val_accuracies == verbose.val_accuracies
    assert quiet.train_losses == verbose.train_losses
    assert quiet.episode_logs == verbose.episode_logs


@pytest.mark.slow
def test_missing_data_fails_before_a_resume_claims_a_fresh_start(tmp_path):
    """``--resume`` without a checkpoint says "starting from scratch" only once the data has
    loaded: a run that cannot find its data fails with that one line and nothing before it."""
    done = cli_subprocess(
        "train", "cifar100", "--data-dir", str(tmp_path / "no-data"), "--epochs", "1",
        "--checkpoint-dir", str(tmp_path / "ckpt"), "--resume",
        "--output", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "starting from scratch" not in done.stdout + done.stderr
    assert done.stdout == "" and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--data-dir" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "r.json").exists()
