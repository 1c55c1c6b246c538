"""CIFAR-10/100 on disk: the official ``cifar-*-python`` pickles, read as data only.

Behaviour reproduced from docs/protocols.md §4.1: the data are the official ``cifar-100-python``
pickles, as ``torchvision.datasets.CIFAR100`` downloads them. They are read by a restricted
unpickler whose few allowed globals map to checked stand-ins (no code runs from a file read back
from disk); anything else is refused in one line (:class:`UnsafePickleError`).
The thesis transforms and the device-resident batches are in
:mod:`aees.runner.tasks.image.pipeline`, the ResNet-18 with the CIFAR stem in
:mod:`aees.runner.tasks.image.models`, the task in :mod:`aees.runner.tasks.cifar.task`.

Imports torch and the standard library at module import.
"""

from __future__ import annotations

import math
import operator
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from aees.results import RunResultError
from aees.results.io import open_regular_file
from aees.runner.cifar100_classes import CIFAR100_NUM_CLASSES, CIFAR100_NUM_COARSE_CLASSES
from aees.runner.config import UserError

__all__ = [
    "CIFAR10_DIRNAME",
    "CIFAR100_DIRNAME",
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "cifar100_fetch_command",
    "load_cifar10",
    "load_cifar100",
    "resolve_cifar100_dir",
]

CIFAR100_DIRNAME = "cifar-100-python"
CIFAR100_MEAN: tuple[float, float, float] = (0.5071, 0.4867, 0.4408)
CIFAR100_STD: tuple[float, float, float] = (0.2675, 0.2565, 0.2761)
_IMAGE_SHAPE = (3, 32, 32)
_PIXELS = 3 * 32 * 32
_FILES = ("train", "test", "meta")


# --------------------------------------------------------------------------------------------
# Loading the on-disk layout
# --------------------------------------------------------------------------------------------


def resolve_cifar100_dir(data_dir: str | Path) -> Path:
    """The ``cifar-100-python`` directory for ``data_dir``.

    ``data_dir`` may be the directory torchvision was given as ``root`` (holding
    ``cifar-100-python/``) or the ``cifar-100-python`` directory itself.
    """
    path = Path(data_dir).expanduser()
    if path.name == CIFAR100_DIRNAME or all((path / name).is_file() for name in _FILES):
        return path
    return path / CIFAR100_DIRNAME


def cifar100_fetch_command(data_dir: str | Path) -> str:
    """The shell command that downloads CIFAR-100 to where :func:`load_cifar100` looks for it."""
    root = resolve_cifar100_dir(data_dir).parent
    return (
        'python -c "import torchvision; '
        f'torchvision.datasets.CIFAR100({str(root)!r}, download=True)"'
    )


def _get(mapping: Mapping[Any, Any], key: str, path: Path) -> Any:
    # The official pickles have bytes keys under encoding='bytes'; accept str keys as well so
    # files re-pickled by other tools still load.
    for candidate in (key.encode(), key):
        if candidate in mapping:
            return mapping[candidate]
    found = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in mapping)
    raise ValueError(
        f"corrupt CIFAR-100 file {path}: missing key {key!r} (found {found}); "
        f"delete {path.parent} and fetch it again"
    )


class UnsafePickleError(UserError, ValueError):
    """A CIFAR file that refers to something beyond arrays, dtypes and containers.

    A :class:`~aees.runner.config.UserError` (one line, exit 2) and a ``ValueError`` (what
    :func:`load_cifar100` raises for a malformed file).
    """


# What the official pickles (Python 2 cPickle, protocol 2) and files re-pickled by Python 3
# (protocol 2 encodes bytes through _codecs.encode and an empty bytes as bytes(); protocol 5
# rebuilds arrays from a buffer) refer to, each mapped to the checked stand-in that
# _DataUnpickler returns for it. Containers need no global (pickle has opcodes for them), so
# none is allowed: the stand-ins build nothing larger than the file itself, which is how a file
# claiming 10**7 images or building bytes(10**15) is refused before anything is allocated.
_PICKLE_GLOBALS: dict[tuple[str, str], str] = {
    ("numpy", "ndarray"): "ndarray",
    ("numpy", "dtype"): "dtype",
    ("numpy.core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy._core.multiarray", "_reconstruct"): "reconstruct",
    ("numpy.core.numeric", "_frombuffer"): "frombuffer",
    ("numpy._core.numeric", "_frombuffer"): "frombuffer",
    ("_codecs", "encode"): "encode",
    ("__builtin__", "bytes"): "empty_bytes",
    ("builtins", "bytes"): "empty_bytes",
}


