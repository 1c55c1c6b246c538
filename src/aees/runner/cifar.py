"""CIFAR-100 for the ResNet-18 runner: on-disk loading, a device-resident data pipeline, the model.

Behaviour reproduced from docs/protocols.md §4.1:

* data: the official ``cifar-100-python`` pickles, as ``torchvision.datasets.CIFAR100`` downloads;
* train transform: ``RandomCrop(32, padding=4)`` (zero padding) -> ``RandomHorizontalFlip(p=0.5)``
  -> ``ToTensor()`` -> ``Normalize(mean=(0.5071, 0.4867, 0.4408), std=(0.2675, 0.2565, 0.2761))``;
* eval transform: ``ToTensor()`` -> the same ``Normalize``;
* ``drop_last=False``: ceil(50,000 / 128) = 391 steps per epoch;
* model: torchvision ``resnet18(weights=None, num_classes=100)`` with a 3x3/stride-1 stem and no
  max-pool.

What differs from the thesis, and why: instead of a ``DataLoader`` with two worker processes
decoding PIL images, the whole dataset (50,000 x 3 x 32 x 32 uint8 = 154 MB) lives on the training
device and each batch is cropped, flipped and normalised there by a handful of vectorised kernels.
The transform is the same in distribution (a crop offset uniform on {0..8}^2 of the zero-padded
image, a fair coin for the flip) and the normalisation is bit-identical; the random stream comes
from an explicit :class:`torch.Generator` owned by the loader, so shuffling and augmentation are
reproducible and resumable from :meth:`InMemoryLoader.state_dict` (defect 14: no unseeded worker
RNGs). Note that CPU and CUDA generators produce different streams for the same seed.

Only torch and the standard library are imported at module import; torchvision is imported inside
:func:`cifar_resnet18`.
"""

from __future__ import annotations

import math
import operator
import os
import pickle
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from aees.results import RunResultError
from aees.results.io import open_regular_file
from aees.runner.config import UserError

__all__ = [
    "CIFAR10_DIRNAME",
    "CIFAR100_DIRNAME",
    "CIFAR100_MEAN",
    "CIFAR100_NUM_CLASSES",
    "CIFAR100_NUM_COARSE_CLASSES",
    "CIFAR100_STD",
    "CifarLoaders",
    "DeviceAugment",
    "InMemoryLoader",
    "Normalize",
    "cifar100_fetch_command",
    "cifar100_loaders",
    "cifar_resnet18",
    "cifar_stem",
    "holdout_split",
    "load_cifar10",
    "load_cifar100",
    "normalize",
    "resolve_cifar100_dir",
]

CIFAR100_DIRNAME = "cifar-100-python"
CIFAR100_MEAN: tuple[float, float, float] = (0.5071, 0.4867, 0.4408)
CIFAR100_STD: tuple[float, float, float] = (0.2675, 0.2565, 0.2761)
CIFAR100_NUM_CLASSES = 100
CIFAR100_NUM_COARSE_CLASSES = 20
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


def holdout_split(n: int, val_size: int, seed: int) -> tuple[Tensor, Tensor]:
    """Sorted (train, validation) index tensors: ``val_size`` of ``range(n)`` drawn with ``seed``.

    The thesis selects its peak epoch on the official test set (defect 2); a runner that wants a
    proper validation split (e.g. 45k/5k) takes it from here, independently of the training RNG.
    """
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must be in [0, {n}), got {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:].sort().values, perm[:val_size].sort().values


# --------------------------------------------------------------------------------------------
# Normalisation and augmentation, on the device
# --------------------------------------------------------------------------------------------


