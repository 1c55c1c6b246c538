"""``aees report`` (aees.cli.report.report_main) and the scripts."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import report_fixtures as fx

from aees.cli.report import console_script, figure_script, table_script
from aees.cli.report import report_main as main
from aees.reporting.families import FAMILIES
from aees.reporting.figures import FIGURE_FAMILIES

REPO = Path(__file__).resolve().parents[2]
AEES_LR = fx.Spec("adaptive", lr=(0.5, 1.0, 2.0))


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> dict[str, Path]:
    """Good digits runs (AdamW and AEES, 2 seeds), a thesis-era file, a truncated file,
    foreign JSON and a non-JSON file."""
    root = tmp_path_factory.mktemp("mixed")
    for seed in (0, 1):
        fx.write(fx.make_result(fx.Spec(), task="digits", seed=seed, epochs=4, peak_at=3,
                                offset=0.3), root / f"digits_adamw_seed{seed}.json")  # fmt: skip
        fx.write(fx.make_result(AEES_LR, task="digits", seed=seed, epochs=4, peak_at=3,
                                offset=0.32), root / f"digits_aees_seed{seed}.json")  # fmt: skip
    thesis = fx.write_thesis_era(root / "cifar100_sym40_seed3" / "sgd_aees_ep200_lr05102")
    good = (root / "digits_aees_seed0.json").read_text()
    truncated = root / "broken" / "digits_aees_seed9.json"
    truncated.parent.mkdir()
    truncated.write_text(good[: good.rfind(",", 0, len(good) // 2) + 1])  # cut mid-write
    foreign = root / "plan_manifest.json"
    foreign.write_text(json.dumps({"run_count": 2, "runs": [{"name": "x"}]}))
    (root / "notes.txt").write_text("not a result")
    return {"root": root, "truncated": truncated, "foreign": foreign, "thesis": thesis}


@pytest.fixture(scope="module")
def report(mixed, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    import contextlib
    import io

    err, std = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        rc = main([str(mixed["root"]), "--out", str(out)])
    return rc, out, err.getvalue(), std.getvalue()


def test_report_builds_despite_bad_files(mixed, report):
    rc, out, err, std = report
    assert rc == 0
    for bad in (mixed["truncated"], mixed["foreign"]):
        line = next(ln for ln in err.splitlines() if str(bad) in ln)
        assert line.startswith("aees report: warning: ")
    assert "truncated JSON" in err and "missing required field" in err
    assert "skipped 1 files that are not .json or extensionless (.txt: 1)" in err
    assert "Traceback" not in err
    assert "5 runs" in std and "index.html" in std
    # the supported families were written, the others were not
    assert (out / "tables" / "cifar_clean" / "digits_clean_main_table.tex").exists()
    assert (out / "tables" / "cifar_noisy" / "cifar_sym40_main_table.md").exists()
    assert not (out / "tables" / "nlp").exists()
    assert (out / "figures" / "cifar" / "digits_clean_curves.png").exists()


def test_index_pages(mixed, report):
    _, out, _, _ = report
    md = (out / "index.md").read_text()
    assert str(mixed["truncated"]) in md and str(mixed["foreign"]) in md
    assert "## Runs (n per method)" in md
    # n per method: the AEES digits cell has 2 seeds, the thesis-era cell 1
    assert "| Digits | Clean | 4 | AEES-LR | 2 | 0 1 |" in md
    assert "| CIFAR-100 | Sym 40% | 5 | AEES-LR | 1 | 3 |" in md
    assert "![digits_clean_curves](figures/cifar/digits_clean_curves.png)" in md
    assert "Digits clean: AdamW + Cosine: no runs" in md  # missing cells listed
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") >= 3
    assert "<table>" in page and "<b>" in page
    assert "src='figures/" not in page  # self-contained
    assert str(mixed["foreign"]) in page


def test_strict_makes_a_bad_file_fatal(mixed, tmp_path, capsys):
    rc = main([str(mixed["root"]), "--out", str(tmp_path / "o"), "--strict"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("aees report: error: ")
    assert "plan_manifest.json" in err[0] or "digits_aees_seed9.json" in err[0]
    assert not (tmp_path / "o" / "index.html").exists()


def test_cli_misuse_exits_2_with_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "absent"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"aees report: error: {tmp_path / 'absent'}: no such directory"]
    with pytest.raises(SystemExit) as info:
        main([str(tmp_path)])  # --out missing
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0]


def test_empty_directory_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "o"), "--quiet"]) == 1
    assert "no readable result files" in capsys.readouterr().err


def test_table_and_console_scripts(mixed, tmp_path, capsys):
    assert table_script("cifar_clean", ["--runs-root", str(mixed["root"]),
                                        "--out-dir", str(tmp_path / "t")]) == 0  # fmt: skip
    assert (tmp_path / "t" / "digits_clean_summary.csv").exists()
    assert table_script("nlp", ["--runs-root", str(mixed["root"]), "--out-dir",
                                str(tmp_path / "n")]) == 1  # fmt: skip
    assert "no runs for NLP" in capsys.readouterr().err
    csv_path = tmp_path / "c" / "digits.csv"
    rc = console_script(("cifar100", "digits"), "results", "x.csv",
                        ["--runs-root", str(mixed["root"]), "--csv", str(csv_path)],
                        prog="report_cifar_runs.py")  # fmt: skip
    assert rc == 0
    rows = fx.read_csv(csv_path)
    aees = next(r for r in rows if r["task"] == "digits" and r["method"] == "AEES-LR")
    finals = [fx.curve(0.32, s, 4, 3)[-1] for s in (0, 1)]
    assert float(aees["final_val_mean"]) == pytest.approx(sum(finals) / 2)
    assert aees["n"] == "2"
    out = capsys.readouterr().out
    assert "seed 1: best=" in out


def test_figure_script_exits_1_and_writes_missing(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    fx.write(
        fx.make_result(fx.Spec(), task="digits", epochs=3, peak_at=2), tmp_path / "in" / "a.json"
    )
    rc = figure_script(
        "nlp", ["--runs-root", str(tmp_path / "in"), "--out-dir", str(tmp_path / "o")]
    )
    assert rc == 1
    assert (tmp_path / "o" / "nlp_figures.MISSING.md").exists()
    assert "MISSING nlp_figures" in capsys.readouterr().err


def _script_calls(path: Path) -> tuple[str, str]:
    tree = ast.parse(path.read_text())
    call = next(
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") in
        ("table_script", "figure_script", "console_script")
    )  # fmt: skip
    return call.func.id, ast.literal_eval(call.args[0])


def test_scripts_are_thin_wrappers_over_known_families():
    tables = sorted((REPO / "scripts" / "tables").glob("make_*.py"))
    plots = sorted((REPO / "scripts" / "plots").glob("*_plots.py"))
    reports = sorted((REPO / "scripts").glob("report_*.py"))
    assert {_script_calls(p)[1] for p in tables} == set(FAMILIES)
    assert {_script_calls(p)[1] for p in plots} == set(FIGURE_FAMILIES)
    assert (REPO / "scripts" / "plots" / "cifar_plots.py") in plots
    assert [p.name for p in reports] == [
        "report_agnews_results.py",
        "report_cifar_runs.py",
        "report_sst2_results.py",
    ]
    for path in (*tables, *plots, *reports):
        assert len(path.read_text().splitlines()) < 20, path


@pytest.mark.slow
def test_a_script_runs_from_the_repo_root(mixed, tmp_path):
    done = subprocess.run(
        [sys.executable, "scripts/tables/make_compute_overhead_tables.py", "--runs-root",
         str(mixed["root"]), "--out-dir", str(tmp_path / "o")],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "o" / "compute_overhead_detailed_table.tex").exists()
    helped = subprocess.run(
        [sys.executable, "scripts/plots/cifar_plots.py", "--help"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert helped.returncode == 0 and "--runs-root" in helped.stdout


def _with_facts(result, **facts):
    """``result`` with the report facts a task's registry record writes into the config."""
    import dataclasses

    return dataclasses.replace(result, config={**result.config, **facts})


