"""DropPos: reconstruct dropped positions (Wang et al., NeurIPS 2023).

Among the visible tokens, the position embeddings of a random fraction are dropped
(replaced by a learned mask token); a head without position embeddings predicts, for each
visible token, logits over the L absolute positions. The loss is a soft-label cross-entropy
over the dropped tokens only, with Gaussian-smoothed position targets::

    W_ij = exp(−‖(r_i, c_i) − (r_j, c_j)‖² / σ²),  y_v = S[ids_keep_v]
    L_pos = Σ_v m_v · (−Σ_ℓ y_vℓ log softmax(pred_v)_ℓ) / Σ_v m_v

``S`` is W with each row normalised to sum 1 (the paper: a smoothed label distribution;
default ``normalize="row"``). The official code, Haochen-Wang409/DropPos ``engine_pretrain.py``
``_get_label_smoothing_map``, returns ``W / W.sum(-1)``, which broadcasts the row sums over
the last dimension and so divides *column* j by its sum: for a symmetric W the map is
column-normalised and its rows do not sum to 1 (14×14, σ=1: 0.886–1.110);
``normalize="column"`` reproduces it.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from reglab.core import Baseline, Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.ops import check_int, check_tensor, has_data, hyperparameters, no_autocast, non_negative, one_of, probability

__all__ = ["droppos", "droppos_smoothing_map", "droppos_masks", "droppos_sigma", "DropPos"]

PAPER = Paper(
    "DropPos: Pre-Training Vision Transformers by Reconstructing Dropped Positions",
    "Wang, Fan, Wang, Song, Wang, Zhang", 2023, arxiv="2309.03576", venue="NeurIPS",
    code="https://github.com/Haochen-Wang409/DropPos",
)

WHO = "DropPos"


def _width(who: str, name: str, value: Any) -> Any:
    if value is not None:
        check_int(who, name, value, 1)
    return value


def droppos_smoothing_map(
    num_patches: int,
    sigma: float = 1.0,
    *,
    normalize: str = "row",
    width: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The (L, L) smoothed target map ``S`` of DropPos: W_ij = exp(−d²_ij/σ²) on the patch grid
    (patch i at (i // w, i % w), w = ``width`` or √L), rows normalised (``"row"``, the paper's
    label distribution) or columns (``"column"``, the official ``W / W.sum(-1)``); σ = 0 gives I."""
    check_int(WHO, "num_patches", num_patches, 1)
    _check_normalize(normalize)
    w = width if width is not None else math.isqrt(num_patches)
    if w < 1 or num_patches % w or (width is None and w * w != num_patches):
        raise RegularizerInputError(
            f"{WHO} lays the {num_patches} positions on a grid of width {w}: give a square number of positions "
            f"or a grid_width that divides it"
        )
    if sigma == 0:
        return torch.eye(num_patches, dtype=dtype, device=device)
    i = torch.arange(num_patches, dtype=torch.float64)
    r, c = torch.div(i, w, rounding_mode="floor"), i % w
    d2 = (r[:, None] - r[None, :]) ** 2 + (c[:, None] - c[None, :]) ** 2
    weight = torch.exp(-d2 / sigma**2)
    s = weight / weight.sum(-1, keepdim=True) if normalize == "row" else weight / weight.sum(0, keepdim=True)
    return s.to(dtype=dtype, device=device)


def _check_normalize(value: object) -> None:
    if value not in ("row", "column"):
        raise RegularizerInputError(f"{WHO} expects normalize to be one of ['row', 'column'], got {value!r}")


