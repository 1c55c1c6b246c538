"""``aees demo``: plan + sweep + report the digits study, re-runnable (one seed, 1 epoch here)."""

from __future__ import annotations

import pytest

from aees import cli
from aees.results import load_run_result

pytest.importorskip("matplotlib")
pytest.importorskip("scipy")


def test_demo_runs_reports_and_reuses_finished_runs(tmp_path, capsys):
    results, report = tmp_path / "runs", tmp_path / "reports"
    argv = ["demo", "--epochs", "1", "--seeds", "0", "--results-dir", str(results)]
    argv += ["--report-dir", str(report)]
    assert cli.main(argv) == 0
    out = capsys.readouterr()
    files = sorted(p for p in results.rglob("*.json") if p.name != "manifest.json")
    assert len(files) == 7  # 7 methods x 1 seed
    methods = {load_run_result(p).variant.split("-")[0] for p in files}
    assert methods == {"baseline", "fixed", "aees", "random"}
    assert "| Optimizer | Method |" in out.out  # the main table is printed
    index = report / "index.html"
    assert index.is_file() and "<img" in index.read_text(encoding="utf-8")
    assert (report / "tables" / "cifar_noisy").is_dir()
    assert "skipped" not in out.err.replace("skipped (already complete)", "")

    stamps = {p: p.stat().st_mtime_ns for p in files}
    assert cli.main(argv) == 0
    again = capsys.readouterr()
    assert "0 completed, 7 skipped (already complete)" in again.err + again.out
    assert {p: p.stat().st_mtime_ns for p in files} == stamps


def test_demo_bad_flags_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["demo", "--workers", "0"])
    assert info.value.code == 2
    assert "--workers" in capsys.readouterr().err
