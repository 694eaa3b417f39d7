"""Gram iteration (Delattre et al. 2023): bound ≥ σ_max (dense; conv against the explicit operator),
convergence, the sheet's test vector, the threshold penalty, gradients, bad input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import reglab
from reglab.methods.gram_iteration import GramIteration, gram_iteration, gram_spectral_bound

from ._reference import Reference

D = torch.float64


def _np_gram_bound(m: np.ndarray, n_iter: int) -> float:
    """Gram iteration on one matrix in numpy, with the rescaling, written from the paper."""
    if m.shape[1] > m.shape[0]:
        m = m.conj().T
    log_norm, inv = 0.0, 1.0
    for _ in range(n_iter):
        r = np.sqrt((np.abs(m) ** 2).sum())
        m = m / r
        log_norm = 2 * (log_norm + np.log(r))
        m = m.conj().T @ m
        inv /= 2
    return float(np.sqrt((np.abs(m) ** 2).sum()) ** inv * np.exp(inv * log_norm))


def _np_blocks(k: np.ndarray, n: int) -> list[np.ndarray]:
    """The c_out × c_in DFT block of a (c_out, c_in, kh, kw) kernel at every one of the n² frequencies,
    by the DFT sum written out (no FFT)."""
    _, _, kh, kw = k.shape
    blocks = []
    for u in range(n):
        for v in range(n):
            phase = np.exp(-2j * np.pi * (np.arange(kh)[:, None] * u + np.arange(kw)[None, :] * v) / n)
            blocks.append((k * phase).sum(axis=(2, 3)))
    return blocks


def ref_gram_iteration(w, n_iter=6, input_size=32, threshold=1.0):
    k = w.detach().numpy()
    if k.ndim == 2:
        bound = _np_gram_bound(k, n_iter)
    else:
        bound = max(_np_gram_bound(b, n_iter) for b in _np_blocks(k, input_size))
    return bound if bound > threshold else 0.0


REFERENCES = {"gram_iteration": Reference(ref_gram_iteration, rtol=1e-9)}


def _conv_operator(kernel: torch.Tensor, size: tuple[int, ...], padding_mode: str = "circular") -> torch.Tensor:
    """The matrix of x ↦ conv(x, kernel) ('same' size, circular or zero padding), one basis input per column."""
    c_in = kernel.shape[1]
    numel = c_in * int(np.prod(size))
    basis = torch.eye(numel, dtype=kernel.dtype).reshape(numel, c_in, *size)
    pads = [p for k in reversed(kernel.shape[2:]) for p in (k // 2, k // 2)]
    padded = F.pad(basis, pads, mode=padding_mode) if padding_mode == "circular" else F.pad(basis, pads)
    conv = F.conv2d if kernel.ndim == 4 else F.conv1d
    return conv(padded, kernel).reshape(numel, -1).T


def _sigma(m: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(m, ord=2))


def test_sheet_test_vector():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 3, 3, dtype=D)
    expected = {1: 11.245646, 2: 10.979094, 4: 10.963871, 6: 10.963871}
    for t, value in expected.items():
        assert gram_spectral_bound(x, t, 8).item() == pytest.approx(value, abs=1e-6)
    w = torch.randn(5, 3, dtype=D)
    assert _sigma(w) == pytest.approx(2.913001, abs=1e-6)
    assert gram_spectral_bound(w, 3).item() == pytest.approx(2.917873, abs=1e-6)
    assert gram_spectral_bound(w, 6).item() == pytest.approx(2.913001, abs=1e-6)
    xr = x.clone().requires_grad_(True)
    gram_spectral_bound(xr, 6, 8).backward()
    assert xr.grad.norm().item() == pytest.approx(2.124807, abs=1e-6)
    reg = GramIteration(input_size=8)  # r = 0.1, τ = 1 by default
    assert reg(x).item() == pytest.approx(1.096387, abs=1e-6)


@pytest.mark.parametrize("shape", [(5, 3), (3, 5), (7, 7), (1, 4), (20, 6)])
def test_dense_bound_is_above_sigma_and_converges(shape):
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=D)
    exact = _sigma(w)
    bounds = [gram_spectral_bound(w, t).item() for t in range(1, 9)]
    assert all(b >= exact * (1 - 1e-12) for b in bounds)
    assert all(a >= b * (1 - 1e-12) for a, b in zip(bounds, bounds[1:]))  # decreasing in T
    assert bounds[-1] == pytest.approx(exact, rel=1e-9)
    assert bounds[0] == pytest.approx(float((torch.linalg.svdvals(w) ** 4).sum() ** 0.25), rel=1e-12)


@pytest.mark.parametrize(
    "shape,size",
    [((4, 3, 3, 3), (4, 4)), ((2, 5, 3, 3), (4, 4)), ((3, 2, 3, 3), (4, 6)), ((4, 3, 3), (8,)), ((2, 2, 1, 1), (4, 4))],
)
def test_conv_bound_against_the_explicit_circular_operator(shape, size):
    """The independent reference: the conv's full matrix built with F.conv on basis inputs (circular
    padding), its largest singular value."""
    k = torch.randn(*shape, generator=torch.Generator().manual_seed(len(size) + shape[0]), dtype=D)
    exact = _sigma(_conv_operator(k, size))
    bounds = [gram_spectral_bound(k, t, size if len(size) > 1 else size[0]).item() for t in range(1, 9)]
    assert all(b >= exact * (1 - 1e-12) for b in bounds)
    assert all(a >= b * (1 - 1e-12) for a, b in zip(bounds, bounds[1:]))
    assert bounds[-1] == pytest.approx(exact, rel=1e-8)


def test_zero_padding_is_bounded_by_the_circular_operator_of_the_padded_size():
    k = torch.randn(3, 2, 3, 3, generator=torch.Generator().manual_seed(0), dtype=D)
    exact_zero = _sigma(_conv_operator(k, (4, 4), padding_mode="zeros"))
    assert gram_spectral_bound(k, 6, 6).item() >= exact_zero


def test_gradcheck():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(5, 3, generator=g, dtype=D, requires_grad=True)
    k = torch.randn(3, 2, 3, 3, generator=g, dtype=D, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: gram_spectral_bound(a, 4), (w,))
    assert torch.autograd.gradcheck(lambda a: gram_spectral_bound(a, 4, 5), (k,))
    assert torch.autograd.gradcheck(lambda a, b: gram_iteration([a, b], 5, 5), (w, k))


def test_gradient_is_that_of_the_exact_sigma_when_converged():
    """∂σ_max/∂W = u₁v₁ᵀ; the bound's gradient approaches it as T grows."""
    w = torch.randn(6, 4, generator=torch.Generator().manual_seed(2), dtype=D, requires_grad=True)
    gram_spectral_bound(w, 8).backward()
    u, _, vh = torch.linalg.svd(w.detach())
    torch.testing.assert_close(w.grad, torch.outer(u[:, 0], vh[0]), rtol=1e-6, atol=1e-8)


