"""Fixtures shared by the runner tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_thread():
    """Run with one intra-op thread: tiny models are slower with more, CI machines are shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
