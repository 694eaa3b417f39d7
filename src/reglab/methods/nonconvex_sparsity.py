"""Non-convex sparsity penalties with exact proximal maps: SCAD, CEL0 and ℓq (0 < q < 1).

All three are separable, R(w) = Σ_i p(|w_i|), and shrink small weights like ℓ1
while penalizing large ones less (SCAD, CEL0: not at all beyond a knee), so
they bias the surviving weights less than the lasso.

* **SCAD** (Fan & Li 2001, JASA, Eq. 2.8 integrated; a = 3.7 from their Sec. 2):
  p(θ) = λθ for θ ≤ λ;  (2aλθ − θ² − λ²)/(2(a − 1)) for λ < θ ≤ aλ;  λ²(a + 1)/2 beyond.
* **CEL0** (Soubies, Blanc-Féraud & Aubert 2015, SIAM J. Imaging Sci., Eq. 6):
  p(θ) = λ − (a²/2)(θ − √(2λ)/a)²·1[θ ≤ √(2λ)/a], with ``a`` the norm of the
  variable's column in the least-squares operator (1 for a plain weight). It is
  the continuous exact relaxation of λ‖w‖₀; the same expression is the
  ``CEL0`` class of proximity-operator.net and GlobalBioIm's ``FuncCEL0``
  (Soubies' own library), where λ and ``a`` enter identically.
* **ℓq** (0 < q < 1; Marjanovic & Solo 2012, IEEE TSP, the ℓq prox): p(θ) = θ^q.
  Rentzeperis et al. (2023, "Beyond ℓ1 sparse coding in V1") compare ℓ1 against
  ℓ1/2 (the default here) and CEL0 for sparse coding.

Proximal maps (``mode="prox"``, step t = lr·weight): each piece of ½(x − z)² + t·p(x)
on x ≥ 0 is a quadratic (or, for ℓq, has one local minimizer found by Newton steps on
x + tq·x^{q−1} = z above (tq(1−q))^{1/(2−q)}), so the prox is the best
of the per-piece minimizers and the piece ends (``reglab.ops.best_candidate``): exact for
every step size, including the non-convex regime t ≥ a − 1 (SCAD) and t·a² ≥ 1 (CEL0),
where the closed-form thresholding rules quoted in the papers (for t < a − 1, resp.
t·a² < 1) no longer apply. Ties go to 0.

Gradients (``mode="penalty"``): the derivative of p, with 0 at w = 0 (for ℓq the
one-sided derivative is infinite there; 0 is used so that a zero weight stays put —
use ``mode="prox"`` to reach exact zeros).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from reglab.core import Baseline, Claim, Paper, RegularizerInputError, WeightRegularizer, register
from reglab.core.paper import Tuned, Tuning
from reglab.ops import as_tensors, best_candidate, checked_total, hyperparameters, positive, sum_terms

__all__ = ["scad", "cel0", "lq", "SCAD", "CEL0", "LqPenalty"]

FAN_LI = Paper(
    "Variable selection via nonconcave penalized likelihood and its oracle properties",
    "Fan, J. and Li, R.", 2001, doi="10.1198/016214501753382273", venue="J. Amer. Statist. Assoc.")
SOUBIES = Paper(
    "A Continuous Exact ℓ0 Penalty (CEL0) for Least Squares Regularized Problem",
    "Soubies, E., Blanc-Féraud, L. and Aubert, G.", 2015, doi="10.1137/151003714", venue="SIAM J. Imaging Sci.",
    code="https://github.com/Biomedical-Imaging-Group/GlobalBioIm")
MARJANOVIC_SOLO = Paper(
    "On ℓq optimization and matrix completion", "Marjanovic, G. and Solo, V.", 2012,
    doi="10.1109/TSP.2012.2212015", venue="IEEE Trans. Signal Process.")


# ------------------------------------------------------------ element-wise penalties (θ = |w| ≥ 0)
def _scad_elementwise(t: torch.Tensor, lam: float, a: float) -> torch.Tensor:
    mid = (2 * a * lam * t - t * t - lam * lam) / (2 * (a - 1))
    flat = torch.full_like(t, lam * lam * (a + 1) / 2)
    return torch.where(t <= lam, lam * t, torch.where(t <= a * lam, mid, flat))


def _cel0_elementwise(t: torch.Tensor, lam: float, a: float) -> torch.Tensor:
    knee = (2 * lam) ** 0.5 / a
    return lam - 0.5 * a * a * (t - knee).clamp_max(0.0).pow(2)


def _lq_elementwise(t: torch.Tensor, q: float) -> torch.Tensor:
    pos = t > 0
    return torch.where(pos, torch.where(pos, t, torch.ones_like(t)).pow(q), torch.zeros_like(t))


def _total(who: str, w, elementwise) -> torch.Tensor:
    ws = as_tensors(who, w)
    # the pieces are bounded (SCAD, CEL0) or masked (ℓq at 0): "+ 0·|w|" carries a NaN or inf weight into
    # the total, so checked_total names it instead of a silent finite value
    return checked_total(who, sum_terms([(elementwise(t.abs()) + 0.0 * t.abs()).sum() for t in ws]), ws)


def _check_scad_a(who: str, name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 2:
        raise RegularizerInputError(f"{who} expects {name} > 2 (Fan & Li's condition; they use 3.7), got {value!r}")
    return value


def _check_q(who: str, name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise RegularizerInputError(
            f"{who} expects {name} in (0, 1) (q = 1 is l1, q = 0 the l0 count), got {value!r}")
    return value


# ------------------------------------------------------------------------------- pure functions
@hyperparameters("SCAD", lam=positive, a=_check_scad_a)
def scad(w: torch.Tensor | Sequence[torch.Tensor], lam: float = 0.05, a: float = 3.7) -> torch.Tensor:
    """SCAD penalty Σ_i p_λ(|w_i|) (Fan & Li 2001): λθ; (2aλθ − θ² − λ²)/(2(a−1)); λ²(a+1)/2."""
    return _total("scad", w, lambda t: _scad_elementwise(t, lam, a))


@hyperparameters("CEL0", lam=positive, a=positive)
def cel0(w: torch.Tensor | Sequence[torch.Tensor], lam: float = 1e-3, a: float = 1.0) -> torch.Tensor:
    """CEL0 penalty Σ_i λ − (a²/2)(|w_i| − √(2λ)/a)²·1[|w_i| ≤ √(2λ)/a] (Soubies et al. 2015, Eq. 6)."""
    return _total("cel0", w, lambda t: _cel0_elementwise(t, lam, a))


@hyperparameters("LqPenalty", q=_check_q)
def lq(w: torch.Tensor | Sequence[torch.Tensor], q: float = 0.5) -> torch.Tensor:
    """ℓq quasi-norm penalty Σ_i |w_i|^q, 0 < q < 1 (gradient 0 at w_i = 0)."""
    return _total("lq", w, lambda t: _lq_elementwise(t, q))


# ------------------------------------------------------------------------------- proximal maps
def _signed(w: torch.Tensor, magnitude: torch.Tensor) -> None:
    w.copy_(torch.sign(w) * magnitude)


def scad_prox(z: torch.Tensor, step: float, lam: float, a: float) -> torch.Tensor:
    """prox of step·SCAD on magnitudes z ≥ 0: the best of the three pieces' minimizers."""
    lo, hi = torch.full_like(z, lam), torch.full_like(z, a * lam)
    first = (z - step * lam).clamp(0.0, lam)
    curvature = (a - 1) - step  # of ½(x − z)² + step·mid(x), times (a − 1)
    if curvature > 0:
        middle = (((a - 1) * z - step * a * lam) / curvature).clamp(lam, a * lam)
    else:  # concave or flat middle piece: its minimum is at an end
        middle = lo
    last = torch.maximum(z, hi)
    return best_candidate(z, [torch.zeros_like(z), first, lo, middle, hi, last],
                          lambda x: _scad_elementwise(x, lam, a), step)


