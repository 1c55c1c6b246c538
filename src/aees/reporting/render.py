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
import hashlib
import html
import io
import math
import os
import re
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
    "md_code",
    "md_text",
    "render_html",
    "render_latex",
    "render_markdown",
    "render_table_csv",
    "safe_name",
    "short_hash",
    "slug_stems",
    "spreadsheet_safe",
    "write_csv",
]

MISSING = "—"
"""Shown for a value that has no runs."""

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,150}")


def short_hash(text: str) -> str:
    """8 hex digits of SHA-256: what keeps two names apart once a slug dropped characters."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def safe_name(name: str) -> str:
    """``name`` as one file-name component (docs/reporting.md §1): unchanged when it is
    ASCII letters, digits, ``.``, ``_``, ``+``, ``-`` (not leading ``.``/``-``, at most 151
    characters); otherwise the characters outside that set become ``-`` and a short hash of
    the whole name is appended, so a task or setting read from a result can neither leave the
    output directory (``../``) nor make two outputs share a file."""
    if _SAFE_NAME.fullmatch(name):
        return name
    slug = re.sub(r"[^A-Za-z0-9._+-]+", "-", name).strip("-.")[:100]
    return f"{slug}-{short_hash(name)}" if slug else short_hash(name)


def _slug(part: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", part.lower()).strip("-")


_PLAIN = re.compile(r"[\x20-\x7e·]*")
"""Names whose slug keeps every letter: only spaces, ASCII punctuation and ``·`` are dropped
(two such names that still meet get the hash from the collision check)."""


def slug_stems(keys: Sequence[tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    """A collision-free file-name stem per key (docs/reporting.md §1): the slugs of its parts
    (lower case, every run of other characters one ``-``) joined by ``_``, plus
    ``-<short hash of the key>`` when a part has characters beyond ASCII that the slug drops
    (``猫`` and ``犬`` both slug to nothing) or when two keys would share a stem (``my data`` /
    ``my-data``)."""
    base = {k: "_".join(_slug(p) for p in k if _slug(p)) for k in dict.fromkeys(keys)}
    counts: dict[str, int] = {}
    for stem in base.values():
        counts[stem] = counts.get(stem, 0) + 1
    out = {}
    for key, stem in base.items():
        lossy = any(not _PLAIN.fullmatch(p) for p in key)
        if lossy or counts[stem] > 1 or not stem:
            stem = (
                f"{stem}-{short_hash(chr(31).join(key))}" if stem else short_hash(chr(31).join(key))
            )
        out[key] = stem
    return out


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

    def __post_init__(self) -> None:
        self.name = safe_name(self.name)

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

    def __post_init__(self) -> None:
        self.name = safe_name(self.name)


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
    """``"m ± s"`` of a summary scaled by ``scale``; a single value (n = 1, no SD) prints as
    ``"m (n=1)"``."""
    if summary.empty:
        return MISSING
    if summary.n == 1:
        return f"{summary.mean * scale:.{digits}f} (n=1)"
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
    """Set rank 1 on the best and rank 2 on the second-best cells by ``values`` (None/NaN
    skipped), ties shared (docs/reporting.md §4.4).

    Order: by value, then (when ``tie_break``, e.g. the SDs, is given) the lower tie-break
    value. Cells that show the same text are a tie, whatever digits the text hides: they get
    the same mark. Competition ranking: every cell tied for best is bold; the next cells are
    italic only when one cell alone is best (two tied for best take places 1 and 2). Nothing
    is marked when fewer than two cells have values or when every valued cell ties.
    """
    valued = [i for i, v in enumerate(values) if not _bad(v)]
    if len(valued) < 2:
        return

    def key(i: int) -> tuple[float, float]:
        v = float(values[i])  # type: ignore[arg-type]
        tb = tie_break[i] if tie_break is not None else None
        return (-v if higher_is_better else v, 0.0 if _bad(tb) else float(tb))  # type: ignore[arg-type]

    groups: list[list[int]] = []  # in order; a tie: the same value and tie-break, or the same text
    for i in sorted(valued, key=key):
        tied = next(
            (
                g
                for g in groups
                if any(cells[j].text == cells[i].text or key(j) == key(i) for j in g)
            ),
            None,
        )
        if tied is None:
            groups.append([i])
        else:
            tied.append(i)
    if len(groups) < 2:
        return
    for i in groups[0]:
        cells[i].rank = 1
    if len(groups[0]) == 1:
        for i in groups[1]:
            cells[i].rank = 2


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


_MD_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MD_HTML = re.compile(r"<(?=[A-Za-z/!?])")
_MD_LINK = re.compile(r"\](?=[(\[:])")


def md_text(text: str) -> str:
    """``text`` as inert Markdown inline text (docs/reporting.md §7): control characters (a
    newline would end a table row) become spaces; ``\\``, backticks and ``|`` are
    backslash-escaped; ``<`` before a letter, ``/``, ``!`` or ``?`` (an HTML tag such as
    ``<script>`` or an autolink such as ``<javascript:...>``) becomes ``&lt;``; ``]`` before
    ``(``, ``[`` or ``:`` (an inline, reference or definition link such as
    ``[x](javascript:...)``) becomes ``\\]``. Everything else, ``<0.001`` and ``[-0.1, 0.3]``
    included, is left as it reads."""
    text = _MD_CONTROL.sub(" ", text)
    text = text.replace("\\", "\\\\").replace("`", "\\`").replace("|", "\\|")
    return _MD_LINK.sub("\\\\]", _MD_HTML.sub("&lt;", text))


def md_code(text: str) -> str:
    """``text`` as a Markdown code span (a path): fenced by more backticks than it holds, so
    nothing inside is read as Markdown; control characters become spaces."""
    text = _MD_CONTROL.sub(" ", text)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_escape(text: str) -> str:
    return md_text(text)


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


_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run (docs/reporting.md §1, the OWASP rule): text
    that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
    ``'``, unless it is a plain number (``-0.3``, ``+1.5``, ``1e-3``), which stays a number.
    Numbers (int/float) are written as numbers; None/NaN as an empty cell."""
    if _bad(value):
        return ""
    formula = isinstance(value, str) and value.startswith(_FORMULA_START)
    return "'" + value if formula and not _NUMBER.fullmatch(value) else value


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([spreadsheet_safe(h) for h in header])
    for row in rows:
        writer.writerow([spreadsheet_safe(v) for v in row])
    return buffer.getvalue()


def render_table_csv(table: Table) -> str:
    """The displayed cells as CSV (no rank marks; merged values repeated on every row)."""
    return _csv_text(table.flat_header(), [[c.text for c in row] for row in table.rows])


def write_csv(table: CsvTable, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``<out_dir>/<name>.csv`` atomically."""
    return atomic_write_text(
        Path(out_dir) / f"{table.name}.csv", _csv_text(table.header, table.rows)
    )
