"""Run plans: presets, expansion, overrides, seeds, manifests, ``aees plan``."""

from __future__ import annotations

import json
import math
import os
import shlex
from pathlib import Path

import pytest
from sweep_presets import TINY

from aees.cli.sweep import plan_main
from aees.cli.train import parse_train_args
from aees.sweep.errors import PlanError
from aees.sweep.manifest import (
    SCHEMA_VERSION,
    Manifest,
    load_manifest,
    run_command,
    write_manifest,
)
from aees.sweep.plan import build_plan, load_preset, parse_overrides, parse_seeds, preset_names

# Run counts derived from the thesis grids (docs/protocols.md §15; docs/reporting.md §5: cells).
EXPECTED_RUNS = {
    # 7 methods (AdamW, +cosine, fixed x0.5, fixed x2, AEES-LR, AEES-LR+cosine, random) x 3 seeds
    "demo": 7 * 3,
    # AdamW x {none, cosine, linear}, AEES x {none, cosine, linear}, fixed x0.5, x2; 5 seeds
    "cifar-clean": 8 * 5,
    # {asym20, sym20, sym40} x {AdamW, SGD} x {baseline, cosine, fixed x0.5/1/2, AEES,
    # cosine + AEES} x 5 seeds
    "cifar-noisy": 3 * 2 * 7 * 5,
    # AdamW, AdamW + WL, AEES-Dual trend, AEES-LR/-Noise/-Dual + WL; 5 seeds
    "sst2": 6 * 5,
    # {AdamW, AEES-Dual} x {none, WL}; 5 seeds
    "agnews-clean": 4 * 5,
    # AdamW, AdamW + WL, AEES, AEES + WL, AEES-LR + WL, AEES-Noise + WL; 5 seeds
    "agnews-noisy": 6 * 5,
    # the 7 conditions of the sigma-ablation table; 5 seeds
    "nlp-noise-ablation": 7 * 5,
    # noise {0} vs {0, 0.0025, 0.005}; 5 seeds
    "cifar-noise-ablation": 2 * 5,
    # CIFAR 2 optimizers x 2 schedules x 4 variants + SST-2 / AG News 2 schedules x 4 variants,
    # each x 3 repeats of seed 0 = the 96 archived files
    "compute-overhead": (2 * 2 * 4 + 2 * 4 + 2 * 4) * 3,
    # {clean, sym20} x lambda {0, 0.1}; 5 seeds
    "penalty-ablation": 2 * 2 * 5,
    # ({clean, sym20} CIFAR + SST-2) x context {none, trend}; 5 seeds
    "context-ablation": 3 * 2 * 5,
    # open-loop controls: {asym20, sym20, sym40} x {AdamW, SGD} x {uniform, frequency} x 5 seeds
    "attribution-controls": 3 * 2 * 2 * 5,
    # your own text (docs/protocols.md §4.7): AdamW, AdamW + linear, AEES-Dual; 3 seeds
    "text-csv": 3 * 3,
    # your own images (docs/protocols.md §4.6): AdamW, AdamW + cosine, AEES-LR, + cosine; 3 seeds
    "image-folder": 4 * 3,
    # the peers study (docs/protocols.md §5.1): AdamW, AdamW + cosine, 4 peers, AEES-LR,
    # AEES-LR on the best peer; digits x 5 seeds, CIFAR x 3 regimes x 5 seeds, SST-2 x 5 seeds
    "peers-digits": 8 * 5,
    "peers-cifar-noisy": 3 * 8 * 5,
    "peers-sst2": 8 * 5,
}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_every_preset_has_an_expected_count() -> None:
    assert sorted(preset_names()) == sorted(EXPECTED_RUNS)


@pytest.mark.parametrize("name", sorted(EXPECTED_RUNS))
def test_preset_expands_to_the_thesis_grid(name: str, tmp_path: Path) -> None:
    preset = load_preset(name)
    assert preset.description
    manifest = build_plan(name, output_root=tmp_path)
    assert len(manifest.runs) == EXPECTED_RUNS[name]
    ids = [run.run_id for run in manifest.runs]
    assert len(set(ids)) == len(ids)
    assert len({run.output for run in manifest.runs}) == len(ids)
    # deterministic: the same inputs give the same manifest
    assert build_plan(name, output_root=tmp_path).to_dict() == manifest.to_dict()
    for run in manifest.runs:
        assert run.run_id.endswith(f"_seed{run.seed}")
        assert run.flags["epochs"] >= 1
        assert run.needs_gpu == (run.task != "digits")
        assert run.command[1:5] == ["-m", "aees.cli", "train", run.task]
        assert run.command[run.command.index("--output") + 1] == str(tmp_path / run.output)