class _NdarrayToken:
    """Stands for ``numpy.ndarray`` in a pickle: an argument of ``_reconstruct``; calling it (as
    a crafted REDUCE or NEWOBJ would, to allocate an array of any shape) fails."""

    def __new__(cls, *args: Any) -> Any:
        raise ValueError("refusing a call of numpy.ndarray (only _reconstruct may name it)")


def _plain_dtype(spec: Any) -> Any:
    """``numpy.dtype(spec)`` for a plain bool/int/uint/float type; anything else (objects, which
    numpy allocates before checking their count; sub-arrays; records) is refused."""
    import numpy as np

    if isinstance(spec, bytes):
        spec = spec.decode("latin-1")
    if not isinstance(spec, str | np.dtype) or (isinstance(spec, str) and len(spec) > 4):
        raise ValueError(f"refusing dtype {spec!r}")
    dtype = np.dtype(spec)
    if dtype.kind not in "biuf" or dtype.subdtype is not None or dtype.fields is not None:
        raise ValueError(f"refusing dtype {dtype}: not a plain number type")
    return dtype


class _DataUnpickler(pickle.Unpickler):
    """An unpickler that builds plain numeric arrays and containers only: any other global is
    refused, so a crafted file cannot call ``os.system``, ``exec`` or anything else while being
    read, and no array larger than the file (``size`` bytes) is allocated."""

    def __init__(self, handle: Any, path: Path, dataset: str = "CIFAR-100", size: int = 0) -> None:
        super().__init__(handle, encoding="bytes")
        self.path = path
        self.dataset = dataset
        self.size = size

    def find_class(self, module: str, name: str) -> Any:
        kind = _PICKLE_GLOBALS.get((module, name))
        if kind is None:
            raise UnsafePickleError(
                f"refusing {self.dataset} file {self.path}: it refers to {module}.{name}, which "
                "the official files never do (a crafted file could run code); delete it and fetch "
                "the data again"
            )
        if kind == "ndarray":
            return _NdarrayToken
        return getattr(self, f"_{kind}")

    def _dtype(self, spec: Any, align: Any = False, copy: Any = False) -> Any:
        return _plain_dtype(spec)

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> Any:
        import numpy as np

        if subtype is not _NdarrayToken:
            raise ValueError(f"refusing _reconstruct of {subtype!r}")
        dims = tuple(operator.index(d) for d in shape)
        item = _plain_dtype(dtype)
        nbytes = math.prod(dims) * item.itemsize
        if any(d < 0 for d in dims) or nbytes > self.size:
            shown = " x ".join(map(str, dims))
            raise ValueError(
                f"an array of {shown} {item} ({nbytes} bytes) is larger than the whole file "
                f"({self.size} bytes)"
            )
        return np.ndarray.__new__(np.ndarray, dims, item)

    def _frombuffer(self, buffer: Any, dtype: Any, shape: Any, order: Any) -> Any:
        import numpy as np

        if not isinstance(buffer, bytes | bytearray):
            raise ValueError(f"refusing an array buffer of type {type(buffer).__name__}")
        order = order.decode() if isinstance(order, bytes) else order
        dims = tuple(operator.index(d) for d in shape)
        return np.frombuffer(buffer, dtype=_plain_dtype(dtype)).reshape(dims, order=order)

    def _encode(self, text: Any, encoding: Any) -> bytes:
        if not isinstance(text, str) or encoding not in ("latin1", b"latin1"):
            raise ValueError("refusing _codecs.encode of anything but a str as latin1")
        return text.encode("latin-1")

    def _empty_bytes(self, *args: Any) -> bytes:
        if args:  # bytes(10**15) would allocate a petabyte
            raise ValueError("refusing bytes(...) with an argument: only bytes() is rebuilt")
        return b""


