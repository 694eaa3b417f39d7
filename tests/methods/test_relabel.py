"""LabelPooling (ReLabel): RoIAlign 1×1 against a plain-float loop of torchvision's algorithm, softmax targets."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError


def ref_bilinear(m, y, x):
    """One channel (list of rows) at (y, x), as torchvision's roi_align bilinear_interpolate."""
    h, w = len(m), len(m[0])
    if y < -1.0 or y > h or x < -1.0 or x > w:
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    yl, xl = int(y), int(x)
    if yl >= h - 1:
        yh = yl = h - 1
        y = float(yl)
    else:
        yh = yl + 1
    if xl >= w - 1:
        xh = xl = w - 1
        x = float(xl)
    else:
        xh = xl + 1
    ly, lx = y - yl, x - xl
    return (1 - ly) * (1 - lx) * m[yl][xl] + (1 - ly) * lx * m[yl][xh] + ly * (1 - lx) * m[yh][xl] + ly * lx * m[yh][xh]


def ref_label_pooling(maps, boxes):
    out = []
    for m, box in zip(maps.tolist(), boxes.tolist()):
        h, w = len(m[0]), len(m[0][0])
        x1, y1, x2, y2 = box[0] * w - 0.5, box[1] * h - 0.5, box[2] * w - 0.5, box[3] * h - 0.5
        rw, rh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        gh, gw = math.ceil(rh), math.ceil(rw)
        pooled = []
        for channel in m:
            acc = 0.0
            for iy in range(gh):
                for ix in range(gw):
                    acc += ref_bilinear(channel, y1 + (iy + 0.5) * rh / gh, x1 + (ix + 0.5) * rw / gw)
            pooled.append(acc / (gh * gw))
        z = [math.exp(v - max(pooled)) for v in pooled]
        out.append([v / sum(z) for v in z])
    return out


def test_matches_loop():
    g = torch.Generator().manual_seed(0)
    maps = 3 * torch.randn(4, 5, 6, 7, generator=g, dtype=torch.float64)
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.1, 0.2, 0.6, 0.9], [0.5, 0.5, 0.55, 0.6], [0.3, 0.0, 1.0, 0.4]],
                         dtype=torch.float64)
    got = RF.label_pooling(maps, boxes)
    expected = torch.tensor(ref_label_pooling(maps, boxes), dtype=torch.float64)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def test_full_image_box_averages_the_cells_and_targets_sum_to_one():
    maps = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 8.0]]]], dtype=torch.float64)
    pooled = RF.roi_align_mean(maps, torch.tensor([[-0.5, -0.5, 1.5, 1.5]], dtype=torch.float64))
    torch.testing.assert_close(pooled, torch.tensor([[2.5, 2.0]], dtype=torch.float64))
    targets = reglab.LabelPooling()(maps, torch.tensor([[0.0, 0.0, 1.0, 1.0]], dtype=torch.float64))
    torch.testing.assert_close(targets, torch.softmax(torch.tensor([[2.5, 2.0]], dtype=torch.float64), dim=1))


def test_a_crop_follows_its_region():
    """Class 0 fills the left half, class 1 the right: a left crop is labelled 0, a right crop 1."""
    maps = torch.zeros(2, 2, 4, 4)
    maps[:, 0, :, :2] = 5.0
    maps[:, 1, :, 2:] = 5.0
    boxes = torch.tensor([[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]])
    t = RF.label_pooling(maps, boxes)
    assert t[0].argmax().item() == 0 and t[1].argmax().item() == 1


def test_bad_input_is_named():
    with pytest.raises(RegularizerInputError, match="LabelPooling.*one"):
        RF.label_pooling(torch.rand(2, 3, 4, 4), torch.rand(3, 4))
    with pytest.raises(RegularizerInputError, match="LabelPooling.*x2 >= x1"):
        RF.label_pooling(torch.rand(1, 3, 4, 4), torch.tensor([[0.8, 0.0, 0.2, 1.0]]))
    with pytest.raises(RegularizerInputError, match="LabelPooling"):
        RF.label_pooling(torch.rand(3, 4, 4), torch.rand(3, 4))
    with pytest.raises(RegularizerInputError, match="LabelPooling"):
        RF.label_pooling(torch.full((1, 3, 4, 4), float("nan")), torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
