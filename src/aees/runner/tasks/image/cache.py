"""The decoded-image cache of the ``image`` task (docs/protocols.md §4.6).

One file per (data directory, format, ``--image-size``): ``torch.save`` of tensors, strings and
numbers only, read back with ``weights_only=True`` and memory-mapped. It is keyed by a
fingerprint of the source files (relative paths, sizes, mtimes) and holds a SHA-256 of its own
content. A cache read back is used only when its fingerprint matches and its structure, dtypes,
shapes, label range and digest all hold (:func:`cache_problem`); otherwise it is rebuilt and the
reason logged. Checking the digest reads the whole cache once per load: about 25 ms for 5,000
32 x 32 RGB images (15 MB) on a loaded 2-core machine, i.e. about 40 ms per 25 MB.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from aees.results.io import atomic_write

__all__ = [
    "CACHE_VERSION",
    "CacheSpec",
    "cache_path",
    "cache_problem",
    "content_digest",
    "fingerprint",
    "read_cache",
    "write_cache",
]

CACHE_VERSION = 2  # 2: the content digest; a version-1 cache is rebuilt


def fingerprint(root: Path, fmt: str, files: Sequence[Path], image_size: int | None) -> str:
    """SHA-256 of the format, the size and each file's relative path, size and mtime."""
    h = hashlib.sha256(json.dumps([CACHE_VERSION, fmt, image_size]).encode())
    for f in files:
        st = f.stat()
        h.update(f"\0{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()


def cache_path(cache_dir: Path, root: Path, fmt: str, image_size: int | None) -> Path:
    """One cache file per (data directory, format, size): a changed dataset overwrites it."""
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    size = "orig" if image_size is None else str(image_size)
    return cache_dir / f"{root.name or 'data'}-{key}-{fmt}-{size}.pt"


_CACHE_KEYS = (
    "version", "fingerprint", "format", "class_names", "splits", "skipped", "num_files",
    "content_sha256",
)  # fmt: skip


@dataclass(frozen=True)
class CacheSpec:
    """What a cache for this data directory must hold, known without decoding it."""

    fingerprint: str
    format: str
    image_size: int | None
    num_files: int
    splits: tuple[str, ...]
    class_names: tuple[str, ...] | None  # imagefolder: the folders; else the format's count
    num_classes: int


def content_digest(payload: dict[str, Any]) -> str:
    """SHA-256 of everything a cache holds: the header as JSON, then each split's image and
    label bytes (read through the memory map: about 25 ms for 5,000 32 x 32 RGB images)."""
    splits = payload["splits"]
    header = [
        payload[key] for key in ("version", "fingerprint", "format", "class_names", "skipped")
    ]
    header += [
        payload["num_files"],
        [[k, list(splits[k]["images"].shape), list(splits[k]["labels"].shape)] for k in splits],
    ]
    h = hashlib.sha256(json.dumps(header).encode())
    for name in sorted(splits):
        for key in ("images", "labels"):
            h.update(splits[name][key].numpy())  # contiguous (checked): no copy
    return h.hexdigest()


def _split_problem(name: str, split: Any, num_classes: int) -> str | None:
    if not isinstance(split, dict) or set(split) != {"images", "labels"}:
        return f"split {name!r} is not {{images, labels}}"
    images, labels = split["images"], split["labels"]
    if not isinstance(images, Tensor) or not isinstance(labels, Tensor):
        return f"split {name!r} does not hold tensors"
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] not in (1, 3):
        return (
            f"split {name!r} images are {images.dtype} of shape {tuple(images.shape)}, "
            "not uint8 N x (1|3) x H x W"
        )
    if labels.dtype != torch.int64 or labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        return (
            f"split {name!r} labels are {labels.dtype} of shape {tuple(labels.shape)}, not "
            f"int64 of length {images.shape[0]}"
        )
    # a crafted stride (0: one image repeated 10**9 times) would allocate on first copy
    if not (images.is_contiguous() and labels.is_contiguous()) or images.numel() == 0:
        return f"split {name!r} is empty or not contiguous"
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        return f"split {name!r} has labels in [{low}, {high}], outside [0, {num_classes})"
    return None


