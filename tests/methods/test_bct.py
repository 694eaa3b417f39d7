import math

import numpy as np
import pytest
import torch

import reglab
from reglab.methods.bct import bct_influence, bct_pseudo_classifier

from ._reference import Reference


def _inputs(g):
    f = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    w_old = torch.randn(3, 4, generator=g, dtype=torch.float64)
    return f, y, w_old


def ref_bct(f, y, w_old):
    """Plain loops: mean over samples of −log softmax(W_old f_i)_{y_i}."""
    f, w_old = np.asarray(f.detach(), dtype=np.float64), np.asarray(w_old, dtype=np.float64)
    total = 0.0
    for fi, yi in zip(f, np.asarray(y)):
        logits = [float(np.dot(row, fi)) for row in w_old]
        top = max(logits)
        total += -(logits[int(yi)] - top - math.log(sum(math.exp(v - top) for v in logits)))
    return total / len(f)


REFERENCES = {"bct": Reference(ref_bct, inputs=_inputs, build={"weight": 1.0})}


def test_sheet_vector_shape_and_default_weight():
    reg = reglab.create("bct")
    assert reg.current_weight == 10.0  # alpha of BT²'s configs/cifar100_BCT.yaml
    f, y, w = _inputs(torch.Generator().manual_seed(0))
    assert float(reg(f, y, w)) == pytest.approx(10 * ref_bct(f, y, w), rel=1e-12)


def test_gradcheck_and_old_classifier_gets_no_gradient_when_detached():
    f, y, w = _inputs(torch.Generator().manual_seed(3))
    f.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: bct_influence(t, y, w), (f,))


def test_pseudo_classifier_is_old_class_means():
    old = torch.tensor([[1.0, 0.0], [3.0, 2.0], [0.0, 4.0]])
    w = bct_pseudo_classifier(old, torch.tensor([0, 0, 1]), 2)
    torch.testing.assert_close(w, torch.tensor([[2.0, 1.0], [0.0, 4.0]]))
    with pytest.raises(reglab.RegularizerInputError, match=r"classes \[2\] have no sample"):
        bct_pseudo_classifier(old, torch.tensor([0, 0, 1]), 3)


def test_compatible_features_score_lower():
    # features aligned with their old class centre give a lower influence loss than rotated ones
    w = torch.eye(3, dtype=torch.float64) * 5
    y = torch.tensor([0, 1, 2])
    aligned = w[y] / 5
    rotated = aligned[:, [1, 2, 0]]
    assert bct_influence(aligned, y, w) < bct_influence(rotated, y, w)


@pytest.mark.parametrize(
    "call, match",
    [(lambda: bct_influence(torch.randn(3, 4), torch.tensor([0, 1, 5]), torch.randn(3, 4)), r"BCT expects labels in \[0, 3\)"),
     (lambda: bct_influence(torch.randn(3, 4), torch.tensor([0, 1, 2]), torch.randn(3, 5)), "BCT expects the old classifier"),
     (lambda: bct_influence(torch.randn(3, 4), torch.tensor([0, 1]), torch.randn(3, 4)), "BCT got 2 labels"),
     (lambda: bct_influence(torch.randn(3, 4), torch.tensor([0.0, 1, 2]), torch.randn(3, 4)), "BCT expects integer")],
)  # fmt: skip
def test_bad_input_is_named(call, match):
    with pytest.raises(reglab.RegularizerInputError, match=match):
        call()
