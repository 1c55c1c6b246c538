"""Image data for the ``image`` task: the on-disk formats, decoded once into a uint8 cache.

docs/protocols.md §4.6. Every format ends as uint8 ``N x C x H x W`` tensors per split plus the
class names:

* ``imagefolder``: ``train/<class>/*.<ext>`` (and optionally ``val/``, ``test/`` with the same
  class folders); classes are the sorted folder names of ``train/``. Files that cannot be decoded
  are skipped, counted and listed; above ``max_bad_fraction`` of the files the data is refused.
* ``cifar10`` / ``cifar100``: the official pickles, read as data only
  (:mod:`aees.runner.tasks.cifar.data`).
* ``mnist`` / ``fashion-mnist``: the idx files under ``<root>/MNIST/raw`` or
  ``<root>/FashionMNIST/raw``, read by ``torchvision.datasets`` with ``download=False``.
* ``svhn``: ``train_32x32.mat`` / ``test_32x32.mat`` through ``torchvision.datasets.SVHN``.

Decoding happens once: the tensors are saved to a cache file (``torch.save`` of tensors, strings
and numbers only, read back with ``weights_only=True``) keyed by a fingerprint of the source
files (relative paths, sizes, mtimes), the format and ``--image-size``; a changed file list
rebuilds it. The cache also holds a SHA-256 of its own content; one whose digest, structure,
dtypes, shapes or label range do not hold is rebuilt (and the reason logged), never used.
Every error a user can cause is a one-line :class:`UserError`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from aees.runner.config import UserError
from aees.runner.tasks.image.cache import (
    CACHE_VERSION,
    CacheSpec,
    cache_path,
    cache_problem,
    content_digest,
    fingerprint,
    read_cache,
    write_cache,
)
from aees.runner.tasks.image.options import DATASET_FORMATS

__all__ = [
    "CACHE_VERSION",
    "IMAGE_EXTENSIONS",
    "MAX_CLASSES",
    "ImageData",
    "detect_format",
    "load_image_data",
    "source_files",
]

IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".pgm", ".pbm",
)  # fmt: skip
SPLITS = ("train", "val", "test")
#: Most classes an image dataset may have (docs/protocols.md §4.6): ImageNet-21k has 21,841; a
#: head and the label-noise tables of more would be a mistake, not a dataset.
MAX_CLASSES = 100_000
_DATASET_NAMES = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "mnist": "MNIST",
    "fashion-mnist": "FashionMNIST",
    "svhn": "SVHN",
}
_MNIST_DIRS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
_FORMAT_CLASSES = {"cifar10": 10, "cifar100": 100, "mnist": 10, "fashion-mnist": 10, "svhn": 10}
_MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")


@dataclass
class ImageData:
    """Decoded images of one data directory (CPU uint8 tensors) and what was learnt reading it."""

    name: str  # the dataset name recorded in results
    format: str
    root: Path
    class_names: tuple[str, ...]
    splits: dict[str, tuple[Tensor, Tensor]]  # split -> (images N x C x H x W uint8, labels)
    skipped: list[str] = field(default_factory=list)  # undecodable files, relative to root
    num_files: int = 0  # image files considered (imagefolder), skipped ones included
    cache: dict[str, Any] = field(default_factory=dict)  # path, fingerprint, hit, rejected
    linked_outside: list[str] = field(default_factory=list)  # "train/cat -> /elsewhere/cat"

    @property
    def channels(self) -> int:
        return int(self.splits["train"][0].shape[1])

    def nbytes(self) -> int:
        return sum(x.numel() * x.element_size() for x, _ in self.splits.values())


# ------------------------------------------------------------------------------ discovery


def _visible_dirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _image_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _mnist_root(root: Path, fmt: str) -> Path | None:
    """The torchvision ``root`` holding ``<MNIST|FashionMNIST>/raw/<idx files>``, if any."""
    folder = _MNIST_DIRS[fmt]
    for candidate in (root, root.parent, root.parent.parent):
        raw = candidate / folder / "raw"
        if all((raw / name).is_file() for name in _MNIST_FILES):
            return candidate
    return None


def _has_format(root: Path, fmt: str) -> bool:
    if fmt == "imagefolder":
        return (root / "train").is_dir()
    if fmt == "cifar10":
        return (root / "cifar-10-batches-py").is_dir() or root.name == "cifar-10-batches-py"
    if fmt == "cifar100":
        return (root / "cifar-100-python").is_dir() or root.name == "cifar-100-python"
    if fmt in _MNIST_DIRS:
        return _mnist_root(root, fmt) is not None
    return (root / "train_32x32.mat").is_file()  # svhn


def detect_format(root: Path) -> str:
    """The first format whose layout ``root`` holds (``UserError`` naming the expected ones)."""
    for fmt in DATASET_FORMATS[1:]:
        if _has_format(root, fmt):
            return fmt
    raise UserError(
        f"--data-dir {root}: no dataset found: expected train/<class>/ image folders, "
        "cifar-10-batches-py/, cifar-100-python/, MNIST/raw/, FashionMNIST/raw/ or "
        "train_32x32.mat (or pass --dataset-format)"
    )


def _check_root(data_dir: str | os.PathLike[str], fmt: str) -> tuple[Path, str]:
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise UserError(f"--data-dir {root}: no such directory")
    if not any(root.iterdir()):
        raise UserError(f"--data-dir {root}: the directory is empty")
    if fmt == "auto":
        return root, detect_format(root)
    if not _has_format(root, fmt):
        expected = {
            "imagefolder": "train/<class>/ image folders",
            "cifar10": "cifar-10-batches-py/",
            "cifar100": "cifar-100-python/",
            "mnist": "MNIST/raw/train-images-idx3-ubyte",
            "fashion-mnist": "FashionMNIST/raw/train-images-idx3-ubyte",
            "svhn": "train_32x32.mat",
        }[fmt]
        raise UserError(f"--dataset-format {fmt}: {root} holds no {expected}")
    return root, fmt


@dataclass
class _Layout:
    """An image folder: class names, ``(file, label)`` per split, links leading outside it."""

    names: tuple[str, ...]
    splits: dict[str, list[tuple[Path, int]]]
    linked_outside: list[str]

    def files(self) -> list[Path]:
        return [f for items in self.splits.values() for f, _ in items]


def _outside(path: Path, root: Path, real_root: Path) -> str | None:
    """``"<path under root> -> <target>"`` when ``path`` resolves outside ``real_root``."""
    target = path.resolve()
    if target == real_root or real_root in target.parents:
        return None
    return f"{path.relative_to(root).as_posix()} -> {target}"


def _folder_layout(root: Path) -> _Layout:
    """Class names (sorted ``train/`` folders) and, per split present, ``(file, label)``; class
    folders and image files that are links to places outside ``root`` are listed (used, and
    logged by :func:`load_image_data`: the user may have meant to link them, or not)."""
    class_dirs = _visible_dirs(root / "train")
    if not class_dirs:
        raise UserError(f"--data-dir {root}: train/ has no class folders (train/<class>/*.png)")
    names = tuple(d.name for d in class_dirs)
    if len(names) < 2:
        raise UserError(
            f"--data-dir {root}: train/ has a single class folder ({names[0]!r}); "
            "classification needs at least 2"
        )
    if len(names) > MAX_CLASSES:
        raise UserError(
            f"--data-dir {root}: train/ has {len(names)} class folders, more than the "
            f"{MAX_CLASSES} supported"
        )
    real_root = root.resolve()
    outside: list[str] = []
    index = {name: i for i, name in enumerate(names)}
    layout: dict[str, list[tuple[Path, int]]] = {}
    for split in SPLITS:
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        items: list[tuple[Path, int]] = []
        for class_dir in _visible_dirs(split_dir):
            if class_dir.name not in index:
                raise UserError(
                    f"--data-dir {root}: {split}/{class_dir.name}/ is not a class of train/ "
                    f"({', '.join(names)})"
                )
            files = _image_files(class_dir)
            linked = _outside(class_dir, root, real_root)
            if linked is not None:
                outside.append(linked)
            else:  # files inside a linked folder are covered by the folder's line
                found = (_outside(f, root, real_root) for f in files if f.is_symlink())
                outside.extend(x for x in found if x is not None)
            if not files:
                raise UserError(
                    f"--data-dir {root}: class folder {split}/{class_dir.name}/ holds no image "
                    f"files ({', '.join(IMAGE_EXTENSIONS)})"
                )
            items.extend((f, index[class_dir.name]) for f in files)
        if not items:
            raise UserError(f"--data-dir {root}: {split}/ has no class folders")
        layout[split] = items
    return _Layout(names, layout, outside)


def source_files(root: Path, fmt: str) -> list[Path]:
    """The files a format reads under ``root`` (what the cache fingerprint covers)."""
    if fmt == "imagefolder":
        return _folder_layout(root).files()
    if fmt == "cifar10":
        base = root if root.name == "cifar-10-batches-py" else root / "cifar-10-batches-py"
    elif fmt == "cifar100":
        base = root if root.name == "cifar-100-python" else root / "cifar-100-python"
    elif fmt in _MNIST_DIRS:
        found = _mnist_root(root, fmt)
        assert found is not None
        base = found / _MNIST_DIRS[fmt] / "raw"
    else:
        base = root
        return sorted(p for p in base.glob("*_32x32.mat") if p.is_file())
    return sorted(p for p in base.iterdir() if p.is_file())


# ------------------------------------------------------------------------------ decoding

_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "P;L"})


def _decode(path: Path, image_size: int | None) -> Tensor:
    """One file as uint8 ``C x H x W`` (C = 1 for grayscale, else 3)."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        gray = img.mode in _GRAY_MODES or (img.mode == "P" and _palette_is_gray(img))
        converted = img.convert("L" if gray else "RGB")
    if image_size is not None and converted.size != (image_size, image_size):
        converted = converted.resize((image_size, image_size), Image.Resampling.BILINEAR)
    w, h = converted.size
    c = 1 if gray else 3
    pixels = torch.frombuffer(bytearray(converted.tobytes()), dtype=torch.uint8)
    return pixels.view(h, w, c).permute(2, 0, 1).contiguous()


