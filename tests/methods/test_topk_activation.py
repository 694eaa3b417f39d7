import numpy as np
import pytest
import torch
from torch import nn

import reglab
from reglab.methods.topk_activation import topk_activation


def ref_topk(a, k, relu=True):
    """numpy: per row, the k largest values kept (ReLU'd), the rest zero."""
    a = np.asarray(a, dtype=np.float64)
    out = np.zeros_like(a)
    for i, row in enumerate(a.reshape(-1, a.shape[-1])):
        keep = np.argsort(-row, kind="stable")[:k]
        out.reshape(-1, a.shape[-1])[i, keep] = np.maximum(row[keep], 0) if relu else row[keep]
    return out


def test_sheet_test_vector():
    x = torch.tensor([[0.1257, -0.1321, 0.6404, 0.1049, -0.5357, 0.3616],
                      [1.3040, 0.9471, -0.7037, -1.2654, -0.6233, 0.0413]])  # fmt: skip
    expected = [[0, 0, 0.6404, 0, 0, 0.3616], [1.3040, 0.9471, 0, 0, 0, 0]]
    np.testing.assert_allclose(reglab.create("topk", k=2)(x).numpy(), np.array(expected), atol=1e-6)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("relu", [True, False])
def test_matches_reference(seed, relu):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(3, 4, 10, generator=g, dtype=torch.float64)
    out = topk_activation(a, k=4, relu=relu)
    np.testing.assert_allclose(out.numpy(), ref_topk(a.numpy(), 4, relu), rtol=0, atol=0)


def test_relu_keeps_fewer_than_k_when_the_top_values_are_negative():
    a = torch.tensor([[-1.0, -2.0, -3.0, 0.5]])
    assert int((topk_activation(a, k=3) != 0).sum()) == 1  # pitfall 1 of the sheet
    assert int((topk_activation(a, k=3, relu=False) != 0).sum()) == 3


def test_gradient_is_identity_on_kept_entries_only():
    a = torch.tensor([[0.3, 2.0, -1.0, 1.0, 0.1]], dtype=torch.float64, requires_grad=True)
    topk_activation(a, k=2).sum().backward()
    assert a.grad.tolist() == [[0.0, 1.0, 0.0, 1.0, 0.0]]
    b = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: topk_activation(t, k=3), (b,))


def test_module_in_a_model_and_exact_sparsity():
    model = nn.Sequential(nn.Linear(8, 32), reglab.create("topk", k=5))
    z = model(torch.randn(16, 8))
    assert ((z != 0).sum(dim=1) <= 5).all()
    assert reglab.from_config(model[1].get_config()).k == 5


@pytest.mark.parametrize(
    "bad, match",
    [(lambda: topk_activation(torch.randn(2, 3), k=4), "TopK keeps k=4"),
     (lambda: topk_activation(torch.randn(2, 3), k=0), "TopK"),
     (lambda: topk_activation(torch.ones(2, 3, dtype=torch.long), k=1), "TopK expects a floating-point"),
     (lambda: topk_activation(torch.tensor([[float("nan"), 1.0]]), k=1), "TopK got NaN"),
     (lambda: topk_activation([1.0, 2.0], k=1), "TopK expects a torch.Tensor"),
     (lambda: reglab.create("topk", k=1.5), "TopK")],
)  # fmt: skip
def test_bad_input_is_named(bad, match):
    with pytest.raises(reglab.RegularizerInputError, match=match):
        bad()
