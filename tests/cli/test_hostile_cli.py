"""Hostile command lines for ``aees train``: divergence, abbreviated flags, unbounded values.

Every case goes through the CLI in a subprocess, where a user meets it: one line on stderr, no
traceback, the documented exit status, and no result unless the run produced one.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from run_checks import ENV, aees

from aees.results import REDACTED, load_run_result, redact_values
from aees.runner.config import MAX_INT_FLAG, MAX_SEED, usable_cpu_count

ADAPTIVE = ["--control-mode", "adaptive", "--lr-candidates", "0.5,1,2"]


def one_line_error(done: subprocess.CompletedProcess[str], status: int, needle: str) -> str:
    assert done.returncode == status, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr
    return lines[0]


# ------------------------------------------------------------------------------ divergence


@pytest.mark.slow
@pytest.mark.parametrize("mode", [ADAPTIVE, ["--control-mode", "baseline"]], ids=["aees", "base"])
def test_divergence_writes_a_result_marked_diverged(tmp_path, mode):
    out = tmp_path / "r.json"
    done = aees("train", "digits", *mode, "--lr", "1e6", "--epochs", "3", "--quiet",
                "--output", str(out))  # fmt: skip
    line = one_line_error(done, 3, "diverged")
    assert "--nonfinite skip" in line and str(out) in line
    result = load_run_result(out)
    assert result.diverged and result.diverged_at_epoch == 1
    assert result.diverged_at_step is not None and result.diverged_at_step >= 0
    assert result.train_losses == [] and result.val_accuracies == []  # no completed epoch
    assert json.loads(out.read_text())["diverged"] is True


@pytest.mark.slow
def test_divergence_after_completed_epochs_keeps_them(tmp_path):
    # A schedule that is fine for one epoch, then explodes: linear warmup to a huge LR.
    out = tmp_path / "r.json"
    done = aees("train", "digits", *ADAPTIVE, "--lr", "1e5", "--lr-scheduler", "warmup_linear",
                "--warmup-epochs", "2", "--epochs", "4", "--episode-length", "5", "--quiet",
                "--output", str(out))  # fmt: skip
    if done.returncode == 0:
        pytest.skip("this schedule did not diverge on this platform")
    one_line_error(done, 3, "diverged")
    result = load_run_result(out)
    done_epochs = len(result.val_accuracies)
    assert result.diverged_at_epoch == done_epochs + 1
    assert len(result.train_losses) == done_epochs
    assert all(math.isfinite(v) for v in result.train_losses)


@pytest.mark.slow
def test_nonfinite_skip_finishes_and_counts(tmp_path):
    out = tmp_path / "r.json"
    done = aees("train", "digits", *ADAPTIVE, "--lr", "1e6", "--epochs", "1", "--quiet",
                "--episode-length", "5", "--nonfinite", "skip", "--output", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = load_run_result(out)
    assert not result.diverged and result.config["nonfinite"] == "skip"
    assert sum(result.episode_logs["episode_nonfinite_steps"]) > 0


@pytest.mark.slow
def test_healthy_run_is_not_marked(tmp_path):
    out = tmp_path / "r.json"
    done = aees("train", "digits", "--epochs", "1", "--quiet", "--output", str(out))
    assert done.returncode == 0, done.stderr
    result = load_run_result(out)
    assert result.diverged is False and result.diverged_at_step is None


# ------------------------------------------------------------------------------ abbreviations


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "flags", "needle"),
    [
        ("digits", ["--epoch", "1"], "--epoch"),
        ("digits", ["--out", "x.json"], "--out"),
        ("sst2", ["--hf-tok", "plain-secret"], "--hf-tok"),
        ("sst2", ["--hf=plain-secret"], "--hf"),
    ],
)
def test_abbreviated_flags_are_refused(tmp_path, task, flags, needle):
    done = aees("train", task, "--output", str(tmp_path / "r.json"), *flags)
    line = one_line_error(done, 2, needle)
    assert "plain-secret" not in line or "unrecognized" in line
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_subcommand_parsers_refuse_abbreviations(tmp_path):
    done = aees("report", str(tmp_path), "--ou", str(tmp_path / "rep"))
    one_line_error(done, 2, "--ou")


def test_redaction_by_value():
    argv = ["aees", "train", "sst2", "--hf-token", "abc-plain-1", "--run-tag", "x-abc-plain-1"]
    redacted = redact_values(argv, ["abc-plain-1"])
    assert redacted[4] == REDACTED and "abc-plain-1" not in " ".join(redacted)
    assert redact_values({"a": ["k"]}, ["k"]) == {"a": [REDACTED]}
    assert redact_values(["keep"], ["k"]) == ["keep"]  # short values: whole strings only


# ------------------------------------------------------------------------------ ranges


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--seed", str(2**64)], "--seed"),
        (["--seed", "-1"], "--seed"),
        (["--seed", str(MAX_SEED + 1)], "--seed"),
        (["--batch-size", str(2**63)], "--batch-size"),
        (["--epochs", str(MAX_INT_FLAG + 1)], "--epochs"),
        (["--episode-length", str(-(2**70))], "--episode-length"),
        (["--val-split", str(2**40)], "--val-split"),
        (["--num-workers", str(usable_cpu_count() + 1)], "--num-workers"),
        (["--num-workers", "100000"], "--num-workers"),
    ],
)
def test_out_of_range_integers_fail_at_parse_time(tmp_path, flags, needle):
    done = aees("train", "digits", "--output", str(tmp_path / "r.json"), *flags, timeout=60)
    one_line_error(done, 2, needle)
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
def test_largest_seed_is_accepted(tmp_path):
    out = tmp_path / "r.json"
    done = aees("train", "digits", "--epochs", "1", "--quiet", "--seed", str(MAX_SEED),
                "--output", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert load_run_result(out).seed == MAX_SEED


@pytest.mark.slow
def test_task_int_flags_are_range_checked(tmp_path):
    done = aees("train", "sst2", "--max-length", str(2**63), "--output", str(tmp_path / "r.json"))
    one_line_error(done, 2, "--max-length")


@pytest.mark.slow
def test_result_path_untouched_when_refused(tmp_path: Path):
    out = tmp_path / "r.json"
    out.write_text("previous\n")
    one_line_error(aees("train", "digits", "--output", str(out), "--seed", "-5"), 2, "--seed")
    assert out.read_text() == "previous\n"


# ------------------------------------------------------------------------------ a newcomer's CLI


@pytest.mark.slow
def test_top_level_help_is_plain_text():
    done = aees("--help", timeout=60)
    assert done.returncode == 0, done.stderr
    assert "``" not in done.stdout and "console script" not in done.stdout
    assert "train" in done.stdout and "plan" in done.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "prog"),
    [
        (["train", "digits", "--bogus"], "aees train digits"),
        (["train", "digits", "--epochs", "1", "stray"], "aees train digits"),
        (["demo", "--bogus"], "aees demo"),
    ],
)
def test_unknown_flag_names_the_subcommand(tmp_path, args, prog):
    line = one_line_error(aees(*args, timeout=60), 2, "unrecognized arguments")
    assert line.startswith(f"{prog}: error:"), line


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--hf-tok", "hf_abcdefghijklmnopqrstuvwxyz0123"], "--hf-tok"),
        (["--hf-tok=plain-secret-value"], "--hf-tok"),
        (["--api-k", "plain-secret-value"], "--api-k"),
        (["--quiet", "--passw", "plain-secret-value", "--bogus"], "--passw --bogus"),
    ],
    ids=["hf-token-shape", "equals", "api-key", "several"],
)
def test_unrecognized_secret_flags_are_not_echoed(tmp_path, flags, needle):
    """argparse's "unrecognized arguments" line echoes what it did not understand: an abbreviated
    secret flag (refused, since abbreviations are) must not carry its value into the terminal."""
    done = aees("train", "sst2", "--output", str(tmp_path / "r.json"), *flags, timeout=60)
    line = one_line_error(done, 2, needle)
    assert line.startswith("aees train sst2: error: unrecognized arguments:"), line
    for secret in ("hf_abcdefghijklmnopqrstuvwxyz0123", "plain-secret-value"):
        assert secret not in done.stderr + done.stdout
    assert not (tmp_path / "r.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("task", "default"), [("digits", "20"), ("image", "200")])
def test_train_help_shows_the_episode_length_default(task, default):
    """-h shows every default, the task's own where it sets one (digits: 20 steps)."""
    done = aees("train", task, "-h", timeout=60)
    assert done.returncode == 0, done.stderr
    block = done.stdout.split("--episode-length EPISODE_LENGTH\n", 1)[1].split("\n  --", 1)[0]
    assert f"(default: {default})" in " ".join(block.split()), block
    control = done.stdout.split("\n  --control-mode {", 1)[1].split("\n  --", 1)[0]
    assert "(default: baseline)" in control  # a flag without help text shows it too


