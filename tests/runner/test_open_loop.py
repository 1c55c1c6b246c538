"""Open-loop attribution controls (thesis §2.1.8): plan math and end-to-end digits runs."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest
import run_checks
import torch

from aees import cli
from aees.results import load_run_result
from aees.runner.open_loop import (
    apportion,
    episode_count,
    frequency_matched_plan,
    pooled_frequencies,
    uniform_plan,
)

LR = ["--lr-candidates", "0.5,1,2", "--noise-candidates", "0.0"]
EPISODE = 6  # digits: 20 steps per epoch at batch 64 -> episodes of 6, 6, 6, 2
BASE = ["--epochs", "1", "--episode-length", str(EPISODE), *LR]


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------ plan math


def test_episode_count_is_the_ceiling() -> None:
    assert episode_count(391, 200, 200) == 391  # production CIFAR-100 geometry
    assert episode_count(20, 1, 6) == 4
    assert episode_count(20, 2, 5) == 8


def test_uniform_plan_uses_a_private_rng() -> None:
    random.seed(1234)
    before = random.getstate()
    plan = uniform_plan(50, schedule_seed=7)
    assert random.getstate() == before  # the global RNG is never touched
    rng = random.Random(7)
    assert list(plan.indices) == [rng.randrange(3) for _ in range(50)]
    assert list(plan.integer_counts) == [plan.indices.count(i) for i in range(3)]
    assert plan.probabilities == (1 / 3, 1 / 3, 1 / 3)
    assert plan.multipliers == [(0.5, 1.0, 2.0)[i] for i in plan.indices]
    meta = plan.to_metadata()
    assert meta["reward_free"] is True and meta["sampling_seed"] == 7
    assert meta["integer_counts"] == dict(
        zip(("0.5", "1.0", "2.0"), plan.integer_counts, strict=True)
    )


@pytest.mark.parametrize(
    ("probs", "total", "expected"),
    [
        ([0.5, 0.25, 0.25], 4, [2, 1, 1]),
        ([1 / 3, 1 / 3, 1 / 3], 4, [2, 1, 1]),  # three-way tie: the lowest index wins
        ([1 / 3, 1 / 3, 1 / 3], 5, [2, 2, 1]),
        ([0.125, 0.375, 0.5], 5, [1, 2, 2]),  # remainders .625, .875, .5
        ([0.2, 0.3, 0.5], 391, [78, 117, 196]),  # 78.2, 117.3, 195.5 -> last gets the unit
        ([0.0, 1.0, 0.0], 7, [0, 7, 0]),
    ],
)
def test_apportion_largest_remainder(probs: list[float], total: int, expected: list[int]) -> None:
    assert apportion(probs, total) == expected
    assert sum(expected) == total


def test_apportion_rejects_bad_probabilities() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        apportion([0.5, 0.4], 3)
    with pytest.raises(ValueError):
        apportion([1.5, -0.5], 3)


def test_frequency_matched_is_leave_one_seed_out() -> None:
    sources = {
        0: [2.0] * 10,  # the target: must not count
        1: [0.5, 0.5, 1.0, 2.0],
        2: [0.5, 1.0, 1.0, 1.0],
    }
    random.seed(99)
    before = random.getstate()
    plan = frequency_matched_plan(sources, target_seed=0, episodes=10, schedule_seed=5)
    assert random.getstate() == before
    counts, q = pooled_frequencies([sources[1], sources[2]])
    assert counts == [3, 4, 1] and q == [3 / 8, 4 / 8, 1 / 8]
    assert list(plan.probabilities) == q
    assert list(plan.integer_counts) == apportion(q, 10) == [4, 5, 1]  # 3.75, 5, 1.25
    assert Counter(plan.indices) == {0: 4, 1: 5, 2: 1}
    expected = [0] * 4 + [1] * 5 + [2]
    random.Random(5).shuffle(expected)
    assert list(plan.indices) == expected
    assert plan.source_seeds == (1, 2)
    assert plan.to_metadata()["q_minus_target_seed"] == {"0.5": 3 / 8, "1.0": 0.5, "2.0": 1 / 8}


# ------------------------------------------------------------------------------ end to end


def train(out: Path, *flags: str) -> int:
    return cli.main(["train", "digits", "--quiet", "--output", str(out), *BASE, *flags])


@pytest.fixture(scope="module")
def traces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AEES-LR digits runs, seeds 0-2, in nested directories under one root."""
    root = tmp_path_factory.mktemp("traces")
    torch.set_num_threads(1)
    for seed in (0, 1, 2):
        path = root / f"digits_seed{seed}" / "aees.json"
        assert train(path, "--control-mode", "adaptive", "--seed", str(seed)) == 0
    # a non-matching AEES run (other episode length) in the same tree is ignored
    other = root / "other" / "aees_ep5.json"
    assert cli.main(["train", "digits", "--quiet", "--output", str(other), "--epochs", "1",
                     "--episode-length", "5", *LR, "--control-mode", "adaptive"]) == 0  # fmt: skip
    return root