def cache_problem(payload: Any, expected: CacheSpec) -> str | None:
    """Why ``payload`` (a cache with the right fingerprint, or a fresh decode) cannot be used:
    its structure, dtypes, shapes, label range or content digest; None when it can."""
    missing = [key for key in _CACHE_KEYS if key not in payload]
    if missing:
        return f"missing {', '.join(map(repr, missing))}"
    names, splits, skipped = payload["class_names"], payload["splits"], payload["skipped"]
    if payload["format"] != expected.format:
        return f"format {payload['format']!r}, not {expected.format!r}"
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        return "class_names is not a list of strings"
    if expected.class_names is not None and tuple(names) != expected.class_names:
        return "class_names differ from the class folders"
    if len(names) != expected.num_classes:
        return f"{len(names)} class names, not {expected.num_classes}"
    num_files = payload["num_files"]
    if type(num_files) is not int or num_files != expected.num_files:
        return f"num_files {num_files!r}, not {expected.num_files}"
    if not isinstance(skipped, list) or not all(isinstance(x, str) for x in skipped):
        return "skipped is not a list of strings"
    if not isinstance(splits, dict) or tuple(sorted(splits)) != tuple(sorted(expected.splits)):
        got = sorted(splits) if isinstance(splits, dict) else type(splits).__name__
        return f"splits {got}, not {sorted(expected.splits)}"
    for name in sorted(splits):
        problem = _split_problem(name, splits[name], expected.num_classes)
        if problem is not None:
            return problem
    shapes = {tuple(v["images"].shape[1:]) for v in splits.values()}
    if len(shapes) > 1:
        return f"splits of different image shapes {sorted(shapes)}"
    _, h, w = shapes.pop()
    if expected.image_size is not None and (h, w) != (expected.image_size,) * 2:
        return f"images are {h}x{w}, not --image-size {expected.image_size}"
    if expected.format == "imagefolder":
        decoded = sum(int(v["labels"].shape[0]) for v in splits.values())
        if decoded + len(skipped) != num_files:
            return f"{decoded} images and {len(skipped)} skipped files, not {num_files} files"
    if payload["content_sha256"] != content_digest(payload):
        return "its content does not match its SHA-256 digest (changed since it was written)"
    return None


def read_cache(path: Path, expected: CacheSpec) -> tuple[dict[str, Any] | None, str | None]:
    """The cache at ``path`` if it is one for ``expected`` and sound, else ``(None, why)`` where
    ``why`` is None for a missing or stale (other fingerprint) cache."""
    if not path.is_file():
        return None, None
    try:
        # data only (tensors, strings, numbers); memory-mapped, so a large cache is paged in
        # as batches read it rather than all at once
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # unreadable or foreign: rebuilt
        return None, f"unreadable ({type(err).__name__})"
    if not isinstance(payload, dict):
        return None, f"a {type(payload).__name__}, not a cache dictionary"
    if (
        payload.get("version") != CACHE_VERSION
        or payload.get("fingerprint") != expected.fingerprint
    ):
        return None, None  # an older version, or other files: rebuilt as usual
    problem = cache_problem(payload, expected)
    return (None, problem) if problem else (payload, None)


def write_cache(
    path: Path, payload: dict[str, Any], log: Callable[[str], None], *, links_from: Path
) -> bool:
    """Write the cache file, never through a symbolic link: a link at the file, or anywhere
    from ``links_from`` (the cache directory, or the data directory for the default one) down
    to it (the named directory itself is the user's choice), could point outside the paths the
    user named, so such a cache is not written."""
    where = [path, *(d for d in path.parents if links_from in d.parents)]
    link = next((d for d in where if d.is_symlink()), None)
    if link is not None:
        log(f"image cache not written ({link} is a symbolic link); the images are decoded again")
        return False
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda handle: handle.write(buffer.getbuffer()))
    except OSError as err:
        reason = str(err) if str(path) in str(err) else f"{path}: {err}"  # name the path once
        log(f"image cache not written ({reason}); the images are decoded again next run")
        return False
    return True
