"""Session-scoped result directories for the reporting tests (written once, read-only)."""

from __future__ import annotations

from pathlib import Path

import pytest
import report_fixtures as fx


@pytest.fixture(scope="session")
def results_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every fixture family: CIFAR-100 clean + sym40, sym20 ablations, digits timing, AG News."""
    root = tmp_path_factory.mktemp("results")
    fx.write_cifar(root)
    fx.write_ablations(root)
    fx.write_timing(root)
    fx.write_nlp(root)
    return root


@pytest.fixture(scope="session")
def runset(results_root: Path):
    from aees.reporting.discovery import discover_runs
    from aees.reporting.runs import RunSet

    return RunSet(discover_runs(results_root).runs)
