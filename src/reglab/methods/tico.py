"""TiCo: Transformation Invariance and Covariance Contrast (Zhu, Moraes, Karakulak, Sobol, Canziani & LeCun, 2022).

Two views' embeddings, row-normalized: ẑ_a, ẑ_b (N×d). A d×d matrix C, an
EMA of the uncentred second moment of view a, is kept across steps:

    B_t = (1/N) ẑ_aᵀ ẑ_a,   C_t = β·C_{t−1} + (1 − β)·B_t   (C_{t−1} detached)
    L   = 1 − (1/N) Σ_i ⟨ẑ_a,i, ẑ_b,i⟩ + ρ·(1/N) Σ_i ẑ_a,iᵀ C_t ẑ_a,i

The first term is the transformation invariance, the second the covariance
contrast: with C an EMA over past batches it is a contrast against an
implicit memory bank of unlimited size (the paper's MoCo view).
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import torch

from reglab.core import Baselines, Claim, Paper, RegularizerInputError, RepresentationRegularizer, register
from reglab.ops import (
    check_positive, check_probability, check_tensor, common_dtype, hyperparameters, no_autocast,
    normalize_rows, positive, prepare_views, probability,
)

PAPER = Paper(
    "TiCo: Transformation Invariance and Covariance Contrast for Self-Supervised Visual Representation Learning",
    "Zhu, Moraes, Karakulak, Sobol, Canziani, LeCun", 2022, arxiv="2206.10698")


class TiCoStep(NamedTuple):
    """One TiCo step: the two unweighted terms and the updated covariance."""

    invariance: torch.Tensor  # 1 − (1/N) Σ_i ⟨ẑ_a,i, ẑ_b,i⟩
    contrast: torch.Tensor  # (1/N) Σ_i ẑ_a,iᵀ C_t ẑ_a,i
    cov: torch.Tensor  # C_t, detached: the next step's C_{t−1}


class TiCoTerms(NamedTuple):
    invariance: torch.Tensor
    contrast: torch.Tensor


@hyperparameters("TiCo", beta=probability)
def tico_step(
    z_a: torch.Tensor, z_b: torch.Tensor, cov: torch.Tensor | None = None, *, beta: float = 0.9, gather: bool = True
) -> TiCoStep:
    """The TiCo terms for one step and the updated EMA covariance (Zhu et al., 2022).

    ``cov`` is C_{t−1} (d×d, no gradient; None: zeros, the start of
    training). ``C_t = β·C_{t−1} + (1 − β)·(1/N) ẑ_aᵀẑ_a`` carries the
    gradient of the current batch; the returned ``cov`` is ``C_t``
    detached. Only view a enters the covariance. ``gather=True`` computes
    everything on the global batch under DDP, so every rank gets the same C.
    """
    who = "TiCo"
    z_a, z_b = prepare_views(who, z_a, z_b, gather=gather)
    z_a, z_b = common_dtype(z_a, z_b)
    n, d = z_a.shape
    if cov is not None:
        check_tensor(who, cov, arg="covariance state", ndim=2, finite=False)
        if tuple(cov.shape) != (d, d):
            raise RegularizerInputError(
                f"{who}'s covariance state is {tuple(cov.shape)} but the embeddings have {d} dimensions; "
                f"it expects a ({d}, {d}) matrix (a TiCo instance serves one embedding size)"
            )
    with no_autocast(z_a):
        a, b = normalize_rows(z_a), normalize_rows(z_b)
        second_moment = a.T @ a / n
        c = (1.0 - beta) * second_moment
        if cov is not None:
            c = c + beta * cov.detach().to(device=c.device, dtype=c.dtype)
        invariance = 1.0 - (a * b).sum(dim=1).mean()
        contrast = ((a @ c) * a).sum(dim=1).mean()
    return TiCoStep(invariance, contrast, c.detach())


@hyperparameters("TiCo", rho=positive)
def tico(
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    cov: torch.Tensor | None = None,
    *,
    beta: float = 0.9,
    rho: float = 8.0,
    gather: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TiCo loss ``invariance + ρ·contrast`` and the new covariance C_t (detached).

    ``loss, cov = tico(z_a, z_b, cov)``, carrying ``cov`` to the next step
    (None at the first); see ``tico_step``. ``TiCo`` keeps it in a
    buffer for you.
    """
    s = tico_step(z_a, z_b, cov, beta=beta, gather=gather)
    return s.invariance + rho * s.contrast, s.cov


