"""The thesis figure families sigma_vs_val_acc, late_stage, peak_checkpoint, drop_summary and
overview (docs/reporting.md §6): the numbers in each summary recomputed from the fixture
definitions, which runs were used, MISSING notes, and their pickup by ``aees report``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import report_fixtures as fx

from aees.reporting.discovery import discover_runs
from aees.reporting.figures import (
    drop_summary_figures,
    late_stage_figures,
    overview_figures,
    peak_checkpoint_figures,
    sigma_figures,
)
from aees.reporting.report import figure_families_for
from aees.reporting.runs import RunSet

LR = (0.5, 1.0, 2.0)
SIGMAS = (0.0, 0.005, 0.01)
SEEDS = (0, 1)
CLEAN_EPOCHS, NOISY_EPOCHS, NLP_EPOCHS = 24, 6, 6
CLEAN = {  # label -> (spec, offset)
    "AdamW": (fx.Spec(), 0.20),
    "Fixed ×0.5": (fx.Spec("adaptive", lr=(0.5,)), 0.21),
    "AEES": (fx.Spec("adaptive", lr=LR), 0.23),
}
NOISY = {"Baseline": (fx.Spec(), 0.05), "AEES": (fx.Spec("adaptive", lr=LR), 0.10)}
DUAL_WL = fx.Spec("adaptive", scheduler="warmup_linear", lr=LR, noise=SIGMAS)


def sigma_logs(seed: int, epochs: int) -> dict:
    """4 episodes per epoch (25 steps each, 100 steps per epoch); every episode of epoch e
    (0-based) selects σ = SIGMAS[(e + seed) % 3]."""
    eps = [(e, k) for e in range(epochs) for k in range(4)]
    return {
        "selected_lr_values": [1.0] * len(eps),
        "selected_noise_values": [SIGMAS[(e + seed) % 3] for e, _ in eps],
        "episode_rewards": [0.0] * len(eps),
        "episode_start_steps": [100 * e + 25 * k for e, k in eps],
        "episode_end_steps": [100 * e + 25 * k + 24 for e, k in eps],
    }


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("thesis_figs")
    for seed in SEEDS:
        for label, (spec, off) in CLEAN.items():
            fx.write(fx.make_result(spec, task="digits", seed=seed, epochs=CLEAN_EPOCHS,
                                    peak_at=10, offset=off),
                     base / f"clean_{fx._slug(label)}_{seed}.json")  # fmt: skip
        for label, (spec, off) in NOISY.items():
            fx.write(fx.make_result(spec, task="digits", seed=seed, epochs=NOISY_EPOCHS,
                                    peak_at=3, offset=off, noise_type="symmetric", rate=0.4),
                     base / f"sym40_{fx._slug(label)}_{seed}.json")  # fmt: skip
        r = fx.make_result(DUAL_WL, task="agnews", seed=seed, epochs=NLP_EPOCHS, peak_at=3,
                           offset=0.4, noise_type="symmetric", rate=0.2)  # fmt: skip
        r = dataclasses.replace(r, episode_logs=sigma_logs(seed, NLP_EPOCHS))
        fx.write(r, base / f"agnews_dual_{seed}.json")
        fx.write(fx.make_result(fx.Spec(), task="agnews", seed=seed, epochs=NLP_EPOCHS,
                                peak_at=3, offset=0.38, noise_type="symmetric", rate=0.2),
                 base / f"agnews_adamw_{seed}.json")  # fmt: skip
    return base


@pytest.fixture(scope="module")
def runset(root) -> RunSet:
    return RunSet(discover_runs(root).runs)


def _summary(result) -> list[str]:
    assert result.ok, result.missing
    assert result.png is not None and result.png.stat().st_size > 3000
    assert result.png.with_suffix(".pdf").read_bytes()[:5] == b"%PDF-"
    return result.png.with_name(f"{result.name}.summary.txt").read_text().splitlines()


def _line(lines: list[str], start: str) -> str:
    return next(ln for ln in lines if ln.startswith(start))


def test_sigma_vs_val_acc_pairs_each_epoch_with_its_sigma(runset, tmp_path):
    (fig,) = sigma_figures(runset, tmp_path)
    assert fig.name == "sigma_vs_val_acc_agnews_noise20"
    lines = _summary(fig)
    assert _line(lines, "points") == f"points (run, epoch): {len(SEEDS) * NLP_EPOCHS}"
    assert "agnews_dual_0.json" in _line(lines, "runs:") and "adamw" not in _line(lines, "runs:")
    by_sigma: dict[float, list[float]] = {}
    for seed in SEEDS:
        vals = fx.curve(0.4, seed, NLP_EPOCHS, 3)
        for e in range(NLP_EPOCHS):
            by_sigma.setdefault(SIGMAS[(e + seed) % 3], []).append(vals[e] * 100)
    for s, v in by_sigma.items():
        assert f"modal sigma {s:g}: epochs={len(v)} mean_val={np.mean(v):.2f}" in lines
    best = max(by_sigma, key=lambda s: np.mean(by_sigma[s]))
    assert _line(lines, "best modal sigma").startswith(f"best modal sigma: {best:g}")
    assert "hexbin" in _line(lines, "rendering")


def test_late_stage_trajectories_use_the_last_20_epochs(runset, tmp_path):
    results = {r.name: r for r in late_stage_figures(runset, tmp_path)}
    seeds = _summary(results["digits_clean_aees_late_stage_individual_seeds"])
    for seed in SEEDS:
        tail = np.array(fx.curve(0.23, seed, CLEAN_EPOCHS, 10)[-20:]) * 100
        assert _line(seeds, f"seed {seed}:").startswith(
            f"seed {seed}: first={tail[0]:.2f} last={tail[-1]:.2f}"
        )
    mean = results["digits_clean_fixed_vs_aees_late_stage_mean_std"]
    lines = _summary(mean)
    tails = np.array([fx.curve(0.23, s, CLEAN_EPOCHS, 10)[-20:] for s in SEEDS]) * 100
    m, sd = tails.mean(axis=0), tails.std(axis=0, ddof=1)
    assert _line(lines, "AEES:").startswith(
        f"AEES: n=2 seeds=[0, 1] start={m[0]:.2f}±{sd[0]:.2f} end={m[-1]:.2f}±{sd[-1]:.2f}"
    )
    # no fixed ×1.0 run: the AdamW baseline stands in; ×2.0 is listed as missing
    assert "variant=baseline-adamw" in _line(lines, "Fixed ×1.0:")
    assert mean.partial == ["Digits clean: Fixed ×2.0: no runs"]


def test_peak_checkpoint_scatter_reads_the_in_run_diagnostics(runset, tmp_path):
    (fig,) = peak_checkpoint_figures(runset, tmp_path)
    lines = _summary(fig)
    for label, (_, off) in NOISY.items():
        x = [(0.2 + off + 0.01 * s) * 100 for s in SEEDS]
        line = _line(lines, f"Sym 40%: {label}:")
        assert f"corr_noisy={np.mean(x):.2f}±{np.std(x, ddof=1):.2f}" in line
        assert f"corr_clean={(0.5 - off) * 100:.2f}±0.00" in line
    assert "Sym 40%: Cosine: no best-epoch diagnostics" in " ".join(fig.partial)


def test_drop_summary_is_computed_from_runs(runset, tmp_path):
    (fig,) = drop_summary_figures(runset, tmp_path)
    lines = _summary(fig)
    drops = [(max(c) - c[-1]) * 100 for c in (fx.curve(0.10, s, NOISY_EPOCHS, 3) for s in SEEDS)]
    assert _line(lines, "Digits Sym 40%: AEES:").startswith(
        f"Digits Sym 40%: AEES: n=2 drop={np.mean(drops):.2f}±{np.std(drops, ddof=1):.2f}"
    )
    nlp = [(max(c) - c[-1]) * 100 for c in (fx.curve(0.4, s, NLP_EPOCHS, 3) for s in SEEDS)]
    assert f"Standard + AEES: n=2 drop={np.mean(nlp):.2f}" in _line(lines, "AG News Sym 20%: St")
    assert "AG News Sym 20%: AEES: no runs" in fig.partial


def test_overview_names_the_arms_that_were_run_and_missing_notes(runset, tmp_path):
    (fig,) = overview_figures(runset, tmp_path / "a")
    lines = _summary(fig)
    assert "lr arms: 0.5, 1, 2" in lines and "noise arms: 0, 0.005, 0.01" in lines
    assert any(ln.startswith("arrow loss -> lr (dashed): Reward r_e") for ln in lines)
    (default,) = overview_figures(RunSet([]), tmp_path / "b")
    assert "arms from: defaults (docs/algorithm.md)" in _summary(default)
    empty = RunSet([])
    for build in (sigma_figures, late_stage_figures, peak_checkpoint_figures):
        (missing,) = build(empty, tmp_path / "m")
        assert not missing.ok and Path(missing.paths[0]).name.endswith(".MISSING.md")
    (drop,) = drop_summary_figures(empty, tmp_path / "m")
    assert not drop.ok and (tmp_path / "m" / "drop_summary.MISSING.md").is_file()


def test_report_picks_up_the_thesis_figures(runset):
    # build_report draws every family figure_families_for names (test_peers.py runs one)
    want = ["sigma_vs_val_acc", "late_stage", "peak_checkpoint", "drop_summary", "overview"]
    assert [f for f in figure_families_for(runset) if f in want] == want
    clean_only = RunSet([r for r in runset.runs if r.info.setting == "clean"])
    assert [f for f in figure_families_for(clean_only) if f in want] == [
        "late_stage",
        "drop_summary",
        "overview",
    ]
