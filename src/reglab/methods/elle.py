"""ELLE: efficient local-linearity regularization (Abad Rocamora, Liu, Chrysos, Olmos & Cevher, ICLR 2024:
"Efficient local linearity regularization to overcome catastrophic overfitting").

For each input x draw x_a, x_b uniformly in the ℓ∞ ball B_ε(x) and α ∼ U[0, 1], set
x_c = (1 − α)·x_a + α·x_b, and penalize how far the loss is from linear along the segment:

    R = mean_i (ℓ(x_c) − (1 − α)·ℓ(x_a) − α·ℓ(x_b))²

added as λ·R to the (single-step adversarial) training loss; three extra forward passes, no
double backprop. Pinned from the official code (LIONS-EPFL/ELLE, ``README.md`` snippet and
``core/utils/train.py``, ``Trainer.loss``, ``reg == 'ELLE'``: x_ab = x.repeat(2) + ε·(2·rand − 1),
α = rand(bs), one forward of the 3·bs inputs, per-sample cross-entropy, ``MSELoss`` of
ℓ_c against (1 − α)ℓ_a + αℓ_b; no clamping to the data range). λ (``--lin_reg``) is 1000 for
ε ≤ 8/255, 5000 for 10-20/255 and 10000 beyond (``scripts/run_elle_cifar10.sh``): default
λ = 1000, ε = 8/255.

ELLE-A (``ELLE(adaptive=True)``, the ``--lambda_schedule 'onoff'`` rule of the official CIFAR-10/SVHN
code, LIONS-EPFL/ELLE at commit 0f16c0e): λ starts at 0 (``train.py`` lines 124-127: ``lambda_aux =
lin_reg``, ``lin_reg = 0``) and after each training step's error R_t, with μ, σ the mean and population
standard deviation (``np.mean``/``np.std``) of all earlier errors R_1..R_{t−1} (``core/utils/train.py``
lines 216-227):

    λ ← λ_max           if t − 1 > 2 and R_t > μ + s·σ      (a spike: local linearity is breaking)
    λ ← d·λ             otherwise

then R_t joins the history. s = 2 (``--sensitivity``, ``parser.py`` line 77), d = 0.99 (``--decay_rate``,
``parser.py`` line 76); λ_max is ``weight`` (``--lin_reg``; 4000 at every ε in
``scripts/run_elle-a_cifar10.sh`` and ``scripts/run_N-FGSM+elle-a_cifar10.sh``). The ImageNet variant
(``ImageNet/ImageNet/main_fast.py`` lines 239-358: a smooth-L1 error, μ and σ over the last 500 errors,
a λ_max ramp over the first 2500 steps) is not implemented.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from reglab.core import Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.ops import check_positive, check_tensor

__all__ = ["elle", "ELLE", "ELLEASchedule"]

PAPER = Paper(
    "Efficient local linearity regularization to overcome catastrophic overfitting",
    "Abad Rocamora, Liu, Chrysos, Olmos, Cevher", 2024, arxiv="2401.11618", venue="ICLR",
    code="https://github.com/LIONS-EPFL/ELLE")

WHO = "ELLE"

# ELLE-A constants of the official code (LIONS-EPFL/ELLE @ 0f16c0e, ``parser.py``).
SENSITIVITY = 2.0  # --sensitivity, parser.py line 77: the spike threshold is μ + 2σ
DECAY_RATE = 0.99  # --decay_rate, parser.py line 76: λ ← 0.99·λ at every step without a spike
MIN_HISTORY = 3  # core/utils/train.py line 223: ``len(self.elle_values) > 2`` before any spike test


def _model_dtype(model: object, dtype: torch.dtype) -> torch.dtype:
    """The dtype a module computes in (its first floating parameter's), so an input of another precision
    (a half-precision batch, a float32 batch for a float64 model) is perturbed in the model's; else ``dtype``."""
    if isinstance(model, torch.nn.Module):
        for p in model.parameters():
            if p.is_floating_point():
                return p.dtype
    return dtype


def elle(
    x: torch.Tensor, y: torch.Tensor, model: Callable[[torch.Tensor], torch.Tensor], eps: float = 8 / 255
) -> torch.Tensor:
    """ELLE's local-linearity error ``mean_i (ℓ(x_c) − (1 − α)ℓ(x_a) − αℓ(x_b))²`` with per-sample
    cross-entropy ℓ of ``model`` at labels ``y``; x_a, x_b ∼ U(B_ε(x)) (ℓ∞), α ∼ U[0, 1] per sample,
    drawn from torch's global generator in the official order (the 2·bs perturbations, then α)."""
    check_tensor(WHO, x, arg="input", min_ndim=1)
    if not isinstance(y, torch.Tensor) or y.shape[:1] != x.shape[:1] or y.is_floating_point():
        raise RegularizerInputError(
            f"{WHO} expects integer labels y with one label per input ({x.shape[0]}), got "
            f"{type(y).__name__ if not isinstance(y, torch.Tensor) else (y.dtype, tuple(y.shape))}"
        )
    check_positive(WHO, "eps", eps)
    x = x.to(_model_dtype(model, x.dtype))
    bs = x.shape[0]
    x_ab = x.repeat(2, *([1] * (x.ndim - 1)))
    x_ab = x_ab + eps * (2 * torch.rand(x_ab.shape, device=x.device, dtype=x.dtype) - 1)
    alpha = torch.rand((bs,) + (1,) * (x.ndim - 1), device=x.device, dtype=x.dtype)
    x_c = (1 - alpha) * x_ab[:bs] + alpha * x_ab[bs:]
    alpha = alpha.reshape(bs)
    logits = model(torch.cat((x_ab, x_c), dim=0))
    check_tensor(WHO, logits, arg="model output (logits)", ndim=2)
    losses = F.cross_entropy(logits, y.repeat(3), reduction="none")
    linear = (1 - alpha) * losses[:bs] + alpha * losses[bs : 2 * bs]
    return (losses[2 * bs :] - linear).pow(2).mean()


def _finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class ELLEASchedule:
    """ELLE-A's adaptive λ (LIONS-EPFL/ELLE @ 0f16c0e, ``core/utils/train.py`` lines 216-227, ``train.py``
    lines 124-127): ``lam`` starts at 0; ``update(R)`` after each step's local-linearity error R sets
    ``lam = lam_max`` when at least 3 earlier errors exist and R > mean + sensitivity·std of all earlier
    errors (population std, as ``np.std``), else ``lam *= decay_rate``; then R joins the history. The mean
    and std are kept by Welford's running sums (count, mean, sum of squared deviations) instead of the
    official list: the same numbers up to rounding, O(1) state. ``state_dict()``/``load_state_dict()``
    round-trip every field as plain floats."""

    def __init__(self, lam_max: float, sensitivity: float = SENSITIVITY, decay_rate: float = DECAY_RATE):
        self.lam_max = check_positive(WHO, "weight (ELLE-A's λ_max)", lam_max, allow_zero=True)
        self.sensitivity = check_positive(WHO, "sensitivity", sensitivity, allow_zero=True)
        if not _finite_number(decay_rate) or not 0 < decay_rate <= 1:
            raise RegularizerInputError(f"{WHO} expects decay_rate in (0, 1], got {decay_rate!r}")
        self.decay_rate = float(decay_rate)
        self.lam = 0.0
        self.count = 0
        self.mean = 0.0
        self.m2 = 0.0

    @property
    def std(self) -> float:
        """Population standard deviation of the errors so far (0 with none)."""
        return math.sqrt(self.m2 / self.count) if self.count else 0.0

    def is_spike(self, r: float) -> bool:
        return self.count >= MIN_HISTORY and r > self.mean + self.sensitivity * self.std

    def update(self, r: float) -> float:
        """Feed one step's error R; returns the λ for the next step."""
        if isinstance(r, torch.Tensor) and r.numel() == 1:
            r = r.item()
        if not _finite_number(r) or r < 0:
            raise RegularizerInputError(
                f"{WHO} (ELLE-A) expects each step's local-linearity error R to be a finite non-negative number, "
                f"got {r!r}")
        r = float(r)
        self.lam = self.lam_max if self.is_spike(r) else self.lam * self.decay_rate
        self.count += 1
        delta = r - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (r - self.mean)
        return self.lam

    def state_dict(self) -> dict[str, Any]:
        return {"lam": self.lam, "count": self.count, "mean": self.mean, "m2": self.m2}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        keys = {"lam", "count", "mean", "m2"}
        if not isinstance(state, dict) or set(state) != keys:
            raise RegularizerInputError(
                f"{WHO} (ELLE-A) expects a schedule state with keys {sorted(keys)}, got "
                f"{sorted(state) if isinstance(state, dict) else type(state).__name__}")
        count = state["count"]
        if not isinstance(count, int) or isinstance(count, bool) or count < 0 or not all(
                _finite_number(state[k]) for k in ("lam", "mean", "m2")) or state["m2"] < 0:
            raise RegularizerInputError(f"{WHO} (ELLE-A) got an invalid schedule state {state!r}")
        self.lam, self.count = float(state["lam"]), count
        self.mean, self.m2 = float(state["mean"]), float(state["m2"])


@register
class ELLE(Regularizer):
    """ELLE: penalize the loss's deviation from linearity between random points of the ε-ball.

    ``reg(x, y, model)`` returns ``λ·mean_i (ℓ(x_c) − (1 − α)ℓ(x_a) − αℓ(x_b))²`` (x_a, x_b uniform
    in the ℓ∞ ball of radius ε around x, x_c on their segment at a uniform α; ℓ the per-sample
    cross-entropy of ``model``). Add it to the loss of single-step adversarial training (FGSM or
    N-FGSM) to prevent catastrophic overfitting without double backprop: it costs one extra
    forward-backward over 3× the batch. Defaults from the official code (LIONS-EPFL/ELLE,
    ``scripts/run_elle_cifar10.sh``): λ = 1000 with ε = 8/255 (use 5000 for ε in 10-20/255 and
    10000 above, on images in [0, 1]); give ε the attack's own radius. No clamping to the data range
    (as the official ``train.py``).

    ``adaptive=True`` is ELLE-A (``ELLEASchedule``, the official ``--lambda_schedule 'onoff'``): ``weight``
    becomes λ_max (official ELLE-A scripts: 4000 at every ε, ``scripts/run_elle-a_cifar10.sh``) and the
    coefficient starts at 0; each training-mode call records its error R (detached; several calls in one
    step are averaged) and ``reg.step()`` (``regs.step()``, after ``optimizer.step()``) feeds it to the
    schedule: λ jumps to λ_max when R exceeds the mean of all earlier steps' errors plus
    ``sensitivity`` = 2 standard deviations (``parser.py`` line 77), else decays by ``decay_rate`` = 0.99
    (line 76), tested only once 3 errors are recorded (``core/utils/train.py`` line 223). A step without
    a recorded R leaves λ as it is; a non-finite R raises there (the official list would keep a NaN and
    never spike again). The schedule state (λ and the running count, mean and squared
    deviations) is in ``state_dict``; the R recorded since the last ``step()`` is not. ``step()`` reads R
    on the host (one device sync per step, as the official ``.item()``). Under DDP each rank sees its own
    R (the official code is single-process).
    """

    name = "elle"
    kind = "procedure"
    form = "penalty"
    paper = PAPER
    formula = "R = mean (ℓ(x_c) − (1−α)ℓ(x_a) − αℓ(x_b))²,  x_a, x_b ∼ U(B_ε(x)),  x_c = (1−α)x_a + αx_b"
    default_weight = 1000.0
    claims = (
        Claim(
            "ELLE prevents catastrophic overfitting of single-step (FGSM) adversarial training at large ε",
            testable=False,
            untestable_reason="the lab has no adversarial-training task: catastrophic overfitting shows only in "
            "FGSM training of a CNN at a large ε for tens of epochs, judged by PGD accuracy; a new task with an "
            "attack and PGD evaluation per epoch would cost far above the lab's per-claim budget",
            source="Abad Rocamora et al. 2024, Fig. 1 and Table 1 (PGD accuracy of FGSM-AT + ELLE vs GradAlign)",
        ),
    )

    def __init__(self, weight: float = 1000.0, eps: float = 8 / 255, adaptive: bool = False,
                 sensitivity: float = SENSITIVITY, decay_rate: float = DECAY_RATE):
        super().__init__(weight)
        self.eps = check_positive(WHO, "eps", eps)
        if not isinstance(adaptive, bool):
            raise RegularizerInputError(f"{WHO} expects adaptive to be True or False, got {adaptive!r}")
        self.adaptive = adaptive
        if adaptive and not _finite_number(weight):
            raise RegularizerInputError(
                f"{WHO} with adaptive=True (ELLE-A) takes a constant weight (its λ_max), got {weight!r}")
        # validated even when adaptive=False, so a config never carries a value ELLE-A would refuse
        self.schedule = ELLEASchedule(weight if adaptive else 1.0, sensitivity, decay_rate)
        self.sensitivity, self.decay_rate = self.schedule.sensitivity, self.schedule.decay_rate
        self._pending: torch.Tensor | None = None
        self._pending_calls = 0

    @property
    def current_weight(self) -> float:
        """λ now: ELLE-A's adaptive λ when ``adaptive``, else the (scheduled) weight."""
        return self.schedule.lam if self.adaptive else super().current_weight

    def penalty(self, x: torch.Tensor, y: torch.Tensor, model: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """The local-linearity error (without λ); ``reg(x, y, model)`` multiplies by λ."""
        if not callable(model):
            raise RegularizerInputError(f"{WHO} expects a model (a callable returning logits), got {type(model).__name__}")
        r = elle(x, y, model, self.eps)
        if self.adaptive and self.training:
            value = r.detach()
            self._pending = value if self._pending is None else self._pending + value
            self._pending_calls += 1
        return r

    def step(self) -> None:
        """Advance the step counter; with ``adaptive``, feed this step's (mean) error R to ELLE-A's λ."""
        super().step()
        if self.adaptive and self._pending is not None:
            r = float(self._pending) / self._pending_calls
            self._pending, self._pending_calls = None, 0
            self.schedule.update(r)

    def get_extra_state(self) -> dict[str, Any]:
        state = super().get_extra_state()
        if self.adaptive:
            state["ellea"] = self.schedule.state_dict()
        return state

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if self.adaptive != ("ellea" in state):
            raise RegularizerInputError(
                f"{WHO} with adaptive={self.adaptive} cannot load a state saved with adaptive={not self.adaptive}")
        super().set_extra_state(state)
        if self.adaptive:
            self.schedule.load_state_dict(state["ellea"])
        self._pending, self._pending_calls = None, 0