@pytest.mark.parametrize("name", sorted(EXPECTED_RUNS))
def test_preset_commands_parse(name: str, tmp_path: Path) -> None:
    """Every generated ``train`` argv is accepted by the task's real parser, as planned."""
    from aees.runner.tasks import get_task
    from aees.sweep.flags import write_flags

    manifest = build_plan(name, seeds=[0], output_root=tmp_path)
    for run in manifest.runs:
        try:
            get_task(run.task)
        except KeyError:
            pytest.skip(f"task {run.task} is not registered")
        config, _ = parse_train_args(run.command[3:])
        assert config.task_name == run.task
        assert config.seed == run.seed
        assert config.epochs == run.flags["epochs"]
        assert config.run_tag == run.run_id
        written = write_flags(run.task)
        for key, value in run.flags.items():
            actual = getattr(config, key, None)
            if actual is None:
                actual = config.task_options.get(key)
            if key in written and isinstance(value, str):  # a relative write path is rooted
                value = os.path.abspath(os.path.join(manifest.output_root, value))
            if isinstance(value, list):
                assert list(actual) == value, key
            elif isinstance(value, float):
                assert math.isclose(actual, value), key
            else:
                assert actual == value, key


def test_noisy_cifar_grid_cells() -> None:
    manifest = build_plan("cifar-noisy", seeds=[0], output_root="/tmp/x")
    by_id = {run.run_id: run for run in manifest.runs}
    sgd = by_id["sym40_sgd_fixed_lr0p5_seed0"].flags
    assert sgd["optimizer"] == "SGD" and sgd["lr"] == 0.1 and sgd["momentum"] == 0.9
    assert sgd["control_mode"] == "adaptive" and sgd["lr_candidates"] == [0.5]
    assert (sgd["label_noise_type"], sgd["label_noise_rate"]) == ("symmetric", 0.4)
    aees = by_id["asym20_adamw_cosine_aees_seed0"].flags
    assert aees["lr_scheduler"] == "cosine" and aees["lr_candidates"] == [0.5, 1.0, 2.0]
    assert aees["lr"] == 1e-3 and aees["epochs"] == 200 and aees["episode_length"] == 200
    assert by_id["asym20_adamw_cosine_aees_seed0"].checkpoint_dir is not None


def test_demo_preset_is_the_digits_study() -> None:
    manifest = build_plan("demo", output_root="/tmp/x")
    assert manifest.seeds == [0, 1, 2]
    methods = {run.levels["method"] for run in manifest.runs}
    assert methods == {
        "adamw",
        "adamw_cosine",
        "fixed_lr0p5",
        "fixed_lr2",
        "aees_lr",
        "aees_lr_cosine",
        "random_lr",
    }
    for run in manifest.runs:
        assert run.flags["label_noise_type"] == "symmetric"
        assert run.flags["label_noise_rate"] == 0.4
        assert not run.needs_gpu


def test_seeds_and_overrides(tmp_path: Path) -> None:
    manifest = build_plan(
        "cifar-clean",
        seeds="0-1",
        overrides={"epochs": "1", "lr-scheduler": "cosine"} | parse_overrides(["batch_size=8"]),
        output_root=tmp_path,
    )
    assert len(manifest.runs) == 8 * 2
    assert all(run.flags["epochs"] == 1 for run in manifest.runs)
    assert all(run.flags["batch_size"] == 8 for run in manifest.runs)
    assert manifest.overrides == {"epochs": 1, "lr_scheduler": "cosine", "batch_size": 8}
    assert {run.flags["lr_scheduler"] for run in manifest.runs} == {"cosine"}
    assert "--epochs 1 " in manifest.runs[0].command_str


