"""Tests of the verdict rule on synthetic paired data with known answers."""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pytest
from scipy import stats

from reglab.bench.verdict import (
    ALPHA,
    INCONCLUSIVE,
    NO_EFFECT,
    NON_INFERIORITY,
    NOT_REPRODUCED,
    OUTCOMES,
    REPRODUCED,
    RULE,
    RULE_LINES,
    SUPERIORITY,
    TEST_NAME,
    PairedResult,
    decide,
    holm,
    holm_adjust,
    paired_comparison,
    seeds_needed,
)

DELTA = 0.01


def paired(n: int, shift: float, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(arm, baseline): baseline ~ N(0.8, 0.02), arm = baseline + shift + N(0, noise)."""
    g = np.random.default_rng(seed)
    baseline = g.normal(0.8, 0.02, n)
    return baseline + shift + g.normal(0.0, noise, n), baseline


def exact_diffs(n: int, mean: float, sd: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(arm, baseline) whose differences have exactly this sample mean and sd.

    Pinning the sample moments makes the interval (≈ mean ± 2.3·sd/√n) known
    in advance, so the expected outcome does not hinge on a lucky draw.
    """
    g = np.random.default_rng(seed)
    z = g.standard_normal(n)
    z = (z - z.mean()) / z.std(ddof=1)
    baseline = g.normal(0.8, 0.02, n)
    return baseline + mean + sd * z, baseline


def oriented_ci(r: PairedResult) -> tuple[float, float]:
    return (r.ci_low, r.ci_high) if r.direction == "higher" else (-r.ci_high, -r.ci_low)


# ---------------------------------------------------------------- constants


def test_public_constants() -> None:
    assert OUTCOMES == ("reproduced", "not reproduced", "no effect", "inconclusive")
    assert (SUPERIORITY, NON_INFERIORITY) == ("superiority", "non-inferiority")
    assert ALPHA == 0.05
    assert "sign-flip" in TEST_NAME and "BCa" in TEST_NAME and "Holm" in TEST_NAME
    for word in ("δ", "Superiority", "Non-inferiority", "no effect", "inconclusive", "L > 0", "U < −δ"):
        assert word in RULE
    assert 1 <= len(RULE_LINES) <= 5
    assert all(len(line) <= 110 for line in RULE_LINES)


# ---------------------------------------------------------------- superiority


def test_reproduced_higher() -> None:
    arm, base = paired(10, 0.05, 0.005, seed=1)
    r = paired_comparison(arm, base, "higher", min_effect=DELTA)
    assert r.verdict == REPRODUCED
    assert r.kind == SUPERIORITY and r.direction == "higher" and r.min_effect == DELTA
    assert r.n == 10 and r.wins == 10 and r.ties == 0
    # Every difference is positive, so only the identity flip reaches the observed mean.
    assert r.p_value == 2.0**-10 and r.p_adjusted == r.p_value
    assert r.effect == pytest.approx(np.mean(arm - base))
    assert r.arm_mean == pytest.approx(np.mean(arm)) and r.baseline_mean == pytest.approx(np.mean(base))
    assert 0 < r.ci_low < 0.05 < r.ci_high
    assert r.prob_better == 1.0 and r.seeds_needed is None and r.note == ""


def test_reproduced_lower_and_wrong_direction() -> None:
    arm, base = paired(10, -0.05, 0.005, seed=2)
    r = paired_comparison(arm, base, "lower", min_effect=DELTA)
    assert r.verdict == REPRODUCED and r.wins == 10 and r.p_value == 2.0**-10
    assert r.effect < 0 and r.ci_low <= r.ci_high < 0  # raw units, not oriented
    assert r.prob_better == 1.0

    # The "higher" data of the first test, claimed as "lower": significantly worse.
    arm, base = paired(10, 0.05, 0.005, seed=1)
    r = paired_comparison(arm, base, "lower", min_effect=DELTA)
    assert r.verdict == NOT_REPRODUCED
    assert r.wins == 0 and r.p_value == 1.0 and r.prob_better == 0.0
    assert r.ci_low > 0  # raw CI unchanged by the direction


def test_no_effect_significant_but_below_delta() -> None:
    arm, base = paired(20, 0.001, 0.001, seed=2)
    r = paired_comparison(arm, base, "higher", min_effect=DELTA)
    low, high = oriented_ci(r)
    assert r.p_value < 0.05 and low > 0  # a real, significant, but tiny effect ...
    assert -DELTA < low and high < DELTA
    assert r.verdict == NO_EFFECT  # ... is "no effect", never "reproduced"
    assert r.seeds_needed is None


def test_not_reproduced_significantly_worse() -> None:
    arm, base = paired(10, -0.03, 0.005, seed=3)
    r = paired_comparison(arm, base, "higher", min_effect=DELTA)
    assert r.verdict == NOT_REPRODUCED
    assert r.ci_high < 0 and r.p_value > 0.5 and r.wins == 0


def test_small_effect_interval_inside_delta_is_no_effect() -> None:
    # True effect δ/4 with the interval about [0, 0.9δ]: δ is ruled out, and
    # since the interval lies inside ±δ the rule calls it "no effect".
    arm, base = exact_diffs(10, DELTA / 4, 0.0045, seed=4)
    r = paired_comparison(arm, base, "higher", min_effect=DELTA)
    low, high = oriented_ci(r)
    assert -0.003 < low < 0.002 and 0.005 < high < DELTA
    assert r.verdict == NO_EFFECT


def test_not_reproduced_when_interval_reaches_below_minus_delta() -> None:
    # Mean −δ/2 with a wide interval: U < δ rules the claim out, but L < −δ,
    # so it is not "no effect".
    arm, base = exact_diffs(10, -DELTA / 2, 0.01, seed=5)
    r = paired_comparison(arm, base, "higher", min_effect=DELTA)
    low, high = oriented_ci(r)
    assert low < -DELTA and high < DELTA
    assert r.verdict == NOT_REPRODUCED


def test_inconclusive_few_noisy_seeds() -> None:
    arm, base = exact_diffs(5, 0.02, 0.05, seed=6)
    r = paired_comparison(arm, base, "higher", min_effect=DELTA)
    low, high = oriented_ci(r)
    assert low < 0 < DELTA < high
    assert r.verdict == INCONCLUSIVE
    assert r.seeds_needed is not None and r.seeds_needed > 5
    mean_d = r.effect
    half = (high - low) / 2
    assert r.seeds_needed == max(6, math.ceil(5 * (half / mean_d) ** 2))


def test_exact_minimum_p_sets_the_seed_floor() -> None:
    # With n seeds the exact sign-flip p is at least 2**-n: 1/32 < 0.05 for 5 ...
    arm, base = paired(5, 1.0, 0.01, seed=7)
    r5 = paired_comparison(arm, base, "higher", min_effect=DELTA)
    assert r5.p_value == 1 / 32 and r5.verdict == REPRODUCED
    # ... but 1/16 > 0.05 for 4, so even a huge effect cannot be reproduced.
    r4 = paired_comparison(arm[:4], base[:4], "higher", min_effect=DELTA)
    assert r4.p_value == 1 / 16 and r4.ci_low > 0.9
    assert r4.verdict == INCONCLUSIVE and r4.seeds_needed is not None and r4.seeds_needed >= 5
    r4ni = paired_comparison(arm[:4], base[:4], "higher", kind=NON_INFERIORITY, min_effect=DELTA)
    assert r4ni.p_value == 1 / 16 and r4ni.verdict == INCONCLUSIVE


# ---------------------------------------------------------------- non-inferiority


def test_non_inferiority_reproduced_both_directions() -> None:
    arm, base = paired(10, -0.002, 0.002, seed=8)
    r = paired_comparison(arm, base, "higher", kind=NON_INFERIORITY, min_effect=DELTA)
    assert r.kind == NON_INFERIORITY
    assert r.ci_low > -DELTA and r.ci_high < DELTA
    assert r.verdict == REPRODUCED  # not "no effect": that outcome is superiority-only
    assert r.p_value == 2.0**-10  # every d + δ > 0
    # Same with a lower-is-better metric: the arm is slightly higher (worse).
    arm, base = paired(10, 0.002, 0.002, seed=8)
    r = paired_comparison(arm, base, "lower", kind=NON_INFERIORITY, min_effect=DELTA)
    assert r.verdict == REPRODUCED


def test_non_inferiority_not_reproduced() -> None:
    arm, base = paired(10, -0.05, 0.005, seed=9)
    r = paired_comparison(arm, base, "higher", kind=NON_INFERIORITY, min_effect=DELTA)
    assert r.ci_high < -DELTA
    assert r.verdict == NOT_REPRODUCED and r.seeds_needed is None


def test_non_inferiority_inconclusive() -> None:
    arm, base = exact_diffs(6, -0.005, 0.03, seed=10)
    r = paired_comparison(arm, base, "higher", kind=NON_INFERIORITY, min_effect=DELTA)
    assert r.ci_low < -DELTA < r.ci_high
    assert r.verdict == INCONCLUSIVE
    half = (r.ci_high - r.ci_low) / 2
    assert r.seeds_needed == max(7, math.ceil(6 * (half / (r.effect + DELTA)) ** 2))


# ---------------------------------------------------------------- the statistics


def brute_force_p(d: np.ndarray) -> float:
    """One-sided sign-flip p: share of all 2**n sign vectors whose mean is >= the observed one."""
    signs = np.array(list(itertools.product([1.0, -1.0], repeat=len(d))))
    means = (signs * d).mean(axis=1)
    observed = d.mean()
    # scipy counts values within 100 ulps of the observed mean as ties; do the same.
    tol = 100 * np.finfo(float).eps * abs(observed)
    return float(np.count_nonzero(means >= observed - tol) / len(signs))


@pytest.mark.parametrize("direction", ["higher", "lower"])
def test_p_value_is_exact_sign_flip_enumeration(direction: str) -> None:
    s = 1.0 if direction == "higher" else -1.0
    arm, base = exact_diffs(8, s * 0.004, 0.01, seed=11)
    d = s * (arm - base)

    sup = paired_comparison(arm, base, direction, min_effect=DELTA)
    expected = brute_force_p(d)
    assert 2.0**-8 < expected < 0.5  # a non-trivial p, so the check can tell tests apart
    assert sup.p_value == pytest.approx(expected, abs=1e-12)

    ni = paired_comparison(arm, base, direction, kind=NON_INFERIORITY, min_effect=DELTA)
    expected_ni = brute_force_p(d + DELTA)
    assert expected_ni != pytest.approx(expected)
    assert ni.p_value == pytest.approx(expected_ni, abs=1e-12)


def test_p_value_monte_carlo_beyond_exact_range() -> None:
    arm, base = exact_diffs(20, 0.002, 0.01, seed=12)
    r = paired_comparison(arm, base, "higher", min_effect=DELTA, seed=3)
    ref = stats.permutation_test(
        (arm - base,), np.mean, permutation_type="samples", alternative="greater",
        n_resamples=9999, random_state=np.random.default_rng(3),
    )
    assert r.p_value == pytest.approx(ref.pvalue, abs=1e-12)
    assert r == paired_comparison(arm, base, "higher", min_effect=DELTA, seed=3)  # reproducible


@pytest.mark.parametrize("direction", ["higher", "lower"])
def test_ci_and_prob_better_match_scipy_bca(direction: str) -> None:
    arm, base = exact_diffs(12, 0.003, 0.01, seed=13)
    r = paired_comparison(arm, base, direction, min_effect=DELTA, seed=5)
    ref = stats.bootstrap(
        (arm - base,), np.mean, method="BCa", confidence_level=0.95, n_resamples=9999,
        random_state=np.random.default_rng(5),
    )
    assert r.ci_low == pytest.approx(ref.confidence_interval.low, abs=1e-15)
    assert r.ci_high == pytest.approx(ref.confidence_interval.high, abs=1e-15)
    s = 1.0 if direction == "higher" else -1.0
    assert r.prob_better == pytest.approx(np.mean(s * ref.bootstrap_distribution > 0))
    assert 0.05 < r.prob_better < 0.95
    assert r.wins == int(np.sum(s * (arm - base) > 0))


def test_bca_failure_falls_back_to_percentile() -> None:
    # Two resamples that both fall below the observed mean make BCa's bias
    # correction infinite (NaN interval); the percentile interval is used.
    r = paired_comparison([0.0, 1.0], [0.0, 0.0], "higher", min_effect=DELTA, n_resamples=2, seed=4)
    assert "percentile" in r.note
    assert math.isfinite(r.ci_low) and math.isfinite(r.ci_high) and r.ci_low <= r.ci_high
    assert r.verdict == INCONCLUSIVE


# ---------------------------------------------------------------- Holm


def test_holm_hand_worked() -> None:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.6]) == [1.0, 1.0]  # capped at 1
    assert holm([0.2]) == [0.2]
    assert holm([]) == []
    out = holm([0.01, math.nan, 0.04])  # NaN stays NaN and does not count in m
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.04)
    assert all(math.isnan(p) for p in holm([math.nan, math.nan]))


