"""Record a fixed set of runs, or compare two recordings: same results except timing and provenance.

Used around refactors that must not change behaviour (the redesign of the package layout):
record before, record after, compare.

    python bench/result_parity.py record OUT_DIR [--skip-demo]
    python bench/result_parity.py compare BEFORE_DIR AFTER_DIR

``record`` runs, with the ``aees`` of the current interpreter:

* the digits demo (``aees demo``: 7 methods x 3 seeds, 30 epochs; about 3 minutes on 2 cores);
* single runs of the other tasks on tiny fixtures in their real on-disk formats (the test
  suite's fixture writers): cifar100 (AEES dual + asymmetric noise), sst2 (AEES), agnews (AEES
  with label noise), image (a PNG image folder: AEES + symmetric noise), text (a CSV folder:
  AEES with label noise), and digits (random SGD + cosine, conditional + trend).

``compare`` walks every result JSON of BEFORE and checks the one at the same relative path of
AFTER: equal after dropping the fields that measure time or describe the process
(:data:`VOLATILE_KEYS`) and replacing each recording's root directory by ``<root>``. Prints the
differences and exits 1 if there are any.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: Fields that differ between two runs of the same code: wall-clock time and where/when it ran.
VOLATILE_KEYS = frozenset(
    {
        "wall_clock_seconds",
        "epoch_wall_clock_seconds",
        "provenance",
        "runtime_metrics",
        "tokenizer_fingerprint",  # keyed by file mtimes of the fixture written anew
        "tokenized_dataset_path",  # the cache directory's name embeds that fingerprint
    }
)
#: Nested fields that are volatile too: the image cache's fingerprint is keyed by the file mtimes
#: of the fixture written anew, and its path embeds it (``hit`` / ``written`` are compared).
VOLATILE_NESTED = {"image_cache": frozenset({"fingerprint", "path"})}
#: Fields added to results after the first recording (issue 9: divergence; issue 11: tracking;
#: issue 14: the fast-mode flags, docs/protocols.md §17; issue 13: the peer optimizers'
#: settings, docs/protocols.md §5.1). Present only in AFTER, they are listed
#: apart and do not count as differences.
ADDED_KEYS = frozenset(
    {"diverged", "diverged_at_step", "diverged_at_epoch", "nonfinite", "tensorboard", "mlflow"}
    | {"compile", "compile_backend", "compile_mode", "channels_last", "cudnn_benchmark", "tf32"}
    | {"sf_warmup_steps", "sf_beta1", "sf_beta2", "prodigy_d_coef", "prodigy_safeguard_warmup"}
    | {"dadapt_d0", "dadapt_growth_rate"}
    | {"report_family", "task_label", "optimizer_label"}
)


def _aees(*args: str, cwd: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env["HF_DATASETS_OFFLINE"] = "1"
    subprocess.run([sys.executable, "-m", "aees.cli", *args], cwd=cwd, env=env,
                   check=True)  # fmt: skip


def record(out: Path, *, demo: bool) -> None:
    sys.path.insert(0, str(REPO / "tests" / "helpers"))
    from cifar_fixture import write_cifar100
    from image_fixtures import write_image_folder
    from nlp_fixtures import (
        text_rows,
        write_agnews,
        write_sst2,
        write_text_files,
        write_tiny_distilbert,
    )

    out = out.resolve()
    fx = out / "fixtures"
    runs = out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    write_cifar100(fx / "cifar", 64, 32, seed=1)
    model = write_tiny_distilbert(fx / "tiny-distilbert")
    sst2 = write_sst2(fx / "sst2", 64, 32)
    agnews = write_agnews(fx / "agnews", 80, 40)
    pets = fx / "pets"  # an image folder with its own val / test splits
    for split, per_class, seed in (("train", 6, 0), ("val", 2, 1), ("test", 2, 2)):
        write_image_folder(pets, per_class=per_class, size=16, split=split, seed=seed)
    news = write_text_files(fx / "news_csv", {"train": text_rows(48, 4), "test": text_rows(16, 5)})
    nlp = ["--model-name", str(model), "--local-files-only", "--device", "cpu", "--quiet",
           "--cache-dir", str(out / "hf_cache")]  # fmt: skip
    singles = {
        "cifar100_dual_asym": ["train", "cifar100", "--data-dir", str(fx / "cifar"), "--epochs",
                               "2", "--batch-size", "16", "--control-mode", "adaptive",
                               "--lr-candidates", "0.5,1,2", "--noise-candidates", "0,0.01",
                               "--episode-length", "3", "--label-noise-type", "asymmetric",
                               "--label-noise-rate", "0.4", "--device", "cpu", "--quiet"],
        "sst2_adaptive": ["train", "sst2", *nlp, "--data-dir", str(sst2), "--epochs", "2",
                          "--batch-size", "16", "--method", "AdaptiveScheduler",
                          "--lr-candidates", "0.5,1,2", "--episode-length", "2",
                          "--tokenized-dataset-dir", str(out / "tok_sst2")],
        "agnews_noisy": ["train", "agnews", *nlp, "--data-dir", str(agnews), "--epochs", "1",
                         "--batch-size", "16", "--method", "RandomScheduler",
                         "--lr-candidates", "0.5,1,2", "--episode-length", "2",
                         "--label-noise-rate", "0.2", "--tokenized-dataset-dir",
                         str(out / "tok_ag")],
        "image_adaptive_sym": ["train", "image", "--data-dir", str(pets), "--model-name",
                               "shufflenet_v2_x0_5", "--epochs", "2", "--batch-size", "8",
                               "--control-mode", "adaptive", "--lr-candidates", "0.5,1",
                               "--episode-length", "1", "--label-noise-type", "symmetric",
                               "--label-noise-rate", "0.25", "--device", "cpu", "--quiet"],
        "text_csv_adaptive": ["train", "text", *nlp, "--data-dir", str(news), "--epochs", "1",
                              "--batch-size", "8", "--method", "AdaptiveScheduler",
                              "--lr-candidates", "0.5,1,2", "--episode-length", "2",
                              "--max-length", "32", "--label-noise-rate", "0.25",
                              "--tokenized-dataset-dir", str(out / "tok_text")],
        "digits_random_sgd": ["train", "digits", "--epochs", "3", "--control-mode", "random",
                              "--optimizer", "SGD", "--lr", "0.05", "--lr-scheduler", "cosine",
                              "--lr-candidates", "0.5,1,2", "--noise-candidates", "0,0.01",
                              "--structured-control-mode", "conditional", "--context-mode",
                              "trend", "--episode-length", "7", "--quiet"],
    }  # fmt: skip
    for name, argv in singles.items():
        _aees(*argv, "--output", str(runs / f"{name}.json"), cwd=out)
    if demo:
        _aees("demo", "--results-dir", str(out / "demo"), "--report-dir", str(out / "report"),
              cwd=out)  # fmt: skip


def _normalise(value: Any, root: str, parent: str = "") -> Any:
    if isinstance(value, dict):
        drop = VOLATILE_KEYS | VOLATILE_NESTED.get(parent, frozenset())
        return {k: _normalise(v, root, k) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [_normalise(v, root) for v in value]
    if isinstance(value, str):
        return value.replace(root, "<root>")
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    return value


def _diff(a: Any, b: Any, where: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a and key in ADDED_KEYS:
                continue
            if key not in a or key not in b:
                out.append(f"{where}.{key}: only in {'after' if key in b else 'before'}")
            else:
                _diff(a[key], b[key], f"{where}.{key}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _diff(x, y, f"{where}[{i}]", out)
    elif a != b:
        out.append(f"{where}: {json.dumps(a)[:80]} != {json.dumps(b)[:80]}")


def differences(a: dict[str, Any], b: dict[str, Any], root_a: str, root_b: str) -> list[str]:
    """Where two results differ beyond time and process, each root replaced by ``<root>``."""
    diffs: list[str] = []
    _diff(_normalise(a, root_a), _normalise(b, root_b), "result", diffs)
    return diffs


def compare(before: Path, after: Path) -> int:
    before, after = before.resolve(), after.resolve()
    problems: list[str] = []
    files = sorted(p for p in before.rglob("*.json") if "fixtures" not in p.parts)
    results = 0
    for path in files:
        a = json.loads(path.read_text())
        if not isinstance(a, dict) or "method_name" not in a:
            continue  # side files, manifests, report summaries
        results += 1
        rel = path.relative_to(before)
        other = after / rel
        if not other.is_file():
            problems.append(f"{rel}: missing after")
            continue
        b = json.loads(other.read_text())
        diffs = differences(a, b, str(before), str(after))
        problems.extend(d.replace("result", str(rel), 1) for d in diffs)
    print(f"{results} results compared; {len(problems)} differences")
    for line in problems[:200]:
        print(f"  {line}")
    return 1 if problems or results == 0 else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("out", type=Path)
    rec.add_argument("--skip-demo", action="store_true")
    cmp_ = sub.add_parser("compare")
    cmp_.add_argument("before", type=Path)
    cmp_.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "record":
        record(args.out, demo=not args.skip_demo)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
