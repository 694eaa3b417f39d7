"""Variational (KL) bottleneck on embeddings (Zhu & Razavian, AAAI 2021).

The encoder outputs a mean μ and a log-variance log σ² per embedding; the
embedding used downstream is sampled z = μ + σ·ε (ε ~ N(0, I)) in training
and is μ in evaluation, and the loss gains

    KL(N(μ, σ²) ‖ N(0, I)) = ½ · Σ_j (σ_j² − log σ_j² − 1 + μ_j²),

summed over the dimensions and averaged over the batch. The paper finds it
makes the learned (graph) representations more robust.

Pinned from the authors' code, NYUMedML/GNN_for_EHR: ``model.py``
(``VariationalGNN.reparameterise``: ``std = exp(0.5·logvar)``, ``mu + eps·std``
in training, ``mu`` in eval; the KL ``0.5 * sum(logvar.exp() - logvar - 1 +
mu.pow(2)) / mu.size(0)``); ``utils.py`` (``loss = bce + lbd * kld``);
``train.py`` (``--lbd`` default 1.0).
"""

from __future__ import annotations

import torch

from reglab.core import Claim, Paper, RegularizerInputError, RepresentationRegularizer, register
from reglab.ops import check_same_shape, check_tensor, has_data, no_autocast

PAPER = Paper(
    "Variationally Regularized Graph-based Representation Learning for Electronic Health Records",
    "Zhu, Razavian", 2021, arxiv="1912.03761", venue="ACM CHIL", code="https://github.com/NYUMedML/GNN_for_EHR")

WHO = "KLBottleneck"

__all__ = ["kl_bottleneck", "gaussian_reparameterize", "KLBottleneck"]


def _check(mu: object, logvar: object) -> None:
    check_tensor(WHO, mu, arg="mu", ndim=2)
    check_tensor(WHO, logvar, arg="logvar", ndim=2)
    check_same_shape(WHO, mu, logvar, "mu and logvar")


def kl_bottleneck(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``½·Σ_j (exp(logvar_j) − logvar_j − 1 + μ_j²)`` per row, averaged over the rows.

    ``mu``, ``logvar``: (n, d), the encoder's mean and log-variance.
    """
    _check(mu, logvar)
    with no_autocast(mu):
        dtype = torch.promote_types(torch.promote_types(mu.dtype, logvar.dtype), torch.float32)
        m, lv = mu.to(dtype), logvar.to(dtype)
        value = 0.5 * (lv.exp() - lv - 1 + m.pow(2)).sum() / m.shape[0]
    if has_data(value) and not bool(torch.isfinite(value.detach())):
        raise RegularizerInputError(
            f"{WHO}'s KL overflows {dtype}: logvar up to {float(logvar.detach().max()):.3g} and |mu| up to "
            f"{float(mu.detach().abs().max()):.3g}; clamp the log-variance the encoder outputs"
        )
    return value


def gaussian_reparameterize(
    mu: torch.Tensor, logvar: torch.Tensor, training: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``μ + exp(½·logvar)·ε`` (ε ~ N(0, I)) when ``training``, else ``μ`` (the official ``reparameterise``)."""
    _check(mu, logvar)
    if not training:
        return mu
    eps = torch.randn(mu.shape, dtype=mu.dtype, device=mu.device, generator=generator)
    return mu + eps * torch.exp(0.5 * logvar)


@register
class KLBottleneck(RepresentationRegularizer):
    """Variational (KL) bottleneck: KL(N(μ, σ²) ‖ N(0, I)) on stochastic embeddings.

    ``reg(mu, logvar)`` = ½·Σ_j (σ_j² − log σ_j² − 1 + μ_j²), summed over
    dimensions and averaged over the batch; use the sample
    ``reglab.functional.gaussian_reparameterize(mu, logvar, training=model.training)``
    downstream (μ in evaluation). The KL pressure keeps only the dimensions the
    task pays for; Zhu & Razavian (2021) use it on graph node embeddings of EHR
    codes to make structure learning robust. A related negative result
    (variational sparse autoencoders, Lu et al. 2025): the same KL on SAE
    latents leaves more dead features than a TopK SAE.

    Defaults from NYUMedML/GNN_for_EHR: ``weight`` 1.0 (``--lbd``), the sum over
    dimensions and the mean over rows of ``model.py``. No batch statistic: each
    row's term is its own, so DDP's gradient averaging gives the global mean.

    Zhu & Razavian (2021), ACM CHIL, arXiv:1912.03761.
    """

    name = "kl_bottleneck"
    paper = PAPER
    formula = "(1/n) Σ_i ½ Σ_j (exp(logvar_ij) − logvar_ij − 1 + μ_ij²)"
    function = kl_bottleneck
    num_inputs = 2
    takes_embedding_batches = False  # (mu, logvar), not two views: tests/methods/test_kl_bottleneck.py
    claims = (
        Claim(
            "A KL bottleneck on the node embeddings improves EHR prediction (AUPRC) of a graph model over the same "
            "model without it",
            testable=False,
            untestable_reason="needs EHR data (MIMIC-III, eICU) and the paper's graph model; no lab task has an "
            "encoder with a mean/log-variance head, and adding one would be a new architecture, not a binding",
            source="Zhu & Razavian 2021, Table 2 (AUPRC, VGNN vs GNN without variational regularization)",
        ),
    )