def cel0_prox(z: torch.Tensor, step: float, lam: float, a: float) -> torch.Tensor:
    """prox of step·CEL0 on magnitudes z ≥ 0: best of 0, the knee, the inner stationary point, max(z, knee)."""
    knee = (2 * lam) ** 0.5 / a
    k = torch.full_like(z, knee)
    curvature = 1 - step * a * a
    inner = ((z - step * a * a * knee) / curvature).clamp(0.0, knee) if curvature > 0 else torch.zeros_like(z)
    return best_candidate(z, [torch.zeros_like(z), inner, k, torch.maximum(z, k)],
                          lambda x: _cel0_elementwise(x, lam, a), step)


def lq_prox(z: torch.Tensor, step: float, q: float, iterations: int = 12) -> torch.Tensor:
    """prox of step·Σ|x|^q on magnitudes z ≥ 0 (Marjanovic & Solo 2012): 0 or the larger root of
    f(x) = x + step·q·x^{q−1} − z, whichever has the lower objective. f is convex on x > 0 and
    increasing beyond its minimum x* = (step·q(1−q))^{1/(2−q)}; Newton's method started at x = z
    (where f > 0) decreases monotonically to that root (kept in [x*, z])."""
    x_star = (step * q * (1 - q)) ** (1 / (2 - q))
    has_root = (x_star + step * q * x_star ** (q - 1)) <= z
    lo = torch.full_like(z, x_star)
    x = torch.maximum(z, lo)
    for _ in range(iterations):
        f = x + step * q * x.pow(q - 1) - z
        df = 1 - step * q * (1 - q) * x.pow(q - 2)
        x = torch.maximum(x - f / df.clamp_min(1e-12), lo)
    root = torch.where(has_root, x, torch.zeros_like(z))
    return best_candidate(z, [torch.zeros_like(z), root], lambda x: _lq_elementwise(x, q), step)