def _unpickle(path: Path, fetch: str, dataset: str = "CIFAR-100") -> Mapping[Any, Any]:
    """Read one of the official pickles as data only (see :class:`_DataUnpickler`); a FIFO or a
    link to a device is refused unread (:func:`aees.results.io.open_regular_file`)."""
    try:
        with open_regular_file(path, what=f"{dataset} file") as handle:
            size = os.fstat(handle.fileno()).st_size
            obj = _DataUnpickler(handle, path, dataset, size).load()
    except UnsafePickleError as exc:
        raise UnsafePickleError(f"{exc} with: {fetch}") from None
    except RunResultError as exc:  # not a regular file
        raise ValueError(f"{exc}; delete it and fetch the data again with: {fetch}") from None
    except (
        pickle.UnpicklingError,
        EOFError,
        ValueError,
        TypeError,
        AttributeError,
        OverflowError,
        MemoryError,
        RecursionError,
    ) as exc:
        raise ValueError(
            f"corrupt {dataset} file {path}: cannot unpickle it ({type(exc).__name__}: {exc}); "
            f"delete {path.parent} and fetch it again with: {fetch}"
        ) from exc
    if not isinstance(obj, Mapping):
        raise ValueError(
            f"corrupt {dataset} file {path}: expected a dict, got {type(obj).__name__}; "
            f"delete {path.parent} and fetch it again with: {fetch}"
        )
    return obj


def _labels(values: Any, n: int, num_classes: int, key: str, path: Path) -> Tensor:
    # the count first, so a list or array of another length is refused before it is converted
    count = len(values) if isinstance(values, list | tuple) or hasattr(values, "dtype") else None
    if count is not None and count != n:
        raise ValueError(
            f"corrupt CIFAR-100 file {path}: {key!r} has {count} entries but 'data' has {n} images"
        )
    try:
        if hasattr(values, "dtype"):  # an array (re-pickled files): converted without a list
            if values.dtype.kind not in "iu":
                raise TypeError(values.dtype)
            labels = torch.as_tensor(values.astype("int64"))
        else:
            labels = torch.as_tensor(list(values), dtype=torch.int64)
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise ValueError(f"corrupt CIFAR-100 file {path}: {key!r} is not a list of ints") from exc
    if labels.ndim != 1 or labels.numel() != n:
        raise ValueError(
            f"corrupt CIFAR-100 file {path}: {key!r} has {labels.numel()} entries "
            f"but 'data' has {n} images"
        )
    if n and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"corrupt CIFAR-100 file {path}: {key!r} has values outside [0, {num_classes})"
        )
    return labels


def _images(obj: Mapping[Any, Any], path: Path, dataset: str) -> Tensor:
    """The ``N x 3 x 32 x 32`` uint8 images of one batch file's ``data`` entry."""
    data = _get(obj, "data", path)
    shape = tuple(getattr(data, "shape", ()))
    dtype = str(getattr(data, "dtype", type(data).__name__))
    if len(shape) != 2 or shape[1] != _PIXELS or dtype != "uint8":
        raise ValueError(
            f"corrupt {dataset} file {path}: 'data' must be an N x {_PIXELS} uint8 array, "
            f"got shape {shape} dtype {dtype}"
        )
    # Rows are channel-major (1024 R, then G, then B values, each row-major 32 x 32), so a
    # reshape gives N x 3 x 32 x 32 directly; clone() detaches the tensor from the numpy buffer.
    return torch.as_tensor(data).reshape(shape[0], *_IMAGE_SHAPE).clone()


def _load_split(path: Path, fetch: str) -> dict[str, Tensor]:
    obj = _unpickle(path, fetch)
    images = _images(obj, path, "CIFAR-100")
    n = int(images.shape[0])
    fine = _labels(_get(obj, "fine_labels", path), n, CIFAR100_NUM_CLASSES, "fine_labels", path)
    coarse = _labels(
        _get(obj, "coarse_labels", path), n, CIFAR100_NUM_COARSE_CLASSES, "coarse_labels", path
    )
    return {"images": images, "labels": fine, "coarse_labels": coarse}


def _names(values: Any, expected: int, key: str, path: Path) -> tuple[str, ...]:
    names = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in values)
    if len(names) != expected:
        raise ValueError(
            f"corrupt CIFAR-100 file {path}: {key!r} has {len(names)} names, expected {expected}"
        )
    return names


