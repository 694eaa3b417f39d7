"""SeqPE's two position-encoder regularizers (Li et al., 2025): contrastive position-distance
alignment and out-of-distribution position transfer (distillation).

SeqPE encodes each position as a digit sequence with a small sequential encoder
``PE(·) → R^D``; both terms act on that encoder's outputs only:

* contrastive: for each pivot position p_b and K candidates c_{b,k} ≠ p_b, with the label
  y_b = argmin_k ‖c_{b,k} − p_b‖² (geometry of the positions, not of the PEs),
  ``L_ct = CE(s·⟨PE(p_b), PE(c_{b,k})⟩_k, y_b)``;
* transfer: the softmax of the self-similarities of n PEs of a main-range block [0, k) is the
  teacher of the same n offsets of a shifted block [i, i+k):
  ``L_tr = β·[KL(P_m‖P_t) + KL(P_t‖P_m)] (P_m detached) + (1−β)·[same, P_t detached]``,
  KL with PyTorch's ``reduction='mean'`` (divides by B·n·n).

Total loss = task + 0.1·L_ct + 0.1·L_tr (the official defaults). Everything follows the
official code, ghrua/seqpe ``image_seqpe/models/pe_criterion.py`` (``SeqPeContrastiveCriterion``,
``SeqPeTransferCriterion``) and ``image_seqpe/pe_sampler.py`` (the samplers, here seeded by a
``torch.Generator``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from reglab.core import Baseline, Claim, Paper, RegularizerInputError, RepresentationRegularizer, register
from reglab.core import checks as _checks
from reglab.ops import (
    check_int, check_labels, check_tensor, checked_total, has_data, hyperparameters, integer, no_autocast,
    non_negative, one_of, positive, probability, unit_interval,
)

__all__ = [
    "seqpe_contrastive", "seqpe_transfer", "seqpe_terms", "seqpe", "seqpe_labels",
    "seqpe_contrastive_positions", "seqpe_transfer_positions", "SeqPETerms", "SeqPE",
]  # fmt: skip

PAPER = Paper(
    "SeqPE: Transformer with Sequential Position Encoding",
    "Li, Liu, Sun, Cai, Cui, Bi, Zhao, Watanabe", 2025, arxiv="2506.13277", code="https://github.com/ghrua/seqpe",
)

WHO = "SeqPE"


def _float(who: str, x: object, arg: str, ndim: int | tuple[int, ...]) -> torch.Tensor:
    return check_tensor(who, x, arg=arg, ndim=ndim)  # type: ignore[return-value]


def _promote(*zs: torch.Tensor, scale: float, terms: int) -> tuple[torch.Tensor, ...]:
    """The PEs in one dtype of at least float32 (a bf16/fp16 encoder output is upcast), float64 where
    float32 would overflow: the dot products reach s·D·max|z|² and the loss sums ``terms`` values of
    about twice that (1e20-scale PEs in float32 give 1e40 logits). On an accelerator the magnitude is
    not read; the loss's finite check is queued instead (``checked_total``)."""
    dtype = torch.float32
    for z in zs:
        dtype = torch.promote_types(dtype, z.dtype)
    if dtype == torch.float32 and all(has_data(z) and z.numel() for z in zs) and not _checks.defers(zs[0]):
        largest = max(float(z.detach().abs().max()) for z in zs)
        if scale * zs[0].shape[-1] * largest * largest * 2 * terms > torch.finfo(torch.float32).max * 1e-3:
            dtype = torch.float64
    return tuple(z.to(dtype) for z in zs)


def _heads(who: str, name: str, d: int, heads: int) -> None:
    if d % heads:
        raise RegularizerInputError(f"{who} expects the PE dimension {d} to be divisible by {name}={heads}")


