"""One run per results folder: an advisory lock on ``<out>/.odebench.lock``.

Two runs on one ``--out`` would each see the same unfinished cells and untrained models and do all the work
twice, so ``odebench run`` takes this lock before it reads anything and holds it to the end; a second run
on the folder is refused at once (exit code 2) with the holder's pid, host, start time and command, and the
fix. Refusing beats waiting (a second terminal on the same folder is usually a mistake, and a wait would look
like a hang) and beats cooperating (claiming cells would also need claims on models, which two processes
may both need). The way to spread one sweep over many workers is ``--executor ray``.

The lock is ``flock`` on the lock file where the platform has it: the kernel releases it when its process
dies, however it dies (SIGKILL included), so a crash never leaves a stale lock, and a reused pid cannot fake
one. The file keeps the holder's details for the message; it is left in place when released. Where
``fcntl`` is missing, the lock is the file's existence (``O_EXCL``), and a lock whose holder was on this host
and is gone is stale: it is replaced, with a note.

An I/O error while creating or writing the lock file (a full disk, a read-only or immutable folder) is raised as
the same kind of OSError naming the lock file, with the lock given back; the command line prints it as one
``error:`` line.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from odebench.bench.harness.guards.errors import RunRefused
from odebench.bench.harness.guards.safe_paths import inside

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".odebench.lock"


class FolderLocked(RunRefused):
    """Another live run holds the results folder."""


@dataclass
class FolderLock:
    """A held lock; ``release`` (or leaving the ``with`` block) gives it back. ``notes`` say what was found."""

    path: Path
    fd: int | None
    notes: list[str] = field(default_factory=list)

    def release(self) -> None:
        if self.fd is not None:  # flock: closing the descriptor releases it; the file stays
            os.close(self.fd)
            self.fd = None
        elif self.path is not None and _holder(self.path).get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)  # O_EXCL fallback: the file is the lock
        self.path = None

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
            "command": " ".join(sys.argv)[:300]}


def _holder(path: Path) -> dict:
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _refusal(out_root: Path, path: Path, info: dict) -> FolderLocked:
    started = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) \
        else "an unknown time"
    who = (f"pid {info.get('pid', '?')} on host {info.get('host', '?')}, started {when}"
           + (f": {info['command']}" if info.get("command") else ""))
    return FolderLocked(f"the results folder {out_root} is in use by another odebench run ({who}). Two runs "
                        f"on one folder would repeat each other's work: wait for that run to finish and run "
                        f"again (finished cells and models are kept), or give this one another --out. "
                        f"(Lock file: {path}.)")


def _alive(info: dict) -> bool:
    """Whether the process a fallback lock names may still run (other hosts: assume it does)."""
    if info.get("host") != socket.gethostname() or not isinstance(info.get("pid"), int):
        return True
    try:
        os.kill(info["pid"], 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def acquire(out_root: str | Path) -> FolderLock:
    """Take the lock of ``out_root`` (created if needed) or raise FolderLocked naming the holder."""
    out_root = Path(out_root).absolute()
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(out_root)) from exc
    path = inside(out_root, out_root / LOCK_NAME)
    me = json.dumps(_me()).encode()
    if fcntl is not None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a read-only or immutable folder: name the file the run could not create
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise _refusal(out_root, path, _holder(path)) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, me)
        except OSError as exc:  # a full disk: give the lock back, name the file; nothing else was written
            os.close(fd)
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        return FolderLock(path, fd)
    notes = []
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            info = _holder(path)
            if _alive(info):
                raise _refusal(out_root, path, info) from None
            path.unlink(missing_ok=True)
            notes.append(f"removed a stale lock of pid {info.get('pid')} (no longer running) from {path}")
            continue
        try:
            os.write(fd, me)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        finally:
            os.close(fd)
        return FolderLock(path, None, notes)
    raise _refusal(out_root, path, _holder(path))
