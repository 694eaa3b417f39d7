import math

import numpy as np
import pytest
import torch

import reglab
from reglab.methods.codebook_entropy import codebook_entropy

from ._reference import Reference


def ref_codebook_entropy(logits, temperature=0.01, ws=1.0, wc=1.0):
    """numpy from the formula: per-row softmax(ℓ/τ), mean row entropy, entropy of the mean (log(p̄ + 1e-5))."""
    x = np.asarray(logits.detach(), dtype=np.float64) / temperature
    x = x - x.max(axis=1, keepdims=True)
    q = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    logq = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    sample = float(np.mean([-(row * lrow).sum() for row, lrow in zip(q, logq)]))
    mean = q.mean(axis=0)
    codebook = float(-(mean * np.log(mean + 1e-5)).sum())
    return ws * sample - wc * codebook


def _inputs(g):  # affinities of a VQ (−squared distances), at a scale where τ = 1 is informative
    return (torch.randn(12, 5, generator=g, dtype=torch.float64),)


REFERENCES = {
    "codebook_entropy": Reference(
        lambda logits: ref_codebook_entropy(logits, temperature=1.0), inputs=_inputs, build={"weight": 1.0, "temperature": 1.0}
    )
}


def test_sheet_numeric_example_structure():
    # the sheet's example: N=5, K=4, τ=1 gives R = mean H − H(mean q) with mean H < H(mean q) ≤ log K
    g = torch.Generator().manual_seed(0)
    z = torch.randn(5, 2, generator=g, dtype=torch.float64)
    codes = torch.randn(4, 2, generator=g, dtype=torch.float64)
    logits = -torch.cdist(z, codes).pow(2)
    t = reglab.create("codebook_entropy", temperature=1.0).components(logits)
    assert 0 <= float(t.sample) < float(t.codebook) <= math.log(4)
    assert float(codebook_entropy(logits, temperature=1.0)) == pytest.approx(ref_codebook_entropy(logits, 1.0), rel=1e-12)


@pytest.mark.parametrize("tau, ws, wc", [(0.01, 1.0, 1.0), (0.5, 0.3, 2.0)])
def test_matches_reference(tau, ws, wc):
    logits = torch.randn(9, 6, dtype=torch.float64)
    got = codebook_entropy(logits, temperature=tau, sample_weight=ws, codebook_weight=wc)
    assert float(got) == pytest.approx(ref_codebook_entropy(logits, tau, ws, wc), rel=1e-10, abs=1e-12)


def test_default_weight_and_temperature_are_open_magvit2s():
    reg = reglab.create("codebook_entropy")
    assert reg.current_weight == 0.1 and reg.temperature == 0.01


def test_gradcheck():
    logits = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: codebook_entropy(t, temperature=1.0), (logits,))


def test_minimizing_it_spreads_usage_over_the_codebook():
    # every token starts on code 0: minimizing the loss raises the codebook entropy towards log K
    torch.manual_seed(0)
    logits = (torch.randn(64, 8) * 0.1 + torch.tensor([5.0] + [0.0] * 7)).requires_grad_()
    opt = torch.optim.Adam([logits], lr=0.05)
    reg = reglab.create("codebook_entropy", weight=1.0, temperature=1.0)
    before = float(reg.components(logits).codebook)
    for _ in range(200):
        opt.zero_grad()
        reg(logits).backward()
        opt.step()
    t = reg.components(logits)
    assert before < 0.5 and float(t.codebook) > before + 1.0
    assert len(torch.unique(logits.argmax(dim=1))) == 8  # every code in use
    assert float(t.sample) < 0.3  # and each token is confident


def test_bad_temperature_is_named():
    with pytest.raises(reglab.RegularizerInputError, match="CodebookEntropy"):
        reglab.create("codebook_entropy", temperature=0.0)
