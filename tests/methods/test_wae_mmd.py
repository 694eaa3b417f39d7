"""WAE-MMD (Tolstikhin et al. 2018): the IMQ MMD of the official code, against plain loops."""

from __future__ import annotations

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._reference import Reference

SCALES = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0]


def _k(a, b, c_base):
    sq = sum((x - y) ** 2 for x, y in zip(a, b))
    return sum(c_base * s / (c_base * s + sq) for s in SCALES)


def ref_mmd(q, p, sigma=1.0):
    """Written from the paper's U/V-statistic (tolstikhin/wae wae.py L287-309), plain loops."""
    n, m, d = len(q), len(p), len(q[0])
    c = 2.0 * d * sigma**2
    qq = sum(_k(q[i], q[j], c) for i in range(n) for j in range(n) if i != j) / (n * n - n)
    pp = sum(_k(p[i], p[j], c) for i in range(m) for j in range(m) if i != j) / (m * m - m)
    qp = sum(_k(q[i], p[j], c) for i in range(n) for j in range(m)) / (n * m)
    return qq + pp - 2 * qp


def ref_default(z):
    # the penalty draws its prior sample first, from the global RNG the generic test seeds
    prior = torch.randn(z.shape[0], z.shape[1]).to(z.dtype)  # drawn in float32, as the penalty does
    return ref_mmd(z.tolist(), prior.tolist())


REFERENCES = {"wae_mmd": Reference(ref_default, inputs=lambda g: (0.5 * torch.randn(6, 3, generator=g, dtype=torch.float64) + 0.3,))}


def test_matches_loops_with_given_prior():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(7, 4, generator=g, dtype=torch.float64)
    p = 2.0 * torch.randn(5, 4, generator=g, dtype=torch.float64)
    assert float(RF.wae_mmd(z, p)) == pytest.approx(ref_mmd(z.tolist(), p.tolist()), rel=1e-10)
    assert float(RF.wae_mmd(z, p, prior_scale=2.0)) == pytest.approx(ref_mmd(z.tolist(), p.tolist(), 2.0), rel=1e-10)


def test_sheet_example_sign_and_scale():
    """The sheet's small-sample case: q_Z = 0.5·N + 0.3 vs N(0, I), n = 4, d = 2: the U-statistic can be
    negative (sheet value −0.160029 for its numpy seed); a shifted, shrunk q_Z is far from the prior."""
    g = torch.Generator().manual_seed(0)
    vals = [float(RF.wae_mmd(0.5 * torch.randn(4, 2, generator=g, dtype=torch.float64) + 0.3,
                             torch.randn(4, 2, generator=g, dtype=torch.float64))) for _ in range(20)]
    assert min(vals) < 0  # unbiased within-sample terms: negative estimates happen
    far = RF.wae_mmd(0.01 * torch.randn(64, 8, dtype=torch.float64) + 3.0, torch.randn(64, 8, dtype=torch.float64))
    near = RF.wae_mmd(torch.randn(64, 8, dtype=torch.float64), torch.randn(64, 8, dtype=torch.float64))
    assert float(far) > 1.0 > abs(float(near)) * 10


def test_gradcheck():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(4, 2, generator=g, dtype=torch.float64, requires_grad=True)
    p = torch.randn(4, 2, generator=g, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: RF.wae_mmd(a, p), (z,))


def test_batch_order_and_config_roundtrip():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(9, 4, generator=g, dtype=torch.float64)
    p = torch.randn(9, 4, generator=g, dtype=torch.float64)
    perm = torch.randperm(9, generator=g)
    reg = reglab.create("wae_mmd", prior_scale=0.5)
    assert float(reg(z[perm], p)) == pytest.approx(float(reg(z, p)), rel=1e-12)
    again = reglab.from_config(reg.get_config())
    assert float(again(z, p)) == pytest.approx(float(reg(z, p)))
    assert reg.weight == 10.0  # the official MNIST λ
    assert float(reg(z, p)) == pytest.approx(10.0 * ref_mmd(z.tolist(), p.tolist(), 0.5), rel=1e-10)


def test_fresh_prior_each_call_is_seeded_by_the_global_rng():
    z = torch.randn(8, 3, dtype=torch.float64)
    torch.manual_seed(5)
    a = RF.wae_mmd(z)
    torch.manual_seed(5)
    b = RF.wae_mmd(z)
    c = RF.wae_mmd(z)
    assert float(a) == float(b) != float(c)


def test_bad_input():
    z = torch.randn(8, 3)
    with pytest.raises(RegularizerInputError, match="WAEMMD expects prior samples with the codes' dimension 3"):
        RF.wae_mmd(z, torch.randn(8, 4))
    with pytest.raises(RegularizerInputError, match="WAEMMD"):
        RF.wae_mmd(z, torch.full((8, 3), float("nan")))
    with pytest.raises(RegularizerInputError, match="WAEMMD needs a batch of at least 2"):
        RF.wae_mmd(torch.randn(1, 3))
    with pytest.raises(RegularizerInputError, match="WAEMMD expects prior_scale to be a positive number"):
        reglab.WAEMMD(prior_scale=0.0)


def test_gradient_pulls_a_shifted_batch_toward_the_prior():
    torch.manual_seed(0)
    z = (0.1 * torch.randn(32, 4, dtype=torch.float64) + 2.0).requires_grad_()
    RF.wae_mmd(z, torch.randn(32, 4, dtype=torch.float64)).backward()
    assert bool((z.grad.sum(0) > 0).all())  # descent moves every coordinate of the mean toward 0
