"""Cross-Modal Alignment (Kim & Hwang, 2025), against a loop reference of ma-kjh/CMA-OoDD's train loop term."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError


def _unit(v):
    n = math.sqrt(sum(float(x) ** 2 for x in v))
    return [float(x) / n for x in v]


def ref_cma(image, text, scale=100.0):
    x = [_unit(r) for r in image]
    t = [_unit(r) for r in text]
    n = len(x)
    logits = [[scale * sum(a * b for a, b in zip(x[i], t[j])) for j in range(n)] for i in range(n)]

    def lse(vals):
        m = max(vals)
        return m + math.log(sum(math.exp(v - m) for v in vals))

    per_image = [-lse(logits[i]) for i in range(n)]
    per_text = [-lse([logits[i][j] for i in range(n)]) for j in range(n)]
    return 0.5 * (sum(per_image) / n + sum(per_text) / n)


REFERENCES = {"cma": ref_cma}


def test_scale_and_weight():
    g = torch.Generator().manual_seed(5)
    a, b = torch.randn(7, 4, generator=g, dtype=torch.float64), torch.randn(7, 4, generator=g, dtype=torch.float64)
    assert float(RF.cma(a, b, logit_scale=10.0)) == pytest.approx(ref_cma(a, b, 10.0), rel=1e-12)
    reg = reglab.create("cma")
    assert reg.weight == 1e-3  # the README's --lam 0.001
    assert float(reg(a, b)) == pytest.approx(1e-3 * ref_cma(a, b), rel=1e-12)


def test_aligned_pairs_have_lower_energy():
    """Closing the gap lowers R: texts equal to their images score lower than texts shifted off them."""
    g = torch.Generator().manual_seed(6)
    img = torch.randn(16, 8, generator=g, dtype=torch.float64)
    gap = torch.zeros(8, dtype=torch.float64)
    gap[0] = 3.0
    assert float(RF.cma(img, img)) < float(RF.cma(img, img + gap))


def test_gradcheck():
    g = torch.Generator().manual_seed(7)
    a = torch.randn(5, 3, generator=g, dtype=torch.float64).requires_grad_()
    b = torch.randn(5, 3, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, y: RF.cma(x, y, logit_scale=5.0), (a, b))


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="CMA.*same shape"):
        RF.cma(torch.randn(4, 3), torch.randn(5, 3))
    with pytest.raises(RegularizerInputError, match="CMA.*logit_scale"):
        reglab.create("cma", logit_scale=0.0)
