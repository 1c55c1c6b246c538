"""``aees report`` round 2 (issue 18 item 8, issue 19 §5 and §7), through the CLI in a
subprocess where a user meets it:

* hostile names (formulas, ``<script>``, ``javascript:`` links, ``|``, ``../``, names that slug
  to the same stem) never reach a spreadsheet, a Markdown viewer or a path unescaped;
* the exit status: 1 when a planned study misses what its plan asked for, 0 otherwise;
* a planned study lists as missing only what its plan asked for, the rest as not planned;
* the compute figure says where it was measured and flags timings of concurrent runs, and
  its title fits;
* ties share a mark, a single run prints n=1, digits tables are headed "Digits".
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import report_fixtures as fx
from test_hostile_reports import ENV, aees_report

from aees.reporting.render import TCell, mark_ranks, md_text, spreadsheet_safe

AEES_LR = fx.Spec("adaptive", lr=(0.5, 1.0, 2.0))
FORMULA = "=cmd|' /C calc'!A0"
HTML = "<script>alert(1)</script>"
LINK = "[click](javascript:alert(1))"
LIVE_LINK = re.compile(r"(?<!\\)\]\(javascript:")


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def _generic(seed: int, dataset: str, model: str, **kw: Any):
    result = fx.make_result(fx.Spec(), task="image", seed=seed, epochs=3, peak_at=2, **kw)
    return replace(result, dataset_name=dataset, model_name=model)


# --------------------------------------------------------------------------------------------
# 1. Injection and slugs
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile_names(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("names")
    root = base / "runs"
    names = [
        (FORMULA, "@SUM(A1:A9)"),
        (HTML, f"{LINK}|x"),
        ("猫", "resnet18"),
        ("犬", "resnet18"),
        ("-2+3", "+cmd"),
    ]
    for i, (dataset, model) in enumerate(names):
        for seed in (0, 1):
            fx.write(_generic(seed, dataset, model, offset=0.01 * i), root / f"g{i}_{seed}.json")
    # a task name read from a result must not steer a path out of the output directory
    escape = fx.make_result(AEES_LR, task="../../../escaped", seed=0, epochs=3, peak_at=2)
    fx.write(escape, root / "escape.json")
    # a task name is a cell of its own in the timing and summary CSVs
    fx.write(fx.make_result(fx.Spec(), task=FORMULA, seed=0, epochs=3), root / "formula.json")
    out = base / "report"
    before = _files(base)
    done = aees_report(root, out)
    return {"base": base, "out": out, "done": done, "before": before, "names": names}


def test_hostile_names_exit_0_and_write_only_under_out(hostile_names):
    done, base, out = hostile_names["done"], hostile_names["base"], hostile_names["out"]
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    new = _files(base) - hostile_names["before"]
    assert new and all(p == out or out in p.parents for p in new), sorted(new)[:5]
    assert not (base / "escaped").exists() and not list(base.parent.glob("escaped*"))


def test_csv_cells_cannot_run_as_formulas(hostile_names):
    """OWASP: a text cell starting with = + - @ TAB CR gets a leading quote; numbers stay."""
    seen_names = set()
    for path in (hostile_names["out"] / "tables").rglob("*.csv"):
        with path.open(newline="") as handle:
            for row in csv.reader(handle):
                for cell in row:
                    if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                        float(cell)  # only a plain number may start so
                    seen_names.update(n for n in (FORMULA, "@SUM(A1:A9)") if n in cell)
    assert seen_names == {FORMULA, "@SUM(A1:A9)"}  # the names are there, quoted
    timing = fx.read_csv(
        hostile_names["out"] / "tables" / "compute_overhead" / "compute_overhead_summary.csv"
    )
    assert any(r["task"].startswith("'" + FORMULA.lower()) for r in timing), timing
    rows = [
        r
        for p in (hostile_names["out"] / "tables" / "other_tasks").glob("*_summary.csv")
        for r in fx.read_csv(p)
    ]
    assert any(r["method"] == "AdamW" for r in rows)


def test_spreadsheet_safe_keeps_numbers_numeric():
    assert spreadsheet_safe(-0.3) == -0.3 and spreadsheet_safe("-0.3") == "-0.3"
    assert spreadsheet_safe("+1.5") == "+1.5" and spreadsheet_safe("1e-3") == "1e-3"
    assert spreadsheet_safe("-2+3") == "'-2+3" and spreadsheet_safe(FORMULA) == "'" + FORMULA
    assert spreadsheet_safe("\tx") == "'\tx" and spreadsheet_safe(None) == ""


def test_index_md_holds_no_live_html_links_or_table_breaks(hostile_names):
    md = (hostile_names["out"] / "index.md").read_text()
    assert "<script" not in md and not LIVE_LINK.search(md)
    assert "&lt;script>" in md and "[click\\](javascript:" in md  # shown, not run
    run_rows = [ln for ln in md.splitlines() if ln.startswith("| Image |")]
    assert len(run_rows) == 5, run_rows
    for row in run_rows:  # 7 columns: 8 unescaped pipes, whatever the names hold
        assert row.replace("\\|", "").count("|") == 8, row
    for table in (hostile_names["out"] / "tables").rglob("*.md"):
        text = table.read_text()
        assert "<script" not in text and not LIVE_LINK.search(text), table


def test_md_text_escapes_only_what_markdown_would_run():
    assert md_text("<0.001 and [-0.1, 0.3]") == "<0.001 and [-0.1, 0.3]"
    assert md_text(HTML).startswith("&lt;script>")
    assert md_text(LINK) == "[click\\](javascript:alert(1))"
    assert md_text("a|b\nc`d") == "a\\|b c\\`d"


def test_names_that_slug_alike_write_separate_tables(hostile_names):
    files = sorted((hostile_names["out"] / "tables" / "other_tasks").glob("image_*_main_table.md"))
    assert len(files) == len(hostile_names["names"]), [f.name for f in files]
    captions = {f.read_text().splitlines()[0] for f in files}
    assert any("猫" in c for c in captions) and any("犬" in c for c in captions)


# --------------------------------------------------------------------------------------------
# 2./3. Planned studies: exit status and what is missing
# --------------------------------------------------------------------------------------------

DEMO = {
    "adamw": fx.Spec(),
    "adamw_cosine": fx.Spec(scheduler="cosine"),
    "fixed_lr0p5": fx.Spec("adaptive", lr=(0.5,)),
    "fixed_lr2": fx.Spec("adaptive", lr=(2.0,)),
    "aees_lr": AEES_LR,
    "aees_lr_cosine": fx.Spec("adaptive", scheduler="cosine", lr=(0.5, 1.0, 2.0)),
    "random_lr": fx.Spec("random", lr=(0.5, 1.0, 2.0)),
}


def _aees(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("aees")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "aees.cli"]
    return subprocess.run(
        [*head, *args], capture_output=True, text=True, env=ENV, timeout=120, cwd=cwd
    )


@pytest.fixture(scope="module")
def demo_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo preset planned with ``aees plan`` and its 21 results (fixture numbers)."""
    base = tmp_path_factory.mktemp("study")
    root = base / "runs"
    done = _aees("plan", "demo", "--output-root", str(root), cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    manifest = json.loads((root / "manifest.json").read_text())
    assert {r["levels"]["method"] for r in manifest["runs"]} == set(DEMO)
    for i, (name, spec) in enumerate(DEMO.items()):
        for seed in (0, 1, 2):
            result = fx.make_result(
                spec,
                task="digits",
                seed=seed,
                epochs=30,
                offset=0.01 * i,
                peak_at=15,
                noise_type="symmetric",
                rate=0.4,
            )
            fx.write(result, root / f"{name}_seed{seed}.json")
    return root


@pytest.mark.slow
def test_complete_planned_study_lists_nothing_unplanned_as_missing(demo_study, tmp_path):
    out = tmp_path / "report"
    done = aees_report(demo_study, out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "missing:" not in done.stderr, done.stderr
    assert "were not planned by" in done.stderr
    md = (out / "index.md").read_text()
    assert "Planned study:" in md and "21 of 21 planned runs" in md
    everything_missing = md.split("## All missing cells")[1].split("##")[0]
    assert everything_missing.strip() == "None."
    unplanned = md.split("## Not planned (empty, not missing)")[1]
    assert "Fixed ×1.0: no runs" in unplanned and "AEES-Dual: no timing runs" in unplanned
    assert "Missing cells:" not in md
    assert 'class="missing"' not in (out / "index.html").read_text().split("<h2>Runs")[1]


@pytest.mark.slow
def test_incomplete_planned_study_exits_1_naming_what_the_plan_asked_for(demo_study, tmp_path):
    root = tmp_path / "runs"
    root.mkdir()
    for path in demo_study.iterdir():
        if path.is_file() and not path.name.startswith(("fixed_lr2_", "aees_lr_seed2")):
            (root / path.name).write_bytes(path.read_bytes())
    done = aees_report(root, tmp_path / "report")
    assert done.returncode == 1, done.stderr[-3000:]
    missing = [ln for ln in done.stderr.splitlines() if "missing:" in ln]
    assert any("planned run aees_lr_seed2: no valid result" in ln for ln in missing)
    assert any("Fixed ×2.0: no runs" in ln for ln in missing), missing
    assert not any("Fixed ×1.0" in ln or "AEES-Dual" in ln for ln in missing), missing
    assert done.stderr.rstrip().splitlines()[-1].startswith("aees report: error: ")
    assert "planned study is incomplete" in done.stderr


def test_unplanned_report_with_a_missing_figure_exits_0_and_says_why(tmp_path):
    root = tmp_path / "runs"
    for seed in (0, 1):  # AEES without --track-update-norm: the update-norm figure is MISSING
        result = fx.make_result(AEES_LR, task="digits", seed=seed, epochs=3, peak_at=2)
        logs = {**result.episode_logs, "mean_update_norms": None}
        fx.write(replace(result, episode_logs=logs), root / f"aees_{seed}.json")
    out = tmp_path / "report"
    done = aees_report(root, out)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "figures" / "controllers" / "update_norm_trajectory.MISSING.md").is_file()
    assert "note: no run plan (manifest.json)" in done.stderr
    assert "No run plan" in (out / "index.md").read_text()


# --------------------------------------------------------------------------------------------
# 4. The compute-overhead figure
# --------------------------------------------------------------------------------------------


def _timed_runs(root: Path, *, overlap: bool) -> None:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for i, spec in enumerate((fx.Spec(), fx.Spec(scheduler="cosine"), AEES_LR)):
        result = fx.make_result(spec, task="digits", seed=0, epochs=3, peak_at=2)
        began = start + timedelta(seconds=0 if overlap else 3600 * i)
        hardware = {**fx.HARDWARE, "hostname": "box1"}
        provenance = {"started_at": began.isoformat(), "hardware": hardware}
        fx.write(replace(result, provenance=provenance), root / f"timed_{i}.json")


@pytest.mark.parametrize("overlap", [True, False])
def test_compute_figure_says_where_and_flags_concurrent_runs(tmp_path, overlap):
    root = tmp_path / "runs"
    _timed_runs(root, overlap=overlap)
    out = tmp_path / "report"
    done = aees_report(root, out)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = (out / "figures" / "compute" / "wallclock_overhead.summary.txt").read_text()
    assert "measured: Measured on Fixture GPU (host box1)" in summary
    md = (out / "index.md").read_text()
    assert ("NOT COMPARABLE: 3 of 3 runs" in summary) is overlap
    assert ("timings not comparable: 3 of 3 timed runs" in md) is overlap


def test_compute_figure_text_stays_inside_the_figure(tmp_path, monkeypatch):
    import aees.reporting.figures.compute as compute
    from aees.reporting.discovery import discover_runs
    from aees.reporting.runs import RunSet

    root = tmp_path / "runs"
    _timed_runs(root, overlap=True)
    figures = []
    real_save = compute.save_figure

    def keep(fig, *args, **kw):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        box = fig.bbox
        outside = [
            t.get_text()
            for t in fig.findobj(
                lambda a: hasattr(a, "get_text") and hasattr(a, "get_window_extent")
            )
            # x tick labels beyond the limits are never drawn: check texts with letters
            if any(ch.isalpha() for ch in t.get_text()) and t.get_visible()
            for e in [t.get_window_extent(renderer)]
            if e.x0 < box.x0 - 1 or e.x1 > box.x1 + 1 or e.y0 < box.y0 - 1 or e.y1 > box.y1 + 1
        ]
        figures.append(outside)
        return real_save(fig, *args, **kw)

    monkeypatch.setattr(compute, "save_figure", keep)
    compute.compute_figures(RunSet(discover_runs(root).runs), tmp_path / "fig")
    assert figures == [[]]


# --------------------------------------------------------------------------------------------
# 5. Tables: ties, n = 1, the dataset named
# --------------------------------------------------------------------------------------------


def test_mark_ranks_gives_ties_the_same_mark():
    cells = [TCell(t) for t in ("0.50 ± 0.21", "0.37 ± 0.37", "0.50 ± 0.21", "0.90 ± 0.10")]
    mark_ranks(cells, [0.5, 0.37, 0.5, 0.9], higher_is_better=False)
    assert [c.rank for c in cells] == [2, 1, 2, 0]
    # equal as shown, different beyond the shown digits: still a tie
    cells = [TCell("50.00"), TCell("50.00"), TCell("40.00")]
    mark_ranks(cells, [0.500001, 0.499999, 0.4], higher_is_better=True)
    assert [c.rank for c in cells] == [1, 1, 0]  # two tied for best take places 1 and 2
    cells = [TCell("1"), TCell("1")]
    mark_ranks(cells, [1.0, 1.0], higher_is_better=True)
    assert [c.rank for c in cells] == [0, 0]  # all equal: nothing is better


def test_tables_name_digits_print_n1_and_mark_ties_alike(tmp_path):
    root = tmp_path / "runs"
    noisy = {"noise_type": "symmetric", "rate": 0.4}
    for name, spec in (("adamw", fx.Spec()), ("cos", fx.Spec(scheduler="cosine"))):
        for seed in (0, 1):  # identical numbers: an exact tie in every column
            fx.write(
                fx.make_result(spec, task="digits", seed=seed, epochs=3, peak_at=2, **noisy),
                root / f"{name}_{seed}.json",
            )
    single = fx.make_result(AEES_LR, task="digits", seed=0, epochs=3, peak_at=2, **noisy)
    fx.write(replace(single, val_accuracies=[0.1, 0.2, 0.15]), root / "aees_0.json")
    out = tmp_path / "report"
    done = aees_report(root, out)
    assert done.returncode == 0, done.stderr[-3000:]
    table = (out / "tables" / "cifar_noisy" / "digits_sym40_main_table.md").read_text()
    rows = {r.split("|")[2].strip(): r for r in table.splitlines() if r.count("|") > 5}
    assert "(n=1)" in rows["AEES"] and "± 0.00" not in rows["AEES"], rows["AEES"]
    base, cosine = rows["Baseline"].split("|")[3:6], rows["Cosine"].split("|")[3:6]
    assert base == cosine, (base, cosine)  # the tied cells carry the same mark
    md = (out / "index.md").read_text()
    assert "## Noisy labels: Digits" in md and "Noisy CIFAR" not in md
    assert "## Figures: cifar (Digits)" in md
