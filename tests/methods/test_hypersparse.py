"""HyperSparse: value 0 by construction, gradient = the sheet's formula and test vector; ART bookkeeping."""

import math

import numpy as np
import pytest
import torch
from torch import nn

import reglab
from reglab.methods.hypersparse import HyperSparse, HyperSparseART, hypersparse, hypersparse_global

from ._reference import Reference


def ref_grad(w, kappa):  # the sheet's closed form, numpy
    a = np.abs(np.asarray(w, dtype=np.float64)).ravel()
    s = 0.6585 / np.sort(a)[math.floor(kappa * a.size)]
    t = np.tanh(s * a)
    return (np.sign(np.asarray(w).ravel()) * s * (1 - t**2) * a.sum() / t.sum()).reshape(np.shape(w))


def ref_value(w):  # HS ≡ 0 whatever the weights
    return 0.0


REFERENCES = {"hypersparse": Reference(ref_value)}

SHEET_W = [0.01, -0.02, 0.05, -0.1, 0.3, -0.8, 1.2, 0.002, -0.4, 0.07]
SHEET_GRAD = [3.526837, -3.481417, 3.184301, -2.361377, 0.262350, -0.000376, 0.000002, 3.541538, -0.072277, 2.884591]


def test_sheet_vector_value_zero_and_gradient():
    w = torch.tensor(SHEET_W, dtype=torch.float64, requires_grad=True)
    v = hypersparse(w, prune_rate=0.5)
    assert v.item() == 0.0
    v.backward()
    np.testing.assert_allclose(w.grad.numpy(), SHEET_GRAD, atol=1e-6)
    np.testing.assert_allclose(w.grad.numpy(), ref_grad(SHEET_W, 0.5), rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("kappa", [0.5, 0.9, 0.99])
def test_global_gradient_matches_formula_over_concatenation(kappa):
    g = torch.Generator().manual_seed(0)
    ws = [torch.randn(6, 7, generator=g, dtype=torch.float64, requires_grad=True),
          (0.2 * torch.randn(5, 3, 2, generator=g, dtype=torch.float64)).requires_grad_()]
    v = hypersparse_global(ws, prune_rate=kappa)
    assert v.item() == 0.0
    v.backward()
    flat = np.concatenate([w.detach().numpy().ravel() for w in ws])
    expected = ref_grad(flat, kappa)
    got = np.concatenate([w.grad.numpy().ravel() for w in ws])
    np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-12)


def test_local_is_per_tensor_quantile():
    g = torch.Generator().manual_seed(1)
    ws = [torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    hypersparse(ws, prune_rate=0.8).backward()
    for w in ws:
        np.testing.assert_allclose(w.grad.numpy(), ref_grad(w.detach().numpy(), 0.8), rtol=1e-8, atol=1e-12)


def test_gradient_is_largest_below_the_quantile():
    w = torch.tensor(SHEET_W, dtype=torch.float64, requires_grad=True)
    hypersparse(w, prune_rate=0.5).backward()
    small = w.abs() <= 0.1  # at or below the κ-quantile (0.1)
    assert w.grad.abs()[small].min() > w.grad.abs()[~small].max() * 5


def test_attached_global_scope_gradient():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3)).double()
    regs = reglab.attach(model, HyperSparse(2.0, prune_rate=0.7).on(scope="global"))
    value = regs.penalty()
    assert value.item() == 0.0
    value.backward()
    flat = np.concatenate([model[0].weight.detach().numpy().ravel(), model[1].weight.detach().numpy().ravel()])
    got = np.concatenate([model[0].weight.grad.numpy().ravel(), model[1].weight.grad.numpy().ravel()])
    np.testing.assert_allclose(got, 2.0 * ref_grad(flat, 0.7), rtol=1e-8, atol=1e-12)


def test_zero_quantile_is_a_clear_error():
    w = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    with pytest.raises(reglab.RegularizerInputError, match="hypersparse.*prune_rate"):
        hypersparse(w, prune_rate=0.5)
    with pytest.raises(ValueError, match="prune_rate"):
        HyperSparse(prune_rate=1.0)


def test_art_schedule_and_termination():
    art = HyperSparseART(lambda_init=1e-3, eta=2.0, buffer_size=1)
    assert art.weight == 1e-3
    dense = 0.9
    stops = []
    for acc, state in [(0.5, "a"), (0.7, "b"), (0.8, "c"), (0.95, "d"), (0.99, "e")]:
        stops.append(art.update(acc, dense, state))
    # buffer means: .5, .6, .667, .817, .913 -> stops at the fifth; best = middle of (c, d, e)
    assert stops == [False, False, False, False, True]
    assert art.best == "d" and art.best_epoch == 4
    assert art.weight == pytest.approx(1e-3 * 2.0**5)
    assert art.best_mean == pytest.approx((0.8 + 0.95 + 0.99) / 3)


def test_art_keeps_best_window_when_accuracy_drops():
    art = HyperSparseART(buffer_size=1)
    for acc, s in [(0.9, 1), (0.9, 2), (0.9, 3), (0.1, 4), (0.1, 5)]:
        art.update(acc, 0.99, s)
    assert art.best == 1 and not art.done  # the first window reaching the best mean
