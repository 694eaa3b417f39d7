"""Verdicts: a paired comparison over seeds against a minimum effect δ.

For seeds i = 1..n, run with both arms (same split, same initialization), the
raw difference is ``arm_i − baseline_i``. With ``s = +1`` when the claim is
"higher is better" and ``s = −1`` when it is "lower is better", the oriented
difference ``d_i = s · (arm_i − baseline_i)`` is positive when the arm is
better in the claimed direction. ``[L, U]`` is the studentized bootstrap
(bootstrap-t) 95% interval of ``mean(d)``; ``p`` is the one-sided exact
sign-flip permutation p-value of the claim's null hypothesis, Holm-adjusted
within the claim. δ (``min_effect``, metric units, > 0) is the smallest
effect that counts.

Why bootstrap-t: the lab's paired differences are often skewed (most seeds
a little better, one in five or ten much worse, as ELR under label noise).
On such mixtures at n = 20 the BCa interval covers the mean 86-93% of the
time, the bootstrap-t interval 93-96% (``tests/bench/test_verdict.py``
simulates it); on normal differences both are near 95%.

Rule (stated in every report, see ``RULE``):

Superiority (claim: the arm is better by at least δ; H0: mean(d) ≤ 0):

* **reproduced**: adjusted p < α and L ≥ δ (the lower bound itself shows an
  effect of at least δ, not only the point estimate);
* **worse**: U < −δ (the arm is worse than the baseline by more than δ);
* **no effect**: −δ < L and U < δ (the interval lies inside ±δ);
* **not reproduced**: U < δ (the data rule out an effect of δ);
* **inconclusive**: anything else.

Non-inferiority (claim: the arm is at most δ worse; H0: mean(d) ≤ −δ):

* **reproduced**: adjusted p < α and L > −δ;
* **worse**: U < −δ (the arm costs more than δ: the claim is refuted);
* **inconclusive**: anything else ("no effect" and "not reproduced" are not
  used).

**uninformative**: the test could not have failed or could not have seen an
effect: the metric has one and the same value in both arms on every seed (a
floor or ceiling, e.g. effective rank 1), or (decided by the suite) a
non-inferiority claim's negative control passes the same test.

A non-finite metric value is always inconclusive. With n seeds the exact
sign-flip test cannot give p below 2⁻ⁿ, so at α = 0.05 at least 5 seeds are
needed to reproduce anything; below that no verdict is given either way.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "ALPHA",
    "INCONCLUSIVE",
    "NON_INFERIORITY",
    "NOT_REPRODUCED",
    "NOT_RUN",
    "NO_EFFECT",
    "OUTCOMES",
    "PairedResult",
    "REPRODUCED",
    "RULE",
    "RULE_LINES",
    "SUPERIORITY",
    "TEST_NAME",
    "UNINFORMATIVE",
    "VERDICT_ORDER",
    "WORSE",
    "decide",
    "holm",
    "holm_adjust",
    "paired_comparison",
    "seeds_needed",
    "studentized_interval",
    "weakest",
]

REPRODUCED, NOT_REPRODUCED, NO_EFFECT, INCONCLUSIVE = "reproduced", "not reproduced", "no effect", "inconclusive"
WORSE, UNINFORMATIVE = "worse", "uninformative"
OUTCOMES = (REPRODUCED, NO_EFFECT, NOT_REPRODUCED, WORSE, INCONCLUSIVE, UNINFORMATIVE)
#: not a verdict: the runs a comparison needs did not run (a task unavailable, an extra missing)
NOT_RUN = "not run"
#: weakest first: the verdict of a claim against several baselines is the weakest of its comparisons
VERDICT_ORDER = (WORSE, NOT_REPRODUCED, NO_EFFECT, UNINFORMATIVE, NOT_RUN, INCONCLUSIVE, REPRODUCED)
SUPERIORITY, NON_INFERIORITY = "superiority", "non-inferiority"
KINDS = (SUPERIORITY, NON_INFERIORITY)
DIRECTIONS = ("higher", "lower")
ALPHA = 0.05
TEST_NAME = (
    "exact paired sign-flip permutation test (one-sided), studentized bootstrap (bootstrap-t) 95% CI, "
    "Holm within each claim (across its datasets and baselines)"
)

RULE = (
    "Per seed, d = arm − baseline, signed so that positive means better in the claimed direction; "
    "[L, U] is the studentized bootstrap (bootstrap-t) 95% interval of mean(d), p the one-sided exact "
    "sign-flip permutation p-value, Holm-adjusted within the claim (its datasets and baselines), and δ the "
    "smallest effect that counts. Superiority claims are reproduced if p < 0.05 and L ≥ δ (the lower bound "
    "shows the effect, not only the point estimate); otherwise 'worse' if U < −δ (the arm is worse by more "
    "than δ), 'no effect' if the interval lies inside (−δ, δ), not reproduced if U < δ, and inconclusive "
    "otherwise. Non-inferiority claims (the arm is at most δ worse) are reproduced if p < 0.05 for "
    "H0: mean(d) ≤ −δ and L > −δ, 'worse' if U < −δ, and inconclusive otherwise; each declares a negative "
    "control (an arm that should fail) run through the same test against the same baseline (unadjusted p), "
    "and a claim whose control also passes is 'uninformative', as is any comparison whose metric has one "
    "and the same value in both arms on every seed (a floor or ceiling). "
    "With fewer than 5 paired seeds (the exact test cannot reach p < 0.05) or a non-finite value "
    "there is no verdict either way: inconclusive."
)

RULE_LINES = (
    "d = arm − baseline per seed, > 0 = better as claimed; [L, U] = bootstrap-t 95% CI of mean(d); δ = min effect.",
    "p = one-sided exact sign-flip permutation test, Holm-adjusted within the claim; under 5 seeds: inconclusive.",
    "Superiority: reproduced if p < 0.05 and L ≥ δ; else worse if U < −δ; else no effect if −δ < L, U < δ;",
    "else not reproduced if U < δ; else inconclusive. Non-inferiority: reproduced if p < 0.05 and L > −δ;",
    "worse if U < −δ. Uninformative: a non-inferiority control also passes, or a metric constant in both arms.",
)

# Exact enumeration of all 2**n sign vectors stays below ~0.5 s up to n = 16
# (65 536 flips); beyond that a seeded Monte Carlo sample is used.
_MAX_EXACT_N = 16
_MAX_SEEDS_NEEDED = 10_000
FLOOR_NOTE = "the metric has the same value in both arms on every seed (a floor or ceiling): the test cannot see an effect"


@dataclass(frozen=True)
class PairedResult:
    """One claim's paired comparison. Raw fields are in metric units, not oriented."""

    n: int  # paired seeds used
    baseline_mean: float
    arm_mean: float
    effect: float  # mean of (arm − baseline), raw metric units (NOT oriented)
    ci_low: float  # bootstrap-t CI of mean(arm − baseline), raw units, ci_low <= ci_high
    ci_high: float
    p_value: float  # one-sided exact sign-flip permutation p of the claim's H0 (unadjusted)
    p_adjusted: float  # Holm-adjusted p (equals p_value until holm_adjust is applied)
    wins: int  # seeds where the arm is strictly better in the claimed direction
    ties: int  # seeds with arm == baseline
    prob_better: float  # share of bootstrap means of the oriented difference that are > 0
    verdict: str  # one of OUTCOMES
    kind: str  # SUPERIORITY or NON_INFERIORITY
    direction: str  # "higher" or "lower"
    min_effect: float  # δ, > 0, metric units
    seeds_needed: int | None  # for INCONCLUSIVE: paired seeds estimated to settle it, else None
    note: str = ""
    constant: bool = False  # both arms gave one and the same value on every seed: UNINFORMATIVE


