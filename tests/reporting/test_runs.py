"""Run discovery and identification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import report_fixtures as fx

from aees.reporting.discovery import discover_runs, has_extension
from aees.reporting.runs import ReportError, RunSet, identify, noise_setting


def _mixed_dir(root: Path) -> dict[str, Path]:
    aees = fx.Spec("adaptive", lr=(0.5, 1.0, 2.0))
    paths = {
        # misleading name: reporting must identify the run from its contents
        "good": fx.write(fx.make_result(aees, seed=0), root / "sgd_baseline_seed0.json"),
        "extensionless": fx.write(fx.make_result(fx.Spec(), seed=1), root / "sub" / "adamw_base"),
        "dotted": fx.write(fx.make_result(fx.Spec(), seed=2), root / "sub" / "fixed_lr0.5"),
    }
    text = (root / "sgd_baseline_seed0.json").read_text()
    (root / "truncated.json").write_text(text[: len(text) // 2])
    (root / "foreign.json").write_text(json.dumps({"run_count": 3, "runs": []}))
    (root / "figure.png").write_bytes(b"\x89PNG\r\n")
    (root / "archive.tar.gz").write_bytes(b"\x1f\x8b")
    # what runs and sweeps write next to results: passed over without a word
    (root / "side.label_noise.json.gz").write_bytes(b"\x1f\x8b")
    (root / "run.log").write_text("epoch 1\n")
    (root / "manifest.json").write_text(json.dumps({"schema_version": 1, "runs": []}))
    (root / "_logs").mkdir()
    (root / "_logs" / "x.json").write_text("{")
    (root / ".hidden.json.tmp").write_text("{")
    paths.update(truncated=root / "truncated.json", foreign=root / "foreign.json")
    return paths


def test_discovery_accepts_json_and_extensionless_and_reports_bad_files(tmp_path):
    paths = _mixed_dir(tmp_path)
    with pytest.warns(UserWarning, match=r"skipped 2 files .*\.gz: 1, \.png: 1"):
        found = discover_runs(tmp_path)
    assert sorted(r.path for r in found.runs) == sorted(
        [paths["good"], paths["extensionless"], paths["dotted"]]
    )
    assert found.skipped_count == 2
    assert len(found.problems) == 2
    by_path = {p.split(": ", 1)[0]: p for p in found.problems}
    assert "truncated JSON" in by_path[str(paths["truncated"])]
    assert "missing required field" in by_path[str(paths["foreign"])]
    assert all("\n" not in p for p in found.problems)


def test_strict_discovery_fails_on_the_first_bad_file(tmp_path):
    paths = _mixed_dir(tmp_path)
    with pytest.raises(ReportError, match=r"foreign\.json|truncated\.json") as info:
        discover_runs(tmp_path, strict=True)
    assert str(paths["foreign"]) in str(info.value) or str(paths["truncated"]) in str(info.value)


def test_missing_root_is_a_report_error(tmp_path):
    with pytest.raises(ReportError, match="no such directory"):
        discover_runs(tmp_path / "absent")


def test_identity_comes_from_the_contents_not_the_file_name(tmp_path):
    path = fx.write(
        fx.make_result(fx.Spec("adaptive", lr=(0.5, 1.0, 2.0), context="trend"), seed=4),
        tmp_path / "sgd_baseline_cosine.json",
    )
    run = discover_runs(tmp_path).runs[0]
    info = run.info
    assert run.path == path
    assert (info.kind, info.optimizer, info.scheduler, info.axes) == ("aees", "adamw", "none", "lr")
    assert info.context_mode == "trend" and info.seed == 4 and info.setting == "clean"
    assert info.variant == run.result.variant


def test_has_extension_only_for_suffixes_with_letters():
    assert has_extension(Path("a.json")) and has_extension(Path("a.json.gz"))
    assert not has_extension(Path("adamw_fixed_lr0.5")) and not has_extension(Path("plain"))


def test_noise_setting_labels():
    assert noise_setting("none", 0.4) == "clean"
    assert noise_setting("symmetric", 0.0) == "clean"
    assert noise_setting("symmetric", 0.4) == "sym40"
    assert noise_setting("asymmetric", 0.2) == "asym20"


def test_thesis_era_file_uses_the_decision_tree(tmp_path):
    path = fx.write_thesis_era(tmp_path / "cifar100_sym40_seed3" / "sgd_aees_ep200_lr05102")
    run = discover_runs(tmp_path).runs[0]
    info = run.info
    assert run.path == path and run.result.is_legacy
    # method kind from the controller logs, optimizer from the path, setting from the config
    assert (info.kind, info.optimizer, info.axes, info.setting) == ("aees", "sgd", "lr", "sym40")
    assert info.variant.startswith("aees-sgd-none-lr[0.5,1,2]-n[0]")
    assert run.result.val_accuracies == fx.thesis_era_record()["val_accuracy"]
    assert run.result.diagnostics["final_subset_accuracies"]["train_clean_accuracy"] == 0.85
    assert run.result.config["hf_token"] == "<redacted>"
    # the same record under a path without "sgd" falls back to AdamW
    record = fx.thesis_era_record()
    from aees.results import RunResult

    other = identify(RunResult.from_dict(record), tmp_path / "run_x")
    assert other.optimizer == "adamw" and other.kind == "aees"


def test_cells_group_by_variant_and_keep_one_run_per_seed(tmp_path):
    spec = fx.Spec("adaptive", lr=(0.5, 1.0, 2.0))
    for seed in (0, 1):
        fx.write(fx.make_result(spec, seed=seed), tmp_path / f"a_seed{seed}.json")
    fx.write(fx.make_result(spec, seed=1, offset=0.3), tmp_path / "z_dup_seed1.json")
    fx.write(fx.make_result(fx.Spec(), seed=0), tmp_path / "base.json")
    runset = RunSet(discover_runs(tmp_path).runs)
    assert len(runset.cells) == 2
    aees = next(c for c in runset.cells if c.info.kind == "aees")
    assert aees.n == 2 and len(aees.runs) == 3 and aees.seeds == [0, 1]
    assert aees.duplicate_seed_paths() == [tmp_path / "z_dup_seed1.json"]


def test_identify_reads_the_report_facts_from_the_result_else_the_legacy_table():
    import dataclasses

    plain = fx.make_result(fx.Spec(), task="sst2")
    info = identify(plain)
    assert (info.family, info.task_label, info.optimizer_label) == ("nlp", "SST-2", "AdamW")
    facts = {"report_family": "nlp", "task_label": "Tiny Text", "optimizer_label": "AdamW*"}
    tiny = dataclasses.replace(
        fx.make_result(fx.Spec(), task="tinytext"), config={**plain.config, **facts}
    )
    info = identify(tiny)
    assert (info.family, info.task_label, info.optimizer_label) == ("nlp", "Tiny Text", "AdamW*")
    assert info.is_nlp and info.group == ""  # a family of its own: not grouped as generic
    unknown = identify(fx.make_result(fx.Spec(), task="tinytext"))
    assert (unknown.family, unknown.task_label) == ("other", "tinytext")
    assert unknown.group == "tinytext · resnet18"
