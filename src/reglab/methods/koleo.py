"""KoLeo: the Kozachenko–Leonenko differential-entropy regularizer (Sablayrolles et al., ICLR 2019).

x_i = z_i / ‖z_i‖₂ and ρ_i = min_{j≠i} ‖x_i − x_j‖₂, the distance from each
normalized embedding to its nearest other row of the batch;
L = −(1/n) Σ_i log(ρ_i + ε). Minimizing it spreads the batch over the sphere
(it maximizes the Kozachenko–Leonenko estimate of the differential entropy).
This is the form of DINOv2 (Oquab et al. 2023, ``dinov2/loss/koleo_loss.py``);
the paper's −(1/n) Σ log(n·ρ_i) differs by the constant log n (same gradient).
"""

from __future__ import annotations

import torch

from reglab.core import (
    BEIR_ADAPTER_SETTINGS, Baseline, Baselines, Claim, Paper, RegularizerInputError, RepresentationRegularizer, register,
)
from reglab.core.distributed import agree, all_gather_nograd
from reglab.ops import check_tensor, has_data, hyperparameters, no_autocast, normalize_rows, positive, prepare_batch

PAPER = Paper(
    "Spreading vectors for similarity search", "Sablayrolles, Douze, Schmid, Jégou", 2019,
    arxiv="1806.03198", venue="ICLR", code="https://github.com/facebookresearch/spreadingvectors")


def _check_ids(who: str, ids: object, rows: int, gather: bool) -> torch.Tensor:
    """This rank's ids (one per local row) checked in one agreement over ranks, then gathered."""
    with agree(who, enabled=gather) as agreed:
        check_tensor(who, ids, arg="ids", ndim=1, floating=False, finite=False, nonempty=False)
        assert isinstance(ids, torch.Tensor)
        if ids.is_floating_point() or ids.is_complex():
            raise RegularizerInputError(f"{who} expects integer ids (one per row; equal ids = positives), got dtype {ids.dtype}")
        if ids.shape[0] != rows:
            raise RegularizerInputError(f"{who} expects one id per embedding ({rows}), got ids of shape {tuple(ids.shape)}")
        agreed.describe("ids", ids)
    return all_gather_nograd(ids, sizes=agreed.sizes[0]) if agreed.sizes else ids


@hyperparameters("KoLeo", eps=positive)
def koleo(z: torch.Tensor, *, eps: float = 1e-8, ids: torch.Tensor | None = None, gather: bool = True) -> torch.Tensor:
    """KoLeo loss ``−(1/n) Σ_i log(min_{j≠i} ‖x_i − x_j‖₂ + ε)``, ``x = z/‖z‖₂`` per row.

    DINOv2's form (``KoLeoLoss``: ε = 1e-8 in the normalization and in the
    log). The nearest neighbour is found without gradient (the argmax of
    ``⟨x_i, x_j⟩``, j ≠ i); the gradient flows through both endpoints of
    each distance. Identical rows give ρ = 0 and a finite term −log ε.

    ``ids`` (optional, integer, one per row): rows with equal ids are
    positives (views of the same image) and never each other's neighbour,
    the SSCD variant (Pizzi et al. 2022): the distance to the nearest
    *non-matching* sample. ``gather=True`` (the default, reglab's one rule for
    batch statistics) searches the neighbours in the global batch under DDP, as
    SSCD does; DINOv2 searches each rank's batch: ``gather=False``.
    """
    who = "KoLeo"
    local_rows = z.shape[0] if isinstance(z, torch.Tensor) and z.ndim else 0
    z = prepare_batch(who, z, gather=gather)
    n = z.shape[0]
    if ids is not None:
        ids = _check_ids(who, ids, local_rows, gather).to(z.device)
    with no_autocast(z):
        x = normalize_rows(z, eps)
        with torch.no_grad():
            sim = x @ x.T
            sim.fill_diagonal_(float("-inf"))
            if ids is not None:
                sim.masked_fill_(ids[:, None] == ids[None, :], float("-inf"))
                if has_data(sim) and not bool(torch.isfinite(sim.amax(dim=1)).all()):
                    raise RegularizerInputError(
                        f"{who} got ids that leave a row without any non-matching row to be its neighbour "
                        f"({int(torch.unique(ids).numel())} distinct ids for {n} rows); it needs at least 2 distinct ids"
                    )
            nearest = sim.argmax(dim=1)
        rho = torch.linalg.vector_norm(x - x[nearest], dim=1)
        return -torch.log(rho + eps).mean()


