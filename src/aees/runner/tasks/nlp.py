"""The one text-classification implementation: ``sst2``, ``agnews`` and ``text``.

Reference: docs/protocols.md §4.3-§4.5 and §4.7. :mod:`.sst2` and :mod:`.agnews` only set the
class attributes of :class:`TextClassificationTask` (their thesis configurations);
:mod:`.text` takes the same things from flags (:meth:`TextClassificationTask.data_spec`): the
columns, the source, the splits read and the class count (from the data, with string labels
mapped to ids in sorted order). Splits follow one rule (:meth:`TextClassificationTask.build`).

**Data.** The raw dataset comes from ``--data-dir`` (a ``DatasetDict`` saved with
``save_to_disk``, with the raw columns ``sentence``/``text`` and ``label``; read offline) or else
from the Hub: ``load_dataset("nyu-mll/glue", "sst2")`` / ``load_dataset("fancyzhx/ag_news")`` (the
canonical ids of the thesis's ``"glue"`` / ``"ag_news"``) with ``cache_dir=--cache-dir``. Texts are
tokenized with ``truncation=True, max_length=--max-length`` and no padding; batches are padded to
their longest sequence by ``DataCollatorWithPadding``. Only ``input_ids`` and ``attention_mask``
(and, for ``text``, ``token_type_ids`` when the tokenizer makes them) are fed to the model (no
``labels``: the loss is cross-entropy on ``outputs.logits``).

**Tokenized cache** (fixes docs/protocols.md §4.5, which reused caches whatever the model or max
length)::

    <--tokenized-dataset-dir>/<tokenizer>-<key>_len<max_length>/
        aees_tokenized.json      # metadata, written last; checked before every reuse
        train/  validation/      # SST-2: the GLUE splits (the test split is unlabelled, unused)
        train/  test/            # AG News: the official splits

``<key>`` is a hash of the tokenizer's vocabulary and behaviour (not just its name) and of the
raw-data source (Hub id or ``--data-dir``). The metadata (format, tokenizer name and fingerprint,
max length, source, splits and their sizes) must match, otherwise the cache is rebuilt. A cache is
written to a temporary directory and renamed into place, so an interrupted write is never reused.

**Splits** (the held-out split is drawn at load time, so one cache serves every ``--val-split``;
the train-split order is that of ``Dataset.train_test_split(seed=42)``, as in the thesis, so the
AG News label noise hits the same examples as the thesis runner's):

* SST-2, default: train = GLUE train (67,349), validation = GLUE validation (872), no test.
  With ``--val-split N``: N training examples (``train_test_split(test_size=N, seed=42)``) are the
  validation set and the GLUE validation split becomes ``test_data`` (evaluated at the final and
  best-validation epochs).
* AG News, default: validation = 10 % of the official train split
  (``train_test_split(test_size=0.1, seed=42)``: 108,000 / 12,000); with ``--val-split N``, N
  examples instead. The official test split (7,600) is always ``test_data``: the validation set is
  a training holdout here, so the test accuracy at the best-validation epoch is a clean estimate
  (the thesis tokenized it but never evaluated it).

**Offline.** ``--local-files-only`` applies to the tokenizer, the model *and* the dataset (the Hub
dataset is then read from ``--cache-dir`` only; docs/protocols.md §4.5). The datasets library is not
touched at all when the tokenized cache is valid. Whatever is missing is reported as one line
naming the exact command that fetches it (:class:`~aees.runner.config.UserError`).
``--hf-token`` (default: ``$HF_TOKEN``) is passed as ``token=`` and never stored (docs/protocols.md
§4.5).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import stat
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset

from aees.results.io import open_regular_file, read_regular_file
from aees.results.schema import RunResultError
from aees.runner.config import RunConfig, UserError, writable_location_problem
from aees.runner.label_noise import LabelCorruption, agnews_label_noise
from aees.runner.tasks import TaskSetup

__all__ = [
    "CACHE_FORMAT",
    "DEFAULT_MODEL_NAME",
    "FILE_BUILDERS",
    "MAX_CLASSES",
    "MAX_FIELD_CHARS",
    "MAX_LABEL_CHARS",
    "MAX_ROW_BYTES",
    "METADATA_NAME",
    "NLP_DEFAULTS",
    "SPLIT_FILE_STEMS",
    "SPLIT_SEED",
    "PadCollate",
    "TextClassificationTask",
    "TextData",
    "TokenizedCache",
    "TokenizedTextDataset",
    "check_data_file",
    "check_text_column",
    "content_digest",
    "data_files",
    "hub_unreachable",
    "label_names_of",
    "logits_cross_entropy",
    "logits_of",
    "model_dir_problem",
    "split_indices",
    "tokenizer_fingerprint",
]

DEFAULT_MODEL_NAME = "distilbert-base-uncased"
#: Seed of every train/validation split (docs/protocols.md §4.4: ``train_test_split(seed=42)``).
SPLIT_SEED = 42
#: Version of the tokenized-cache layout (bump to invalidate every cache). 2: the metadata
#: carries ``content_sha256`` (:func:`content_digest`).
CACHE_FORMAT = 2
METADATA_NAME = "aees_tokenized.json"
MODEL_INPUTS = ("input_ids", "attention_mask")
#: Also fed when the tokenizer makes it (BERT-style segment ids of a text pair; ``text`` only).
OPTIONAL_INPUTS = ("token_type_ids",)
#: Thesis NLP defaults (docs/protocols.md §2).
NLP_DEFAULTS: dict[str, Any] = {
    "epochs": 3,
    "batch_size": 16,
    "lr": 5e-5,
    "weight_decay": 0.01,
    "episode_length": 100,
}
#: Most classes a run takes (docs/protocols.md §4.7): a sparse integer label (``5000``) would
#: otherwise make a 5,001-way head, and ``10**12`` a list of 10**12 class names.
MAX_CLASSES = 1000
#: Longest label value, in characters: a longer one is a text, not a class name.
MAX_LABEL_CHARS = 256
#: Longest CSV field, in characters (texts are cut to ``--max-length`` tokens anyway).
MAX_FIELD_CHARS = 1 << 20
#: Longest line of a data file (a CSV line, a JSON Lines row) and largest average row of a
#: Parquet row group, in bytes: checked before the ``datasets`` builders allocate anything.
MAX_ROW_BYTES = 8 << 20
#: Largest JSON side file read (cache metadata, a checkpoint's ``config.json``).
MAX_JSON_BYTES = 16 << 20
#: How long the Hub reachability probe waits (seconds).
HUB_PROBE_SECONDS = 3.0
# Probe texts for the tokenizer fingerprint: casing, accents, punctuation, sub-words, unknowns.
_PROBE_TEXTS = (
    "Hello, World! It's a GREAT movie -- isn't it?",
    "Café naïve résumé 東京 12,345.67 e-mail @user #tag",
    "unbelievably uncharacteristically tokenization",
)


# ----------------------------------------------------------------------------- helpers


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _slug(name: str) -> str:
    """A directory-safe, readable name for a model id or local path."""
    base = name.rstrip("/\\")
    if os.path.isdir(base):
        base = Path(base).name or "model"
    base = base.replace("/", "--")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", base)[:60] or "model"


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """SHA-256 of what decides the token ids: vocabulary, special tokens and probe encodings.

    Stable across processes and independent of where the files live (``backend_tokenizer.to_str()``
    is not: it changes when truncation is switched on).
    """
    payload = {
        "class": type(tokenizer).__name__,
        "vocab": sorted(tokenizer.get_vocab().items()),
        "special": {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())},
        "probes": [tokenizer(text)["input_ids"] for text in _PROBE_TEXTS],
    }
    blob = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def split_indices(n: int, test_size: float | int, seed: int = SPLIT_SEED) -> tuple[list, list]:
    """``(train, held_out)`` row indices exactly as ``Dataset.train_test_split(test_size, seed)``.

    Computed on an in-memory index column, so nothing is written next to the data and the order
    is the library's (the train part is in permutation order, as the thesis runner used it).
    """
    from datasets import Dataset as HFDataset

    index = HFDataset.from_dict({"i": list(range(n))})
    parts = index.train_test_split(test_size=test_size, seed=seed, keep_in_memory=True)
    return list(parts["train"]["i"]), list(parts["test"]["i"])


def _read_json(path: Path) -> Any:
    """The JSON value of a side file (regular files only, at most :data:`MAX_JSON_BYTES`).

    Raises:
        ValueError: one line naming ``path``: missing, special, too large or not JSON.
    """
    raw = read_regular_file(path, max_bytes=MAX_JSON_BYTES)
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise RunResultError(path, f"not JSON ({_first_line(err)})") from None


def model_dir_problem(name: str) -> str | None:
    """Why the local checkpoint directory ``name`` is refused, or None (also for a Hub id).

    A checkpoint whose ``config.json`` or ``tokenizer_config.json`` names ``auto_map`` (its own
    Python code), or whose ``model_type`` this transformers does not know, would need that code
    to run. aees never runs it (``trust_remote_code=False`` everywhere, docs/protocols.md §4.7);
    saying so here, before anything loads, also means no library prompt can ever ask.
    """
    path = Path(name).expanduser()
    if not path.is_dir():
        return None
    config: Any = None
    for file_name in ("config.json", "tokenizer_config.json"):
        target = path / file_name
        if not os.path.lexists(target):
            continue
        try:
            data = _read_json(target)
        except ValueError as err:
            return f"{file_name}: {getattr(err, 'problem', err)}"
        if not isinstance(data, dict):
            return f"{file_name} is not a JSON object"
        if "auto_map" in data:
            return (
                f"{file_name} names custom model code (auto_map); aees never runs a "
                "checkpoint's own code: use a checkpoint of a model type transformers knows"
            )
        if file_name == "config.json":
            config = data
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type is not None:
        from transformers import CONFIG_MAPPING, __version__

        if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
            return (
                f"config.json: model_type {model_type!r} is not one transformers {__version__} "
                "knows (it would need the checkpoint's own code, which aees never runs)"
            )
    return None


def _custom_code_refused(err: BaseException) -> bool:
    """True when a library refused to load because the checkpoint needs its own code."""
    return "trust_remote_code" in str(err)


def hub_unreachable(timeout: float = HUB_PROBE_SECONDS) -> str | None:
    """Why the Hugging Face Hub cannot be reached (a phrase), or None when it can.

    One TCP connection to the endpoint (``HF_ENDPOINT``, else huggingface.co; the proxy of
    ``HTTPS_PROXY`` / ``ALL_PROXY`` when one is set), name lookup included, bounded by
    ``timeout`` seconds: without it an offline run spent ~53 s in the libraries' retries.
    """
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    proxy = next(
        (
            os.environ[k]
            for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
            if os.environ.get(k)
        ),
        None,
    )
    try:
        target = urlsplit(proxy or constants.ENDPOINT)
        host = target.hostname
        port = target.port or (443 if target.scheme == "https" else 80)
    except ValueError:
        return None  # an endpoint we cannot parse: let the library say what is wrong
    if not host:
        return None
    outcome: list[str | None] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(err.strerror or str(err) or type(err).__name__)

    thread = threading.Thread(target=probe, name="aees-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    where = f"{host}:{port}" + (" (the proxy)" if proxy else "")
    if not outcome:
        return f"no answer from {where} within {timeout:g} s"
    return None if outcome[0] is None else f"{where}: {outcome[0]}"


@contextlib.contextmanager
def _datasets_offline(enabled: bool) -> Iterator[None]:
    """``HF_HUB_OFFLINE`` semantics for the datasets library, for one call (restored after)."""
    if not enabled:
        yield
        return
    import datasets.config as dconfig

    saved = {name: getattr(dconfig, name) for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    try:
        for name in saved:
            setattr(dconfig, name, True)
        yield
    finally:
        for name, value in saved.items():
            setattr(dconfig, name, value)


@contextlib.contextmanager
def _hf_quiet(enabled: bool) -> Iterator[None]:
    """With ``--quiet``: no datasets/transformers progress bars or load reports (restored after)."""
    if not enabled:
        yield
        return
    import datasets
    from transformers.utils import logging as tlog

    bars = datasets.is_progress_bar_enabled()
    tbars = tlog.is_progress_bar_enabled()
    verbosity = tlog.get_verbosity()
    datasets.disable_progress_bars()
    tlog.disable_progress_bar()
    tlog.set_verbosity_error()
    try:
        yield
    finally:
        tlog.set_verbosity(verbosity)
        if tbars:
            tlog.enable_progress_bar()
        if bars:
            datasets.enable_progress_bars()


class TokenizedTextDataset(Dataset):
    """Rows of a tokenized HF dataset as ``({"input_ids", "attention_mask"}, label)`` pairs.

    ``indices`` selects (and orders) rows of ``table``; ``labels`` are this dataset's targets in
    its own order (so label noise never rewrites the arrow data). ``__getitems__`` fetches a whole
    batch from arrow at once (the ``DataLoader`` uses it when present). Rows come as Python lists
    and :class:`PadCollate` makes the tensors: fetching 16 rows in the ``torch`` format took
    ~4 ms (a fifth of a DistilBERT-base step on an H200), as lists ~0.25 ms.
    """

    def __init__(
        self, table: Any, labels: Sequence[int], indices: Sequence[int] | None = None
    ) -> None:
        self.inputs = MODEL_INPUTS + tuple(c for c in OPTIONAL_INPUTS if c in table.column_names)
        self.table = table.with_format(None, columns=list(self.inputs))
        self.indices = None if indices is None else list(indices)
        self.labels = [int(v) for v in labels]
        if len(self.labels) != (len(table) if indices is None else len(self.indices)):
            raise ValueError("labels must have one entry per selected row")

    def __len__(self) -> int:
        return len(self.labels)

    def _row(self, i: int) -> int:
        return i if self.indices is None else self.indices[i]

    def __getitem__(self, i: int) -> tuple[dict[str, list[int]], int]:
        row = self.table[self._row(int(i))]
        return {k: row[k] for k in self.inputs}, self.labels[int(i)]

    def __getitems__(self, idx: Sequence[int]) -> list[tuple[dict[str, list[int]], int]]:
        rows = self.table[[self._row(int(i)) for i in idx]]
        columns = [rows[k] for k in self.inputs]
        return [
            ({k: col[j] for k, col in zip(self.inputs, columns, strict=True)}, self.labels[int(i)])
            for j, i in enumerate(idx)
        ]


class PadCollate:
    """``DataCollatorWithPadding`` on the features (dynamic padding), labels as ``torch.long``."""

    def __init__(self, tokenizer: Any) -> None:
        from transformers import DataCollatorWithPadding

        self.pad = DataCollatorWithPadding(tokenizer, return_tensors="pt")

    def __call__(
        self, batch: Sequence[tuple[Mapping[str, Any], int]]
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        features = [dict(f) for f, _ in batch]
        padded = self.pad(features)
        inputs = {k: padded[k] for k in (*MODEL_INPUTS, *OPTIONAL_INPUTS) if k in padded}
        return inputs, torch.tensor([y for _, y in batch], dtype=torch.long)


def logits_of(outputs: Any) -> torch.Tensor:
    """The ``[B, C]`` logits of a ``SequenceClassifierOutput``."""
    return outputs.logits


def logits_cross_entropy(outputs: Any, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the logits (labels are never passed to the model)."""
    return torch.nn.functional.cross_entropy(outputs.logits.float(), targets)


