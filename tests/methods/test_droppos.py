"""DropPos (Wang et al., 2023): the position-reconstruction loss against a loop reference, the
sheet's test vector (official column-normalised map), row vs column maps, masks and bad input."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab.methods.droppos import droppos, droppos_masks, droppos_sigma, droppos_smoothing_map

from ._reference import Reference


def ref_map(num, sigma, normalize="row", width=None):
    """S from the paper's Gaussian on grid coordinates, by loops (lists)."""
    w = width or int(round(math.sqrt(num)))
    if sigma == 0:
        return [[1.0 if i == j else 0.0 for j in range(num)] for i in range(num)]
    W = [[math.exp(-((i // w - j // w) ** 2 + (i % w - j % w) ** 2) / sigma**2) for j in range(num)] for i in range(num)]
    if normalize == "row":
        return [[W[i][j] / sum(W[i]) for j in range(num)] for i in range(num)]
    return [[W[i][j] / sum(W[k][j] for k in range(num)) for j in range(num)] for i in range(num)]


def ref_droppos(pred, ids_keep, mask_pos, weights=None, sigma=1.0, normalize="row"):
    pred, ids, m = pred.tolist(), ids_keep.tolist(), mask_pos.tolist()
    n, v, L = len(pred), len(pred[0]), len(pred[0][0])
    S = ref_map(L, sigma, normalize)
    num = den = 0.0
    for b in range(n):
        for t in range(v):
            w = m[b][t] * (1.0 if weights is None else float(weights[b][t]))
            row = pred[b][t]
            mx = max(row)
            lse = mx + math.log(sum(math.exp(x - mx) for x in row))
            ce = -sum(S[ids[b][t]][l] * (row[l] - lse) for l in range(L))
            num += w * ce
            den += w
    return num / den


def _inputs(g):
    n, v, L = 2, 5, 9
    pred = 2 * torch.randn(n, v, L, generator=g, dtype=torch.float64)
    ids = torch.stack([torch.randperm(L, generator=g)[:v] for _ in range(n)])
    mask = (torch.rand(n, v, generator=g) < 0.6).double()
    mask[:, 0] = 1.0
    return pred, ids, mask


REFERENCES = {"droppos": Reference(ref_droppos, inputs=_inputs)}


def _sheet():
    torch.manual_seed(0)
    ids_keep = torch.tensor([[0, 4, 8, 2]])
    mask_pos = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    pred = torch.randn(1, 4, 9, dtype=torch.float64)
    return pred, ids_keep, mask_pos


def test_sheet_vector_official_column_map():
    S = droppos_smoothing_map(9, 1.0, normalize="column", dtype=torch.float64)
    expected = [0.520417, 0.152894, 0.009532, 0.152894, 0.044919, 0.002800, 0.009532, 0.002800, 0.000175]
    torch.testing.assert_close(S[0], torch.tensor(expected, dtype=torch.float64), atol=1e-6, rtol=0)
    torch.testing.assert_close(S.sum(0), torch.ones(9, dtype=torch.float64))
    pred, ids, mask = _sheet()
    assert float(droppos(pred, ids, mask, normalize="column")) == pytest.approx(2.179667, abs=1e-6)
    assert float(droppos(pred, ids, mask, sigma=0.0)) == pytest.approx(2.781837, abs=1e-6)
    assert float(droppos(pred, ids, mask, sigma=0.0, normalize="column")) == pytest.approx(2.781837, abs=1e-6)


def test_row_map_is_the_default_and_a_distribution():
    S = droppos_smoothing_map(196, 1.0, dtype=torch.float64)
    torch.testing.assert_close(S.sum(1), torch.ones(196, dtype=torch.float64))
    col = droppos_smoothing_map(196, 1.0, normalize="column", dtype=torch.float64).sum(1)
    assert 0.88 < float(col.min()) < 0.89 and 1.10 < float(col.max()) < 1.11  # the sheet's 0.886–1.110
    pred, ids, mask = _sheet()
    row = droppos(pred, ids, mask)
    assert float(row) == pytest.approx(ref_droppos(pred, ids, mask), rel=1e-12)
    assert float(row) != pytest.approx(2.179667, abs=1e-3)
    assert float(reglab.create("droppos").penalty(pred, ids, mask)) == pytest.approx(float(row), rel=1e-12)


def test_options_against_reference():
    g = torch.Generator().manual_seed(1)
    pred, ids, mask = _inputs(g)
    weights = torch.rand(2, 5, generator=g, dtype=torch.float64)
    for sigma, norm in [(0.5, "row"), (2.0, "column"), (0.0, "row")]:
        got = droppos(pred, ids, mask, weights, sigma=sigma, normalize=norm)
        assert float(got) == pytest.approx(ref_droppos(pred, ids, mask, weights, sigma, norm), rel=1e-10)
    # a non-square grid: 3×4 positions
    pred12 = torch.randn(1, 3, 12, generator=g, dtype=torch.float64)
    ids12, m12 = torch.tensor([[0, 5, 11]]), torch.ones(1, 3)
    S = torch.tensor(ref_map(12, 1.0, width=4), dtype=torch.float64)
    expected = -(S[ids12[0]] * pred12[0].log_softmax(-1)).sum(-1).mean()
    assert float(droppos(pred12, ids12, m12, grid_width=4)) == pytest.approx(float(expected), rel=1e-12)


def test_only_dropped_positions_count():
    pred, ids, mask = _sheet()
    changed = pred.clone()
    changed[0, 1] += 100 * torch.randn(9, dtype=torch.float64)  # token 1 keeps its position: ignored
    assert float(droppos(changed, ids, mask)) == pytest.approx(float(droppos(pred, ids, mask)), rel=1e-12)
    # a bool mask is the same as a float one
    assert float(droppos(pred, ids, mask.bool())) == pytest.approx(float(droppos(pred, ids, mask)), rel=1e-12)


def test_gradcheck():
    pred, ids, mask = _inputs(torch.Generator().manual_seed(2))
    assert torch.autograd.gradcheck(lambda p: droppos(p, ids, mask), (pred.clone().requires_grad_(),))


def test_masks_and_sigma_schedule():
    g = torch.Generator().manual_seed(0)
    ids, mask = droppos_masks(4, 196, generator=g)
    assert ids.shape == mask.shape == (4, 49)
    assert all(len(set(r)) == 49 for r in ids.tolist())
    assert mask.sum(1).tolist() == [49 - int(49 * 0.25)] * 4
    ids2, _ = droppos_masks(4, 196, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ids, ids2)
    assert droppos_sigma(0, 100) == 1.0 and droppos_sigma(50, 100, 2.0) == 1.0 and droppos_sigma(100, 100) == 0.0


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda a: a.__setitem__(1, a[1] + 9), "ids_keep in \\[0, 9\\)"),
        (lambda a: a.__setitem__(1, a[1][:, :-1]), "ids_keep of shape"),
        (lambda a: a.__setitem__(2, torch.zeros_like(a[2])), "no dropped position"),
        (lambda a: a.__setitem__(2, -a[2]), "non-negative mask_pos"),
        (lambda a: a.__setitem__(0, a[0][..., :8]), "grid of width"),
        (lambda a: a.__setitem__(1, a[1].double()), "integer ids_keep"),
    ],
)
def test_bad_inputs_are_named(change, match):
    args = list(_inputs(torch.Generator().manual_seed(0)))
    change(args)
    with pytest.raises(reglab.RegularizerInputError, match=match) as e:
        reglab.create("droppos")(*args)
    assert "DropPos" in str(e.value)


@pytest.mark.parametrize("kwargs", [{"sigma": -1.0}, {"normalize": "both"}, {"grid_width": 0}])
def test_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError, match="DropPos"):
        reglab.create("droppos", **kwargs)
