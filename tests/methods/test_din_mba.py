import numpy as np
import pytest
import torch

import reglab
from reglab.methods.din_mba import mba_l2

from ._reference import Reference


def _inputs(g):
    w = torch.randn(6, 3, generator=g, dtype=torch.float64)
    ids = torch.tensor([[0, 2], [2, 3], [5, 0]])
    counts = torch.tensor([100, 10, 1, 50, 5, 7])
    return w, ids, counts


def ref_mba(w, ids, counts):
    """Written from the paper's Eq. 5 for one batch: every distinct id once, ‖w_j‖²/n_j."""
    w = np.asarray(w.detach(), dtype=np.float64)
    total = 0.0
    for j in sorted(set(int(i) for i in np.asarray(ids).reshape(-1))):
        total += sum(float(v) ** 2 for v in w[j]) / float(counts[j])
    return total


REFERENCES = {"mba": Reference(ref_mba, inputs=_inputs)}


def test_sheet_example_structure():
    # sheet: V=5, d=2, n=[100,10,1,50,5], batch ids [0,2,2,3]: rows 1 and 4 get no gradient, row 2 (n=1) dominates
    g = torch.Generator().manual_seed(0)
    w = torch.randn(5, 2, generator=g, dtype=torch.float64, requires_grad=True)
    n = torch.tensor([100, 10, 1, 50, 5])
    r = reglab.create("mba", weight=0.01)(w, torch.tensor([0, 2, 2, 3]), n)
    r.backward()
    assert float(r) == pytest.approx(0.01 * ref_mba(w, [0, 2, 3], n), rel=1e-12)
    assert w.grad[1].abs().sum() == 0 and w.grad[4].abs().sum() == 0
    # ∂/∂w_j = 2λ w_j / n_j on present rows (the paper's Eq. 6 with the factor 2 in λ)
    torch.testing.assert_close(w.grad[[0, 2, 3]], 2 * 0.01 * w.detach()[[0, 2, 3]] / n[[0, 2, 3], None].double())


def test_repeated_ids_count_once_and_gradcheck():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    counts = torch.tensor([3.0, 1.0, 2.0, 4.0], dtype=torch.float64)
    assert float(mba_l2(w, torch.tensor([1, 1, 1]), counts)) == pytest.approx(float(mba_l2(w, torch.tensor([1]), counts)))
    assert torch.autograd.gradcheck(lambda t: mba_l2(t, torch.tensor([0, 3, 3]), counts), (w,))


def test_rare_features_are_shrunk_more_per_step_than_dense_l2():
    w = torch.ones(3, 2, dtype=torch.float64, requires_grad=True)
    mba_l2(w, torch.tensor([0, 1]), torch.tensor([1, 100, 5])).backward()
    assert w.grad[0, 0] > w.grad[1, 0] > 0 and w.grad[2].abs().sum() == 0


@pytest.mark.parametrize(
    "call, match",
    [(lambda w: mba_l2(w, torch.tensor([0, 9]), torch.ones(4)), "ids from 0 to 9 for an embedding table of 4"),
     (lambda w: mba_l2(w, torch.tensor([0.0]), torch.ones(4)), "MBA expects integer feature ids"),
     (lambda w: mba_l2(w, torch.tensor([1]), torch.tensor([1, 0, 1, 1])), "MBA needs a positive training count"),
     (lambda w: mba_l2(w, torch.tensor([1]), torch.ones(3)), "MBA expects one count per row")],
)  # fmt: skip
def test_bad_input_is_named(call, match):
    with pytest.raises(reglab.RegularizerInputError, match=match):
        call(torch.randn(4, 2))
