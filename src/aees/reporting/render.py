"""The table model and its three renderings: LaTeX (booktabs), Markdown and CSV (plus HTML for
the report index).

A :class:`Table` holds plain-text cells (Unicode ``±``, ``×``, ``σ`` ...); each renderer
escapes for its format, so every number is formatted once. Ranking marks (best: bold,
second-best: italic) are set by :func:`mark_ranks`. Leading ``merge`` columns are shown once
per run of equal values (``\\multirow`` in LaTeX); a change in column 0 draws a ``\\midrule``,
a change in a later merged column a ``\\cmidrule``.

The family builders (one per thesis table family) live in :mod:`aees.reporting.families`.
"""

from __future__ import annotations

import csv
import html
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aees.reporting.stats import Summary
from aees.results import atomic_write_text

__all__ = [
    "MISSING",
    "Column",
    "CsvTable",
    "TCell",
    "Table",
    "TableSpec",
    "fmt_num",
    "fmt_pm",
    "fmt_pvalue",
    "fmt_signed",
    "latex_text",
    "mark_ranks",
    "render_html",
    "render_latex",
    "render_markdown",
    "render_table_csv",
    "write_csv",
]

MISSING = "—"
"""Shown for a value that has no runs."""


@dataclass
class TCell:
    """One table cell: plain text and a rank (1 = best, 2 = second best, 0 = unranked)."""

    text: str
    rank: int = 0


@dataclass
class Table:
    """A rendered-format-agnostic table.

    ``align`` has one letter (l, c, r) per column. ``midrule_before`` lists row indices that
    start a new comparison block without a change in the merged columns.
    """

    name: str
    caption: str
    label: str
    header: list[str]
    align: str
    rows: list[list[TCell]] = field(default_factory=list)
    merge: int = 0
    midrule_before: set[int] = field(default_factory=set)
    groups: list[tuple[str, int]] = field(default_factory=list)
    """Optional column groups above the header: (label, span) pairs covering every column."""

    def flat_header(self) -> list[str]:
        """Header names with their group prefixed (``"Penalty Best"``), for Markdown/CSV."""
        if not self.groups:
            return list(self.header)
        out, col = [], 0
        for label, span in self.groups:
            for name in self.header[col : col + span]:
                out.append(f"{label} {name}" if label else name)
            col += span
        return out

    def add(self, *cells: TCell | str) -> list[TCell]:
        row = [c if isinstance(c, TCell) else TCell(c) for c in cells]
        if len(row) != len(self.header):
            raise ValueError(f"{self.name}: row has {len(row)} cells, header {len(self.header)}")
        self.rows.append(row)
        return row