@hyperparameters(WHO, sigma=non_negative, normalize=one_of("row", "column"), grid_width=_width)
def droppos(
    pred: torch.Tensor,
    ids_keep: torch.Tensor,
    mask_pos: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    sigma: float = 1.0,
    normalize: str = "row",
    grid_width: int | None = None,
) -> torch.Tensor:
    """DropPos's position-reconstruction loss (Wang et al., 2023; official ``forward_drop_pos_loss``).

    ``pred`` (N, V, L): logits over the L positions for each of the V visible tokens;
    ``ids_keep`` (N, V): each visible token's true position in [0, L); ``mask_pos`` (N, V):
    1 where the token's position embedding was dropped (only those count); ``weights``
    (N, V), optional: the attention guide (``attn_guide``), multiplied into ``mask_pos``.
    Returns ``Σ m·(−Σ_ℓ y log softmax(pred)) / Σ m`` with y = S[ids_keep]
    (``droppos_smoothing_map``, σ = 1 from ``scripts/pretrain_base.sh``; decay it with
    ``droppos_sigma``).
    """
    check_tensor(WHO, pred, arg="pred (position logits)", ndim=3)
    n, v, length = pred.shape
    check_tensor(WHO, ids_keep, arg="ids_keep", ndim=2, floating=False)
    if ids_keep.is_floating_point() or ids_keep.is_complex() or ids_keep.dtype == torch.bool:
        raise RegularizerInputError(f"{WHO} expects integer ids_keep (positions), got dtype {ids_keep.dtype}")
    if tuple(ids_keep.shape) != (n, v):
        raise RegularizerInputError(
            f"{WHO} expects ids_keep of shape (N, V) = {(n, v)} to match pred {tuple(pred.shape)}, "
            f"got {tuple(ids_keep.shape)}"
        )
    if length < 2:
        raise RegularizerInputError(f"{WHO} needs at least 2 positions in pred's last dimension, got {tuple(pred.shape)}")
    if has_data(ids_keep):
        lo, hi = int(ids_keep.min()), int(ids_keep.max())
        if lo < 0 or hi >= length:
            raise RegularizerInputError(
                f"{WHO} expects ids_keep in [0, {length}) (the positions of pred), got values in [{lo}, {hi}]"
            )
    m = _mask(mask_pos, (n, v), "mask_pos")
    if weights is not None:
        m = m * _mask(weights, (n, v), "weights").to(m.dtype)
    dtype = torch.promote_types(torch.promote_types(pred.dtype, torch.float32), m.dtype)
    if has_data(m) and not bool(m.sum() > 0):
        raise RegularizerInputError(
            f"{WHO} got no dropped position (mask_pos{' · weights' if weights is not None else ''} sums to 0): "
            f"the loss averages over dropped positions"
        )
    with no_autocast(pred):
        logp = pred.to(dtype).log_softmax(dim=-1)
        smooth = droppos_smoothing_map(length, sigma, normalize=normalize, width=grid_width, dtype=dtype,
                                       device=pred.device)
        y = smooth[ids_keep.long()]  # (N, V, L): row ids_keep of S
        m = m.to(dtype)
        return ((-y * logp).sum(-1) * m).sum() / m.sum()


def _mask(x: object, shape: tuple[int, int], arg: str) -> torch.Tensor:
    check_tensor(WHO, x, arg=arg, ndim=2, floating=False)
    assert isinstance(x, torch.Tensor)
    if tuple(x.shape) != shape:
        raise RegularizerInputError(f"{WHO} expects {arg} of shape (N, V) = {shape}, got {tuple(x.shape)}")
    if x.dtype == torch.bool or not (x.is_floating_point()):
        x = x.float()
    if has_data(x) and bool((x < 0).any()):
        raise RegularizerInputError(f"{WHO} expects a non-negative {arg}, got a minimum of {float(x.min())}")
    return x


