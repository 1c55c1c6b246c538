"""Peers family (docs/reporting.md §5.11), generic-task grouping (§3, §5.12): tables,
paired comparisons and figures from generated fixture runs; numbers recomputed with numpy
from the fixture definitions."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import report_fixtures as fx

from aees.reporting.discovery import discover_runs
from aees.reporting.families import FAMILIES
from aees.reporting.families.peers import (
    VS_SPEC,
    build_peers,
    compare_rows,
    peer_groups,
    peer_label,
    peer_rows,
)
from aees.reporting.figures.other_tasks import other_task_figures
from aees.reporting.figures.peers import peers_figures
from aees.reporting.report import build_report, figure_families_for
from aees.reporting.runs import RunInfo, RunSet
from aees.reporting.stats import compare_paired

LR = (0.5, 1.0, 2.0)
EPOCHS, PEAK = 6, 3
# label -> (spec, offset, seeds); Prodigy alone is the best method on purpose
PEERS = {
    "AdamW": (fx.Spec(), 0.10, (0, 1, 2)),
    "AdamW + cosine": (fx.Spec(scheduler="cosine"), 0.11, (0, 1, 2)),
    "AEES-LR on AdamW": (fx.Spec("adaptive", lr=LR), 0.12, (0, 1, 2)),
    "Prodigy": (fx.Spec(optimizer="Prodigy"), 0.15, (0, 1, 2)),
    "AEES-LR on Prodigy": (fx.Spec("adaptive", optimizer="Prodigy", lr=LR), 0.13, (0, 1, 2)),
    "AdamW schedule-free": (fx.Spec(optimizer="AdamWScheduleFree"), 0.09, (0, 1)),
}


def _best(label: str, seed: int) -> float:
    return max(fx.curve(PEERS[label][1], seed, EPOCHS, PEAK))


@pytest.fixture(scope="module")
def peer_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("peers")
    for label, (spec, off, seeds) in PEERS.items():
        for seed in seeds:
            result = fx.make_result(spec, task="digits", seed=seed, epochs=EPOCHS, peak_at=PEAK,
                                    offset=off, noise_type="symmetric", rate=0.4)  # fmt: skip
            fx.write(result, root / f"{fx._slug(label)}_{seed}.json")
    return root


def _rows(table) -> dict[str, list]:
    """Rows by label without the peers' hyperparameters (their defaults are the runner's)."""
    return {_base(r[0].text): r for r in table.rows}


def _base(label: str) -> str:
    return " + ".join(part.split(" (")[0] for part in label.split(" + "))


def test_peers_tables_rank_honestly_and_compare_on_shared_seeds(peer_root):
    out = build_peers(RunSet(discover_runs(peer_root).runs))
    assert out.supported and out.missing == []
    main = next(t for t in out.tables if t.name == "digits_sym40_6ep_peers_main_table")
    rows = _rows(main)
    # references, then the peers alone (in cell order), then AEES on the peers
    order = ["AdamW", "AdamW + cosine", "AEES-LR on AdamW", "AdamW schedule-free", "Prodigy"]
    assert list(rows) == [*order, "AEES-LR on Prodigy"]
    assert rows["AdamW schedule-free"][1].text == "2"
    best = main.header.index("Best (%)")
    # the peer has the highest best accuracy: it is bold, AEES on it second
    assert rows["Prodigy"][best].rank == 1 and rows["AEES-LR on Prodigy"][best].rank == 2
    assert rows["Prodigy"][best].text == fx.fmt_pm([_best("Prodigy", s) for s in (0, 1, 2)])

    vs = next(t for t in out.tables if t.name == "digits_sym40_6ep_peers_vs_table")
    pairs = [(_base(r[0].text), _base(r[1].text)) for r in vs.rows]
    aees = ["AEES-LR on AdamW", "AEES-LR on Prodigy"]
    refs = ["AdamW", "AdamW + cosine", "AdamW schedule-free", "Prodigy"]
    assert pairs == [(a, r) for a in aees for r in refs]
    row = vs.rows[pairs.index(("AEES-LR on AdamW", "Prodigy"))]
    a = [_best("AEES-LR on AdamW", s) for s in (0, 1, 2)]
    b = [_best("Prodigy", s) for s in (0, 1, 2)]
    d = (np.array(a) - np.array(b)) * 100
    cmp = compare_paired(a, b, scale=100)
    assert row[2].text == "3"
    assert row[3].text == f"{d.mean():+.2f} [{cmp.diff_ci_low:+.2f}, {cmp.diff_ci_high:+.2f}]"
    assert d.mean() < 0 and row[5].text == "0/3"  # the peer wins every seed
    sf = vs.rows[pairs.index(("AEES-LR on AdamW", "AdamW schedule-free"))]
    assert sf[2].text == "2" and sf[5].text == "2/2"  # only the shared seeds 0 and 1

    data = out.jsons["digits_sym40_6ep_peers_comparisons"]
    entry = next(
        c for c in data["comparisons"]
        if (_base(c["method"]), c["reference"]) == ("AEES-LR on Prodigy", "AdamW")
    )  # fmt: skip
    assert entry["seeds"] == [0, 1, 2]
    assert entry["best"]["per_seed"]["1"] == {
        "aees": _best("AEES-LR on Prodigy", 1),
        "reference": _best("AdamW", 1),
    }
    assert entry["wins"]["best"] == 3


def test_equal_results_are_no_win_and_no_negative_zero(peer_root):
    runset = RunSet(discover_runs(peer_root).runs)
    (group,) = peer_groups(runset)
    row = peer_rows(group)[0]
    same = compare_rows(dataclasses.replace(row, aees=True), row)
    assert same.wins == {"best": 0, "final": 0, "drop": 0}
    vs = VS_SPEC.table("t", "c", "l")
    VS_SPEC.add(vs, same)
    assert vs.rows[0][3].text == "+0.00 [+0.00, +0.00]"


def test_peer_label_names_hyperparameters_from_the_spec():
    spec = {"kind": "baseline", "optimizer": "prodigy", "lr": "1", "lr_scheduler": "none",
            "prodigy_d_coef": "0.5", "prodigy_safeguard_warmup": True,
            "dadapt_x": None}  # fmt: skip
    info = RunInfo("digits", "clean", 2, 0, "v", "baseline", "prodigy", "none", (1.0,),
                   (0.0,), None, "none", 0.0, json.dumps(spec))  # fmt: skip
    assert peer_label(info) == "Prodigy (d_coef=0.5, safeguard_warmup=true)"
    aees = dataclasses.replace(info, kind="aees", lr_candidates=LR, scheduler="cosine")
    assert peer_label(aees).startswith("AEES-LR on Prodigy (d_coef=0.5")
    assert peer_label(aees).endswith(" + cosine")


def test_peers_figure_and_report(peer_root, tmp_path):
    results = peers_figures(RunSet(discover_runs(peer_root).runs), tmp_path / "fig")
    (fig,) = results
    assert fig.ok and fig.name == "digits_sym40_6ep_peers_curves"
    summary = (tmp_path / "fig" / f"{fig.name}.summary.txt").read_text()
    line = next(ln for ln in summary.splitlines() if ln.startswith("AdamW schedule-free"))
    assert "n=2 seeds=[0, 1]" in line
    assert f"best={np.mean([_best('AdamW schedule-free', s) for s in (0, 1)]) * 100:.2f}" in line
    assert len([ln for ln in summary.splitlines() if " n=" in ln]) == len(PEERS)

    # the report (on the baselines only: no AEES, so no controller figures to draw)
    small = tmp_path / "small"
    for path in peer_root.glob("*.json"):
        if not path.name.startswith("aees"):
            small.joinpath(path.name).parent.mkdir(exist_ok=True)
            small.joinpath(path.name).write_bytes(path.read_bytes())
    report = build_report(small, tmp_path / "report")
    assert "peers" in report.families and "peers" in report.figures
    index = report.index_md.read_text()
    assert "digits_sym40_6ep_peers_main_table" in index
    assert "AEES-LR on AdamW: no runs" in index  # the missing reference row is listed
    assert (tmp_path / "report/figures/peers/digits_sym40_6ep_peers_curves.png").is_file()


def test_no_peer_runs_lists_the_family_without_runs(tmp_path):
    fx.write(fx.make_result(fx.Spec(), task="digits", epochs=2, peak_at=1), tmp_path / "in/a.json")
    report = build_report(tmp_path / "in", tmp_path / "out")
    assert "peers" in report.skipped_families and "peers" not in report.figures
    assert FAMILIES["peers"].title in report.index_md.read_text()


def _generic(task: str, dataset: str, model: str, spec: fx.Spec, seed: int, off: float):
    r = fx.make_result(spec, task=task, seed=seed, epochs=3, peak_at=2, offset=off)
    return dataclasses.replace(r, dataset_name=dataset, model_name=model)


GENERIC_METHODS = (("base", fx.Spec(), 0.0), ("prodigy", fx.Spec(optimizer="Prodigy"), 0.01))


def test_generic_tasks_are_grouped_by_dataset_and_model(tmp_path):
    root = tmp_path / "in"
    cases = {
        ("image", "flowers", "resnet18"): 0.1,
        ("image", "flowers", "vit_tiny"): 0.2,
        ("image", "leaves", "resnet18"): 0.3,
        ("text", "reviews", "distilbert"): 0.05,
        ("text", "price$list", "bert"): 0.06,  # a "$" in a user's name is no mathtext
    }
    for (task, ds, model), off in cases.items():
        for seed in (0, 1):
            for name, spec, extra in GENERIC_METHODS:
                fx.write(_generic(task, ds, model, spec, seed, off + extra),
                         root / f"{task}_{ds}_{model}_{name}_{seed}.json")  # fmt: skip
    runset = RunSet(discover_runs(root).runs)
    # one variant per method, but a cell per (task, dataset · model): nothing merged
    assert len(runset.cells) == 10 and all(c.n == 2 for c in runset.cells)
    out = FAMILIES["other_tasks"].builder(runset)
    names = [t.name for t in out.tables]
    assert names == [
        "image_flowers-resnet18_clean_3ep_main_table",
        "image_flowers-vit-tiny_clean_3ep_main_table",
        "image_leaves-resnet18_clean_3ep_main_table",
        "text_price-list-bert_clean_3ep_main_table",
        "text_reviews-distilbert_clean_3ep_main_table",
    ]
    leaves = _rows(out.tables[2])
    assert list(leaves) == ["AdamW", "Prodigy"]
    best = out.tables[2].header.index("Best (%)")
    want = [max(fx.curve(0.31, s, 3, 2)) for s in (0, 1)]
    assert leaves["Prodigy"][best].text == fx.fmt_pm(want) and leaves["Prodigy"][best].rank == 1
    # the peers family groups the same way (its AdamW reference row from the same group)
    peers = build_peers(runset)
    keys = [t.name for t in peers.tables if t.name.endswith("_main_table")]
    assert keys == [n.replace("_main_table", "_peers_main_table") for n in names]
    figs = other_task_figures(runset, tmp_path / "fig")
    assert [f.name for f in figs] == [n.replace("_main_table", "_curves") for n in names]
    assert all(f.ok for f in figs)
    lines = (tmp_path / "fig" / f"{figs[2].name}.summary.txt").read_text().splitlines()
    assert [_base(ln.split(":")[0]) for ln in lines if " n=2 " in ln] == ["AdamW", "Prodigy"]
    assert f"best={np.mean(want) * 100:.2f}" in next(ln for ln in lines if ln.startswith("Prod"))
    assert "other_tasks" in figure_families_for(runset)
    # no AEES runs: no comparison table, and the missing reference rows are listed
    assert not any(t.name.endswith("_vs_table") for t in peers.tables)
    assert "Text (reviews · distilbert), Clean, 3 ep: AdamW + cosine: no runs" in peers.missing
