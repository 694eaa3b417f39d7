"""LabelPooling (ReLabel; Yun, Oh, Heo, Han, Choe & Chun, CVPR 2021): a localized soft label for each random crop.

A strong classifier's dense class-score map L (C×H×W, taken before its final
pooling) is stored once per training image; each random crop then gets the
target ``softmax(RoIAlign(L, crop box))``, so a crop that shows only part of
the scene is labelled with what that part contains. Official code
(naver-ai/relabel_imagenet, ``utils/relabel_functions.py`` ``get_relabel``):
``torchvision.ops.roi_align(label_maps, [idx, box·W − 0.5], output_size=(1, 1))``
(default ``spatial_scale=1``, ``sampling_ratio=-1``: ⌈roi size⌉ samples per
axis; ``aligned=False``: roi sides at least 1), then
``softmax(·, dim=1)``; trained with soft-target cross-entropy
(``utils/loss.py``). The stored maps keep the top-5 scores per position and
zeros elsewhere (``get_labelmaps``); pass them dense.

We scale x by the map width and y by its height (the official code scales
both by the width: its maps are square). The official crop coordinates are
built as (top, left, top + h, left + w) and passed as (x1, y1, x2, y2), which
transposes the box on the map; here ``boxes`` are (x1, y1, x2, y2) with x
horizontal, the crop's true region.
"""

from __future__ import annotations

import math

import torch

from reglab.core import Claim, FunctionModule, Paper, RegularizerInputError, register
from reglab.ops import check_tensor

__all__ = ["label_pooling", "roi_align_mean", "LabelPooling"]

PAPER = Paper(
    "Re-labeling ImageNet: from Single to Multi-Labels, from Global to Localized Labels",
    "Yun, S., Oh, S. J., Heo, B., Han, D., Choe, J. and Chun, S.", 2021, arxiv="2101.05022", venue="CVPR",
    code="https://github.com/naver-ai/relabel_imagenet")


def _bilinear(m: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """torchvision's roi_align sampling: (C, H, W) map at points (y, x) -> (C, P); 0 outside [−1, H] × [−1, W]."""
    _, h, w = m.shape
    outside = (y < -1.0) | (y > h) | (x < -1.0) | (x > w)
    y, x = y.clamp_min(0), x.clamp_min(0)
    y0, x0 = y.floor().long(), x.floor().long()
    top_y, top_x = y0 >= h - 1, x0 >= w - 1
    y0, x0 = torch.where(top_y, h - 1, y0), torch.where(top_x, w - 1, x0)
    y1, x1 = torch.where(top_y, y0, y0 + 1), torch.where(top_x, x0, x0 + 1)
    y, x = torch.where(top_y, y0.to(y.dtype), y), torch.where(top_x, x0.to(x.dtype), x)
    ly, lx = y - y0, x - x0
    hy, hx = 1 - ly, 1 - lx
    v = hy * hx * m[:, y0, x0] + hy * lx * m[:, y0, x1] + ly * hx * m[:, y1, x0] + ly * lx * m[:, y1, x1]
    return torch.where(outside, torch.zeros_like(v), v)


def roi_align_mean(label_maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``roi_align(maps, boxes, output_size=(1, 1))`` (sampling_ratio −1, aligned False) for one box per map.

    ``label_maps`` (B, C, H, W); ``boxes`` (B, 4) as (x1, y1, x2, y2) in map pixel coordinates. Returns (B, C).
    """
    out = []
    for m, (bx1, by1, bx2, by2) in zip(label_maps, boxes.tolist()):
        roi_w, roi_h = max(bx2 - bx1, 1.0), max(by2 - by1, 1.0)
        gh, gw = math.ceil(roi_h), math.ceil(roi_w)
        ys = by1 + (torch.arange(gh, dtype=m.dtype, device=m.device) + 0.5) * roi_h / gh
        xs = bx1 + (torch.arange(gw, dtype=m.dtype, device=m.device) + 0.5) * roi_w / gw
        yy, xx = torch.meshgrid(ys, xs, indexing="ij")
        out.append(_bilinear(m, yy.flatten(), xx.flatten()).sum(dim=1) / max(gh * gw, 1))
    return torch.stack(out)


def label_pooling(label_maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """ReLabel's LabelPooling: ``softmax_c(RoIAlign(L, box·size − 0.5))`` per crop, (B, C) soft targets.

    ``label_maps`` (B, C, H, W): each image's dense class scores; ``boxes``
    (B, 4): each crop as (x1, y1, x2, y2) in [0, 1] of the image's width and height.
    """
    check_tensor("LabelPooling", label_maps, arg="label maps (B, C, H, W)", ndim=4)
    check_tensor("LabelPooling", boxes, arg="crop boxes (B, 4)", ndim=2)
    if boxes.shape != (label_maps.shape[0], 4):
        raise RegularizerInputError(
            f"LabelPooling expects one (x1, y1, x2, y2) box per label map, shape ({label_maps.shape[0]}, 4), got "
            f"{tuple(boxes.shape)}"
        )
    if bool(((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any()):
        raise RegularizerInputError("LabelPooling expects boxes with x2 >= x1 and y2 >= y1 (x1, y1, x2, y2)")
    h, w = label_maps.shape[2], label_maps.shape[3]
    scale = boxes.new_tensor([w, h, w, h])
    pooled = roi_align_mean(label_maps, boxes.detach() * scale - 0.5)
    return pooled.softmax(dim=1)


@register
class LabelPooling(FunctionModule):
    """ReLabel's LabelPooling: target = softmax(RoIAlign(L, crop box)) from a stored dense label map L.

    ``pool(label_maps, boxes)`` returns (B, C) soft targets for crops
    ``boxes`` (x1, y1, x2, y2 in [0, 1]) of images whose teacher score maps
    are ``label_maps`` (B, C, H, W); train with
    ``reglab.functional.soft_cross_entropy(logits, targets)``. RoIAlign as
    torchvision's ``roi_align`` with output 1×1, adaptive sampling and
    ``aligned=False`` on boxes ``box·size − 0.5`` (official ``get_relabel``).
    """

    name = "label_pooling"
    kind = "output"
    form = "target"
    paper = PAPER
    formula = "y_crop = softmax_c( RoIAlign_{1×1}(L, box·size − 0.5) )"
    function = label_pooling
    claims = (
        Claim(
            "Localized multi-labels from a strong teacher's dense score maps improve ImageNet training with random "
            "crops",
            testable=False,
            untestable_reason="the claim needs a strong teacher's dense label maps and random-resized-crop training "
            "on multi-object images (ImageNet, ResNet-50); the lab's tasks are 8×8 single-digit images without "
            "crops or stored teacher maps",
            source="Yun et al. 2021, Table 2 (ResNet-50 78.9% top-1 with ReLabel vs 77.5%)",
        ),
    )
