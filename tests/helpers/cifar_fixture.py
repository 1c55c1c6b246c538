"""A tiny CIFAR-100 in the exact ``cifar-100-python`` pickle layout that torchvision downloads."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from aees.runner.tasks.cifar.data import CIFAR100_DIRNAME


def write_split(path: Path, n: int, rng: np.random.Generator, tag: str) -> dict:
    entry = {
        b"filenames": [f"{tag}_{i}.png".encode() for i in range(n)],
        b"batch_label": f"{tag} batch".encode(),
        b"fine_labels": [int(x) for x in rng.integers(0, 100, n)],
        b"coarse_labels": [int(x) for x in rng.integers(0, 20, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
    }
    with path.open("wb") as handle:
        pickle.dump(entry, handle, protocol=2)
    return entry


def write_cifar100(parent: Path, n_train: int, n_test: int, seed: int = 0) -> tuple[dict, dict]:
    """Write ``parent/cifar-100-python/{train,test,meta}``; returns the train and test entries."""
    root = parent / CIFAR100_DIRNAME
    root.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    train = write_split(root / "train", n_train, rng, "train")
    test = write_split(root / "test", n_test, rng, "test")
    meta = {
        b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
        b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
    }
    with (root / "meta").open("wb") as handle:
        pickle.dump(meta, handle, protocol=2)
    return train, test
