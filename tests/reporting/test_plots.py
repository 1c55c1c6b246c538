"""Figure families: a non-empty PNG of the expected size per figure, the plotted numbers in the
summary, and a MISSING note (and exit status 1 from the scripts) when inputs are absent."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import report_fixtures as fx

from aees.reporting.discovery import discover_runs
from aees.reporting.figures import (
    DPI,
    FIGSIZE,
    cifar_figures,
    compute_figures,
    controller_figures,
    nlp_figures,
    rolling,
)
from aees.reporting.runs import RunSet

EXPECTED_PX = (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def assert_rendered(results, names: set[str]) -> dict:
    by_name = {r.name: r for r in results}
    assert names <= set(by_name), sorted(by_name)
    for name in names:
        r = by_name[name]
        assert r.ok, r.missing
        assert r.png is not None and r.png.stat().st_size > 5000
        assert png_size(r.png) == EXPECTED_PX
        assert r.png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
        assert r.png.with_name(f"{name}.summary.txt").read_text().startswith(f"# {name}")
    return by_name


def _runset(root: Path) -> RunSet:
    return RunSet(discover_runs(root).runs)


AEES_LR = fx.Spec("adaptive", lr=(0.5, 1.0, 2.0))


@pytest.fixture(scope="module")
def small_cifar(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cifar")
    for seed in (0, 1):
        for name, spec, off in (("base", fx.Spec(), 0.2), ("aees", AEES_LR, 0.25)):
            fx.write(fx.make_result(spec, seed=seed, offset=off, epochs=8, peak_at=5),
                     root / f"clean_{name}_{seed}.json")  # fmt: skip
            fx.write(fx.make_result(spec, seed=seed, offset=off - 0.1, epochs=8, peak_at=3,
                                    noise_type="symmetric", rate=0.4),
                     root / f"sym40_{name}_{seed}.json")  # fmt: skip
    return root


def test_cifar_figures_render_with_the_table_numbers(small_cifar, tmp_path):
    results = cifar_figures(_runset(small_cifar), tmp_path)
    by_name = assert_rendered(
        results, {"cifar_clean_curves", "cifar_clean_barplot", "cifar_sym40_curves"}
    )
    summary = (tmp_path / "cifar_clean_barplot.summary.txt").read_text()
    best = [max(fx.curve(0.25, s, 8, 5)) * 100 for s in (0, 1)]
    line = next(ln for ln in summary.splitlines() if ln.startswith("AEES:"))
    assert f"peak={np.mean(best):.2f}±{np.std(best, ddof=1):.2f}" in line
    # rows of the clean table without runs are listed, not silently dropped
    assert any("AdamW + Cosine: no runs" in m for m in by_name["cifar_clean_curves"].partial)
    curves = (tmp_path / "cifar_clean_curves.summary.txt").read_text()
    final = [fx.curve(0.25, s, 8, 5)[-1] * 100 for s in (0, 1)]
    line = next(ln for ln in curves.splitlines() if ln.startswith("AEES:"))
    assert f"final={np.mean(final):.2f}±{np.std(final, ddof=1):.2f}" in line
    assert "peak_epoch=5.0±0.0" in line


def test_figures_report_missing_inputs(tmp_path):
    # only a random-σ run: no line of the clean CIFAR figures has runs
    fx.write(fx.make_result(fx.Spec("random", noise=(0.0, 0.01))), tmp_path / "in" / "r.json")
    results = cifar_figures(_runset(tmp_path / "in"), tmp_path / "out")
    missing = {r.name: r for r in results if not r.ok}
    assert {"cifar_clean_curves", "cifar_clean_barplot"} <= set(missing)
    note = (tmp_path / "out" / "cifar_clean_curves.MISSING.md").read_text()
    assert note.startswith("# cifar_clean_curves — missing") and "AdamW: no runs" in note
    assert not (tmp_path / "out" / "cifar_clean_curves.png").exists()
    # no NLP runs at all
    nlp = nlp_figures(_runset(tmp_path / "in"), tmp_path / "out")
    assert [r.name for r in nlp] == ["nlp_figures"] and not nlp[0].ok


def test_nlp_figures(tmp_path):
    root = tmp_path / "in"
    for label in ("AdamW", "AEES", "Fixed σ=0.005 + WL", "AdamW + warmup-linear"):
        spec, off = fx.NLP[label]
        for seed in (0, 1):
            fx.write(fx.make_result(spec, task="agnews", seed=seed, epochs=4, peak_at=2,
                                    offset=off, noise_type="symmetric", rate=0.2),
                     root / f"{fx._slug(label)}_{seed}.json")  # fmt: skip
    results = nlp_figures(_runset(root), tmp_path / "out")
    assert_rendered(results, {"agnews_noise20_curves", "agnews_noise20_noise_ablation_barplot"})


def test_controller_figures_and_missing_update_norms(tmp_path):
    root = tmp_path / "in"
    spec = fx.Spec("adaptive", lr=(0.5, 1.0, 2.0), noise=(0.0, 0.01))
    for seed in (0, 1, 2):
        fx.write(fx.make_result(spec, seed=seed, epochs=6, peak_at=3), root / f"a{seed}.json")
    results = controller_figures(_runset(root), tmp_path / "out")
    names = {
        "arm_selection_cifar100_clean_adamw_none_dual",
        "reward_per_arm_cifar100_clean_adamw_none_dual",
        "update_norm_trajectory",
    }
    assert_rendered(results, names)
    arms = (
        tmp_path / "out" / "arm_selection_cifar100_clean_adamw_none_dual.summary.txt"
    ).read_text()
    # fraction of seeds per arm sums to one in every episode
    assert "[lr] episodes=18 column sums in [1.000, 1.000]" in arms
    rewards = (
        tmp_path / "out" / "reward_per_arm_cifar100_clean_adamw_none_dual.summary.txt"
    ).read_text()
    # reward = 0.01·(arm index + 1) − 0.005·seed, pooled over 3 seeds × 6 episodes per arm
    expected = np.mean([0.01 * 1 - 0.005 * s for s in (0, 1, 2)])
    assert f"[lr] arm 0.5: n=18 mean={expected:.5f}" in rewards

    # runs without update norms: that figure is MISSING, the others still render
    other = tmp_path / "in2"
    for seed in (0, 1):
        result = fx.make_result(spec, seed=seed, epochs=6, peak_at=3)
        logs = dict(result.episode_logs or {})
        logs["mean_update_norms"] = [None] * len(logs["mean_update_norms"])
        from dataclasses import replace

        fx.write(replace(result, episode_logs=logs), other / f"a{seed}.json")
    results = controller_figures(_runset(other), tmp_path / "out2")
    by_name = {r.name: r for r in results}
    assert not by_name["update_norm_trajectory"].ok
    assert (
        "--track-update-norm"
        in (tmp_path / "out2" / "update_norm_trajectory.MISSING.md").read_text()
    )
    assert by_name["arm_selection_cifar100_clean_adamw_none_dual"].ok


def test_compute_figure_uses_the_decomposition_configs(tmp_path):
    fx.write_timing(tmp_path / "in")
    results = compute_figures(_runset(tmp_path / "in"), tmp_path / "out")
    assert_rendered(results, {"wallclock_overhead"})
    summary = (tmp_path / "out" / "wallclock_overhead.summary.txt").read_text()
    secs = {k: np.mean(v[1]) for k, v in fx.TIMING.items()}
    lr = 100 * (secs["aees_lr_only_none"] / secs["baseline_none"] - 1)
    assert "AEES-LR (aees_lr_only_none): n=3" in summary and f"overhead={lr:+.2f}%" in summary
    assert "missing: Digits (AdamW): AEES-Dual: no timing runs" in summary
    # without a no-scheduler baseline there is nothing to compare against
    only_aees = tmp_path / "in2"
    fx.write(fx.make_result(AEES_LR, task="digits", epochs=3, peak_at=2), only_aees / "a.json")
    (result,) = compute_figures(_runset(only_aees), tmp_path / "out2")
    assert not result.ok and "no baseline" in result.missing[0]


def test_rolling_is_centred_and_shrinks_at_the_ends():
    assert rolling([1, 2, 3, 4, 5], 3) == [1.5, 2.0, 3.0, 4.0, 4.5]
    assert rolling([1, 100, 2], 3, "median") == [50.5, 2.0, 51.0]


def test_controller_figures_a_logged_value_that_is_no_arm_is_a_listed_problem(tmp_path):
    """The strict arm lookup (aees.results.traces.arm_index): a run whose log holds a value
    that is none of its arms is left out and listed; with every run bad, a MISSING note."""
    from dataclasses import replace

    spec = fx.Spec("adaptive", lr=(0.5, 1.0, 2.0), noise=(0.0, 0.01))

    def bad(seed: int, *, noise_too: bool = False):
        result = fx.make_result(spec, seed=seed, epochs=6, peak_at=3)
        logs = dict(result.episode_logs or {})
        logs["selected_lr_values"] = [0.9, *logs["selected_lr_values"][1:]]
        if noise_too:
            logs["selected_noise_values"] = [0.3, *logs["selected_noise_values"][1:]]
        return replace(result, episode_logs=logs)

    names = (
        "arm_selection_cifar100_clean_adamw_none_dual",
        "reward_per_arm_cifar100_clean_adamw_none_dual",
    )
    root = tmp_path / "in"
    fx.write(bad(0), root / "a0.json")
    for seed in (1, 2):
        fx.write(fx.make_result(spec, seed=seed, epochs=6, peak_at=3), root / f"a{seed}.json")
    by_name = {r.name: r for r in controller_figures(_runset(root), tmp_path / "out")}
    for name in names:
        assert by_name[name].ok, by_name[name].missing
        (problem,) = [p for p in by_name[name].partial if "selected_lr_values" in p]
        assert "a0.json" in problem and "0.9 is not a candidate" in problem

    only_bad = tmp_path / "in2"
    fx.write(bad(0, noise_too=True), only_bad / "a0.json")
    by_name = {r.name: r for r in controller_figures(_runset(only_bad), tmp_path / "out2")}
    for name in names:
        assert not by_name[name].ok
        note = (tmp_path / "out2" / f"{name}.MISSING.md").read_text()
        assert "0.9 is not a candidate" in note and "0.3 is not a candidate" in note
        assert not (tmp_path / "out2" / f"{name}.png").exists()