# ----------------------------------------------------------------------------- the cache


def content_digest(path: Path, splits: Sequence[str], metadata: Mapping[str, Any]) -> str | None:
    """SHA-256 of a tokenized cache: its metadata (less ``content_sha256``) and every file of its
    split directories (relative path, size, bytes); None if one of them is not a regular file
    (a link, a FIFO: never followed or opened)."""
    meta = {k: v for k, v in metadata.items() if k != "content_sha256"}
    h = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode("utf-8"))
    for split in splits:
        top = path / split
        if not stat.S_ISDIR(os.lstat(top).st_mode):
            return None
        for here, dirs, files in os.walk(top):
            dirs.sort()
            for name in (*dirs, *sorted(files)):
                entry = Path(here) / name
                mode = os.lstat(entry).st_mode
                if stat.S_ISDIR(mode) and name in dirs:
                    continue
                if not stat.S_ISREG(mode):
                    return None
                h.update(f"\0{entry.relative_to(path).as_posix()}\0".encode())
                with open_regular_file(entry) as handle:
                    h.update(str(os.fstat(handle.fileno()).st_size).encode())
                    while chunk := handle.read(1 << 20):
                        h.update(chunk)
    return h.hexdigest()


def _label_names_problem(names: Any, train_labels: set[int] | None) -> str | None:
    """Why saved class names are not usable (a phrase), or None."""
    if not isinstance(names, list) or not all(isinstance(v, str) for v in names):
        return "its label_names are not a list of strings"
    if not 2 <= len(names) <= MAX_CLASSES:
        return f"it has {len(names)} label names (2 to {MAX_CLASSES} allowed)"
    if len(set(names)) != len(names) or any(len(v) > MAX_LABEL_CHARS for v in names):
        return f"its label names repeat or exceed {MAX_LABEL_CHARS} characters"
    if train_labels is not None and train_labels != set(range(len(names))):
        return "its label names do not match the classes of its train split"
    return None