def _sign(direction: str) -> float:
    return 1.0 if direction == "higher" else -1.0


def _oriented(result: PairedResult) -> tuple[float, float, float]:
    """(mean(d), L, U) of the oriented difference, from a result's raw fields."""
    s = _sign(result.direction)
    low, high = (result.ci_low, result.ci_high) if s > 0 else (-result.ci_high, -result.ci_low)
    return s * result.effect, low, high


def weakest(verdicts: Sequence[str]) -> str:
    """The weakest of several verdicts (``VERDICT_ORDER``: worse lowest, reproduced highest)."""
    return min(verdicts, key=VERDICT_ORDER.index)


def decide(kind: str, mean_d: float, low: float, high: float, p_adjusted: float, min_effect: float,
           alpha: float = ALPHA, n: int | None = None) -> str:
    """The rule, on oriented quantities (positive = better as claimed).

    ``low``/``high`` is the interval of ``mean_d``. NaN inputs make every
    comparison false, so undefined statistics fall through to INCONCLUSIVE.
    With ``n`` paired seeds below the number at which the exact test can
    reach ``alpha``, no verdict is given either way: a bootstrap interval of
    2-4 values is far too narrow to rule an effect out.
    """
    delta = min_effect
    if kind not in (SUPERIORITY, NON_INFERIORITY):
        raise ValueError(f"kind must be {SUPERIORITY!r} or {NON_INFERIORITY!r}, got {kind!r}")
    if n is not None and n < _min_seeds_for_level(alpha):
        return INCONCLUSIVE
    if kind == SUPERIORITY:
        # L ≥ δ, not mean ≥ δ: a true effect just at δ then reads "inconclusive" on most seed
        # blocks instead of flipping between reproduced and not with where the mean lands.
        if p_adjusted < alpha and low >= delta:
            return REPRODUCED
        if high < -delta:
            return WORSE
        # Checked before NOT_REPRODUCED: an interval inside ±δ is "too small to
        # matter", which is more informative than "not reproduced".
        if -delta < low and high < delta:
            return NO_EFFECT
        if high < delta:
            return NOT_REPRODUCED
        return INCONCLUSIVE
    if p_adjusted < alpha and low > -delta:
        return REPRODUCED
    if high < -delta:
        return WORSE
    return INCONCLUSIVE


