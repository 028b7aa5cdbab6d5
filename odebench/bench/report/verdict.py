"""The one rule by which ``odebench claims`` judges a claim: one-sided tests at 5 % on paired differences.

Every claim is turned into a statement about one measured difference d (per seed; A - B paired by seed when
both sides come from the same seeds, or A - floor against a dataset's two-sample floor), oriented so that lower
is better, and an interval (lo, hi) the claim says the centre of d lies in:

- "A below B": d in (-inf, 0);
- "A not above B" (non-inferiority within a margin m >= 0): d in (-inf, m);
- "A and B the same" (equivalence within m): d in (-m, m).

Each finite end of the claimed interval is one one-sided test at level ALPHA = 5 % (the null hypothesis: the
centre lies beyond that end). The verdict is

- ``holds`` when every such test rejects (for an equivalence these are the two one-sided tests, TOST: the 90 %
  interval of d lies inside (lo, hi));
- ``contradicted`` when a one-sided test shows the centre beyond an end (the 90 % interval lies entirely
  outside);
- ``inconclusive`` otherwise, whenever fewer than two seeds give a value, and on a tie (below).

Two tests, by the data: the paired t-test on the mean (``t``; its 90 % interval is mean ± t_{0.95, n-1} s / sqrt(n),
s the sample standard deviation, ddof = 1), and the exact sign test on the median (``sign``), for a quantity
whose values are counts on a lattice with a floor or censored (NFE) and for rows where a seed diverged or failed:
it counts the seeds on either side of an end (ties at the end dropped) against Binomial(n, 1/2), so a diverged seed
is one seed, not a mean. A sign test on n seeds cannot go below p = 0.5^n: with fewer than five seeds it never
decides, and the note says so.

Ties: when every seed gives the same difference (no spread), the t-test's limit is exact: that value inside the
claimed interval holds, outside it is contradicted, and on an end of it (d = 0 on every seed against "below") it is
a tie, which reads ``inconclusive`` with a note, never ``contradicted``. The sign test drops seeds tied at the end
and is inconclusive with a tie note when no seed is left.

Each outcome keeps the p-value of its "holds" tests (the larger of the two for TOST) and of its "contradicted"
test, so that a family of claims can be corrected together (:func:`holm`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from scipy import stats

#: descriptive level of the intervals of A and B
LEVEL = 0.95
#: level of every one-sided test (and of Holm's family-wise correction)
ALPHA = 0.05
#: the two-sided interval of d whose ends are the one-sided tests
TEST_LEVEL = 1 - 2 * ALPHA
HOLDS, CONTRADICTED, INCONCLUSIVE, NOT_MEASURED = "holds", "contradicted", "inconclusive", "not measured"
T_TEST, SIGN_TEST = "t", "sign"


@dataclass(frozen=True)
class Interval:
    """Mean and two-sided confidence interval of a list of values (lo = hi = NaN below two values)."""

    mean: float
    lo: float
    hi: float
    n: int


@dataclass(frozen=True)
class Outcome:
    """A verdict with its evidence: ``p_holds`` the p-value of the test(s) whose rejection reads ``holds`` (the
    larger of the two for an equivalence; 1 where the claimed interval is empty), ``p_contra`` that of the test
    whose rejection reads ``contradicted`` (NaN: no test ran), ``test`` T_TEST or SIGN_TEST, ``note`` why a tie
    or an undecidable sign test is inconclusive ('' otherwise)."""

    verdict: str
    p_holds: float
    p_contra: float
    test: str
    note: str = ""


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
    """holds / contradicted / inconclusive: a confidence interval against the claimed interval (lo, hi); with the
    TEST_LEVEL interval this is :func:`decide`'s t-test verdict away from ties."""
    lo, hi = claimed
    if ci.n < 2 or not (math.isfinite(ci.lo) and math.isfinite(ci.hi)):
        return INCONCLUSIVE
    if lo < ci.lo and ci.hi < hi:
        return HOLDS
    if ci.hi <= lo or ci.lo >= hi:
        return CONTRADICTED
    return INCONCLUSIVE


