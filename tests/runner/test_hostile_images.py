"""Hostile input to the image tasks (issue 18: crafted caches, memory bombs, special files,
models the image does not fit, odd state dicts, links out of the data directory), each met
through the CLI: one line, exit 2, no traceback, nothing half-written (docs/protocols.md §4.6)."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from image_fixtures import write_cifar10, write_image_folder
from run_checks import aees, cli_error, one_line_error

from aees import cli
from aees.results import load_run_result

pytest.importorskip("torchvision")
pytest.importorskip("PIL")

SMALL = "shufflenet_v2_x0_5"


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    return None


def image_args(data_dir: Path, out: Path, *extra: str, quiet: bool = True) -> list[str]:
    return [
        "train", "image", "--data-dir", str(data_dir), "--epochs", "1", "--batch-size", "8",
        "--device", "cpu", "--output", str(out), "--model-name", SMALL,
        *(["--quiet"] if quiet else []), *extra,
    ]  # fmt: skip


# ------------------------------------------------------------------------------ crafted caches


def _cache(root: Path) -> Path:
    from aees.runner.tasks.image.formats import load_image_data

    return Path(load_image_data(root, log=lambda _: None).cache["path"])


def _craft(path: Path, kind: str) -> None:
    """Rewrite the cache at ``path`` keeping its fingerprint (so it is not merely stale)."""
    payload = torch.load(path, weights_only=True)
    train = payload["splits"]["train"]
    if kind == "missing key":
        del payload["skipped"]
    elif kind == "labels out of range":
        train["labels"] = torch.full_like(train["labels"], 7)
    elif kind == "float pixels":
        train["images"] = train["images"].float()
    elif kind == "changed pixels":
        train["images"] = train["images"].clone().fill_(9)
    elif kind == "wrong shape":
        train["images"] = train["images"][:, :, :, 0].contiguous()
    elif kind == "no train split":
        del payload["splits"]["train"]
    elif kind == "one image repeated":  # stride 0: 10**6 images claimed over one
        train["images"] = train["images"][:1].expand(10**6, -1, -1, -1)
        train["labels"] = train["labels"][:1].expand(10**6)
    torch.save(payload, path)


def _check_rebuilt(path: Path, out: Path, reason: str) -> None:
    from aees.runner.tasks.image.cache import content_digest

    rebuilt = torch.load(path, weights_only=True)
    assert rebuilt["content_sha256"] == content_digest(rebuilt)
    assert int(rebuilt["splits"]["train"]["labels"].max()) < 3
    cache = load_run_result(out).config["image_cache"]
    assert cache["hit"] is False and reason in cache["rejected"]


@pytest.mark.slow
def test_a_crafted_cache_is_rebuilt_and_logged(tmp_path):
    """Labels outside the classes gave ``IndexError: Target 7 is out of bounds``."""
    root = tmp_path / "pets"
    write_image_folder(root, per_class=6, size=16)
    path = _cache(root)
    _craft(path, "labels out of range")
    out = tmp_path / "r.json"
    done = aees(*image_args(root, out, quiet=False))
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    logged = [line for line in done.stdout.splitlines() if "rejected" in line]
    assert len(logged) == 1 and str(path) in logged[0] and "outside [0, 3)" in logged[0]
    _check_rebuilt(path, out, "outside [0, 3)")


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("missing key", "missing 'skipped'"),
        ("float pixels", "torch.float32"),
        ("changed pixels", "SHA-256"),
        ("wrong shape", "not uint8 N x (1|3) x H x W"),
        ("no train split", "splits [], not ['train']"),
        ("one image repeated", "not contiguous"),
    ],
)
def test_every_crafted_cache_is_rebuilt(tmp_path, capsys, kind, reason):
    """Each gave a traceback (``KeyError: 'skipped'``, ``IndexError``) or was used silently."""
    root = tmp_path / "pets"
    write_image_folder(root, per_class=6, size=16)
    path = _cache(root)
    _craft(path, kind)
    out = tmp_path / "r.json"
    assert cli.main(image_args(root, out)) == 0
    _check_rebuilt(path, out, reason)


def test_the_cache_digest_is_checked_on_every_read(tmp_path):
    """A cache read back unchanged is a hit; the same cache with one pixel changed is not."""
    from aees.runner.tasks.image.formats import load_image_data

    root = tmp_path / "pets"
    write_image_folder(root, per_class=4, size=8)
    path = _cache(root)
    assert load_image_data(root, log=lambda _: None).cache["hit"]
    payload = torch.load(path, weights_only=True)
    payload["splits"]["train"]["images"][0, 0, 0, 0] ^= 1
    torch.save(payload, path)
    lines: list[str] = []
    again = load_image_data(root, log=lines.append)
    assert not again.cache["hit"] and "SHA-256" in again.cache["rejected"]
    assert len(lines) == 1 and "rebuilding" in lines[0]


# ------------------------------------------------------------------------------ memory bombs


class _Call:
    """Pickles as ``func(*args)``: how a crafted file reaches an allowed global."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _bomb(kind: str):
    import numpy as np

    if kind == "claims 10**9 images":  # 3 TB: refused before numpy is asked for it
        from numpy._core.multiarray import _reconstruct

        return _Call(_reconstruct, np.ndarray, (10**9, 3072), np.dtype("u1"))
    return _Call(bytes, 10**15)  # a petabyte of zeros through builtins.bytes


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "needle"),
    [("claims 10**9 images", "larger than the whole file"), ("bytes(10**15)", "bytes(...)")],
)
def test_cifar10_memory_bombs_are_refused_before_allocating(tmp_path, kind, needle):
    write_cifar10(tmp_path / "data")
    batch = tmp_path / "data" / "cifar-10-batches-py" / "data_batch_1"
    with batch.open("wb") as handle:  # protocol 4: builtins.bytes, as a Python 3 file names it
        pickle.dump({b"data": _bomb(kind), b"labels": [0] * 4}, handle, protocol=4)
    out = tmp_path / "r.json"
    line = one_line_error(aees(*image_args(tmp_path / "data", out)), "--data-dir", str(batch))
    assert needle in line
    assert not out.exists()


