"""Shared set-up for the trainer tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run the tiny test networks on one thread, restoring the setting afterwards.

    Their convolutions are too small to gain from a second thread, and with another process
    busy on a 2-core machine torch's thread pool makes them several times slower (measured:
    the folder took 46 s with 2 threads under load, 10 s with 1).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
