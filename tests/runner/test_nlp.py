"""The NLP tasks (SST-2, AG News) end to end, offline, on tiny fixtures in the real formats.

A tiny random DistilBERT + WordPiece tokenizer (``save_pretrained``) and raw ``DatasetDict`` s
(``save_to_disk``) stand in for the Hub files; see ``nlp_fixtures.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("datasets")

import run_checks
from nlp_fixtures import write_agnews, write_sst2, write_tiny_distilbert
from run_checks import check_episodes

from aees import cli
from aees.results import load_run_result
from aees.runner.config import RunConfig, option_specs
from aees.runner.label_noise import agnews_label_noise
from aees.runner.tasks import get_task, task_info
from aees.runner.tasks.text.batches import PadCollate, TokenizedTextDataset
from aees.runner.tasks.text.cache import METADATA_NAME
from aees.runner.tasks.text.data import split_indices
from aees.runner.tasks.text.task import TextClassificationTask

N_SST2_TRAIN, N_SST2_VAL = 64, 32
N_AG_TRAIN, N_AG_TEST = 80, 40
DUAL = ["--lr-candidates", "0.5,1,2", "--noise-candidates", "0,0.001", "--episode-length", "2"]


@pytest.fixture(scope="session")
def fx(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("nlp")
    return {
        "model": write_tiny_distilbert(root / "tiny-distilbert"),
        "sst2": write_sst2(root / "sst2_raw", N_SST2_TRAIN, N_SST2_VAL),
        "agnews": write_agnews(root / "agnews_raw", N_AG_TRAIN, N_AG_TEST),
    }


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def flags(fx, tmp_path: Path, task: str, *extra: str, data: bool = True) -> list[str]:
    out = [
        "train", task,
        "--model-name", str(fx["model"]),
        "--cache-dir", str(tmp_path / "hf_cache"),
        "--tokenized-dataset-dir", str(tmp_path / "tok"),
        "--local-files-only", "--device", "cpu", "--quiet",
    ]  # fmt: skip
    if data:
        out += ["--data-dir", str(fx[task])]
    return out + list(extra)


def train(fx, tmp_path: Path, task: str, *extra: str, name: str = "run.json") -> Path:
    output = tmp_path / name
    argv = flags(fx, tmp_path, task, "--epochs", "1", "--output", str(output), *extra)
    assert cli.main(argv) == 0
    return output


def check_consistent(path: Path, task: str, method: str, epochs: int = 1):
    result = run_checks.check_consistent(path, epochs, test_split=None)
    assert result.task_name == task and result.method_name == method
    assert result.config["scheduler_step_unit"] == "optimizer_step"
    options = result.config["task_options"]
    assert options["max_length"] > 0 and options["local_files_only"] is True
    assert "hf_token" not in options and "hf_token" not in result.config
    return result


# ------------------------------------------------------------------------------ runs


def test_sst2_adamw_linear(fx, tmp_path):
    out = train(fx, tmp_path, "sst2", "--lr-scheduler", "linear", "--batch-size", "16")
    result = check_consistent(out, "sst2", "AdamW")
    cfg = result.config
    assert result.episode_logs is None and result.controller_logs is None
    assert cfg["scheduler_active"] and cfg["scheduler_span_steps"] == N_SST2_TRAIN // 16
    assert cfg["split"]["train"] == N_SST2_TRAIN and cfg["split"]["val"] == N_SST2_VAL
    assert cfg["split"]["test"] == 0 and "final_test_accuracy" not in result.diagnostics
    assert cfg["label_noise_rate"] == 0.0 and cfg["label_noise_seed"] == 42
    assert cfg["dataset_name"] == "GLUE SST-2" and cfg["model_name"] == str(fx["model"])
    assert (cfg["epochs"], cfg["lr"], cfg["weight_decay"]) == (1, 5e-5, 0.01)
    assert Path(cfg["tokenized_dataset_path"]).parent == tmp_path / "tok"
    assert "label_noise" not in result.diagnostics


def test_sst2_adaptive(fx, tmp_path):
    out = train(fx, tmp_path, "sst2", "--method", "AdaptiveScheduler", *DUAL)
    result = check_consistent(out, "sst2", "AdaptiveScheduler")
    check_episodes(result, 2)
    assert result.controller_logs["lr_controller_logs"]["controller_type"] == (
        "DiscountedUCBController"
    )
    assert set(result.episode_logs["selected_noise_values"]) <= {0.0, 0.001}
    assert result.config["control_mode"] == "adaptive"


def test_sst2_random_with_val_split(fx, tmp_path):
    out = train(fx, tmp_path, "sst2", "--method", "RandomScheduler", *DUAL, "--val-split", "16")
    result = check_consistent(out, "sst2", "RandomScheduler")
    check_episodes(result, 2)
    split = result.config["split"]
    assert (split["train"], split["val"], split["test"]) == (N_SST2_TRAIN - 16, 16, N_SST2_VAL)
    assert split["test_source"] == "validation"
    assert 0.0 <= result.diagnostics["final_test_accuracy"] <= 1.0
    assert result.diagnostics["test_accuracy_at_best_val"] is not None


def test_agnews_label_noise(fx, tmp_path):
    out = train(
        fx, tmp_path, "agnews", "--method", "AdaptiveScheduler", *DUAL,
        "--label-noise-rate", "0.2", "--label-noise-seed", "7", "--seed", "3",
    )  # fmt: skip
    result = check_consistent(out, "agnews", "AdaptiveScheduler")
    check_episodes(result, 2)
    cfg, diag = result.config, result.diagnostics
    n_train = N_AG_TRAIN - round(0.1 * N_AG_TRAIN)
    assert (cfg["split"]["train"], cfg["split"]["val"], cfg["split"]["test"]) == (
        n_train,
        N_AG_TRAIN - n_train,
        N_AG_TEST,
    )
    assert cfg["label_noise_seed"] == 7 and cfg["seed"] == 3
    assert cfg["label_noise_rate"] == 0.2 and cfg["label_noise_type"] == "symmetric"
    noise = diag["label_noise"]
    assert noise["num_corrupted_examples"] == round(0.2 * n_train)
    assert noise["seed"] == 7 and noise["protocol"] == "agnews_symmetric"
    assert (tmp_path / noise["corrupted_indices_file"]).exists()
    for block in ("final_subset_accuracies", "best_val_subset_accuracies"):
        assert set(diag[block]) >= {
            "train_all_accuracy",
            "train_clean_accuracy",
            "train_corrupted_accuracy_vs_noisy_labels",
            "train_corrupted_accuracy_vs_clean_labels",
        }
    assert diag["final_test_accuracy"] is not None
    # The thesis protocol on the split's training order, with the noise seed (not --seed).
    from datasets import load_from_disk

    labels = load_from_disk(str(fx["agnews"]))["train"]["label"]
    train_idx, _ = split_indices(len(labels), 0.1, 42)
    expected = agnews_label_noise([labels[i] for i in train_idx], 0.2, 7)
    assert noise["indices_sha256"] == expected.indices_sha256
    assert noise["noisy_labels_sha256"] == expected.noisy_labels_sha256


def test_agnews_clean_baseline(fx, tmp_path):
    out = train(fx, tmp_path, "agnews", "--val-split", "20")
    result = check_consistent(out, "agnews", "AdamW")
    split = result.config["split"]
    assert (split["train"], split["val"], split["test"]) == (N_AG_TRAIN - 20, 20, N_AG_TEST)
    assert result.config["label_noise_type"] == "none"
    assert "label_noise" not in result.diagnostics
    assert result.diagnostics["final_test_accuracy"] is not None


@pytest.mark.parametrize(
    "secret",
    ["hf_abcdefghijklmnopqrstuvwxyz0123", "plain-secret-no-hf-shape"],
    ids=["hf-shaped", "plain"],
)
def test_hf_token_is_never_written(fx, tmp_path, monkeypatch, secret):
    out = train(fx, tmp_path, "sst2", "--hf-token", secret)
    assert secret not in out.read_text()
    # the recorded command line is redacted by the parsed value, wherever it appears in it
    out = train(fx, tmp_path, "sst2", "--hf-token", secret, "--run-tag", f"t-{secret}",
                name="tag.json")  # fmt: skip
    provenance = json.loads(out.read_text())["provenance"]
    assert secret not in json.dumps([provenance["command"], provenance["command_str"]])
    monkeypatch.setenv("HF_TOKEN", secret)
    out = train(fx, tmp_path, "sst2", name="env.json")
    assert secret not in out.read_text()


def test_hf_token_reaches_the_loaders_and_no_run_state_stays_on_the_task(fx, tmp_path, monkeypatch):
    """--hf-token travels with the run's configuration down to every load (``token=``); the
    registered task object keeps nothing of the run (no token, no Hub probe answer)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    seen: list[object] = []
    for cls in (AutoTokenizer, AutoModelForSequenceClassification):
        original = cls.from_pretrained.__func__

        def spy(klass, *args, _original=original, **kwargs):
            seen.append(kwargs.get("token"))
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(spy))
    secret = "hf_flagtokenvalue0123456789abcdef"
    train(fx, tmp_path, "sst2", "--hf-token", secret)
    assert len(seen) >= 2 and all(token == secret for token in seen)
    assert vars(get_task("sst2")) == {}