def test_holm_adjust_turns_marginal_into_inconclusive() -> None:
    arm, base = paired(6, 0.05, 0.005, seed=14)
    marginal = paired_comparison(arm, base, "higher", min_effect=DELTA)
    assert marginal.p_value == 1 / 64 and marginal.verdict == REPRODUCED  # p ≈ 0.016
    assert holm_adjust([marginal]) == [marginal]  # one comparison: nothing changes

    arm, base = paired(12, 0.05, 0.005, seed=15)
    strong = paired_comparison(arm, base, "higher", min_effect=DELTA)
    nulls = [paired_comparison(*paired(8, 0.0, 0.02, seed=100 + i), "higher", min_effect=DELTA) for i in range(8)]
    results = [marginal, strong, *nulls, paired_comparison([0.5], [0.4], "higher", min_effect=DELTA)]

    adjusted = holm_adjust(results)
    expected_p = holm([r.p_value for r in results])
    for before, after, p in zip(results, adjusted, expected_p):
        # equal_nan: the one-seed result has NaN p and CI before and after.
        np.testing.assert_array_equal([after.p_value, after.p_adjusted], [before.p_value, p])
        np.testing.assert_array_equal([after.ci_low, after.effect, after.n], [before.ci_low, before.effect, before.n])
    # 10 valid p (the one-seed NaN does not count); the marginal one is 2nd smallest: × 9.
    assert adjusted[1].p_adjusted == pytest.approx(10 * 2.0**-12)
    assert adjusted[0].p_adjusted == pytest.approx(9 / 64)
    assert adjusted[0].verdict == INCONCLUSIVE and adjusted[0].seeds_needed is not None
    assert adjusted[1].verdict == REPRODUCED
    assert adjusted[-1].verdict == INCONCLUSIVE and math.isnan(adjusted[-1].p_adjusted)


