"""NViT: the group Taylor saliency against loops and autograd, the global group selection against a
hand-worked case, the latency term, the operation on an MLP."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import reglab
from reglab import RegularizerInputError
from reglab.methods.nvit import group_taylor_saliency, latency_adjusted, select_groups


def test_saliency_matches_loops():
    g = torch.Generator().manual_seed(0)
    w, gw = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(4, 3, generator=g, dtype=torch.float64)
    v, gv = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    got = group_taylor_saliency([w, v], [gw, gv], [0, 1])  # unit u: row u of w and column u of v
    for u in range(4):
        s = sum(float(w[u, j] * gw[u, j]) for j in range(3)) + sum(float(v[i, u] * gv[i, u]) for i in range(5))
        assert float(got[u]) == pytest.approx(s * s, rel=1e-12)


def test_saliency_gradcheck_float64():
    g = torch.Generator().manual_seed(1)
    args = [torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    assert torch.autograd.gradcheck(lambda a, b: group_taylor_saliency([a], [b], [1]), args)


def test_latency_term():
    c = torch.tensor([1.0, 2.0], dtype=torch.float64)
    out = latency_adjusted(c, 10, lambda n: n**2, 0.5)  # T(10) − T(9) = 19
    torch.testing.assert_close(out, c - 9.5)
    assert latency_adjusted(c, 10, None, 0.5) is c


def test_global_selection_by_hand():
    crit = [torch.tensor([5.0, 1.0, 3.0, 0.5]), torch.tensor([2.0, 0.1]), torch.tensor([0.2, 0.3])]
    # size-1 groups: sorted values 0.1 0.2 0.3 0.5 1 2 3 5; k = 4 → threshold 0.5
    masks = select_groups(crit, 4)
    assert masks[0].tolist() == [True, True, True, False]
    assert masks[1].tolist() == [True, False]
    assert masks[2].tolist() == [False, True]  # 0.2 and 0.3 are ≤ 0.5 but the layer keeps one unit
    # groups of 2 (sorted within the layer): layer 0 → {0.5, 1} = 1.5, {3, 5} = 8; layer 1 → 2.1; layer 2 → 0.5
    # k = 2 → threshold 1.5: layer 0 loses {0.5, 1}; layer 2's only group (0.5) stays
    masks = select_groups(crit, 2, group_size=2)
    assert masks[0].tolist() == [True, False, True, False]
    assert all(m.all() for m in masks[1:])


def test_group_threshold_prunes_a_whole_group():
    crit = [torch.tensor([5.0, 1.0, 3.0, 0.5]), torch.tensor([2.0, 0.1, 4.0, 4.0])]
    # groups of 2: layer 0 → 1.5, 8; layer 1 → 2.1, 8; k = 2 → threshold 2.1
    masks = select_groups(crit, 2, group_size=2)
    assert masks[0].tolist() == [True, False, True, False]
    assert masks[1].tolist() == [False, False, True, True]


def test_operation_prunes_the_lowest_saliency_units():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 5), nn.ReLU(), nn.Linear(5, 3))
    batches = [(torch.randn(16, 6), torch.randint(0, 3, (16,))) for _ in range(3)]
    loss_fn = lambda m, b: F.cross_entropy(m(b[0]), b[1])  # noqa: E731
    ref = []
    for lin in (model[0], model[2]):
        s = torch.zeros(lin.out_features, dtype=torch.float64)
        for b in batches:
            gw, gb = torch.autograd.grad(loss_fn(model, b), [lin.weight, lin.bias])
            s += ((lin.weight * gw).sum(1) + lin.bias * gb).double().detach() ** 2
        ref.append(s / 3)
    order = sorted((float(v), li, u) for li, r in enumerate(ref) for u, v in enumerate(r))
    expected = {(li, u) for _, li, u in order[:4]}
    masks = reglab.create("nvit_pruning", num_prune=4)(model, batches, loss_fn)
    got = {(li, u) for li, m in enumerate(masks) for u in range(len(m)) if not m[u]}
    assert got == expected
    for li, lin in enumerate((model[0], model[2])):
        for u in range(lin.out_features):
            assert bool((lin.weight[u] == 0).all()) == ((li, u) in expected)


def test_bad_input():
    loss = lambda m, b: m(b).sum()  # noqa: E731
    with pytest.raises(RegularizerInputError, match="NViTPruning"):
        reglab.NViTPruning(num_prune=-1)
    with pytest.raises(RegularizerInputError, match="NViTPruning.*nn.Linear"):
        reglab.NViTPruning()(nn.Sequential(nn.Linear(3, 2)), [torch.randn(4, 3)], loss)
    with pytest.raises(RegularizerInputError, match="NViTPruning"):
        reglab.NViTPruning()(nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1)), [], loss)
    with pytest.raises(RegularizerInputError, match="NViTPruning"):
        group_taylor_saliency([torch.randn(3, 2)], [torch.randn(2, 3)], [0])
    with pytest.raises(RegularizerInputError, match="NViTPruning"):
        group_taylor_saliency([torch.full((3, 2), float("nan"))], [torch.randn(3, 2)], [0])
    with pytest.raises(RegularizerInputError, match="NViTPruning"):
        group_taylor_saliency([torch.randn(3, 2)], [torch.randn(3, 2)], [2])
