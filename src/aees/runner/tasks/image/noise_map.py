"""The image task's ``--label-noise-map FILE``: a JSON object ``{src: dst}`` keyed and valued by
class name or index, read as data (a bounded regular file) and resolved against the data's class
names (docs/protocols.md §4.6). :func:`aees.runner.label_noise.mapped_asymmetric_noise` applies it.

Imports the standard library and :mod:`aees.results.io` (which loads :mod:`aees.results`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from aees.results.io import display_path, read_regular_file

__all__ = ["MAX_NOISE_MAP_BYTES", "parse_label_noise_map", "read_label_noise_map"]

#: Largest ``--label-noise-map`` file read (16 MiB: a map of every one of 100,000 classes by
#: name fits); a larger file, a FIFO or a link to a device is refused unread.
MAX_NOISE_MAP_BYTES = 16 * 2**20


def read_label_noise_map(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The non-empty JSON object of a ``--label-noise-map`` file (docs/protocols.md §4.6).

    Read by :func:`aees.results.io.read_regular_file`: a regular file of at most
    :data:`MAX_NOISE_MAP_BYTES`. Raises ``ValueError``, one line naming the flag and the file.
    """
    raw = read_regular_file(path, max_bytes=MAX_NOISE_MAP_BYTES, what="--label-noise-map")
    shown = f"--label-noise-map {display_path(path)}"
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:  # JSONDecodeError included
        raise ValueError(f"{shown}: not a JSON file ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or not payload:
        raise ValueError(f"{shown}: must be a non-empty JSON object {{src: dst}}")
    return payload


def parse_label_noise_map(payload: Any, class_names: Sequence[str]) -> dict[int, int]:
    """``{src: dst}`` class indices from a JSON object keyed and valued by class name or index.

    A key or value is first looked up as a class name, then read as an index (an int, or a
    string of digits). Raises ``ValueError`` (one line) for anything else: not an object, an
    unknown class, a class mapped to itself, an empty map.
    """
    if not isinstance(payload, Mapping):
        raise ValueError(f"must be a JSON object {{src: dst}}, got {type(payload).__name__}")
    if not payload:
        raise ValueError("maps no class")
    index = {name: i for i, name in enumerate(class_names)}

    def resolve(value: Any, role: str) -> int:
        if isinstance(value, str) and value in index:
            return index[value]
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(class_names):
            return value
        raise ValueError(
            f"{role} {value!r} is neither a class name nor an index in [0, {len(class_names)})"
        )

    out: dict[int, int] = {}
    for key, value in payload.items():
        src, dst = resolve(key, "source class"), resolve(value, "target class")
        if src == dst:
            raise ValueError(f"maps class {class_names[src]!r} to itself")
        if src in out:
            raise ValueError(f"maps class {class_names[src]!r} twice")
        out[src] = dst
    return out