# ---------------------------------------------------------------- the rule itself


def test_decide_table() -> None:
    d = DELTA
    assert decide(SUPERIORITY, 0.05, 0.04, 0.06, 0.01, d) == REPRODUCED
    assert decide(SUPERIORITY, d, 0.001, 0.02, 0.01, d) == REPRODUCED  # mean exactly δ counts
    assert decide(SUPERIORITY, 0.05, 0.04, 0.06, 0.06, d) == INCONCLUSIVE  # not significant
    assert decide(SUPERIORITY, 0.05, -0.001, 0.1, 0.01, d) == INCONCLUSIVE  # interval reaches 0
    assert decide(SUPERIORITY, 0.005, 0.001, 0.009, 0.001, d) == NO_EFFECT
    assert decide(SUPERIORITY, -0.005, -0.02, 0.005, 0.9, d) == NOT_REPRODUCED
    assert decide(SUPERIORITY, -0.05, -0.06, -0.04, 1.0, d) == NOT_REPRODUCED
    assert decide(SUPERIORITY, 0.0, -0.02, 0.02, 0.5, d) == INCONCLUSIVE
    assert decide(NON_INFERIORITY, -0.002, -0.005, 0.001, 0.01, d) == REPRODUCED
    assert decide(NON_INFERIORITY, 0.001, -0.001, 0.003, 0.001, d) == REPRODUCED  # never NO_EFFECT
    assert decide(NON_INFERIORITY, -0.002, -0.005, 0.001, 0.06, d) == INCONCLUSIVE
    assert decide(NON_INFERIORITY, -0.03, -0.04, -0.02, 1.0, d) == NOT_REPRODUCED
    assert decide(NON_INFERIORITY, -0.01, -0.02, 0.001, 0.5, d) == INCONCLUSIVE
    assert decide(SUPERIORITY, math.nan, math.nan, math.nan, math.nan, d) == INCONCLUSIVE
    with pytest.raises(ValueError, match="'equivalence'"):
        decide("equivalence", 0.0, 0.0, 0.0, 0.0, d)