@register
class KoLeo(RepresentationRegularizer):
    """KoLeo: spread embeddings by pushing each one away from its nearest neighbour in the batch.

    x_i = z_i/‖z_i‖₂, ρ_i = min_{j≠i} ‖x_i − x_j‖₂ and
    L = −(1/n) Σ_i log(ρ_i + ε), the Kozachenko–Leonenko differential-entropy
    estimator up to constants (Sablayrolles et al., 2019).

    Defaults: ε = 1e-8 and ``weight`` = 0.1 are DINOv2's
    (``dino.koleo_loss_weight`` in ``dinov2/configs/ssl_default_config.yaml``;
    the loss in ``dinov2/loss/koleo_loss.py``). Other published weights:
    0.05 (spreadingvectors ``--lambda_uniform``, with a triplet loss) and
    30 (SSCD ``--entropy_weight``, with InfoNCE at temperature 0.05): the
    weight is relative to the task loss it is added to. The paper writes
    −(1/n) Σ log(n·ρ_i), which differs by the constant log n.

    Differences from the official code: DINOv2 measures ρ with
    ``nn.PairwiseDistance(eps=1e-8)``, which adds ε to the difference
    vector; here ρ is the exact distance (values agree to 1e-7 except for
    near-identical rows; identical rows give ρ = 0, the term −log ε and no
    gradient between them). SSCD clamps the squared distance at 1e-6
    instead of adding ε in the log (a difference only for rows closer
    than 1e-3).

    ``reg(z, ids=ids)`` excludes positives (rows with equal ``ids``, e.g.
    the two views of one image) from the neighbour search, as SSCD does
    (the sheet's ``exclude_mask``, given as one id per row). Like DINOv2 (which applies it to each
    global crop's chunk of the batch) on each rank's batch, pass ``gather=False``
    under DDP; the default ``gather=True`` uses the global batch (SSCD), as every
    batch-statistic regularizer in reglab does. Bound with ``.on(activations=...)`` to a layer that
    sees two views per step, it is applied to each view's batch separately
    (DINOv2's ``sum(koleo(p) for p in chunk(2))``).

    Sablayrolles, Douze, Schmid & Jégou (2019), ICLR, arXiv:1806.03198.
    """

    name = "koleo"
    paper = PAPER
    formula = "−(1/n) Σ_i log(min_{j≠i} ‖x_i − x_j‖₂ + ε), x = z/‖z‖₂"
    function = koleo
    call_args = ("ids",)
    default_weight = 0.1

    # DINOv2, SSCD and spreadingvectors all add KoLeo to a loss that already trains
    # (DINO/iBOT, InfoNCE, triplet): the lab adds it to VICReg, on the 32-d embedding
    # that is probed and retrieved (DINOv2 puts it on the backbone output).
    _lab = {"bind": "output", "base": "vicreg"}
    _vicreg = Baseline("VICReg alone", why="the working SSL loss KoLeo is added to, as DINOv2 adds it to DINO")
    _uniformity = Baseline(
        "VICReg + uniformity (Wang & Isola, t=2, λ=1)", {"name": "uniformity"},
        why="the other common loss that spreads embeddings on the sphere",
    )
    _settings = (
        "KoLeo (λ = 0.1, DINOv2's weight) added to the full VICReg loss (λ=μ=25, ν=1) on the output of an MLP "
        "encoder 64-256-32 trained on two augmented views of 8×8 digits (Adam, batch 128, 50 epochs), instead of "
        "DINO+iBOT on ViTs (DINOv2) or InfoNCE on ResNets (SSCD); applied to each view's batch separately, as "
        "DINOv2 applies it per global crop; metrics on the L2-normalized test embeddings; developed on seeds 0-4"
    )
    claims = (
        Claim(
            "KoLeo spreads the embeddings: a larger distance from each embedding to its nearest neighbour",
            task="ssl_collapse", metric="nn_distance", direction="higher", task_args=_lab, role="mechanism",
            min_effect=0.02, min_effect_reason="0.02 on the unit sphere, half of VICReg's own nearest-neighbour "
            "distance here (about 0.04)",
            baselines=(_vicreg, _uniformity),
            datasets=("digits", "digits_half"), settings=_settings,
            source="Sablayrolles et al. 2019 (KoLeo maximizes the Kozachenko-Leonenko nearest-neighbour entropy "
            "estimate); Oquab et al. 2023 (DINOv2), the ablation of its loss terms",
        ),
        Claim(
            "KoLeo makes the embeddings more uniform on the sphere (lower Wang & Isola uniformity)",
            task="ssl_collapse", metric="uniformity", direction="lower", task_args=_lab, role="mechanism",
            min_effect=0.1, min_effect_reason="0.1 of log mean exp(−2‖x_i − x_j‖²): 10% less mass on close pairs",
            baselines=(_vicreg,), datasets=("digits", "digits_half"), settings=_settings,
            source="Sablayrolles et al. 2019 (a uniform distribution on the sphere maximizes the entropy KoLeo estimates)",
        ),
        Claim(
            "Adding KoLeo does not hurt the linear probe",
            task="ssl_collapse", metric="linear_probe_accuracy", direction="higher", task_args=_lab,
            kind="non-inferiority", min_effect=0.01, min_effect_reason="one point of probe accuracy",
            baselines=(_vicreg,), datasets=("digits", "digits_half"), settings=_settings,
            control=Baseline(
                "invariance only (VICReg's variance and covariance terms dropped)", task_args={"base": "invariance"},
                why="negative control: the collapsing loss, whose probe the same test must reject",
            ),
            source="Oquab et al. 2023 (DINOv2), ablation of the KoLeo term: linear classification about unchanged",
        ),
        Claim(
            "KoLeo improves same-class retrieval (recall@1) from a binary database (1 bit per dimension)",
            task="ssl_collapse", metric="recall_binary", direction="higher", task_args=_lab,
            min_effect=0.01, min_effect_reason="one point of recall@1",
            baselines=(_vicreg, _uniformity), datasets=("digits", "digits_half"), settings=_settings + "; the "
            "train split is the database, test images the queries (float, asymmetric search); 1-bit codes per "
            "dimension (above/below the train mean, decoded to each side's mean) instead of the paper's lattice "
            "and scalar quantizers, because 8-bit and 4-bit scalar codes lose nothing here (dev seeds 0-2: "
            "recall_sq8 and recall_sq4 within 0.01 of float recall for every arm) while 1 bit costs 7-12 points",
            source="Sablayrolles et al. 2019 (KoLeo-trained embeddings lose less to scalar/lattice quantization); "
            "Oquab et al. 2023 (DINOv2), ablation of the KoLeo term (instance retrieval improves)",
        ),
        # the same claims where the representation regularizers meet their application: a retrieval adapter
        # fine-tuned on a real pretrained encoder (MiniLM on BEIR SciFact), judged on test nDCG@10
        Claim(
            "KoLeo on a retrieval adapter fine-tuned on a real encoder improves nDCG@10 from binary codes of the "
            "documents",
            task="beir_adapter", metric="ndcg10_binary", direction="higher",
            min_effect=0.01, min_effect_reason="0.01 nDCG@10, the issue's δ for BEIR comparisons",
            baselines=(Baselines.INFONCE_ADAPTER, Baselines.INFONCE_ADAPTER_UNIFORMITY), datasets=("scifact",),
            settings=BEIR_ADAPTER_SETTINGS + "; KoLeo at DINOv2's λ = 0.1; 1-bit codes (the sign of each "
            "coordinate, Hamming search, no rescoring) instead of the paper's lattice quantizer",
            source="Sablayrolles et al. 2019 (KoLeo-spread embeddings lose less when the database is quantized; "
            "the paper's quantizers are lattice and scalar, binary codes are the lab's extension); Oquab et al. "
            "2023 (DINOv2), KoLeo ablation (retrieval improves)",
        ),
        Claim(
            "KoLeo on a retrieval adapter fine-tuned on a real encoder improves nDCG@10 from 4-bit (LVQ-4) codes "
            "of the documents",
            task="beir_adapter", metric="ndcg10_lvq4", direction="higher",
            min_effect=0.01, min_effect_reason="0.01 nDCG@10, the issue's δ for BEIR comparisons",
            baselines=(Baselines.INFONCE_ADAPTER, Baselines.INFONCE_ADAPTER_UNIFORMITY), datasets=("scifact",),
            settings=BEIR_ADAPTER_SETTINGS + "; KoLeo at DINOv2's λ = 0.1; LVQ-4 (per-vector 4-bit scalar codes, "
            "Aguerrebere et al. 2023) instead of the paper's lattice quantizer",
            source="Sablayrolles et al. 2019, Sec. 5 (KoLeo-spread embeddings lose less to scalar and lattice "
            "quantization of the database)",
        ),
        Claim(
            "KoLeo on a retrieval adapter costs no float32 nDCG@10",
            task="beir_adapter", metric="ndcg10", direction="higher", kind="non-inferiority",
            min_effect=0.01, min_effect_reason="0.01 nDCG@10, the issue's δ for BEIR comparisons",
            baselines=(Baselines.INFONCE_ADAPTER,), datasets=("scifact",), control=Baselines.FROZEN_ENCODER,
            settings=BEIR_ADAPTER_SETTINGS + "; KoLeo at DINOv2's λ = 0.1",
            source="Sablayrolles et al. 2019 (spreading at a small cost in float precision); Oquab et al. 2023 "
            "(DINOv2), KoLeo ablation",
        ),
    )
