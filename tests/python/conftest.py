import pytest

import aifc


@pytest.fixture(scope="module")
def sim():
    """A simulator on a free loopback port: 10 ms to the first token, 2 ms between tokens."""
    with aifc.Simulator(ttft_ms=10, itl_ms=2) as s:
        yield s
