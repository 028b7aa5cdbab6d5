"""Ctrl-C taken only where it can be taken cleanly: never inside an import, never while a child process starts.

Python turns SIGINT into a KeyboardInterrupt in the main thread at the next bytecode, wherever that is. Two
moments of a run cannot take it:

- inside an import: a C extension interrupted half-initialised stays broken for the process (numpy then fails
  with "cannot load module more than once per process", or recurses), so the interrupt comes out as an
  ImportError or RecursionError traceback from the next import instead of a KeyboardInterrupt;
- while a worker process is started: a worker that is forked but not yet known to its pool cannot be stopped,
  and one that starts after the driver has left fails on the pool's removed semaphores (a traceback).

:func:`install` (called by the command line before it imports anything else) replaces Python's default SIGINT
handler with one that raises the same KeyboardInterrupt, except while an import is running: then it notes the
interrupt and raises it as soon as the import has finished (checked every 20 ms). :func:`deferred` holds an
interrupt for the span of a ``with`` block and raises it at the block's end; it also blocks SIGINT in the calling
thread, so that a process started inside the block starts with SIGINT blocked (the mask survives fork and exec)
and cannot be interrupted before it has set up its own handling. A SIGINT that this process inherited as ignored
(a command started in the background) stays ignored.

This module imports only modules the interpreter has loaded before any code runs (``_signal``, ``_thread``,
``time``), so that installing the handler is the first thing the command line does, not an import that an
interrupt could cut short.
"""

from __future__ import annotations

import _signal
import _thread
import time

SIGINT = _signal.SIGINT
#: how often an interrupt noted during an import is checked again
RECHECK_SECONDS = 0.02

_pending = False  # an interrupt arrived and has not been raised yet
_depth = 0  # open deferred() blocks
_armed = False  # a re-check of an interrupt noted during an import is scheduled


def _in_import(frame) -> bool:
    """Whether the main thread is inside an import (a frame of importlib's bootstrap is on its stack)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _handler(signum, frame) -> None:
    """SIGINT: KeyboardInterrupt now, or as soon as the import or the deferred block it landed in is over."""
    global _pending, _armed
    if _depth == 0 and not _in_import(frame):
        _pending = False
        raise KeyboardInterrupt
    _pending = True
    if _depth == 0 and not _armed:  # an import: come back once it may be over
        _armed = True
        _thread.start_new_thread(_recheck, ())


def _recheck() -> None:
    """In a thread of its own: wait, then run the handler again in the main thread. Disarmed first, so that the
    handler, which may run before this thread has ended, schedules the next re-check if the import goes on."""
    global _armed
    time.sleep(RECHECK_SECONDS)
    _armed = False
    _thread.interrupt_main()


def _set(handler) -> bool:
    """Install ``handler`` for SIGINT; False outside the main thread (where signals cannot be handled)."""
    try:
        _signal.signal(SIGINT, handler)
    except ValueError:
        return False
    return True


def install() -> bool:
    """Use the import-safe handler for SIGINT in this process, where SIGINT has Python's default handler (a
    handler someone else installed, or an inherited ignore, is left alone). Returns whether it is in place."""
    current = _signal.getsignal(SIGINT)
    if current is _handler:
        return True
    if current is not _signal.default_int_handler:
        return False
    return _set(_handler)


class deferred:  # noqa: N801 (used as a function: `with deferred():`)
    """Hold Ctrl-C for a ``with`` block; an interrupt that arrived during it is raised when it ends (unless the
    block raised, which then propagates). Processes started inside it start with SIGINT blocked. Outside the
    main thread it does nothing (signals are handled there only)."""

    def __enter__(self) -> deferred:
        global _depth
        self.previous = _signal.getsignal(SIGINT)
        self.active = self.previous is _handler or _set(_handler)
        if not self.active:
            return self
        self.mask = (_signal.pthread_sigmask(_signal.SIG_BLOCK, {SIGINT}) if hasattr(_signal, "pthread_sigmask")
                     else None)
        _depth += 1
        return self

    def __exit__(self, kind, value, tb) -> None:
        global _depth, _pending
        if not self.active:
            return
        try:
            if self.mask is not None:
                _signal.pthread_sigmask(_signal.SIG_SETMASK, self.mask)  # a blocked interrupt arrives now: noted
                _touch()  # a call: the interpreter runs the noted handler here, while the block is still open
        finally:
            _depth -= 1
            if self.previous is not _handler:
                _set(self.previous)
        if _depth or not _pending or kind is not None:
            return
        _pending = False
        if callable(self.previous) and self.previous not in (_handler, _signal.default_int_handler):
            self.previous(SIGINT, None)  # someone else's handler (a notebook's, a test runner's) decides
        elif self.previous is not _signal.SIG_IGN:
            raise KeyboardInterrupt


def _touch() -> None:
    """Nothing: calling it gives the interpreter a point at which it runs a Python signal handler."""