@register
class TiCo(RepresentationRegularizer):
    """TiCo: invariance between two views plus a contrast against an EMA of past batches' covariance.

    With ẑ = z/‖z‖₂ per row and C (buffer ``cov``, d×d, in ``state_dict``)::

        C_t = β·C_{t−1} + (1 − β)·(1/N) ẑ_aᵀ ẑ_a        (C_{t−1} detached)
        L   = 1 − (1/N) Σ_i ⟨ẑ_a,i, ẑ_b,i⟩ + ρ·(1/N) Σ_i ẑ_a,iᵀ C_t ẑ_a,i

    and ``reg(z_a, z_b)`` returns ``weight·L``: TiCo is the whole SSL loss
    (``weight`` = 1). In training mode every call stores C_t for the next
    one; ``.eval()`` evaluates the loss without touching the state, and so
    does ``components``. The buffer is created at the first call (or at
    construction with ``dim``) in float32 (``.double()`` for float64 state).
    C is uncentred, built from view a only and starts at zero, as in the
    formula the third-party implementations share (newer lightly
    ``TiCoLoss``, sayannag/TiCo-pytorch); the paper's authors published no
    code. The older lightly version centres z over the batch first: a
    different loss. Symmetrize, if wanted, by swapping the views on
    alternate steps (each call updates C).

    Defaults. The paper's authors published no code and its text could not
    be read here, so the defaults come from the implementations that cite it:
    β = 0.9 (lightly and sayannag) and ρ = 8, the value both attribute to the
    paper: lightly-ai/lightly (commit e8d317fc) ``lightly/loss/tico_loss.py`` line 49
    (``rho: float = 8.0``; its docstring, line 26, "Defaults to 8.0 [0]", [0]
    the paper; changed from 20 in commit deb3c316, "Fix wrong hyperparam")
    and its ImageNet benchmark ``benchmarks/imagenet/resnet50/tico.py`` line
    33 (``TiCoLoss(beta=0.9, rho=8.0, ...)``); sayannag/TiCo-pytorch
    ``TiCo/main.py`` line 88 ("Recommended value in the paper = 8.0", though
    its own default is 20, which reglab used before). ``weight`` = 1.
    (Newer lightly also detaches B_t; here, as in sayannag and the formula,
    the current batch's B_t carries gradient.)

    DDP: with ``gather=True`` (default) both views are all-gathered with
    gradient (``reglab.distributed.gather``) before B_t is formed, so every
    rank computes the same loss and the same C_t from the global batch and
    the buffers stay identical on all ranks (and equal to one process on the
    concatenated batch). ``gather=False`` keeps each rank's C from its own
    batch (ranks' states then differ).

    Zhu et al. (2022), arXiv:2206.10698.
    """

    name = "tico"
    paper = PAPER
    formula = "C_t = βC_{t−1} + (1−β)ẑ_aᵀẑ_a/N;  1 − mean_i⟨ẑ_a,i, ẑ_b,i⟩ + ρ·mean_i ẑ_a,iᵀ C_t ẑ_a,i"
    num_inputs = 2
    function = tico
    call_args = ("cov",)
    _settings = (
        "MLP encoder 64-256-32 on two augmented views of 8×8 digits, Adam lr 1e-3, batch 128, 50 epochs, instead "
        "of ResNet-50 + projector 2048-4096-256 on ImageNet (batch 4096, LARS, 1000 epochs); TiCo is the whole loss, "
        "β = 0.9, ρ = 8 (lightly's default and ImageNet benchmark, which attribute it to the paper; see the class "
        "docstring), view a = "
        "the first view every step; developed on seeds 0-4"
    )
    claims: ClassVar[tuple[Claim, ...]] = (
        Claim(
            "TiCo learns representations that give a better linear probe",
            task="ssl_collapse", metric="linear_probe_accuracy", direction="higher",
            min_effect=0.01, min_effect_reason="one point of probe accuracy",
            baselines=(
                Baselines.INVARIANCE_ONLY,
                Baselines.VICREG,
                Baselines.UNTRAINED_ENCODER,
                Baselines.RAW_INPUT,
            ),
            datasets=("digits", "digits_half"), settings=_settings,
            source="Zhu et al. 2022, linear evaluation on ImageNet (TiCo against Barlow Twins, VICReg, MoCo and others)",
        ),
        Claim(
            "The covariance contrast prevents the collapse of invariance-only training",
            task="ssl_collapse", metric="effective_rank", direction="higher", role="mechanism",
            min_effect=1.0, min_effect_reason="one effective dimension (of 32)",
            baselines=(
                Baselines.INVARIANCE_ONLY,
                Baselines.VICREG,
            ),
            datasets=("digits", "digits_half"), settings=_settings,
            source="Zhu et al. 2022, abstract and method (the covariance contrast penalizes low-rank solutions)",
        ),
    )

    def __init__(
        self, weight: Any = 1.0, beta: float = 0.9, rho: float = 8.0, gather: bool = True, dim: int | None = None
    ):
        super().__init__(weight)
        self.beta = check_probability("TiCo", "beta", beta)
        self.rho = check_positive("TiCo", "rho", rho)
        self.gather = bool(gather)
        if dim is not None and not (isinstance(dim, int) and not isinstance(dim, bool) and dim >= 1):
            raise RegularizerInputError(f"TiCo expects dim to be a positive int (the embedding size) or None, got {dim!r}")
        self.dim = dim
        self.register_buffer("cov", torch.zeros(dim, dim) if dim is not None else torch.zeros(0, 0))

    def _state(self) -> torch.Tensor | None:
        return self.cov if self.cov.numel() else None

    def _advance(self, z_a: torch.Tensor, z_b: torch.Tensor) -> TiCoStep:
        s = tico_step(z_a, z_b, self._state(), beta=self.beta, gather=self.gather)
        if self.training:
            with torch.no_grad():
                if self.cov.shape == s.cov.shape:
                    self.cov.copy_(s.cov)
                else:  # first call: the state takes the embeddings' size and device
                    self.cov = s.cov.to(dtype=self.cov.dtype).clone()
        return s

    def penalty(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        s = self._advance(z_a, z_b)
        return s.invariance + self.rho * s.contrast

    def components(self, z_a: torch.Tensor, z_b: torch.Tensor) -> TiCoTerms:  # type: ignore[override]
        """The unweighted terms at the current state (the state is not updated)."""
        s = tico_step(z_a, z_b, self._state(), beta=self.beta, gather=self.gather)
        return TiCoTerms(s.invariance, s.contrast)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        # the state's size is the embeddings': a fresh (lazy) instance takes the stored one
        stored = state_dict.get(prefix + "cov")
        if isinstance(stored, torch.Tensor) and stored.shape != self.cov.shape and self.dim is None:
            self.cov = torch.empty_like(stored, dtype=self.cov.dtype, device=self.cov.device)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)
