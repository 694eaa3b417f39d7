"""reglab.diagnostics.lipschitz_bound: an upper bound on a feed-forward net's Lipschitz constant."""

import math

import pytest
import torch
from torch import nn

import reglab
from reglab.diagnostics import layer_lipschitz_bounds, lipschitz_bound

D = torch.float64


def _empirical(model: nn.Module, shape, n: int = 64, seed: int = 0) -> float:
    """max over random inputs of ‖J(x)‖₂, the local Lipschitz constant: a lower bound of the true one."""
    g = torch.Generator().manual_seed(seed)
    model.eval()
    best = 0.0
    for _ in range(n):
        x = torch.randn(*shape, generator=g, dtype=D)
        j = torch.autograd.functional.jacobian(lambda z: model(z.unsqueeze(0))[0], x)
        best = max(best, float(torch.linalg.matrix_norm(j.reshape(j.shape[0] if j.ndim > 1 else 1, -1), ord=2)))
    return best


def _operator(layer: nn.Module, shape) -> torch.Tensor:
    """The matrix of a linear layer (bias removed) from basis inputs."""
    numel = math.prod(shape)
    basis = torch.eye(numel, dtype=D).reshape(numel, *shape)
    with torch.no_grad():
        out = layer(basis) - layer(torch.zeros(1, *shape, dtype=D))
    return out.reshape(numel, -1).T


def test_mlp_bound_is_the_product_of_the_spectral_norms_and_above_the_empirical_constant():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3)).double()
    bound = lipschitz_bound(model)
    exact = math.prod(float(torch.linalg.matrix_norm(m.weight, ord=2)) for m in model if isinstance(m, nn.Linear))
    assert bound == pytest.approx(exact, rel=1e-6)
    assert bound >= exact
    assert bound >= _empirical(model, (6,))


def test_cnn_bound_is_above_the_empirical_constant():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(),
        nn.Conv2d(4, 6, 3, padding=1, padding_mode="circular"), nn.LeakyReLU(0.1),
        nn.MaxPool2d(2), nn.Conv2d(6, 4, 3, stride=2, padding=1), nn.GELU(),
        nn.Flatten(), nn.Linear(4 * 2 * 2, 5),
    ).double()  # fmt: skip
    bound = lipschitz_bound(model, input_shape=(1, 8, 8))
    assert math.isfinite(bound) and bound >= _empirical(model, (1, 8, 8))
    names = [n for n, _ in layer_lipschitz_bounds(model, (1, 8, 8))]
    assert names == [str(i) for i in range(9)]


def test_conv1d_bound_is_above_the_empirical_constant():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv1d(2, 3, 5, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 8, 4))
    model = model.double()
    assert lipschitz_bound(model, input_shape=(2, 18)) >= _empirical(model, (2, 18))


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"),
        nn.Conv2d(2, 3, 3, padding=1),
        nn.Conv2d(2, 3, 3),
        nn.Conv2d(2, 3, 3, padding="same"),
        nn.Conv2d(2, 4, 3, padding=2, dilation=2),
        nn.Conv2d(4, 4, 3, padding=1, groups=2),
        nn.Conv2d(2, 3, 3, padding=1, stride=2),
    ],
)
def test_single_conv_bound_against_the_explicit_operator(conv):
    """Each conv's bound is ≥ the largest singular value of its explicit matrix (from basis inputs),
    and equal to it for circular padding (no stride)."""
    torch.manual_seed(3)
    conv = conv.double()
    shape = (conv.in_channels, 6, 6)
    exact = float(torch.linalg.matrix_norm(_operator(conv, shape), ord=2))
    bound = lipschitz_bound(conv, input_shape=shape)
    assert bound >= exact * (1 - 1e-9)
    if conv.padding_mode == "circular":
        assert bound == pytest.approx(exact, rel=1e-6)


def test_batchnorm_in_eval_form_and_sigmoid():
    torch.manual_seed(4)
    bn = nn.BatchNorm1d(5)
    with torch.no_grad():
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(-2.0, 2.0)
    model = nn.Sequential(nn.Linear(3, 5), bn, nn.Sigmoid(), nn.Linear(5, 2)).double()
    layers = dict(layer_lipschitz_bounds(model))
    expected_bn = float((bn.weight.abs() / torch.sqrt(bn.running_var + bn.eps)).max())
    assert layers["1"] == pytest.approx(expected_bn, rel=1e-12) and layers["2"] == 0.25
    assert lipschitz_bound(model) >= _empirical(model, (3,))


def test_nested_sequentials_are_flattened():
    torch.manual_seed(5)
    inner = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    model = nn.Sequential(inner, nn.Sequential(nn.Linear(4, 2)))
    assert [n for n, _ in layer_lipschitz_bounds(model)] == ["0.0", "0.1", "1.0"]


def test_refuses_what_it_cannot_bound():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return x + self.fc(x)

    for model in (nn.Sequential(nn.Linear(4, 4), Residual()), nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4)), Residual()):
        with pytest.raises(reglab.RegularizerInputError, match="lipschitz_bound cannot bound"):
            lipschitz_bound(model)
    with pytest.raises(reglab.RegularizerInputError, match="input_shape"):
        lipschitz_bound(nn.Sequential(nn.Conv2d(1, 2, 3)))
    with pytest.raises(reglab.RegularizerInputError, match="nn.Module"):
        lipschitz_bound("model")


def test_regularized_training_lowers_the_bound():
    """Training with the Gram-iteration penalty alone shrinks the bound below its threshold-free start."""
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.mul_(4.0)
    before = lipschitz_bound(model)
    regs = reglab.attach(model, [reglab.create("gram_iteration", weight=1.0)])
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for _ in range(100):
        loss = regs.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert lipschitz_bound(model) < 0.5 * before