def test_seeds_needed_formula() -> None:
    # Superiority above δ: half width 0.06 must shrink below the mean 0.02.
    assert seeds_needed(SUPERIORITY, 5, 0.02, -0.04, 0.08, DELTA) == 45
    # Below δ: the margin is δ − mean = 0.005; half width 0.01.
    assert seeds_needed(SUPERIORITY, 10, 0.005, -0.005, 0.015, DELTA) == 40
    # A narrow interval still needs one more seed, and at least 5 for the exact test.
    assert seeds_needed(SUPERIORITY, 2, 1.0, 0.9, 1.1, DELTA) == 5
    assert seeds_needed(SUPERIORITY, 8, 1.0, 0.9, 1.1, DELTA) == 9
    # Non-inferiority: margin mean + δ = 0.005, half width 0.02.
    assert seeds_needed(NON_INFERIORITY, 6, -0.005, -0.025, 0.015, DELTA) == 96
    assert seeds_needed(NON_INFERIORITY, 6, -0.02, -0.04, 0.0, DELTA) == 24
    assert seeds_needed(SUPERIORITY, 5, 1e-6, -1.0, 1.0, 1e-6) == 10_000  # capped
    assert seeds_needed(SUPERIORITY, 5, 0.02, 0.02, 0.02, DELTA) is None  # zero width
    assert seeds_needed(SUPERIORITY, 1, 0.02, math.nan, math.nan, DELTA) is None
    assert seeds_needed(NON_INFERIORITY, 5, -DELTA, -0.03, 0.01, DELTA) is None  # mean on the boundary