# ------------------------------------------------------------------------------ AEES never acts

DIGITS_STEPS = "--batch-size", "256"  # 1,257 training images: 5 optimizer steps per epoch


def _merged(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aees.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**ENV, "PYTHONUNBUFFERED": "1"},
        timeout=180,
    )


@pytest.mark.slow
def test_a_run_shorter_than_the_warmup_warns_before_training_and_records_it(tmp_path):
    out = tmp_path / "r.json"
    done = _merged("train", "digits", *ADAPTIVE, *DIGITS_STEPS, "--epochs", "2",
                   "--output", str(out))  # fmt: skip
    assert done.returncode == 0, done.stdout
    lines = done.stdout.splitlines()
    warnings = [i for i, line in enumerate(lines) if "warning:" in line]
    assert len(warnings) == 1, done.stdout
    warning = lines[warnings[0]]
    assert warning.startswith("aees train digits: warning:"), warning
    assert "--episode-length" in warning and "--epochs" in warning
    assert "10 optimizer steps" in warning and "60" in warning and "20" in warning
    first_epoch = next(i for i, line in enumerate(lines) if "epoch 1/2" in line)
    assert warnings[0] < first_epoch  # before training, not after
    short = load_run_result(out).diagnostics["aees_short_run"]
    assert short == {
        "total_steps": 10,
        "episode_length": 20,
        "warmup_episodes": 3,
        "steps_needed": 60,
    }


