"""PromptSRC's agreement with the frozen model (Khattak et al. 2023), against numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._reference import Reference


def _log_softmax(a):
    a = a - a.max(1, keepdims=True)
    return a - np.log(np.exp(a).sum(1, keepdims=True))


def ref_agreement(f, f0, z, z0, lam=10.0):
    """F.l1_loss(mean) on normalized features · λ + F.kl_div(log_target=True, sum)/numel, in numpy."""
    f, f0, z, z0 = (np.asarray(t, dtype=np.float64) for t in (f, f0, z, z0))
    f = f / np.linalg.norm(f, axis=1, keepdims=True)
    f0 = f0 / np.linalg.norm(f0, axis=1, keepdims=True)
    lp, lp0 = _log_softmax(z), _log_softmax(z0)
    return lam * np.abs(f - f0).mean() + (np.exp(lp0) * (lp0 - lp)).sum() / z.size


def _inputs(g):
    return (torch.randn(6, 5, generator=g, dtype=torch.float64), torch.randn(6, 5, generator=g, dtype=torch.float64),
            3 * torch.randn(6, 4, generator=g, dtype=torch.float64), 3 * torch.randn(6, 4, generator=g, dtype=torch.float64))


REFERENCES = {"frozen_agreement": Reference(lambda *a: ref_agreement(*(t.numpy() for t in a)), inputs=_inputs)}


def test_matches_numpy_weights_and_zero_at_agreement():
    f, f0, z, z0 = _inputs(torch.Generator().manual_seed(1))
    assert float(RF.frozen_agreement(f, f0, z, z0, feature_weight=25.0)) == pytest.approx(
        ref_agreement(f, f0, z, z0, 25.0), rel=1e-12)
    assert float(RF.frozen_agreement(3 * f, f, z, z)) == pytest.approx(0.0, abs=1e-12)  # scale-free features
    reg = reglab.create("frozen_agreement")
    assert reg.weight == 1.0 and reg.feature_weight == 10.0


def test_gradcheck():
    f, f0, z, z0 = _inputs(torch.Generator().manual_seed(2))
    f.requires_grad_(), z.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: RF.frozen_agreement(a, f0, b, z0), (f, z))


def test_bad_input():
    f, f0, z, z0 = _inputs(torch.Generator().manual_seed(3))
    with pytest.raises(RegularizerInputError, match="FrozenAgreement expects features and frozen features of the same shape"):
        RF.frozen_agreement(f, f0[:, :3], z, z0)
    with pytest.raises(RegularizerInputError, match="FrozenAgreement expects logits and frozen logits of the same shape"):
        RF.frozen_agreement(f, f0, z, z0[:, :3])
    with pytest.raises(RegularizerInputError, match="FrozenAgreement expects one row of logits per feature row"):
        RF.frozen_agreement(f, f0, z[:5], z0[:5])
    with pytest.raises(RegularizerInputError, match="FrozenAgreement"):
        RF.frozen_agreement(f, f0, z.clone().fill_(float("nan")), z0)