@pytest.mark.slow
def test_cifar100_memory_bomb_is_refused(tmp_path):
    """``aees train cifar100``: a batch claiming 10**9 images (a MemoryError traceback)."""
    from cifar_fixture import write_cifar100

    write_cifar100(tmp_path / "data", 16, 8)
    train = tmp_path / "data" / "cifar-100-python" / "train"
    with train.open("wb") as handle:
        entry = {b"data": _bomb("claims 10**9 images"), b"fine_labels": [0], b"coarse_labels": [0]}
        pickle.dump(entry, handle, protocol=2)
    out = tmp_path / "r.json"
    argv = ["train", "cifar100", "--data-dir", str(tmp_path / "data"), "--device", "cpu",
            "--epochs", "1", "--quiet", "--output", str(out)]  # fmt: skip
    line = one_line_error(aees(*argv), "--data-dir", str(train), "1000000000 x 3072")
    assert "larger than the whole file" in line and not out.exists()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fifo", "link to /dev/zero"])
def test_label_noise_map_must_be_a_regular_file(tmp_path, kind):
    """A FIFO hung for ever; a link to /dev/zero grew to gigabytes before it was killed."""
    root = tmp_path / "pets"
    write_image_folder(root, per_class=4, size=8)
    noise_map = tmp_path / "map.json"
    if kind == "fifo":
        os.mkfifo(noise_map)
    else:
        noise_map.symlink_to("/dev/zero")
    out = tmp_path / "r.json"
    argv = image_args(root, out, "--label-noise-type", "asymmetric", "--label-noise-rate", "0.2",
                      "--label-noise-map", str(noise_map))  # fmt: skip
    line = one_line_error(aees(*argv, timeout=60), "--label-noise-map", str(noise_map))
    assert "not a regular file" in line and not out.exists()


def test_label_noise_map_size_cap_and_nesting(tmp_path, capsys, monkeypatch):
    import aees.runner.tasks.image.noise_map as noise_map_module

    root = tmp_path / "pets"
    write_image_folder(root, per_class=4, size=8)
    noise_map = tmp_path / "map.json"
    noise = ["--label-noise-type", "asymmetric", "--label-noise-rate", "0.2"]
    noise_map.write_text("[" * 100_000)  # json's recursion limit
    argv = image_args(root, tmp_path / "r.json", *noise, "--label-noise-map", str(noise_map))
    cli_error(capsys, argv, "--label-noise-map", "not a JSON file")
    noise_map.write_text(json.dumps({"cat": "dog", "pad": "x" * 64}))
    monkeypatch.setattr(noise_map_module, "MAX_NOISE_MAP_BYTES", 32)
    cli_error(capsys, argv, "--label-noise-map", "cap")


