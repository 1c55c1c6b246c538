"""``aees train image`` on real-format fixtures: PNG image folders (Pillow) and the MNIST idx files
torchvision reads with ``download=False`` (docs/protocols.md §4.6)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from image_fixtures import write_cifar10, write_image_folder, write_mnist_raw
from run_checks import check_consistent

from aees import cli
from aees.results import load_run_result
from aees.runner.config import UserError
from aees.runner.engine import CHECKPOINT_NAME

pytest.importorskip("torchvision")
pytest.importorskip("PIL")

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
SMALL = "shufflenet_v2_x0_5"  # ~0.35 M parameters: the cheapest torchvision model at 16 x 16
DIAGNOSTICS = (
    "train_all_accuracy",
    "train_clean_accuracy",
    "train_corrupted_accuracy_vs_noisy_labels",
    "train_corrupted_accuracy_vs_clean_labels",
)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    return None


def train_args(data_dir: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "image", "--data-dir", str(data_dir), "--epochs", "1", "--batch-size", "8",
        "--device", "cpu", "--quiet", "--output", str(out), *extra,
    ]  # fmt: skip


def pil_mean(files: list[Path]) -> list[float]:
    """Per-channel mean of the files read independently of the task (PIL -> floats)."""
    from PIL import Image

    sums, count = [0.0, 0.0, 0.0], 0
    for path in files:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
            for c, band in enumerate(rgb.split()):
                sums[c] += sum(band.tobytes()) / 255
            count += rgb.size[0] * rgb.size[1]
    return [s / count for s in sums]


def test_image_folder_aees_with_mapped_noise_records_the_data(tmp_path):
    root = tmp_path / "pets"
    files = write_image_folder(root, per_class=6, size=16)
    write_image_folder(root, per_class=2, size=16, split="val", seed=1)
    write_image_folder(root, per_class=2, size=16, split="test", seed=2)
    (root / "train" / "cat" / "broken.png").write_bytes(b"not an image")
    noise_map = tmp_path / "map.json"
    noise_map.write_text(json.dumps({"cat": "dog", "2": 0}))
    out = tmp_path / "r.json"
    argv = train_args(
        root, out, "--model-name", SMALL, "--control-mode", "adaptive", "--lr-candidates",
        "0.5,1", "--episode-length", "1", "--label-noise-type", "asymmetric",
        "--label-noise-rate", "0.5", "--label-noise-map", str(noise_map),
        "--max-bad-images", "0.1", "--lr-scheduler", "cosine",
    )  # fmt: skip
    assert cli.main(argv) == 0
    result = check_consistent(out, 1)
    assert (result.task_name, result.dataset_name, result.model_name) == ("image", "pets", SMALL)
    config = result.config
    assert config["class_names"] == ["cat", "dog", "fox"] and config["num_classes"] == 3
    assert config["split"] == {"val_source": "val/", "train": 18, "val": 6, "test": 6}
    assert config["skipped_images"] == {"count": 1, "files": ["train/cat/broken.png"]}
    assert config["num_image_files"] == 31 and config["data_pipeline"] == "device-resident"
    assert config["normalization"]["mean"] == pytest.approx(pil_mean(files), abs=1e-9)
    assert config["image_shape"] == [3, 16, 16]
    # cat and fox examples are eligible (12); half of them change: cat -> dog, fox -> cat
    noise = result.diagnostics["label_noise"]
    assert noise["protocol"] == "mapped_asymmetric" and noise["count"] == 6
    assert noise["mapping"] == {"cat": "dog", "fox": "cat"}
    final = result.diagnostics["final_subset_accuracies"]
    assert all(0.0 <= final[key] <= 1.0 for key in DIAGNOSTICS)
    assert result.episode_logs is not None and result.episode_logs["episode_rewards"]


def test_cache_is_reused_and_rebuilt_when_files_change(tmp_path):
    from aees.runner.tasks.image.formats import load_image_data

    root = tmp_path / "shapes"
    write_image_folder(root, classes=("a", "b"), per_class=3, size=12)
    (root / "train" / "a" / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    first = load_image_data(root, max_bad_fraction=0.5, log=lambda _: None)
    again = load_image_data(root, max_bad_fraction=0.5, log=lambda _: None)
    assert not first.cache["hit"] and again.cache["hit"]
    assert again.cache["fingerprint"] == first.cache["fingerprint"]
    assert again.skipped == ["train/a/bad.jpg"] and again.num_files == 7
    assert torch.equal(first.splits["train"][0], again.splits["train"][0])
    assert first.splits["train"][1].tolist() == [0, 0, 0, 1, 1, 1]
    # the cache still refuses above the threshold, as decoding does
    with pytest.raises(UserError, match="1 of 7 image files"):
        load_image_data(root, max_bad_fraction=0.1, log=lambda _: None)
    # a new file, then a rewritten file, each rebuild the cache (same cache path)
    write_image_folder(root, classes=("a", "b"), per_class=4, size=12, seed=5)
    grown = load_image_data(root, max_bad_fraction=0.5, log=lambda _: None)
    assert not grown.cache["hit"] and grown.cache["path"] == first.cache["path"]
    assert len(grown.splits["train"][1]) == 8
    target = root / "train" / "b" / "000.png"
    write_image_folder(root, classes=("a", "b"), per_class=1, size=12, seed=9)
    os.utime(target, ns=(1, 1))
    changed = load_image_data(root, max_bad_fraction=0.5, log=lambda _: None)
    assert not changed.cache["hit"]
    assert not torch.equal(changed.splits["train"][0], grown.splits["train"][0])
    # --image-size is part of the key: another file, resized images
    small = load_image_data(root, image_size=8, max_bad_fraction=0.5, log=lambda _: None)
    assert small.cache["path"] != first.cache["path"]
    assert tuple(small.splits["train"][0].shape[1:]) == (3, 8, 8)
    # the cache holds tensors and strings only: it loads with weights_only=True
    payload = torch.load(first.cache["path"], weights_only=True)
    assert payload["class_names"] == ["a", "b"]


def test_mnist_raw_files_stream_with_symmetric_noise(tmp_path):
    import torchvision

    from aees.runner.tasks.image.formats import load_image_data

    write_mnist_raw(tmp_path / "tv", n_train=40, n_test=10)
    data = load_image_data(tmp_path / "tv", log=lambda _: None)
    reference = torchvision.datasets.MNIST(str(tmp_path / "tv"), train=True, download=False)
    assert data.format == "mnist" and data.name == "MNIST"
    assert data.class_names == tuple(reference.classes)
    assert torch.equal(data.splits["train"][0][:, 0], reference.data)
    assert torch.equal(data.splits["test"][1], torch.arange(10) % 10)
    out = tmp_path / "m.json"
    argv = train_args(
        tmp_path / "tv", out, "--model-name", SMALL, "--memory-budget-mb", "0",
        "--val-split", "8", "--image-size", "16", "--label-noise-type", "symmetric",
        "--label-noise-rate", "0.25",
    )  # fmt: skip
    assert cli.main(argv) == 0
    result = check_consistent(out, 1)
    assert (result.dataset_name, result.config["dataset_format"]) == ("MNIST", "mnist")
    assert result.config["data_pipeline"] == "streaming"
    assert result.config["split"] == {"val_source": "holdout", "seed": 0, "train": 32, "val": 8,
                                      "test": 10}  # fmt: skip
    assert (
        result.config["image_shape"] == [1, 16, 16] and result.config["model_input_channels"] == 3
    )
    assert result.diagnostics["label_noise"]["count"] == 8
    assert all(k in result.diagnostics["final_subset_accuracies"] for k in DIAGNOSTICS)


def test_grayscale_28px_folder_trains_resnet18_with_cifar_stem(tmp_path):
    root = tmp_path / "digits28"
    write_image_folder(root, classes=("0", "1"), per_class=5, size=28, mode="L")
    out = tmp_path / "g.json"
    argv = train_args(root, out, "--model-name", "resnet18", "--cifar-stem", "--val-split", "2")
    argv += ["--label-noise-type", "asymmetric", "--label-noise-rate", "0.25"]
    # schedule-free recomputes BatchNorm statistics on the task's un-augmented training data
    argv += ["--optimizer", "AdamWScheduleFree"]
    pytest.importorskip("schedulefree")
    assert cli.main(argv) == 0
    result = check_consistent(out, 1, test_split=False)
    assert result.config["optimizer"] == "AdamWScheduleFree"
    assert result.config["image_shape"] == [1, 28, 28]
    assert len(result.config["normalization"]["std"]) == 1  # one channel's statistics
    assert result.diagnostics["label_noise"]["protocol"] == "cyclic_asymmetric"
    assert result.diagnostics["label_noise"]["mapping"] == "c -> (c + 1) mod C"
    # the stem keeps 28 x 28 at conv1 (a stride-2 7x7 stem would halve it)
    from aees.runner.tasks.image.models import build_model

    model = build_model("resnet18", 2, cifar_stem=True)
    assert model.conv1.stride == (1, 1) and model.conv1.kernel_size == (3, 3)
    assert isinstance(model.maxpool, torch.nn.Identity)


def test_pretrained_state_dict_reinitialises_a_head_of_another_shape_and_timm(tmp_path):
    from aees.runner.tasks.image.models import build_model, load_pretrained

    source = build_model(SMALL, 5)
    path = tmp_path / "weights.pt"
    torch.save(source.state_dict(), path)
    model = build_model(SMALL, 3)
    fresh_head = model.fc.weight.detach().clone()
    report = load_pretrained(model, str(path))
    assert report["reinitialised"] == ["fc.bias", "fc.weight"]
    assert torch.equal(model.conv1[0].weight, source.conv1[0].weight)
    assert torch.equal(model.fc.weight, fresh_head)
    torch.save({"head.weight": torch.zeros(2, 2)}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="no tensor matches"):
        load_pretrained(model, str(tmp_path / "other.pt"))
    (tmp_path / "pickled.pt").write_bytes(b"\x80\x02K\x01.")  # a bare pickle, not a state_dict
    with pytest.raises(UserError, match="--pretrained"):
        load_pretrained(model, str(tmp_path / "pickled.pt"))
    pytest.importorskip("timm")
    timm_model = build_model("timm:test_resnet", 4)
    assert timm_model(torch.zeros(2, 3, 16, 16)).shape == (2, 4)


def test_bad_inputs_are_one_line_exit_2_before_training(tmp_path, capsys):
    good = tmp_path / "good"
    write_image_folder(good, classes=("a", "b"), per_class=2, size=8)
    empty_class = tmp_path / "empty_class"
    write_image_folder(empty_class, classes=("a", "b"), per_class=2, size=8)
    (empty_class / "train" / "c").mkdir()
    single = tmp_path / "single"
    write_image_folder(single, classes=("only",), per_class=2, size=8)
    corrupt = tmp_path / "corrupt"
    write_image_folder(corrupt, classes=("a", "b"), per_class=2, size=8)
    (corrupt / "train" / "a" / "x.png").write_bytes(b"junk")
    (tmp_path / "empty").mkdir()
    mixed = tmp_path / "mixed"
    write_image_folder(mixed, classes=("a",), per_class=2, size=8)
    write_image_folder(mixed, classes=("a", "b"), per_class=1, size=12, seed=3, suffix=".bmp")
    with_val = tmp_path / "with_val"
    write_image_folder(with_val, classes=("a", "b"), per_class=2, size=8)
    write_image_folder(with_val, classes=("a", "b"), per_class=1, size=8, split="val")
    bad_map = tmp_path / "bad_map.json"
    bad_map.write_text(json.dumps({"a": "zebra"}))
    not_json = tmp_path / "not_json.json"
    not_json.write_text("{a: b")
    odd = tmp_path / "odd"  # 9 images: a last batch of 1 at --batch-size 4
    write_image_folder(odd, classes=("a", "b"), per_class={"a": 5, "b": 4}, size=16)
    write_image_folder(odd, classes=("a", "b"), per_class=1, size=16, split="val")
    asym = ["--label-noise-type", "asymmetric", "--label-noise-rate", "0.5"]
    cases = [
        (odd, ["--model-name", SMALL, "--batch-size", "4"], "holds 1 of 9 images, and BatchNorm"),
        (tmp_path / "missing", [], "no such directory"),
        (tmp_path / "empty", [], "is empty"),
        (empty_class, [], "train/c/ holds no image files"),
        (single, [], "single class folder ('only')"),
        (corrupt, [], "1 of 5 image files cannot be decoded"),
        (mixed, [], "images have different sizes (8x8, 12x12"),
        (with_val, ["--val-split", "1"], "has its own val/ split"),
        (good, ["--model-name", "resnet181"], "closest: resnet18"),
        (good, ["--model-name", "timm:resnet_18"], "closest: timm:resnet18"),
        (good, ["--dataset-format", "mnist"], "holds no MNIST/raw"),
        (good, ["--label-noise-map", str(bad_map), *asym], "'zebra' is neither a class name"),
        (good, ["--label-noise-map", str(not_json), *asym], "--label-noise-map"),
        (good, ["--model-name", "mobilenet_v3_small", "--cifar-stem"], "ResNet-style stem"),
    ]
    for data_dir, extra, message in cases:
        out = tmp_path / "never.json"
        try:
            code = cli.main(train_args(data_dir, out, *extra))
        except SystemExit as exc:  # parser.error: the flag checks
            code = exc.code
        err = capsys.readouterr().err.strip()
        assert code == 2, (data_dir, extra, err)
        assert len(err.splitlines()) == 1 and message in err, (message, err)
        assert err.startswith("aees train image: error: ") and "Traceback" not in err
        assert not out.exists()


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    import threading

    from aees.runner.tasks.image.formats import load_image_data

    root = tmp_path / "pets"
    write_image_folder(root, per_class=4, size=8)
    load_image_data(root, log=lambda _: None)  # the cache exists before either run reads it
    argv = train_args(root, tmp_path / "unused.json")[:-2]
    argv += ["--epochs", "2", "--model-name", SMALL, "--control-mode", "adaptive"]
    argv += ["--lr-candidates", "0.5,1", "--episode-length", "2", "--val-split", "2"]
    ckpt = tmp_path / "ckpt"
    killed = tmp_path / "resumed.json"

    def start(*extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "aees.cli", *argv, "--output", str(killed),
             "--checkpoint-dir", str(ckpt), *extra],
            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    proc = start()
    outcome: dict[str, object] = {}

    def kill_after_first_checkpoint() -> None:
        deadline = time.monotonic() + 240
        while not (ckpt / CHECKPOINT_NAME).exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                outcome["error"] = proc.stderr.read() if proc.stderr else "timeout"
                return
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    watcher = threading.Thread(target=kill_after_first_checkpoint)
    watcher.start()
    # the uninterrupted reference runs in this process meanwhile
    assert cli.main([*argv, "--output", str(tmp_path / "reference.json")]) == 0
    watcher.join()
    assert "error" not in outcome, outcome
    if killed.exists():  # pragma: no cover - the run outpaced the kill
        pytest.skip("the run finished before it could be killed")
    resumed = start("--resume")
    assert resumed.wait(timeout=240) == 0, resumed.stderr.read() if resumed.stderr else ""
    a = load_run_result(tmp_path / "reference.json").to_dict()
    b = load_run_result(killed).to_dict()
    assert b["provenance"].get("resumed") is True
    for key in ("train_losses", "val_accuracies", "episode_logs", "best_val_accuracy"):
        assert a[key] == b[key], key
    assert a["config"]["class_names"] == b["config"]["class_names"]


def test_cyclic_and_mapped_asymmetric_noise_follow_their_maps():
    import random

    from aees.runner.label_noise import cyclic_asymmetric_noise, mapped_asymmetric_noise
    from aees.runner.tasks.image.noise_map import parse_label_noise_map

    labels = [i % 4 for i in range(40)]
    cyclic = cyclic_asymmetric_noise(labels, 0.25, seed=3, num_classes=4)
    assert cyclic.count == 10 and cyclic.protocol == "cyclic_asymmetric"
    pairs = zip(cyclic.corrupted_indices, cyclic.noisy_labels, strict=True)
    assert all(new == (labels[i] + 1) % 4 for i, new in pairs)
    table = parse_label_noise_map({"b": "a", "3": 0}, ("a", "b", "c", "d"))
    assert table == {1: 0, 3: 0}
    mapped = mapped_asymmetric_noise(labels, 0.5, seed=3, mapping=table, num_classes=4)
    eligible = [i for i, y in enumerate(labels) if y in table]
    order = list(eligible)
    random.Random(3).shuffle(order)
    assert list(mapped.corrupted_indices) == order[:10]  # the seeded shuffle over eligible ones
    assert set(mapped.noisy_labels) == {0} and mapped.noise_type == "asymmetric"
    for bad, message in (([], "JSON object"), ({}, "maps no class"), ({"a": "a"}, "itself"),
                         ({"a": 9}, "neither a class name")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            parse_label_noise_map(bad, ("a", "b"))


def test_cifar10_pickles_are_read_as_data_only(tmp_path):
    from aees.runner.tasks.image.formats import load_image_data

    write_cifar10(tmp_path / "c10", per_batch=4, n_test=3)
    data = load_image_data(tmp_path / "c10", log=lambda _: None)
    assert (data.format, data.name) == ("cifar10", "CIFAR-10")
    assert data.class_names == tuple(f"class{i}" for i in range(10))
    assert tuple(data.splits["train"][0].shape) == (20, 3, 32, 32)
    assert len(data.splits["test"][1]) == 3
    # a pickle that calls anything beyond arrays and containers is refused, not run
    evil = tmp_path / "evil"
    write_cifar10(evil)
    (evil / "cifar-10-batches-py" / "test_batch").write_bytes(
        b"\x80\x02cposix\nsystem\nX\x04\x00\x00\x00trueq\x00\x85R."
    )
    with pytest.raises(UserError, match="refusing CIFAR-10 file"):
        load_image_data(evil, log=lambda _: None)


def test_a_last_batch_of_one_is_refused_only_where_batchnorm_would_fail():
    """A 16 x 16 shufflenet ends in 1 x 1 BatchNorm inputs (one value per channel at batch 1);
    a CIFAR-stem ResNet-18 keeps 2 x 2 there and trains on a last batch of 1 (torch allows it)."""
    from aees.runner.tasks.image.models import build_model, check_model

    def check(model, n_train):
        check_model(model, "m", batch_size=4, n_train=n_train, shape=(3, 16, 16), num_classes=2)

    with pytest.raises(UserError, match="BatchNorm layer"):
        check(build_model(SMALL, 2, image_size=16), 9)
    resnet = build_model("resnet18", 2, cifar_stem=True, image_size=16)
    check(resnet, 9)  # no error
    check(build_model(SMALL, 2, image_size=16), 10)  # last batch 2
    assert resnet.training  # the probe leaves the model's mode as it was


def test_the_image_cache_is_never_written_through_a_symbolic_link(tmp_path):
    """A shared data directory may hold links: ``.aees-cache`` linked to another directory, or
    a cache file linked to another file. Neither target is written; the run decodes anyway."""
    from aees.runner.tasks.image.formats import load_image_data

    outside = tmp_path / "outside"
    outside.mkdir()
    linked_dir = tmp_path / "linked_dir"
    write_image_folder(linked_dir, classes=("a", "b"), per_class=2, size=8)
    (linked_dir / ".aees-cache").symlink_to(outside, target_is_directory=True)
    lines: list[str] = []
    data = load_image_data(linked_dir, log=lines.append)
    assert data.cache["written"] is False and list(outside.iterdir()) == []
    assert "is a symbolic link" in lines[0]

    linked_file = tmp_path / "linked_file"
    write_image_folder(linked_file, classes=("a", "b"), per_class=2, size=8)
    first = load_image_data(linked_file, log=lambda _: None)  # writes the real cache file
    cache = Path(first.cache["path"])
    cache.unlink()
    victim = outside / "precious.txt"
    victim.write_text("keep me")
    cache.symlink_to(victim)
    (linked_file / "train" / "a" / "000.png").touch()  # a new mtime: the cache is stale
    again = load_image_data(linked_file, log=lambda _: None)
    assert again.cache["written"] is False and victim.read_text() == "keep me"
    assert cache.is_symlink()


def test_the_image_task_keeps_no_per_run_state_and_checks_its_options_once(tmp_path):
    """Issue 20: the registry's task object is not changed by a run (the data's name reaches the
    result through the TaskSetup), and RunConfig.for_task checks the task's own options."""
    from aees.runner.config import ConfigError, RunConfig
    from aees.runner.tasks import get_task

    root = tmp_path / "pets"
    write_image_folder(root, per_class=4, size=16)
    out = tmp_path / "r.json"
    assert cli.main(train_args(root, out, "--model-name", SMALL, "--val-split", "2")) == 0
    assert load_run_result(out).dataset_name == "pets"
    task = get_task("image")
    assert (task.dataset_name, task.model_name) == ("image-folder", "resnet18")

    config = RunConfig.for_task("image", data_dir=str(root), model_name=SMALL)
    assert config.task_options["augment"] == "crop-flip"
    assert config.task_options["memory_budget_mb"] == 4096.0
    for bad, text in (
        ({"max_bad_images": 2.0}, "--max-bad-images must be in [0, 1], got 2"),
        ({"augment": "rotate"}, "--augment must be one of crop-flip, flip, none"),
        ({"data_dir": None}, "--data-dir is required for the image task"),
    ):
        values = {"data_dir": str(root), "model_name": SMALL, **bad}
        with pytest.raises(ConfigError, match=re.escape(text)):
            RunConfig.for_task("image", **values)
