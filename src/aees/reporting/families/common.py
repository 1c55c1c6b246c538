"""What every table family shares: :class:`FamilyOutput` (tables, CSVs, notes, missing cells),
:class:`Builder` (one family build's state) and the column helpers of the table specs
(:data:`ACC_COLUMNS`, :func:`label_column`, :func:`pm_column`, :func:`text_column`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aees.reporting.render import (
    Column,
    CsvTable,
    Table,
    fmt_pm,
    render_latex,
    render_markdown,
    render_table_csv,
    safe_name,
    write_csv,
)
from aees.reporting.runs import Cell, RunSet
from aees.reporting.select import AccStats, Sel, acc_stats, pick
from aees.reporting.stats import Summary
from aees.results import atomic_write_text

# --------------------------------------------------------------------------------------------
# Output container
# --------------------------------------------------------------------------------------------


@dataclass
class FamilyOutput:
    """What one family builder produced."""

    family: str
    title: str
    tables: list[Table] = field(default_factory=list)
    csvs: list[CsvTable] = field(default_factory=list)
    all_tex: dict[str, list[str]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    populated: int = 0
    jsons: dict[str, Any] = field(default_factory=dict)
    """Machine-readable summaries: file stem -> JSON-ready object (``<stem>.json``)."""

    @property
    def supported(self) -> bool:
        """True when at least one row of one table has runs."""
        return self.populated > 0 and bool(self.tables)

    def write(self, out_dir: str | os.PathLike[str]) -> list[Path]:
        """Write ``<table>.tex/.md/.csv`` per table, the summary CSVs and the ``*_all.tex``
        concatenations into ``out_dir`` (atomically); returns the paths written."""
        out = Path(out_dir)
        paths: list[Path] = []
        by_name = {t.name: t for t in self.tables}
        for table in self.tables:
            paths.append(atomic_write_text(out / f"{table.name}.tex", render_latex(table)))
            paths.append(atomic_write_text(out / f"{table.name}.md", render_markdown(table)))
            paths.append(atomic_write_text(out / f"{table.name}.csv", render_table_csv(table)))
        for csv_table in self.csvs:
            paths.append(write_csv(csv_table, out))
        for stem, data in self.jsons.items():
            text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False) + "\n"
            paths.append(atomic_write_text(out / f"{safe_name(stem)}.json", text))
        for all_name, members in self.all_tex.items():
            text = "\n".join(
                f"% ---- {by_name[safe_name(name)].name} ----\n"
                f"{render_latex(by_name[safe_name(name)])}"
                for name in members
                if safe_name(name) in by_name
            )
            if text:
                paths.append(atomic_write_text(out / f"{safe_name(all_name)}.tex", text))
        return paths


@dataclass(frozen=True)
class AccRow:
    """One accuracy row of a :class:`~aees.reporting.render.TableSpec`: label and statistics."""

    label: str
    st: AccStats


def pm_column(
    header: str | None,
    key: str,
    get: Callable[[Any], Summary],
    digits: int,
    scale: float,
    best: str | None = None,
) -> Column:
    """A "m ± s" column of the summary ``get(item)``; CSV ``<key>_mean``, ``<key>_std``
    (unscaled)."""
    return Column(
        header,
        lambda r: fmt_pm(get(r), digits, scale),
        (f"{key}_mean", f"{key}_std"),
        lambda r: (get(r).mean, get(r).sd),
        best=best,
        score=lambda r: get(r).mean,
    )


def acc_column(
    header: str, key: str, attr: str, digits: int, scale: float, best: str | None
) -> Column:
    """A "m ± s" column of ``AccStats.<attr>``; CSV ``<key>_mean``, ``<key>_std`` (fractions)."""
    return pm_column(header, key, lambda r: getattr(r.st, attr), digits, scale, best)


def text_column(
    header: str | None, key: str | None, get: Callable[[Any], Any], **kw: Any
) -> Column:
    """A left-aligned column showing ``str(get(item))``, written to the CSV as ``key`` (None:
    display only); ``csv_get`` (keyword) writes a different CSV value."""
    csv_get = kw.pop("csv_get", get)
    return Column(
        header,
        lambda r: str(get(r)),
        (key,) if key else (),
        (lambda r: (csv_get(r),)) if key else None,
        align=kw.pop("align", "l"),
        **kw,
    )


ACC_COLUMNS = (
    Column("n", lambda r: str(r.st.n), ("n",), lambda r: (r.st.n,)),
    acc_column("Best (%)", "best_val", "best", 2, 100, "max"),
    acc_column("Final (%)", "final_val", "final", 2, 100, "max"),
    acc_column("Drop (pp)", "drop_val", "drop", 2, 100, "min"),
    acc_column("Peak epoch", "peak_epoch", "peak", 1, 1.0, None),
)
"""n, Best/Final/Drop (%, pp; best and second best marked, lower Drop is better) and Peak
epoch; the summary CSV writes each as mean and sample SD (fractions)."""


def label_column(header: str, key: str) -> Column:
    """The row label (left-aligned), written to the CSV as ``key``."""
    return Column(header, lambda r: r.label, (key,), lambda r: (r.label,), align="l")


def datasets_title(title: str, runset: RunSet) -> str:
    """``"Noisy labels: Digits"``: a CIFAR-style family's title names the datasets of its runs
    (digits runs share the CIFAR families but are not CIFAR)."""
    names = [runset.task_label(t) for t in runset.family_tasks("cifar")]
    return f"{title}: {', '.join(names)}" if names else title


class Builder:
    """Shared state of one family build: output, notes, missing cells, populated count."""

    def __init__(self, family: str, title: str, runset: RunSet) -> None:
        self.runset = runset
        self.out = FamilyOutput(family, title)

    def row(
        self,
        cells: Iterable[Cell],
        sel: Sel,
        *,
        optimizer: str | None,
        where: str,
    ) -> AccStats:
        cell = pick(cells, sel, optimizer=optimizer, where=where, notes=self.out.notes)
        st = acc_stats(cell)
        self.count(st.n, f"{where}: {sel.label}")
        if cell is not None:
            self.note_duplicates(cell)
        return st

    def count(self, n: int, what: str) -> None:
        if n:
            self.out.populated += 1
        else:
            self.out.missing.append(f"{what}: no runs")

    def note_duplicates(self, cell: Cell) -> None:
        dups = cell.duplicate_seed_paths()
        if dups:
            note = f"{cell.describe()}: repeated seeds, used the first file per seed; ignored " + (
                ", ".join(str(p) for p in dups)
            )
            if note not in self.out.notes:
                self.out.notes.append(note)
