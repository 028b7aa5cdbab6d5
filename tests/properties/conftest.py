"""Property tests run single-threaded: their tensors are tiny, and intra-op threads only add overhead."""

import pytest
from threads import torch_threads


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield
