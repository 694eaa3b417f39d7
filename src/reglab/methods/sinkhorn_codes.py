"""Uniform code assignment by Sinkhorn balancing (RepCONC, Zhan et al., WSDM 2022).

Product-quantization codes assigned under a constraint that every centroid of
every sub-space receives the same share of the batch, instead of each
sub-vector's nearest centroid: an entropic optimal-transport assignment
(the "constrained clustering" of RepCONC; OptVQ uses the same idea). Pinned
from jingtaozhan/RepCONC (``src/repconc/models/repconc/modeling_repconc.py``:
``quantize``, ``center_distance_for_constraint``, ``sinkhorn_algorithm``):

1. d[m, b, k] = ‖e_b^{(m)} − c_{m,k}‖² for the M sub-vectors of each embedding;
2. per sub-space, centred and scaled over the batch (all ranks) and the K
   codes: mid = (max + min)/2, amp = max − mid + 1e-5, d̃ = (d − mid)/amp;
3. Q = exp(−d̃/ε) (float64), Q /= ΣQ, then ``iters`` times: each code's row
   to 1/K (summed over all ranks' samples), each sample's column to 1/B;
4. codes = argmax_k Q[m, k, b].

Defaults ε = 0.003 and 100 iterations (``--sk_epsilon 0.003 --sk_iters 100`` in
``examples/ance/msmarco-passage/repconc/7_run_conc_train.sh``). Computed without
gradient; used at training time only (indexing uses nearest centroids). The official code
computes the distances and their centring in float32 and casts to float64 before the exponential;
here everything is float64 (the same codes up to float32 rounding of near-ties).
"""

from __future__ import annotations

import torch

from reglab.core import Baseline, Claim, FunctionModule, Paper, RegularizerInputError, register
from reglab.core.distributed import agree, is_distributed
from reglab.ops import check_tensor, has_data, hyperparameters, integer, positive

PAPER = Paper(
    "Learning Discrete Representations via Constrained Clustering for Effective and Efficient Dense Retrieval",
    "Zhan, Mao, Liu, Guo, Zhang, Ma", 2022, arxiv="2110.05789", venue="WSDM",
    code="https://github.com/jingtaozhan/RepCONC")


def _all_reduce(x: torch.Tensor, op: str, active: bool) -> torch.Tensor:
    if active:
        import torch.distributed as dist

        dist.all_reduce(x, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op])
    return x


@torch.no_grad()
@hyperparameters("SinkhornCodes", epsilon=positive, iters=integer(0))
def sinkhorn_codes(
    embeddings: torch.Tensor, codebook: torch.Tensor, epsilon: float = 0.003, iters: int = 100, *, gather: bool = True
) -> torch.Tensor:
    """RepCONC's balanced PQ codes (B, M) of ``embeddings`` (B, D) under ``codebook`` (M, K, D/M).

    ``gather=True``: under DDP the centring range and the per-code sums run
    over every rank's batch (all-reduce, as the official code does); the
    per-sample normalization is local. ``iters=0`` gives the nearest-centroid
    codes (the softmax of −d̃/ε has the argmax of −d).
    """
    who = "SinkhornCodes"
    active = gather and is_distributed()
    with agree(who, enabled=active) as agreed:
        check_tensor(who, embeddings, arg="embeddings", ndim=2, nonempty=not active)
        check_tensor(who, codebook, arg="codebook", ndim=3)
        m, k, sub = codebook.shape
        if embeddings.shape[1] != m * sub:
            raise RegularizerInputError(
                f"{who} expects embeddings of dimension M·D/M = {m}·{sub} = {m * sub} for a codebook of shape "
                f"(M, K, D/M) = {tuple(codebook.shape)}, got embeddings of shape {tuple(embeddings.shape)}"
            )
        agreed.describe("embeddings", embeddings)
    sizes = agreed.sizes[0] if agreed.sizes else [embeddings.shape[0]]
    total = sum(sizes)
    if total == 0:
        raise RegularizerInputError(f"{who} got an empty batch of embeddings (shape {tuple(embeddings.shape)})")
    b = embeddings.shape[0]
    e = embeddings.detach().double().reshape(b, m, 1, sub).transpose(0, 1)  # M, B, 1, D/M
    d = (e - codebook.detach().double().unsqueeze(1)).pow(2).sum(-1)  # M, B, K
    big = torch.finfo(torch.float64).max
    hi = d.amax(dim=(1, 2)) if b else torch.full((m,), -big, dtype=d.dtype, device=d.device)
    lo = d.amin(dim=(1, 2)) if b else torch.full((m,), big, dtype=d.dtype, device=d.device)
    hi, lo = _all_reduce(hi, "max", active), _all_reduce(lo, "min", active)
    if has_data(hi) and not bool(torch.isfinite(hi).all()):
        raise RegularizerInputError(f"{who}: squared distances overflow float64; rescale the embeddings or codebook")
    mid = (hi + lo) / 2
    amp = hi - mid + 1e-5
    centred = (d - mid[:, None, None]) / amp[:, None, None]
    q = torch.exp(-centred.transpose(1, 2) / epsilon)  # M, K, B
    q = q / _all_reduce(q.sum(dim=(1, 2), keepdim=True), "sum", active)
    for _ in range(iters):
        q = q / _all_reduce(q.sum(dim=2, keepdim=True), "sum", active) / k  # each code: 1/K of the mass
        q = q / q.sum(dim=1, keepdim=True) / total  # each sample: 1/B
    return q.argmax(dim=1).T.contiguous()  # B, M