def _column_problem(table: Any, column: str, max_length: int | None) -> tuple[str | None, Any]:
    """(problem, lengths) of a list-of-integers column of an arrow table."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = table.column(column)
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)) or not (
        pa.types.is_integer(col.type.value_type)
    ):
        return f"its {column!r} column holds {col.type}, not lists of integers", None
    lengths = pc.list_value_length(col)
    if max_length is not None and (pc.max(lengths).as_py() or 0) > max_length:
        return f"its {column!r} rows are longer than --max-length {max_length}", None
    return None, lengths


def tokenized_problem(
    data: Any, split: str, rows: Any, num_labels: int, vocab_size: int, max_length: int
) -> str | None:
    """Why one tokenized split is not what this run can feed its model (a phrase), or None:
    columns and their types, the row count, token ids inside the vocabulary, masks as long as
    the ids, labels in ``0..num_labels-1``. Vectorised on the arrow table (no rows copied)."""
    import pyarrow.compute as pc

    table = data.data.table
    names = set(table.column_names)
    missing = [c for c in (*MODEL_INPUTS, "label") if c not in names]
    if missing:
        return f"split {split!r} has no {', '.join(missing)} column"
    if not isinstance(rows, int) or table.num_rows != rows or rows < 1:
        return f"split {split!r} holds {table.num_rows} rows, its metadata says {rows!r}"
    why, lengths = _column_problem(table, "input_ids", max_length)
    if why is not None:
        return f"split {split!r}: {why}"
    bounds = pc.min_max(pc.list_flatten(table.column("input_ids"))).as_py()
    if bounds["min"] is not None and not 0 <= bounds["min"] <= bounds["max"] < vocab_size:
        return f"split {split!r} has token ids outside the tokenizer's {vocab_size}"
    for column in ("attention_mask", *[c for c in OPTIONAL_INPUTS if c in names]):
        why, other = _column_problem(table, column, max_length)
        if why is None and not pc.all(pc.equal(other, lengths)).as_py():
            why = f"its {column!r} rows differ in length from its input_ids"
        if why is None:
            b = pc.min_max(pc.list_flatten(table.column(column))).as_py()
            if b["min"] is not None and not 0 <= b["min"] <= b["max"] <= 1:
                why = f"its {column!r} values are not 0 or 1"
        if why is not None:
            return f"split {split!r}: {why}"
    labels = table.column("label")
    if not str(labels.type).startswith(("int", "uint")):
        return f"split {split!r}: its labels are {labels.type}, not integers"
    b = pc.min_max(labels).as_py()
    if not 0 <= b["min"] <= b["max"] < num_labels:
        return f"split {split!r} has labels outside 0..{num_labels - 1}"
    return None


@dataclass
class TokenizedCache:
    """Where a task's tokenized splits live and what they must have been built from."""

    path: Path
    metadata: dict[str, Any]

    def saved(self) -> dict[str, Any] | None:
        """The metadata on disk (None when missing, unreadable, special or not an object)."""
        try:
            saved = _read_json(self.path / METADATA_NAME)
        except ValueError:
            return None
        return saved if isinstance(saved, dict) else None

    def splits(self, saved: Mapping[str, Any] | None = None) -> list[str]:
        """The cached splits: fixed by the task, or (``text``) those the data had, as saved."""
        if "splits" in self.metadata:
            return list(self.metadata["splits"])
        value = (saved if saved is not None else self.saved() or {}).get("splits")
        return [str(v) for v in value] if isinstance(value, list) else []

    def problem(self) -> str | None:
        """Why the cache on disk may not be reused (a phrase), or None: metadata for another
        build, splits missing, or content that does not match its digest (changed since it
        was written)."""
        saved = self.saved()
        if saved is None:
            return f"no readable {METADATA_NAME}"
        for key, value in self.metadata.items():
            if saved.get(key) != value:
                return f"built for another {key}"
        splits = self.splits(saved)
        known = {"train", "validation", "test"}
        if "train" not in splits or len(set(splits)) != len(splits) or set(splits) - known:
            return f"its splits are {splits!r} (train, and validation / test only)"
        try:
            digest = content_digest(self.path, splits, saved)
        except (OSError, ValueError) as err:
            return f"its content cannot be read ({_first_line(err)})"
        if digest is None:
            return "it holds a link or a special file"
        if saved.get("content_sha256") != digest:
            return "its content does not match its digest (changed since it was written)"
        return None

    def load(
        self, num_labels: int | None, vocab_size: int
    ) -> tuple[dict[str, Any] | None, list[str] | None, str | None]:
        """``(splits, label names, None)``, or ``(None, None, problem)`` when the cache may not
        be used: :meth:`problem`, then each split's structure (:func:`tokenized_problem`) and the
        saved class names (count, length, the classes of the train split)."""
        from datasets import load_from_disk

        problem = self.problem()
        if problem is not None:
            return None, None, problem
        saved = self.saved() or {}
        splits = self.splits(saved)
        names = saved.get("label_names") if num_labels is None else None
        if num_labels is None:
            why = _label_names_problem(names, None)
            if why is not None:
                return None, None, why
            num_labels = len(names)
        rows = saved.get("num_rows")
        try:
            data = {split: load_from_disk(str(self.path / split)) for split in splits}
        except Exception as err:  # a corrupt cache of any kind is rebuilt
            return None, None, f"it cannot be read ({_first_line(err)})"
        for split, table in data.items():
            why = tokenized_problem(
                table,
                split,
                rows.get(split) if isinstance(rows, dict) else None,
                num_labels,
                vocab_size,
                int(self.metadata["max_length"]),
            )
            if why is not None:
                return None, None, why
        if names is not None and saved.get("label_kind") in ("string", "integer", "bool"):
            import pyarrow.compute as pc

            seen = {int(v) for v in pc.unique(data["train"].data.table.column("label")).to_pylist()}
            why = _label_names_problem(names, seen)
            if why is None and saved["label_kind"] == "integer":
                numbered = [str(i) for i in range(len(names))]
                why = None if names == numbered else "its label names are not 0..N-1"
            if why is not None:
                return None, None, why
        return data, names, None


