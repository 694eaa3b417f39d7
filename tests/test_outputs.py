"""Output / label regularizers: references, gradients, state, bad inputs."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import reglab
from reglab import RegularizerInputError
from reglab import functional as RF

HYP = settings(max_examples=20, deadline=None)


def probs_ref(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    s = sum(e)
    return [v / s for v in e]


# ---------------------------------------------------------------- ELR
def elr_reference(logit_batches, index_batches, n, c, beta, lam):
    """Plain-Python ELR following Liu et al. (2020) and the official clamp/renormalize."""
    t = [[0.0] * c for _ in range(n)]
    terms = []
    for logits, index in zip(logit_batches, index_batches):
        vals = []
        for row, i in zip(logits.tolist(), index.tolist()):
            p = [min(max(v, 1e-4), 1 - 1e-4) for v in probs_ref(row)]
            s = sum(p)
            t[i] = [beta * a + (1 - beta) * b / s for a, b in zip(t[i], p)]
            vals.append(math.log(1 - sum(a * b for a, b in zip(p, t[i]))))
        terms.append(lam * sum(vals) / len(vals))
    return t, terms


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
        batches = [(torch.randn(4, 3), torch.randint(0, 8, (4,))) for _ in range(6)]
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


# ---------------------------------------------------------------- entropy family
def entropy_ref(z):
    return sum(-sum(p * math.log(p) for p in probs_ref(row)) for row in z.tolist()) / z.shape[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_entropy_and_confidence_penalty_reference(dtype):
    z = torch.randn(6, 5, dtype=dtype) * 2
    h = entropy_ref(z.double())
    assert float(RF.entropy(z)) == pytest.approx(h, rel=1e-5)
    assert float(RF.confidence_penalty(z)) == pytest.approx(-h, rel=1e-5)
    assert RF.entropy(z).dtype == dtype
    assert float(reglab.ConfidencePenalty(0.5)(z)) == pytest.approx(-0.5 * h, rel=1e-5)
    assert float(reglab.Entropy(0.5, direction="min")(z)) == pytest.approx(0.5 * h, rel=1e-5)
    assert float(reglab.Entropy(0.5, direction="max")(z)) == pytest.approx(-0.5 * h, rel=1e-5)


def test_entropy_bf16():
    z = torch.randn(4, 6)
    assert float(RF.entropy(z.bfloat16())) == pytest.approx(float(RF.entropy(z)), rel=3e-2)


def test_entropy_bounds_and_gradcheck():
    assert float(RF.entropy(torch.zeros(3, 7))) == pytest.approx(math.log(7))
    z = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(RF.entropy, (z,))
    assert torch.autograd.gradcheck(RF.confidence_penalty, (z,))


@HYP
@given(st.integers(0, 10_000), st.floats(-5, 5))
def test_entropy_invariances(seed, shift):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(3, 5, generator=g, dtype=torch.float64)
    perm = torch.randperm(5, generator=g)
    h = float(RF.entropy(z))
    assert float(RF.entropy(z[:, perm])) == pytest.approx(h, abs=1e-9)
    assert float(RF.entropy(z + shift)) == pytest.approx(h, abs=1e-9)


def test_entropy_direction_is_validated():
    with pytest.raises(RegularizerInputError, match="direction"):
        reglab.Entropy(direction="up")


# ---------------------------------------------------------------- consistency
def sym_kl_ref(a, b):
    total = 0.0
    for ra, rb in zip(a.tolist(), b.tolist()):
        pa, pb = probs_ref(ra), probs_ref(rb)
        total += sum(x * math.log(x / y) for x, y in zip(pa, pb)) + sum(y * math.log(y / x) for x, y in zip(pa, pb))
    return total / a.shape[0]


def test_consistency_reference_symmetry_zero():
    a, b = torch.randn(5, 4), torch.randn(5, 4)
    assert float(RF.consistency(a, b)) == pytest.approx(sym_kl_ref(a, b), rel=1e-5)
    assert float(RF.consistency(a, b)) == pytest.approx(float(RF.consistency(b, a)), rel=1e-6)
    assert float(RF.consistency(a, a)) == pytest.approx(0.0, abs=1e-7)
    assert float(reglab.Consistency(2.0)(a, b)) == pytest.approx(2 * sym_kl_ref(a, b), rel=1e-5)
    aa = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    bb = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(RF.consistency, (aa, bb))


def test_consistency_bad_inputs():
    with pytest.raises(RegularizerInputError, match="Consistency.*same shape"):
        RF.consistency(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(RegularizerInputError, match="Consistency.*NaN"):
        RF.consistency(torch.randn(3, 4), torch.full((3, 4), float("nan")))
    with pytest.raises(RegularizerInputError, match="Consistency.*2 classes"):
        RF.consistency(torch.randn(3, 1), torch.randn(3, 1))


# ---------------------------------------------------------------- logit clip
def test_logit_clip_reference():
    z = torch.tensor([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0]])
    out = reglab.LogitClip(delta=1.0)(z)
    expected = torch.tensor([[0.6, 0.8], [0.3, 0.4], [0.0, 0.0]])
    assert torch.allclose(out, expected)
    out1 = RF.logit_clip(torch.tensor([[3.0, -4.0]]), delta=2.0, p=1.0)
    assert torch.allclose(out1, torch.tensor([[6 / 7, -8 / 7]]))


@HYP
@given(st.integers(0, 10_000), st.floats(0.1, 10.0))
def test_logit_clip_bounds_norm_and_keeps_argmax(seed, delta):
    z = torch.randn(6, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * 5
    out = RF.logit_clip(z, delta)
    assert (out.norm(dim=1) <= delta * (1 + 1e-9)).all()
    assert torch.equal(out.argmax(1), z.argmax(1))
    small = z.norm(dim=1) <= delta
    assert torch.allclose(out[small], z[small])


def test_logit_clip_gradcheck_and_bad_input():
    z = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: RF.logit_clip(a, 0.7), (z,))
    with pytest.raises(RegularizerInputError, match="LogitClip"):
        reglab.LogitClip()(torch.tensor([1.0, float("inf")])[None])
    with pytest.raises(RegularizerInputError, match="delta"):
        reglab.LogitClip(delta=0)


# ---------------------------------------------------------------- label smoothing
def test_label_smoothing_matches_torch():
    z, y = torch.randn(5, 4), torch.tensor([0, 3, 1, 1, 2])
    ls = reglab.create("label_smoothing")
    t = ls(y, 4)
    assert torch.allclose(t.sum(1), torch.ones(5))
    assert float(t[0, 0]) == pytest.approx(0.9 + 0.1 / 4)
    ours = RF.soft_cross_entropy(z, t)
    assert float(ours) == pytest.approx(float(F.cross_entropy(z, y, label_smoothing=0.1)), rel=1e-6)


def test_label_smoothing_bad_labels():
    ls = reglab.LabelSmoothing()
    with pytest.raises(RegularizerInputError, match=r"LabelSmoothing.*\[0, 4\)"):
        ls(torch.tensor([0, 4]), 4)
    with pytest.raises(RegularizerInputError, match="LabelSmoothing.*integer"):
        ls(torch.tensor([0.0, 1.0]), 4)
    with pytest.raises(RegularizerInputError, match="epsilon"):
        reglab.LabelSmoothing(epsilon=1.0)


# ---------------------------------------------------------------- PS-KD
def test_pskd_alpha_ramp_and_targets():
    pskd = reglab.create("pskd", num_samples=6, num_classes=3, total_epochs=4)
    assert pskd.alpha == pytest.approx(0.8 * 1 / 4)
    y, idx = torch.tensor([0, 2]), torch.tensor([1, 4])
    z = torch.randn(2, 3)
    first = pskd(y, idx, z)
    # never seen: p_prev is the one-hot label, so the target is the label itself
    assert torch.allclose(first, F.one_hot(y, 3).float())
    pskd.set_epoch(2)
    assert pskd.alpha == pytest.approx(0.8 * 3 / 4)
    second = pskd(y, idx, torch.randn(2, 3))
    expected = (1 - 0.6) * F.one_hot(y, 3).float() + 0.6 * torch.softmax(z, 1)
    assert torch.allclose(second, expected, atol=1e-6)
    pskd.next_epoch()
    assert pskd.alpha == pytest.approx(0.8)
    pskd.next_epoch()
    assert pskd.alpha == pytest.approx(0.8)  # capped at α_T after T epochs


def test_pskd_eval_does_not_record_and_state_round_trips():
    pskd = reglab.PSKD(5, 3, total_epochs=2)
    pskd(torch.tensor([1]), torch.tensor([2]), torch.randn(1, 3))
    pskd.set_epoch(1)
    fresh = reglab.PSKD(5, 3, total_epochs=2)
    fresh.load_state_dict(pskd.state_dict())
    assert fresh.alpha == pskd.alpha and bool(fresh.seen[2])
    fresh.eval()
    before = fresh.predictions.clone()
    fresh(torch.tensor([0]), torch.tensor([3]), torch.randn(1, 3))
    assert torch.equal(fresh.predictions, before) and not bool(fresh.seen[3])


@pytest.mark.parametrize(
    "labels, index, logits, match",
    [
        (torch.tensor([0, 3]), torch.tensor([0, 1]), torch.randn(2, 3), r"\[0, 3\)"),
        (torch.tensor([0, 1]), torch.tensor([0, 1]), torch.randn(2, 4), "num_classes=3"),
        (torch.tensor([0, 1]), torch.tensor([0, 5]), torch.randn(2, 3), "dataset indices"),
        (torch.tensor([0]), torch.tensor([0, 1]), torch.randn(2, 3), "1 labels for a batch of 2"),
        (torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([[0.0, float("nan"), 1.0]] * 2), "NaN"),
    ],
)
def test_pskd_bad_inputs(labels, index, logits, match):
    with pytest.raises(RegularizerInputError, match="PSKD") as err:
        reglab.PSKD(5, 3)(labels, index, logits)
    assert err.match(match)


def test_soft_cross_entropy_reference():
    z = torch.randn(3, 4, dtype=torch.float64)
    t = torch.softmax(torch.randn(3, 4, dtype=torch.float64), 1)
    ref = -sum(
        sum(tt * math.log(p) for tt, p in zip(trow, probs_ref(zrow))) for trow, zrow in zip(t.tolist(), z.tolist())
    ) / 3
    assert float(RF.soft_cross_entropy(z, t)) == pytest.approx(ref, rel=1e-9)
    with pytest.raises(RegularizerInputError, match="shape"):
        RF.soft_cross_entropy(z, t[:, :3])


def test_output_lab_tasks_quick():
    from reglab.bench.tasks import get_task

    r = get_task("label_noise")({"name": "elr"}, seed=0, quick=True)
    assert set(r.metrics) == {"final_accuracy", "best_accuracy", "memorization"}
    assert 0.3 < r.metrics["best_accuracy"] <= 1 and len(r.curves["test_accuracy"]) == 8
    r = get_task("calibration")({"name": "pskd"}, seed=0, quick=True)
    assert 0 <= r.metrics["ece"] <= 1 and r.metrics["accuracy"] > 0.3
    r = get_task("calibration")({"name": "label_smoothing"}, seed=0, quick=True)
    assert 0 <= r.metrics["ece"] <= 1


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_elr_dtypes(dtype):
    elr = reglab.ELR(4, 3)
    z = torch.randn(3, 3)
    ref = float(reglab.ELR(4, 3)(z, torch.tensor([0, 1, 2])))
    out = elr(z.to(dtype), torch.tensor([0, 1, 2]))
    assert out.dtype == dtype and elr.targets.dtype == torch.float32
    assert float(out) == pytest.approx(ref, rel=5e-2 if dtype == torch.bfloat16 else 1e-5)
