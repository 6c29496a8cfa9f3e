import signal

import pytest

import aifc


@pytest.fixture(scope="module")
def sim():
    """A simulator on a free loopback port: 10 ms to the first token, 2 ms between tokens."""
    with aifc.Simulator(ttft_ms=10, itl_ms=2) as s:
        yield s


@pytest.fixture
def python_handles_ctrl_c():
    """Python's own Ctrl-C handler for the test. The Ctrl-C tests press the key with
    _thread.interrupt_main(), which does nothing where SIGINT is ignored, as it is in a process
    that a non-interactive shell started in the background (a CI job may well be one); there
    the interrupt would be lost and the run it should stop would go on."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