def test_parse_seeds() -> None:
    assert parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert parse_seeds("0,2,5") == [0, 2, 5]
    assert parse_seeds("0-2,7") == [0, 1, 2, 7]
    for bad in ("a", "3-1", "0,0", "-1", "1-", ""):
        with pytest.raises(PlanError, match="--seeds"):
            parse_seeds(bad)


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("epochs=abc", "epochs must be an integer"),
        ("lr=fast", "lr must be a finite number"),
        ("lr_scheduler=step", "lr_scheduler must be one of"),
        ("lr_candidates=0.5,-1", "lr_candidates"),
        ("quiet=maybe", "quiet must be true or false"),
        ("epoch=3", "unknown key 'epoch'"),
        ("seed=3", "--set seed: cannot be overridden"),
        ("output=x.json", "--set output: cannot"),
        ("task=cifar100", "task"),
        ("method=AdamW", "unknown key 'method'"),  # an NLP flag, not a CIFAR one
    ],
)
def test_bad_override_is_a_one_line_error(item: str, match: str) -> None:
    with pytest.raises(PlanError, match=match) as info:
        build_plan("cifar-clean", overrides=parse_overrides([item]), output_root="/tmp/x")
    assert "\n" not in str(info.value)


def test_override_must_fit_every_task_of_a_mixed_preset() -> None:
    with pytest.raises(PlanError, match="label_noise_type"):
        build_plan("compute-overhead", overrides={"label_noise_type": "symmetric"})
    manifest = build_plan("compute-overhead", overrides={"epochs": "1"}, output_root="/tmp/x")
    assert {run.flags["epochs"] for run in manifest.runs} == {1}


def test_parse_overrides_errors() -> None:
    with pytest.raises(PlanError, match="KEY=VALUE"):
        parse_overrides(["epochs"])
    with pytest.raises(PlanError, match="given twice"):
        parse_overrides(["epochs=1", "epochs=2"])


def test_preset_from_path_and_run_ids(tmp_path: Path) -> None:
    preset = _write(tmp_path / "tiny.toml", TINY)
    manifest = build_plan(preset, output_root=tmp_path / "out")
    assert manifest.preset == "tiny"
    assert [run.run_id for run in manifest.runs] == [
        "adamw_seed0",
        "aees_seed0",
        "adamw_seed1",
        "aees_seed1",
    ]
    run = manifest.runs[1]
    assert run.output == "aees_seed0.json" and run.log == "_logs/aees_seed0.log"
    assert run.flags["lr_candidates"] == [0.5, 1.0, 2.0]
    assert "--lr-candidates 0.5,1.0,2.0" in run.command_str
    assert run.command[-6:] == [
        "--seed",
        "0",
        "--run-tag",
        "aees_seed0",
        "--output",
        str(tmp_path / "out" / "aees_seed0.json"),
    ]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("seeds = [0]\n[base]\ntask = 'digits'\nepochs = [", "not valid TOML"),
        ("sedes = [0]\n[base]\ntask = 'digits'\nepochs = 1", "unknown key 'sedes'"),
        ("seeds = []\n[base]\ntask = 'digits'\nepochs = 1", "seeds must be"),
        ("[base]\nepochs = 1", "no task"),
        ("[base]\ntask = 'mnist'\nepochs = 1", "unknown task 'mnist'"),
        ("[base]\ntask = 'digits'", "epochs is not set"),
        ("[base]\ntask = 'digits'\nepochs = 1\n[axes.m]\na = { lr = 'x' }", "axes.m.a: lr must"),
        ("[base]\ntask = 'digits'\nepochs = 1\n[axes.m]\na = { seed = 1 }", "seed cannot"),
        ("[base]\ntask = 'digits'\nepochs = 1\n[axes.m]\n'a b' = {}", "name 'a b'"),
        ("[base]\ntask = 'digits'\nepochs = 1\n[axes.m]", "has no levels"),
        (
            "[base]\ntask = 'digits'\nepochs = 1\n[[grid]]\nname = 'g'\n[grid.base]\nepochs = 1",
            "either",
        ),
        ("[base]\ntask = 'digits'\nepochs = 1\nhf_token = 'x'", "secrets"),
    ],
)
def test_bad_preset_is_a_one_line_error(tmp_path: Path, text: str, match: str) -> None:
    path = _write(tmp_path / "bad.toml", text)
    with pytest.raises(PlanError, match=match) as info:
        build_plan(path, output_root=tmp_path)
    assert "\n" not in str(info.value)


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(PlanError, match=r"known presets: .*cifar-noisy"):
        load_preset("cifar-noisey")