@pytest.mark.slow
def test_a_new_task_is_reported_by_the_facts_its_results_carry(tmp_path):
    """Reporting keeps no task list (issue 20): a task it has never heard of, whose results
    say ``report_family: cifar`` and carry their labels, gets the CIFAR tables and figures
    under its own label; results without the keys keep the thesis's (aees.results.legacy)."""
    root = tmp_path / "runs"
    facts = {"report_family": "cifar", "task_label": "Tiny Set", "optimizer_label": "AdamW-T"}
    for seed in (0, 1):
        for name, spec in (("base", fx.Spec()), ("aees", AEES_LR)):
            result = fx.make_result(spec, task="tiny", seed=seed, epochs=4, peak_at=3)
            fx.write(_with_facts(result, **facts), root / f"tiny_{name}_seed{seed}.json")
        legacy = fx.make_result(fx.Spec(), task="digits", seed=seed, epochs=4, peak_at=3)
        fx.write(legacy, root / f"digits_base_seed{seed}.json")
    out = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-c", "import sys; from aees.cli import main; sys.exit(main())",
         "report", str(root), "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    main_table = out / "tables" / "cifar_clean" / "tiny_clean_main_table.md"
    assert main_table.exists(), sorted(p.name for p in out.rglob("*_table.md"))
    assert "Tiny Set clean" in (out / "index.md").read_text()
    assert not (out / "tables" / "other_tasks").exists()  # not a generic task
    md = (out / "index.md").read_text()
    assert "| Tiny Set | Clean | 4 | AEES-LR | 2 | 0 1 |" in md
    assert "| Digits | Clean | 4 |" in md  # no keys: the legacy table's label


def test_default_paths_are_results_and_reports_as_the_makefile_uses(capsys):
    """The scripts' defaults are the Makefile's ``results/`` and ``reports/`` (issue 20), not the
    thesis archive's ``archived_results`` / ``reproduced_artifacts``."""
    for family in FAMILIES.values():
        assert family.runs_root.split("/")[0] == "results", family
        assert family.out_dir.startswith("reports/tables/"), family
    for script in (lambda: figure_script("cifar", ["--help"]), lambda: table_script("nlp", ["-h"])):
        with pytest.raises(SystemExit):
            script()
        shown = " ".join(capsys.readouterr().out.split())
        assert "archived_results" not in shown and "reproduced_artifacts" not in shown
        assert "reports/" in shown