def load_cifar100(data_dir: str | Path) -> dict[str, Any]:
    """Load CIFAR-100 from the official ``cifar-100-python`` pickles.

    Returns a dict with ``train_images`` / ``test_images`` (uint8, N x 3 x 32 x 32, CPU),
    ``train_labels`` / ``test_labels`` (fine labels, int64), ``train_coarse_labels`` /
    ``test_coarse_labels`` (int64), ``class_names`` and ``coarse_class_names`` (tuples of str)
    and ``root`` (the resolved ``cifar-100-python`` directory).

    Raises :class:`FileNotFoundError` (naming the path and the download command) when the files
    are missing and :class:`ValueError` when a file is truncated or malformed.
    """
    root = resolve_cifar100_dir(data_dir)
    fetch = cifar100_fetch_command(data_dir)
    missing = [name for name in _FILES if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-100 not found: expected {root}/{{train,test,meta}} "
            f"(missing: {', '.join(missing)}); fetch it with: {fetch}"
        )
    train = _load_split(root / "train", fetch)
    test = _load_split(root / "test", fetch)
    meta_path = root / "meta"
    meta = _unpickle(meta_path, fetch)
    class_names = _names(
        _get(meta, "fine_label_names", meta_path),
        CIFAR100_NUM_CLASSES,
        "fine_label_names",
        meta_path,
    )
    coarse_names: tuple[str, ...] = ()
    if b"coarse_label_names" in meta or "coarse_label_names" in meta:
        coarse_names = _names(
            _get(meta, "coarse_label_names", meta_path),
            CIFAR100_NUM_COARSE_CLASSES,
            "coarse_label_names",
            meta_path,
        )
    return {
        "train_images": train["images"],
        "train_labels": train["labels"],
        "train_coarse_labels": train["coarse_labels"],
        "test_images": test["images"],
        "test_labels": test["labels"],
        "test_coarse_labels": test["coarse_labels"],
        "class_names": class_names,
        "coarse_class_names": coarse_names,
        "root": root,
    }


CIFAR10_DIRNAME = "cifar-10-batches-py"
_CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR10_FILES = (*_CIFAR10_TRAIN, "test_batch", "batches.meta")


def load_cifar10(data_dir: str | Path) -> dict[str, Any]:
    """CIFAR-10 from the official ``cifar-10-batches-py`` pickles, read as data only.

    ``data_dir`` is the torchvision ``root`` or the ``cifar-10-batches-py`` directory. Returns
    ``train_images`` / ``test_images`` (uint8, N x 3 x 32 x 32), ``train_labels`` /
    ``test_labels`` (int64), ``class_names`` and ``root``; ``FileNotFoundError`` when files are
    missing, ``ValueError`` when one is malformed (torchvision's own reader would unpickle it
    with arbitrary globals).
    """
    path = Path(data_dir).expanduser()
    root = path if path.name == CIFAR10_DIRNAME else path / CIFAR10_DIRNAME
    fetch = (
        'python -c "import torchvision; '
        f'torchvision.datasets.CIFAR10({str(root.parent)!r}, download=True)"'
    )
    missing = [name for name in _CIFAR10_FILES if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"CIFAR-10 not found: expected {root}/{{data_batch_1..5,test_batch,batches.meta}} "
            f"(missing: {', '.join(missing)}); fetch it with: {fetch}"
        )

    def batch(name: str) -> tuple[Tensor, Tensor]:
        file = root / name
        obj = _unpickle(file, fetch, "CIFAR-10")
        images = _images(obj, file, "CIFAR-10")
        return images, _labels(_get(obj, "labels", file), int(images.shape[0]), 10, "labels", file)

    train = [batch(name) for name in _CIFAR10_TRAIN]
    test_images, test_labels = batch("test_batch")
    meta_path = root / "batches.meta"
    names = _names(
        _get(_unpickle(meta_path, fetch, "CIFAR-10"), "label_names", meta_path),
        10,
        "label_names",
        meta_path,
    )
    return {
        "train_images": torch.cat([x for x, _ in train]),
        "train_labels": torch.cat([y for _, y in train]),
        "test_images": test_images,
        "test_labels": test_labels,
        "class_names": names,
        "root": root,
    }
