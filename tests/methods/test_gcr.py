"""GCR head: logits against a loop, the Riemannian step against numpy, orthonormality, descent, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import reglab
from reglab import RegularizerInputError
from reglab.methods.gcr import grassmann_logits, grassmann_step_


def test_logits_match_loop_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    bases = torch.linalg.qr(torch.randn(3, 5, 2, generator=g, dtype=torch.float64)).Q.transpose(1, 2)
    x = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    got = grassmann_logits(x, bases, gamma=25.0)
    for n in range(4):
        norm = math.sqrt(sum(v * v for v in x[n].tolist()))
        for c in range(3):
            proj = [sum(bases[c, j, i].item() * x[n, i].item() / norm for i in range(5)) for j in range(2)]
            assert got[n, c].item() == pytest.approx(25.0 * math.sqrt(sum(p * p for p in proj)), rel=1e-12)
    assert torch.autograd.gradcheck(lambda f: grassmann_logits(f, bases), (x,))


def test_step_matches_numpy_geodesic_and_stays_orthonormal():
    g = torch.Generator().manual_seed(1)
    bases = torch.linalg.qr(torch.randn(2, 6, 3, generator=g, dtype=torch.float64)).Q.transpose(1, 2).contiguous()
    d = torch.randn(2, 3, 6, generator=g, dtype=torch.float64)
    expected = []
    for c in range(2):
        s, dc = bases[c].numpy().T, d[c].numpy().T  # (d, k)
        gc = dc - s @ (s.T @ dc)
        u, sig, vt = np.linalg.svd(gc, full_matrices=False)
        new = (s @ vt.T * np.cos(0.1 * sig) - u * np.sin(0.1 * sig)) @ vt
        expected.append(new.T)
    grassmann_step_(bases, d, lr=0.1)
    np.testing.assert_allclose(bases.numpy(), np.stack(expected), rtol=1e-10, atol=1e-12)
    eye = torch.eye(3, dtype=torch.float64).expand(2, 3, 3)
    torch.testing.assert_close(bases @ bases.transpose(1, 2), eye, rtol=0, atol=1e-10)


def test_head_step_descends_and_round_trips_state():
    torch.manual_seed(0)
    head = reglab.GrassmannHead(in_features=6, num_classes=3, dim=2)
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    losses = []
    for _ in range(6):
        loss = torch.nn.functional.cross_entropy(head(x), y)
        losses.append(float(loss))
        loss.backward()
        head.step_(lr=0.01)
    assert losses[-1] < losses[0]
    eye = torch.eye(2).expand(3, 2, 2)
    torch.testing.assert_close(head.bases @ head.bases.transpose(1, 2), eye, rtol=0, atol=1e-5)
    fresh = reglab.GrassmannHead(in_features=6, num_classes=3, dim=2)
    fresh.load_state_dict(head.state_dict())
    assert torch.equal(fresh(x), head(x)) and int(fresh.steps) == 6
    assert reglab.from_config(head.get_config()).get_config() == head.get_config()


def test_defaults_are_the_official_configs():
    head = reglab.GrassmannHead(in_features=16, num_classes=4)
    assert head.gamma == 25.0 and head.dim == 8


def test_bad_input_is_named():
    with pytest.raises(RegularizerInputError, match="GrassmannHead.*dim <= in_features"):
        reglab.GrassmannHead(in_features=3, num_classes=2, dim=4)
    head = reglab.GrassmannHead(in_features=6, num_classes=3, dim=2)
    with pytest.raises(RegularizerInputError, match="GrassmannHead.*width 6"):
        head(torch.randn(4, 5))
    with pytest.raises(RegularizerInputError, match="GrassmannHead"):
        head(torch.full((2, 6), float("nan")))
    with pytest.raises(RegularizerInputError, match="GrassmannHead.step_ needs bases.grad"):
        head.step_(0.1)
