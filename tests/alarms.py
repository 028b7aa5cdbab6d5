"""Fail a test, instead of hanging the suite, where the code under test blocks (a FIFO read the plain way, a hash
of /dev/zero that never ends)."""

from __future__ import annotations

import contextlib
import signal


class Blocked(BaseException):
    """Raised by no_hang's alarm: a BaseException, so no ``except OSError`` or ``except Exception`` of the code under
    test takes it (a TimeoutError is an OSError, which the harness's own handlers would turn into a note)."""


@contextlib.contextmanager
def no_hang(seconds: int = 20):
    """Raise Blocked in the main thread if the block runs longer than ``seconds``."""

    def fail(*_):
        signal.alarm(1)  # again, should a blocked read be retried after this one
        raise Blocked(f"still running after {seconds} s: it blocks")

    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