def _min_seeds_for_level(alpha: float) -> int:
    """Smallest n with 2**-n < alpha: below it the exact sign-flip p cannot reach alpha."""
    n = 1
    while 2.0**-n >= alpha:
        n += 1
    return n


def seeds_needed(kind: str, n: int, mean_d: float, low: float, high: float, min_effect: float,
                 alpha: float = ALPHA) -> int | None:
    """Rough number of paired seeds that would settle an inconclusive comparison.

    Assumes the interval half width shrinks like 1/√n while the mean stays put:
    the half width must drop below the margin between mean(d) and the
    boundary the interval has to clear (δ for superiority: L ≥ δ above it,
    U < δ below it; −δ for non-inferiority). None when that cannot be estimated.
    """
    half = (high - low) / 2
    delta = min_effect
    margin = abs(mean_d - delta) if kind == SUPERIORITY else abs(mean_d + delta)
    if not (math.isfinite(half) and math.isfinite(margin)) or margin <= 0 or half == 0:
        return None
    needed = max(n + 1, math.ceil(n * (half / margin) ** 2), _min_seeds_for_level(alpha))
    return min(needed, _MAX_SEEDS_NEEDED)


def _with_verdict(result: PairedResult, p_adjusted: float, alpha: float) -> PairedResult:
    """Copy of ``result`` with ``p_adjusted`` and the verdict/seeds_needed that follow from it."""
    mean_d, low, high = _oriented(result)
    verdict = decide(result.kind, mean_d, low, high, p_adjusted, result.min_effect, alpha, result.n)
    if result.constant and result.n >= _min_seeds_for_level(alpha):
        verdict = UNINFORMATIVE
    needed = (
        seeds_needed(result.kind, result.n, mean_d, low, high, result.min_effect, alpha)
        if verdict == INCONCLUSIVE
        else None
    )
    return dataclasses.replace(result, p_adjusted=p_adjusted, verdict=verdict, seeds_needed=needed)