class Normalize:
    """``ToTensor()`` then ``Normalize(mean, std)`` for a batch: ``(x / 255 - mean) / std``.

    A uint8 batch is converted to float32 and divided by 255 exactly as ``ToTensor`` does; the
    subtraction and division then match ``torchvision.transforms.Normalize`` bit for bit. The
    mean/std tensors are cached per (device, dtype), so no host-to-device copy happens per batch.
    """

    def __init__(
        self, mean: Sequence[float] = CIFAR100_MEAN, std: Sequence[float] = CIFAR100_STD
    ) -> None:
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(f"mean and std must have the same non-zero length, got {mean}, {std}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std must be > 0, got {std}")
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}

    def _constants(self, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        key = (device, dtype)
        if key not in self._cache:
            shape = (len(self.mean), 1, 1)
            mean = torch.tensor(self.mean, dtype=dtype).view(shape).to(device)
            std = torch.tensor(self.std, dtype=dtype).view(shape).to(device)
            self._cache[key] = (mean, std)
        return self._cache[key]

    def __call__(self, images: Tensor) -> Tensor:
        if images.dtype == torch.uint8:
            images = images.to(torch.float32).div(255)
        elif not images.is_floating_point():
            raise TypeError(f"images must be uint8 or floating point, got {images.dtype}")
        mean, std = self._constants(images.device, images.dtype)
        return images.sub(mean).div(std)


_DEFAULT_NORMALIZE = Normalize()


def normalize(images: Tensor) -> Tensor:
    """Normalise a uint8 (0..255) or float (0..1) batch with the thesis CIFAR-100 mean/std."""
    return _DEFAULT_NORMALIZE(images)


class DeviceAugment:
    """``RandomCrop(size, padding)`` (zero fill) + ``RandomHorizontalFlip(flip_p)`` for a batch.

    Each sample gets its own crop offset ``(dy, dx)``, uniform on ``{0..2*padding}^2`` of the
    zero-padded image, and its own flip coin -- the distribution of torchvision's per-image
    transforms. The batch is padded once and the crops are gathered with one advanced-indexing
    kernel (flipping is folded into the column index), so there is no per-sample Python loop.

    Apply it to the raw uint8 pixels, before :class:`Normalize`: zero padding then means black
    pixels, as in the thesis pipeline (padding happens on the PIL image before ``ToTensor``).

    Random numbers come from ``generator`` only, drawn on the generator's device and in the
    fixed order (dy, dx, flip), so the same generator state gives the same batch.
    """

    def __init__(self, size: int = 32, padding: int = 4, flip_p: float = 0.5) -> None:
        if size <= 0:
            raise ValueError(f"size must be > 0, got {size}")
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        if not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"flip_p must be in [0, 1], got {flip_p}")
        self.size = size
        self.padding = padding
        self.flip_p = flip_p

    def sample(
        self, batch_size: int, height: int, width: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample ``(dy, dx, flip)`` on the generator's device."""
        span_y = height + 2 * self.padding - self.size + 1
        span_x = width + 2 * self.padding - self.size + 1
        if span_y <= 0 or span_x <= 0:
            raise ValueError(
                f"crop size {self.size} exceeds the padded image "
                f"({height + 2 * self.padding} x {width + 2 * self.padding})"
            )
        device = generator.device
        dy = torch.randint(span_y, (batch_size,), generator=generator, device=device)
        dx = torch.randint(span_x, (batch_size,), generator=generator, device=device)
        flip = torch.rand(batch_size, generator=generator, device=device) < self.flip_p
        return dy, dx, flip

    def apply(self, images: Tensor, dy: Tensor, dx: Tensor, flip: Tensor) -> Tensor:
        """Crop each zero-padded image at ``(dy[i], dx[i])``, mirrored where ``flip[i]``."""
        if images.ndim != 4:
            raise ValueError(f"images must be B x C x H x W, got shape {tuple(images.shape)}")
        b, c, h, w = images.shape
        device = images.device
        p, s = self.padding, self.size
        padded = images.new_zeros((b, c, h + 2 * p, w + 2 * p))
        padded[:, :, p : p + h, p : p + w] = images
        dy, dx, flip = dy.to(device), dx.to(device), flip.to(device)
        ar = torch.arange(s, device=device)
        rows = dy[:, None] + ar  # B x s
        # A horizontal flip of the crop reads the crop's columns in reverse order.
        cols = dx[:, None] + torch.where(flip[:, None], (s - 1) - ar, ar)  # B x s
        batch = torch.arange(b, device=device)[:, None, None, None]
        chan = torch.arange(c, device=device)[None, :, None, None]
        return padded[batch, chan, rows[:, None, :, None], cols[:, None, None, :]]

    def __call__(self, images: Tensor, generator: torch.Generator) -> Tensor:
        dy, dx, flip = self.sample(images.shape[0], images.shape[-2], images.shape[-1], generator)
        return self.apply(images, dy, dx, flip)


# --------------------------------------------------------------------------------------------
# Device-resident loader
# --------------------------------------------------------------------------------------------


class InMemoryLoader:
    """Batches of a dataset held as one tensor on ``device``.

    Each iteration is one epoch: a permutation from ``generator`` when ``shuffle`` (else the
    stored order), then per batch an ``index_select``, the optional :class:`DeviceAugment` and
    :class:`Normalize`. Yields ``(images, labels)`` -- or ``(images, labels, indices)`` with
    ``return_indices``, where ``indices`` are positions in the tensors given here (the thesis's
    ``(image, target, index)`` items used by the label-noise diagnostics).

    ``drop_last`` defaults to False as in the thesis (391 steps per epoch at batch 128).
    :meth:`state_dict` captures the generator, so a run resumed at an epoch boundary sees the
    same batches as one never interrupted.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        *,
        batch_size: int,
        device: str | torch.device | None = None,
        shuffle: bool = False,
        augment: DeviceAugment | None = None,
        normalize: Normalize | None = _DEFAULT_NORMALIZE,
        drop_last: bool = False,
        generator: torch.Generator | None = None,
        seed: int | None = None,
        return_indices: bool = False,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        if images.ndim != 4:
            raise ValueError(f"images must be N x C x H x W, got shape {tuple(images.shape)}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"labels must be 1-D with {images.shape[0]} entries, "
                f"got shape {tuple(labels.shape)}"
            )
        if generator is not None and seed is not None:
            raise ValueError("pass either generator or seed, not both")
        self.device = torch.device(device) if device is not None else images.device
        self.images = images.to(self.device).contiguous()
        self.labels = labels.to(self.device, dtype=torch.int64)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.normalize = normalize
        self.drop_last = drop_last
        self.return_indices = return_indices
        if generator is None and (shuffle or augment is not None):
            generator = torch.Generator(device=self.device)
            generator.manual_seed(0 if seed is None else seed)
        self.generator = generator
        self.epochs_started = 0
        self.rank, self.world_size = 0, 1

    def shard(self, rank: int, world_size: int) -> None:
        """Yield only this rank's share of every epoch (``torchrun``/DDP).

        Every rank draws the same permutation (same generator seed); it is padded by wrapping
        to a multiple of ``world_size`` (as ``DistributedSampler`` does) and rank ``r`` takes
        positions ``r, r + world_size, ...``, so shards are disjoint and of equal size.
        """
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank} of {world_size}")
        self.rank, self.world_size = rank, world_size

    @property
    def num_examples(self) -> int:
        """Examples this loader yields per epoch (this rank's shard when sharded)."""
        return math.ceil(int(self.images.shape[0]) / self.world_size)

    def __len__(self) -> int:
        n = self.num_examples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def _draw_device(self) -> torch.device:
        assert self.generator is not None
        return self.generator.device

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        self.epochs_started += 1
        total = int(self.images.shape[0])
        if self.shuffle:
            assert self.generator is not None
            order = torch.randperm(total, generator=self.generator, device=self._draw_device())
            order = order.to(self.device)
        else:
            order = torch.arange(total, device=self.device)
        if self.world_size > 1:
            padded = self.num_examples * self.world_size
            order = torch.cat([order, order[: padded - total]])[self.rank :: self.world_size]
        for step in range(len(self)):
            idx = order[step * self.batch_size : (step + 1) * self.batch_size]
            images = self.images.index_select(0, idx)
            if self.augment is not None:
                assert self.generator is not None
                images = self.augment(images, self.generator)
            if self.normalize is not None:
                images = self.normalize(images)
            labels = self.labels.index_select(0, idx)
            yield (images, labels, idx) if self.return_indices else (images, labels)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"epochs_started": self.epochs_started}
        if self.generator is not None:
            state["generator_state"] = self.generator.get_state()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.epochs_started = int(state["epochs_started"])
        if self.generator is not None:
            if "generator_state" not in state:
                raise ValueError("state has no 'generator_state' for this loader's generator")
            self.generator.set_state(state["generator_state"])


class CifarLoaders(NamedTuple):
    train: InMemoryLoader  # shuffled, augmented
    test: InMemoryLoader  # the thesis's "validation" set (docs/protocols.md §4.1)
    train_eval: (
        InMemoryLoader  # training images un-augmented, with indices (label-noise diagnostics)
    )


def cifar100_loaders(
    data: Mapping[str, Any],
    *,
    batch_size: int,
    device: str | torch.device,
    seed: int,
    train_labels: Tensor | None = None,
    drop_last: bool = False,
) -> CifarLoaders:
    """The three loaders of the thesis CIFAR runner from :func:`load_cifar100`'s dict.

    ``train_labels`` replaces the training targets (e.g. label-noised ones) in both training
    loaders. The training images are stored on the device once and shared by both.
    """
    device = torch.device(device)
    train_images = data["train_images"].to(device)
    labels = data["train_labels"] if train_labels is None else train_labels
    train = InMemoryLoader(
        train_images,
        labels,
        batch_size=batch_size,
        device=device,
        shuffle=True,
        augment=DeviceAugment(),
        drop_last=drop_last,
        seed=seed,
    )
    test = InMemoryLoader(
        data["test_images"], data["test_labels"], batch_size=batch_size, device=device
    )
    train_eval = InMemoryLoader(
        train_images, labels, batch_size=batch_size, device=device, return_indices=True
    )
    return CifarLoaders(train, test, train_eval)


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------


def cifar_resnet18(num_classes: int = CIFAR100_NUM_CLASSES) -> nn.Module:
    """torchvision ResNet-18, untrained, with the CIFAR stem (docs/protocols.md §4.1).

    ``conv1`` is ``Conv2d(3, 64, 3, stride=1, padding=1, bias=False)`` and ``maxpool`` is
    ``Identity``, so a 32 x 32 input reaches the last stage at 4 x 4.
    """
    try:
        from torchvision.models import resnet18
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the CIFAR-100 task needs torchvision: pip install 'aees[vision]'"
        ) from exc
    return cifar_stem(resnet18(weights=None, num_classes=num_classes))


def cifar_stem(model: nn.Module) -> nn.Module:
    """``model`` (a ResNet-family network: ``conv1`` + ``maxpool``) with the CIFAR stem, in place.

    ``conv1`` becomes a 3x3 stride-1 convolution with the same channels (no bias when the
    original had none) and ``maxpool`` an ``Identity``, so small inputs keep their resolution
    (docs/protocols.md §4.1, §4.6). ``ValueError`` for a model without that stem.
    """
    conv, pool = getattr(model, "conv1", None), getattr(model, "maxpool", None)
    if not isinstance(conv, nn.Conv2d) or not isinstance(pool, nn.Module):
        raise ValueError(
            f"--cifar-stem needs a ResNet-style stem (conv1 + maxpool); {type(model).__name__} "
            "has none"
        )
    model.conv1 = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        kernel_size=3,
        stride=1,
        padding=1,
        bias=conv.bias is not None,
    )
    model.maxpool = nn.Identity()
    return model