# ----------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class TextData:
    """What one run reads: hard-coded by SST-2 / AG News, taken from flags by ``text``."""

    text_column: str
    label_column: str = "label"
    text_pair_column: str | None = None
    hub_path: str | None = None
    hub_config: str | None = None
    #: The splits read and cached; None: ``train`` plus whichever of ``validation`` / ``test``
    #: the data has (``text``).
    splits: tuple[str, ...] | None = None
    #: The class count; None: from the data's labels (``text``).
    num_labels: int | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        pair = (self.text_pair_column,) if self.text_pair_column else ()
        return (self.text_column, *pair)


#: File stems of a ``text`` data folder and the split each one is.
SPLIT_FILE_STEMS = {
    "train": "train",
    "validation": "validation",
    "val": "validation",
    "valid": "validation",
    "dev": "validation",
    "test": "test",
}
#: File suffixes of a ``text`` data folder and the ``datasets`` packaged builder that reads them.
FILE_BUILDERS = {".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def data_files(data_dir: Path) -> dict[str, Path]:
    """``split -> file`` of a folder of ``train`` / ``validation`` / ``test`` data files.

    A data file's name that is not a regular file (a FIFO, a device, a directory, a broken
    link) is refused by name: a FIFO would block the reader for ever."""
    found: dict[str, Path] = {}
    for path in sorted(data_dir.iterdir()):
        split = SPLIT_FILE_STEMS.get(path.stem.lower())
        if split is None or path.suffix.lower() not in FILE_BUILDERS:
            continue
        try:
            mode = os.stat(path).st_mode
        except OSError as err:
            raise UserError(
                f"--data-dir {str(data_dir)!r}: {path.name} cannot be read "
                f"({'broken link' if path.is_symlink() else err.strerror or err})"
            ) from None
        if not stat.S_ISREG(mode):
            kind = _mode_kind(mode)
            raise UserError(
                f"--data-dir {str(data_dir)!r}: {path.name} is not a regular file ({kind}); "
                "data files must be regular files"
            )
        if split in found:
            raise UserError(
                f"--data-dir {str(data_dir)!r} has two {split} files "
                f"({found[split].name}, {path.name}); keep one"
            )
        found[split] = path
    return found


def _mode_kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "a special file"


def _lines(handle: Any, path: Path, what: str) -> Iterator[bytes]:
    """The lines of a binary file, each read with a bound: a line over :data:`MAX_ROW_BYTES`
    is refused before it is held in memory."""
    number = 0
    while line := handle.readline(MAX_ROW_BYTES + 1):
        number += 1
        if len(line) > MAX_ROW_BYTES:
            raise UserError(
                f"{str(path)!r}: line {number} is longer than {MAX_ROW_BYTES:,} bytes "
                f"(the cap on one {what}); split or shorten it"
            )
        yield line


def check_data_file(path: Path, builder: str) -> None:
    """Refuse a data file that would blow memory up, before the ``datasets`` builder reads it:
    a CSV field over :data:`MAX_FIELD_CHARS` characters, a CSV or JSON line over
    :data:`MAX_ROW_BYTES` bytes, a Parquet row group whose rows decompress to more than that on
    average. Streams the file once with bounded reads (regular files only)."""
    try:
        with open_regular_file(path) as handle:
            if builder == "csv":
                _scan_csv(handle, path)
            elif builder == "json":
                for _ in _lines(handle, path, "JSON row (write one object per line)"):
                    pass
            else:
                _scan_parquet(handle, path)
    except RunResultError as err:
        raise UserError(str(err)) from None


def _scan_csv(handle: Any, path: Path) -> None:
    def text() -> Iterator[str]:
        for line in _lines(handle, path, "CSV line"):
            yield line.decode("utf-8", "replace")

    before = csv.field_size_limit()
    csv.field_size_limit(MAX_FIELD_CHARS)
    reader = csv.reader(text())
    try:
        for _ in reader:
            pass
    except csv.Error as err:
        if "field limit" in str(err):
            raise UserError(
                f"{str(path)!r}: the row ending on line {reader.line_num} has a field longer "
                f"than {MAX_FIELD_CHARS:,} characters (the cap on one text or label); "
                "shorten it"
            ) from None
        # anything else is the datasets reader's to judge (its message names the file)
    finally:
        csv.field_size_limit(before)


def _scan_parquet(handle: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(handle).metadata
    except Exception as err:  # not Parquet: one line, as the reader would
        raise UserError(f"cannot read {str(path)!r} ({_first_line(err)})") from None
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        if group.num_rows and group.total_byte_size / group.num_rows > MAX_ROW_BYTES:
            raise UserError(
                f"{str(path)!r}: row group {i} holds {group.total_byte_size:,} bytes in "
                f"{group.num_rows} rows, over {MAX_ROW_BYTES:,} per row (the cap on one row)"
            )


def _files_fingerprint(root: Path) -> str:
    """Hash of every file's relative path, size and mtime under ``root`` (a changed file is
    another cache key)."""
    rows = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            rows.append(f"{path.relative_to(root).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(rows).encode("utf-8")).hexdigest()[:16]


def _feature_kind(feature: Any) -> str:
    """``class_label`` / ``string`` / ``integer`` / ``bool`` or the feature's own name."""
    from datasets import ClassLabel, Value

    if isinstance(feature, ClassLabel):
        return "class_label"
    if isinstance(feature, Value):
        if feature.dtype in ("string", "large_string"):
            return "string"
        if feature.dtype.startswith(("int", "uint")):
            return "integer"
        if feature.dtype == "bool":
            return "bool"
        return str(feature.dtype)
    return type(feature).__name__


def check_text_column(data: Any, column: str, split: str, where: str) -> None:
    """The text column must exist and hold strings in every row."""
    if column not in data.column_names:
        raise UserError(
            f"{where} split {split!r} has no {column!r} column "
            f"(has: {', '.join(data.column_names)})"
        )
    kind = _feature_kind(data.features[column])
    if kind != "string":
        raise UserError(
            f"{where} split {split!r}: the text column {column!r} holds {kind} values, not strings"
        )
    missing = sum(v is None for v in data.with_format(None)[column])
    if missing:
        raise UserError(
            f"{where} split {split!r}: the text column {column!r} holds non-strings "
            f"({missing} of {len(data)} rows are empty)"
        )


def label_names_of(
    raw: Mapping[str, Any], column: str, where: str
) -> tuple[list[str], dict[Any, int] | None]:
    """The class names (index = label id) of the data's labels, and the value -> id map
    (None: the values are the ids).

    String (or bool) labels map to ids in sorted order; integer labels stay as they are (names
    ``"0"``, ``"1"``, ...; a ``ClassLabel`` keeps its names). Refused: missing labels in any
    split, a single training class, and labels of another split that ``train`` never has.
    """
    train = raw["train"]
    feature = train.features[column]
    kind = _feature_kind(feature)
    if kind not in ("class_label", "string", "integer", "bool"):
        raise UserError(
            f"{where} split 'train': the label column {column!r} holds {kind} values; "
            "labels must be strings or integers"
        )
    values = {split: data.with_format(None)[column] for split, data in raw.items()}
    for split, vals in values.items():
        missing = sum(v is None or (kind != "string" and int(v) < 0) for v in vals)
        if missing:
            raise UserError(
                f"{where} split {split!r}: {missing} of {len(vals)} rows have no label in "
                f"{column!r} (None or negative); label every row or drop those rows"
            )
    seen = set(values["train"])
    # Class-count caps before anything is allocated by count (docs/protocols.md §4.7).
    if kind == "class_label" and len(feature.names) > MAX_CLASSES:
        raise UserError(
            f"{where}: the label column {column!r} has {len(feature.names):,} classes "
            f"(the cap is {MAX_CLASSES:,})"
        )
    if kind == "integer" and seen and max(seen) >= MAX_CLASSES:
        raise UserError(
            f"{where} split 'train': the integer labels in {column!r} go up to {max(seen):,}, "
            f"which makes {max(seen) + 1:,} classes (the cap is {MAX_CLASSES:,}); number the "
            "classes 0..N-1 or use string labels"
        )
    if len(seen) > MAX_CLASSES:
        raise UserError(
            f"{where} split 'train' has {len(seen):,} distinct labels in {column!r} (the cap is "
            f"{MAX_CLASSES:,}); is --label-column the label?"
        )
    if kind == "string" and any(len(v) > MAX_LABEL_CHARS for v in seen if v is not None):
        raise UserError(
            f"{where} split 'train' has labels in {column!r} longer than {MAX_LABEL_CHARS} "
            "characters; is --label-column the label?"
        )
    if len(seen) < 2:
        raise UserError(
            f"{where} split 'train' has a single class in {column!r} ({next(iter(seen))!r}); "
            "classification needs at least two"
        )
    for split, vals in values.items():
        unseen = sorted({str(v) for v in vals if v not in seen})
        if unseen:
            shown = ", ".join(repr(v) for v in unseen[:5]) + (", ..." if len(unseen) > 5 else "")
            raise UserError(
                f"{where} split {split!r} has labels the training split never has: {shown}"
            )
    if kind == "class_label":
        return list(feature.names), None
    if kind == "integer":
        return [str(i) for i in range(max(seen) + 1)], None
    ordered = sorted(seen)
    return [str(v) for v in ordered], {v: i for i, v in enumerate(ordered)}


# ----------------------------------------------------------------------------- the task


class TextClassificationTask:
    """Fine-tuning a sequence classifier on a text-classification dataset.

    The class attributes are the thesis tasks' configurations (:mod:`.sst2`, :mod:`.agnews`);
    :class:`~aees.runner.tasks.text.TextTask` takes the same things from flags
    (:meth:`data_spec`). Everything else is this one implementation.
    """

    name: ClassVar[str]
    dataset_name: str
    display_name: ClassVar[str]  # "SST-2": used in messages
    model_name: str = DEFAULT_MODEL_NAME
    num_labels: ClassVar[int | None]
    text_column: ClassVar[str]
    hub_path: ClassVar[str | None] = None
    hub_config: ClassVar[str | None] = None
    #: Raw splits read and cached: ``(train, other)``; ``other`` is SST-2's validation split or
    #: AG News's test split (validation, else a training holdout; docs/protocols.md §4.3).
    raw_splits: ClassVar[tuple[str, ...] | None]
    default_holdout_fraction: ClassVar[float] = 0.1
    default_tokenized_dir: ClassVar[str]
    ignore_mismatched_sizes: ClassVar[bool] = False
    has_label_noise_flags: ClassVar[bool] = False

    flag_style: ClassVar[str] = "nlp"
    scheduler_unit: ClassVar[str] = "step"
    defaults: ClassVar[dict[str, Any]] = NLP_DEFAULTS
    option_names: ClassVar[tuple[str, ...]] = (
        "max_length",
        "cache_dir",
        "tokenized_dataset_dir",
        "local_files_only",
        "pretokenize_only",
    )
    #: Its flags that name a place the run writes (a sweep keeps them in its output root).
    write_options: ClassVar[tuple[str, ...]] = ("cache_dir", "tokenized_dataset_dir")

    def __init__(self) -> None:
        self._hf_token: str | None = None  # set by validate(); never written anywhere
        self._hub_down: str | bool | None = False  # False: not probed yet (hub_unreachable)

    # -- flags
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        g = parser.add_argument_group(self.display_name)
        g.add_argument("--max-length", type=int, default=128, help="tokenizer truncation, > 0")
        g.add_argument(
            "--cache-dir",
            default=None,
            help="HF cache for dataset, tokenizer and model (default: <cwd>/.hf_cache)",
        )
        g.add_argument(
            "--tokenized-dataset-dir",
            default=self.default_tokenized_dir,
            help=f"tokenized-cache root (default {self.default_tokenized_dir})",
        )
        g.add_argument(
            "--pretokenize-only",
            action="store_true",
            help="build (or check) the tokenized cache, print its path and exit",
        )
        g.add_argument(
            "--local-files-only",
            action="store_true",
            help="never contact the Hub: tokenizer, model and dataset from the caches only",
        )
        g.add_argument(
            "--hf-token",
            default=None,
            help="Hub token (default: $HF_TOKEN); used, never stored",
        )
        if self.has_label_noise_flags:
            n = parser.add_argument_group("label noise")
            n.add_argument(
                "--label-noise-rate", type=float, default=0.0, help="symmetric, in [0, 1)"
            )
            n.add_argument(
                "--label-noise-seed",
                type=int,
                default=42,
                help="noise seed, independent of --seed (default 42)",
            )

    def validate(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
        if args.max_length <= 0:
            parser.error(f"--max-length must be > 0, got {args.max_length}")
        if not str(args.tokenized_dataset_dir or "").strip():
            parser.error("--tokenized-dataset-dir must not be empty")
        if args.cache_dir is None:
            args.cache_dir = str(Path.cwd() / ".hf_cache")
        elif not str(args.cache_dir).strip():
            parser.error("--cache-dir must not be empty")
        for flag, path in (
            ("--cache-dir", args.cache_dir),
            ("--tokenized-dataset-dir", args.tokenized_dataset_dir),
        ):
            target = Path(path)
            if target.exists() and not target.is_dir():
                parser.error(f"{flag} {path!r} exists and is not a directory")
        if args.pretokenize_only:
            why = writable_location_problem(args.tokenized_dataset_dir, is_dir=True)
            if why is not None:
                parser.error(f"--tokenized-dataset-dir {args.tokenized_dataset_dir!r}: {why}")
        if args.data_dir is not None and not Path(args.data_dir).is_dir():
            parser.error(f"--data-dir {args.data_dir!r} is not a directory")
        if args.model_name is not None and not str(args.model_name).strip():
            parser.error("--model-name must not be empty")
        why = model_dir_problem(str(args.model_name or self.model_name))
        if why is not None:
            parser.error(f"--model-name {args.model_name}: {why}")
        if self.has_label_noise_flags and not 0.0 <= args.label_noise_rate < 1.0:
            parser.error(f"--label-noise-rate must be in [0, 1), got {args.label_noise_rate}")
        if args.resume and args.pretokenize_only:
            parser.error("--resume cannot be combined with --pretokenize-only")
        self._hf_token = args.hf_token or os.environ.get("HF_TOKEN") or None
        args.hf_token = None  # keep the secret out of anything built from the namespace

    # -- what this run reads (the generic task overrides these from its flags)
    def data_spec(self, config: RunConfig) -> TextData:
        """The columns, source and splits of this run's data."""
        return TextData(
            text_column=self.text_column,
            hub_path=self.hub_path,
            hub_config=self.hub_config,
            splits=self.raw_splits,
            num_labels=self.num_labels,
        )

    def display(self, config: RunConfig) -> str:
        """The data's name in messages ("SST-2")."""
        return self.display_name

    def source_flags(self, config: RunConfig) -> list[str]:
        """The flags naming this run's raw data (for the commands printed in errors)."""
        return ["--data-dir", config.data_dir] if config.data_dir else []

    # -- helpers on the run configuration
    def _opt(self, config: RunConfig, key: str, default: Any = None) -> Any:
        return config.task_options.get(key, default)

    def _model(self, config: RunConfig) -> str:
        return config.model_name or self.model_name

    def _cache_dir(self, config: RunConfig) -> str:
        return str(self._opt(config, "cache_dir") or Path.cwd() / ".hf_cache")

    def _token(self) -> str | None:
        return self._hf_token or os.environ.get("HF_TOKEN") or None

    def _source(self, config: RunConfig) -> str:
        spec = self.data_spec(config)
        if config.data_dir:
            source = f"disk:{Path(config.data_dir).resolve()}"
            if spec.splits is None:  # ``text``: the files' state is part of the key
                source += f"#{_files_fingerprint(Path(config.data_dir))}"
            return source
        return f"hub:{spec.hub_path}" + (f"/{spec.hub_config}" if spec.hub_config else "")

    def pretokenize_command(self, config: RunConfig) -> str:
        """The exact command that (online) fetches tokenizer + dataset and writes the cache."""
        parts = [
            "aees",
            "train",
            self.name,
            "--pretokenize-only",
            "--cache-dir",
            self._cache_dir(config),
            "--tokenized-dataset-dir",
            str(self._opt(config, "tokenized_dataset_dir", self.default_tokenized_dir)),
            "--max-length",
            str(self._opt(config, "max_length", 128)),
        ]
        if config.model_name:
            parts += ["--model-name", config.model_name]
        parts += self.source_flags(config)
        return shlex.join(parts)

    def model_fetch_command(self, config: RunConfig) -> str:
        code = (
            "from transformers import AutoModelForSequenceClassification as M; "
            f"M.from_pretrained({self._model(config)!r}, cache_dir={self._cache_dir(config)!r}, "
            "trust_remote_code=False)"
        )
        return shlex.join(["python", "-c", code])

    def _log(self, config: RunConfig, line: str) -> None:
        if not config.quiet:
            print(line, flush=True)

    # -- loading
    def check_model_source(self, config: RunConfig) -> None:
        """A ``--model-name`` written as a path (``/``, ``./``, ``../``, ``~``) must be a
        directory: one line naming it instead of a Hub lookup of a path-shaped id. A Hub id is
        looked up as given (no network here to check it)."""
        name = self._model(config)
        if name.startswith(("/", "./", "../", "~")) and not Path(name).expanduser().is_dir():
            raise UserError(f"--model-name {name}: no such model directory")
        why = model_dir_problem(name)
        if why is not None:
            raise UserError(f"--model-name {name}: {why}")

    def _offline_reason(self, config: RunConfig, hub: bool = True) -> str | None:
        """Why nothing is fetched from the Hub in this run, or None (it may be): the flag,
        ``HF_HUB_OFFLINE``, or (``hub``: this load would go there) a Hub that does not answer
        a bounded probe (:func:`hub_unreachable`, once per run; logged)."""
        if self._opt(config, "local_files_only", False):
            return "--local-files-only"
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return "HF_HUB_OFFLINE is set"
        if not hub:
            return None
        if self._hub_down is False:
            self._hub_down = hub_unreachable()
            if self._hub_down is not None:
                self._log(
                    config,
                    f"The Hugging Face Hub is unreachable ({self._hub_down}): using the local "
                    "caches only, as with --local-files-only",
                )
        return None if self._hub_down is None else f"the Hub is unreachable: {self._hub_down}"

    def _local_only(self, config: RunConfig, hub: bool = True) -> bool:
        return self._offline_reason(config, hub) is not None

    def _model_is_local(self, config: RunConfig) -> bool:
        return Path(self._model(config)).expanduser().is_dir()

    def _fetch_hint(self, config: RunConfig, command: str) -> str:
        """How to get what is missing: online, or (offline) a local directory or a fetch
        elsewhere followed by --local-files-only."""
        reason = self._offline_reason(config, hub=False) or (
            None if self._hub_down in (False, None) else f"the Hub is unreachable: {self._hub_down}"
        )
        if reason is None:
            return f"fetch it online with: {command}"
        return (
            f"offline ({reason}): pass a local checkpoint directory as --model-name DIR, or fetch "
            f"it where the Hub is reachable with: {command} and run again with --local-files-only"
        )

    def _cached_ids_like(self, config: RunConfig) -> str:
        """``; cached models closest to it: a, b`` from the HF cache's ``models--org--name``
        folders, or ``""``: the hint for a Hub id that failed to load."""
        import difflib

        root = Path(self._cache_dir(config))
        try:
            cached = [
                d.name[len("models--") :].replace("--", "/")
                for d in root.iterdir()
                if d.is_dir() and d.name.startswith("models--")
            ]
        except OSError:
            return ""
        close = difflib.get_close_matches(self._model(config), cached, n=3, cutoff=0.6)
        return f"; cached models closest to it: {', '.join(close)}" if close else ""

    def load_tokenizer(self, config: RunConfig) -> Any:
        from transformers import AutoTokenizer

        self.check_model_source(config)
        name = self._model(config)
        local = self._local_only(config, hub=not self._model_is_local(config))
        try:
            return AutoTokenizer.from_pretrained(
                name,
                cache_dir=self._cache_dir(config),
                local_files_only=local,
                token=self._token(),
                trust_remote_code=False,  # never a checkpoint's own code (docs §4.7)
            )
        except Exception as err:
            if _custom_code_refused(err):
                raise self._custom_code_error(config) from None
            raise UserError(
                f"cannot load the tokenizer {name!r} from {self._cache_dir(config)!r} "
                f"({_first_line(err)}){self._cached_ids_like(config)}; "
                f"{self._fetch_hint(config, self.pretokenize_command(config))}"
            ) from None

    def _custom_code_error(self, config: RunConfig) -> UserError:
        return UserError(
            f"--model-name {self._model(config)}: the checkpoint needs its own model code "
            "(trust_remote_code); aees never runs a checkpoint's own code: use a checkpoint of a "
            "model type transformers knows"
        )

    def _model_error(self, config: RunConfig, err: BaseException) -> UserError:
        if _custom_code_refused(err):
            return self._custom_code_error(config)
        return UserError(
            f"cannot load the model {self._model(config)!r} from {self._cache_dir(config)!r} "
            f"({_first_line(err)}){self._cached_ids_like(config)}; "
            f"{self._fetch_hint(config, self.model_fetch_command(config))}"
        )

    def check_positions(self, config: RunConfig, model_config: Any) -> None:
        """``--max-length`` must fit the model's position embeddings."""
        max_length = int(self._opt(config, "max_length", 128))
        positions = getattr(model_config, "max_position_embeddings", None)
        if isinstance(positions, int) and max_length > positions:
            raise UserError(
                f"--max-length {max_length} exceeds the {positions} positions of "
                f"{self._model(config)!r}; use --max-length {positions} or less"
            )

    def check_model_config(self, config: RunConfig) -> None:
        """Read the checkpoint's config only (the class count is not known yet): the model
        exists and ``--max-length`` fits, before anything is tokenized."""
        from transformers import AutoConfig

        try:
            model_config = AutoConfig.from_pretrained(
                self._model(config),
                cache_dir=self._cache_dir(config),
                local_files_only=self._local_only(config, hub=not self._model_is_local(config)),
                token=self._token(),
                trust_remote_code=False,
            )
        except Exception as err:
            raise self._model_error(config, err) from None
        self.check_positions(config, model_config)

    def load_model(
        self, config: RunConfig, num_labels: int, label_names: Sequence[str] | None = None
    ) -> torch.nn.Module:
        """The checkpoint with a ``num_labels`` head (re-initialised, and logged, when the
        checkpoint's head is missing or has another shape)."""
        from transformers import AutoModelForSequenceClassification

        self.check_model_source(config)
        name = self._model(config)
        kwargs: dict[str, Any] = {
            "num_labels": num_labels,
            "cache_dir": self._cache_dir(config),
            "local_files_only": self._local_only(config, hub=not self._model_is_local(config)),
            "token": self._token(),
            "output_loading_info": True,
            "trust_remote_code": False,
        }
        if label_names is not None:
            kwargs["id2label"] = dict(enumerate(label_names))
            kwargs["label2id"] = {label: i for i, label in enumerate(label_names)}
        if self.ignore_mismatched_sizes:
            kwargs["ignore_mismatched_sizes"] = True
        try:
            model, loading = AutoModelForSequenceClassification.from_pretrained(name, **kwargs)
        except Exception as err:
            raise self._model_error(config, err) from None
        self.check_positions(config, model.config)
        mismatched = [str(key[0]) for key in loading.get("mismatched_keys") or ()]
        missing = [str(key) for key in loading.get("missing_keys") or ()]
        if mismatched:
            self._log(
                config,
                f"Re-initialised the classification head of {name!r} for {num_labels} labels "
                f"(the checkpoint's shape differs: {', '.join(sorted(mismatched))})",
            )
        elif missing:
            self._log(
                config,
                f"Initialised a new {num_labels}-label classification head on {name!r} "
                f"(not in the checkpoint: {', '.join(sorted(missing))})",
            )
        return model

    def cache_for(self, config: RunConfig, tokenizer: Any) -> TokenizedCache:
        """The cache location and the metadata it must carry for this config and tokenizer."""
        spec = self.data_spec(config)
        max_length = int(self._opt(config, "max_length", 128))
        fingerprint = tokenizer_fingerprint(tokenizer)
        source = self._source(config)
        key_text = f"{fingerprint}\n{source}"
        metadata: dict[str, Any] = {
            "format": CACHE_FORMAT,
            "task": self.name,
            "tokenizer_name": self._model(config),
            "tokenizer_fingerprint": fingerprint,
            "max_length": max_length,
            "source": source,
            "text_column": spec.text_column,
        }
        if spec.splits is not None:
            metadata["splits"] = list(spec.splits)
        else:  # ``text``: the columns are part of the key
            metadata["text_pair_column"] = spec.text_pair_column
            metadata["label_column"] = spec.label_column
            key_text += f"\n{spec.columns}\n{spec.label_column}"
        key = hashlib.sha256(key_text.encode()).hexdigest()[:10]
        root = Path(self._opt(config, "tokenized_dataset_dir", self.default_tokenized_dir))
        path = root / f"{_slug(self._model(config))}-{key}_len{max_length}"
        return TokenizedCache(path, metadata)

    def _read_raw(self, config: RunConfig, spec: TextData) -> tuple[Mapping[str, Any], str]:
        """The raw dataset (split -> ``Dataset``) and how to name it in messages."""
        if config.data_dir:
            where = f"--data-dir {config.data_dir!r}"
            root = Path(config.data_dir)
            saved = (root / "dataset_dict.json").is_file() or (root / "state.json").is_file()
            if spec.splits is not None or saved:
                from datasets import load_from_disk

                try:
                    raw = load_from_disk(config.data_dir)
                except Exception as err:
                    raise UserError(
                        f"--data-dir {config.data_dir!r} is not a dataset saved with "
                        f"save_to_disk ({_first_line(err)})"
                    ) from None
                return (raw if isinstance(raw, Mapping) else {"train": raw}), where
            return self._read_files(config, root), where
        from datasets import load_dataset

        local = self._local_only(config)
        try:
            with _datasets_offline(local):
                raw = load_dataset(
                    spec.hub_path,
                    spec.hub_config,
                    cache_dir=self._cache_dir(config),
                    download_mode="reuse_dataset_if_exists",
                    token=self._token(),
                    trust_remote_code=False,
                )
        except Exception as err:
            offline = " with --local-files-only" if local else ""
            raise UserError(
                f"cannot load the {self.display(config)} dataset {spec.hub_path!r} from "
                f"{self._cache_dir(config)!r}{offline} ({_first_line(err)}); "
                f"{self._fetch_hint(config, self.pretokenize_command(config))}"
            ) from None
        return raw, f"{spec.hub_path!r}"

    def _read_files(self, config: RunConfig, root: Path) -> dict[str, Any]:
        """A folder of ``train`` / ``validation`` / ``test`` CSV, JSON Lines or Parquet files,
        read with the ``datasets`` packaged builders (offline)."""
        from datasets import load_dataset

        files = data_files(root)
        if "train" not in files:
            have = ", ".join(sorted(p.name for p in root.iterdir())) or "nothing"
            raise UserError(
                f"--data-dir {str(root)!r} has no dataset saved with save_to_disk and no "
                f"train.csv / train.jsonl / train.parquet file (has: {have})"
            )
        builders = {FILE_BUILDERS[p.suffix.lower()] for p in files.values()}
        if len(builders) > 1:
            raise UserError(
                f"--data-dir {str(root)!r} mixes file formats "
                f"({', '.join(sorted(p.name for p in files.values()))}); use one"
            )
        (builder,) = builders
        raw: dict[str, Any] = {}
        for split, path in files.items():
            check_data_file(path, builder)  # sizes checked before the builder allocates
            try:
                with _datasets_offline(True):
                    raw[split] = load_dataset(
                        builder,
                        data_files={split: str(path)},
                        split=split,
                        cache_dir=self._cache_dir(config),
                        trust_remote_code=False,
                    )
            except Exception as err:
                raise UserError(f"cannot read {str(path)!r} ({_first_line(err)})") from None
        return raw

    def load_raw(self, config: RunConfig) -> dict[str, Any]:
        """The raw splits (``--data-dir`` or the Hub), columns checked."""
        spec = self.data_spec(config)
        raw, where = self._read_raw(config, spec)
        wanted = spec.splits or tuple(s for s in ("train", "validation", "test") if s in raw)
        if spec.splits is None and "train" not in raw:
            raise UserError(f"{where} has no 'train' split (has: {', '.join(sorted(raw))})")
        splits: dict[str, Any] = {}
        for split in wanted:
            if split not in raw:
                raise UserError(
                    f"{where} has no {split!r} split (has: {', '.join(sorted(raw))}); "
                    f"{self.display(config)} needs {' and '.join(wanted)}"
                )
            columns = raw[split].column_names
            for column in (*spec.columns, spec.label_column):
                if column not in columns:
                    raise UserError(
                        f"{where} split {split!r} has no {column!r} column "
                        f"(has: {', '.join(columns)})"
                    )
            for column in spec.columns:
                check_text_column(raw[split], column, split, where)
            splits[split] = raw[split]
        return splits

    def tokenized_splits(
        self, config: RunConfig, tokenizer: Any
    ) -> tuple[dict[str, Any], Path, bool, list[str] | None]:
        """The tokenized splits, the cache path, whether the cache was built just now, and the
        class names (None for a task with fixed labels)."""
        cache = self.cache_for(config, tokenizer)
        spec = self.data_spec(config)
        vocab = len(tokenizer)
        data, names, problem = cache.load(spec.num_labels, vocab)
        if data is not None:
            return data, cache.path, False, names
        if os.path.lexists(cache.path):  # docs/protocols.md §4.5: never trusted, rebuilt
            self._log(config, f"Rebuilding the tokenized dataset {cache.path}: {problem}")
        raw = self.load_raw(config)
        where = f"--data-dir {config.data_dir!r}" if config.data_dir else repr(spec.hub_path)
        names = None
        lookup: dict[Any, int] | None = None
        extra: dict[str, Any] = {"splits": list(raw)}
        if spec.num_labels is None:
            names, lookup = label_names_of(raw, spec.label_column, where)
            extra["label_names"] = names
            extra["label_kind"] = _feature_kind(raw["train"].features[spec.label_column])
        max_length = int(cache.metadata["max_length"])
        label = spec.label_column

        def encode(batch: Mapping[str, list[Any]]) -> dict[str, Any]:
            texts = [batch[c] for c in spec.columns]
            enc = tokenizer(*texts, truncation=True, max_length=max_length)
            ids = [lookup[v] for v in batch[label]] if lookup is not None else batch[label]
            out = {k: enc[k] for k in MODEL_INPUTS}
            if spec.splits is None:  # ``text``: segment ids too, when the tokenizer makes them
                out.update({k: enc[k] for k in OPTIONAL_INPUTS if k in enc})
            return {**out, "label": [int(v) for v in ids]}

        tokenized: dict[str, Any] = {}
        sizes: dict[str, int] = {}
        for split, data in raw.items():
            tokenized[split] = data.map(
                encode,
                batched=True,
                remove_columns=data.column_names,
                keep_in_memory=True,  # never write cache files next to the raw data
                desc=f"Tokenizing {self.display(config)} {split}",
            )
            if _feature_kind(tokenized[split].features["label"]) != "integer":
                # map() keeps a replaced column's old (string) type: store the ids as integers
                from datasets import Value

                tokenized[split] = tokenized[split].cast_column("label", Value("int64"))
            sizes[split] = len(tokenized[split])
        self._write_cache(cache, tokenized, {"num_rows": sizes, **extra})
        data, names, problem = cache.load(spec.num_labels, vocab)
        if data is None:
            raise UserError(
                f"the tokenized dataset {str(cache.path)!r} just written cannot be used "
                f"({problem}); is another process writing the same --tokenized-dataset-dir?"
            )
        return data, cache.path, True, names

    def _write_cache(
        self, cache: TokenizedCache, tokenized: Mapping[str, Any], extra: Mapping[str, Any]
    ) -> None:
        root = cache.path.parent
        try:
            root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{cache.path.name}.", dir=root))
        except OSError as err:
            raise UserError(
                f"cannot write the tokenized dataset under {str(root)!r} ({_first_line(err)}); "
                "pass a writable --tokenized-dataset-dir"
            ) from None
        try:
            for split, data in tokenized.items():
                data.save_to_disk(str(tmp / split))
            meta = {**extra, **cache.metadata}
            meta["content_sha256"] = content_digest(tmp, list(tokenized), meta)
            (tmp / METADATA_NAME).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
            if os.path.lexists(cache.path):  # stale, changed or incomplete: replace it
                if cache.path.is_symlink() or not cache.path.is_dir():
                    cache.path.unlink()
                else:
                    shutil.rmtree(cache.path)
            os.replace(tmp, cache.path)
        except OSError as err:
            if cache.problem() is None:  # another process finished the same cache first
                return
            raise UserError(
                f"cannot write the tokenized dataset {str(cache.path)!r} ({_first_line(err)})"
            ) from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    # -- the interface the CLI and engine call
    def pretokenize(self, config: RunConfig) -> None:
        """``--pretokenize-only``: build (or verify) the tokenized cache and print where it is."""
        tokenizer = self.load_tokenizer(config)
        _, path, built, _ = self.tokenized_splits(config, tokenizer)
        note = "" if built else " (already up to date)"
        print(f"Saved tokenized {self.display(config)} dataset to {path}{note}", flush=True)

    def _noise_seed(self, config: RunConfig) -> int:
        return int(config.task_options.get("label_noise_seed", 42))

    def label_noise(
        self, config: RunConfig, labels: list[int], num_labels: int
    ) -> LabelCorruption | None:
        """The AG News protocol (docs/protocols.md §4.4) with ``num_labels`` classes, for a task
        with label-noise flags (None: no noise)."""
        rate = config.label_noise_rate
        if not self.has_label_noise_flags or rate <= 0:
            return None
        seed = self._noise_seed(config)
        corruption = agnews_label_noise(labels, rate, seed, num_classes=num_labels)
        self._log(
            config,
            f"Applied symmetric label noise to {corruption.count} / {len(labels)} "
            f"{self.display(config)} training examples (rate={rate}, seed={seed}).",
        )
        return corruption

    def build(self, config: RunConfig, device: torch.device) -> TaskSetup:
        spec = self.data_spec(config)
        display = self.display(config)
        with _hf_quiet(config.quiet):
            tokenizer = self.load_tokenizer(config)
            model = None
            if spec.num_labels is not None:  # first: a bad --max-length fails before tokenizing
                model = self.load_model(config, spec.num_labels)
            else:
                self.check_model_config(config)
            splits, cache_path, built, names = self.tokenized_splits(config, tokenizer)
            num_labels = spec.num_labels if spec.num_labels is not None else len(names or ())
            if model is None:
                model = self.load_model(config, num_labels, names)
        if built:
            self._log(config, f"Saved tokenized {display} dataset to {cache_path}")
        labels = {split: self._labels(table, split, num_labels) for split, table in splits.items()}
        train_table, train_labels = splits["train"], labels["train"]
        n = len(train_labels)

        # docs/protocols.md §4.3-§4.7: the data's validation split unless --val-split (or there
        # is none: a seeded training holdout); the test split, else the displaced validation one.
        if config.val_split is not None or "validation" not in splits:
            held: float | int = (
                config.val_split if config.val_split is not None else self.default_holdout_fraction
            )
            if isinstance(held, int) and held >= n:
                raise UserError(
                    f"--val-split {held} must be smaller than the {n} {display} training examples"
                )
            train_idx, val_idx = split_indices(n, held, SPLIT_SEED)
            val_data = TokenizedTextDataset(
                train_table, [train_labels[i] for i in val_idx], val_idx
            )
            val_desc = f"{len(val_idx)} of train (train_test_split seed 42)"
            test_name = next((s for s in ("test", "validation") if s in splits), None)
        else:
            train_idx = list(range(n))
            val_data = TokenizedTextDataset(splits["validation"], labels["validation"])
            val_desc = "validation"
            test_name = "test" if "test" in splits else None
        test_data = (
            TokenizedTextDataset(splits[test_name], labels[test_name]) if test_name else None
        )

        clean = [train_labels[i] for i in train_idx]
        corruption = self.label_noise(config, clean, num_labels)
        noisy = corruption.apply(clean) if corruption is not None else clean
        train_data = TokenizedTextDataset(train_table, noisy, train_idx)
        model = model.to(device)

        info: dict[str, Any] = {
            "split": {
                "seed": SPLIT_SEED,
                "train": len(train_data),
                "val": len(val_data),
                "test": len(test_data) if test_data is not None else 0,
                "validation_source": val_desc,
                "test_source": test_name,
            },
            "max_length": int(self._opt(config, "max_length", 128)),
            "tokenized_dataset_path": str(cache_path),
            "label_noise_seed": 42,
        }
        if self.has_label_noise_flags:
            info["label_noise_seed"] = self._noise_seed(config)
        info.update(self.extra_info(config, names))
        enabled = corruption is not None and corruption.enabled
        return TaskSetup(
            model=model,
            train_data=train_data,
            val_data=val_data,
            test_data=test_data,
            train_eval_data=train_data if enabled else None,
            loss_fn=logits_cross_entropy,
            logits_fn=logits_of,
            collate_fn=PadCollate(tokenizer),
            corruption=corruption if enabled else None,
            clean_train_targets=clean if enabled else None,
            info=info,
        )

    def extra_info(self, config: RunConfig, label_names: list[str] | None) -> dict[str, Any]:
        """Task-specific entries of the result config (merged last)."""
        return {}

    def _labels(self, table: Any, split: str, num_labels: int) -> list[int]:
        labels = [int(v) for v in table.with_format(None)["label"]]
        bad = [v for v in labels if not 0 <= v < num_labels]
        if bad:
            raise UserError(
                f"{self.display_name} split {split!r} has labels outside 0..{num_labels - 1} "
                f"(e.g. {bad[0]}); an unlabelled split cannot be used"
            )
        return labels
