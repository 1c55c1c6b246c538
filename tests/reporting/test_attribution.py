"""The §5.10 attribution-control family against an independent numpy/scipy computation."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import report_fixtures as fx
from scipy import stats as sps

from aees.reporting.discovery import discover_runs
from aees.reporting.families.attribution import CSV_HEADER, build_attribution_controls
from aees.reporting.runs import RunSet

EPOCHS, L, SPE = 12, 200, 100  # fixture geometry: 1,200 steps -> 6 episodes of 200
N_EP = EPOCHS * SPE // L
OFFSETS = {"aees": 0.10, "uniform-random": 0.07, "frequency-matched": 0.085}
MODES = {"aees": "adaptive", "uniform-random": "uniform-random",
         "frequency-matched": "frequency-matched"}  # fmt: skip
NAMES = {"aees": "AdaptiveScheduler", "uniform-random": "UniformRandomOpenLoop",
         "frequency-matched": "FrequencyMatchedOpenLoop"}  # fmt: skip
ROOT = Path(__file__).resolve().parents[2]


def arms(method: str, seed: int) -> list[float]:
    return [(0.5, 1.0, 2.0)[(e * (1 + len(method)) + seed) % 3] for e in range(N_EP)]


def result(method: str, opt: str, seed: int, *, broken: bool = False):
    spec = fx.Spec("adaptive", optimizer=opt, lr=(0.5, 1.0, 2.0))
    extra = 0.01 if opt == "SGD" else 0.0
    base = fx.make_result(spec, seed=seed, epochs=EPOCHS, offset=OFFSETS[method] + extra,
                          peak_at=5, noise_type="symmetric", rate=0.4)  # fmt: skip
    values = arms(method, seed)
    logs = {
        "selected_lr_values": values,
        "selected_lr_indices": [(0.5, 1.0, 2.0).index(v) for v in values],
        "selected_noise_values": [0.0] * N_EP,
        "selected_noise_indices": [0] * N_EP,
        "selected_combined_names": [f"lr{v}" for v in values],
        "episode_rewards": [0.0] * N_EP,
        "episode_start_steps": [e * L for e in range(N_EP)],
        "episode_end_steps": [e * L + L - 1 for e in range(N_EP)],
    }
    config = {**base.config, "control_mode": MODES[method], "steps_per_epoch": SPE}
    if method != "aees":
        executed = list(values)
        if broken:
            executed[0] = 2.0 if executed[0] != 2.0 else 0.5
        config["open_loop_policy"] = {
            "policy": method,
            "planned_lr_multipliers": values,
            "executed_lr_multipliers": executed,
        }
    return dataclasses.replace(
        base, method_name=NAMES[method], config=config, episode_logs=logs, variant=None
    )


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """AdamW sym40: complete (5 seeds x 3 methods). SGD sym40: frequency-matched seed 4 missing,
    uniform seed 2 invalid (executed != planned)."""
    traces = tmp_path_factory.mktemp("traces")
    controls = tmp_path_factory.mktemp("controls")
    for opt in ("AdamW", "SGD"):
        for seed in range(5):
            fx.write(result("aees", opt, seed), traces / f"cifar100_sym40_seed{seed}" / opt.lower())
            for method in ("uniform-random", "frequency-matched"):
                if opt == "SGD" and method == "frequency-matched" and seed == 4:
                    continue
                broken = opt == "SGD" and method == "uniform-random" and seed == 2
                path = controls / f"cifar100_sym40_seed{seed}" / f"{opt.lower()}_{method}.json"
                fx.write(result(method, opt, seed, broken=broken), path)
    return traces, controls


def summary(roots: tuple[Path, Path]) -> dict:
    runs = [r for root in roots for r in discover_runs(root).runs]
    out = build_attribution_controls(RunSet(runs))
    assert out.supported
    return out.jsons["cifar_attribution_controls_summary"]


def test_complete_cell_matches_independent_computation(roots) -> None:
    data = summary(roots)
    assert data["schema_version"] == 1 and data["bootstrap"]["resamples"] == 10_000
    assert data["complete"] is False  # the SGD cell is incomplete
    cell = next(c for c in data["cells"] if c["optimizer"] == "adamw")
    assert cell["complete"] and cell["noise_regime"] == "sym40" and not cell["missing_run_ids"]
    metric = {}
    for method in OFFSETS:
        vals = [fx.curve(OFFSETS[method], s, EPOCHS, 5) for s in range(5)]
        peak = np.array([max(v) for v in vals]) * 100
        final = np.array([v[-1] for v in vals]) * 100
        metric[method] = (peak, final)
        m = cell["methods"][method]
        assert m["n"] == 5
        assert fx.isclose(m["peak_pct"]["mean"], peak.mean())
        assert fx.isclose(m["peak_pct"]["sd"], np.std(peak, ddof=1))
        assert fx.isclose(m["drop_pp"]["mean"], (peak - final).mean())
        pooled = [v for s in range(5) for v in arms(method, s)]
        for arm in (0.5, 1.0, 2.0):
            p = m["action_distribution"]["probabilities"][str(arm)]
            assert fx.isclose(p, pooled.count(arm) / len(pooled))
    for control in ("uniform-random", "frequency-matched"):
        comp = cell["comparisons"][f"aees_minus_{control.replace('-', '_')}"]
        for k, name in ((0, "peak"), (1, "final")):
            a, b = metric["aees"][k], metric[control][k]
            d = a - b
            idx = np.random.default_rng(0).integers(0, 5, size=(10_000, 5))
            low, high = np.percentile(d[idx].mean(axis=1), [2.5, 97.5])
            got = comp[name]
            assert fx.isclose(got["mean_diff_pp"], d.mean())
            assert fx.isclose(got["ci_low_pp"], low) and fx.isclose(got["ci_high_pp"], high)
            assert fx.isclose(got["p_value"], float(sps.ttest_rel(a, b).pvalue), 1e-6)
            assert got["aees_wins"] == int((d > 0).sum())


def test_incomplete_cell_is_marked(roots) -> None:
    data = summary(roots)
    cell = next(c for c in data["cells"] if c["optimizer"] == "sgd")
    assert cell["complete"] is False
    assert cell["missing_run_ids"] == [
        "cifar100-sym40_sgd_uniform-random_seed2",
        "cifar100-sym40_sgd_frequency-matched_seed4",
    ]
    assert [b["run_id"] for b in cell["invalid_runs"]] == [
        "cifar100-sym40_sgd_uniform-random_seed2"
    ]
    assert "differ" in cell["invalid_runs"][0]["problem"]
    comp = cell["comparisons"]["aees_minus_uniform_random"]
    assert comp["peak"] is None and comp["final"] is None
    assert comp["seeds"] == [0, 1, 3, 4]
    assert cell["methods"]["uniform-random"]["n"] == 4


@pytest.mark.slow
def test_script_writes_json_csv_and_tables(roots, tmp_path: Path) -> None:
    traces, controls = roots
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts/tables/aggregate_cifar_attribution_controls.py"),
         "--aees-trace-root", str(traces), "--controls-root", str(controls),
         "--out-dir", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "missing: cifar100/sym40/12ep/sgd" in done.stderr
    data = json.loads((out / "cifar_attribution_controls_summary.json").read_text())
    rows = fx.read_csv(out / "cifar_attribution_controls_summary.csv")
    assert list(rows[0]) == CSV_HEADER
    assert len(rows) == 6
    adamw_uniform = next(r for r in rows if r["optimizer"] == "AdamW" and
                         r["method"] == "uniform-random")  # fmt: skip
    cell = next(c for c in data["cells"] if c["optimizer"] == "adamw")
    comp = cell["comparisons"]["aees_minus_uniform_random"]["peak"]
    assert fx.isclose(float(adamw_uniform["aees_minus_method_peak_pp"]), comp["mean_diff_pp"])
    assert adamw_uniform["aees_peak_wins_out_of_5"] == str(comp["aees_wins"])
    for ext in ("md", "tex", "csv"):
        assert (out / f"cifar_attribution_controls.{ext}").is_file()
    assert "Sym 40% †" in (out / "cifar_attribution_controls.md").read_text()


def test_report_includes_the_family(roots, tmp_path: Path) -> None:
    from aees.reporting.report import build_report

    root = tmp_path / "all"
    for src in roots:
        for path in src.rglob("*"):
            if path.is_file():
                dest = root / src.name / path.relative_to(src)
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(path.read_bytes())
    report = build_report(root, tmp_path / "report")
    assert "cifar_attribution_controls" in report.families
    tables = tmp_path / "report" / "tables" / "cifar_attribution_controls"
    assert (tables / "cifar_attribution_controls_summary.json").is_file()


def test_no_controls_no_family(runset) -> None:
    assert not build_attribution_controls(runset).supported
