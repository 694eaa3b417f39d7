"""RIDG (Chen et al. 2023): rationale bank and penalty, against a loop transcription of RIDG.update."""

from __future__ import annotations

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._reference import Reference


def ref_ridg(f, y, w, bank=None, seen=None, mu=0.001):
    """liangchen527/RIDG domainbed/algorithms.py RIDG.update, with loops over classes, samples and entries."""
    c, d = len(w), len(w[0])
    bank = [[[0.0] * d for _ in range(c)] for _ in range(c)] if bank is None else bank
    seen = [False] * c if seen is None else seen
    total = 0.0
    for cls in sorted(set(y)):
        rows = [i for i in range(len(y)) if y[i] == cls]
        r = [[[w[k][j] * f[i][j] for j in range(d)] for k in range(c)] for i in rows]
        mean = [[sum(ri[k][j] for ri in r) / len(r) for j in range(d)] for k in range(c)]
        if not seen[cls]:
            bank[cls] = mean
            seen[cls] = True
        else:
            bank[cls] = [[(1 - mu) * bank[cls][k][j] + mu * mean[k][j] for j in range(d)] for k in range(c)]
        total += sum(sum((ri[k][j] - bank[cls][k][j]) ** 2 for j in range(d)) for ri in r for k in range(c)) / (c * len(r))
    return total, bank, seen


def _inputs(g):
    return (torch.randn(7, 4, generator=g, dtype=torch.float64), torch.tensor([0, 1, 1, 2, 0, 0, 2]),
            torch.randn(3, 4, generator=g, dtype=torch.float64))


REFERENCES = {"ridg": Reference(lambda f, y, w: ref_ridg(f.tolist(), y.tolist(), w.tolist())[0], inputs=_inputs)}


def test_two_steps_match_loops_and_bank_state():
    g = torch.Generator().manual_seed(1)
    f1, y1, w = _inputs(g)
    f2 = torch.randn(7, 4, generator=g, dtype=torch.float64)
    y2 = torch.tensor([1, 1, 2, 2, 2, 0, 1])
    reg = reglab.create("ridg", momentum=0.2)
    assert reg.weight == 0.01
    p1 = reg.penalty(f1, y1, w)
    r1, bank, seen = ref_ridg(f1.tolist(), y1.tolist(), w.tolist(), mu=0.2)
    p2 = reg.penalty(f2, y2, w)
    r2, bank, seen = ref_ridg(f2.tolist(), y2.tolist(), w.tolist(), bank, seen, mu=0.2)
    assert float(p1) == pytest.approx(r1, rel=1e-10) and float(p2) == pytest.approx(r2, rel=1e-10)
    torch.testing.assert_close(reg.bank, torch.tensor(bank, dtype=torch.float64))
    again = reglab.from_config(reg.get_config())
    again.load_state_dict(reg.state_dict())
    torch.testing.assert_close(again.bank, reg.bank)
    assert again.seen.tolist() == [True, True, True]


def test_first_step_is_within_class_spread_and_gradcheck():
    g = torch.Generator().manual_seed(2)
    f, y, w = _inputs(g)
    f.requires_grad_(), w.requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: RF.ridg(a, y, b).penalty, (f, w))
    same = torch.ones(7, 4, dtype=torch.float64)  # identical rationales within every class: zero penalty
    assert float(RF.ridg(same, y, w.detach()).penalty) == pytest.approx(0.0, abs=1e-14)


def test_eval_mode_keeps_the_bank():
    f, y, w = _inputs(torch.Generator().manual_seed(3))
    reg = reglab.create("ridg")
    reg(f, y, w)
    before = reg.bank.clone()
    reg.eval()
    reg(f + 1.0, y, w)
    torch.testing.assert_close(reg.bank, before)


def test_bad_input():
    f, y, w = _inputs(torch.Generator().manual_seed(4))
    with pytest.raises(RegularizerInputError, match="RIDG expects one label per feature row"):
        RF.ridg(f, y[:5], w)
    with pytest.raises(RegularizerInputError, match="RIDG expects integer class labels"):
        RF.ridg(f, y.double(), w)
    with pytest.raises(RegularizerInputError, match="RIDG got labels outside"):
        RF.ridg(f, y + 5, w)
    with pytest.raises(RegularizerInputError, match="RIDG expects features of the classifier's input size 4"):
        RF.ridg(f[:, :3], y, w)
    reg = reglab.create("ridg")
    reg(f, y, w)
    with pytest.raises(RegularizerInputError, match="RIDG's class bank is"):
        reg(f, y, torch.randn(5, 4, dtype=torch.float64))
