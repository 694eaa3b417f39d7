"""Verdicts: a paired comparison over seeds, decided by a 95% t-interval.

For seeds s = 1..n run with both arms (same data split, same
initialization), ``d_s = metric(arm, s) − metric(baseline, s)``. The effect
is ``mean(d)``, its 95% interval ``mean(d) ± t_{0.975, n−1} · sd(d)/√n``,
and the test the two-sided paired t-test on the same ``d``.

Rule (stated in every report):

* **reproduced**: the interval excludes 0 on the side the paper claims;
* **not reproduced**: the interval excludes 0 on the other side;
* **inconclusive**: the interval contains 0, fewer than 2 paired seeds, or
  a metric is missing or not finite.

When every ``d_s`` is the same non-zero number the interval has zero width
and excludes 0 (p = 0); when all are 0 it is inconclusive (p = 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["PairedResult", "paired_comparison", "TEST_NAME", "RULE", "REPRODUCED", "NOT_REPRODUCED", "INCONCLUSIVE"]

TEST_NAME = "two-sided paired t-test over seeds"
REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
RULE = (
    "reproduced if the 95% t-interval of the paired effect (regularized − baseline, per seed) "
    "excludes 0 in the claimed direction; not reproduced if it excludes 0 in the other direction; "
    "inconclusive if it contains 0 or fewer than 2 seeds are paired"
)


@dataclass(frozen=True)
class PairedResult:
    n: int
    baseline_mean: float
    arm_mean: float
    effect: float  # mean of arm − baseline
    ci_low: float
    ci_high: float
    p_value: float
    verdict: str
    note: str = ""


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def paired_comparison(
    arm: Sequence[float], baseline: Sequence[float], direction: str, *, confidence: float = 0.95
) -> PairedResult:
    """Verdict for one claim from per-seed values (same order: index = seed)."""
    if direction not in ("higher", "lower"):
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}")
    if len(arm) != len(baseline):
        raise ValueError(f"paired values need the same seeds, got {len(arm)} and {len(baseline)}")
    nan = math.nan
    pairs = [(float(a), float(b)) for a, b in zip(arm, baseline)]
    if any(not (math.isfinite(a) and math.isfinite(b)) for a, b in pairs):
        return PairedResult(len(pairs), nan, nan, nan, nan, nan, nan, INCONCLUSIVE, "non-finite metric value")
    n = len(pairs)
    a_mean, b_mean = _mean([a for a, _ in pairs]), _mean([b for _, b in pairs])
    d = [a - b for a, b in pairs]
    effect = _mean(d)
    if n < 2:
        note = "no paired seeds" if n == 0 else "one seed: no interval"
        return PairedResult(n, b_mean, a_mean, effect, nan, nan, nan, INCONCLUSIVE, note)
    sd = math.sqrt(sum((x - effect) ** 2 for x in d) / (n - 1))
    if sd == 0.0:
        lo = hi = effect
        p = 1.0 if effect == 0.0 else 0.0
    else:
        from scipy import stats

        se = sd / math.sqrt(n)
        half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * se
        lo, hi = effect - half, effect + half
        p = float(2 * stats.t.sf(abs(effect / se), n - 1))
    sign = 1.0 if direction == "higher" else -1.0
    if sign * lo > 0 and sign * hi > 0:
        verdict = REPRODUCED
    elif sign * lo < 0 and sign * hi < 0:
        verdict = NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    return PairedResult(n, b_mean, a_mean, effect, lo, hi, p, verdict)