@register
class SinkhornCodes(FunctionModule):
    """RepCONC's uniform (Sinkhorn) assignment of product-quantization codes during training.

    Replaces argmin-distance code assignment with an entropic optimal-transport
    assignment in which every centroid of every sub-space gets an equal share
    of the batch (Zhan et al., 2022), which keeps the codebook from collapsing
    onto a few centroids: ``codes = sinkhorn_codes(embeddings, codebook)`` with
    ``embeddings`` (B, D) and ``codebook`` (M, K, D/M); decode with
    ``codebook[arange(M), codes]``. Defaults ε = 0.003 on distances centred to
    [−1, 1], 100 iterations (the official training script). The uniform
    marginal is over the batch: batches smaller than K force near-random codes.
    Under DDP (``gather=True``) the balance is over the global batch.
    """

    name = "sinkhorn_codes"
    kind = "representation"
    form = "transform"
    takes_embedding_batches = False
    paper = PAPER
    formula = "codes = argmax_k Sinkhorn(exp(−d̃/ε)) with marginals 1/K per code, 1/B per sample (per sub-space)"
    function = sinkhorn_codes
    _settings = (
        "a VQ autoencoder on 8×8 digits (encoder 64-128-16 cut into 4 tokens of 4 dims, one shared codebook of 64 "
        "codes, decoder 16-128-64, MSE + VQ loss with β = 0.25; Adam, batch 128 images = 512 tokens, 40 epochs; best "
        "validation epoch) instead of a dense retriever's PQ on MS MARCO: one sub-space (M = 1), training tokens "
        "take the balanced codes, evaluation the nearest code; ε = 0.003 and 100 iterations as the official script"
    )
    _plain = Baseline("plain VQ (taming init)", why="the VQ every remedy is added to: a learnable codebook, "
                      "uniform(±1/K) init")
    claims = (
        Claim(
            "Balanced (Sinkhorn) assignment during training spreads the codes more evenly (higher code perplexity)",
            task="vq_code", metric="perplexity", direction="higher", role="mechanism",
            min_effect=6.4, min_effect_reason="a tenth of the codebook size (64 codes) in effective codes used",
            baselines=(_plain,), datasets=("digits",), settings=_settings,
            source="Zhan et al. 2022, Sec. 4.2 (the uniform clustering constraint avoids imbalanced code assignment)",
        ),
        Claim(
            "Balanced (Sinkhorn) assignment during training makes the quantized code more informative (linear "
            "probe on the quantized train codes)",
            task="vq_code", metric="probe_accuracy", direction="higher",
            min_effect=0.01, min_effect_reason="one point of probe accuracy",
            baselines=(_plain,), datasets=("digits",),
            settings=_settings + "; the probe's accuracy stands in for retrieval effectiveness (no ranking task "
            "trains a quantizer in the lab)",
            source="Zhan et al. 2022, Table 5 (ablation: the constraint improves ranking effectiveness of the "
            "quantized embeddings)",
        ),
    )
