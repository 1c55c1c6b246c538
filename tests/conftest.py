"""Fixtures shared by every test directory.

``tests/`` mirrors ``src/aees/``: ``library/`` (the top-level library modules), ``results/``,
``runner/``, ``cli/``, ``sweep/``, ``reporting/``, ``integrations/`` and ``bench/``. Helpers that
tests import (fixture writers in the real on-disk formats, the CLI subprocess helpers,
``lib_helpers``) live in ``helpers/``, on the import path through pyproject's
``[tool.pytest.ini_options] pythonpath``.
"""

from __future__ import annotations

import pytest
import torch
from lib_helpers import GOLDEN_LOSSES


@pytest.fixture
def golden_losses() -> list[float]:
    return list(GOLDEN_LOSSES)


@pytest.fixture
def one_thread():
    """Run with one intra-op thread: tiny models are slower with more, CI machines are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
