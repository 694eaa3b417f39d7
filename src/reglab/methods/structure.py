"""STRUCTURE: keep the neighbourhood geometry of a frozen encoder's latent space while aligning it
(Gröger, Wen, Le, Brbić, NeurIPS 2025).

For a batch, x̂ = row-normalized embeddings, centred by the batch mean
(``centering=mean`` after normalization); S = x̂x̂ᵀ/τ; P = row-softmax(S), for
the frozen encoder's features (P_o) and the aligned projection (P_a). With
P^l the l-step random walk (matrix power) and M^l = ½(P_o^l + P_a^l),

    R = (1/L) Σ_{l=1..L} w_l · relu(JS_l − margin),
    JS_l = ½[KL(M^l+ε ‖ P_a^l+ε) + KL(M^l+ε ‖ P_o^l+ε)]   (KL summed over entries, divided by the batch size)

w_l = 1 (``weighting="none"``) or 1/l (``"inverse"``), ε = 1e-12. Pinned
from the authors' code (NeurIPS 2025 release, mirrored at hhxk233/STRUCTURE
@ 644898a8 and shiwonkim/structure @ f32ec8d1): ``src/loss/clip_loss.py``
``structure_reg`` (the whole formula) and ``CLIPLoss.forward`` (added to the
CLIP loss as λ·½(R_image + R_text), λ warmed up linearly);
defaults from ``configs/_reference_structure/default_original.yaml``
(``clip_loss``: temperature 0.05 — the CLIP temperature is reused —,
structure_lambda 10, structure_levels 1, weighting "none", margin 0,
warmup_steps 1000).
"""

from __future__ import annotations

import torch

from reglab.core import Claim, Paper, RegularizerInputError, RepresentationRegularizer, register
from reglab.core.distributed import agree, is_distributed
from reglab.ops import hyperparameters, integer, no_autocast, non_negative, normalize_rows, one_of, positive, prepare_batch

__all__ = ["structure", "Structure"]

PAPER = Paper(
    "With Limited Data for Multimodal Alignment, Let the STRUCTURE Guide You", "Gröger, Wen, Le, Brbić", 2025,
    arxiv="2506.16895", venue="NeurIPS", code="https://github.com/hhxk233/STRUCTURE")

EPS = 1e-12


def _walk(x: torch.Tensor, temperature: float) -> torch.Tensor:
    """Row-softmax of the cosine similarities of the normalized, batch-centred rows."""
    xn = normalize_rows(x)
    xn = xn - xn.mean(dim=0, keepdim=True)
    return torch.softmax(xn @ xn.T / temperature, dim=-1)


def _kl_rows(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``F.kl_div((q + ε).log(), p + ε, reduction="batchmean")``: Σ (p+ε)(log(p+ε) − log(q+ε)) / n."""
    pe = p + EPS
    return (pe * (pe.log() - (q + EPS).log())).sum() / p.shape[0]


@hyperparameters("STRUCTURE", levels=integer(1), temperature=positive, margin=non_negative,
                 weighting=one_of("none", "inverse"))
def structure(
    aligned: torch.Tensor, original: torch.Tensor, *, levels: int = 1, temperature: float = 0.05,
    weighting: str = "none", margin: float = 0.0, gather: bool = True,
) -> torch.Tensor:
    """STRUCTURE regularizer between the aligned embeddings (n, d_a) and the frozen encoder's (n, d_o)
    of the same samples (authors' ``structure_reg``). A batch statistic (softmax over the batch):
    with ``gather=True`` both batches are all-gathered under DDP."""
    who = "STRUCTURE"
    with agree(who, enabled=gather and is_distributed()):
        if isinstance(aligned, torch.Tensor) and isinstance(original, torch.Tensor) and aligned.shape[:1] != original.shape[:1]:
            raise RegularizerInputError(
                f"{who} expects one frozen embedding per aligned embedding, got {tuple(aligned.shape)} and "
                f"{tuple(original.shape)}")
    a = prepare_batch(who, aligned, arg="aligned embeddings", gather=gather)
    o = prepare_batch(who, original, arg="original embeddings", gather=gather).to(a.dtype)
    with no_autocast(a):
        pa, po = _walk(a, temperature), _walk(o, temperature)
        total = a.new_zeros(())
        ma, mo = pa, po
        for level in range(1, levels + 1):
            if level > 1:
                ma, mo = ma @ pa, mo @ po
            m = 0.5 * (ma + mo)
            js = 0.5 * (_kl_rows(m, ma) + _kl_rows(m, mo))
            js = torch.relu(js - margin)
            total = total + (js / level if weighting == "inverse" else js)
        return total / levels


@register
class Structure(RepresentationRegularizer):
    """STRUCTURE: Jensen-Shannon divergence between the batch's random-walk neighbourhoods
    (row-softmax of centred cosine similarities / τ, and their powers) in a frozen encoder's
    space and in the aligned space.

    Call ``reg(aligned, original)`` per modality (the paper averages the image and text terms)
    and add it to the alignment (CLIP) loss. Defaults (authors' reference config): τ = 0.05
    (the CLIP temperature), L = 1 level, no level weighting, margin 0, weight λ = 10; the
    authors warm λ up linearly over 1000 steps (use a reglab schedule on ``weight``).
    A batch statistic: all-gathered under DDP.

    Gröger, Wen, Le & Brbić (2025), NeurIPS, arXiv:2506.16895.
    """

    name = "structure"
    paper = PAPER
    formula = "(1/L) Σ_l w_l·relu(JS(P_o^l ‖ P_a^l) − m), P = softmax(x̂x̂ᵀ/τ), x̂ normalized and centred"
    function = structure
    num_inputs = 2
    default_weight = 10.0
    takes_embedding_batches = False  # aligned vs frozen features of different sizes: its own tests cover them
    claims = (
        Claim(
            "Preserving each unimodal space's neighbourhoods lets frozen encoders be aligned from few pairs "
            "(+51.6% classification, +91.8% retrieval, relative)",
            testable=False,
            untestable_reason="needs two frozen unimodal encoders and a paired cross-modal retrieval/zero-shot "
            "evaluation; no lab task aligns two frozen feature spaces, and adding a cross-modal task was out of "
            "this change's budget",
        ),
    )