def _palette_is_gray(img: Any) -> bool:
    palette = img.getpalette() or []
    return all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette), 3))


def _stack(images: list[Tensor], root: Path) -> Tensor:
    channels = max(int(x.shape[0]) for x in images)
    sizes = {tuple(x.shape[1:]) for x in images}
    if len(sizes) > 1:
        shown = ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:3])
        raise UserError(
            f"--data-dir {root}: images have different sizes ({shown}, ...); pass --image-size N "
            "to resize them to N x N"
        )
    return torch.stack(
        [x.expand(channels, -1, -1) if x.shape[0] != channels else x for x in images]
    )


def _decode_folder(
    root: Path, layout: _Layout, image_size: int | None, max_bad_fraction: float
) -> tuple[tuple[str, ...], dict[str, tuple[Tensor, Tensor]], list[str], int]:
    names = layout.names
    decoded: dict[str, tuple[list[Tensor], list[int]]] = {}
    skipped: list[str] = []
    total = 0
    for split, items in layout.splits.items():
        images, labels = [], []
        for path, label in items:
            total += 1
            try:
                images.append(_decode(path, image_size))
            except Exception:  # PIL raises many types for a bad file; all mean "unreadable"
                skipped.append(path.relative_to(root).as_posix())
                continue
            labels.append(label)
        decoded[split] = (images, labels)
    if skipped and len(skipped) > max_bad_fraction * total:
        raise UserError(
            f"--data-dir {root}: {len(skipped)} of {total} image files cannot be decoded "
            f"({len(skipped) / total:.1%} > --max-bad-images {max_bad_fraction:g}), e.g. "
            f"{skipped[0]}"
        )
    if not decoded["train"][0]:
        raise UserError(f"--data-dir {root}: no decodable image under train/")
    # one channel count for every split: RGB if any image is colour
    channels = max(int(x.shape[0]) for imgs, _ in decoded.values() for x in imgs)
    splits: dict[str, tuple[Tensor, Tensor]] = {}
    for split, (images, labels) in decoded.items():
        if not images:
            raise UserError(f"--data-dir {root}: no decodable image under {split}/")
        stacked = _stack(images, root)
        if stacked.shape[1] != channels:
            stacked = stacked.expand(-1, channels, -1, -1).contiguous()
        splits[split] = (stacked, torch.tensor(labels, dtype=torch.int64))
    sizes = {tuple(x.shape[2:]) for x, _ in splits.values()}
    if len(sizes) > 1:
        raise UserError(
            f"--data-dir {root}: the splits' images have different sizes; pass --image-size N"
        )
    return names, splits, skipped, total