# ------------------------------------------------------------------------------------ classes
_PRUNING_SETTINGS = (
    "the pruning task's MLP 64-256-10 on digits, Adam 1e-3, 30 epochs, the penalty in proximal mode on both "
    "Linear weights, then one-shot global magnitude pruning and 5 fine-tune epochs (as the L1 baseline); "
    "paper: linear regression / sparse coding, not networks. digits only (the prox runs on every step: "
    "2-7 CPU-s per run). "
)
_L1_BASELINE = Baseline(
    "L1 (0.3, proximal, weight picked on dev seeds) then one-shot pruning", {"name": "l1", "weight": 0.3},
    why="the convex penalty these replace, at its best weight on dev seeds (magnitude_pruning's grid)")
_L1_TUNING = (
    "L1 (0.3, proximal, weight picked on dev seeds) then one-shot pruning",
    Tuned("weight", (0.003, 0.01, 0.03, 0.1, 0.3, 1.0), 0.3, "digits seeds 0-2 (see magnitude_pruning)"),
)


@register
class SCAD(WeightRegularizer):
    """SCAD (Fan & Li 2001): λ|w| near zero, a quadratic taper, constant beyond aλ.

    R(w) = Σ_i p_λ(|w_i|); a = 3.7 (Fan & Li's choice). λ sets both the ℓ1 slope near zero
    and the knees (λ, aλ); there is no paper default for it (it is the tuning parameter):
    0.05 is a library choice on the order of a trained MLP's mean |w|. Exact prox at every
    step size (see the module docstring).
    """

    name = "scad"
    paper = FAN_LI
    formula = "p(θ) = λθ (θ ≤ λ); (2aλθ − θ² − λ²)/(2(a−1)) (λ < θ ≤ aλ); λ²(a+1)/2 (θ > aλ)"
    function = scad
    default_weight = 1.0
    claims = (
        Claim(
            "SCAD then one-shot pruning is more accurate at 90 % sparsity than L1 then pruning: it shrinks small "
            "weights as L1 does but leaves the large ones unbiased (Fan & Li 2001: unbiasedness for large "
            "coefficients, the oracle property)",
            task="pruning", metric="accuracy_at_90", direction="higher",
            arm={"name": "scad", "weight": 6.0, "lam": 0.05},
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(Baseline("no regularizer, same pruning"), _L1_BASELINE),
            datasets=("digits",),
            settings=_PRUNING_SETTINGS + "λ = 0.05, weight 6: its slope near zero, weight·λ = 0.3, equals the "
            "tuned L1 weight, so the two shrink small weights alike and differ only above λ; set before any run",
            source="Fan & Li 2001, Sec. 2 (continuity, sparsity, unbiasedness) and Sec. 4",
            tuning=Tuning(arm=Tuned("weight", None, 6.0, "weight·λ matched to the tuned L1 weight; not tuned"),
                          baselines=(_L1_TUNING,)),
        ),
    )

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        _signed(w, scad_prox(w.abs(), step_size, self.lam, self.a))


