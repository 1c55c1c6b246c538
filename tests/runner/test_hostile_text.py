"""Hostile input to ``aees train text`` (issue 18 items 1, 3, 4; issue 19 §6): a checkpoint
directory whose custom code would run, crafted tokenized caches, memory bombs and special files
as data, and a Hub that cannot be reached.

CLI behaviour goes through ``python -m aees.cli`` in a subprocess, where a user meets it: one
line on stderr, exit status 2, no traceback, nothing written. Docs: docs/protocols.md §4.7.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
pytest.importorskip("datasets")

from nlp_fixtures import text_rows, write_text_files, write_tiny_distilbert

from aees import cli
from aees.results import load_run_result
from aees.results.io import read_regular_file
from aees.runner.tasks.text.cache import METADATA_NAME, content_digest
from aees.runner.tasks.text.data import MAX_CLASSES, MAX_FIELD_CHARS

NAMES = ("business", "sports", "world")
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
BASE_ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_TOKEN", "HF_ENDPOINT")
}
BASE_ENV.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})


def aees(*args: str, env: dict | None = None, stdin: str | None = None, timeout: float = 240):
    return subprocess.run(
        [sys.executable, "-m", "aees.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**BASE_ENV, **(OFFLINE if env is None else env)},
        timeout=timeout,
    )


def one_line_error(done: subprocess.CompletedProcess[str], needle: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], done.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile_text")
    return {
        "model": write_tiny_distilbert(root / "tiny-distilbert"),
        "csv": write_text_files(root / "news", {"train": text_rows(30, 4, NAMES)}),
    }


def flags(
    tmp: Path, data: Path, model: Path | str, *extra: str, local: bool = True, quiet: bool = True
) -> list[str]:
    return [
        "train", "text", "--data-dir", str(data), "--model-name", str(model),
        "--cache-dir", str(tmp / "hf_cache"), "--tokenized-dataset-dir", str(tmp / "tok"),
        "--device", "cpu", "--max-length", "32", "--epochs", "1",
        "--output", str(tmp / "run.json"), *(["--local-files-only"] if local else []),
        *(["--quiet"] if quiet else []), *extra,
    ]  # fmt: skip


def nothing_written(tmp: Path) -> None:
    assert not (tmp / "run.json").exists()
    tok = tmp / "tok"
    assert not tok.exists() or not [p for p in tok.iterdir() if not p.name.startswith(".")]


# ------------------------------------------------------------------ the one capped reader


def test_read_regular_file_refuses_special_files_and_caps_size(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "zero").symlink_to("/dev/zero")
    (tmp_path / "big").write_bytes(b"x" * 11)
    (tmp_path / "ok").write_bytes(b"abc")
    for name, needle in (
        ("fifo", "not a regular file (FIFO)"),
        ("zero", "character device, reached through a link"),
        ("big", "larger than the 10-byte cap (11 bytes)"),
        ("missing", "no such file"),
    ):
        with pytest.raises(ValueError) as err:
            read_regular_file(tmp_path / name, max_bytes=10, what="--label-noise-map")
        assert str(err.value).startswith(f"--label-noise-map {tmp_path / name}: "), name
        assert needle in str(err.value), (name, str(err.value))
    assert read_regular_file(tmp_path / "ok", max_bytes=10, what="x") == b"abc"


# ------------------------------------------------------------------ custom model code


def write_custom_code_dir(path: Path, marker: Path) -> Path:
    path.mkdir(parents=True)
    code = f"open({str(marker)!r}, 'w').write('ran')\nfrom transformers import PretrainedConfig\n"
    code += "class EvilConfig(PretrainedConfig):\n    model_type = 'aees-evil'\n"
    (path / "evil.py").write_text(code)
    auto_map = {
        "AutoConfig": "evil.EvilConfig",
        "AutoTokenizer": ["evil.EvilConfig", None],
        "AutoModelForSequenceClassification": "evil.EvilConfig",
    }
    (path / "config.json").write_text(json.dumps({"model_type": "aees-evil", "auto_map": auto_map}))
    return path


@pytest.mark.slow  # a subprocess of the CLI
@pytest.mark.parametrize("local", [True, False], ids=["local-files-only", "default"])
def test_custom_code_dir_is_refused_before_anything_runs_even_with_yes_on_stdin(
    fx, tmp_path, local
):
    marker = tmp_path / "custom_code_ran"
    model = write_custom_code_dir(tmp_path / "evil-model", marker)
    # `yes | aees train text ...`: a "y" for any prompt that could appear
    done = aees(*flags(tmp_path, fx["csv"], model, local=local), stdin="y\n" * 200)
    line = one_line_error(done, f"--model-name {model}: config.json names custom model code")
    assert "never runs" in line
    assert not marker.exists(), "the checkpoint's own code ran"
    nothing_written(tmp_path)


def test_unknown_model_type_and_custom_tokenizer_code_refused(fx, tmp_path, capsys):
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps({"model_type": "no-such-architecture"}))
    tokenizer_code = tmp_path / "tokenizer_code"
    shutil.copytree(fx["model"], tokenizer_code)
    cfg = json.loads((tokenizer_code / "tokenizer_config.json").read_text())
    cfg["auto_map"] = {"AutoTokenizer": ["evil.EvilTokenizer", None]}
    (tokenizer_code / "tokenizer_config.json").write_text(json.dumps(cfg))
    fifo_config = tmp_path / "fifo_config"
    fifo_config.mkdir()
    os.mkfifo(fifo_config / "config.json")
    for model, needle in (
        (unknown, "model_type 'no-such-architecture' is not one transformers"),
        (tokenizer_code, "tokenizer_config.json names custom model code"),
        (fifo_config, "config.json: not a regular file (FIFO)"),
    ):
        with pytest.raises(SystemExit) as exc:
            cli.main(flags(tmp_path, fx["csv"], model))
        assert exc.value.code == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and needle in err, (model, err)
        nothing_written(tmp_path)


# ------------------------------------------------------------------ special files, memory bombs


@pytest.mark.slow  # a subprocess of the CLI
def test_train_csv_that_is_a_fifo_is_named_not_read(fx, tmp_path):
    data = tmp_path / "fifo_data"
    data.mkdir()
    os.mkfifo(data / "train.csv")
    done = aees(*flags(tmp_path, data, fx["model"]), timeout=120)
    line = one_line_error(done, "train.csv is not a regular file (a FIFO)")
    assert "has: train.csv" not in line
    nothing_written(tmp_path)


def huge_field_rows() -> dict:
    rows = text_rows(20, 9, NAMES)
    rows["text"][3] = "good " * (MAX_FIELD_CHARS // 5 + 10)
    return rows


def sparse_rows(top: int) -> dict:
    rows = text_rows(20, 9, NAMES)
    rows["label"] = [NAMES.index(v) for v in rows["label"]]
    rows["label"][0] = top
    return rows


@pytest.mark.slow  # a subprocess of the CLI
@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("huge_field", f"has a field longer than {MAX_FIELD_CHARS:,} characters"),
        ("sparse_label", f"makes 5,001 classes (the cap is {MAX_CLASSES:,})"),
        ("huge_label", "makes 1,000,000,000,001 classes"),
    ],
)
def test_memory_bombs_refused_before_allocating(fx, tmp_path, case, needle):
    rows = {
        "huge_field": huge_field_rows,
        "sparse_label": lambda: sparse_rows(5000),
        "huge_label": lambda: sparse_rows(10**12),
    }[case]()
    data = write_text_files(tmp_path / case, {"train": rows})
    done = aees(*flags(tmp_path, data, fx["model"]), timeout=180)
    one_line_error(done, needle)
    nothing_written(tmp_path)


# ------------------------------------------------------------------ crafted tokenized caches


def only_cache(tmp: Path) -> Path:
    (cache,) = [p for p in (tmp / "tok").iterdir() if not p.name.startswith(".")]
    return cache


def craft(cache: Path, case: str) -> None:
    """Change a valid cache the way a hostile or careless hand would."""
    from datasets import Dataset, load_from_disk

    meta_path = cache / METADATA_NAME
    meta = json.loads(meta_path.read_text())
    reseal = case.startswith("sealed_")
    if case == "no_train_split":
        meta["splits"] = ["test"]
    elif case == "no_input_ids":
        train = load_from_disk(str(cache / "train"), keep_in_memory=True).remove_columns(
            ["input_ids"]
        )
        shutil.rmtree(cache / "train")
        train.save_to_disk(str(cache / "train"))
    elif case in ("label_names_300", "sealed_label_names_300"):
        meta["label_names"] = [f"class {i}" for i in range(300)]
    elif case == "sealed_label_out_of_range":
        train = load_from_disk(str(cache / "train"), keep_in_memory=True)
        rows = train.to_dict()
        rows["label"][0] = 7
        shutil.rmtree(cache / "train")
        Dataset.from_dict(rows, features=train.features).save_to_disk(str(cache / "train"))
    elif case == "sealed_token_id_out_of_vocab":
        train = load_from_disk(str(cache / "train"), keep_in_memory=True)
        rows = train.to_dict()
        rows["input_ids"][0][1] = 10**6
        shutil.rmtree(cache / "train")
        Dataset.from_dict(rows, features=train.features).save_to_disk(str(cache / "train"))
    elif case == "metadata_fifo":
        meta_path.unlink()
        os.mkfifo(meta_path)
        return
    else:
        raise ValueError(case)
    if reseal:  # the digest recomputed: only the structural checks can tell
        meta["content_sha256"] = content_digest(cache, meta["splits"], meta)
    meta_path.write_text(json.dumps(meta))


CRAFTED = [
    "no_train_split",
    "no_input_ids",
    "label_names_300",
    "metadata_fifo",
    "sealed_label_names_300",
    "sealed_label_out_of_range",
    "sealed_token_id_out_of_vocab",
]


@pytest.mark.parametrize("case", CRAFTED)
def test_crafted_caches_are_rebuilt_logged_never_trusted(fx, tmp_path, capsys, case):
    argv = flags(tmp_path, fx["csv"], fx["model"], "--pretokenize-only", quiet=False)
    assert cli.main(argv) == 0
    capsys.readouterr()
    cache = only_cache(tmp_path)
    good = json.loads((cache / METADATA_NAME).read_text())
    assert good["label_names"] == list(NAMES)
    assert good["content_sha256"] == content_digest(cache, good["splits"], good)
    assert cli.main(argv) == 0
    assert "already up to date" in capsys.readouterr().out
    craft(cache, case)
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert f"Rebuilding the tokenized dataset {cache}:" in out, out
    assert "already up to date" not in out
    meta = json.loads((cache / METADATA_NAME).read_text())
    assert meta["label_names"] == list(NAMES) and meta["splits"] == ["train"]
    assert meta["content_sha256"] == good["content_sha256"]


@pytest.mark.slow  # a subprocess of the CLI
def test_crafted_label_names_never_reach_the_result(fx, tmp_path):
    assert cli.main(flags(tmp_path, fx["csv"], fx["model"], "--pretokenize-only")) == 0
    cache = only_cache(tmp_path)
    craft(cache, "sealed_label_names_300")  # metadata and digest agree: structure must not
    done = aees(*flags(tmp_path, fx["csv"], fx["model"]))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    config = load_run_result(tmp_path / "run.json").config
    assert config["label_names"] == list(NAMES) and config["num_labels"] == 3


# ------------------------------------------------------------------ no network


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # a subprocess of the CLI
@pytest.mark.parametrize("how", ["unreachable", "HF_HUB_OFFLINE"])
def test_offline_hub_id_fails_fast_naming_local_files_only_and_a_local_dir(fx, tmp_path, how):
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    if how == "HF_HUB_OFFLINE":
        env.update(OFFLINE)
    # no --local-files-only, HF_HUB_OFFLINE unset: a Hub id the cache does not have
    done = aees(*flags(tmp_path, fx["csv"], "org/some-model", local=False), env=env, timeout=120)
    line = one_line_error(done, "cannot load the tokenizer 'org/some-model'")
    assert "--local-files-only" in line and "--model-name DIR" in line, line
    if how == "unreachable":
        assert "unreachable" in line and "Retrying" not in done.stdout, (line, done.stdout)
    nothing_written(tmp_path)