def droppos_masks(
    batch: int,
    num_patches: int,
    *,
    mask_ratio: float = 0.75,
    pos_mask_ratio: float = 0.75,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DropPos's two random maskings (official ``random_masking``, called twice):
    keep V = int(L·(1 − mask_ratio)) patches (``ids_keep`` (N, V), in the random order the
    official code keeps them), then drop the positions of V − int(V·(1 − pos_mask_ratio))
    of them (``mask_pos`` (N, V) float, 1 = position dropped). Defaults 0.75 / 0.75 from
    ``scripts/pretrain_base.sh``."""
    check_int(WHO, "batch", batch, 1)
    check_int(WHO, "num_patches", num_patches, 1)
    probability(WHO, "mask_ratio", mask_ratio)
    probability(WHO, "pos_mask_ratio", pos_mask_ratio)
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    v = int(num_patches * (1 - mask_ratio))
    if v < 1:
        raise RegularizerInputError(f"{WHO} keeps no patch: num_patches={num_patches}, mask_ratio={mask_ratio}")
    ids_keep = torch.argsort(torch.rand(batch, num_patches, generator=g), dim=1)[:, :v]
    keep_pos = int(v * (1 - pos_mask_ratio))
    order = torch.argsort(torch.rand(batch, v, generator=g), dim=1)
    mask_pos = torch.ones(batch, v)
    mask_pos.scatter_(1, order[:, :keep_pos], 0.0)
    return ids_keep, mask_pos


def droppos_sigma(epoch: int, epochs: int, sigma: float = 1.0) -> float:
    """The official ``--sigma_decay`` schedule: σ_epoch = (1 − epoch/epochs)·σ₀ (linear to 0)."""
    check_int(WHO, "epochs", epochs, 1)
    return (1.0 - epoch / epochs) * sigma


@register
class DropPos(Regularizer):
    """DropPos: predict the dropped position of each visible token, with smoothed targets.

    ``reg(pred, ids_keep, mask_pos[, weights])`` is ``weight·L_pos``::

        S = rownorm(exp(−‖g_i − g_j‖²/σ²))  (g: grid coordinates of the L positions)
        L_pos = Σ_{b,v} m_{b,v}·(−Σ_ℓ S[ids_keep_{b,v}, ℓ]·log softmax(pred_{b,v})_ℓ) / Σ m

    with ``m = mask_pos`` (1 = position embedding dropped), times the attention guide
    ``weights`` when given. The position head must not see position embeddings.

    Defaults: σ = 1 (``--label_smoothing_sigma``; decay it linearly to 0 over training with
    ``droppos_sigma``, the official ``--sigma_decay``), weight 1 (the default script
    trains on L_pos alone; ``multi_task`` uses 0.05 next to an MAE loss), mask ratios 0.75 / 0.75
    in ``droppos_masks`` (``scripts/pretrain_base.sh``). ``normalize="row"`` makes each
    target a distribution, as the paper describes; the official code's map is
    column-normalised (``W / W.sum(-1)`` on a symmetric W), ``normalize="column"``.

    Wang et al. (2023), NeurIPS, arXiv:2309.03576.
    """

    name = "droppos"
    kind = "output"
    paper = PAPER
    formula = "Σ m·(−Σ_ℓ S[pos]_ℓ log softmax(pred)_ℓ) / Σ m,  S = rownorm(exp(−‖g_i−g_j‖²/σ²))"
    num_inputs = 3
    function = droppos
    call_args = ("weights",)
    claims = (
        Claim(
            "Reconstructing dropped positions as an auxiliary loss improves classification accuracy",
            task="positions", metric="test_accuracy", direction="higher", arm={"name": "droppos", "weight": 0.05},
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(
                Baseline("learned positions, CE only", why="the plain transformer"),
                Baseline("position dropping without reconstruction", {"name": "droppos", "weight": 0.0},
                         why="the same 75% position dropping (a mask token), no loss: isolates the objective"),
            ),
            settings="an auxiliary loss (weight 0.05, the official multi_task pos_weight) next to CE on a tiny "
            "transformer (d 32, 2 layers) over 8×8 digits as 16 tokens, instead of ViT-B/16 pre-training on "
            "ImageNet; no patch masking (mask_ratio 0: the classifier needs every token), pos_mask_ratio 0.75 and "
            "σ=1 decayed to 0 are the official defaults; row-normalised targets; developed on seeds 0-4",
            source="Wang et al. 2023, Tables 1 and 6 (DropPos improves downstream accuracy)",
        ),
        Claim(
            "DropPos makes the model robust to missing position information",
            task="positions", metric="dropped_position_accuracy", direction="higher",
            arm={"name": "droppos", "weight": 0.05}, role="mechanism",
            min_effect=0.02, min_effect_reason="two points of test accuracy with 75% of the positions dropped",
            baselines=(
                Baseline("learned positions, CE only"),
                Baseline("position dropping without reconstruction", {"name": "droppos", "weight": 0.0}),
            ),
            settings="as above; at test time the positions of 75% of the tokens are dropped (the mask token, or "
            "no position for the plain model)",
            source="Wang et al. 2023, Sec. 4 (the model must reason about positions from visual content)",
        ),
        Claim(
            "DropPos pre-training outperforms MAE pre-training on ImageNet fine-tuning, detection and segmentation",
            testable=False,
            untestable_reason="needs 800-epoch ViT-B/16 self-supervised pre-training on ImageNet and downstream "
            "COCO/ADE20k fine-tuning",
        ),
    )
