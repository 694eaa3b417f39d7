"""Early-Learning Regularization (Liu et al., 2020): plain-Python EMA targets and term, state, bad inputs."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab import functional as RF
from reglab.core.errors import RegularizerInputError

from ._naive import softmax
from ._reference import Reference


def elr_reference(logit_batches, index_batches, n, c, beta, lam):
    """Plain-Python ELR following Liu et al. (2020) and the official clamp/renormalize."""
    t = [[0.0] * c for _ in range(n)]
    terms = []
    for logits, index in zip(logit_batches, index_batches):
        vals = []
        for row, i in zip(logits.tolist(), index.tolist()):
            p = [min(max(v, 1e-4), 1 - 1e-4) for v in softmax(row)]
            s = sum(p)
            t[i] = [beta * a + (1 - beta) * b / s for a, b in zip(t[i], p)]
            vals.append(math.log(1 - sum(a * b for a, b in zip(p, t[i]))))
        terms.append(lam * sum(vals) / len(vals))
    return t, terms


def ref_elr_first_call(logits, index):
    """The unweighted term of a fresh ELR (num_samples=8, num_classes=3, β = 0.7) on its first
    training call: the zero targets of the batch's samples first take one EMA step."""
    _, terms = elr_reference([logits], [index], 8, 3, 0.7, 1.0)
    return terms[0]


REFERENCES = {
    "elr": Reference(
        ref_elr_first_call,
        inputs=lambda g: (3 * torch.randn(8, 3, generator=g, dtype=torch.float64), torch.randperm(8, generator=g)),
        # the EMA targets are a float32 buffer (and the update runs in float32) whatever the logits' dtype
        rtol=1e-6,
    )
}


def test_elr_matches_reference_over_steps():
    n, c = 10, 4
    elr = reglab.create("elr", num_samples=n, num_classes=c)
    assert elr.current_weight == 3.0 and elr.beta == 0.7
    logits = [torch.randn(5, c, dtype=torch.float64) * 3 for _ in range(3)]
    index = [torch.tensor([0, 3, 5, 7, 9]), torch.tensor([1, 3, 5, 2, 8]), torch.tensor([3, 0, 4, 6, 9])]
    got = [float(elr(z, i)) for z, i in zip(logits, index)]
    t_ref, terms_ref = elr_reference(logits, index, n, c, 0.7, 3.0)
    assert got == pytest.approx(terms_ref, rel=1e-5, abs=1e-6)
    assert torch.allclose(elr.targets.double(), torch.tensor(t_ref, dtype=torch.float64), atol=1e-6)


def test_elr_eval_mode_does_not_update_and_weight_is_lambda():
    elr = reglab.ELR(6, 3, weight=2.0)
    z, i = torch.randn(4, 3), torch.tensor([0, 1, 2, 3])
    elr(z, i)
    saved = elr.targets.clone()
    elr.eval()
    a = elr(z, i)
    assert torch.equal(elr.targets, saved)
    assert float(a) == pytest.approx(2.0 * float(elr.penalty(z, i)))
    assert float(a) < 0  # log(1 − ⟨p, t⟩) < 0 once targets are non-zero


def test_elr_gradient_pulls_towards_targets():
    elr = reglab.ELR(2, 3)
    elr.targets.copy_(torch.tensor([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]]))
    elr.eval()
    z = torch.zeros(2, 3, requires_grad=True)
    elr(z, torch.tensor([0, 1])).backward()
    # descending the term raises the logit of each target's main class
    assert z.grad[0].argmin() == 0 and z.grad[1].argmin() == 1


def test_elr_functional_gradcheck():
    z = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.softmax(torch.randn(4, 3, dtype=torch.float64), 1)
    assert torch.autograd.gradcheck(lambda a: RF.elr(a, t), (z,))


def test_elr_resume_continues_exactly():
    def run(steps, elr):
        torch.manual_seed(1)
        batches = [(torch.randn(4, 3), torch.randperm(8)[:4]) for _ in range(6)]
        return [float(elr(z, i)) for z, i in batches[steps[0] : steps[1]]]

    full = reglab.ELR(8, 3)
    ref = run((0, 6), full)
    first = reglab.ELR(8, 3)
    run((0, 3), first)
    resumed = reglab.ELR(8, 3)
    resumed.load_state_dict(first.state_dict())
    assert run((3, 6), resumed) == pytest.approx(ref[3:])
    assert "targets" in full.state_dict()


@pytest.mark.parametrize(
    "logits, index, match",
    [
        (torch.randn(3, 4), torch.tensor([0, 1, 8]), r"\[0, 8\)"),
        (torch.randn(3, 4), torch.tensor([0, 1, -1]), "dataset indices"),
        (torch.randn(3, 5), torch.tensor([0, 1, 2]), "num_classes=4"),
        (torch.randn(4), torch.tensor([0]), "2 dimensions"),
        (torch.full((2, 4), float("nan")), torch.tensor([0, 1]), "NaN"),
        (torch.ones(2, 4, dtype=torch.long), torch.tensor([0, 1]), "floating-point"),
        (torch.randn(0, 4), torch.tensor([], dtype=torch.long), "empty"),
        (torch.randn(3, 4), torch.tensor([0, 1]), "2 indices for a batch of 3"),
        (torch.randn(2, 4), torch.tensor([0.0, 1.0]), "integer"),
    ],
)
def test_elr_bad_inputs(logits, index, match):
    elr = reglab.ELR(8, 4)
    with pytest.raises(RegularizerInputError, match="ELR") as err:
        elr(logits, index)
    assert err.match(match)


def test_elr_batch_of_one_row_works():
    elr = reglab.ELR(4, 3)
    assert torch.isfinite(elr(torch.randn(1, 3), torch.tensor([2])))


def test_elr_bad_constructor():
    with pytest.raises(RegularizerInputError, match="num_classes"):
        reglab.ELR(4, 1)
    with pytest.raises(RegularizerInputError, match="beta"):
        reglab.ELR(4, 3, beta=1.5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_elr_dtypes(dtype):
    elr = reglab.ELR(4, 3)
    z = torch.randn(3, 3)
    ref = float(reglab.ELR(4, 3)(z, torch.tensor([0, 1, 2])))
    out = elr(z.to(dtype), torch.tensor([0, 1, 2]))
    assert out.dtype == dtype and elr.targets.dtype == torch.float32
    assert float(out) == pytest.approx(ref, rel=5e-2 if dtype == torch.bfloat16 else 1e-5)


def test_label_noise_task_quick():
    from reglab.bench.tasks import get_task

    r = get_task("label_noise")({"name": "elr"}, seed=0, quick=True)
    assert {"test_accuracy", "final_accuracy", "memorization", "val_accuracy"} <= set(r.metrics)
    assert "best_accuracy" not in r.metrics  # nothing selects on the test split
    assert 0.3 < r.metrics["test_accuracy"] <= 1 and len(r.curves["test_accuracy"]) == 8
    assert r.setup["selection"].startswith("test_accuracy at the epoch of best noisy-validation")
