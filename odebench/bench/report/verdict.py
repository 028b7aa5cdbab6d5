"""The one rule by which ``odebench claims`` judges a claim: a 95 % t-interval against the claimed interval.

Every claim is turned into a statement about one measured difference d (per seed; A - B paired by seed when
both sides come from the same seeds, or A - floor against a dataset's two-sample floor), oriented so that lower
is better, and an interval the claim says d lies in:

- "A below B": d in (-inf, 0);
- "A not above B" (within a stated margin m >= 0): d in (-inf, m);
- "A and B the same" (within m): d in (-m, m).

With the seeds' values d_1..d_n, the 95 % confidence interval of the mean is mean ± t_{0.975, n-1} s / sqrt(n)
(s the sample standard deviation, ddof = 1). The verdict is

- ``holds`` when the confidence interval lies inside the claimed interval,
- ``contradicted`` when it lies entirely outside it,
- ``inconclusive`` otherwise (it straddles an end), and whenever fewer than two seeds give a value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

LEVEL = 0.95
HOLDS, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED = "holds", "contradicted", "inconclusive", "not measured"


@dataclass(frozen=True)
class Interval:
    """Mean and two-sided confidence interval of a list of values (lo = hi = NaN below two values)."""

    mean: float
    lo: float
    hi: float
    n: int


def t_interval(values: list[float], level: float = LEVEL) -> Interval:
    """The t-interval of the mean of ``values`` (finite floats): mean ± t_{(1+level)/2, n-1} s / sqrt(n)."""
    v = [float(x) for x in values]
    n = len(v)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = math.fsum(v) / n
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    s = math.sqrt(math.fsum((x - mean) ** 2 for x in v) / (n - 1))
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * s / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def judge(ci: Interval, claimed: tuple[float, float]) -> str:
    """holds / contradicted / inconclusive: the confidence interval against the claimed interval (lo, hi)."""
    lo, hi = claimed
    if ci.n < 2 or not (math.isfinite(ci.lo) and math.isfinite(ci.hi)):
        return INCONCLUSIVE
    if lo < ci.lo and ci.hi < hi:
        return HOLDS
    if ci.hi <= lo or ci.lo >= hi:
        return CONTRADICTED
    return INCONCLUSIVE