def _resize(images: Tensor, image_size: int | None) -> Tensor:
    if image_size is None or tuple(images.shape[-2:]) == (image_size, image_size):
        return images
    out = []
    for chunk in images.split(4096):
        resized = torch.nn.functional.interpolate(
            chunk.float(), size=(image_size, image_size), mode="bilinear", antialias=True
        )
        out.append(resized.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


def _decode_torchvision(
    root: Path, fmt: str, image_size: int | None
) -> tuple[tuple[str, ...], dict[str, tuple[Tensor, Tensor]]]:
    if fmt in ("cifar10", "cifar100"):
        from aees.runner.tasks.cifar.data import load_cifar10, load_cifar100

        try:
            data = (load_cifar10 if fmt == "cifar10" else load_cifar100)(root)
        except (FileNotFoundError, ValueError) as err:
            raise UserError(f"--data-dir: {err}") from None
        names = tuple(data["class_names"])
        train = (data["train_images"], data["train_labels"])
        test = (data["test_images"], data["test_labels"])
    elif fmt in _MNIST_DIRS:
        import torchvision.datasets as tvd

        cls = tvd.MNIST if fmt == "mnist" else tvd.FashionMNIST
        base = _mnist_root(root, fmt)
        try:
            sets = [cls(str(base), train=t, download=False) for t in (True, False)]
        except (RuntimeError, OSError, ValueError, AssertionError) as err:
            raise UserError(
                f"--data-dir {root}: cannot read {_DATASET_NAMES[fmt]}: {err}"
            ) from None
        names = tuple(str(c) for c in sets[0].classes)
        train, test = ((s.data.unsqueeze(1).contiguous(), s.targets.long()) for s in sets)
    else:
        import torchvision.datasets as tvd

        try:
            sets = [tvd.SVHN(str(root), split=s, download=False) for s in ("train", "test")]
        except (RuntimeError, OSError, ValueError, ImportError) as err:
            raise UserError(f"--data-dir {root}: cannot read SVHN: {err}") from None
        names = tuple(str(i) for i in range(10))
        train, test = (
            (torch.as_tensor(s.data).contiguous(), torch.as_tensor(s.labels).long()) for s in sets
        )
    splits = {"train": train, "test": test}
    return names, {k: (_resize(x, image_size), y) for k, (x, y) in splits.items()}


def load_image_data(
    data_dir: str | os.PathLike[str],
    *,
    dataset_format: str = "auto",
    image_size: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    max_bad_fraction: float = 0.01,
    log: Callable[[str], None] = print,
) -> ImageData:
    """Decode (or read from the cache) every split under ``data_dir``; see the module doc.

    ``cache_dir`` defaults to ``<data_dir>/.aees-cache``; a cache that cannot be written is
    logged and skipped.
    """
    if dataset_format not in DATASET_FORMATS:
        raise UserError(f"--dataset-format must be one of {', '.join(DATASET_FORMATS)}")
    root, fmt = _check_root(data_dir, dataset_format)
    layout = _folder_layout(root) if fmt == "imagefolder" else None
    files = layout.files() if layout is not None else source_files(root, fmt)
    if layout is not None and layout.linked_outside:
        first, count = layout.linked_outside[0], len(layout.linked_outside)
        log(
            f"warning: --data-dir {root}: {count} class folder(s) or image file(s) link outside "
            f"it, e.g. {first}; their images are used"
        )
    digest = fingerprint(root, fmt, files, image_size)
    expected = CacheSpec(
        fingerprint=digest,
        format=fmt,
        image_size=image_size,
        num_files=len(files),
        splits=tuple(layout.splits) if layout is not None else ("train", "test"),
        class_names=layout.names if layout is not None else None,
        num_classes=len(layout.names) if layout is not None else _FORMAT_CLASSES[fmt],
    )
    cache_root = Path(cache_dir).expanduser() if cache_dir else root / ".aees-cache"
    path = cache_path(cache_root, root, fmt, image_size)
    payload, rejected = read_cache(path, expected)
    if rejected is not None:
        log(f"image cache {path} rejected ({rejected}); rebuilding it")
    hit = payload is not None
    if payload is None:
        payload = _decode_payload(root, fmt, layout, image_size, max_bad_fraction, expected)
        written = write_cache(path, payload, log, links_from=cache_root if cache_dir else root)
    else:
        written = True
    skipped = list(payload["skipped"])
    if skipped and len(skipped) > max_bad_fraction * payload["num_files"]:
        raise UserError(
            f"--data-dir {root}: {len(skipped)} of {payload['num_files']} image files "
            f"cannot be decoded (> --max-bad-images {max_bad_fraction:g}), e.g. {skipped[0]}"
        )
    splits = {k: (v["images"], v["labels"]) for k, v in payload["splits"].items()}
    name = (root.name or str(root)) if fmt == "imagefolder" else _DATASET_NAMES[fmt]
    cache = {"path": str(path), "fingerprint": digest, "hit": hit, "written": written}
    if rejected is not None:
        cache["rejected"] = rejected
    return ImageData(
        name=name,
        format=fmt,
        root=root,
        class_names=tuple(payload["class_names"]),
        splits=splits,
        skipped=skipped,
        num_files=int(payload["num_files"]),
        cache=cache,
        linked_outside=layout.linked_outside if layout is not None else [],
    )


def _decode_payload(
    root: Path,
    fmt: str,
    layout: _Layout | None,
    image_size: int | None,
    max_bad_fraction: float,
    expected: CacheSpec,
) -> dict[str, Any]:
    """Decode the source files into a cache payload, checked as a cache read back is (a
    crafted MNIST label file, say, can hold labels outside the classes)."""
    skipped: list[str] = []
    if layout is not None:
        names, splits, skipped, _ = _decode_folder(root, layout, image_size, max_bad_fraction)
    else:
        names, splits = _decode_torchvision(root, fmt, image_size)
    payload: dict[str, Any] = {
        "version": CACHE_VERSION,
        "fingerprint": expected.fingerprint,
        "format": fmt,
        "class_names": list(names),
        "splits": {
            k: {"images": x.contiguous(), "labels": y.to(torch.int64).contiguous()}
            for k, (x, y) in splits.items()
        },
        "skipped": skipped,
        "num_files": expected.num_files,
    }
    payload["content_sha256"] = content_digest(payload)
    problem = cache_problem(payload, expected)
    if problem is not None:
        raise UserError(f"--data-dir {root}: the decoded {_DATASET_NAMES.get(fmt, fmt)}: {problem}")
    return payload
