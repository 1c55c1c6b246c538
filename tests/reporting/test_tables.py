"""Table families: every checked number is recomputed here from the fixture definitions."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import report_fixtures as fx
from scipy import stats as sps

from aees.reporting.families import FAMILIES, FamilyOutput
from aees.reporting.render import (
    Table,
    TCell,
    latex_text,
    mark_ranks,
    render_latex,
    render_markdown,
)


def per_seed(offset: float, seeds, epochs: int, peak: int) -> dict[str, list[float]]:
    """Independent best / final / drop / peak epoch per seed from the fixture curve."""
    curves = [fx.curve(offset, s, epochs, peak) for s in seeds]
    return {
        "best": [max(c) for c in curves],
        "final": [c[-1] for c in curves],
        "drop": [max(c) - c[-1] for c in curves],
        "peak": [float(np.argmax(c) + 1) for c in curves],
    }


def row(table: Table, *keys: str) -> list[TCell]:
    """The row whose leading non-merged texts are ``keys`` (merged cells carried down)."""
    carried: list[str] = []
    for cells in table.rows:
        texts = [c.text for c in cells]
        carried = texts
        if all(k in texts[: len(keys) + 1] for k in keys):
            return cells
    raise AssertionError(f"no row {keys} in {table.name}: {carried}")


def table(out: FamilyOutput, name: str) -> Table:
    return next(t for t in out.tables if t.name == name)


def acc_texts(vals: dict[str, list[float]], digits: int = 2) -> list[str]:
    return [
        fx.fmt_pm(vals["best"], digits),
        fx.fmt_pm(vals["final"], digits),
        fx.fmt_pm(vals["drop"], digits),
        fx.fmt_pm(vals["peak"], 1, 1.0),
    ]


@pytest.fixture(scope="module")
def built(runset) -> dict[str, FamilyOutput]:
    return {name: family.builder(runset) for name, family in FAMILIES.items()}


def test_every_family_is_supported_by_the_fixtures(built):
    # peers and other_tasks have their own fixture runs (test_peers.py); the thesis fixtures
    # have none, and their table digests stay as recorded
    own = {"peers", "other_tasks"}
    assert {n for n, out in built.items() if out.supported} == set(FAMILIES) - own
    assert not any(built[n].tables for n in own)


def test_cifar_clean_main_and_ablation_tables(built):
    out = built["cifar_clean"]
    main = table(out, "cifar_clean_main_table")
    for label in ("AdamW", "AdamW + Cosine", "AdamW + Linear", "AEES", "AEES + Cosine"):
        offset = fx.CLEAN[label][1]
        cells = row(main, label)
        assert cells[1].text == "3"
        assert [c.text for c in cells[2:]] == acc_texts(per_seed(offset, fx.SEEDS, 12, 10))
    # ranking within the table: AEES + Linear has the highest offset, AEES + Cosine second
    assert row(main, "AEES + Linear")[2].rank == 1 and row(main, "AEES + Cosine")[2].rank == 2
    fixed = table(out, "cifar_clean_fixed_lr_ablation_table")
    assert [c.text for c in row(fixed, "Fixed ×1.0")[1:]] == ["0", "—", "—", "—", "—"]
    assert "CIFAR-100 clean: Fixed ×1.0: no runs" in out.missing
    compact = table(out, "cifar_clean_compact_appendix_table")
    # first block: AdamW .20, Fixed 0.5 .21, Fixed 2.0 .18, AEES .225
    assert row(compact, "AEES")[2].rank == 1 and row(compact, "Fixed ×0.5")[2].rank == 2
    assert row(compact, "AdamW + Cosine")[2].rank == 2  # own block of two
    csv = next(c for c in out.csvs if c.name == "cifar_clean_summary")
    assert [r[0] for r in csv.rows] == sorted(r[0] for r in csv.rows)
    aees = next(r for r in csv.rows if r[0] == "AEES")
    ref = per_seed(fx.CLEAN["AEES"][1], fx.SEEDS, 12, 10)
    assert aees[1] == 3
    assert aees[2] == pytest.approx(np.mean(ref["best"]))
    assert aees[3] == pytest.approx(np.std(ref["best"], ddof=1))


def test_cifar_noisy_main_and_detailed_with_diagnostics(built):
    out = built["cifar_noisy"]
    main = table(out, "cifar_sym40_main_table")
    assert main.merge == 1 and [c.text for c in main.rows[0][:2]] == ["AdamW", "Baseline"]
    for opt, label_opt in (("AdamW", "AdamW"), ("SGD", "SGD+M")):
        for label in ("Baseline", "AEES", "Cosine", "Cosine + AEES"):
            cells = next(r for r in main.rows if r[0].text == label_opt and r[1].text == label)
            ref = per_seed(fx.noisy_offset(label, opt), fx.SEEDS, 12, 5)
            assert [c.text for c in cells[2:]] == acc_texts(ref)
        block = [r for r in main.rows if r[0].text == label_opt]
        assert [r[1].text for r in block if r[2].rank == 1] == ["AEES"]
    detailed = table(out, "cifar_noisy_detailed_appendix_table")
    cells = next(r for r in detailed.rows if r[1].text == "SGD+M" and r[2].text == "AEES")
    # final-epoch diagnostics: corr_noisy = 0.9 + 0.01·seed, corr_clean 0.05, train_clean 0.99
    assert cells[8].text == fx.fmt_pm([0.9 + 0.01 * s for s in fx.SEEDS])
    assert cells[9].text == "5.00 ± 0.00" and cells[10].text == "99.00 ± 0.00"


def test_fixed_lr_ablation_and_paired_statistics(built):
    out = built["cifar_noisy_fixed_lr_ablation"]
    paired = table(out, "cifar_noisy_aees_vs_best_fixed_stats_table")
    cells = next(r for r in paired.rows if r[0].text == "Sym 40%" and r[1].text == "AdamW")
    # best fixed by mean best accuracy: offsets 0.5 -> .07, 1.0 -> .04, 2.0 -> .03
    assert cells[2].text == "×0.5"
    aees = np.array(per_seed(fx.noisy_offset("AEES", "AdamW"), fx.SEEDS, 12, 5)["best"])
    fixed = np.array(per_seed(fx.noisy_offset("Fixed ×0.5", "AdamW"), fx.SEEDS, 12, 5)["best"])
    d = aees - fixed
    rng = np.random.default_rng(0)
    boot = d[rng.integers(0, d.size, size=(10_000, d.size))].mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    assert cells[3].text == fx.fmt_pm(list(fixed))
    assert cells[4].text == fx.fmt_pm(list(aees))
    assert cells[5].text == f"{100 * d.mean():.2f} [{100 * low:.2f}, {100 * high:.2f}]"
    p = sps.ttest_rel(aees, fixed).pvalue
    assert cells[6].text == ("<0.001" if p < 0.001 else f"{p:.3f}")
    summary = table(out, "cifar_noisy_fixed_lr_ablation_summary_table")
    srow = next(r for r in summary.rows if r[0].text == "Sym 40%" and r[1].text == "AdamW")
    ref = per_seed(fx.noisy_offset("Fixed ×0.5", "AdamW"), fx.SEEDS, 12, 5)
    expected = " / ".join(f"{100 * np.mean(ref[k]):.1f}" for k in ("best", "final", "drop"))
    assert srow[3].text == expected
    detailed = table(out, "cifar_noisy_fixed_lr_ablation_detailed_table")
    assert [r[2].text for r in detailed.rows[:7]] == [
        "Baseline",
        "Fixed ×0.5",
        "Fixed ×1.0",
        "Fixed ×2.0",
        "AEES",
        "Cosine",
        "Cosine + AEES",
    ]


def test_checkpoint_diagnostics_use_the_best_epoch_block(built):
    out = built["checkpointing"]
    main = table(out, "cifar_checkpoint_diagnostics_main")
    block = [r for r in main.rows if r[0].text == "Sym 40%" and r[1].text == "AdamW"]
    assert [r[2].text for r in block] == ["Baseline", "AEES", "Cosine", "Cosine + AEES"]
    for cells in block:
        offset = fx.noisy_offset(cells[2].text, "AdamW")
        ref = per_seed(offset, fx.SEEDS, 12, 5)
        assert cells[3].text == "5.0 ± 0.0"
        assert cells[4].text == fx.fmt_pm(ref["best"], 1)
        assert cells[5].text == fx.fmt_pm([0.2 + offset + 0.01 * s for s in fx.SEEDS], 1)
        assert cells[6].text == fx.fmt_pm([0.5 - offset] * 3, 1)
    # Corr. noisy: lower is better -> Baseline (.05) best, Cosine (.06) second
    assert block[0][5].rank == 1 and block[2][5].rank == 2
    # Corr. clean: higher is better -> the same order
    assert block[0][6].rank == 1 and block[2][6].rank == 2


def test_cifar_noise_ablation_pairs_counterparts(built):
    out = built["cifar_noise_ablation"]
    t = table(out, "cifar_noise_ablation_table")
    assert [r[1].text for r in t.rows] == ["No gradient noise", "Gradient-noise injection"]
    for cells, key in zip(t.rows, ("trend", "trend_noise"), strict=True):
        ref = per_seed(fx.ABLATION_OFFSETS[key], (0, 1), 6, 3)
        assert cells[2].text == "2"
        assert cells[3].text == fx.fmt_pm(ref["best"])
        assert cells[4].text == fx.fmt_pm(ref["final"])
        gap = 100 * np.mean(ref["best"]) - 100 * np.mean(ref["final"])
        assert cells[5].text == f"{gap:.2f}"
    assert t.rows[0][3].rank == 1 and t.rows[1][3].rank == 0  # bold only


@pytest.mark.parametrize(
    ("family", "ref_key", "abl_key"),
    [
        ("instability_penalty_ablation", "main", "penalty"),
        ("trend_context_ablation", "main", "trend"),
    ],
)
def test_delta_ablation_tables(built, family, ref_key, abl_key):
    out = built[family]
    t = out.tables[0]
    assert len(t.rows) == 1 and t.groups[1][1] == 3
    a = per_seed(fx.ABLATION_OFFSETS[ref_key], (0, 1), 6, 3)
    b = per_seed(fx.ABLATION_OFFSETS[abl_key], (0, 1), 6, 3)
    texts = [c.text for c in t.rows[0]]
    assert texts[1] == f"{100 * np.mean(a['best']):.2f}"
    assert texts[4] == f"{100 * np.mean(b['best']):.2f}"
    delta = round(100 * (np.mean(b["best"]) - np.mean(a["best"])), 1)
    assert texts[7] == f"{delta + 0.0:+.1f}"


def test_compute_overhead_excludes_the_first_epoch(built):
    out = built["compute_overhead"]
    deco = table(out, "compute_overhead_decomposition_table")
    cells = next(r for r in deco.rows if r[0].text == "Digits")
    secs = {k: np.mean(v[1]) for k, v in fx.TIMING.items()}
    base = secs["baseline_none"]
    assert cells[2].text == f"{base:.2f}"
    assert cells[3].text == f"{100 * (secs['baseline_cosine'] / base - 1):+.1f}"
    assert cells[4].text == f"{100 * (secs['aees_lr_only_none'] / base - 1):+.1f}"
    assert cells[5].text == f"{100 * (secs['aees_noise_only_none'] / base - 1):+.1f}"
    assert cells[6].text == "—"
    assert "Digits adamw: AEES-Dual: no timing runs" in out.missing
    detailed = table(out, "compute_overhead_detailed_table")
    lr = next(r for r in detailed.rows if r[0].text == "Digits" and r[2].text == "AEES-LR")
    assert lr[3].text == "3"
    assert lr[4].text == fx.fmt_pm(list(fx.TIMING["aees_lr_only_none"][1]), 2, 1.0)
    assert "Fixture GPU" in deco.caption
    # a single repeat has SD 0, never NaN
    csv = next(c for c in out.csvs if c.name == "compute_overhead_summary")
    assert all(r[7] == r[7] for r in csv.rows)


def test_nlp_main_axis_and_noise_ablation(built):
    out = built["nlp"]
    main = table(out, "agnews_noise20_main")
    for label in ("AdamW", "AdamW + warmup-linear", "AEES", "AEES + warmup-linear"):
        ref = per_seed(fx.NLP[label][1], fx.SEEDS, 5, 3)
        assert [c.text for c in row(main, label)[1:]] == acc_texts(ref)
    assert row(main, "AEES + warmup-linear")[1].rank == 1
    axis = table(out, "agnews_noise20_axis")
    assert [c.text for c in row(axis, "AEES-LR + warmup-linear")[1:]] == ["—"] * 4
    noise_ref = per_seed(fx.NLP["AEES-Noise + WL"][1], fx.SEEDS, 5, 3)
    assert row(axis, "AEES-Noise + warmup-linear")[1].text == fx.fmt_pm(noise_ref["best"])
    abl = table(built["nlp_noise_ablation"], "agnews_noise20_noise_ablation_table")
    labels = [r[0].text for r in abl.rows]
    assert labels == [
        "AdamW (Flat, σ=0)",
        "AdamW + WL (σ=0)",
        "Fixed σ=0.005 + WL",
        "Random σ + WL",
        "AEES-Noise + WL",
        "AEES-Dual + WL",
    ]
    assert abl.midrule_before == {2}
    best = max(labels, key=lambda lab: fx.NLP.get(lab, (None, -1))[1])
    assert row(abl, "Random σ + WL")[2].rank == 1 and best == "Random σ + WL"


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _split_latex_row(line: str) -> list[str]:
    depth, cells, cur = 0, [], ""
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            cur += line[i : i + 2]
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if ch == "&" and depth == 0:
            cells.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    cells.append(cur)
    return cells


def _columns(cell: str) -> int:
    m = re.match(r"\s*\\multicolumn\{(\d+)\}", cell)
    return int(m.group(1)) if m else 1


def check_latex(text: str) -> None:
    """Balanced environments and braces, booktabs rules in order, equal column counts."""
    envs = re.findall(r"\\(begin|end)\{(\w+)\}", text)
    stack: list[str] = []
    for kind, name in envs:
        if kind == "begin":
            stack.append(name)
        else:
            assert stack and stack.pop() == name, f"unbalanced \\end{{{name}}}"
    assert not stack
    stripped = re.sub(r"\\[{}]", "", text)
    assert stripped.count("{") == stripped.count("}")
    for body in re.findall(r"\\begin\{tabular\}\{(\w+)\}(.*?)\\end\{tabular\}", text, re.S):
        spec, content = body
        ncols = len(spec)
        assert content.index(r"\toprule") < content.index(r"\midrule")
        assert content.index(r"\midrule") < content.index(r"\bottomrule")
        for line in content.splitlines():
            line = line.strip()
            if not line.endswith(r"\\"):
                assert line == "" or line.startswith(("\\toprule", "\\midrule", "\\bottomrule",
                                                      "\\cmidrule")), line  # fmt: skip
                continue
            cells = _split_latex_row(line[:-2])
            assert sum(_columns(c) for c in cells) == ncols, line


def check_markdown(text: str) -> None:
    rows = [ln for ln in text.splitlines() if ln.startswith("|")]
    assert len(rows) >= 2 and set(rows[1].replace("|", "").split()) <= {":---", "---:", ":---:"}
    counts = {len(re.split(r"(?<!\\)\|", ln)) for ln in rows}
    assert len(counts) == 1, counts


def test_every_written_table_is_structurally_valid(built, tmp_path):
    written = []
    for name, out in built.items():
        written += out.write(tmp_path / name)
    tex = [p for p in written if p.suffix == ".tex"]
    md = [p for p in written if p.suffix == ".md"]
    assert len(tex) > 20 and len(md) > 15
    for path in tex:
        check_latex(path.read_text())
    for path in md:
        check_markdown(path.read_text())
    for out in built.values():
        for t in out.tables:
            assert (tmp_path / out.family / f"{t.name}.csv").exists()
    # a concatenation holds every table it names
    all_tex = (tmp_path / "cifar_noisy" / "cifar_noisy_tables_all.tex").read_text()
    assert all_tex.count(r"\begin{table}") == 3  # sym20 and sym40 main + detailed


def test_latex_escaping_and_marks():
    assert latex_text("Best (%) a_b ± 0.1 ×2 σ<0.001") == (
        r"Best (\%) a\_b $\pm$ 0.1 $\times$2 $\sigma$$<$0.001"
    )
    t = Table("t", "Cap & more", "tab:t", ["Method", "Best (%)"], "lr")
    t.add("A", TCell("1.00 ± 0.10", rank=1))
    t.add("B|C", TCell("0.50 ± 0.10", rank=2))
    latex = render_latex(t)
    assert r"\textbf{1.00 $\pm$ 0.10}" in latex and r"\emph{0.50 $\pm$ 0.10}" in latex
    assert r"\caption{Cap \& more}" in latex
    check_latex(latex)
    md = render_markdown(t)
    assert "**1.00 ± 0.10**" in md and "*0.50 ± 0.10*" in md and r"B\|C" in md
    check_markdown(md)


def test_mark_ranks_ties_and_tie_break():
    cells = [TCell("a"), TCell("b"), TCell("c")]
    mark_ranks(cells, [0.5, 0.5, 0.1], higher_is_better=True)
    # a tie shares the mark (issue 19 §7: a tie was bold in one row, italic in the other)
    assert [c.rank for c in cells] == [1, 1, 0]
    cells = [TCell("a"), TCell("b"), TCell("c")]
    mark_ranks(cells, [0.5, 0.5, 0.1], higher_is_better=False, tie_break=[0.3, 0.1, 0.0])
    assert [c.rank for c in cells] == [0, 2, 1]
    cells = [TCell("a"), TCell("b")]
    mark_ranks(cells, [0.5, None], higher_is_better=True)
    assert [c.rank for c in cells] == [0, 0]


def test_multirow_and_groups_render(tmp_path: Path):
    t = Table("g", "G", "tab:g", ["Noise", "Opt", "Best"], "llr", merge=2)
    t.add("Sym 40%", "AdamW", "1")
    t.add("Sym 40%", "AdamW", "2")
    t.add("Sym 40%", "SGD+M", "3")
    t.add("Asym 20%", "AdamW", "4")
    latex = render_latex(t)
    assert r"\multirow{3}{*}{Sym 40\%}" in latex and r"\multirow{2}{*}{AdamW}" in latex
    assert r"\cmidrule(lr){2-3}" in latex and latex.count(r"\midrule") == 2
    check_latex(latex)
    g = Table("h", "H", "tab:h", ["S", "Best", "Final"], "lrr", groups=[("", 1), ("A", 2)])
    g.add("x", "1", "2")
    latex = render_latex(g)
    assert r"\multicolumn{2}{c}{A}" in latex and r"\cmidrule(lr){2-3}" in latex
    check_latex(latex)
    assert render_markdown(g).splitlines()[2] == "| S | A Best | A Final |"