def decide(diffs: list[float], claimed: tuple[float, float], rank_based: bool = False) -> Outcome:
    """The verdict on the seeds' differences ``diffs`` against the claimed interval ``(lo, hi)``: the paired t-test,
    or the exact sign test where ``rank_based`` (the differences may then hold +-inf: a diverged or failed seed)."""
    d = [float(x) for x in diffs]
    test = SIGN_TEST if rank_based else T_TEST
    if len(d) < 2:
        return Outcome(INCONCLUSIVE, math.nan, math.nan, test, "fewer than two seeds")
    lo, hi = claimed
    tests = _sign_tests if rank_based else _t_tests
    below_hi, above_hi = tests(d, hi, upper=True)  # p of "centre < hi" and of "centre > hi"
    above_lo, below_lo = tests(d, lo, upper=False)  # p of "centre > lo" and of "centre < lo"
    p_holds = 1.0 if lo >= hi else max(below_hi, above_lo)
    p_contra = min(above_hi, below_lo)
    if math.isfinite(lo) and math.isfinite(hi):
        p_contra = min(1.0, 2.0 * p_contra)  # two ends, either may contradict: Bonferroni keeps the rate at 5 %
    if p_holds <= ALPHA:
        verdict = HOLDS
    elif p_contra <= ALPHA:
        verdict = CONTRADICTED
    else:
        verdict = INCONCLUSIVE
    return Outcome(verdict, p_holds, p_contra, test, _why(d, claimed, verdict, rank_based))


def _t_tests(d: list[float], end: float, upper: bool) -> tuple[float, float]:
    """One-sided t-test p-values against ``end``: (p of the centre on the claimed side of it, p of the other).
    An infinite end is passed (p 0) on the claimed side; with no spread the t statistic is +-inf (exact), and a
    mean on the end is a tie (p 1 both ways)."""
    if not math.isfinite(end):
        return 0.0, 1.0
    n, mean = len(d), math.fsum(d) / len(d)
    s = math.sqrt(math.fsum((x - mean) ** 2 for x in d) / (n - 1))
    se = s / math.sqrt(n)
    if se == 0.0 or not math.isfinite(se):
        below, above = (0.0, 1.0) if mean < end else (1.0, 0.0) if mean > end else (1.0, 1.0)
    else:
        tstat = (mean - end) / se
        below, above = float(stats.t.cdf(tstat, n - 1)), float(stats.t.sf(tstat, n - 1))
    return (below, above) if upper else (above, below)


def _sign_tests(d: list[float], end: float, upper: bool) -> tuple[float, float]:
    """Exact sign-test p-values against ``end`` (seeds on the end dropped), ordered as :func:`_t_tests`'."""
    if not math.isfinite(end):
        return 0.0, 1.0
    below, above = sum(x < end for x in d), sum(x > end for x in d)
    m = below + above
    if m == 0:
        return 1.0, 1.0
    p_below, p_above = float(stats.binom.sf(below - 1, m, 0.5)), float(stats.binom.sf(above - 1, m, 0.5))
    return (p_below, p_above) if upper else (p_above, p_below)


def _why(d: list[float], claimed: tuple[float, float], verdict: str, rank_based: bool) -> str:
    ends = [e for e in claimed if math.isfinite(e)]
    if len(set(d)) == 1:
        on_end = [e for e in ends if d[0] == e]
        if on_end:
            return f"tie: every seed gives d = {d[0]:.4g}, on the end of the claimed interval (no direction)"
        if not rank_based:
            return f"no spread: every seed gives d = {d[0]:.4g} (exact)"
    untied = min(sum(x != e for x in d) for e in ends) if ends else len(d)  # seeds on an end drop out
    if rank_based and verdict == INCONCLUSIVE and 0.5 ** untied > ALPHA:
        return (f"a sign test on {untied} untied seed(s) cannot go below p = {0.5 ** untied:.3g}"
                + (f" ({len(d) - untied} on the end of the claimed interval)" if untied < len(d) else ""))
    return ""


def median(values: list[float]) -> float:
    """The median of ``values`` (+-inf allowed); NaN for none."""
    return float(statistics.median(values)) if len(values) else math.nan


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values of a family (NaN entries are no test and stay NaN): sorted ascending,
    p_(i) becomes max over j <= i of min(1, (m - j + 1) p_(j)), m the number of tests. A hypothesis is rejected at
    family-wise level ALPHA when its adjusted p-value is at most ALPHA."""
    order = sorted((i for i, p in enumerate(pvalues) if math.isfinite(p)), key=lambda i: pvalues[i])
    out = [math.nan] * len(pvalues)
    running, m = 0.0, len(order)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        out[i] = running
    return out
