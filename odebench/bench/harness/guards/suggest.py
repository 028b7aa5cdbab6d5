"""The "did you mean" of every unknown-name error: the registered names closest to a misspelt one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

#: names longer than this are not compared (difflib is quadratic; no registered name comes near it)
MAX_NAME = 100


def did_you_mean(name: Any, known: Iterable[str]) -> str:
    """`` (did you mean A, B?)`` for the up to three known names closest to ``name``; "" when none is close
    or ``name`` is not a short string."""
    if not isinstance(name, str) or len(name) > MAX_NAME:
        return ""
    close = difflib.get_close_matches(name, list(known), n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""
