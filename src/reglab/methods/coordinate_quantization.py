"""Coordinate quantization before positional encoding (CQ-NIR; Jiang, Hua & Han, ICCV 2023).

Continuous 3-D sample coordinates are snapped to the centre of their cell in
a very fine regular grid before the positional (Fourier) encoding and the
MLP, so that rays from different views hit the same discrete coordinates:
fewer distinct inputs, more multi-view consistency constraints per input, at
no cost.

Pinned from the official code (MachinePerceptionLab/CQ-NIR,
``neus_cq/models/fields.py``: ``SDFNetwork.pts_loc``, used at the start of
``SDFNetwork.forward`` and ``RenderingNetwork.forward``): with the scene box
[x_min, x_max] = [−2.5, 2.5] and ``res = 25600``,

    u = (x − x_min)/(x_max − x_min);   Δ = 1/(res − 1)
    x_q = x_min + (x_max − x_min)·(⌊u/Δ⌋·Δ + Δ/2)

(the official code maps back with ``·2·x_max − x_max``, the same for its
symmetric box). ⌊·⌋ has no gradient: the coordinates are inputs, not
parameters, and the official code differentiates the SDF with respect to
the quantized points (``SDFNetwork.gradient``). Applied in training and at
test time alike.
"""

from __future__ import annotations

import torch

from reglab.core import Claim, FunctionModule, Paper, RegularizerInputError, register
from reglab.ops import check_tensor, hyperparameters, integer

__all__ = ["quantize_coordinates", "CoordinateQuantization"]

PAPER = Paper(
    "Coordinate Quantized Neural Implicit Representations for Multi-view Reconstruction",
    "Jiang, S., Hua, J. and Han, Z.", 2023, arxiv="2308.11025", venue="ICCV",
    code="https://github.com/MachinePerceptionLab/CQ-NIR")

WHO = "CoordinateQuantization"


@hyperparameters(WHO, resolution=integer(2))
def quantize_coordinates(
    x: torch.Tensor, low: float = -2.5, high: float = 2.5, resolution: int = 25600
) -> torch.Tensor:
    """CQ-NIR: each coordinate snapped to the centre of its cell, ``Δ = (high − low)/(resolution − 1)``.

    ``x``: (..., dims) coordinates inside ``[low, high]`` (the scene box;
    points outside are snapped to the continued grid). Returns a tensor of
    ``x``'s shape and dtype, without gradient to ``x``.
    """
    check_tensor(WHO, x, arg="coordinates", min_ndim=1)
    if not high > low:
        raise RegularizerInputError(f"{WHO} expects high > low (the scene box), got low={low}, high={high}")
    span = high - low
    delta = 1.0 / (resolution - 1)
    work = x.detach().double() if x.dtype != torch.float64 else x.detach()
    u = (work - low) / span
    centre = torch.floor(u / delta) * delta + delta / 2
    return (low + span * centre).to(x.dtype)


@register
class CoordinateQuantization(FunctionModule):
    """Coordinate quantization: snap coordinates to grid-cell centres before the positional encoding.

    Jiang, Hua & Han (2023), official ``pts_loc``: in the box [low, high]
    (−2.5, 2.5) with ``resolution`` = 25600 grid points per axis, each
    coordinate becomes the centre of its cell, ``low + (high − low)·(⌊u/Δ⌋ + ½)·Δ``
    with ``u = (x − low)/(high − low)``, ``Δ = 1/(resolution − 1)``. Put it in
    front of the encoding::

        cq = reglab.CoordinateQuantization()
        sdf = mlp(fourier_features(cq(points)))

    Computed in float64 (a float32 coordinate has about 7 digits, the grid
    needs log10(25600) ≈ 4.4 of them) and returned in the input's dtype; no
    gradient flows to the coordinates. Costs one floor per coordinate.
    """

    name = "coordinate_quantization"
    takes_embedding_batches = False  # a module applied inside the model, not a penalty on an embedding batch
    kind = "representation"
    form = "transform"
    paper = PAPER
    formula = "x_q = low + (high − low)·(⌊u/Δ⌋ + ½)·Δ,  u = (x − low)/(high − low),  Δ = 1/(res − 1)"
    function = quantize_coordinates
    claims = (
        Claim(
            "Quantized coordinates improve multi-view 3-D reconstruction of neural implicit surfaces",
            testable=False,
            untestable_reason="the gain comes from rays of several calibrated views sharing discrete sample "
            "coordinates (NeuS/UNISURF on DTU, Replica); the lab has no multi-view rendering task, and a 1-D "
            "regression toy would not exercise that mechanism",
            source="Jiang et al. 2023, Tables 1-3 (DTU, Replica, ScanNet Chamfer distance)",
        ),
    )