# ---------------------------------------------------------------- contrastive
@hyperparameters(WHO, scale=positive, label_smoothing=probability, heads=integer(1))
def seqpe_contrastive(
    pivot_pe: torch.Tensor,
    candidate_pe: torch.Tensor,
    labels: torch.Tensor,
    *,
    scale: float = 1.0,
    label_smoothing: float = 0.0,
    heads: int = 1,
) -> torch.Tensor:
    """SeqPE's contrastive position-distance loss ``CE(s·⟨PE(p_b), PE(c_{b,k})⟩_k, y_b)``.

    ``pivot_pe`` (B, D); ``candidate_pe`` (B·K, D) (the official flattened layout) or
    (B, K, D); ``labels`` (B,) the index of each pivot's nearest candidate in *position*
    space (``seqpe_labels``). Plain dot products, no normalisation; ``scale`` is
    ``seqpe_logit_scaled_loss`` (1.0), ``label_smoothing`` 0.0 (official defaults).
    ``heads > 1`` is the official ``seqpe_multi_head_loss``: D is split into ``heads``
    blocks, one CE per block (labels repeated), averaged.
    """
    pivot = _float(WHO, pivot_pe, "pivot_pe", 2)
    cand = _float(WHO, candidate_pe, "candidate_pe", (2, 3))
    b, d = pivot.shape
    if cand.shape[-1] != d:
        raise RegularizerInputError(
            f"{WHO} expects candidate_pe with the pivots' dimension {d}, got shape {tuple(cand.shape)}"
        )
    if cand.ndim == 2:
        if cand.shape[0] % b:
            raise RegularizerInputError(
                f"{WHO} expects candidate_pe of B·K rows for B={b} pivots, got {cand.shape[0]} rows"
            )
        cand = cand.reshape(b, cand.shape[0] // b, d)
    elif cand.shape[0] != b:
        raise RegularizerInputError(f"{WHO} expects candidate_pe of shape (B={b}, K, D), got {tuple(cand.shape)}")
    k = cand.shape[1]
    if k < 2:
        raise RegularizerInputError(f"{WHO} needs at least 2 candidates per pivot, got K={k}")
    labels = check_labels(WHO, labels, k, batch=b)
    _heads(WHO, "heads", d, heads)
    pivot, cand = _promote(pivot, cand, scale=scale, terms=b * k * heads)
    with no_autocast(pivot):
        if heads == 1:
            logits = (pivot.unsqueeze(1) @ cand.transpose(1, 2)).reshape(b, k)
            target = labels
        else:
            ph = pivot.reshape(b, 1, heads, d // heads).permute(0, 2, 1, 3)  # [B, H, 1, D/H]
            ch = cand.reshape(b, k, heads, d // heads).permute(0, 2, 1, 3)  # [B, H, K, D/H]
            logits = (ph @ ch.transpose(-1, -2)).reshape(b * heads, k)
            target = labels.unsqueeze(-1).repeat(1, heads).reshape(-1)
        loss = F.cross_entropy(logits * scale, target.long(), label_smoothing=label_smoothing)
    return checked_total(WHO, loss, [pivot_pe, candidate_pe], arg="position encoding")


def seqpe_labels(pivot_positions: torch.Tensor, candidate_positions: torch.Tensor) -> torch.Tensor:
    """The contrastive labels ``argmin_k ‖c_{b,k} − p_b‖²`` from position geometry.

    ``pivot_positions`` (B,) or (B, P) (P = 1 or 2 coordinates); ``candidate_positions``
    (B, K) or (B, K, P). Ties go to the first candidate (``torch.argmin``, as the official
    ``_dist_fn``).
    """
    p = torch.as_tensor(pivot_positions)
    c = torch.as_tensor(candidate_positions)
    if p.ndim == 1:
        p = p[:, None]
    if c.ndim == 2:
        c = c[..., None]
    if c.ndim != 3 or c.shape[0] != p.shape[0] or c.shape[-1] != p.shape[-1]:
        raise RegularizerInputError(
            f"{WHO} labels need pivot positions (B[, P]) and candidate positions (B, K[, P]), "
            f"got shapes {tuple(pivot_positions.shape)} and {tuple(candidate_positions.shape)}"
        )
    dist = ((c.double() - p.double()[:, None, :]) ** 2).sum(-1)
    return dist.argmin(-1)


# ------------------------------------------------------------------- transfer
@hyperparameters(WHO, beta=unit_interval, metric=one_of("kl_div", "mse"), scale=positive, heads=integer(1))
def seqpe_transfer(
    main_pe: torch.Tensor,
    main_indices: torch.Tensor,
    trans_pe: torch.Tensor,
    *,
    beta: float = 0.8,
    metric: str = "kl_div",
    scale: float = 1.0,
    heads: int = 1,
) -> torch.Tensor:
    """SeqPE's transfer (OOD-position distillation) loss.

    ``main_pe`` (L, D) (or (1, L, D)) the PEs of the main-range positions [0, L);
    ``main_indices`` (B, n) long, the offsets sampled in each shifted block;
    ``trans_pe`` (B, n, D) or (B·n, D), the PEs of the shifted positions start_b + offset.
    With M = main_pe[main_indices], T = trans_pe (B, n, D):
    ``P_m = log_softmax(s·MMᵀ)``, ``P_t = log_softmax(s·TTᵀ)`` and, for ``metric="kl_div"``,
    ``β·[kl(P_t, P_m̄) + kl(P_m̄, P_t)] + (1−β)·[kl(P_t̄, P_m) + kl(P_m, P_t̄)]``
    (the bar: detached; ``kl(input, target) = F.kl_div(input, target, log_target=True)``
    with the default ``reduction='mean'``, as the official code). β changes only which side
    is the teacher, not the value. ``metric="mse"``: ``β·mse(P_t, P_m̄) + (1−β)·mse(P_t̄, P_m)``
    on the log-probabilities. ``heads > 1``: D split into heads (the official
    ``seqpe_multi_head_loss``, which the ViT script turns on for this term).
    Default β = 0.8 is the official argparse default (``--seqpe_transfer_beta``).
    """
    main = check_tensor(WHO, main_pe, arg="main_pe", ndim=(2, 3))
    if main.ndim == 3:
        if main.shape[0] != 1:
            raise RegularizerInputError(f"{WHO} expects main_pe of shape (L, D) or (1, L, D), got {tuple(main.shape)}")
        main = main[0]
    check_tensor(WHO, main_indices, arg="main_indices", ndim=2, floating=False)
    idx = main_indices
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise RegularizerInputError(f"{WHO} expects integer main_indices, got dtype {idx.dtype}")
    b, n = idx.shape
    length, d = main.shape
    if n < 2:
        raise RegularizerInputError(f"{WHO} needs at least 2 transfer positions per block, got main_indices {tuple(idx.shape)}")
    if has_data(idx):
        lo, hi = int(idx.min()), int(idx.max())
        if lo < 0 or hi >= length:
            raise RegularizerInputError(
                f"{WHO} expects main_indices in [0, {length}) (the rows of main_pe), got values in [{lo}, {hi}]"
            )
    trans = check_tensor(WHO, trans_pe, arg="trans_pe", ndim=(2, 3))
    if trans.numel() != b * n * d or trans.shape[-1] != d:
        raise RegularizerInputError(
            f"{WHO} expects trans_pe of shape ({b}, {n}, {d}) or ({b * n}, {d}) for main_indices {tuple(idx.shape)} "
            f"and main_pe {tuple(main.shape)}, got {tuple(trans.shape)}"
        )
    _heads(WHO, "heads", d, heads)
    main, trans = _promote(main, trans, scale=scale, terms=b * n * n * heads)
    with no_autocast(main):
        m = main[idx.long().reshape(-1)]
        if heads == 1:
            m, t = m.reshape(b, n, d), trans.reshape(b, n, d)
        else:
            m = m.reshape(b, n, heads, d // heads).permute(0, 2, 1, 3)
            t = trans.reshape(b, n, heads, d // heads).permute(0, 2, 1, 3)
        p_m = F.log_softmax(m @ m.transpose(-1, -2) * scale, dim=-1)
        p_t = F.log_softmax(t @ t.transpose(-1, -2) * scale, dim=-1)

        def kl(inp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            # F.kl_div(inp, target, log_target=True) with reduction='mean' (written out: PyTorch
            # warns that 'mean' will change meaning)
            return (target.exp() * (target - inp)).mean()

        if metric == "mse":
            loss = beta * F.mse_loss(p_t, p_m.detach()) + (1 - beta) * F.mse_loss(p_t.detach(), p_m)
        else:
            loss = beta * (kl(p_t, p_m.detach()) + kl(p_m.detach(), p_t))
            if beta < 1:
                loss = loss + (1 - beta) * (kl(p_t.detach(), p_m) + kl(p_m, p_t.detach()))
    return checked_total(WHO, loss, [main_pe, trans_pe], arg="position encoding")


# ------------------------------------------------------------------ together
class SeqPETerms(NamedTuple):
    contrastive: torch.Tensor
    transfer: torch.Tensor


@hyperparameters(
    WHO, scale=positive, label_smoothing=probability, beta=unit_interval, metric=one_of("kl_div", "mse"),
    contrastive_heads=integer(1), transfer_heads=integer(1),
)
def seqpe_terms(
    pivot_pe: torch.Tensor,
    candidate_pe: torch.Tensor,
    labels: torch.Tensor,
    main_pe: torch.Tensor,
    main_indices: torch.Tensor,
    trans_pe: torch.Tensor,
    *,
    scale: float = 1.0,
    label_smoothing: float = 0.0,
    beta: float = 0.8,
    metric: str = "kl_div",
    contrastive_heads: int = 1,
    transfer_heads: int = 1,
) -> SeqPETerms:
    """The two unweighted terms: ``seqpe_contrastive`` and ``seqpe_transfer``.

    ``contrastive_heads`` = 1 and ``transfer_heads`` = 1 by default; the official ViT run
    uses one head for the contrastive term and the attention's head count for the transfer
    term (``main.py``: ``seqpe_multi_head_loss=False`` / ``True``).
    """
    ct = seqpe_contrastive(
        pivot_pe, candidate_pe, labels, scale=scale, label_smoothing=label_smoothing, heads=contrastive_heads
    )
    tr = seqpe_transfer(main_pe, main_indices, trans_pe, beta=beta, metric=metric, scale=scale, heads=transfer_heads)
    return SeqPETerms(ct, tr)


@hyperparameters(WHO, contrastive_weight=non_negative, transfer_weight=non_negative)
def seqpe(
    pivot_pe: torch.Tensor,
    candidate_pe: torch.Tensor,
    labels: torch.Tensor,
    main_pe: torch.Tensor,
    main_indices: torch.Tensor,
    trans_pe: torch.Tensor,
    *,
    contrastive_weight: float = 0.1,
    transfer_weight: float = 0.1,
    **options: Any,
) -> torch.Tensor:
    """``0.1·L_ct + 0.1·L_tr`` (the official ``--seqpe_contrastive_weight`` and
    ``--seqpe_transfer_weight``); ``options`` go to ``seqpe_terms``."""
    t = seqpe_terms(pivot_pe, candidate_pe, labels, main_pe, main_indices, trans_pe, **options)
    return contrastive_weight * t.contrastive + transfer_weight * t.transfer


# ------------------------------------------------------------------- samplers
def _randint(g: torch.Generator, lo: int, hi: int) -> int:
    """Uniform integer in [lo, hi] (inclusive, as ``random.randint``)."""
    return int(torch.randint(lo, hi + 1, (1,), generator=g))


def _uniform(g: torch.Generator) -> float:
    return float(torch.rand((), generator=g, dtype=torch.float64))


def _sample(g: torch.Generator, pool: list, k: int) -> list:
    """``random.sample(pool, k)``: k distinct entries."""
    return [pool[int(i)] for i in torch.randperm(len(pool), generator=g)[:k]]


def _digit_edit(s: str, limit: int, max_digits: int, g: torch.Generator) -> str | None:
    """One of the official four edits (add / swap / edit / delete a digit) of a decimal string,
    or None where it does not apply or leaves [0, limit) (pe_sampler.py, generate_hard_negatives)."""
    op, n = _randint(g, 1, 4), len(s)
    if op == 1:  # add a digit (no leading zero)
        if n >= max_digits:
            return None
        pos = _randint(g, 0, n)
        r = s[:pos] + str(_randint(g, 1, 9) if pos == 0 else _randint(g, 0, 9)) + s[pos:]
    elif op == 2:  # swap two digits
        if n == 1 or len(set(s)) == 1:
            return None
        i, j = sorted(_sample(g, list(range(n)), 2))
        r = s[:i] + s[j] + s[i + 1:j] + s[i] + s[j + 1:]
        if r[0] == "0" or r == s:
            return None
    elif op == 3:  # edit a digit
        pos, digit = _randint(g, 0, n - 1), _randint(g, 0, 9)
        if (pos == 0 and digit == 0 and n > 1) or str(digit) == s[pos]:
            return None
        r = s[:pos] + str(digit) + s[pos + 1:]
    else:  # delete a digit
        if n == 1:
            return None
        pos = _randint(g, 0, n - 1)
        r = s[:pos] + s[pos + 1:]
        r = r.lstrip("0") or "0"
    return r if int(r) < limit else None


def _hard_negatives(pivot: tuple[int, ...], side: int, max_digits: int, count: int, min_sq: float,
                    g: torch.Generator) -> list[tuple[int, ...]]:
    """Digit-edited neighbours of ``pivot`` (1 to 3 edits of one coordinate), farther than
    ``min_sq`` in squared distance (the official filter)."""
    out = []
    for _ in range(count):
        coord = _randint(g, 0, len(pivot) - 1)
        s, done, edits, tries = str(pivot[coord]), 0, _randint(g, 1, 3), 0
        while done < edits and tries < 50:
            tries += 1
            r = _digit_edit(s, side, max_digits, g)
            if r is not None and r != str(pivot[coord]):
                s, done = r, done + 1
        cand = tuple(int(s) if i == coord else v for i, v in enumerate(pivot))
        if sum((a - b) ** 2 for a, b in zip(cand, pivot)) > min_sq:
            out.append(cand)
    return out


def _grid(side: int, dims: int) -> list[tuple[int, ...]]:
    if dims == 1:
        return [(i,) for i in range(side)]
    return [(i, j) for i in range(side) for j in range(side)]


def seqpe_contrastive_positions(
    pivots: torch.Tensor | list,
    *,
    side: int,
    num_candidates: int = 64,
    dims: int = 1,
    window: int = 196,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Candidate positions for SeqPE's contrastive loss (``SeqPeContrstiveDataSampler._prepare_batch``).

    ``pivots``: (B,) integers (``dims=1``, positions in [0, side)) or (B, 2) grid cells
    (``dims=2``, in [0, side)²). For each pivot, with probability 0.5 only random candidates;
    0.5–0.8 first ``int(0.2·K)`` hard negatives (digit edits of the pivot); 0.8–1.0 first
    K positions from a window of ``window`` (2-D: √window per side) positions near a random
    start. Then K + 1 random positions, deduplicated, the pivot excluded, first K kept.
    Returns (candidates (B, K[, 2]) long, labels (B,) from ``seqpe_labels``).
    Differences from the official sampler: 2-D hard negatives edit the digits of one
    coordinate (the official code edits the concatenated digits and splits them again),
    and randomness comes from ``generator``.
    """
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    check_int(WHO, "side", side, 2)
    check_int(WHO, "num_candidates", num_candidates, 2)
    if dims not in (1, 2):
        raise RegularizerInputError(f"{WHO} contrastive sampler expects dims 1 or 2, got {dims!r}")
    pool = _grid(side, dims)
    k = num_candidates
    if len(pool) < k + 2:
        raise RegularizerInputError(f"{WHO} needs more than K+1={k + 1} positions to sample from, got {len(pool)}")
    piv = torch.as_tensor(pivots).long().reshape(-1, dims)
    max_digits = len(str(side - 1))
    n_hard = int(k * 0.2)
    rows = []
    for p in map(tuple, piv.tolist()):
        simple = _sample(g, pool, k + 1)
        u = _uniform(g)
        if u > 0.8:  # distributional: a small window near a random start
            if dims == 1:
                start = int(side * _uniform(g))
                span = max(window, 5 * k)
                special = [(i,) for i in range(start, min(start + span, side))]
            else:
                r = min(max(int(window**0.5), int((5 * k) ** 0.5)), side)
                s0, s1 = int((side - r) * _uniform(g)), int((side - r) * _uniform(g))
                special = [(i, j) for i in range(s0, min(s0 + r, side)) for j in range(s1, min(s1 + r, side))]
            special = _sample(g, special, min(k, len(special)))
        elif u > 0.5:  # hard negatives, farther than the nearest of the first K+1-n_hard random ones
            min_sq = min(sum((a - b) ** 2 for a, b in zip(c, p)) for c in simple[: k + 1 - n_hard])
            special = _hard_negatives(p, side, max_digits, n_hard, min_sq, g)
        else:
            special = []
        seen, merged = {p}, []
        for c in special + simple:
            if c not in seen:
                merged.append(c)
                seen.add(c)
        rows.append(merged[:k])
    cand = torch.tensor(rows, dtype=torch.long)
    if dims == 1:
        cand, piv = cand[..., 0], piv[:, 0]
    return cand, seqpe_labels(piv, cand)


def seqpe_transfer_positions(
    length: int,
    *,
    max_position: int,
    batch_size: int = 32,
    num: int = 32,
    width: int | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shifted blocks for SeqPE's transfer loss (``SeqPeTransferDataSampler._prepare_batch``).

    1-D (``width=None``): the main range is [0, length); each of ``batch_size`` blocks
    starts at s ∈ [length, max_position − length) and ``num`` offsets are drawn without
    replacement from [0, length). 2-D (``width`` = w, main grid h × w with h = length/w,
    positions in [0, max_position)²): the start (r, c) is uniform over r < max_position − h,
    c < max_position − w with r ≥ h or c ≥ w (not the main block), the official
    ``create_2d_pos_list(0, 0, n_max − h, n_max − w)`` (exclusive ends) filtered the same way, so
    a block never reaches the last row or column.
    Returns (main_indices (B, n) long, shifted positions (B, n) or (B, n, 2) long): feed
    ``PE(shifted)`` as ``trans_pe`` and ``PE(main range)`` as ``main_pe``.
    Defaults B = n = 32 are the official ``--seqpe_transfer_batch_size``/``--seqpe_transfer_num``.
    """
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    check_int(WHO, "length", length, 2)
    check_int(WHO, "batch_size", batch_size, 1)
    check_int(WHO, "num", num, 2)
    if num > length:
        raise RegularizerInputError(f"{WHO} transfer sampler draws num={num} of length={length} offsets: num <= length")
    idx = torch.stack([torch.randperm(length, generator=g)[:num] for _ in range(batch_size)])
    if width is None:
        if max_position < 2 * length + 1:
            raise RegularizerInputError(
                f"{WHO} transfer sampler needs max_position > 2·length={2 * length}, got {max_position}"
            )
        starts = torch.randint(length, max_position - length, (batch_size, 1), generator=g)
        return idx, starts + idx
    if length % width:
        raise RegularizerInputError(f"{WHO} transfer sampler: length={length} is not a multiple of width={width}")
    h = length // width
    rows, cols = max_position - h, max_position - width  # start cells: r < rows, c < cols (exclusive)
    head = min(h, max(rows, 0)) * max(cols - width, 0)  # rows r < h: only columns c ≥ w
    total = head + max(rows - h, 0) * max(cols, 0)  # rows r ≥ h: every column
    if total == 0:
        raise RegularizerInputError(
            f"{WHO} transfer sampler needs a start cell outside the main {h}×{width} block: max_position > "
            f"{max(h, width)} and > {2 * min(h, width)}, got {max_position}"
        )
    chosen = []
    for i in torch.randint(total, (batch_size,), generator=g).tolist():  # the i-th valid cell in row-major order
        if i < head:
            chosen.append((i // (cols - width), width + i % (cols - width)))
        else:
            chosen.append((h + (i - head) // cols, (i - head) % cols))
    start = torch.tensor(chosen, dtype=torch.long)
    pos = torch.stack([start[:, :1] + idx // width, start[:, 1:] + idx % width], dim=-1)
    return idx, pos


@register
class SeqPE(RepresentationRegularizer):
    """SeqPE: contrastive position-distance and OOD-position transfer losses on a position encoder.

    ``reg(pivot_pe, candidate_pe, labels, main_pe, main_indices, trans_pe)`` is
    ``weight·(0.1·L_ct + 0.1·L_tr)``, with

    * ``L_ct = CE(s·⟨PE(p_b), PE(c_{b,k})⟩_k, y_b)``, y_b = argmin_k ‖c_{b,k} − p_b‖²
      (positions from ``seqpe_contrastive_positions``, labels from ``seqpe_labels``);
    * ``L_tr = β·[KL(P_m‖P_t) + KL(P_t‖P_m)] + (1−β)·[...]``, P = log_softmax(s·XXᵀ) of the
      main-range PEs (teacher under β) and of the shifted PEs
      (positions from ``seqpe_transfer_positions``), KL with ``reduction='mean'``.

    Defaults (official ghrua/seqpe argparse, ``image_seqpe/main.py``): contrastive and transfer
    weights 0.1, s = 1 (``seqpe_logit_scaled_loss``), label smoothing 0, β = 0.8,
    ``metric='kl_div'``; K = 64 candidates for B = 32 pivots, n = 32 offsets in B = 32 blocks
    (sampler defaults). The ViT script overrides β = 1.0 and n = 64, and splits the transfer
    term over the attention heads (``transfer_heads``). Dot products are unnormalised (the
    official code bounds the PE norm with a separate layer-norm weight, not covered here).

    Li et al. (2025), arXiv:2506.13277.
    """

    name = "seqpe"
    takes_embedding_batches = False  # its own tests cover gradients, config and bad input
    paper = PAPER
    formula = "0.1·CE(s·⟨PE(p),PE(c_k)⟩, argmin_k‖c_k−p‖²) + 0.1·[KL(P_main‖P_shift)+KL(P_shift‖P_main)], P = log_softmax(s·XXᵀ)"
    num_inputs = 6
    function = seqpe
    terms = seqpe_terms
    claims = (
        Claim(
            "SeqPE's contrastive and transfer losses improve accuracy on positions never seen in training",
            task="positions", metric="test_accuracy", direction="higher", task_args={"train_tokens": 8},
            min_effect=0.02, min_effect_reason="two points of test accuracy on the full-length input",
            baselines=(
                Baseline("learned absolute positions", why="the ViT default the paper compares against"),
                Baseline("sinusoidal positions", task_args={"positional": "sinusoidal"},
                         why="fixed encodings defined at every position: the standard extrapolating alternative"),
                Baseline("SeqPE encoder without its losses", {"name": "seqpe", "contrastive_weight": 0.0,
                                                              "transfer_weight": 0.0},
                         why="the same digit encoder: isolates the two regularizers"),
            ),
            settings="tiny transformer (d 32, 2 layers) on 8×8 digits as 16 tokens of 2×2 patches, trained on the "
            "top 2 rows (8 tokens) and tested on all 4 rows; an MLP over digit embeddings instead of the official "
            "small transformer encoder; positions in a 16×16 universe, 16 pivots × 16 candidates and 8 blocks × 8 "
            "offsets per step instead of 32×64 and 32×32 (the batch is small); weights 0.1/0.1, β=0.8 are the "
            "official defaults; developed on seeds 0-4",
            source="Li et al. 2025, Tables 1-2 (extrapolation to larger images and longer contexts) and the "
            "ablation of the two losses",
        ),
        Claim(
            "SeqPE lets a ViT trained at 224px extrapolate to 640px+ on ImageNet and GPT-2 to much longer contexts",
            testable=False,
            untestable_reason="needs ImageNet-scale ViT training and evaluation at several resolutions, or GPT-2 "
            "language-model training on WikiText-103; the lab's digits task is a 4×4 token grid",
        ),
    )