@dataclass
class CsvTable:
    """A numeric CSV (the thesis ``*_summary.csv`` files): None/NaN are written empty."""

    name: str
    header: list[str]
    rows: list[list[Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Column:
    """One column of a table spec, read from one row item (any object the spec's table rows
    are built from).

    ``header``: the displayed header (None: a CSV-only column); ``text``: item -> displayed
    text; ``csv``: the CSV keys the column writes (empty: a display-only column) and
    ``values``: item -> one value per key; ``align``: l, c or r; ``best``: ``"max"`` or
    ``"min"`` to mark best/second best within a block by ``score(item)``, ties broken by the
    lower ``tie_break(item)`` when given.
    """

    header: str | None
    text: Callable[[Any], str] | None = None
    csv: tuple[str, ...] = ()
    values: Callable[[Any], Sequence[Any]] | None = None
    align: str = "r"
    best: str | None = None
    score: Callable[[Any], float | None] | None = None
    tie_break: Callable[[Any], float | None] | None = None


@dataclass(frozen=True)
class TableSpec:
    """A table defined once: its columns produce the displayed table (LaTeX, Markdown and the
    displayed-cells CSV, via :class:`Table`) and the numeric summary CSV (:class:`CsvTable`).

    ``csv_order``: the summary CSV's keys in the order written, where it differs from the
    column order (every key of the columns, each once)."""

    columns: tuple[Column, ...]
    csv_order: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        keys = [key for c in self.columns for key in c.csv]
        if self.csv_order and sorted(self.csv_order) != sorted(keys):
            raise ValueError(f"csv_order {self.csv_order} is not a permutation of {keys}")

    @property
    def shown(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.header is not None)

    def table(self, name: str, caption: str, label: str, **kw: Any) -> Table:
        """An empty :class:`Table` with this spec's header and alignment."""
        header = [c.header for c in self.shown]
        return Table(name, caption, label, header, "".join(c.align for c in self.shown), **kw)

    def add(self, table: Table, item: Any) -> list[TCell]:
        """Append the displayed row of ``item``."""
        return table.add(*(TCell(c.text(item)) for c in self.shown))  # type: ignore[misc]

    def block(self, table: Table, items: Sequence[Any]) -> list[list[TCell]]:
        """Append one comparison block and mark its best and second best per ranked column."""
        rows = [self.add(table, item) for item in items]
        for j, col in enumerate(self.shown):
            if col.best is not None and col.score is not None:
                mark_ranks(
                    [row[j] for row in rows],
                    [col.score(item) for item in items],
                    higher_is_better=col.best == "max",
                    tie_break=None
                    if col.tie_break is None
                    else [col.tie_break(item) for item in items],
                )
        return rows

    def csv_header(self) -> list[str]:
        return list(self.csv_order) or [key for c in self.columns for key in c.csv]

    def csv_row(self, item: Any) -> list[Any]:
        values = [v for c in self.columns if c.csv for v in c.values(item)]  # type: ignore[misc]
        if not self.csv_order:
            return values
        by_key = dict(zip((key for c in self.columns for key in c.csv), values, strict=True))
        return [by_key[key] for key in self.csv_order]

    def csv_table(self, name: str, items: Sequence[Any]) -> CsvTable:
        """The numeric CSV of ``items`` (one row each)."""
        return CsvTable(name, self.csv_header(), [self.csv_row(item) for item in items])


# --------------------------------------------------------------------------------------------
# Number formatting
# --------------------------------------------------------------------------------------------


def _bad(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_num(value: float | None, digits: int = 2, scale: float = 1.0) -> str:
    """``value·scale`` with ``digits`` decimals; :data:`MISSING` for None/NaN."""
    if _bad(value):
        return MISSING
    assert value is not None
    return f"{value * scale:.{digits}f}"


def fmt_pm(summary: Summary, digits: int = 2, scale: float = 1.0) -> str:
    """``"m ± s"`` of a summary scaled by ``scale``; SD 0 (n = 1) prints as ``± 0.00``."""
    if summary.empty:
        return MISSING
    return f"{summary.mean * scale:.{digits}f} ± {summary.sd * scale:.{digits}f}"


def fmt_signed(value: float | None, digits: int = 1) -> str:
    """``+1.5`` / ``−0.3`` (explicit sign); :data:`MISSING` for None/NaN."""
    if _bad(value):
        return MISSING
    assert value is not None
    rounded = round(value, digits)
    if rounded == 0:
        rounded = 0.0  # no "−0.0"
    return f"{rounded:+.{digits}f}"


def fmt_pvalue(p: float | None) -> str:
    """``<0.001`` below 0.001, else 3 decimals; :data:`MISSING` for NaN."""
    if _bad(p):
        return MISSING
    assert p is not None
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def mark_ranks(
    cells: Sequence[TCell],
    values: Sequence[float | None],
    *,
    higher_is_better: bool,
    tie_break: Sequence[float | None] | None = None,
) -> None:
    """Set rank 1 on the best and 2 on the second-best cell by ``values`` (None/NaN skipped).

    Sorting is stable: ties keep the first encountered, unless ``tie_break`` (e.g. the SDs)
    is given, in which case the lower tie-break value wins. At least two valued cells are
    needed for any mark.
    """
    valued = [i for i, v in enumerate(values) if not _bad(v)]
    if len(valued) < 2:
        return

    def key(i: int) -> tuple[float, float]:
        v = float(values[i])  # type: ignore[arg-type]
        tb = tie_break[i] if tie_break is not None else None
        return (-v if higher_is_better else v, 0.0 if _bad(tb) else float(tb))  # type: ignore[arg-type]

    order = sorted(valued, key=key)
    cells[order[0]].rank = 1
    cells[order[1]].rank = 2


# --------------------------------------------------------------------------------------------
# Renderers
# --------------------------------------------------------------------------------------------

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"$<$",
    ">": r"$>$",
    "±": r"$\pm$",
    "×": r"$\times$",
    "σ": r"$\sigma$",
    "λ": r"$\lambda$",
    "Δ": r"$\Delta$",
    "↓": r"$\downarrow$",
    "↑": r"$\uparrow$",
    "−": r"$-$",
    "—": "--",
    "≥": r"$\geq$",
}


def latex_text(text: str) -> str:
    """Escape ``text`` for LaTeX text mode; Unicode symbols become math-mode commands."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def _merged_display(table: Table) -> list[list[str | None]]:
    """Cell texts with repeated merged-column values replaced by None."""
    out: list[list[str | None]] = []
    previous: list[str] | None = None
    for row in table.rows:
        texts: list[str | None] = [c.text for c in row]
        if previous is not None:
            for j in range(table.merge):
                if row[j].text == previous[j] and all(row[k].text == previous[k] for k in range(j)):
                    texts[j] = None
        previous = [c.text for c in row]
        out.append(texts)
    return out


def _run_lengths(table: Table, j: int) -> list[int]:
    """For each row, how many consecutive rows (from it) share columns 0..j."""
    n = len(table.rows)
    lengths = [1] * n
    for i in range(n - 2, -1, -1):
        if all(table.rows[i][k].text == table.rows[i + 1][k].text for k in range(j + 1)):
            lengths[i] = lengths[i + 1] + 1
    return lengths


def _rule_before(table: Table, i: int) -> str | None:
    """The rule drawn between row i−1 and row i (LaTeX), if any."""
    if i == 0:
        return None
    prev, row = table.rows[i - 1], table.rows[i]
    ncols = len(table.header)
    for j in range(table.merge):
        if row[j].text != prev[j].text:
            return r"\midrule" if j == 0 else rf"\cmidrule(lr){{{j + 1}-{ncols}}}"
    if i in table.midrule_before:
        return r"\midrule"
    return None


def _latex_cell(cell: TCell) -> str:
    text = latex_text(cell.text)
    if cell.rank == 1:
        return rf"\textbf{{{text}}}"
    if cell.rank == 2:
        return rf"\emph{{{text}}}"
    return text


def render_latex(table: Table) -> str:
    """A ``table`` float with a booktabs ``tabular`` (``\\toprule``/``\\midrule``/
    ``\\bottomrule``); needs the ``booktabs`` and (when ``merge`` > 0) ``multirow`` packages."""
    display = _merged_display(table)
    runs = [_run_lengths(table, j) for j in range(table.merge)]
    lines = [
        f"% {table.name}: generated by aees.reporting from result JSON; do not edit.",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_text(table.caption)}}}",
        rf"\label{{{table.label}}}",
        rf"\begin{{tabular}}{{{table.align}}}",
        r"\toprule",
    ]
    if table.groups:
        spans, rules, col = [], [], 1
        for label, span in table.groups:
            if label:
                spans.append(rf"\multicolumn{{{span}}}{{c}}{{{latex_text(label)}}}")
                rules.append(rf"\cmidrule(lr){{{col}-{col + span - 1}}}")
            else:
                spans += [""] * span
            col += span
        lines.append(" & ".join(spans) + r" \\")
        lines.append(" ".join(rules))
    lines += [" & ".join(latex_text(h) for h in table.header) + r" \\", r"\midrule"]
    for i, row in enumerate(table.rows):
        rule = _rule_before(table, i)
        if rule:
            lines.append(rule)
        cells: list[str] = []
        for j, cell in enumerate(row):
            if j < table.merge:
                if display[i][j] is None:
                    cells.append("")
                elif runs[j][i] > 1:
                    cells.append(rf"\multirow{{{runs[j][i]}}}{{*}}{{{_latex_cell(cell)}}}")
                else:
                    cells.append(_latex_cell(cell))
            else:
                cells.append(_latex_cell(cell))
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _md_escape(text: str) -> str:
    return text.replace("|", r"\|")


def _md_cell(cell: TCell, text: str) -> str:
    text = _md_escape(text)
    if cell.rank == 1 and text:
        return f"**{text}**"
    if cell.rank == 2 and text:
        return f"*{text}*"
    return text


def render_markdown(table: Table, *, heading: bool = True) -> str:
    """A pipe table (GitHub-flavoured), preceded by a bold caption line when ``heading``."""
    display = _merged_display(table)
    ncols = len(table.header)
    sep = {"l": ":---", "c": ":---:", "r": "---:"}
    lines = []
    if heading:
        lines += [f"**{_md_escape(table.caption)}**", ""]
    lines.append("| " + " | ".join(_md_escape(h) for h in table.flat_header()) + " |")
    lines.append("| " + " | ".join(sep.get(a, "---") for a in table.align[:ncols]) + " |")
    for i, row in enumerate(table.rows):
        texts = [_md_cell(c, display[i][j] or "") for j, c in enumerate(row)]
        lines.append("| " + " | ".join(texts) + " |")
    return "\n".join(lines) + "\n"


def render_html(table: Table) -> str:
    """An HTML ``<table>`` (escaped; best in ``<b>``, second best in ``<i>``)."""
    out = [f"<table><caption>{html.escape(table.caption)}</caption>", "<thead>"]
    if table.groups:
        out.append("<tr>")
        out += [f'<th colspan="{span}">{html.escape(label)}</th>' for label, span in table.groups]
        out.append("</tr>")
    out.append("<tr>")
    out += [f"<th>{html.escape(h)}</th>" for h in table.header]
    out.append("</tr></thead><tbody>")
    display = _merged_display(table)
    for i, row in enumerate(table.rows):
        css = ' class="block"' if _rule_before(table, i) else ""
        out.append(f"<tr{css}>")
        for j, cell in enumerate(row):
            text = html.escape(display[i][j] or "")
            if cell.rank == 1 and text:
                text = f"<b>{text}</b>"
            elif cell.rank == 2 and text:
                text = f"<i>{text}</i>"
            align = {"l": "left", "c": "center", "r": "right"}.get(table.align[j], "left")
            out.append(f'<td style="text-align:{align}">{text}</td>')
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if _bad(v) else v for v in row])
    return buffer.getvalue()


def render_table_csv(table: Table) -> str:
    """The displayed cells as CSV (no rank marks; merged values repeated on every row)."""
    return _csv_text(table.flat_header(), [[c.text for c in row] for row in table.rows])


def write_csv(table: CsvTable, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``<out_dir>/<name>.csv`` atomically."""
    return atomic_write_text(
        Path(out_dir) / f"{table.name}.csv", _csv_text(table.header, table.rows)
    )
