"""Hostile inputs for ``aees report`` (issue 9, item 5): one odd file must never abort the report.

Each root holds good digits runs plus files a report cannot trust: non-finite numbers,
inconsistent per-epoch lists, foreign values inside nested blocks, special files (a FIFO, a
link to ``/dev/zero``), an oversized file. ``aees report`` runs in a subprocess (a hang fails
the test through its timeout; a runaway read through its memory limit) and must exit 0, list
each bad file once with its reason, and build the tables from the good runs.
"""

from __future__ import annotations

import html
import json
import math
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import report_fixtures as fx

from aees.reporting.render import md_text
from aees.results import result_to_dict

ADAMW = fx.Spec()
AEES_LR = fx.Spec("adaptive", lr=(0.5, 1.0, 2.0))
EPOCHS = 3
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
MEMORY_LIMIT = 3 * 2**30  # a read of /dev/zero hits this in seconds instead of taking the host
posix_only = pytest.mark.skipif(os.name != "posix", reason="FIFOs and /dev/zero are POSIX")


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_DATA, (MEMORY_LIMIT, MEMORY_LIMIT))


def aees_report(root: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """``aees report ROOT --out OUT`` (the console script when installed next to Python)."""
    script = Path(sys.executable).with_name("aees")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "aees.cli"]
    return subprocess.run(
        [*head, "report", str(root), "--out", str(out)],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
        preexec_fn=_limit_memory,
    )


def good_record(seed: int, spec: fx.Spec = ADAMW, **kw: Any) -> dict[str, Any]:
    """A valid digits result as the JSON dict written to disk."""
    result = fx.make_result(spec, task="digits", seed=seed, epochs=EPOCHS, peak_at=2, **kw)
    return result_to_dict(result, hardware=fx.HARDWARE)


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))  # NaN / Infinity written as Python does
    return path


def edited(seed: int, spec: fx.Spec = ADAMW, **changes: Any) -> dict[str, Any]:
    data = good_record(seed, spec)  # seeds 10-40: accuracies stay below 1
    data.update(changes)
    return data


def _with(data: dict[str, Any], block: str, **changes: Any) -> dict[str, Any]:
    data[block] = {**(data.get(block) or {}), **changes}
    return data


# Value-level hostile files: name -> (record, the words its listed reason must contain).
nan3 = [math.nan] * EPOCHS
Case = tuple[Callable[[], dict[str, Any]], tuple[str, ...]]
VALUE_CASES: dict[str, Case] = {
    "nan_accuracy.json": (
        lambda: edited(
            10, val_accuracies=nan3, best_val_accuracy=math.nan, final_val_accuracy=math.nan
        ),
        ("accuracy", "not finite"),
    ),
    "inf_accuracy.json": (
        lambda: edited(11, val_accuracies=[math.inf, -math.inf, 0.5], best_val_accuracy=math.inf),
        ("accuracy", "not finite"),
    ),
    "inf_time.json": (
        lambda: edited(
            12, wall_clock_seconds=math.inf, epoch_wall_clock_seconds=[1.0, -math.inf, 1.0]
        ),
        ("seconds", "not finite"),
    ),
    "nan_loss_not_marked_diverged.json": (
        lambda: edited(13, train_losses=[1.0, math.nan, math.nan], final_train_loss=math.nan),
        ("loss", "not finite", "diverged"),
    ),
    "empty_lists.json": (
        lambda: edited(14, val_accuracies=[], train_losses=[], epoch_wall_clock_seconds=[]),
        ("val_accuracies", "0 entries", f"{EPOCHS} epochs"),
    ),
    "short_list.json": (
        lambda: edited(15, val_accuracies=[0.3, 0.4]),
        ("val_accuracies", "2 entries", f"{EPOCHS} epochs"),
    ),
    "accuracy_percent.json": (
        lambda: edited(16, val_accuracies=[30.0, 45.0, 40.0], best_val_accuracy=45.0),
        ("accuracy", "[0, 1]"),
    ),
    "zero_epochs.json": (
        lambda: edited(17, total_epochs=0, val_accuracies=[], train_losses=[], epoch_tflops=[]),
        ("total_epochs",),
    ),
    "bad_candidates.json": (
        lambda: _with(edited(18, AEES_LR), "config", lr_candidates=["fast", "slow"]),
        ("config.lr_candidates[0]", "must be a number"),
    ),
    "nan_noise_rate.json": (
        lambda: _with(
            edited(19), "config", label_noise_type="symmetric", label_noise_rate=math.nan
        ),
        ("label_noise_rate",),
    ),
    "string_diagnostic.json": (
        lambda: _with(
            _with(edited(20), "config", label_noise_type="symmetric", label_noise_rate=0.4),
            "diagnostics",
            best_val_subset_accuracies={"train_clean_accuracy": "high", "epoch": 2},
        ),
        ("best_val_subset_accuracies", "train_clean_accuracy"),
    ),
    "string_arms.json": (
        lambda: _with(edited(21, AEES_LR), "episode_logs", selected_lr_values=["a", "b"]),
        ("episode_logs", "selected_lr_values"),
    ),
}


