"""Spectral norm regularization (Yoshida & Miyato, 2017) against numpy's power iteration and SVD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reglab
import reglab.functional as RF
from reglab import RegularizerInputError

from ._weights import (
    IDS,
    SHAPES,
    bad_weights,
    check_power_iteration_resumes_standalone,
    check_state_resumes_through_attach,
    rand,
    rows_np,
)


def ref_spectral_norm_step(w, u):
    """One step of Algorithm 1 from the left vector u: v = Wᵀu/‖Wᵀu‖, u' = Wv/‖Wv‖, σ = u'ᵀWv.
    Returns (½σ², u', v)."""
    m = rows_np(w)
    v = m.T @ u
    v = v / np.linalg.norm(v)
    u_new = m @ v
    u_new = u_new / np.linalg.norm(u_new)
    sigma = float(u_new @ m @ v)
    return 0.5 * sigma**2, u_new, v


def ref_spectral_norm(w):
    """A fresh SpectralNorm's penalty: its start vector is a float32 normal draw (size out), normalized."""
    u = torch.randn(w.shape[0], dtype=torch.float32)
    u = u / u.norm()
    return ref_spectral_norm_step(w, u.double().numpy())[0]


REFERENCES = {"spectral_norm": ref_spectral_norm}


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_spectral_norm_power_iteration(shape):
    w = rand(shape).requires_grad_(True)
    m = rows_np(w)
    u0 = torch.randn(m.shape[0], dtype=torch.float64)
    value = RF.spectral_norm_penalty(w, u0)
    v_ref = m.T @ u0.numpy()
    v_ref /= np.linalg.norm(v_ref)
    u_ref = m @ v_ref
    sigma_ref = np.linalg.norm(u_ref)  # uᵀWv with u = Wv/‖Wv‖
    assert value.item() == pytest.approx(0.5 * sigma_ref**2)
    assert value.item() == pytest.approx(ref_spectral_norm_step(w, u0.numpy())[0])
    value.backward()  # gradient σ·u·vᵀ with u, v constants (Yoshida & Miyato, Alg. 1)
    expected = sigma_ref * np.outer(u_ref / sigma_ref, v_ref)
    np.testing.assert_allclose(w.grad.reshape(m.shape).numpy(), expected, rtol=1e-8, atol=1e-12)
    reg = reglab.SpectralNorm()
    for _ in range(300):
        value = reg.penalty(w)
    assert value.item() == pytest.approx(0.5 * np.linalg.norm(m, 2) ** 2, rel=1e-4)


def test_bad_inputs_raise_with_name():
    for x in bad_weights(matrix=True):
        with pytest.raises(RegularizerInputError, match="spectral_norm"):
            RF.spectral_norm_penalty(x, torch.ones(2))
        with pytest.raises(RegularizerInputError, match="spectral_norm"):
            RF.spectral_norm_penalty(x)


def test_state_resumes_standalone():
    check_power_iteration_resumes_standalone("spectral_norm")


def test_state_resumes_through_attach():
    check_state_resumes_through_attach("spectral_norm")


@pytest.mark.parametrize("shape", SHAPES, ids=IDS)
def test_spectral_norm_penalty_without_a_vector_is_exact_and_a_scalar(shape):
    w = rand(shape).requires_grad_(True)
    m = rows_np(w)
    value = RF.spectral_norm_penalty(w)
    assert isinstance(value, torch.Tensor) and value.ndim == 0
    assert value.item() == pytest.approx(0.5 * np.linalg.norm(m, 2) ** 2, rel=1e-10)
    value.backward()
    left, sigmas, right = np.linalg.svd(m)
    np.testing.assert_allclose(w.grad.reshape(m.shape).numpy(), sigmas[0] * np.outer(left[:, 0], right[0]), atol=1e-8)
    both = RF.spectral_norm_penalty([w, w])
    assert both.item() == pytest.approx(2 * value.item())


def test_the_old_name_is_deprecated_and_the_registry_name_is_unchanged():
    w = rand((4, 3))
    with pytest.warns(DeprecationWarning, match="spectral_norm_penalty"):
        value, u = RF.spectral_norm(w, torch.ones(4) / 2)
    assert value.item() == pytest.approx(RF.spectral_norm_penalty(w, torch.ones(4) / 2).item())
    assert u.shape == (4,)
    assert reglab.info("spectral_norm").name == "spectral_norm"
    assert reglab.SpectralNorm.function is RF.spectral_norm_penalty
    assert reglab.SpectralNorm().get_config() == {"name": "spectral_norm", "weight": 1e-2}