# ------------------------------------------------------------------------------ the cache


def cache_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_cache_write_failing_midway_leaves_nothing_a_later_run_accepts(
    fx, tmp_path, monkeypatch, capsys
):
    """The tokenized cache is written into a temporary sibling and renamed into place: a write
    that fails after the first split leaves neither a directory at the final path nor the
    temporary one, the run stops with one line, and the next run builds a whole cache."""
    from datasets import Dataset

    original = Dataset.save_to_disk
    calls: list[str] = []

    def fail_second(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(Dataset, "save_to_disk", fail_second)
    argv = flags(fx, tmp_path, "sst2", "--pretokenize-only")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err  # progress bars above, then the one error line
    assert err.strip().splitlines()[-1].startswith("aees train sst2: error: cannot write the tok")
    assert len(calls) == 2 and list((tmp_path / "tok").iterdir()) == []
    monkeypatch.undo()
    assert cli.main(argv) == 0
    (cache,) = cache_dirs(tmp_path / "tok")
    assert (cache / METADATA_NAME).is_file() and (cache / "validation").is_dir()


def test_pretokenize_layout_reuse_and_max_length_key(fx, tmp_path, capsys, monkeypatch):
    argv = flags(fx, tmp_path, "sst2", "--pretokenize-only", "--max-length", "12")
    assert cli.main(argv) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("Saved tokenized SST-2 dataset to ")
    (cache,) = cache_dirs(tmp_path / "tok")
    assert cache.name.endswith("_len12") and cache.name.startswith("tiny-distilbert-")
    assert line.endswith(str(cache))
    meta = json.loads((cache / METADATA_NAME).read_text())
    assert meta["max_length"] == 12 and meta["splits"] == ["train", "validation"]
    assert meta["num_rows"] == {"train": N_SST2_TRAIN, "validation": N_SST2_VAL}
    assert meta["tokenizer_name"] == str(fx["model"])
    assert (cache / "train").is_dir() and (cache / "validation").is_dir()

    from datasets import load_from_disk

    train_split = load_from_disk(str(cache / "train"))
    assert set(train_split.column_names) == {"input_ids", "attention_mask", "label"}
    assert max(len(ids) for ids in train_split["input_ids"]) <= 12

    # Reused: the raw data is never read again (by pretokenize or by a run).
    def no_raw(self, config, hub):
        raise AssertionError("raw data loaded although the cache is valid")

    monkeypatch.setattr(TextClassificationTask, "load_raw", no_raw)
    assert cli.main(argv) == 0
    assert "already up to date" in capsys.readouterr().out
    out = tmp_path / "run.json"
    run = flags(fx, tmp_path, "sst2", "--max-length", "12", "--epochs", "1", "--output", str(out))
    assert cli.main(run) == 0
    assert load_run_result(out).config["tokenized_dataset_path"] == str(cache)
    monkeypatch.undo()

    # Another --max-length is another cache, not a reuse.
    assert cli.main(flags(fx, tmp_path, "sst2", "--pretokenize-only", "--max-length", "6")) == 0
    names = [p.name for p in cache_dirs(tmp_path / "tok")]
    assert len(names) == 2 and any(n.endswith("_len6") for n in names)

    # Stale metadata (e.g. written by another version) is rebuilt, not trusted.
    meta["format"] = -1
    (cache / METADATA_NAME).write_text(json.dumps(meta))
    assert cli.main(argv) == 0
    assert "already up to date" not in capsys.readouterr().out
    assert json.loads((cache / METADATA_NAME).read_text())["format"] != -1


@pytest.mark.slow  # a subprocess of the CLI
def test_pretokenize_subprocess_agnews(fx, tmp_path):
    argv = flags(fx, tmp_path, "agnews", "--pretokenize-only")
    proc = subprocess.run(
        [sys.executable, "-m", "aees.cli", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith("Saved tokenized AG News dataset to ")
    (cache,) = cache_dirs(tmp_path / "tok")
    assert {p.name for p in cache.iterdir()} == {"train", "test", METADATA_NAME}


# ------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("task", "extra", "flag"),
    [
        ("agnews", ["--label-noise-rate", "1.0"], "--label-noise-rate"),
        ("agnews", ["--label-noise-rate", "-0.1"], "--label-noise-rate"),
        ("sst2", ["--max-length", "0"], "--max-length"),
        ("sst2", ["--label-noise-rate", "0.1"], "--label-noise-rate"),  # no such flag for SST-2
        ("sst2", ["--data-dir", "/nonexistent/sst2"], "--data-dir"),
        ("sst2", ["--epochs", "0"], "--epochs"),
        ("agnews", ["--method", "SGD"], "--method"),
    ],
)
def test_bad_flags_exit_2_one_line(fx, tmp_path, capsys, task, extra, flag):
    with pytest.raises(SystemExit) as exc:
        cli.main(flags(fx, tmp_path, task, *extra))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err


def test_missing_dataset_offline_names_the_command(fx, tmp_path, capsys):
    argv = flags(fx, tmp_path, "sst2", "--output", str(tmp_path / "x.json"), data=False)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("aees train sst2: error: ")
    assert "aees train sst2 --pretokenize-only" in err and str(tmp_path / "hf_cache") in err
    assert not (tmp_path / "x.json").exists()


def test_missing_model_offline_names_the_command(fx, tmp_path, capsys):
    tokenizer_only = tmp_path / "tokenizer_only"
    tokenizer_only.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (fx["model"] / name).exists():
            (tokenizer_only / name).write_bytes((fx["model"] / name).read_bytes())
    argv = flags(fx, tmp_path, "agnews", "--model-name", str(tokenizer_only))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot load the model" in err
    assert "python -c" in err and "from_pretrained" in err

    assert cli.main(flags(fx, tmp_path, "sst2", "--model-name", "no-such/model-xyz")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot load the tokenizer" in err
    assert "--pretokenize-only" in err


def test_max_length_beyond_model_positions(fx, tmp_path, capsys):
    assert cli.main(flags(fx, tmp_path, "sst2", "--max-length", "512")) == 2
    err = capsys.readouterr().err
    assert "--max-length 512 exceeds the 128 positions" in err


def test_val_split_too_large(fx, tmp_path, capsys):
    assert cli.main(flags(fx, tmp_path, "sst2", "--val-split", str(N_SST2_TRAIN))) == 2
    assert "--val-split" in capsys.readouterr().err


# ------------------------------------------------------------------------------ units


def test_split_indices_match_train_test_split():
    from datasets import Dataset

    data = Dataset.from_dict({"v": list(range(50))})
    parts = data.train_test_split(test_size=0.1, seed=42)
    train_idx, held_idx = split_indices(50, 0.1, 42)
    assert parts["train"]["v"] == train_idx and parts["test"]["v"] == held_idx
    assert len(held_idx) == 5 and sorted(train_idx + held_idx) == list(range(50))


def test_dataset_collate_and_model_outputs(fx, tmp_path):
    task = get_task("sst2")
    config = RunConfig(
        task_name="sst2",
        model_name=str(fx["model"]),
        data_dir=str(fx["sst2"]),
        quiet=True,
        task_options={
            "max_length": 128,
            "cache_dir": str(tmp_path / "hf"),
            "tokenized_dataset_dir": str(tmp_path / "tok"),
            "local_files_only": True,
        },
    )
    setup = task.build(config, torch.device("cpu"))
    data = setup.train_data
    assert isinstance(data, TokenizedTextDataset) and len(data) == N_SST2_TRAIN
    single = [data[i] for i in (3, 0, 5)]
    batched = data.__getitems__([3, 0, 5])
    for (f1, y1), (f2, y2) in zip(single, batched, strict=True):
        assert y1 == y2 and f1 == f2 and set(f1) == {"input_ids", "attention_mask"}
    assert isinstance(setup.collate_fn, PadCollate)
    inputs, labels = setup.collate_fn(batched)
    assert set(inputs) == {"input_ids", "attention_mask"} and labels.dtype == torch.long
    longest = max(len(f["input_ids"]) for f, _ in batched)
    assert inputs["input_ids"].shape == (3, longest)
    assert inputs["attention_mask"].sum().item() == sum(len(f["input_ids"]) for f, _ in batched)
    outputs = setup.model(**inputs)
    assert setup.logits_fn(outputs).shape == (3, 2)
    loss = setup.loss_fn(outputs, labels)
    assert loss.ndim == 0 and torch.isfinite(loss)
    # The engine's FLOP counter works on the HF output (logits, no loss).
    from aees.runner.flops import measure_flops

    record = measure_flops(setup.model, inputs)
    assert record.forward_flops > 0 and record.backward_flops > record.forward_flops


def test_tasks_are_registered_with_nlp_flags():
    for name, labels in (("sst2", 2), ("agnews", 4)):
        info = task_info(name)
        assert info.report_family == "nlp"
        assert info.flag_style == "nlp" and info.scheduler_unit == "step"
        assert get_task(name).num_labels == labels
        assert info.defaults["batch_size"] == 16 and info.defaults["episode_length"] == 100
        specs = option_specs(name)
        # where-things-are options: not part of a run's identity, may change on --resume
        for key in ("cache_dir", "tokenized_dataset_dir", "local_files_only", "hf_token"):
            assert not specs[key].identity and specs[key].resumable
        assert specs["cache_dir"].writes and specs["tokenized_dataset_dir"].writes
        assert specs["max_length"].identity and not specs["max_length"].resumable
