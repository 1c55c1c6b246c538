"""The raw data of the text tasks: ``save_to_disk`` datasets, folders of CSV / JSON Lines /
Parquet files (checked before the ``datasets`` builders allocate anything), the Hub, the
columns, the labels and the seeded splits (docs/protocols.md §4.3-§4.7).
"""

from __future__ import annotations

import csv
import hashlib
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aees.results.io import open_regular_file
from aees.results.schema import RunResultError
from aees.runner.config import RunConfig, UserError
from aees.runner.tasks.text.hub import HubAccess, datasets_offline, first_line

__all__ = [
    "FILE_BUILDERS",
    "MAX_CLASSES",
    "MAX_FIELD_CHARS",
    "MAX_LABEL_CHARS",
    "MAX_ROW_BYTES",
    "SPLIT_FILE_STEMS",
    "SPLIT_SEED",
    "RawReading",
    "TextData",
    "check_data_file",
    "check_text_column",
    "data_files",
    "label_names_of",
    "split_indices",
]

#: Seed of every train/validation split (docs/protocols.md §4.4: ``train_test_split(seed=42)``).
SPLIT_SEED = 42
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


def split_indices(n: int, test_size: float | int, seed: int = SPLIT_SEED) -> tuple[list, list]:
    """``(train, held_out)`` row indices exactly as ``Dataset.train_test_split(test_size, seed)``.

    Computed on an in-memory index column, so nothing is written next to the data and the order
    is the library's (the train part is in permutation order, as the thesis runner used it).
    """
    from datasets import Dataset as HFDataset

    index = HFDataset.from_dict({"i": list(range(n))})
    parts = index.train_test_split(test_size=test_size, seed=seed, keep_in_memory=True)
    return list(parts["train"]["i"]), list(parts["test"]["i"])


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
        raise UserError(f"cannot read {str(path)!r} ({first_line(err)})") from None
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        if group.num_rows and group.total_byte_size / group.num_rows > MAX_ROW_BYTES:
            raise UserError(
                f"{str(path)!r}: row group {i} holds {group.total_byte_size:,} bytes in "
                f"{group.num_rows} rows, over {MAX_ROW_BYTES:,} per row (the cap on one row)"
            )


def files_fingerprint(root: Path) -> str:
    """Hash of every file's relative path, size and mtime under ``root`` (a changed file is
    another cache key)."""
    rows = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            rows.append(f"{path.relative_to(root).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(rows).encode("utf-8")).hexdigest()[:16]


def feature_kind(feature: Any) -> str:
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
    kind = feature_kind(data.features[column])
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
    kind = feature_kind(feature)
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


class RawReading:
    """The raw-data part of :class:`~aees.runner.tasks.text.task.TextClassificationTask` (a
    mixin: it reads the task's ``data_spec`` / ``display`` / ``_cache_dir``)."""

    def _read_raw(
        self, config: RunConfig, hub: HubAccess, spec: TextData
    ) -> tuple[Mapping[str, Any], str]:
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
                        f"save_to_disk ({first_line(err)})"
                    ) from None
                return (raw if isinstance(raw, Mapping) else {"train": raw}), where
            return self._read_files(config, root), where
        from datasets import load_dataset

        local = hub.local_only()
        try:
            with datasets_offline(local):
                raw = load_dataset(
                    spec.hub_path,
                    spec.hub_config,
                    cache_dir=self._cache_dir(config),
                    download_mode="reuse_dataset_if_exists",
                    token=hub.token,
                    trust_remote_code=False,
                )
        except Exception as err:
            offline = " with --local-files-only" if local else ""
            raise UserError(
                f"cannot load the {self.display(config)} dataset {spec.hub_path!r} from "
                f"{self._cache_dir(config)!r}{offline} ({first_line(err)}); "
                f"{hub.fetch_hint(self.pretokenize_command(config))}"
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
                with datasets_offline(True):
                    raw[split] = load_dataset(
                        builder,
                        data_files={split: str(path)},
                        split=split,
                        cache_dir=self._cache_dir(config),
                        trust_remote_code=False,
                    )
            except Exception as err:
                raise UserError(f"cannot read {str(path)!r} ({first_line(err)})") from None
        return raw

    def load_raw(self, config: RunConfig, hub: HubAccess) -> dict[str, Any]:
        """The raw splits (``--data-dir`` or the Hub), columns checked."""
        spec = self.data_spec(config)
        raw, where = self._read_raw(config, hub, spec)
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
