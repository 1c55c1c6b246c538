"""``aees train text`` end to end, offline, on data and checkpoints in the formats users bring.

CSV / JSON Lines / Parquet folders and a ``save_to_disk`` ``DatasetDict`` (``nlp_fixtures.py``),
a tiny ``BertForSequenceClassification`` saved with ``save_pretrained`` (the Auto path, a head of
another class count) and the tiny DistilBERT base model (no head at all).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("datasets")

import run_checks
from nlp_fixtures import (
    pair_rows,
    text_rows,
    write_text_files,
    write_tiny_bert,
    write_tiny_distilbert,
)
from run_checks import check_episodes, kill_at_first_checkpoint

from aees import cli
from aees.results import load_run_result
from aees.runner.config import RunConfig
from aees.runner.label_noise import agnews_label_noise
from aees.runner.tasks import get_task
from aees.runner.tasks.text.cache import METADATA_NAME
from aees.runner.tasks.text.data import split_indices

NAMES = ("business", "sports", "world")  # sorted: the ids the task must give them
DUAL = ["--lr-candidates", "0.5,1,2", "--noise-candidates", "0,0.001", "--episode-length", "2"]
ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}


@pytest.fixture(scope="session")
def fx(tmp_path_factory) -> dict[str, Path]:
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value

    root = tmp_path_factory.mktemp("text")
    saved = root / "topics_saved"
    features = Features({"body": Value("string"), "topic": ClassLabel(names=list(NAMES))})

    def as_ids(rows: dict) -> dict:
        return {"body": rows["text"], "topic": [NAMES.index(v) for v in rows["label"]]}

    DatasetDict(
        {
            split: Dataset.from_dict(as_ids(text_rows(n, seed, NAMES)), features=features)
            for split, n, seed in (("train", 48, 1), ("validation", 16, 2), ("test", 16, 3))
        }
    ).save_to_disk(str(saved))
    return {
        "bert": write_tiny_bert(root / "tiny-bert", num_labels=2),
        "distilbert": write_tiny_distilbert(root / "tiny-distilbert"),
        "csv": write_text_files(
            root / "news_csv",
            {"train": text_rows(50, 4, NAMES), "test": text_rows(16, 5, NAMES)},
        ),
        "pairs": write_text_files(
            root / "pairs_jsonl",
            {"train": pair_rows(40, 6), "validation": pair_rows(12, 7)},
            fmt="jsonl",
        ),
        "saved": saved,
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


def flags(tmp_path: Path, data: Path | str, model: Path, *extra: str) -> list[str]:
    return [
        "train", "text", "--data-dir", str(data), "--model-name", str(model),
        "--cache-dir", str(tmp_path / "hf_cache"),
        "--tokenized-dataset-dir", str(tmp_path / "tok"),
        "--local-files-only", "--device", "cpu", "--max-length", "32", *extra,
    ]  # fmt: skip


def cache_dirs(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


# ------------------------------------------------------------------------------ runs


def test_csv_string_labels_bert_head_reinit_and_label_noise(fx, tmp_path, capsys):
    out = tmp_path / "run.json"
    argv = flags(
        tmp_path, fx["csv"], fx["bert"], "--epochs", "1", "--output", str(out),
        "--method", "AdaptiveScheduler", *DUAL,
        "--label-noise-rate", "0.25", "--label-noise-seed", "5",
    )  # fmt: skip
    assert cli.main(argv) == 0
    log = capsys.readouterr().out
    # the checkpoint's 2-label head cannot take 3 classes: re-initialised, and the log says so
    assert "Re-initialised the classification head" in log and "for 3 labels" in log
    result = run_checks.check_consistent(out, 1, test_split=True)
    check_episodes(result, 2)
    cfg, diag = result.config, result.diagnostics
    assert result.task_name == "text" and result.method_name == "AdaptiveScheduler"
    assert result.dataset_name == "news_csv" == cfg["dataset_name"]
    assert vars(get_task("text")) == {}  # the data's name is the run's, not the task object's
    assert result.model_name == str(fx["bert"]) == cfg["model_name"]
    assert cfg["checkpoint_name"] == "tiny-bert"
    assert cfg["label_names"] == list(NAMES) and cfg["num_labels"] == 3
    assert cfg["scheduler_step_unit"] == "optimizer_step"
    # no validation file: a seeded 10 % holdout of train; the test file is the test set
    n_train = 50 - round(0.1 * 50)
    split = cfg["split"]
    assert (split["train"], split["val"], split["test"]) == (n_train, 50 - n_train, 16)
    assert split["test_source"] == "test"
    # AG News's symmetric protocol with the data's class count, on the split's training order
    from datasets import load_dataset

    raw = load_dataset("csv", data_files=str(fx["csv"] / "train.csv"), split="train")
    ids = [NAMES.index(v) for v in raw["label"]]
    train_idx, _ = split_indices(len(ids), 0.1, 42)
    expected = agnews_label_noise([ids[i] for i in train_idx], 0.25, 5, num_classes=3)
    noise = diag["label_noise"]
    assert noise["num_corrupted_examples"] == round(0.25 * n_train)
    assert noise["indices_sha256"] == expected.indices_sha256
    assert noise["noisy_labels_sha256"] == expected.noisy_labels_sha256
    assert "train_corrupted_accuracy_vs_clean_labels" in diag["final_subset_accuracies"]


def test_pairs_jsonl_validation_file_and_token_types(fx, tmp_path):
    cols = ["--text-column", "premise", "--text-pair-column", "hypothesis", "--label-column", "y"]
    out = tmp_path / "pairs.json"
    argv = flags(tmp_path, fx["pairs"], fx["bert"], *cols, "--epochs", "1", "--quiet",
                 "--val-split", "8", "--lr-scheduler", "linear", "--output", str(out))  # fmt: skip
    assert cli.main(argv) == 0
    result = run_checks.check_consistent(out, 1, test_split=True)
    cfg = result.config
    assert cfg["label_names"] == ["differ", "same"] and cfg["text_columns"] == cols[1:4:2]
    # --val-split: the validation file becomes the test set (as SST-2's GLUE validation split)
    split = cfg["split"]
    assert (split["train"], split["val"], split["test"]) == (32, 8, 12)
    assert split["test_source"] == "validation"
    # Without it, the data's own validation file is the validation set; pairs carry segment ids
    # (BERT's token_type_ids), and the model is the checkpoint's own class, via the Auto path.
    task = get_task("text")
    config = RunConfig(
        task_name="text",
        model_name=str(fx["bert"]),
        data_dir=str(fx["pairs"]),
        quiet=True,
        task_options={
            "max_length": 32,
            "cache_dir": str(tmp_path / "hf_cache"),
            "tokenized_dataset_dir": str(tmp_path / "tok"),
            "local_files_only": True,
            "text_column": "premise",
            "text_pair_column": "hypothesis",
            "label_column": "y",
        },
    )
    setup = task.build(config, torch.device("cpu"))
    assert type(setup.model).__name__ == "BertForSequenceClassification"
    assert setup.model.config.id2label == {0: "differ", 1: "same"}
    assert (len(setup.train_data), len(setup.val_data), setup.test_data) == (40, 12, None)
    features, label = setup.train_data[0]
    rows = pair_rows(40, 6)
    assert label == ["differ", "same"].index(rows["y"][0])
    sep = 3  # [SEP]: one after the premise, one after the hypothesis
    assert features["input_ids"].count(sep) == 2
    types = features["token_type_ids"]
    assert types[0] == 0 and types[-1] == 1 and sorted(types) == types
    inputs, _ = setup.collate_fn([setup.train_data[i] for i in range(3)])
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}


def test_saved_datasetdict_classlabel_and_cache(fx, tmp_path, capsys):
    argv = flags(tmp_path, fx["saved"], fx["distilbert"], "--text-column", "body",
                 "--label-column", "topic", "--quiet")  # fmt: skip
    assert cli.main([*argv, "--pretokenize-only"]) == 0
    assert "Saved tokenized topics_saved dataset to" in capsys.readouterr().out
    (cache,) = cache_dirs(tmp_path / "tok")
    meta = json.loads((cache / METADATA_NAME).read_text())
    assert meta["splits"] == ["train", "validation", "test"] and meta["label_names"] == list(NAMES)
    assert meta["label_column"] == "topic" and meta["task"] == "text"
    assert cli.main([*argv, "--pretokenize-only"]) == 0
    assert "already up to date" in capsys.readouterr().out
    out = tmp_path / "saved.json"
    assert cli.main([*argv, "--epochs", "1", "--output", str(out)]) == 0
    result = run_checks.check_consistent(out, 1, test_split=True)
    cfg = result.config
    assert result.dataset_name == "topics_saved" and cfg["checkpoint_name"] == "tiny-distilbert"
    assert cfg["tokenized_dataset_path"] == str(cache) and cfg["label_names"] == list(NAMES)
    assert (cfg["split"]["train"], cfg["split"]["val"], cfg["split"]["test"]) == (48, 16, 16)
    assert cfg["split"]["validation_source"] == "validation"
    assert cfg["label_noise_type"] == "none" and "label_noise" not in result.diagnostics


def test_file_change_rebuilds_cache_and_parquet_int_labels(fx, tmp_path, capsys):
    data = tmp_path / "ints"
    rows = text_rows(30, 8, NAMES)
    rows["label"] = [NAMES.index(v) for v in rows["label"]]
    write_text_files(data, {"train": rows}, fmt="parquet")
    argv = [*flags(tmp_path, data, fx["distilbert"], "--quiet"), "--pretokenize-only"]
    assert cli.main(argv) == 0
    (first,) = cache_dirs(tmp_path / "tok")
    meta = json.loads((first / METADATA_NAME).read_text())
    assert meta["splits"] == ["train"] and meta["label_names"] == ["0", "1", "2"]
    rows["text"][0] = "a changed sentence"
    write_text_files(data, {"train": rows}, fmt="parquet")
    os.utime(data / "train.parquet", ns=(1, 1))  # another mtime, whatever the clock's resolution
    assert cli.main(argv) == 0
    assert "already up to date" not in capsys.readouterr().out
    assert len(cache_dirs(tmp_path / "tok")) == 2


# ------------------------------------------------------------------------------ bad input


def bad_inputs(root: Path) -> dict[str, tuple[Path, list[str], str]]:
    """name -> (data dir, extra flags, text the one-line error must contain)."""
    good = text_rows(20, 9, NAMES)
    cases: dict[str, tuple[Path, list[str], str]] = {}

    def case(name: str, splits: dict, extra: list[str], expect: str, fmt: str = "csv") -> None:
        cases[name] = (write_text_files(root / name, splits, fmt=fmt), extra, expect)

    case("no_label_column", {"train": good}, ["--label-column", "topic"],
         "no 'topic' column (has: text, label)")  # fmt: skip
    case("no_text_column", {"train": good}, ["--text-column", "body"], "no 'body' column")
    numbers = {"text": list(range(20)), "label": good["label"]}
    case("numeric_text", {"train": numbers}, [], "holds integer values, not strings")
    missing = {"text": good["text"][:6], "label": [*good["label"][:5], None]}
    case(
        "missing_labels",
        {"train": good, "test": missing},
        [],
        "split 'test': 1 of 6 rows have no label",
        fmt="jsonl",
    )
    unseen = {"text": good["text"][:4], "label": ["world", "tech", "tech", "space"]}
    case("unseen_labels", {"train": good, "test": unseen}, [], "never has: 'space', 'tech'")
    single = {"text": good["text"], "label": ["world"] * 20}
    case("single_class", {"train": single}, [], "a single class")
    case("no_train_file", {"test": good}, [], "no train.csv")
    corrupt = root / "corrupt"
    corrupt.mkdir()
    (corrupt / "train.parquet").write_bytes(b"this is not parquet")
    cases["corrupt"] = (corrupt, [], "cannot read")
    return cases


def test_bad_inputs_one_line_exit_2_nothing_written(fx, tmp_path, capsys):
    for name, (data, extra, expect) in bad_inputs(tmp_path / "data").items():
        out = tmp_path / f"{name}.json"
        argv = flags(tmp_path, data, fx["distilbert"], "--quiet", "--output", str(out), *extra)
        assert cli.main(argv) == 2, name
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("aees train text: error: "), name
        assert expect in err, (name, err)
        assert not out.exists() and not cache_dirs(tmp_path / "tok"), name
    # no data at all (a preset not yet pointed at data): one line, before anything loads
    base = flags(tmp_path, fx["csv"], fx["distilbert"])
    no_data = base[:2] + base[4:]
    assert cli.main([*no_data, "--output", str(tmp_path / "none.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no data: pass --data-dir DIR" in err
    # a Hub dataset not in the cache, offline: one line naming the command that fetches it
    assert cli.main([*no_data, "--dataset", "org/news"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot load the org/news dataset" in err
    assert "aees train text --pretokenize-only" in err and "--dataset org/news" in err
    # a --model-name written as a path must be a directory; a Hub id that is not in the cache
    # names the cached models closest to it
    (tmp_path / "hf_cache" / "models--org--tiny-bert").mkdir(parents=True)
    for model, expect in (
        (str(tmp_path / "missing_model"), "no such model directory"),
        ("org/tiny-bertt", "cached models closest to it: org/tiny-bert;"),
    ):
        argv = flags(tmp_path, fx["csv"], Path(model), "--output", str(tmp_path / "m.json"))
        assert cli.main(argv) == 2, model
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expect in err, (model, err)
        assert not (tmp_path / "m.json").exists() and not cache_dirs(tmp_path / "tok")
    # both data sources, a bad --dataset, one column twice: flag errors
    for argv, expect in (
        ([*base, "--dataset", "org/news"], "not both"),
        ([*no_data, "--dataset", "org/news:"], "--dataset must be"),
        ([*base, "--text-pair-column", "text"], "different columns"),
    ):
        with pytest.raises(SystemExit) as exc:
            cli.main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and expect in err


# ------------------------------------------------------------------------------ resume


VOLATILE = {"wall_clock_seconds", "epoch_wall_clock_seconds", "runtime_metrics", "provenance"}


@pytest.mark.slow  # a subprocess of the CLI (SIGKILL for the resume test)
def test_sigkill_then_resume_matches_uninterrupted(fx, tmp_path):
    base = flags(tmp_path, fx["csv"], fx["bert"], "--epochs", "3", "--batch-size", "4",
                 "--method", "AdaptiveScheduler", *DUAL, "--quiet")  # fmt: skip
    # the cache is built once, before either run (two runs must not race to write it)
    assert cli.main([*base, "--pretokenize-only"]) == 0
    ckpt_dir = tmp_path / "ckpt"
    killed_out = tmp_path / "resumed.json"
    cmd = [sys.executable, "-m", "aees.cli", *base]
    proc = subprocess.Popen(
        [*cmd, "--output", str(killed_out), "--checkpoint-dir", str(ckpt_dir)],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    kill_at_first_checkpoint(proc, ckpt_dir, killed_out, timeout=180)
    # the uninterrupted reference, in this process (one thread, as the subprocesses)
    assert cli.main([*base, "--output", str(tmp_path / "reference.json")]) == 0
    resumed = subprocess.run(
        [*cmd[:-1], "--output", str(killed_out), "--checkpoint-dir", str(ckpt_dir), "--resume"],
        env=ENV, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stdout
    a = load_run_result(tmp_path / "reference.json").to_dict()
    b = load_run_result(killed_out).to_dict()
    assert b["provenance"].get("resumed") is True
    for key in set(a) - VOLATILE - {"config"}:
        assert a[key] == b[key], key
    for key in set(a["config"]) - {"output", "checkpoint_dir", "resume", "quiet"}:
        assert a["config"][key] == b["config"][key], key
