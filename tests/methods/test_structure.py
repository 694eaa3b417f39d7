"""STRUCTURE (Gröger et al. 2025): JS divergence between random-walk neighbourhoods, against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError


def _walk(x, tau):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    x = x - x.mean(0, keepdims=True)
    s = x @ x.T / tau
    e = np.exp(s - s.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def ref_structure(aligned, original, levels=1, tau=0.05, weighting="none", margin=0.0, eps=1e-12):
    """Numpy, from the authors' structure_reg (src/loss/clip_loss.py): JS with F.kl_div batchmean semantics."""
    a, o = np.asarray(aligned, dtype=np.float64), np.asarray(original, dtype=np.float64)
    pa, po = _walk(a, tau), _walk(o, tau)
    n = a.shape[0]
    total = 0.0
    for level in range(1, levels + 1):
        ma, mo = np.linalg.matrix_power(pa, level), np.linalg.matrix_power(po, level)
        m = 0.5 * (ma + mo)
        kl = lambda p, q: float(((p + eps) * (np.log(p + eps) - np.log(q + eps))).sum() / n)  # noqa: E731
        js = max(0.5 * (kl(m, ma) + kl(m, mo)) - margin, 0.0)
        total += js / level if weighting == "inverse" else js
    return total / levels


REFERENCES = {"structure": lambda a, o: ref_structure(a.numpy(), o.numpy())}


def test_levels_weighting_margin_and_different_dims():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(7, 3, generator=g, dtype=torch.float64)
    o = torch.randn(7, 5, generator=g, dtype=torch.float64)
    for kw, rk in (({}, {}), ({"levels": 3, "weighting": "inverse"}, {"levels": 3, "weighting": "inverse"}),
                   ({"temperature": 0.5, "levels": 2}, {"tau": 0.5, "levels": 2}), ({"margin": 0.01}, {"margin": 0.01})):
        assert float(RF.structure(a, o, **kw)) == pytest.approx(ref_structure(a.numpy(), o.numpy(), **rk), rel=1e-9)
    assert reglab.create("structure").weight == 10.0


def test_zero_when_geometry_is_preserved():
    g = torch.Generator().manual_seed(1)
    o = torch.randn(8, 4, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    assert float(RF.structure(2.0 * o @ q, o, levels=3)) == pytest.approx(0.0, abs=1e-10)  # rotation + scale
    assert float(RF.structure(torch.randn(8, 4, generator=g, dtype=torch.float64), o)) > 0.01


def test_gradcheck_levels():
    g = torch.Generator().manual_seed(2)
    a = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    o = torch.randn(5, 4, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: RF.structure(x, o, levels=2, temperature=0.5), (a,))


def test_bad_input():
    with pytest.raises(RegularizerInputError, match="STRUCTURE expects one frozen embedding per aligned embedding"):
        RF.structure(torch.randn(6, 3), torch.randn(5, 3))
    with pytest.raises(RegularizerInputError, match="STRUCTURE"):
        RF.structure(torch.randn(6, 3), torch.full((6, 3), float("inf")))
    with pytest.raises(RegularizerInputError, match="Structure expects weighting"):
        reglab.Structure(weighting="linear")
