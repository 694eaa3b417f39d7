"""RIDG: rationale invariance for domain generalization (Chen, Zhang, Song, van den Hengel, Liu, ICCV 2023).

A sample's rationale is its element-wise contribution to every logit,
R_i[c, d] = W[c, d]·f_i[d] (C × D, W the last linear layer's weight, f_i the
features). Each class y keeps a bank R̄_y (C × D): the batch mean of its
samples' rationales the first time the class is seen, then
R̄_y ← (1 − μ)·R̄_y + μ·mean_{i: y_i = y} R_i. The penalty pulls each
sample's rationale to its class's (detached, already updated) bank entry:

    L = Σ_{y ∈ batch} 1/(C·n_y) · Σ_{i: y_i = y} Σ_{c,d} (R_i[c, d] − R̄_y[c, d])².

Pinned from the official code, liangchen527/RIDG @ 34501b2:
``domainbed/algorithms.py`` ``RIDG.update`` (L403–424) and
``domainbed/hparams_registry.py`` (L71–73: momentum μ = 0.001, ``ridg_reg``
λ = 0.01; the loss is CE + λ·L).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

from reglab.core import Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.core.distributed import agree, all_gather_nograd, gather as _gather, is_distributed
from reglab.ops import check_tensor, has_data, hyperparameters, no_autocast, probability

__all__ = ["ridg", "RIDG", "RIDGStep"]

PAPER = Paper(
    "Domain Generalization via Rationale Invariance", "Chen, Zhang, Song, van den Hengel, Liu", 2023,
    arxiv="2308.11158", venue="ICCV", code="https://github.com/liangchen527/RIDG")

WHO = "RIDG"


class RIDGStep(NamedTuple):
    penalty: torch.Tensor
    bank: torch.Tensor  # (C, C, D), detached
    seen: torch.Tensor  # (C,) bool: classes whose bank entry is initialized


@hyperparameters(WHO, momentum=probability)
def ridg(
    features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, bank: torch.Tensor | None = None,
    seen: torch.Tensor | None = None, *, momentum: float = 0.001, gather: bool = True,
) -> RIDGStep:
    """One RIDG step: the penalty and the updated class bank (``RIDG.update`` of the official code).

    ``features`` (B, D), integer ``labels`` (B,), ``weight`` the classifier's
    (C, D) weight; ``bank`` (C, C, D) and ``seen`` (C,) the state (None: empty).
    ``gather=True`` computes the class means and the penalty on the global
    batch under DDP (features all-gathered with gradient), so the bank stays
    identical on all ranks.
    """
    distributed = gather and is_distributed()
    with agree(WHO, enabled=distributed) as agreed:
        check_tensor(WHO, features, arg="features", ndim=2, finite=False, nonempty=not distributed)
        check_tensor(WHO, labels, arg="labels", ndim=1, floating=False, finite=False, nonempty=False)
        if labels.is_floating_point() or labels.is_complex():
            raise RegularizerInputError(f"{WHO} expects integer class labels, got dtype {labels.dtype}")
        if labels.shape[0] != features.shape[0]:
            raise RegularizerInputError(
                f"{WHO} expects one label per feature row ({features.shape[0]}), got labels of shape {tuple(labels.shape)}")
        agreed.describe("features", features)
        agreed.describe("labels", labels)
    check_tensor(WHO, weight, arg="classifier weight", ndim=2)
    c, d = weight.shape
    if features.shape[1] != d:
        raise RegularizerInputError(
            f"{WHO} expects features of the classifier's input size {d}, got shape {tuple(features.shape)}")
    f = _gather(features, enabled=gather, sizes=agreed.sizes[0] if agreed.sizes else None)
    y = all_gather_nograd(labels, sizes=agreed.sizes[1]) if agreed.sizes else labels
    check_tensor(WHO, f, arg="features")  # finite, on the global batch
    y = y.to(f.device)
    if not has_data(f) or not has_data(y):  # meta / fake tensors: the shape of the result only
        z = f.sum() * 0.0
        return RIDGStep(z, torch.zeros(c, c, d, dtype=f.dtype, device=f.device), torch.zeros(c, dtype=torch.bool, device=f.device))
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= c):
        raise RegularizerInputError(f"{WHO} got labels outside [0, {c}) for a classifier with {c} classes")
    if bank is None:
        bank = torch.zeros(c, c, d, dtype=f.dtype, device=f.device)
        seen = torch.zeros(c, dtype=torch.bool, device=f.device)
    elif tuple(bank.shape) != (c, c, d) or seen is None or tuple(seen.shape) != (c,):
        raise RegularizerInputError(
            f"{WHO}'s class bank is {tuple(bank.shape)} but the classifier is {c}×{d}: it expects ({c}, {c}, {d}) "
            f"(a RIDG instance serves one classifier)")
    bank = bank.detach().to(device=f.device, dtype=f.dtype).clone()
    seen = seen.to(device=f.device, dtype=torch.bool).clone()
    with no_autocast(f):
        w = weight.to(f.dtype)
        penalty = f.new_zeros(())
        for cls in torch.unique(y).tolist():
            r = w[None, :, :] * f[y == cls][:, None, :]  # (n_y, C, D): R_i[c, d] = W[c, d]·f_i[d]
            mean = r.mean(dim=0).detach()
            bank[cls] = mean if not bool(seen[cls]) else (1.0 - momentum) * bank[cls] + momentum * mean
            seen[cls] = True
            penalty = penalty + (r - bank[cls]).pow(2).sum(dim=2).mean()
    if not bool(torch.isfinite(penalty.detach())):
        raise RegularizerInputError(f"{WHO} produced a non-finite penalty ({float(penalty)}) from finite inputs: the rationales overflow {f.dtype}")
    return RIDGStep(penalty, bank, seen)


@register
class RIDG(Regularizer):
    """RIDG: pull each sample's rationale W ⊙ f (C × D) to a running per-class mean.

    ``reg(features, labels, classifier.weight)``; the class bank (buffer
    ``bank``, C × C × D, with ``seen`` flags) is created at the first call and
    updated in training mode: set to the class's batch mean the first time,
    then an EMA with momentum μ = 0.001; the penalty uses the updated,
    detached entry. Defaults from liangchen527/RIDG (``hparams_registry.py``):
    μ = 0.001, weight λ = 0.01. Under DDP (``gather=True``) the class means
    come from the global batch, so the bank is identical on all ranks.

    Chen, Zhang, Song, van den Hengel & Liu (2023), ICCV, arXiv:2308.11158.
    """

    name = "ridg"
    kind = "representation"
    form = "penalty"
    num_inputs = 3
    takes_embedding_batches = False  # features, labels and the classifier weight: its own tests cover them
    paper = PAPER
    formula = "Σ_{y∈batch} 1/(C·n_y) Σ_{i: y_i=y} ‖W ⊙ f_i − R̄_y‖²_F,  R̄_y ← (1−μ)R̄_y + μ·mean_{y_i=y} W ⊙ f_i"
    function = ridg
    default_weight = 0.01
    claims = (
        Claim(
            "Rationale invariance improves accuracy on unseen domains (PACS, VLCS, OfficeHome, TerraInc, DomainNet)",
            testable=False,
            untestable_reason="needs training on several source domains and testing on a held-out domain; the "
            "lab has no multi-domain task (its digits variants are one domain)",
        ),
    )

    def __init__(self, weight: Any = 0.01, momentum: float = 0.001, gather: bool = True):
        super().__init__(weight)
        self.momentum = probability(WHO, "momentum", momentum)
        self.gather = bool(gather)
        self.register_buffer("bank", torch.zeros(0, 0, 0))
        self.register_buffer("seen", torch.zeros(0, dtype=torch.bool))

    def penalty(self, features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        state = (self.bank, self.seen) if self.bank.numel() else (None, None)
        step = ridg(features, labels, weight, *state, momentum=self.momentum, gather=self.gather)
        if self.training:
            with torch.no_grad():
                if self.bank.shape == step.bank.shape:
                    self.bank.copy_(step.bank)
                    self.seen.copy_(step.seen)
                else:  # first call: the state takes the classifier's size
                    self.bank = step.bank.clone()
                    self.seen = step.seen.clone()
        return step.penalty

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        for key in ("bank", "seen"):
            stored = state_dict.get(prefix + key)
            if isinstance(stored, torch.Tensor) and stored.shape != getattr(self, key).shape:
                setattr(self, key, torch.empty_like(stored))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)