def test_frequency_matched_run_executes_the_plan(traces: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "fm.json"
    code = cli.main(["train", "digits", "--output", str(out), *BASE, "--seed", "0",
                     "--control-mode", "frequency-matched", "--aees-trace-root", str(traces),
                     "--schedule-seed", "42"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    result = run_checks.check_consistent(out, epochs=1)
    run_checks.check_episodes(result, EPISODE)
    meta = result.config["open_loop_policy"]
    assert "precomputed frequency-matched schedule: episodes=4 schedule_seed=42 counts=" in printed
    sources = {
        s: load_run_result(traces / f"digits_seed{s}" / "aees.json").episode_logs[
            "selected_lr_values"
        ]
        for s in (1, 2)
    }
    _, q = pooled_frequencies(sources.values())
    assert meta["policy"] == "frequency-matched" and meta["schedule_seed"] == 42
    assert meta["source_seeds"] == [1, 2]
    assert meta["source_artifacts"] == [
        str((traces / f"digits_seed{s}" / "aees.json").resolve()) for s in (1, 2)
    ]
    assert list(meta["probabilities"].values()) == q
    assert list(meta["integer_counts"].values()) == apportion(q, 4)
    assert meta["episode_count"] == 4
    logged = result.episode_logs["selected_lr_values"]
    assert meta["planned_lr_multipliers"] == meta["executed_lr_multipliers"] == logged
    assert Counter(logged) == {
        v: c for v, c in zip((0.5, 1.0, 2.0), apportion(q, 4), strict=True) if c
    }
    assert meta["controller_state"]["feedback_ignored"] is True
    assert meta["controller_state"]["selection_count"] == 4
    assert result.method_name == "FrequencyMatchedOpenLoop"
    assert result.controller_logs["open_loop_note"]


def test_uniform_run_and_variant_ids(traces: Path, tmp_path: Path) -> None:
    out = tmp_path / "ur.json"
    assert train(out, "--control-mode", "uniform-random", "--seed", "1") == 0
    result = load_run_result(out)
    meta = result.config["open_loop_policy"]
    plan = uniform_plan(4, 10_001)  # default schedule seed = 10000 + seed
    assert meta["schedule_seed"] == 10_001 and meta["source_seeds"] == []
    assert meta["planned_lr_indices"] == list(plan.indices)
    assert result.episode_logs["selected_lr_values"] == plan.multipliers
    assert result.config["schedule_seed"] == 10_001
    assert result.method_name == "UniformRandomOpenLoop"
    random_out = tmp_path / "random.json"
    assert train(random_out, "--control-mode", "random", "--seed", "1") == 0
    aees = load_run_result(traces / "digits_seed1" / "aees.json")
    fm = tmp_path / "fm.json"
    assert train(fm, "--control-mode", "frequency-matched", "--aees-trace-root", str(traces)) == 0
    variants = [load_run_result(p).variant for p in (out, fm, random_out)] + [aees.variant]
    assert len(set(variants)) == 4
    assert variants[0].startswith("uniform-open-loop-") and variants[1].startswith(
        "frequency-open-loop-"
    )


# ------------------------------------------------------------------------------ errors


def _error(capsys, *flags: str, task: str = "digits") -> str:
    try:
        code = cli.main(["train", task, "--quiet", *flags])
    except SystemExit as exit_:
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


def test_missing_traces_is_one_line(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "x.json"
    err = _error(capsys, "--output", str(out), *BASE, "--control-mode", "frequency-matched",
                 "--aees-trace-root", str(empty))  # fmt: skip
    assert "no AEES trace of another seed" in err and not out.exists()
    err = _error(capsys, "--output", str(out), *BASE, "--control-mode", "frequency-matched",
                 "--aees-trace-root", str(tmp_path / "nope"))  # fmt: skip
    assert "is not a directory" in err


def test_duplicate_and_incomplete_traces(traces: Path, tmp_path: Path, capsys) -> None:
    root = tmp_path / "root"
    src = traces / "digits_seed1" / "aees.json"
    data = json.loads(src.read_text())
    (root / "a").mkdir(parents=True)
    (root / "a" / "one.json").write_text(json.dumps(data))
    (root / "a" / "two.json").write_text(json.dumps(data))
    err = _error(capsys, "--output", str(tmp_path / "x.json"), *BASE, "--control-mode",
                 "frequency-matched", "--aees-trace-root", str(root))  # fmt: skip
    assert "seed 1: 2 found" in err
    (root / "a" / "two.json").unlink()
    data["episode_logs"]["selected_lr_values"] = data["episode_logs"]["selected_lr_values"][:-1]
    (root / "a" / "one.json").write_text(json.dumps(data))
    err = _error(capsys, "--output", str(tmp_path / "x.json"), *BASE, "--control-mode",
                 "frequency-matched", "--aees-trace-root", str(root))  # fmt: skip
    assert "seed 1" in err and "only incomplete ones" in err


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--control-mode", "uniform-random", "--lr-candidates", "0.5,1"], "--lr-candidates"),
        (["--control-mode", "uniform-random", "--noise-candidates", "0,0.01"], "--noise-cand"),
        (["--control-mode", "frequency-matched", "--lr-scheduler", "cosine"], "--lr-scheduler"),
        (["--control-mode", "uniform-random", "--context-mode", "trend"], "--context-mode"),
        (["--control-mode", "adaptive", "--schedule-seed", "3"], "--schedule-seed"),
        (["--control-mode", "baseline", "--schedule-seed", "3"], "--schedule-seed"),
    ],
)
def test_invalid_flags_exit_2(flags: list[str], needle: str, tmp_path: Path, capsys) -> None:
    base = ["--output", str(tmp_path / "x.json"), "--epochs", "1", *LR]
    assert needle in _error(capsys, *base, *flags)


def test_cifar100_regime_restriction(tmp_path: Path, capsys) -> None:
    base = ["--output", str(tmp_path / "x.json"), *LR, "--control-mode", "uniform-random"]
    err = _error(capsys, *base, "--label-noise-type", "symmetric", "--label-noise-rate", "0.3",
                 task="cifar100")  # fmt: skip
    assert "symmetric 0.4" in err
    from aees.cli.train import parse_train_args

    config, _ = parse_train_args(["train", "cifar100", *base, "--label-noise-type", "asymmetric",
                                  "--label-noise-rate", "0.2", "--seed", "3"])  # fmt: skip
    assert config.schedule_seed == 10_003 and config.aees_trace_root == "results/cifar_noisy"
    assert config.method_name == "UniformRandomOpenLoop"


def test_arm_index_is_exact_a_wrong_arm_is_an_error():
    # One arm lookup for the runner and reporting: a logged value is one of the arms (within
    # a 1e-12 relative tolerance); anything else is a bug, never the nearest arm.
    from aees.results.traces import arm_index

    arms = (0.5, 1.0, 2.0)
    assert [arm_index(v, arms) for v in (0.5, 1.0, 2.0, 2.0 + 1e-13)] == [0, 1, 2, 2]
    with pytest.raises(ValueError, match=r"0\.9 is not a candidate \[0\.5, 1\.0, 2\.0\]"):
        arm_index(0.9, arms)
    with pytest.raises(ValueError, match="is not a candidate"):
        pooled_frequencies([[0.5, 1.5]], arms)
