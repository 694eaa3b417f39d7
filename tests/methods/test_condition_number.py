"""Condition-number immunization (Zheng et al., 2025) against a numpy reference of the official reg_loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import reglab
from reglab import RegularizerInputError
from reglab.methods.condition_number import condition_number_immunization, condition_number_terms

from ._reference import Reference


def ref_terms(zp, zh, eps=1e-6):
    zp, zh = np.asarray(zp, dtype=np.float64), np.asarray(zh, dtype=np.float64)
    k = zp.shape[1]
    sp, sh = zp.T @ zp, zh.T @ zh
    ep = np.linalg.eigvalsh(sp + eps * np.eye(k))
    eh = np.linalg.eigvalsh(sh + eps * np.eye(k))
    smin = eh[eh > eps].min()
    well = ep.max() ** 2 / 2 - (sp**2).sum() / (2 * k)
    ill = 1.0 / ((sh**2).sum() / (2 * k) - smin**2 / 2)
    return well, ill


def ref_penalty(zp, zh, lambda_well=1.0, lambda_ill=5e7):
    well, ill = ref_terms(zp.detach().numpy(), zh.detach().numpy())
    return lambda_well * well + lambda_ill * ill


def _inputs(g):
    return (torch.randn(16, 6, generator=g, dtype=torch.float64),
            torch.randn(12, 6, generator=g, dtype=torch.float64) * torch.linspace(0.2, 2.0, 6, dtype=torch.float64))


REFERENCES = {"condition_number_immunization": Reference(ref_penalty, inputs=_inputs)}


def test_terms_and_rank_deficient_harmful_gram():
    g = torch.Generator().manual_seed(0)
    zp, zh = _inputs(g)
    t = condition_number_terms(zp, zh)
    well, ill = ref_terms(zp.numpy(), zh.numpy())
    assert t.well.item() == pytest.approx(well, rel=1e-10)
    assert t.ill.item() == pytest.approx(ill, rel=1e-10)
    # fewer harmful rows than features: the null eigenvalues are skipped (σ_min of the non-null space)
    zh = torch.randn(3, 6, generator=g, dtype=torch.float64)
    assert condition_number_terms(zp, zh).ill.item() == pytest.approx(ref_terms(zp.numpy(), zh.numpy())[1], rel=1e-8)


def test_well_term_is_zero_for_equal_eigenvalues_and_nonnegative():
    q = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))[0]
    z = torch.cat([q, q]) * 1.5  # zᵀz = 2·2.25·I
    t = condition_number_terms(z, torch.randn(10, 6, dtype=torch.float64))
    assert abs(t.well.item()) < 1e-4  # only the 1e-6 eps shift remains
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        assert condition_number_terms(*_inputs(g)).well.item() >= 0


def test_gradcheck_and_directions():
    g = torch.Generator().manual_seed(1)
    zp, zh = (t.requires_grad_(True) for t in _inputs(g))
    assert torch.autograd.gradcheck(lambda a, b: condition_number_immunization(a, b, lambda_ill=1.0), (zp, zh))
    # a gradient step on R_ill raises the harmful Gram's condition number
    zh2 = zh.detach().clone().requires_grad_(True)
    condition_number_terms(zp.detach(), zh2).ill.backward()
    kappa = lambda z: float(torch.linalg.cond(z.T @ z))  # noqa: E731
    stepped = zh2.detach() - 50.0 * zh2.grad
    assert kappa(stepped) > kappa(zh.detach())


def test_class_weights_and_config():
    reg = reglab.create("condition_number_immunization", lambda_well=2.0, lambda_ill=3.0, weight=0.5)
    g = torch.Generator().manual_seed(2)
    zp, zh = _inputs(g)
    well, ill = ref_terms(zp.numpy(), zh.numpy())
    assert reg(zp, zh).item() == pytest.approx(0.5 * (2.0 * well + 3.0 * ill), rel=1e-10)
    assert reglab.from_config(reg.get_config()).get_config() == reg.get_config()


def test_bad_input():
    zp = torch.randn(8, 4)
    with pytest.raises(RegularizerInputError, match="ConditionNumberImmunization.*dimension"):
        condition_number_terms(zp, torch.randn(8, 5))
    with pytest.raises(RegularizerInputError, match="ConditionNumberImmunization.*all zero"):
        condition_number_terms(zp, torch.zeros(8, 4))
    with pytest.raises(RegularizerInputError, match="ConditionNumberImmunization.*perfectly conditioned"):
        condition_number_terms(zp, torch.eye(4))
    with pytest.raises(RegularizerInputError, match="ConditionNumberImmunization.*lambda_ill"):
        reglab.create("condition_number_immunization", lambda_ill=-1.0)
