"""bench/overhead.py's verdicts and its Markdown table (see bench/README.md for how to read them).

A timing target is met (``pass``), missed in every round (``missed``), or missed by the median
while the per-round overheads straddle the limit (``noisy``: the machine's noise, not a verdict).
"""

from __future__ import annotations

import platform
from typing import Any

import torch
from overhead_setup import ARMS

ARM_LABEL = {"lr": "LR-only", "noise": "noise-only", "both": "LR+noise"}
IMPL_LABEL = {"aeesopt": "AEESOptimizer"}

# Targets for AEES (not for pulseopt, which is the reference being beaten): max overhead % vs plain.
TARGETS_PCT = {
    "cuda": {"lr": 1.0, "noise": 3.0, "both": 3.0},
    "cpu": {"lr": 2.0},
}
FACADE_TARGET_PCT = 1.0  # AEESOptimizer LR-only <= AEES object LR-only + 1 % (any device)
PEAK_TARGET_PCT = 1.0  # peak memory <= plain + 1 %


def _round_overheads(timed: dict, name: str, against: str) -> list[float]:
    """Per-round overhead % of ``name`` against ``against`` (the same round, side by side)."""
    pairs = zip(
        timed[name]["ms_per_step_rounds"], timed[against]["ms_per_step_rounds"], strict=True
    )
    return [100.0 * (a / b - 1.0) for a, b in pairs]


def _time_verdict(got: float, limit: float, rounds: list[float]) -> dict[str, Any]:
    """A timing target: ``pass`` (median within the limit), ``noisy`` (median over it, but the
    per-round overheads straddle the limit: the machine's noise, not a verdict) or ``missed``
    (over the limit in every round)."""
    verdict = "pass" if got <= limit else "noisy" if min(rounds) <= limit else "missed"
    return {
        "limit_pct": limit,
        "got_pct": got,
        "rounds_pct": [min(rounds), max(rounds)],
        "verdict": verdict,
        "pass": verdict == "pass",
    }


def check_targets(res: dict, dev_type: str) -> dict:
    out: dict[str, Any] = {}
    timed = res["variants"]
    facade = timed.get("aeesopt-lr")
    if facade is not None and "overhead_pct_vs_aees" in facade:
        rounds = _round_overheads(timed, "aeesopt-lr", "aees-lr")
        out["aeesopt-lr time vs aees-lr"] = _time_verdict(
            facade["overhead_pct_vs_aees"], FACADE_TARGET_PCT, rounds
        )
    for a, limit in TARGETS_PCT.get(dev_type, {}).items():
        if f"aees-{a}" not in timed:
            continue
        got = timed[f"aees-{a}"]["overhead_pct"]
        rounds = _round_overheads(timed, f"aees-{a}", "plain")
        out[f"aees-{a} time"] = _time_verdict(got, limit, rounds)
    if dev_type == "cuda":
        for a in ARMS:
            if f"aees-{a}" not in timed:
                continue
            got = timed[f"aees-{a}"]["peak_overhead_pct"]
            out[f"aees-{a} peak"] = {
                "limit_pct": PEAK_TARGET_PCT,
                "got_pct": got,
                "verdict": "pass" if got <= PEAK_TARGET_PCT else "missed",
                "pass": got <= PEAK_TARGET_PCT,
            }
    return out


def markdown_table(name: str, res: dict, dev_type: str, stand_in: bool) -> str:
    cuda = dev_type == "cuda"
    head = ["variant", "ms/step (median)", "overhead % vs plain"]
    if cuda:
        head += ["peak MiB", "peak % vs plain"]
    head += ["pulseopt/aees (time)"]
    if cuda:
        head += ["pulseopt/aees (peak)"]
    lines = [
        f"### {name}: {res['params'] / 1e6:.2f} M params ({res['param_tensors']} tensors), "
        f"batch {res['batch']}, {res['optimizer']}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    for vname, e in res["variants"].items():
        impl, _, arms = vname.partition("-")
        label = (
            "plain AdamW" if impl == "plain" else f"{IMPL_LABEL.get(impl, impl)} {ARM_LABEL[arms]}"
        )
        if impl == "aees" and stand_in:
            label += " (stand-in)"
        row = [label, f"{e['ms_per_step_median']:.3f}", f"{e['overhead_pct']:+.2f}"]
        if cuda:
            row += [f"{e['peak_mib']:.1f}", f"{e['peak_overhead_pct']:+.2f}"]
        ratio = res["ratio_pulseopt_over_aees"].get(arms) if impl == "aees" else None
        row += [f"{ratio['ms']:.3f}x" if ratio else ""]
        if cuda:
            row += [f"{ratio['peak']:.3f}x" if ratio else ""]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    if res["targets"]:
        lines.append("Targets (aees only):")
        for k, t in res["targets"].items():
            vs = "" if " vs " in k else " vs plain"
            line = f"- {k} <= +{t['limit_pct']:g}%{vs}: {t['got_pct']:+.2f}%  "
            low, high = t.get("rounds_pct", (None, None))
            spread = f"rounds {low:+.2f}..{high:+.2f}%" if low is not None else ""
            if t["verdict"] == "pass":
                line += "PASS"
            elif t["verdict"] == "noisy":
                line += (
                    f"NOISY, not a verdict: {spread} straddle the limit (a loaded machine; "
                    "rerun idle with more --rounds)"
                )
            else:
                line += "MISSED: over the limit" + (f" in every round ({spread})" if spread else "")
            lines.append(line)
    return "\n".join(lines)


def device_name(dev: torch.device) -> str:
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