def test_threshold_penalises_the_whole_bound_not_the_excess():
    def diag(top):  # σ_max = top, well separated, so T = 6 is exact to machine precision
        return torch.diag(torch.tensor([top, 0.1, 0.05], dtype=D))

    assert gram_iteration(diag(0.5)).item() == 0.0
    assert gram_iteration(diag(1.5)).item() == pytest.approx(1.5, rel=1e-12)  # not 0.5
    assert gram_iteration([diag(1.5), diag(0.5), diag(2.0)]).item() == pytest.approx(3.5, rel=1e-12)
    assert gram_iteration(diag(0.5), threshold=0.0).item() == pytest.approx(0.5, rel=1e-12)
    # equal singular values: the bound is σ·m^(2^-(T+1)) (m = multiplicity), still ≥ σ
    assert gram_iteration(1.5 * torch.eye(3, dtype=D)).item() == pytest.approx(1.5 * 3 ** (1 / 128), rel=1e-12)


def test_scale_equivariant_and_no_overflow():
    k = torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(3))
    base = gram_spectral_bound(k, 6, 8).item()
    for c in (1e-20, 3.0, 1e20):
        assert gram_spectral_bound(k * c, 6, 8).item() == pytest.approx(base * c, rel=1e-5)


def test_zero_kernel_has_zero_bound_and_finite_gradient():
    k = torch.zeros(2, 2, 3, 3, dtype=D, requires_grad=True)
    b = gram_spectral_bound(k, 6, 4)
    b.backward()
    assert b.item() == 0.0 and torch.isfinite(k.grad).all()
    # a kernel with a zero frequency block (zero-sum, one channel) keeps finite gradients too
    z = torch.tensor([[[[1.0, -1.0]]]], dtype=D, requires_grad=True)
    gram_spectral_bound(z, 6, 4).backward()
    assert torch.isfinite(z.grad).all()


def test_runs_on_any_device_it_is_given():
    k = torch.randn(4, 3, 3, 3, device="meta")
    out = gram_iteration(k)
    assert out.is_meta and out.shape == ()


def test_bad_inputs_are_named():
    k = torch.randn(4, 3, 3, 3)
    with pytest.raises(reglab.RegularizerInputError, match="gram_iteration.*input_size"):
        gram_iteration(k, input_size=2)
    with pytest.raises(reglab.RegularizerInputError, match="gram_iteration.*input_size"):
        gram_iteration(k, input_size=(8,))
    with pytest.raises(reglab.RegularizerInputError, match="gram_iteration.*shape"):
        gram_iteration(torch.randn(2, 2, 2, 2, 2))
    with pytest.raises(reglab.RegularizerInputError, match="gram_iteration.*one weight tensor"):
        gram_spectral_bound([k, k])
    for bad in ({"n_iter": 0}, {"input_size": 0}, {"input_size": 2.5}, {"threshold": -1.0}):
        with pytest.raises(ValueError, match="GramIteration"):
            GramIteration(**bad)


def test_attached_to_a_cnn_uses_the_given_input_size():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                              torch.nn.Linear(4 * 8 * 8, 10))  # fmt: skip
    regs = reglab.attach(net, [GramIteration(input_size=8)])
    expected = 0.1 * sum(
        F.threshold(gram_spectral_bound(w, 6, 8), 1.0, 0.0) for w in (net[0].weight, net[3].weight)
    )
    torch.testing.assert_close(regs.penalty(), expected)
