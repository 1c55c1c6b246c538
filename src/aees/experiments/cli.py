"""The ``aees`` console script.

Subcommands grow with the project; today: ``aees demo`` (the library demonstration on digits).
"""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aees", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="AdamW vs AEES on scikit-learn's digits (CPU, ~30 s)")
    demo.add_argument("--epochs", type=int, default=15, help="epochs per run (default 15)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        if args.epochs < 1:
            print(f"aees demo: error: --epochs must be >= 1, got {args.epochs}", file=sys.stderr)
            return 2
        try:
            from aees.experiments.library_demo import main as demo_main
        except ImportError as err:  # scikit-learn missing
            print(f"aees demo: error: {err}; install with pip install 'aees[dev]'", file=sys.stderr)
            return 2
        demo_main(epochs=args.epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