def test_class_count_over_the_limit_is_refused_with_the_number(tmp_path, capsys, monkeypatch):
    import aees.runner.tasks.image.formats as images

    root = tmp_path / "pets"
    write_image_folder(root, classes=("a", "b", "c"), per_class=2, size=8)
    monkeypatch.setattr(images, "MAX_CLASSES", 2)
    cli_error(capsys, image_args(root, tmp_path / "r.json"), "3 class folders", "2 supported")


# ------------------------------------------------------------------------------ models, state dicts


@pytest.mark.slow
def test_a_model_the_image_does_not_fit_names_the_smallest_size(tmp_path):
    """inception_v3 at 16 x 16: ``RuntimeError: ... Kernel size can't be greater``."""
    root = tmp_path / "pets"
    write_image_folder(root, per_class=4, size=16)
    out = tmp_path / "r.json"
    done = aees(*image_args(root, out, "--model-name", "inception_v3"))
    one_line_error(done, "--model-name inception_v3", "16x16", "75x75")
    assert not out.exists()


@pytest.mark.parametrize(
    ("model", "needles"),
    [
        ("squeezenet1_0", ("16x16", "21x21")),
        ("vit_b_32", ("patch size 32", "--image-size 32")),
    ],
)
def test_other_models_the_image_does_not_fit(tmp_path, capsys, model, needles):
    root = tmp_path / "pets"
    write_image_folder(root, per_class=4, size=16)
    argv = image_args(root, tmp_path / "r.json", "--model-name", model)
    cli_error(capsys, argv, f"--model-name {model}", *needles)


def test_googlenet_trains_without_its_auxiliary_heads(tmp_path):
    """Its training-mode output was a tuple: ``cross_entropy_loss(): ... not GoogLeNetOutputs``."""
    root = tmp_path / "pets"
    write_image_folder(root, per_class=4, size=16)
    out = tmp_path / "r.json"
    assert cli.main(image_args(root, out, "--model-name", "googlenet")) == 0
    assert load_run_result(out).model_name == "googlenet"


@pytest.mark.slow
def test_pretrained_state_dict_with_non_string_keys(tmp_path):
    """``AttributeError: 'int' object has no attribute 'removeprefix'``."""
    root = tmp_path / "pets"
    write_image_folder(root, per_class=4, size=8)
    state = tmp_path / "odd.pt"
    torch.save({0: torch.zeros(3), "fc.bias": torch.zeros(3)}, state)
    out = tmp_path / "r.json"
    done = aees(*image_args(root, out, "--pretrained", str(state)))
    one_line_error(done, "--pretrained", str(state), "int key '0'")
    assert not out.exists()


# ------------------------------------------------------------------------------ links


@pytest.mark.slow
def test_a_class_folder_linked_outside_the_data_dir_is_logged(tmp_path):
    root = tmp_path / "pets"
    write_image_folder(root, classes=("cat",), per_class=4, size=8)
    write_image_folder(tmp_path / "elsewhere", classes=("dog",), per_class=4, size=8, seed=1)
    (root / "train" / "dog").symlink_to(tmp_path / "elsewhere" / "train" / "dog")
    out = tmp_path / "r.json"
    done = aees(*image_args(root, out, quiet=False))
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stdout.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and "train/dog ->" in warned[0], done.stdout
    assert str(tmp_path / "elsewhere" / "train" / "dog") in warned[0]
    linked = load_run_result(out).config["linked_outside_data_dir"]
    assert linked == [f"train/dog -> {tmp_path / 'elsewhere' / 'train' / 'dog'}"]


def test_links_inside_the_data_dir_are_not_logged(tmp_path):
    from aees.runner.tasks.image.formats import load_image_data

    root = tmp_path / "pets"
    write_image_folder(root, per_class=4, size=8)
    (root / "train" / "cat" / "extra.png").symlink_to(root / "train" / "dog" / "000.png")
    lines: list[str] = []
    data = load_image_data(root, log=lines.append)
    assert data.linked_outside == [] and lines == []
    outside = tmp_path / "out.png"
    outside.write_bytes((root / "train" / "dog" / "001.png").read_bytes())
    (root / "train" / "cat" / "far.png").symlink_to(outside)
    data = load_image_data(root, log=lines.append)
    assert data.linked_outside == [f"train/cat/far.png -> {outside}"]
    assert len(lines) == 1 and lines[0].startswith("warning:")