def diverged_record() -> dict[str, Any]:
    """A run marked as diverged (NaN losses from epoch 2 on, the metrics so far)."""
    return edited(
        30,
        AEES_LR,
        diverged=True,
        diverged_at_step=150,
        diverged_at_epoch=2,
        train_losses=[1.0, math.nan],
        final_train_loss=math.nan,
        val_accuracies=[0.4, 0.01],
        epoch_wall_clock_seconds=[2.0, 2.0],
        epoch_tflops=[1.0, 1.0],
    )


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A root with good runs (AdamW seeds 0, 1; AEES seeds 0, 1) and every hostile file."""
    root = tmp_path_factory.mktemp("hostile")
    for seed in (0, 1):
        write_json(root / "good" / f"adamw_seed{seed}.json", good_record(seed, offset=0.3))
        write_json(root / "good" / f"aees_seed{seed}.json", good_record(seed, AEES_LR, offset=0.32))
    bad: dict[str, tuple[str, ...]] = {}
    for name, (record, words) in VALUE_CASES.items():
        bad[str(write_json(root / "bad" / name, record()))] = words
    write_json(root / "bad" / "diverged.json", diverged_record())
    huge_int = root / "bad" / "huge_int.json"
    huge_int.write_text('{"seed": ' + "9" * 5000 + "}")
    bad[str(huge_int)] = ("JSON",)
    newline = write_json(root / "bad" / "two\nlines.json", good_record(40))
    bad[str(newline).replace("\n", "\\n")] = ("file name",)
    big = root / "special" / "big.json"
    big.parent.mkdir()
    with big.open("wb") as handle:
        handle.truncate(65 * 2**20)  # sparse: larger than the cap, costs no disk
    bad[str(big)] = ("larger than", "MiB")
    if os.name == "posix":
        fifo = root / "special" / "x.json"
        os.mkfifo(fifo)
        bad[str(fifo)] = ("not a regular file", "FIFO")
        zero = root / "special" / "zero.json"
        zero.symlink_to("/dev/zero")
        bad[str(zero)] = ("not a regular file", "character device", "link")
    out = tmp_path_factory.mktemp("hostile_report")
    done = aees_report(root, out)
    return {"root": root, "out": out, "bad": bad, "done": done}


def _problem_lines(hostile: dict[str, Any]) -> list[str]:
    return [ln for ln in hostile["done"].stderr.splitlines() if ln.startswith("aees report: warn")]


@pytest.mark.slow
def test_report_exits_0_without_traceback(hostile):
    done = hostile["done"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert (hostile["out"] / "index.html").is_file() and (hostile["out"] / "index.md").is_file()


@pytest.mark.slow
def test_good_runs_are_in_the_tables(hostile):
    done, out = hostile["done"], hostile["out"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert "4 runs" in done.stdout
    md = (out / "index.md").read_text()
    assert f"| Digits | Clean | {EPOCHS} | AdamW | 2 | 0 1 |" in md
    assert f"| Digits | Clean | {EPOCHS} | AEES-LR | 2 | 0 1 |" in md
    rows = fx.read_csv(out / "tables" / "cifar_clean" / "digits_clean_summary.csv")
    by_method = {r["method"]: r for r in rows}
    assert set(by_method) == {"AdamW", "AEES"}
    for label, offset in (("AdamW", 0.3), ("AEES", 0.32)):
        best = [max(fx.curve(offset, s, EPOCHS, 2)) for s in (0, 1)]
        assert by_method[label]["n"] == "2"
        assert fx.isclose(float(by_method[label]["best_val_mean"]), sum(best) / 2)
    assert (out / "figures" / "cifar" / "digits_clean_curves.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(VALUE_CASES))
def test_value_problem_is_listed_with_its_reason(hostile, name):
    """Non-finite, out-of-range and inconsistent values: one line, path + reason."""
    path = str(hostile["root"] / "bad" / name)
    lines = [ln for ln in _problem_lines(hostile) if path + ":" in ln]
    assert len(lines) == 1, (name, hostile["done"].stderr[-3000:])
    for word in hostile["bad"][path]:
        assert word in lines[0], (word, lines[0])
    md = (hostile["out"] / "index.md").read_text()
    assert f"- {lines[0].removeprefix('aees report: warning: ')}" in md


@pytest.mark.slow
def test_every_bad_file_is_listed_once_in_stderr_and_index(hostile):
    problems = _problem_lines(hostile)
    md = (hostile["out"] / "index.md").read_text()
    html_text = (hostile["out"] / "index.html").read_text()
    for path, words in hostile["bad"].items():
        lines = [ln for ln in problems if ln.split(": ", 2)[-1].startswith(path + ": ")]
        assert len(lines) == 1, (path, hostile["done"].stderr[-3000:])
        assert all(w in lines[0] for w in words), (words, lines[0])
        assert md_text(path) in md and html.escape(path) in html_text
    # every problem line is one line and names an input; nothing else is reported as a problem
    assert len([ln for ln in problems if "diverged at step" not in ln]) == len(hostile["bad"])


@pytest.mark.slow
@posix_only
def test_special_files_are_not_read(hostile):
    """The FIFO did not hang the report (timeout), /dev/zero did not exhaust it (memory
    limit), the oversized file was refused by its size, not parsed."""
    special = hostile["root"] / "special"
    lines = "\n".join(_problem_lines(hostile))
    assert f"{special / 'x.json'}: not a regular file (FIFO)" in lines
    assert f"{special / 'zero.json'}: not a regular file (character device" in lines
    assert f"{special / 'big.json'}: larger than" in lines
    assert "corrupt JSON" not in lines.split(str(special / "big.json"))[1].split("\n")[0]


@pytest.mark.slow
def test_diverged_run_is_listed_and_kept_out_of_the_statistics(hostile):
    done, out = hostile["done"], hostile["out"]
    path = hostile["root"] / "bad" / "diverged.json"
    lines = [ln for ln in done.stderr.splitlines() if str(path) in ln]
    assert len(lines) == 1 and "diverged at step 150 (epoch 2)" in lines[0], done.stderr[-3000:]
    md = (out / "index.md").read_text()
    assert "## Diverged runs" in md and str(path) in md.split("## Diverged runs")[1]
    # seed 30 is not in any cell: the AEES cell keeps n = 2 (seeds 0, 1)
    assert f"| Digits | Clean | {EPOCHS} | AEES-LR | 2 | 0 1 |" in md
    rows = fx.read_csv(out / "tables" / "cifar_clean" / "digits_clean_summary.csv")
    assert {r["method"]: r["n"] for r in rows}["AEES"] == "2"


# ----------------------------------------------------------------------------------------------
# Degenerate but valid inputs: every builder must cope
# ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_degenerate_valid_runs_build_every_family(tmp_path):
    """One epoch, one seed per cell, all-equal values, one run per cell, empty optional lists,
    a noisy setting with None diagnostics and no best epoch, zero timings and update norms:
    exit 0, every run reported, nothing listed as a problem."""
    root = tmp_path / "runs"
    noisy = {"label_noise_type": "symmetric", "label_noise_rate": 0.4}

    def one_epoch(seed: int, spec: fx.Spec, **changes: Any) -> dict[str, Any]:
        data = fx.make_result(spec, task="digits", seed=seed, epochs=1, peak_at=1)
        record = result_to_dict(data, hardware=fx.HARDWARE)
        record.update(changes)
        return record

    flat = {"val_accuracies": [0.5], "best_val_accuracy": 0.5, "final_val_accuracy": 0.5}
    write_json(root / "baseline.json", one_epoch(0, fx.Spec(), **flat))
    aees = one_epoch(0, AEES_LR, **flat, epoch_tflops=[], estimated_flops=None)
    logs = aees["episode_logs"]
    logs["episode_rewards"] = [0.25] * len(logs["episode_rewards"])
    logs["mean_update_norms"] = [0.0] * len(logs["mean_update_norms"])
    write_json(root / "aees.json", aees)
    # same AEES with noise candidates: the gradient-noise ablation pairs a single seed each
    dual = fx.Spec("adaptive", lr=(0.5, 1.0, 2.0), noise=(0.0, 0.01))
    write_json(root / "aees_noise.json", one_epoch(0, dual, **flat))
    sym = one_epoch(1, fx.Spec(), **flat, epoch_wall_clock_seconds=[0.0], wall_clock_seconds=0.0)
    sym["config"].update(noisy)
    sym["diagnostics"] = {
        "best_val_epoch": None,  # the engine's value before any epoch improved
        "final_subset_accuracies": dict.fromkeys(
            ("train_all_accuracy", "train_clean_accuracy"), None
        ),
        "best_val_subset_accuracies": {"epoch": 1, "train_clean_accuracy": 0.5},
    }
    write_json(root / "sym40.json", sym)
    # trained with --nonfinite skip: NaN losses are what it asked for, its accuracies count
    skipped = one_epoch(3, fx.Spec(), **flat, train_losses=[math.nan], final_train_loss=math.nan)
    skipped["config"]["nonfinite"] = "skip"
    write_json(root / "nonfinite_skip.json", skipped)
    # two timed epochs with equal times: the compute family has exactly one steady state
    timed = fx.make_result(fx.Spec(), task="digits", seed=2, epochs=2, peak_at=1)
    fx.write(timed, root / "timed.json")
    out = tmp_path / "report"
    done = aees_report(root, out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "warning:" not in done.stderr
    assert "6 runs" in done.stdout
    md = (out / "index.md").read_text()
    assert "| Digits | Sym 40% | 1 | AdamW | 1 | 1 |" in md
    assert "| Digits | Clean | 1 | AdamW | 2 | 0 3 |" in md  # with the --nonfinite skip run
    assert (out / "figures" / "controllers").is_dir()
    assert list((out / "figures" / "cifar").glob("digits_*_curves.png"))
