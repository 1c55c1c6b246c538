"""Tiny image datasets in real on-disk formats for the ``image`` task tests.

``write_image_folder`` writes PNG files with Pillow in the ImageFolder layout; ``write_mnist_raw``
the four MNIST idx (ubyte) files torchvision reads with ``download=False``. Pixels depend on the
class (a bright band whose position is the class), so a model can learn them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import torch


def class_image(label: int, size: int, channels: int, generator: torch.Generator) -> torch.Tensor:
    """uint8 ``C x size x size``: noise plus a bright horizontal band at a class-given row."""
    x = torch.randint(0, 60, (channels, size, size), generator=generator, dtype=torch.uint8)
    row = (label * 3) % max(1, size - 2)
    x[:, row : row + 2, :] = 250
    return x


def write_image_folder(
    root: Path,
    classes: Sequence[str] = ("cat", "dog", "fox"),
    per_class: int | dict[str, int] = 6,
    *,
    size: int = 16,
    mode: str = "RGB",
    split: str = "train",
    seed: int = 0,
    suffix: str = ".png",
) -> list[Path]:
    """``root/<split>/<class>/<i>.png`` files (``mode`` ``"RGB"`` or ``"L"``); returns them."""
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    channels = 1 if mode == "L" else 3
    written = []
    for label, name in enumerate(classes):
        folder = root / split / name
        folder.mkdir(parents=True, exist_ok=True)
        count = per_class[name] if isinstance(per_class, dict) else per_class
        for i in range(count):
            x = class_image(label, size, channels, g)
            array = x.permute(1, 2, 0).contiguous()
            if channels == 1:
                img = Image.frombytes("L", (size, size), bytes(array.flatten().tolist()))
            else:
                img = Image.frombytes("RGB", (size, size), bytes(array.flatten().tolist()))
            path = folder / f"{i:03d}{suffix}"
            img.save(path)
            written.append(path)
    return written


def _idx(path: Path, data: torch.Tensor) -> None:
    """One idx file: magic (0, 0, uint8 type 0x08, ndim), big-endian dims, the bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, data.ndim)
    header += b"".join(struct.pack(">I", d) for d in data.shape)
    path.write_bytes(header + bytes(data.flatten().tolist()))


def write_mnist_raw(
    root: Path, n_train: int = 40, n_test: int = 10, *, folder: str = "MNIST", seed: int = 0
) -> Path:
    """``root/<folder>/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`` (28 x 28, 10 classes)."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = torch.arange(n, dtype=torch.uint8) % 10
        images = torch.stack([class_image(int(y), 28, 1, g)[0] for y in labels])
        _idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


def write_cifar10(parent: Path, per_batch: int = 4, n_test: int = 4, seed: int = 0) -> Path:
    """``parent/cifar-10-batches-py/{data_batch_1..5,test_batch,batches.meta}`` as torchvision
    downloads them (protocol-2 pickles of bytes-keyed dicts)."""
    import pickle

    import numpy as np

    root = parent / "cifar-10-batches-py"
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        n = n_test if name == "test_batch" else per_batch
        entry = {
            b"batch_label": name.encode(),
            b"labels": [int(x) for x in rng.integers(0, 10, n)],
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        }
        with (root / name).open("wb") as handle:
            pickle.dump(entry, handle, protocol=2)
    with (root / "batches.meta").open("wb") as handle:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)]}, handle, protocol=2)
    return parent