# ---------------------------------------------------------------- edge cases and arguments


def test_constant_differences() -> None:
    base = [0.25, 0.5, 0.75, 1.0, 0.125, 0.375]
    arm = [b + 0.125 for b in base]
    r = paired_comparison(arm, base, "higher", min_effect=DELTA)
    assert (r.ci_low, r.ci_high) == (0.125, 0.125)
    assert r.prob_better == 1.0 and r.p_value == 1 / 64 and r.verdict == REPRODUCED

    r = paired_comparison(arm, base, "lower", min_effect=DELTA)
    assert r.prob_better == 0.0 and r.verdict == NOT_REPRODUCED

    r = paired_comparison(base, base, "higher", min_effect=DELTA)
    assert (r.ci_low, r.ci_high) == (0.0, 0.0) and r.ties == 6 and r.wins == 0
    assert r.prob_better == 0.5 and r.p_value == 1.0 and r.verdict == NO_EFFECT


def test_one_and_zero_seeds() -> None:
    r = paired_comparison([0.9], [0.8], "higher", min_effect=DELTA)
    assert r.n == 1 and r.effect == pytest.approx(0.1) and r.arm_mean == 0.9 and r.wins == 1
    assert all(math.isnan(x) for x in (r.ci_low, r.ci_high, r.p_value, r.p_adjusted, r.prob_better))
    assert r.verdict == INCONCLUSIVE and r.note == "fewer than 2 paired seeds" and r.seeds_needed is None

    r = paired_comparison([], [], "higher", min_effect=DELTA)
    assert r.n == 0 and math.isnan(r.effect) and r.verdict == INCONCLUSIVE and r.note == "no paired seeds"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_value_is_inconclusive(bad: float) -> None:
    r = paired_comparison([0.9, 0.91, bad], [0.8, 0.8, 0.8], "higher", min_effect=DELTA)
    assert r.verdict == INCONCLUSIVE and r.note == "non-finite metric value" and r.n == 3
    assert math.isnan(r.effect) and math.isnan(r.p_value)
    r = paired_comparison([0.8, 0.8, 0.8], [0.9, 0.91, bad], "lower", kind=NON_INFERIORITY, min_effect=DELTA)
    assert r.verdict == INCONCLUSIVE and r.note == "non-finite metric value"