def test_manifest_round_trip(tmp_path: Path) -> None:
    manifest = build_plan(_write(tmp_path / "tiny.toml", TINY), output_root=tmp_path / "out")
    path = write_manifest(manifest, tmp_path / "m.json")
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["run_count"] == 4
    assert data["status_counts"]["pending"] == 4
    loaded = load_manifest(path)
    assert loaded.to_dict() == manifest.to_dict()
    loaded.relocate(tmp_path / "elsewhere")
    assert str(tmp_path / "elsewhere" / "adamw_seed0.json") in loaded.runs[0].command
    assert Manifest.from_dict(loaded.to_dict()).runs[0].command == loaded.runs[0].command


def test_manifest_with_flags_in_another_order_still_loads(tmp_path: Path) -> None:
    """Commands list the flags in the order of the task's option specs; a manifest planned when
    they came in another order still loads (its runs run the command built now), while a stored
    command with another value or an extra flag is still refused."""
    manifest = build_plan(_write(tmp_path / "tiny.toml", TINY), output_root=tmp_path / "out")
    data = manifest.to_dict()
    run = next(r for r in data["runs"] if r["run_id"] == "aees_seed0")
    head, rest = run["command"][:5], run["command"][5:]
    device = rest.index("--device")
    older = [*head, *rest[device : device + 2], *rest[:device], *rest[device + 2 :]]
    assert older != run["command"]

    def stored(command: list[str]) -> dict:
        copy = json.loads(json.dumps(data))
        changed = next(r for r in copy["runs"] if r["run_id"] == "aees_seed0")
        changed["command"], changed["command_str"] = command, shlex.join(command)
        return copy

    loaded = Manifest.from_dict(stored(older))
    assert loaded.run("aees_seed0").command == older
    assert run_command(loaded.run("aees_seed0"), loaded.output_root) == run["command"]
    edited = [token if token != "adaptive" else "random" for token in older]
    with pytest.raises(PlanError, match="command is not the one"):
        Manifest.from_dict(stored(edited))
    with pytest.raises(PlanError, match="command is not the one"):
        Manifest.from_dict(stored([*older, "--device", "cpu"]))


def test_plan_main_writes_a_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "plan.json"
    root = str(tmp_path / "r")
    code = plan_main(
        ["demo", "--seeds", "0-1", "--set", "epochs=2", "--output-root", root, "--out", str(out)]
    )
    assert code == 0
    manifest = load_manifest(out)
    assert len(manifest.runs) == 14
    assert {run.flags["epochs"] for run in manifest.runs} == {2}
    assert "14 runs" in capsys.readouterr().out
    # default --out: <output-root>/manifest.json
    assert plan_main(["demo", "--output-root", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "manifest.json").is_file()
    assert plan_main(["--list"]) == 0
    assert "cifar-noisy" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["demo", "--set", "epochs=abc"], "epochs must be an integer"),
        (["demo", "--set", "nonsense=1"], "unknown key 'nonsense'"),
        (["demo", "--set", "epochs"], "KEY=VALUE"),
        (["demo", "--seeds", "x"], "--seeds"),
        (["no-such-preset"], "unknown preset"),
        ([], "a preset is required"),
    ],
)
def test_plan_main_errors_exit_2(
    argv: list[str], match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        plan_main([*argv, "--out", str(tmp_path / "m.json")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("aees plan: error:")
    assert match in err
    assert err.count("\n") == 1
    assert not (tmp_path / "m.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "said", "not_said"),
    [
        ([], "12 use a GPU where there is one, else the CPU", "need a GPU"),
        (["--set", "device=cuda"], "12 need a GPU (device cuda)", "where there is one"),
        (["--set", "device=cpu"], "12 run on the CPU", "GPU"),
    ],
)
def test_plan_image_folder_says_how_its_runs_use_a_gpu(
    tmp_path: Path, extra: list[str], said: str, not_said: str
) -> None:
    """Issue 19 §7: ``aees plan image-folder`` said its runs "need a GPU", though with the
    default ``device auto`` they run on the CPU where there is none."""
    import os
    import subprocess
    import sys

    plan = [sys.executable, "-m", "aees.cli", "plan", "image-folder", "--set", "data_dir=imgs"]
    proc = subprocess.run(
        [*plan, "--output-root", str(tmp_path / "r"), *extra],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    line = proc.stdout.splitlines()[0]
    assert said in line and not_said not in line.split("; ", 1)[1].split(")")[0], line
