"""Fixtures for the library tests (helpers to import live in ``lib_helpers``)."""

from __future__ import annotations

import pytest
from lib_helpers import GOLDEN_LOSSES


@pytest.fixture
def golden_losses() -> list[float]:
    return list(GOLDEN_LOSSES)