@register
class CEL0(WeightRegularizer):
    """CEL0 (Soubies et al. 2015): the continuous exact relaxation of λ‖w‖₀.

    R(w) = Σ_i λ − (a²/2)(|w_i| − √(2λ)/a)²·1[|w_i| ≤ √(2λ)/a]; flat (= λ, an ℓ0 count) beyond
    the knee √(2λ)/a. ``a`` is the variable's column norm in the paper's least-squares
    operator (1 for a weight). λ = 1e-3 (knee ≈ 0.045) is a library choice: it is the
    paper's tuning parameter. Exact prox at every step size.
    """

    name = "cel0"
    paper = SOUBIES
    formula = "p(θ) = λ − (a²/2)(θ − √(2λ)/a)²·1[θ ≤ √(2λ)/a]"
    function = cel0
    default_weight = 1.0
    claims = (
        Claim(
            "CEL0 then one-shot pruning is more accurate at 90 % sparsity than L1 then pruning: an exact ℓ0 "
            "relaxation selects weights without shrinking the kept ones (Soubies et al. 2015)",
            task="pruning", metric="accuracy_at_90", direction="higher",
            arm={"name": "cel0", "weight": 6.7, "lam": 1e-3},
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(Baseline("no regularizer, same pruning"), _L1_BASELINE),
            datasets=("digits",),
            settings=_PRUNING_SETTINGS + "λ = 1e-3, a = 1 (knee √(2λ) ≈ 0.045), weight 6.7: slope at zero "
            "weight·a·√(2λ) ≈ 0.30, the tuned L1 weight; set before any run",
            source="Soubies et al. 2015, Sec. 1 and 5 (CEL0 keeps the ℓ0 minimizers, unlike ℓ1)",
            tuning=Tuning(arm=Tuned("weight", None, 6.7, "slope at zero matched to the tuned L1 weight; not tuned"),
                          baselines=(_L1_TUNING,)),
        ),
    )

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        _signed(w, cel0_prox(w.abs(), step_size, self.lam, self.a))


@register
class LqPenalty(WeightRegularizer):
    """ℓq quasi-norm Σ|w_i|^q, 0 < q < 1 (default ℓ1/2); exact prox (Newton on the stationarity equation) (Marjanovic & Solo 2012).

    Gradient 0 at w = 0 in penalty mode (the true one-sided derivative is infinite);
    use ``mode="prox"`` for exact zeros.
    """

    name = "lq"
    paper = MARJANOVIC_SOLO
    formula = "R(w) = Σ_i |w_i|^q,  0 < q < 1"
    function = lq
    default_weight = 1e-4
    claims = (
        Claim(
            "ℓ1/2 then one-shot pruning is more accurate at 90 % sparsity than L1 then pruning (ℓq with q < 1 is "
            "closer to ℓ0 and shrinks large weights less)",
            task="pruning", metric="accuracy_at_90", direction="higher",
            arm={"name": "lq", "weight": 0.003, "q": 0.5},
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(Baseline("no regularizer, same pruning"), _L1_BASELINE),
            datasets=("digits",),
            settings=_PRUNING_SETTINGS + "q = 1/2, weight 0.003: the per-step threshold of the ℓ1/2 prox, "
            "1.5·(lr·weight)^(2/3) ≈ 3.1e-4, is that of L1 at 0.3 (lr·0.3); set before any run",
            source="Marjanovic & Solo 2012, Sec. I; Rentzeperis et al. 2023 (ℓ1/2 vs ℓ1 sparse coding)",
            tuning=Tuning(arm=Tuned("weight", None, 0.003, "threshold matched to the tuned L1 weight; not tuned"),
                          baselines=(_L1_TUNING,)),
        ),
    )

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        _signed(w, lq_prox(w.abs(), step_size, self.q))
