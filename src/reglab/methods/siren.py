"""SIREN: selective, self-anchored entropy regularization for RL on reasoning models (Jiang et al., 2025).

Naive entropy bonuses explode over a huge vocabulary and long responses;
SIREN restricts the entropy to (1) the top-p nucleus of each token's
distribution, renormalized, and (2) the highest-entropy tokens of each
response, and (3) penalizes the squared deviation of that selected entropy
from an anchor instead of maximizing it. Official code (Linn3a/siren,
``verl/verl/workers/actor/dp_actor.py``):

* ``efficient_top_p_sampling``: per token, the top-k logits (k = 10 000),
  the smallest prefix of them whose cumulative probability reaches p
  (``searchsorted`` over the cumulative sum, p = 0.8 in ``exp_scripts/siren.sh``),
  probabilities renormalized inside it, ``H = −Σ p̃ log(p̃ + 1e-12)``;
* ``mask_by_quantile(entropy, response_mask, 1, mask_ratio)``: keep the tokens
  whose entropy is above the ``mask_ratio`` = 0.8 quantile of their response
  (``torch.nanquantile`` over the response tokens of each sequence);
* ``agg_loss(..., "seq-mean-token-mean")``: the mean over the kept tokens
  of each sequence, then the mean over sequences: H_sel;
* ``entropy_loss_mse = (H_sel − anchor)²``, added with ``entropy_coeff``
  = 0.005 (our default weight); the anchor is H_sel of the first batch
  (``ray_trainer.py``, step 1).

The anchor is a buffer set from the first call (or given); the penalty is
per rank under DDP (the quantile is per sequence, no batch statistic).
"""

from __future__ import annotations

import torch

from reglab.core import Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.ops import check_tensor, hyperparameters, integer, probability

__all__ = ["top_p_entropy", "siren_selected_entropy", "siren", "SIREN"]

PAPER = Paper(
    "Rethinking Entropy Regularization in Large Reasoning Models",
    "Jiang, Y., Li, Y., Chen, G., Liu, D., Cheng, Y. and Shao, J.", 2025, arxiv="2509.25133",
    code="https://github.com/Linn3a/siren")


def top_p_entropy(logits: torch.Tensor, top_p: float = 0.8, top_k: int = 10000) -> torch.Tensor:
    """Entropy of each row's renormalized top-p nucleus within its top-k probabilities (SIREN's
    ``efficient_top_p_sampling``): the sorted tokens before the first whose cumulative probability
    reaches ``top_p`` (``searchsorted``), so a row whose top-1 probability is ≥ p gets entropy 0."""
    probs = logits.softmax(dim=-1)
    k = min(int(top_k), logits.shape[-1])
    top, _ = torch.topk(probs, k, dim=-1)
    cum = top.cumsum(dim=-1)
    cut = torch.searchsorted(cum.detach().contiguous(), torch.full_like(cum[..., :1], top_p))
    keep = torch.arange(k, device=logits.device) < cut
    q = top * keep
    q = q / (q.sum(dim=-1, keepdim=True) + 1e-12)
    return -(q * torch.log(q + 1e-12)).sum(dim=-1)


@hyperparameters("SIREN", top_p=probability, top_k=integer(1), quantile=probability)
def siren_selected_entropy(
    logits: torch.Tensor,
    mask: torch.Tensor | None = None,
    top_p: float = 0.8,
    top_k: int = 10000,
    quantile: float = 0.8,
) -> torch.Tensor:
    """H_sel: top-p entropy of the tokens above the ``quantile`` of their sequence, mean per sequence, mean over sequences.

    ``logits`` (B, T, V) with ``mask`` (B, T) of response tokens (all when None).
    """
    check_tensor("SIREN", logits, arg="logits", ndim=3)
    b, t, _ = logits.shape
    if mask is None:
        mask = torch.ones(b, t, dtype=torch.bool, device=logits.device)
    if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != (b, t):
        raise RegularizerInputError(
            f"SIREN expects a (batch, tokens) = {(b, t)} response mask, got "
            f"{tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__}"
        )
    mask = mask.to(torch.bool)
    h = top_p_entropy(logits, top_p, top_k)
    lower = torch.nanquantile(h.detach().float().masked_fill(~mask, float("nan")), quantile, dim=-1, keepdim=True)
    keep = (h.detach() > lower.to(h.dtype)) & mask
    counts = keep.sum(dim=-1)
    if not counts.is_meta and bool((counts == 0).any()):  # on the meta device: shapes only
        raise RegularizerInputError(
            "SIREN: a sequence has no token above its entropy quantile (all its response tokens have equal "
            "entropy, or its mask is empty); drop it or pass a lower quantile"
        )
    per_seq = (h * keep).sum(dim=-1) / counts
    return per_seq.mean()


@hyperparameters("SIREN", top_p=probability, top_k=integer(1), quantile=probability)
def siren(
    logits: torch.Tensor,
    mask: torch.Tensor | None = None,
    anchor: float | torch.Tensor = 0.0,
    top_p: float = 0.8,
    top_k: int = 10000,
    quantile: float = 0.8,
) -> torch.Tensor:
    """SIREN ``(H_sel − anchor)²`` (official ``entropy_loss_mse``)."""
    h = siren_selected_entropy(logits, mask, top_p=top_p, top_k=top_k, quantile=quantile)
    return (h - torch.as_tensor(anchor, dtype=h.dtype, device=h.device)) ** 2


@register
class SIREN(Regularizer):
    """SIREN: R = (H_sel − H_anchor)², H_sel the top-p entropy of each response's top-entropy tokens.

    Per token the entropy of the renormalized top-p nucleus (p = 0.8, within
    the top 10 000 logits); only the tokens above the 0.8 quantile of their
    response count; mean per response, mean over responses; the penalty is
    the squared gap to the anchor, H_sel of the first batch seen (a buffer,
    ``state_dict`` keeps it; ``reset_anchor()`` re-arms it). Default weight
    0.005 (the official ``entropy_coeff``). Call ``reg(logits, response_mask)``
    on (B, T, V) policy logits, added to the policy loss.
    """

    name = "siren"
    kind = "output"
    paper = PAPER
    formula = "R = (H_sel − H_anchor)²,  H_sel = mean_seq mean_{tokens above q-quantile} H_top-p(token)"
    function = siren
    call_args = ("mask", "anchor")
    default_weight = 0.005
    num_inputs = 1
    claims = (
        Claim(
            "Selective, anchored entropy regularization improves RLVR on math reasoning over naive entropy bonuses",
            testable=False,
            untestable_reason="the claim is RL with verifiable rewards on 7B language models (AIME, MATH500); the "
            "lab has no RL task and no language-model policy",
            source="Jiang et al. 2025, Table 1 (maj@k and pass@k on five math benchmarks)",
        ),
    )

    def _init_from_values(self, values) -> None:
        super()._init_from_values(values)
        self.register_buffer("anchor", torch.tensor(0.0))
        self.register_buffer("anchored", torch.tensor(False))

    def reset_anchor(self) -> None:
        """Forget the anchor: the next call sets it again."""
        self.anchored.fill_(False)

    def penalty(self, logits: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        h = siren_selected_entropy(logits, mask, top_p=self.top_p, top_k=self.top_k, quantile=self.quantile)
        if h.is_meta:  # shape inference on the meta device: no value to anchor to, the anchor is left as it is
            return (h - self.anchor.to(device=h.device, dtype=h.dtype)) ** 2
        if not bool(self.anchored):
            self.anchor.fill_(float(h.detach()))
            self.anchored.fill_(True)
        return (h - self.anchor.to(h.dtype)) ** 2
