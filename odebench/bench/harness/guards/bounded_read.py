"""Reading a file that odebench reads back (a record, a pack, floors.json, sweep.json): regular files of bounded
size only, checked before a byte is read.

A record folder is something a user may have copied, edited or been handed, so a name in it can be a FIFO (a plain
read blocks forever), a symlink to ``/dev/zero`` (a plain read fills the memory), or a file far larger than any
record. :func:`open_regular` refuses all of these with :class:`RefusedFile` (an ``OSError``, so callers that
already note unreadable files note it the same way): it stats the path first (a special file is never opened),
opens it non-blocking (a FIFO swapped in after the stat cannot hang the open), checks the opened file again, and
:func:`read_bounded` reads at most ``limit`` bytes, so a file that grows while it is read is refused too.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

#: a record file: about 5 KB in practice (the largest committed one is under 6 KB)
MAX_RECORD_BYTES = 16 * 2**20
#: floors.json and sweep.json: a few KB per dataset and 20 bytes per cell
MAX_SIDE_FILE_BYTES = 64 * 2**20


class RefusedFile(OSError):
    """A path that is not a regular file, or is larger than the reader's limit; the message says which."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def not_a_file(path: str | Path) -> str | None:
    """Why ``path`` cannot be read as a file ("no such file", "is a FIFO, not a regular file", ...); None for a
    regular file. Checked with ``stat``, so a FIFO or a device is never opened."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "no such file"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None if stat.S_ISREG(st.st_mode) else f"is {_kind(st.st_mode)}, not a regular file"


def _check(st: os.stat_result, path: Path, limit: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise RefusedFile(f"{path} is {_kind(st.st_mode)}, not a regular file; refused without reading it")
    if st.st_size > limit:
        raise RefusedFile(f"{path} holds {st.st_size:,} bytes, more than the {limit:,} this file may hold; "
                          f"refused without reading it")


def open_regular(path: str | Path, limit: int) -> BinaryIO:
    """``path`` opened for binary reading, once it is known to be a regular file (symlinks followed) of at most
    ``limit`` bytes; raises RefusedFile otherwise, FileNotFoundError / PermissionError as ``open`` does."""
    path = Path(path)
    _check(os.stat(path), path, limit)  # before open: opening a device can itself have effects
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        _check(os.fstat(fd), path, limit)  # the file actually opened, should the name have changed since
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: str | Path, limit: int = MAX_RECORD_BYTES) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them (RefusedFile otherwise)."""
    with open_regular(path, limit) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise RefusedFile(f"{path} grew past {limit:,} bytes while it was read; refused")
    return data
