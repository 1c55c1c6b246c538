"""The tokenized cache of the text tasks: its key, its metadata, its validation and its writing.

Layout (fixes docs/protocols.md §4.5, which reused caches whatever the model or max length)::

    <--tokenized-dataset-dir>/<tokenizer>-<key>_len<max_length>/
        aees_tokenized.json      # metadata, written last; checked before every reuse
        train/  validation/      # SST-2: the GLUE splits (the test split is unlabelled, unused)
        train/  test/            # AG News: the official splits

``<key>`` is a hash of the tokenizer's vocabulary and behaviour (not just its name) and of the
raw-data source (Hub id or ``--data-dir``). The metadata (format, tokenizer name and fingerprint,
max length, source, splits and their sizes) must match, otherwise the cache is rebuilt. A cache is
written to a temporary sibling directory and renamed into place, so an interrupted write is never
reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aees.results.io import open_regular_file
from aees.runner.config import RunConfig, UserError
from aees.runner.tasks.text.data import (
    MAX_CLASSES,
    MAX_LABEL_CHARS,
    feature_kind,
    files_fingerprint,
    label_names_of,
)
from aees.runner.tasks.text.hub import HubAccess, first_line, read_json, slug

__all__ = [
    "CACHE_FORMAT",
    "METADATA_NAME",
    "MODEL_INPUTS",
    "OPTIONAL_INPUTS",
    "TokenCaching",
    "TokenizedCache",
    "content_digest",
    "tokenized_problem",
    "tokenizer_fingerprint",
]

#: Version of the tokenized-cache layout (bump to invalidate every cache). 2: the metadata
#: carries ``content_sha256`` (:func:`content_digest`).
CACHE_FORMAT = 2
METADATA_NAME = "aees_tokenized.json"
MODEL_INPUTS = ("input_ids", "attention_mask")
#: Also fed when the tokenizer makes it (BERT-style segment ids of a text pair; ``text`` only).
OPTIONAL_INPUTS = ("token_type_ids",)
# Probe texts for the tokenizer fingerprint: casing, accents, punctuation, sub-words, unknowns.
_PROBE_TEXTS = (
    "Hello, World! It's a GREAT movie -- isn't it?",
    "Café naïve résumé 東京 12,345.67 e-mail @user #tag",
    "unbelievably uncharacteristically tokenization",
)


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
            saved = read_json(self.path / METADATA_NAME)
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
            return f"its content cannot be read ({first_line(err)})"
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
            return None, None, f"it cannot be read ({first_line(err)})"
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


class TokenCaching:
    """The token-cache part of :class:`~aees.runner.tasks.text.task.TextClassificationTask` (a
    mixin: it reads the task's ``data_spec`` / ``load_raw`` / ``_model`` / ``_opt``)."""

    def _source(self, config: RunConfig) -> str:
        spec = self.data_spec(config)
        if config.data_dir:
            source = f"disk:{Path(config.data_dir).resolve()}"
            if spec.splits is None:  # ``text``: the files' state is part of the key
                source += f"#{files_fingerprint(Path(config.data_dir))}"
            return source
        return f"hub:{spec.hub_path}" + (f"/{spec.hub_config}" if spec.hub_config else "")

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
        path = root / f"{slug(self._model(config))}-{key}_len{max_length}"
        return TokenizedCache(path, metadata)

    def tokenized_splits(
        self, config: RunConfig, hub: HubAccess, tokenizer: Any
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
            hub.log(f"Rebuilding the tokenized dataset {cache.path}: {problem}")
        raw = self.load_raw(config, hub)
        where = f"--data-dir {config.data_dir!r}" if config.data_dir else repr(spec.hub_path)
        names = None
        lookup: dict[Any, int] | None = None
        extra: dict[str, Any] = {"splits": list(raw)}
        if spec.num_labels is None:
            names, lookup = label_names_of(raw, spec.label_column, where)
            extra["label_names"] = names
            extra["label_kind"] = feature_kind(raw["train"].features[spec.label_column])
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
            if feature_kind(tokenized[split].features["label"]) != "integer":
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
                f"cannot write the tokenized dataset under {str(root)!r} ({first_line(err)}); "
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
                f"cannot write the tokenized dataset {str(cache.path)!r} ({first_line(err)})"
            ) from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
