"""Training-label corruption protocols of the thesis, plus their compact manifest and diagnostics.

Three protocols reproduce the thesis runners exactly (docs/protocols.md §7):

``cifar_symmetric``
    ``rng = random.Random(seed)``; ``order = list(range(N))``; ``rng.shuffle(order)``; the first
    ``int(round(N * rate))`` entries of ``order`` are corrupted, kept in that shuffled order. For
    each of them, in that order and with the same ``rng``: ``k = rng.randrange(C - 1)`` and the new
    label is ``k`` if ``k < orig`` else ``k + 1`` -- uniform over the ``C - 1`` other classes.
``cifar_asymmetric``
    The same seeded shuffle and selection, then the deterministic within-superclass cycle
    ``a -> b -> c -> d -> e -> a`` over each CIFAR-100 superclass's five fine labels
    (:data:`aees.runner.cifar100_classes.CIFAR100_SUPERCLASSES`).
``agnews_symmetric``
    ``rng = random.Random(seed)`` (the runner's ``--label-noise-seed``, default 42, independent of
    the training seed); ``corrupted = set(rng.sample(range(N), int(round(rate * N))))``; for each
    index in **sorted** order the new label is ``rng.choice([c for c in range(C) if c != orig])``.

Seeding policy (docs/protocols.md §7.1): the thesis seeds CIFAR corruption with the *training* seed
and AG News with a separate noise seed. The functions here take the seed explicitly and every
:class:`LabelCorruption` records it, so the policy a runner picks is visible in its results.

Result size (docs/protocols.md §7.6): instead of five 50,000-entry lists per result, store
:meth:`LabelCorruption.manifest` (protocol, seed, counts, SHA-256 digests) in the result JSON and,
if the indices are wanted, :meth:`LabelCorruption.write_side_file` (gzip'd JSON) next to it.

Imports the standard library, :mod:`aees.runner.cifar100_classes` and :mod:`aees.results.io`
(the atomic side-file writer; it loads :mod:`aees.results`). Label sequences may be lists,
tuples, or anything with a ``tolist()`` method (torch tensors, numpy arrays).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import operator
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

from aees.results.io import atomic_write
from aees.runner.cifar100_classes import CIFAR100_ASYMMETRIC_MAP, CIFAR100_NUM_CLASSES

__all__ = [
    "AGNEWS_DEFAULT_NOISE_SEED",
    "AGNEWS_NUM_CLASSES",
    "DIAGNOSTIC_KEYS",
    "NOISE_TYPES",
    "PROTOCOLS",
    "PROTOCOL_CYCLIC_ASYMMETRIC",
    "PROTOCOL_MAPPED_ASYMMETRIC",
    "SIDE_FILE_FORMAT",
    "LabelCorruption",
    "agnews_label_noise",
    "cifar100_label_noise",
    "cifar_asymmetric_noise",
    "cifar_symmetric_noise",
    "cyclic_asymmetric_noise",
    "digest_ints",
    "label_noise_accuracies",
    "mapped_asymmetric_noise",
    "no_label_noise",
    "num_corrupted",
]

AGNEWS_NUM_CLASSES = 4
AGNEWS_DEFAULT_NOISE_SEED = 42

PROTOCOL_NONE = "none"
PROTOCOL_CIFAR_SYMMETRIC = "cifar_symmetric"
PROTOCOL_CIFAR_ASYMMETRIC = "cifar_asymmetric"
PROTOCOL_AGNEWS_SYMMETRIC = "agnews_symmetric"
#: The digits task's asymmetric noise: the CIFAR selection, then ``d -> (d + 1) mod C``.
PROTOCOL_CYCLIC_ASYMMETRIC = "cyclic_asymmetric"
#: The image task's ``--label-noise-map``: the CIFAR selection among the mapped classes' examples,
#: then ``src -> dst`` from the map.
PROTOCOL_MAPPED_ASYMMETRIC = "mapped_asymmetric"
PROTOCOLS = (
    PROTOCOL_NONE,
    PROTOCOL_CIFAR_SYMMETRIC,
    PROTOCOL_CIFAR_ASYMMETRIC,
    PROTOCOL_AGNEWS_SYMMETRIC,
    PROTOCOL_CYCLIC_ASYMMETRIC,
    PROTOCOL_MAPPED_ASYMMETRIC,
)
#: The ``--label-noise-type`` choices of the CIFAR runner.
NOISE_TYPES = ("none", "symmetric", "asymmetric")
_NOISE_TYPE_OF_PROTOCOL = {
    PROTOCOL_NONE: "none",
    PROTOCOL_CIFAR_SYMMETRIC: "symmetric",
    PROTOCOL_CIFAR_ASYMMETRIC: "asymmetric",
    PROTOCOL_AGNEWS_SYMMETRIC: "symmetric",
    PROTOCOL_CYCLIC_ASYMMETRIC: "asymmetric",
    PROTOCOL_MAPPED_ASYMMETRIC: "asymmetric",
}

SIDE_FILE_FORMAT = "aees.label_corruption"
_SIDE_FILE_VERSION = 1

#: Keys of :func:`label_noise_accuracies`, as named in docs/protocols.md §10.
DIAGNOSTIC_KEYS = (
    "train_all_accuracy",
    "train_clean_accuracy",
    "train_corrupted_accuracy_vs_noisy_labels",
    "train_corrupted_accuracy_vs_clean_labels",
)


def _int_list(values: Any, name: str) -> list[int]:
    if hasattr(values, "tolist") and not isinstance(values, (list, tuple)):
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a sequence of ints, got {type(values).__name__}")
    out: list[int] = []
    for i, v in enumerate(values):
        try:
            if isinstance(v, bool):
                raise TypeError
            out.append(operator.index(v))
        except TypeError:
            raise ValueError(f"{name}[{i}] must be an int, got {v!r}") from None
    return out


def _labels(values: Any, name: str, num_classes: int) -> list[int]:
    out = _int_list(values, name)
    for i, v in enumerate(out):
        if not 0 <= v < num_classes:
            raise ValueError(f"{name}[{i}] must be in [0, {num_classes}), got {v}")
    return out


def _bool_list(values: Any, name: str) -> list[bool]:
    if hasattr(values, "tolist") and not isinstance(values, (list, tuple)):
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{name} must be a sequence of bools, got {type(values).__name__}")
    out = list(values)
    for i, v in enumerate(out):
        if not isinstance(v, bool) and v not in (0, 1):
            raise ValueError(f"{name}[{i}] must be a bool, got {v!r}")
    return [bool(v) for v in out]


def _check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    return seed


def _check_rate(rate: Any, *, upper_inclusive: bool) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise ValueError(f"rate must be a number, got {rate!r}")
    rate = float(rate)
    upper_ok = rate <= 1.0 if upper_inclusive else rate < 1.0
    if not (math.isfinite(rate) and rate >= 0.0 and upper_ok):
        interval = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise ValueError(f"rate must be in {interval}, got {rate!r}")
    return rate


def _check_num_classes(num_classes: Any) -> int:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
    return num_classes


def num_corrupted(num_examples: int, rate: float) -> int:
    """``int(round(num_examples * rate))`` -- the thesis count (Python's round-half-to-even)."""
    if isinstance(num_examples, bool) or not isinstance(num_examples, int) or num_examples < 0:
        raise ValueError(f"num_examples must be an int >= 0, got {num_examples!r}")
    return round(num_examples * _check_rate(rate, upper_inclusive=True))


def digest_ints(values: Sequence[int]) -> str:
    """SHA-256 (hex) of the decimal values joined by commas, in the given order, as ASCII."""
    return hashlib.sha256(",".join(str(int(v)) for v in values).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class LabelCorruption:
    """One realised label corruption.

    ``noisy_labels[j]`` is the new label of example ``corrupted_indices[j]``. The indices keep the
    protocol's order: shuffled selection order for CIFAR, ascending for AG News. ``rate`` is the
    requested rate; :attr:`count` is how many labels actually changed.
    """

    protocol: str
    rate: float
    seed: int
    num_examples: int
    num_classes: int
    corrupted_indices: tuple[int, ...] = field(repr=False)
    noisy_labels: tuple[int, ...] = field(repr=False)

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}, got {self.protocol!r}")
        _check_rate(self.rate, upper_inclusive=True)
        _check_seed(self.seed)
        _check_num_classes(self.num_classes)
        if (
            isinstance(self.num_examples, bool)
            or not isinstance(self.num_examples, int)
            or self.num_examples < 0
        ):
            raise ValueError(f"num_examples must be an int >= 0, got {self.num_examples!r}")
        indices = tuple(_int_list(self.corrupted_indices, "corrupted_indices"))
        labels = tuple(_labels(self.noisy_labels, "noisy_labels", self.num_classes))
        if len(indices) != len(labels):
            raise ValueError(
                f"noisy_labels must have one entry per corrupted index ({len(indices)}), "
                f"got {len(labels)}"
            )
        if len(set(indices)) != len(indices):
            raise ValueError("corrupted_indices must not contain duplicates")
        for i, idx in enumerate(indices):
            if not 0 <= idx < self.num_examples:
                raise ValueError(
                    f"corrupted_indices[{i}] must be in [0, {self.num_examples}), got {idx}"
                )
        if self.protocol == PROTOCOL_NONE and indices:
            raise ValueError(f"protocol 'none' must corrupt nothing, got {len(indices)} indices")
        object.__setattr__(self, "corrupted_indices", indices)
        object.__setattr__(self, "noisy_labels", labels)

    @property
    def count(self) -> int:
        """Number of corrupted examples."""
        return len(self.corrupted_indices)

    @property
    def enabled(self) -> bool:
        """True when at least one label was changed."""
        return self.count > 0

    @property
    def noise_type(self) -> str:
        """``"none"``, ``"symmetric"`` or ``"asymmetric"`` (the runners' ``label_noise_type``)."""
        return _NOISE_TYPE_OF_PROTOCOL[self.protocol]

    @cached_property
    def indices_sha256(self) -> str:
        """:func:`digest_ints` of :attr:`corrupted_indices` (protocol order)."""
        return digest_ints(self.corrupted_indices)

    @cached_property
    def noisy_labels_sha256(self) -> str:
        """:func:`digest_ints` of :attr:`noisy_labels` (aligned with the indices)."""
        return digest_ints(self.noisy_labels)

    def corrupted_mask(self) -> list[bool]:
        """``bool[num_examples]``, True where the label was corrupted."""
        mask = [False] * self.num_examples
        for idx in self.corrupted_indices:
            mask[idx] = True
        return mask

    def clean_mask(self) -> list[bool]:
        """``bool[num_examples]``, True where the label is untouched."""
        return [not m for m in self.corrupted_mask()]

    def apply(self, targets: Sequence[int]) -> list[int]:
        """A new list: ``targets`` with the corrupted entries replaced (the input is unchanged)."""
        out = _int_list(targets, "targets")
        if len(out) != self.num_examples:
            raise ValueError(
                f"targets must have num_examples={self.num_examples} entries, got {len(out)}"
            )
        for idx, label in zip(self.corrupted_indices, self.noisy_labels, strict=True):
            out[idx] = label
        return out

    def manifest(self, side_file: str | os.PathLike[str] | None = None) -> dict[str, Any]:
        """Compact, JSON-ready description that replaces the thesis's per-example lists.

        Carries the thesis ``label_noise`` scalar keys (``enabled``, ``type``, ``rate``,
        ``num_train_examples``, ``num_clean_examples``, ``num_corrupted_examples``,
        ``corrupted_fraction``) plus ``protocol``, ``seed``, ``num_classes``, ``count`` and the two
        digests; ``corrupted_indices_file`` when ``side_file`` is given.
        """
        out: dict[str, Any] = {
            "enabled": self.enabled,
            "type": self.noise_type,
            "protocol": self.protocol,
            "rate": self.rate,
            "seed": self.seed,
            "num_classes": self.num_classes,
            "num_train_examples": self.num_examples,
            "num_clean_examples": self.num_examples - self.count,
            "num_corrupted_examples": self.count,
            "corrupted_fraction": self.count / self.num_examples if self.num_examples else 0.0,
            "count": self.count,
            "indices_sha256": self.indices_sha256,
            "noisy_labels_sha256": self.noisy_labels_sha256,
        }
        if side_file is not None:
            out["corrupted_indices_file"] = os.fspath(side_file)
        return out

    def write_side_file(self, path: str | os.PathLike[str]) -> Path:
        """Write indices and new labels as gzip'd JSON, atomically and byte-reproducibly."""
        target = Path(path)
        payload = {
            "format": SIDE_FILE_FORMAT,
            "version": _SIDE_FILE_VERSION,
            "protocol": self.protocol,
            "rate": self.rate,
            "seed": self.seed,
            "num_examples": self.num_examples,
            "num_classes": self.num_classes,
            "count": self.count,
            "indices_sha256": self.indices_sha256,
            "noisy_labels_sha256": self.noisy_labels_sha256,
            "corrupted_indices": list(self.corrupted_indices),
            "noisy_labels": list(self.noisy_labels),
        }
        raw = json.dumps(payload, separators=(",", ":")).encode("utf-8")

        def write(handle: BinaryIO) -> None:
            with gzip.GzipFile(fileobj=handle, mode="wb", mtime=0) as gz:
                gz.write(raw)

        return atomic_write(target, write)

    @classmethod
    def read_side_file(cls, path: str | os.PathLike[str]) -> LabelCorruption:
        """Load a file written by :meth:`write_side_file`; checks format, count and digests."""
        with gzip.open(path, "rb") as gz:
            payload = json.loads(gz.read().decode("utf-8"))
        return cls.from_payload(payload, source=os.fspath(path))

    @classmethod
    def from_payload(
        cls, payload: Mapping[str, Any], *, source: str = "payload"
    ) -> LabelCorruption:
        """Rebuild from a side-file payload dict, verifying its recorded count and digests."""
        if payload.get("format") != SIDE_FILE_FORMAT:
            raise ValueError(
                f"{source}: format must be {SIDE_FILE_FORMAT!r}, got {payload.get('format')!r}"
            )
        if payload.get("version") != _SIDE_FILE_VERSION:
            raise ValueError(
                f"{source}: version must be {_SIDE_FILE_VERSION}, got {payload.get('version')!r}"
            )
        keys = ("protocol", "rate", "seed", "num_examples", "num_classes", "corrupted_indices")
        missing = [k for k in (*keys, "noisy_labels") if k not in payload]
        if missing:
            raise ValueError(f"{source}: missing keys {missing}")
        record = cls(
            protocol=payload["protocol"],
            rate=payload["rate"],
            seed=payload["seed"],
            num_examples=payload["num_examples"],
            num_classes=payload["num_classes"],
            corrupted_indices=tuple(payload["corrupted_indices"]),
            noisy_labels=tuple(payload["noisy_labels"]),
        )
        checks = (
            ("count", record.count),
            ("indices_sha256", record.indices_sha256),
            ("noisy_labels_sha256", record.noisy_labels_sha256),
        )
        for key, actual in checks:
            if key in payload and payload[key] != actual:
                raise ValueError(
                    f"{source}: {key} is {payload[key]!r} but the data gives {actual!r}"
                )
        return record


def no_label_noise(
    num_examples: int, *, seed: int = 0, rate: float = 0.0, num_classes: int = CIFAR100_NUM_CLASSES
) -> LabelCorruption:
    """The empty corruption (noise disabled)."""
    return LabelCorruption(PROTOCOL_NONE, rate, seed, num_examples, num_classes, (), ())


def _checked_args(
    targets: Sequence[int],
    rate: float,
    seed: int,
    num_classes: int,
    *,
    name: str = "targets",
    upper_inclusive: bool = True,
) -> tuple[list[int], float, int, int]:
    """(labels, rate, seed, num_classes) of a noise protocol's arguments, each checked."""
    num_classes = _check_num_classes(num_classes)
    labels = _labels(targets, name, num_classes)
    return (
        labels,
        _check_rate(rate, upper_inclusive=upper_inclusive),
        _check_seed(seed),
        num_classes,
    )


def _cifar_selection(n: int, rate: float, seed: int) -> tuple[random.Random, list[int]]:
    rng = random.Random(seed)
    order = list(range(n))
    rng.shuffle(order)
    return rng, order[: round(n * rate)]


def cifar_symmetric_noise(
    targets: Sequence[int], rate: float, seed: int, *, num_classes: int = CIFAR100_NUM_CLASSES
) -> LabelCorruption:
    """Thesis CIFAR symmetric noise (docs/protocols.md §7): seeded shuffle, then
    ``randrange(C-1)`` skip-own."""
    labels, rate, seed, num_classes = _checked_args(targets, rate, seed, num_classes)
    if round(len(labels) * rate) == 0:
        return no_label_noise(len(labels), seed=seed, rate=rate, num_classes=num_classes)
    rng, selected = _cifar_selection(len(labels), rate, seed)
    new: list[int] = []
    for idx in selected:
        k = rng.randrange(num_classes - 1)
        new.append(k if k < labels[idx] else k + 1)
    return LabelCorruption(
        PROTOCOL_CIFAR_SYMMETRIC, rate, seed, len(labels), num_classes, tuple(selected), tuple(new)
    )


def cifar_asymmetric_noise(targets: Sequence[int], rate: float, seed: int) -> LabelCorruption:
    """Thesis CIFAR-100 asymmetric noise (docs/protocols.md §7): seeded shuffle, then the
    superclass cycle."""
    labels = _labels(targets, "targets", CIFAR100_NUM_CLASSES)
    rate = _check_rate(rate, upper_inclusive=True)
    seed = _check_seed(seed)
    if round(len(labels) * rate) == 0:
        return no_label_noise(len(labels), seed=seed, rate=rate)
    _rng, selected = _cifar_selection(len(labels), rate, seed)
    new = tuple(CIFAR100_ASYMMETRIC_MAP[labels[idx]] for idx in selected)
    return LabelCorruption(
        PROTOCOL_CIFAR_ASYMMETRIC,
        rate,
        seed,
        len(labels),
        CIFAR100_NUM_CLASSES,
        tuple(selected),
        new,
    )


def cifar100_label_noise(
    targets: Sequence[int], noise_type: str, rate: float, seed: int
) -> LabelCorruption:
    """Dispatch on the CIFAR runner's ``--label-noise-type`` / ``--label-noise-rate``.

    ``noise_type`` is ``"none"`` (then ``rate`` must be 0.0), ``"symmetric"`` or ``"asymmetric"``;
    ``rate`` is in [0, 1]. Noise is disabled (protocol ``"none"``) when the type is ``"none"`` or
    the count ``int(round(N * rate))`` is 0.
    """
    if noise_type not in NOISE_TYPES:
        raise ValueError(f"noise_type must be one of {NOISE_TYPES}, got {noise_type!r}")
    rate = _check_rate(rate, upper_inclusive=True)
    if noise_type == "none":
        if rate != 0.0:
            raise ValueError(f"rate must be 0.0 when noise_type is 'none', got {rate!r}")
        labels = _labels(targets, "targets", CIFAR100_NUM_CLASSES)
        return no_label_noise(len(labels), seed=_check_seed(seed))
    if noise_type == "symmetric":
        return cifar_symmetric_noise(targets, rate, seed)
    return cifar_asymmetric_noise(targets, rate, seed)


def cyclic_asymmetric_noise(
    targets: Sequence[int], rate: float, seed: int, *, num_classes: int
) -> LabelCorruption:
    """The CIFAR seeded-shuffle selection, then ``c -> (c + 1) mod C`` (docs/protocols.md §4.6):
    the class-count-generic form of the digits task's asymmetric noise."""
    labels, rate, seed, num_classes = _checked_args(targets, rate, seed, num_classes)
    if round(len(labels) * rate) == 0:
        return no_label_noise(len(labels), seed=seed, rate=rate, num_classes=num_classes)
    _rng, selected = _cifar_selection(len(labels), rate, seed)
    new = tuple((labels[idx] + 1) % num_classes for idx in selected)
    return LabelCorruption(
        PROTOCOL_CYCLIC_ASYMMETRIC, rate, seed, len(labels), num_classes, tuple(selected), new
    )


def mapped_asymmetric_noise(
    targets: Sequence[int],
    rate: float,
    seed: int,
    mapping: Mapping[int, int],
    *,
    num_classes: int,
) -> LabelCorruption:
    """Asymmetric noise by an explicit class map (docs/protocols.md §4.6).

    The eligible examples are those whose class is a key of ``mapping`` (all of them for a full
    map); ``round(eligible * rate)`` of them are chosen by the CIFAR seeded shuffle (over the
    eligible examples, in dataset order) and relabelled ``mapping[label]``.
    """
    labels, rate, seed, num_classes = _checked_args(targets, rate, seed, num_classes)
    table = {int(k): int(v) for k, v in mapping.items()}
    for src, dst in table.items():
        if not (0 <= src < num_classes and 0 <= dst < num_classes) or src == dst:
            raise ValueError(f"mapping {src} -> {dst} must join two classes in [0, {num_classes})")
    eligible = [i for i, y in enumerate(labels) if y in table]
    count = round(len(eligible) * rate)
    if count == 0:
        return no_label_noise(len(labels), seed=seed, rate=rate, num_classes=num_classes)
    rng = random.Random(seed)
    order = list(eligible)
    rng.shuffle(order)
    selected = order[:count]
    new = tuple(table[labels[idx]] for idx in selected)
    return LabelCorruption(
        PROTOCOL_MAPPED_ASYMMETRIC, rate, seed, len(labels), num_classes, tuple(selected), new
    )


def agnews_label_noise(
    labels: Sequence[int],
    rate: float,
    seed: int = AGNEWS_DEFAULT_NOISE_SEED,
    *,
    num_classes: int = AGNEWS_NUM_CLASSES,
) -> LabelCorruption:
    """Thesis AG News symmetric noise (docs/protocols.md §7.5): ``rng.sample`` a set, relabel in
    sorted order.

    ``rate`` must be in [0, 1). ``seed`` is the noise seed (default 42), not the training seed.
    """
    values, rate, seed, num_classes = _checked_args(
        labels, rate, seed, num_classes, name="labels", upper_inclusive=False
    )
    n = len(values)
    k = round(rate * n)
    if k == 0:
        return no_label_noise(n, seed=seed, rate=rate, num_classes=num_classes)
    rng = random.Random(seed)
    corrupted = sorted(set(rng.sample(range(n), k)))
    new = tuple(
        rng.choice([c for c in range(num_classes) if c != values[idx]]) for idx in corrupted
    )
    return LabelCorruption(
        PROTOCOL_AGNEWS_SYMMETRIC, rate, seed, n, num_classes, tuple(corrupted), new
    )


def label_noise_accuracies(
    predictions: Sequence[int],
    clean_labels: Sequence[int],
    noisy_labels: Sequence[int],
    corrupted_mask: Sequence[bool],
) -> dict[str, float | None]:
    """The four final label-noise accuracies of docs/protocols.md §10, as fractions in [0, 1].

    * ``train_all_accuracy``: all examples, against the noisy (training) labels;
    * ``train_clean_accuracy``: uncorrupted examples, against their labels;
    * ``train_corrupted_accuracy_vs_noisy_labels``: corrupted examples, against their noisy labels;
    * ``train_corrupted_accuracy_vs_clean_labels``: corrupted examples, against the original labels.

    All four sequences are indexed by dataset index. A metric over an empty subset is None.
    """
    preds = _int_list(predictions, "predictions")
    clean = _int_list(clean_labels, "clean_labels")
    noisy = _int_list(noisy_labels, "noisy_labels")
    mask = _bool_list(corrupted_mask, "corrupted_mask")
    n = len(preds)
    for name, seq in (("clean_labels", clean), ("noisy_labels", noisy), ("corrupted_mask", mask)):
        if len(seq) != n:
            raise ValueError(f"{name} must have len(predictions)={n} entries, got {len(seq)}")
    for i in range(n):
        if not mask[i] and clean[i] != noisy[i]:
            raise ValueError(
                f"corrupted_mask[{i}] is False but clean_labels[{i}]={clean[i]} != "
                f"noisy_labels[{i}]={noisy[i]}"
            )

    def acc(hits: int, total: int) -> float | None:
        return hits / total if total else None

    all_hits = sum(p == y for p, y in zip(preds, noisy, strict=True))
    n_corrupt = sum(mask)
    clean_hits = sum(p == y for p, y, m in zip(preds, clean, mask, strict=True) if not m)
    corr_noisy = sum(p == y for p, y, m in zip(preds, noisy, mask, strict=True) if m)
    corr_clean = sum(p == y for p, y, m in zip(preds, clean, mask, strict=True) if m)
    return {
        "train_all_accuracy": acc(all_hits, n),
        "train_clean_accuracy": acc(clean_hits, n - n_corrupt),
        "train_corrupted_accuracy_vs_noisy_labels": acc(corr_noisy, n_corrupt),
        "train_corrupted_accuracy_vs_clean_labels": acc(corr_clean, n_corrupt),
    }