def _sign_flip_p(d: np.ndarray, seed: int, n_resamples: int) -> float:
    """One-sided p of H0: mean(d) <= 0 against mean(d) > 0, by flipping signs.

    With a single sample and permutation_type="samples", scipy forms the null
    distribution by independently flipping the sign of each observation
    (documented in permutation_test; done in _calculate_null_samples).
    """
    exact = len(d) <= _MAX_EXACT_N
    res = stats.permutation_test(
        (d,),
        np.mean,
        permutation_type="samples",
        alternative="greater",
        vectorized=True,
        n_resamples=np.inf if exact else n_resamples,
        random_state=np.random.default_rng(seed),  # `rng=` only exists from scipy 1.15
    )
    return float(res.pvalue)


def studentized_interval(
    x: np.ndarray, confidence: float, n_resamples: int, rng: np.random.Generator, chunk: int = 4_000_000
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bootstrap-t intervals of the mean of each row of ``x`` (shape (R, n)), vectorized over rows.

    For B resamples of each row, t* = (mean* − mean) / se* with se = sd/√n;
    the interval is [mean − q(1−a)·se, mean − q(a)·se] with a = (1 − confidence)/2
    and q the (inverted-CDF, no interpolation) quantiles of t*. A resample with
    se* = 0 has t* = ±∞ (0 when its mean equals the row's): it stays in the
    quantiles, so ties-heavy data give an infinite bound rather than a falsely
    narrow one. Returns (low, high, bootstrap means of shape (R, B)).
    """
    x = np.asarray(x, dtype=float)
    rows, n = x.shape
    mean = x.mean(axis=1)
    se = x.std(axis=1, ddof=1) / math.sqrt(n)
    per = max(1, chunk // max(1, n_resamples * n))  # rows per chunk: bounded memory
    t_lo, t_hi = np.empty(rows), np.empty(rows)
    means = np.empty((rows, n_resamples))
    a = (1 - confidence) / 2
    for start in range(0, rows, per):
        block = x[start:start + per]
        idx = rng.integers(0, n, size=(len(block), n_resamples, n))
        xb = np.take_along_axis(block[:, None, :], idx, axis=2)
        mb = xb.mean(axis=2)
        sb = xb.std(axis=2, ddof=1) / math.sqrt(n)
        diff = mb - mean[start:start + per, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(sb > 0, diff / np.where(sb > 0, sb, 1.0), np.sign(diff) * np.inf)
        t_lo[start:start + per], t_hi[start:start + per] = np.quantile(t, [a, 1 - a], axis=1, method="inverted_cdf")
        means[start:start + per] = mb
    return mean - t_hi * se, mean - t_lo * se, means


def _t_interval(d: np.ndarray, confidence: float) -> tuple[float, float]:
    n = len(d)
    se = float(np.std(d, ddof=1)) / math.sqrt(n)
    q = float(stats.t.ppf(0.5 + confidence / 2, n - 1))
    m = float(np.mean(d))
    return m - q * se, m + q * se


def paired_comparison(
    arm: Sequence[float],
    baseline: Sequence[float],
    direction: str,
    *,
    kind: str = SUPERIORITY,
    min_effect: float,
    alpha: float = ALPHA,
    confidence: float = 0.95,
    n_resamples: int = 9999,
    seed: int = 0,
) -> PairedResult:
    """Verdict for one claim from per-seed values (same order: index = seed).

    ``p_adjusted`` equals ``p_value`` here; pass all of a report's results
    through ``holm_adjust`` to correct for multiple comparisons.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'higher' or 'lower', got {direction!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be {SUPERIORITY!r} or {NON_INFERIORITY!r}, got {kind!r}")
    try:
        delta = float(min_effect)
    except (TypeError, ValueError):
        raise ValueError(f"min_effect must be a finite number > 0, got {min_effect!r}") from None
    if not (math.isfinite(delta) and delta > 0):
        raise ValueError(f"min_effect must be a finite number > 0, got {min_effect!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if len(arm) != len(baseline):
        raise ValueError(f"paired values need the same seeds, got {len(arm)} and {len(baseline)}")

    a = np.asarray(arm, dtype=float).reshape(-1)
    b = np.asarray(baseline, dtype=float).reshape(-1)
    n = len(a)
    s = _sign(direction)
    nan = math.nan

    def undefined(note: str, base_mean: float = nan, arm_mean: float = nan, effect: float = nan,
                  wins: int = 0, ties: int = 0) -> PairedResult:
        return PairedResult(n, base_mean, arm_mean, effect, nan, nan, nan, nan, wins, ties, nan,
                            INCONCLUSIVE, kind, direction, delta, None, note)

    if n == 0:
        return undefined("no paired seeds")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return undefined("non-finite metric value")

    d_raw = a - b
    d = s * d_raw
    wins, ties = int(np.sum(d > 0)), int(np.sum(d == 0))
    effect = float(np.mean(d_raw))
    if n < 2:
        return undefined("fewer than 2 paired seeds", float(np.mean(b)), float(np.mean(a)), effect, wins, ties)

    note = ""
    constant = bool(np.all(a == a[0]) and np.all(b == a[0]))
    # Warnings are silenced because degenerate inputs (tiny n, ties) make
    # scipy warn; the NaN they cause is detected and handled below instead.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Non-inferiority shifts the null to mean(d) <= −δ: test d + δ against 0.
        shifted = d if kind == SUPERIORITY else d + delta
        p_value = _sign_flip_p(shifted, seed, n_resamples)
        if np.all(d_raw == d_raw[0]):
            # Every resample has the same mean: the interval is that point.
            ci_low = ci_high = float(d_raw[0])
            od = float(d[0])
            prob_better = 1.0 if od > 0 else 0.0 if od < 0 else 0.5
        else:
            low, high, means = studentized_interval(d_raw[None, :], confidence, n_resamples, np.random.default_rng(seed))
            ci_low, ci_high = float(low[0]), float(high[0])
            if not (math.isfinite(ci_low) and math.isfinite(ci_high)):
                # Mostly tied differences: many resamples have no spread, so t* is
                # infinite. The t interval of the paired differences stands in.
                ci_low, ci_high = _t_interval(d_raw, confidence)
                note = "bootstrap-t interval unbounded (mostly tied differences); t interval used"
            prob_better = float(np.mean(s * means[0] > 0))
    if constant:
        note = FLOOR_NOTE + f" (value {a[0]:.4g})"

    partial = PairedResult(n, float(np.mean(b)), float(np.mean(a)), effect, ci_low, ci_high, p_value, p_value,
                           wins, ties, prob_better, INCONCLUSIVE, kind, direction, delta, None, note, constant)
    return _with_verdict(partial, p_value, alpha)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the input order.

    Sorted ascending, the k-th smallest (k = 0..m−1) becomes
    ``max_{j<=k} min(1, (m − j) · p_(j))``, so the adjusted values keep the
    order of the raw ones. NaN entries stay NaN and do not count in m.
    """
    p = np.asarray(p_values, dtype=float).reshape(-1)
    out = np.full(p.shape, math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = len(valid)
    if m == 0:
        return out.tolist()
    order = valid[np.argsort(p[valid], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(scaled)
    return out.tolist()


def holm_adjust(results: Sequence[PairedResult], alpha: float = ALPHA) -> list[PairedResult]:
    """New results with Holm-adjusted p over all of ``results`` and verdicts recomputed from it."""
    adjusted = holm([r.p_value for r in results])
    return [_with_verdict(r, p, alpha) for r, p in zip(results, adjusted)]