def test_bad_arguments() -> None:
    a, b = [0.9, 0.91, 0.92], [0.8, 0.8, 0.8]
    with pytest.raises(ValueError, match="'up'"):
        paired_comparison(a, b, "up", min_effect=DELTA)
    with pytest.raises(ValueError, match="'equivalence'"):
        paired_comparison(a, b, "higher", kind="equivalence", min_effect=DELTA)
    for bad, shown in [(0.0, "0.0"), (-0.01, "-0.01"), (math.nan, "nan"), (math.inf, "inf"), ("x", "'x'")]:
        with pytest.raises(ValueError, match=f"min_effect.*{shown}"):
            paired_comparison(a, b, "higher", min_effect=bad)
    with pytest.raises(ValueError, match="3 and 2"):
        paired_comparison(a, b[:2], "higher", min_effect=DELTA)
    with pytest.raises(ValueError, match="alpha"):
        paired_comparison(a, b, "higher", min_effect=DELTA, alpha=1.5)


def test_no_warnings_escape() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        paired_comparison([0.0, 1.0], [0.0, 0.0], "higher", min_effect=DELTA, n_resamples=2, seed=4)  # BCa NaN
        paired_comparison([0.9, 0.95], [0.8, 0.8], "higher", min_effect=DELTA)
        paired_comparison([0.5] * 5, [0.5] * 5, "lower", kind=NON_INFERIORITY, min_effect=DELTA)
        paired_comparison([0.5], [0.5], "higher", min_effect=DELTA)
        paired_comparison([0.5, math.nan], [0.5, 0.4], "higher", min_effect=DELTA)
        paired_comparison([0.0, 0.0, 1.0], [0.0, 0.0, 0.0], "higher", min_effect=DELTA)
        arm, base = paired(20, 0.001, 0.001, seed=2)
        results = [paired_comparison(arm, base, "higher", min_effect=DELTA)]
        results.append(paired_comparison([], [], "higher", min_effect=DELTA))
        holm_adjust(results)
        holm([math.nan, 0.1])


def test_too_few_seeds_never_decide_either_way() -> None:
    """Two or three seeds give a bootstrap interval far too narrow to rule an effect out:
    neither "not reproduced" nor "no effect" may come from them."""
    worse = paired_comparison([0.70, 0.71, 0.69], [0.90, 0.91, 0.92], "higher", min_effect=0.01)
    tiny = paired_comparison([0.9001, 0.9002], [0.9, 0.9], "higher", min_effect=0.01)
    assert worse.verdict == INCONCLUSIVE and tiny.verdict == INCONCLUSIVE
    assert worse.seeds_needed is not None and worse.seeds_needed >= 5
    five = paired_comparison([0.70, 0.71, 0.69, 0.70, 0.72], [0.90, 0.91, 0.92, 0.90, 0.91], "higher", min_effect=0.01)
    assert five.verdict == NOT_REPRODUCED
