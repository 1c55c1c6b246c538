"""CIFAR-100 loading (real pickle layout), device augmentation, normalisation, loaders, model."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cifar_fixture import write_cifar100
from torch import nn

from aees.runner.tasks.cifar.data import (
    CIFAR100_DIRNAME,
    CIFAR100_MEAN,
    CIFAR100_STD,
    load_cifar100,
)
from aees.runner.tasks.cifar.task import cifar100_loaders
from aees.runner.tasks.image.models import cifar_resnet18
from aees.runner.tasks.image.pipeline import (
    DeviceAugment,
    InMemoryLoader,
    Normalize,
    holdout_split,
    normalize,
)

N_TRAIN, N_TEST = 20, 10


@pytest.fixture()
def cifar_dir(tmp_path: Path) -> tuple[Path, dict, dict]:
    """A tiny dataset in the exact ``cifar-100-python`` layout torchvision downloads."""
    train, test = write_cifar100(tmp_path / "data", N_TRAIN, N_TEST)
    return tmp_path / "data", train, test


# ------------------------------------------------------------------------------- loading


@pytest.mark.parametrize("inner", [False, True])
def test_load_real_layout(cifar_dir, inner) -> None:
    parent, train, test = cifar_dir
    data = load_cifar100(parent / CIFAR100_DIRNAME if inner else parent)
    assert data["root"] == parent / CIFAR100_DIRNAME
    for split, entry, n in (("train", train, N_TRAIN), ("test", test, N_TEST)):
        images = data[f"{split}_images"]
        assert images.shape == (n, 3, 32, 32) and images.dtype == torch.uint8
        assert data[f"{split}_labels"].dtype == torch.int64
        assert data[f"{split}_labels"].tolist() == entry[b"fine_labels"]
        assert data[f"{split}_coarse_labels"].tolist() == entry[b"coarse_labels"]
        # Channel-major rows: the first 1024 values are the red plane, row-major.
        raw = entry[b"data"]
        assert images[3, 0].flatten().tolist() == raw[3, :1024].tolist()
        assert images[3, 2, 5, 7].item() == raw[3, 2048 + 5 * 32 + 7]
    assert data["class_names"][:2] == ("fine0", "fine1") and len(data["class_names"]) == 100
    assert len(data["coarse_class_names"]) == 20


@pytest.mark.parametrize("inner", [False, True])
def test_missing_dataset_names_path_and_command(tmp_path, inner) -> None:
    target = tmp_path / "nowhere"
    given = target / CIFAR100_DIRNAME if inner else target
    with pytest.raises(FileNotFoundError) as info:
        load_cifar100(given)
    message = str(info.value)
    assert "\n" not in message
    assert str(target / CIFAR100_DIRNAME) in message
    fetch = f"torchvision.datasets.CIFAR100({str(target)!r}, download=True)"
    assert f'python -c "import torchvision; {fetch}"' in message


def test_partially_missing_files(cifar_dir) -> None:
    parent, _, _ = cifar_dir
    (parent / CIFAR100_DIRNAME / "meta").unlink()
    with pytest.raises(FileNotFoundError, match="missing: meta"):
        load_cifar100(parent)


def test_truncated_file_is_a_clear_error(cifar_dir) -> None:
    parent, _, _ = cifar_dir
    path = parent / CIFAR100_DIRNAME / "train"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"corrupt CIFAR-100 file .*train.*cannot unpickle"):
        load_cifar100(parent)


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda e: e.__setitem__(b"data", e[b"data"][:, :100]), "N x 3072 uint8"),
        (lambda e: e.__setitem__(b"data", e[b"data"].astype(np.float32)), "N x 3072 uint8"),
        (lambda e: e.__setitem__(b"fine_labels", e[b"fine_labels"][:-1]), "has 19 entries"),
        (lambda e: e.__setitem__(b"fine_labels", [100] * N_TRAIN), "outside"),
        (lambda e: e.pop(b"coarse_labels"), "missing key 'coarse_labels'"),
    ],
)
def test_malformed_split_is_a_clear_error(cifar_dir, mutate, pattern) -> None:
    parent, train, _ = cifar_dir
    entry = dict(train)
    mutate(entry)
    with (parent / CIFAR100_DIRNAME / "train").open("wb") as handle:
        pickle.dump(entry, handle, protocol=2)
    with pytest.raises(ValueError, match=pattern):
        load_cifar100(parent)


def test_wrong_class_name_count(cifar_dir) -> None:
    parent, _, _ = cifar_dir
    with (parent / CIFAR100_DIRNAME / "meta").open("wb") as handle:
        pickle.dump({b"fine_label_names": [b"a"] * 10}, handle, protocol=2)
    with pytest.raises(ValueError, match="expected 100"):
        load_cifar100(parent)


def test_protocol_5_files_with_array_labels_still_load(cifar_dir) -> None:
    """The tightened unpickler keeps what re-pickling tools write: protocol 5 (arrays rebuilt
    from a buffer) and labels stored as an int64 array rather than a list."""
    parent, train, _ = cifar_dir
    path = parent / "cifar-100-python" / "train"
    entry = dict(train)
    entry[b"fine_labels"] = np.asarray(train[b"fine_labels"], dtype=np.int64)
    with path.open("wb") as handle:
        pickle.dump(entry, handle, protocol=5)
    data = load_cifar100(parent)
    assert data["train_labels"].tolist() == train[b"fine_labels"]
    assert torch.equal(data["train_images"].reshape(N_TRAIN, -1), torch.as_tensor(train[b"data"]))


class _Call:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize(
    ("evil", "needle"),
    [
        (np.empty(3, dtype=object), "refusing dtype"),  # numpy allocates objects before counting
        (_Call(np.ndarray, (10**9, 3072)), "call of numpy.ndarray"),  # an argument only
        (_Call(list, range(3)), "builtins.list"),  # containers need no global
    ],
)
def test_the_unpickler_builds_plain_arrays_only(cifar_dir, evil, needle) -> None:
    parent, _, _ = cifar_dir
    path = parent / "cifar-100-python" / "train"
    with path.open("wb") as handle:
        pickle.dump({b"data": evil, b"fine_labels": [0], b"coarse_labels": [0]}, handle, 4)
    with pytest.raises(ValueError, match=needle):
        load_cifar100(parent)


def test_holdout_split() -> None:
    train, val = holdout_split(50, 5, seed=3)
    assert len(val) == 5 and len(train) == 45
    assert sorted(train.tolist() + val.tolist()) == list(range(50))
    assert torch.equal(val, holdout_split(50, 5, seed=3)[1])
    with pytest.raises(ValueError, match="val_size"):
        holdout_split(10, 10, seed=0)


# ------------------------------------------------------------------------------- normalisation


def test_normalize_matches_torchvision_bit_for_bit() -> None:
    from PIL import Image
    from torchvision.transforms import functional as TF

    assert CIFAR100_MEAN == (0.5071, 0.4867, 0.4408)
    assert CIFAR100_STD == (0.2675, 0.2565, 0.2761)
    gen = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 256, (4, 3, 32, 32), generator=gen, dtype=torch.uint8)
    ours = normalize(batch)
    assert ours.dtype == torch.float32 and ours.shape == batch.shape
    for i in range(4):
        pil = Image.fromarray(batch[i].permute(1, 2, 0).numpy())
        ref = TF.normalize(TF.to_tensor(pil), CIFAR100_MEAN, CIFAR100_STD)
        assert torch.equal(ours[i], ref)
    # Float input in [0, 1] is treated as already ToTensor'd.
    assert torch.equal(normalize(batch.float() / 255), ours)
    # Explicit formula per channel.
    for c in range(3):
        expected = (batch[:, c].float() / 255 - CIFAR100_MEAN[c]) / CIFAR100_STD[c]
        torch.testing.assert_close(ours[:, c], expected, rtol=0, atol=1e-6)


def test_normalize_validation() -> None:
    with pytest.raises(ValueError, match="std"):
        Normalize(std=(1.0, 0.0, 1.0))
    with pytest.raises(TypeError, match="uint8 or floating"):
        normalize(torch.zeros(1, 3, 2, 2, dtype=torch.int32))


# ------------------------------------------------------------------------------- augmentation


def _all_crops(image: torch.Tensor, padding: int = 4, size: int = 32) -> list[torch.Tensor]:
    padded = F.pad(image, (padding,) * 4)
    crops = []
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy : dy + size, dx : dx + size]
            crops += [crop, crop.flip(-1)]
    return crops


def test_each_output_is_one_of_the_162_crops() -> None:
    # Distinct, non-zero values per pixel and per sample: every candidate crop is unique and the
    # zero padding is distinguishable from image content.
    b = 48
    base = torch.arange(1, 3 * 32 * 32 + 1, dtype=torch.float64).view(3, 32, 32)
    images = torch.stack([base + 10_000 * i for i in range(b)])
    out = DeviceAugment()(images, torch.Generator().manual_seed(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    seen = set()
    for i in range(b):
        matches = [k for k, crop in enumerate(_all_crops(images[i])) if torch.equal(out[i], crop)]
        assert len(matches) == 1, f"sample {i} matches {len(matches)} crops"
        seen.add(matches[0])
    assert len(seen) > 10  # offsets and flips really vary across the batch


def test_uint8_batch_crops_match_manual_crops() -> None:
    gen = torch.Generator().manual_seed(5)
    images = torch.randint(1, 256, (16, 3, 32, 32), generator=gen, dtype=torch.uint8)
    aug = DeviceAugment()
    dy, dx, flip = aug.sample(16, 32, 32, torch.Generator().manual_seed(9))
    out = aug.apply(images, dy, dx, flip)
    assert out.dtype == torch.uint8
    for i in range(16):
        padded = F.pad(images[i], (4, 4, 4, 4))
        crop = padded[:, dy[i] : dy[i] + 32, dx[i] : dx[i] + 32]
        assert torch.equal(out[i], crop.flip(-1) if flip[i] else crop)
    # The same parameters drawn through __call__ give the same batch.
    assert torch.equal(aug(images, torch.Generator().manual_seed(9)), out)


def test_augment_parameter_distribution() -> None:
    dy, dx, flip = DeviceAugment().sample(4000, 32, 32, torch.Generator().manual_seed(0))
    assert set(dy.tolist()) == set(range(9)) and set(dx.tolist()) == set(range(9))
    assert 0.45 < flip.float().mean().item() < 0.55
    assert dy.dtype == torch.int64 and flip.dtype == torch.bool


def test_augment_determinism_and_seed_sensitivity() -> None:
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    aug = DeviceAugment()
    a = aug(images, torch.Generator().manual_seed(7))
    b = aug(images, torch.Generator().manual_seed(7))
    c = aug(images, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_augment_edge_cases_and_validation() -> None:
    images = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    identity = DeviceAugment(padding=0, flip_p=0.0)
    assert torch.equal(identity(images, torch.Generator().manual_seed(0)), images)
    always_flip = DeviceAugment(padding=0, flip_p=1.0)
    assert torch.equal(always_flip(images, torch.Generator()), images.flip(-1))
    with pytest.raises(ValueError, match="padding"):
        DeviceAugment(padding=-1)
    with pytest.raises(ValueError, match="flip_p"):
        DeviceAugment(flip_p=1.5)
    with pytest.raises(ValueError, match="exceeds"):
        DeviceAugment(size=64)(images, torch.Generator())


# ------------------------------------------------------------------------------- loaders


def _tensors(n: int = 20):
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 32, 32), generator=gen, dtype=torch.uint8)
    labels = torch.arange(n) % 100
    return images, labels


def test_train_loader_epoch_shapes_and_coverage() -> None:
    images, labels = _tensors()
    loader = InMemoryLoader(
        images, labels, batch_size=8, shuffle=True, augment=DeviceAugment(), seed=0,
        return_indices=True,
    )  # fmt: skip
    assert len(loader) == 3  # drop_last=False, as in the thesis: ceil(20 / 8)
    batches = list(loader)
    assert [x.shape[0] for x, _, _ in batches] == [8, 8, 4]
    seen = torch.cat([idx for _, _, idx in batches])
    assert sorted(seen.tolist()) == list(range(20)) and seen.tolist() != list(range(20))
    for x, y, idx in batches:
        assert x.dtype == torch.float32 and x.shape[1:] == (3, 32, 32)
        assert y.dtype == torch.int64 and torch.equal(y, labels[idx])
    dropping = InMemoryLoader(images, labels, batch_size=8, drop_last=True)
    assert len(dropping) == 2 and len(list(dropping)) == 2


def test_eval_loader_is_plain_normalised_in_order() -> None:
    images, labels = _tensors()
    loader = InMemoryLoader(images, labels, batch_size=6)
    xs, ys = zip(*loader, strict=True)
    assert torch.equal(torch.cat(xs), normalize(images))
    assert torch.equal(torch.cat(ys), labels)


def test_loader_determinism_and_resume() -> None:
    images, labels = _tensors()

    def make(seed: int) -> InMemoryLoader:
        return InMemoryLoader(
            images, labels, batch_size=8, shuffle=True, augment=DeviceAugment(), seed=seed
        )

    def epoch(loader: InMemoryLoader) -> list[torch.Tensor]:
        return [x for x, _ in loader]

    first, second = make(3), make(3)
    e1 = epoch(first)
    assert all(torch.equal(a, b) for a, b in zip(e1, epoch(second), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(e1, epoch(make(4)), strict=True))

    state = first.state_dict()
    e2 = epoch(first)
    assert not torch.equal(e1[0], e2[0])  # a new epoch draws a new permutation and new crops
    resumed = make(99)
    resumed.load_state_dict(state)
    assert resumed.epochs_started == 1
    assert all(torch.equal(a, b) for a, b in zip(e2, epoch(resumed), strict=True))


def test_loader_validation() -> None:
    images, labels = _tensors()
    with pytest.raises(ValueError, match="batch_size"):
        InMemoryLoader(images, labels, batch_size=0)
    with pytest.raises(ValueError, match="labels"):
        InMemoryLoader(images, labels[:-1], batch_size=4)
    with pytest.raises(ValueError, match="either generator or seed"):
        InMemoryLoader(images, labels, batch_size=4, generator=torch.Generator(), seed=1)


def test_cifar100_loaders_from_fixture(cifar_dir) -> None:
    parent, _, _ = cifar_dir
    data = load_cifar100(parent)
    noisy = (data["train_labels"] + 1) % 100
    loaders = cifar100_loaders(data, batch_size=8, device="cpu", seed=0, train_labels=noisy)
    assert (len(loaders.train), len(loaders.test), len(loaders.train_eval)) == (3, 2, 3)
    assert loaders.train.augment is not None and loaders.test.augment is None
    _, y, idx = next(iter(loaders.train_eval))
    assert torch.equal(y, noisy[idx])
    x, y = next(iter(loaders.test))
    assert torch.equal(x, normalize(data["test_images"][:8]))
    assert torch.equal(y, data["test_labels"][:8])


# ------------------------------------------------------------------------------- model


def test_cifar_resnet18_structure_and_output() -> None:
    torch.manual_seed(0)
    model = cifar_resnet18()
    conv1 = model.conv1
    assert isinstance(conv1, nn.Conv2d)
    assert (conv1.in_channels, conv1.out_channels) == (3, 64)
    assert conv1.kernel_size == (3, 3) and conv1.stride == (1, 1) and conv1.padding == (1, 1)
    assert conv1.bias is None
    assert isinstance(model.maxpool, nn.Identity)
    assert model.fc.in_features == 512 and model.fc.out_features == 100
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 100)
    assert cifar_resnet18(num_classes=10).fc.out_features == 10


@pytest.mark.slow
def test_import_does_not_load_torchvision() -> None:
    code = (
        "import sys, aees.runner.tasks.cifar.task, aees.runner.tasks.image.task; "
        "assert 'torchvision' not in sys.modules, 'torchvision imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
