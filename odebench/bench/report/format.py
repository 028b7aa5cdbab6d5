"""Numbers as the report prints them: one rule for significant digits, and the mark of a column's best value.

Every mean is printed with ``DIGITS`` significant digits, trailing zeros kept (``2.690`` beside ``0.9081``, not
``2.69``), and a standard deviation with two (``0.9081 ± 0.074``); magnitudes outside [1e-3, 1e5) switch to
scientific notation with the same digits (``-2.200e-15``). The best value of a table column is wrapped in
``**...**``: markdown shows it bold as it is, and the HTML and LaTeX writers turn it into ``<strong>`` and
``\\textbf``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

DIGITS = 4
STD_DIGITS = 2
BEST = re.compile(r"^\*\*(.*)\*\*$")


def fmt_sig(value: float, digits: int = DIGITS) -> str:
    """``value`` with ``digits`` significant digits, trailing zeros kept: 2.690, 0.9081, 1234, 3.000e-05."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if value == 0:
        return "0"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    rounded = float(f"{value:.{digits - 1}e}")  # to the digits first: 9.99996 is 10.00, not 10.000
    magnitude = math.floor(math.log10(abs(rounded)))
    if magnitude < -3 or magnitude >= 5:
        return f"{value:.{digits - 1}e}"
    return f"{rounded:.{max(digits - 1 - magnitude, 0)}f}"


def fmt_mean_std(mean: float, std: float | None) -> str:
    """'0.9081' or '0.9081 ± 0.074' (std with two significant digits; none, or NaN, for one seed)."""
    text = fmt_sig(mean)
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        text += f" ± {fmt_sig(std, STD_DIGITS)}"
    return text


def mark(text: str) -> str:
    """The best value of its column."""
    return f"**{text}**" if text else text


def unmark(text: str) -> tuple[str, bool]:
    """(text without the best-value mark, whether it had one)."""
    m = BEST.match(text) if isinstance(text, str) else None
    return (m.group(1), True) if m else (text, False)


def best_positions(means: Iterable[float | None], lower_is_better: bool) -> set[int]:
    """Indices of the best finite mean (all of them on a tie); none when fewer than two values compete or
    all are equal."""
    values = [(i, v) for i, v in enumerate(means) if v is not None and math.isfinite(v)]
    if len(values) < 2:
        return set()
    best = (min if lower_is_better else max)(v for _, v in values)
    winners = {i for i, v in values if v == best}
    return set() if len(winners) == len(values) else winners  # a column of equal values has no best
