"""A spec's TOML text before it is parsed: read from a regular file of bounded size, and bounded in what makes
the TOML parser slow or raise.

``read_spec_file`` refuses anything but a regular file (``/dev/zero`` would be read forever, a FIFO would block
the ``open`` itself, so the type is checked with ``stat`` first and again on the open descriptor) and any file
over ``MAX_SPEC_BYTES``. ``loads`` parses text with ``tomllib`` after :func:`text_problems` has bounded it: the
text's size, the parts of one dotted key (tomllib's time grows with the square of their number: 20,000 parts, 40
KB, take 7 s) and the digits of one number (Python refuses to convert an integer of more than 4,300 digits with a
ValueError that is no TOML error). Every way it can fail is one :class:`SpecTextError` with the reason.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: the largest spec file (and ``--set`` value) read; the built-in specs are under 4 KB
MAX_SPEC_BYTES = 1_000_000
#: the most dots in one dotted key (``a.b.c`` has 2); a spec nests at most limits.MAX_DEPTH levels
MAX_KEY_DOTS = 32
#: the most digits in one number (a spec's integers fit in 64 bits: 19 digits)
MAX_DIGITS = 100
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_DIGITS = frozenset("0123456789")
_FILE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
               (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class SpecTextError(ValueError):
    """A spec file or text that is not read or parsed; the message says why and what to give instead."""


def _file_kind(mode: int) -> str:
    return next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")


def read_spec_file(path: Path) -> str:
    """The text of the spec file ``path``: a regular file of at most MAX_SPEC_BYTES, UTF-8.

    Raises FileNotFoundError if there is no such file, SpecTextError for everything else."""
    hint = "give a TOML file (or a built-in spec name: odebench list specs)"
    try:
        st = os.stat(path)  # before opening: opening a FIFO for reading blocks until a writer comes
    except FileNotFoundError:
        raise FileNotFoundError(f"spec file {path} does not exist") from None
    except (OSError, ValueError) as exc:  # no permission on a folder above, a NUL in the path, a name too long
        raise SpecTextError(f"cannot read {path}: {exc}; {hint}") from None
    if not stat.S_ISREG(st.st_mode):
        raise SpecTextError(f"{path} is {_file_kind(st.st_mode)}, not a regular file; {hint}")
    if st.st_size > MAX_SPEC_BYTES:
        raise SpecTextError(f"{path} holds {st.st_size:,} bytes; a spec file is at most {MAX_SPEC_BYTES:,} bytes "
                            f"(the built-in specs hold under 4 KB): {hint}")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO swapped in after stat: no wait
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise SpecTextError(f"{path} is not a regular file; {hint}")
            data = f.read(MAX_SPEC_BYTES + 1)  # a file that grew after stat is still read only so far
    except OSError as exc:
        raise SpecTextError(f"cannot read {path}: {exc.strerror or exc}; {hint}") from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecTextError(f"{path} holds more than {MAX_SPEC_BYTES:,} bytes; a spec file is at most that: {hint}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecTextError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); {hint}") from None


def _string_end(text: str, i: int) -> int:
    """The index just after the TOML string that starts at ``text[i]`` (its end, or the text's, if unclosed)."""
    n = len(text)
    if text.startswith("'''", i):
        end = text.find("'''", i + 3)
        return n if end < 0 else end + 3
    if text[i] == "'":
        end = min((e for e in (text.find("'", i + 1), text.find("\n", i + 1)) if e >= 0), default=n)
        return end + 1
    multi = text.startswith('"""', i)
    j = i + (3 if multi else 1)
    while j < n:
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if multi and text.startswith('"""', j):
            return j + 3
        if not multi and c in '"\n':
            return j + 1
        j += 1
    return n


def text_problems(text: str, what: str = "spec") -> list[str]:
    """What makes ``text`` unfit to parse: its size, a dotted key of more than MAX_KEY_DOTS dots, a number of more
    than MAX_DIGITS digits (strings and comments are skipped). One linear pass."""
    if len(text) > MAX_SPEC_BYTES:
        return [f"{what}: {len(text):,} characters; a spec is at most {MAX_SPEC_BYTES:,}"]
    problems: list[str] = []
    i, n, dots, digits = 0, len(text), 0, 0
    while i < n:
        c = text[i]
        if c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in "\"'":
            i, digits = _string_end(text, i), 0  # a quoted key part continues a dotted key
            continue
        if c == ".":
            dots, digits = dots + 1, 0
            if dots == MAX_KEY_DOTS + 1:
                line = text.count("\n", 0, i) + 1
                problems.append(f"{what}: line {line} has a dotted key of more than {MAX_KEY_DOTS} parts; a spec "
                                f"nests a few levels deep, e.g. eval.metric_options.w2.max_points")
        elif c in _DIGITS:
            digits += 1
            if digits == MAX_DIGITS + 1:
                line = text.count("\n", 0, i) + 1
                problems.append(f"{what}: line {line} has a number of more than {MAX_DIGITS} digits; a spec's "
                                f"integers fit in 64 bits (at most 19 digits)")
        elif c == "_" or c in _KEY_CHARS:  # 1_000 is one number; a bare key part continues a dotted key
            digits = 0 if c != "_" else digits
        elif c not in " \t":
            dots, digits = 0, 0
        else:
            digits = 0
        if len(problems) >= 5:
            break
        i += 1
    return problems


def loads(text: str, where: str) -> dict[str, Any]:
    """``tomllib.loads(text)`` once :func:`text_problems` finds nothing; every failure is one SpecTextError."""
    problems = text_problems(text)
    if problems:
        raise SpecTextError("; ".join(problems))
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecTextError(f"TOML syntax: {exc}") from None
    except RecursionError:  # tomllib recurses once per level of nested arrays or inline tables
        raise SpecTextError("TOML nesting: values nested too deep to read; a spec needs a few levels") from None
    except ValueError as exc:  # a conversion tomllib does not wrap (an integer past Python's digit limit)
        raise SpecTextError(f"{where}: a value TOML cannot convert ({exc})") from None
