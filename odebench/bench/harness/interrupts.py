"""Ctrl-C taken only where it can be taken cleanly: never inside an import, never while a child process starts.

Python turns SIGINT into a KeyboardInterrupt in the main thread at the next bytecode, wherever that is. Two
moments of a run cannot take it:

- inside an import: a C extension interrupted half-initialised stays broken for the process (numpy then fails
  with "cannot load module more than once per process", or recurses), so the interrupt comes out as an
  ImportError or RecursionError traceback from the next import instead of a KeyboardInterrupt;
- while a worker process is started: a worker that is forked but not yet known to its pool cannot be stopped,
  and one that starts after the driver has left fails on the pool's removed semaphores (a traceback).

:func:`install` (called by the command line before it imports anything heavy) replaces Python's default SIGINT
handler with one that raises the same KeyboardInterrupt, except while an import is running: then it notes the
interrupt and raises it as soon as the import has finished (checked every 20 ms). :func:`deferred` holds an
interrupt for the span of a ``with`` block and raises it at the block's end; it also blocks SIGINT in the calling
thread, so that a process started inside the block starts with SIGINT blocked (the mask survives fork and exec)
and cannot be interrupted before it has set up its own handling.
"""

from __future__ import annotations

import _thread
import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

#: how often an interrupt noted during an import is checked again
RECHECK_SECONDS = 0.02

_pending = False  # an interrupt arrived and has not been raised yet
_depth = 0  # open deferred() blocks
_armed = False  # a re-check of an interrupt noted during an import is scheduled


def _in_import(frame: FrameType | None) -> bool:
    """Whether the main thread is inside an import (a frame of importlib's bootstrap is on its stack)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _handler(signum: int, frame: FrameType | None) -> None:
    """SIGINT: KeyboardInterrupt now, or as soon as the import or the deferred block it landed in is over."""
    global _pending, _armed
    if _depth == 0 and not _in_import(frame):
        _pending = False
        raise KeyboardInterrupt
    _pending = True
    if _depth == 0 and not _armed:
        # an import: come back once it may be over (interrupt_main calls this handler again in the main thread)
        _armed = True
        timer = threading.Timer(RECHECK_SECONDS, _recheck)
        timer.daemon = True
        timer.start()


def _recheck() -> None:
    """In a timer thread: run the handler again in the main thread. Disarmed first, so that the handler, which
    may run before this thread has ended, schedules the next re-check if the import is still going on."""
    global _armed
    _armed = False
    _thread.interrupt_main()


def install() -> bool:
    """Use the import-safe handler for SIGINT in this process, where SIGINT has Python's default handler (a
    handler someone else installed is left alone). Returns whether it is in place. Main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGINT)
    if current is _handler:
        return True
    if current is not signal.default_int_handler:
        return False
    signal.signal(signal.SIGINT, _handler)
    return True


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold Ctrl-C for the block; an interrupt that arrived during it is raised when it ends (after the block's
    own exception, if it raised one). Processes started inside it start with SIGINT blocked. Outside the main
    thread it does nothing (signals are handled there only)."""
    global _depth, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not _handler:
        signal.signal(signal.SIGINT, _handler)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT}) if hasattr(signal, "pthread_sigmask") else None
    _depth += 1
    try:
        yield
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # a blocked interrupt is delivered now: it is noted
            _touch()  # let the interpreter run the noted handler while the block is still open
        _depth -= 1
        if previous is not _handler:
            signal.signal(signal.SIGINT, previous)
    if _depth == 0 and _pending:
        _pending = False
        if callable(previous) and previous is not _handler and previous is not signal.default_int_handler:
            previous(signal.SIGINT, None)  # someone else's handler (a notebook's, a test runner's) decides
        elif previous is not signal.SIG_IGN:
            raise KeyboardInterrupt


def _touch() -> None:
    """A few bytecodes, at which the interpreter runs a Python signal handler whose signal has just arrived."""
    for _ in range(2):
        pass