@pytest.mark.slow
def test_a_run_shorter_than_one_episode_warns_in_random_mode(tmp_path):
    out = tmp_path / "r.json"
    done = aees("train", "digits", "--control-mode", "random", "--lr-candidates", "0.5,1",
                *DIGITS_STEPS, "--epochs", "1", "--quiet", "--output", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("warning:") == 1 and "--episode-length" in done.stderr
    assert load_run_result(out).diagnostics["aees_short_run"]["steps_needed"] == 20


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags",
    [
        [*ADAPTIVE, "--episode-length", "1"],  # 3 arms x 1 step <= 5 steps
        ["--control-mode", "baseline"],  # no AEES: nothing to warn about
    ],
    ids=["long-enough", "baseline"],
)
def test_a_run_long_enough_for_aees_does_not_warn(tmp_path, flags):
    out = tmp_path / "r.json"
    done = aees("train", "digits", *flags, *DIGITS_STEPS, "--epochs", "1", "--quiet",
                "--output", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr, done.stderr
    assert "aees_short_run" not in load_run_result(out).diagnostics


@pytest.mark.slow
@pytest.mark.parametrize(
    ("key", "value"),
    [("total_steps", 900), ("warmup_episodes", "3"), ("steps_needed", 7), ("extra", 1)],
)
def test_report_refuses_a_malformed_short_run_record(tmp_path, key, value):
    runs = tmp_path / "runs"
    done = aees("train", "digits", *ADAPTIVE, *DIGITS_STEPS, "--epochs", "1", "--quiet",
                "--output", str(runs / "r.json"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads((runs / "r.json").read_text())
    data["diagnostics"]["aees_short_run"][key] = value
    (runs / "r.json").write_text(json.dumps(data))
    done = aees("report", str(runs), "--out", str(tmp_path / "rep"), "--quiet")
    assert "Traceback" not in done.stderr
    assert "r.json: diagnostics.aees_short_run" in done.stderr, done.stderr


@pytest.mark.slow
def test_output_into_a_closed_pipe_ends_quietly():
    """``aees plan --list | head -1``: the reader goes away; no BrokenPipeError traceback."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom aees.cli import main\nsys.exit(main())",
         "plan", "--list"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0,
    )  # fmt: skip
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the listing is written (head -0)
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()[-800:]
    assert proc.returncode in (0, 141)
