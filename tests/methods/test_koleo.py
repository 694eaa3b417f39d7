import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import reglab
from reglab.methods.koleo import koleo


def ref_koleo(z, eps=1e-8, ids=None):
    """Written from the paper with numpy loops: normalize, nearest other row, −mean log(ρ + eps)."""
    z = np.asarray(z.detach(), dtype=np.float64)
    x = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), eps)
    n = x.shape[0]
    total = 0.0
    for i in range(n):
        best = math.inf
        for j in range(n):
            if j == i or (ids is not None and int(ids[i]) == int(ids[j])):
                continue
            best = min(best, float(np.sqrt(((x[i] - x[j]) ** 2).sum())))
        total += math.log(best + eps)
    return -total / n


REFERENCES = {"koleo": ref_koleo}


def koleo_dinov2(x, eps=1e-8):
    """The sheet's transcription of DINOv2's KoLeoLoss.forward."""
    x = F.normalize(x, eps=eps, p=2, dim=-1)
    dots = x @ x.t()
    n = x.shape[0]
    dots.view(-1)[:: n + 1].fill_(-1)
    idx = dots.argmax(1)
    d = torch.nn.PairwiseDistance(2, eps=1e-8)(x, x[idx])
    return -torch.log(d + eps).mean()


def test_sheet_test_vector():
    torch.manual_seed(0)
    x = torch.randn(6, 4, dtype=torch.float64)
    assert x[0].tolist() == pytest.approx([-2.3104, -0.3733, -1.0608, 0.9995], abs=1e-4)
    xr = x.clone().requires_grad_()
    loss = koleo(xr)
    loss.backward()
    assert float(loss) == pytest.approx(0.270456, abs=1e-6)
    # the paper / spreadingvectors form −mean log(n·ρ) is a constant log n lower
    assert float(loss) - math.log(6) == pytest.approx(-1.521304, abs=1e-6)
    assert xr.grad[0].tolist() == pytest.approx([0.038322, 0.018098, -0.065262, 0.026077], abs=1e-6)
    # and DINOv2's own code (eps in the difference vector) agrees to 1e-7, value and gradient
    xd = x.clone().requires_grad_()
    ld = koleo_dinov2(xd)
    ld.backward()
    assert float(ld) == pytest.approx(float(loss), abs=1e-7)
    torch.testing.assert_close(xd.grad, xr.grad, atol=1e-7, rtol=0)


@pytest.mark.parametrize("seed", range(4))
def test_matches_reference_and_dinov2(seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(9, 5, generator=g, dtype=torch.float64) * 3
    assert float(koleo(z)) == pytest.approx(ref_koleo(z), rel=1e-12)
    assert float(koleo(z)) == pytest.approx(float(koleo_dinov2(z)), abs=1e-7)


def test_class_is_weight_times_penalty_and_dinov2_default():
    reg = reglab.create("koleo")
    assert reg.current_weight == pytest.approx(0.1)  # DINOv2's koleo_loss_weight
    z = torch.randn(8, 4, dtype=torch.float64)
    assert float(reg(z)) == pytest.approx(0.1 * ref_koleo(z), rel=1e-12)


def test_gradcheck():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(7, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(koleo, (z,))


def test_gradient_flows_through_both_endpoints():
    # rows 0 and 1 are each other's nearest neighbour; row 2 is far from both and
    # nobody's neighbour: its gradient comes only from its own term
    z = torch.tensor([[1.0, 0.0], [0.99, 0.14], [-1.0, 0.2]], dtype=torch.float64, requires_grad=True)
    koleo(z).backward()
    assert z.grad[0].abs().sum() > 0 and z.grad[1].abs().sum() > 0
    # moving row 0 towards row 1 increases the loss (the pair repels)
    with torch.no_grad():
        base = float(koleo(z))
        moved = z.clone()
        moved[0] = moved[0] + 0.01 * (moved[1] - moved[0])
        assert float(koleo(moved)) > base


def test_duplicate_rows_are_finite_log_eps():
    z = torch.tensor([[1.0, 2.0], [1.0, 2.0], [-3.0, 0.5], [0.2, -1.0]], dtype=torch.float64, requires_grad=True)
    loss = koleo(z)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
    assert float(loss) == pytest.approx(ref_koleo(z), rel=1e-12)
    # the two duplicates each contribute −log(eps); rows 2 and 3 their own distances
    x = F.normalize(z.detach(), dim=1)
    others = [-math.log(min(float((x[i] - x[j]).norm()) for j in range(4) if j != i) + 1e-8) for i in (2, 3)]
    assert float(loss) == pytest.approx((2 * -math.log(1e-8) + sum(others)) / 4, rel=1e-12)
    # a scaled copy normalizes to the same point: a tie too
    assert torch.isfinite(koleo(torch.tensor([[1.0, 1.0], [2.0, 2.0], [0.0, 1.0]])))


def test_scale_invariant_per_row():
    g = torch.Generator().manual_seed(5)
    z = torch.randn(6, 3, generator=g, dtype=torch.float64)
    s = torch.rand(6, 1, generator=g, dtype=torch.float64) * 10 + 0.1
    assert float(koleo(z * s)) == pytest.approx(float(koleo(z)), rel=1e-12)


def test_spread_points_have_lower_loss():
    # the 4 vertices of a square on the circle vs 4 points bunched together
    spread = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    bunched = torch.tensor([[1.0, 0.0], [1.0, 0.1], [1.0, 0.2], [1.0, 0.3]])
    assert float(koleo(spread)) < float(koleo(bunched))
    assert float(koleo(spread)) == pytest.approx(-math.log(math.sqrt(2) + 1e-8), rel=1e-6)


def test_ids_exclude_positives_as_sscd():
    g = torch.Generator().manual_seed(7)
    z1 = torch.randn(5, 4, generator=g, dtype=torch.float64)
    z = torch.cat([z1, z1 + 0.01 * torch.randn(5, 4, generator=g, dtype=torch.float64)])
    ids = torch.arange(5).repeat(2)
    got = koleo(z, ids=ids)
    assert float(got) == pytest.approx(ref_koleo(z, ids=ids), rel=1e-12)
    # without the exclusion every row's neighbour is its own other view: a much larger loss
    assert float(koleo(z)) > float(got) + 2
    # SSCD's own form: −mean log sqrt(clamp(2 − 2·max non-matching cosine, 1e-6))
    x = F.normalize(z, dim=1)
    sim = (x @ x.T).masked_fill(ids[:, None] == ids[None, :], -100.0)
    sscd = -(2 - 2 * sim.max(dim=1).values).clamp(min=1e-6).sqrt().log().mean()
    assert float(got) == pytest.approx(float(sscd), abs=1e-7)
    # through the class, as a per-call argument (not configuration)
    reg = reglab.KoLeo(weight=1.0)
    assert "ids" not in reg.get_config()
    assert float(reg(z, ids=ids)) == pytest.approx(float(got), rel=1e-12)
    torch.autograd.gradcheck(lambda a: koleo(a, ids=ids), (z.clone().requires_grad_(),))


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: koleo(torch.randn(1, 4)), r"KoLeo needs a batch of at least 2 embeddings, got shape \(1, 4\)"),
        (lambda: koleo(torch.randn(0, 4)), r"KoLeo got an empty"),
        (lambda: koleo(torch.randn(4)), r"KoLeo expects embeddings with 2 dimensions"),
        (lambda: koleo(torch.randn(4, 3), ids=torch.zeros(4, dtype=torch.long)), r"KoLeo got ids that leave a row"),
        (lambda: koleo(torch.randn(4, 3), ids=torch.arange(3)), r"KoLeo expects one id per embedding \(4\)"),
        (lambda: koleo(torch.randn(4, 3), ids=torch.arange(4.0)), r"KoLeo expects integer ids"),
        (lambda: koleo(torch.randn(4, 3), ids=[0, 1, 2, 3]), r"KoLeo expects a torch.Tensor as ids"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(reglab.RegularizerInputError, match=match):
        call()


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="eps"):
        reglab.KoLeo(eps=0.0)
    with pytest.raises(ValueError, match="eps"):
        koleo(torch.randn(3, 2), eps=-1.0)


def test_attached_to_activations_sums_over_views():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.Linear(4, 3))
    reg = reglab.KoLeo(weight=1.0)
    regs = reglab.attach(model, reg.on(activations="1"))
    a, b = torch.randn(6, 5), torch.randn(6, 5)
    za, zb = model(a), model(b)
    total = regs.penalty()
    assert float(total) == pytest.approx(ref_koleo(za) + ref_koleo(zb), rel=1e-5)
    regs.detach()


def test_float32_and_low_precision_inputs():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(10, 6, generator=g, dtype=torch.float64)
    exact = ref_koleo(z)
    assert koleo(z.float()).dtype == torch.float32
    assert float(koleo(z.float())) == pytest.approx(exact, rel=1e-5)
    assert float(koleo(z.bfloat16())) == pytest.approx(ref_koleo(z.bfloat16().double()), rel=1e-4)


def test_lab_spread_and_retrieval_metrics_match_loops():
    """ssl_collapse's nn_distance, uniformity, recall_float, recall_sq8, recall_sq4 and recall_binary, against
    plain loops."""
    from reglab.bench.experiments.ssl import _spread_metrics

    g = torch.Generator().manual_seed(0)
    z_tr, z_te = torch.randn(30, 4, generator=g), torch.randn(12, 4, generator=g)
    y_tr, y_te = torch.randint(0, 3, (30,), generator=g), torch.randint(0, 3, (12,), generator=g)
    got = _spread_metrics(z_tr, y_tr, z_te, y_te)
    xtr = np.asarray(z_tr, dtype=np.float64)
    xtr = xtr / np.linalg.norm(xtr, axis=1, keepdims=True)
    xte = np.asarray(z_te, dtype=np.float64)
    xte = xte / np.linalg.norm(xte, axis=1, keepdims=True)
    n = len(xte)
    nn_d = np.mean([min(np.linalg.norm(xte[i] - xte[j]) for j in range(n) if j != i) for i in range(n)])
    pairs = [np.exp(-2 * np.sum((xte[i] - xte[j]) ** 2)) for i in range(n) for j in range(i + 1, n)]
    lo, hi = xtr.min(axis=0), xtr.max(axis=0)
    def scalar_codes(top):
        return np.array(
            [[lo[k] + round(top * (v[k] - lo[k]) / (hi[k] - lo[k])) * (hi[k] - lo[k]) / top for k in range(4)] for v in xtr]
        )

    db, db4 = scalar_codes(255), scalar_codes(15)
    assert np.abs(db - xtr).max() <= (hi - lo).max() / 510 + 1e-12  # half a quantization step
    assert np.abs(db4 - xtr).max() <= (hi - lo).max() / 30 + 1e-12
    # 1 bit: above/below the column mean, decoded to the mean of that side
    mean = xtr.mean(axis=0)
    side = xtr >= mean
    db1 = np.array([[xtr[side[:, k] == side[i, k], k].mean() for k in range(4)] for i in range(len(xtr))])
    assert len(np.unique(db1[:, 0])) == 2

    def recall(database):
        hits = 0
        for i in range(n):
            j = min(range(len(database)), key=lambda j: np.sum((xte[i] - database[j]) ** 2))
            hits += int(y_tr[j]) == int(y_te[i])
        return hits / n

    assert got["nn_distance"] == pytest.approx(nn_d, rel=1e-9)
    assert got["uniformity"] == pytest.approx(math.log(np.mean(pairs)), rel=1e-9)
    assert got["recall_float"] == pytest.approx(recall(xtr))
    assert got["recall_sq8"] == pytest.approx(recall(db))
    assert got["recall_sq4"] == pytest.approx(recall(db4))
    assert got["recall_binary"] == pytest.approx(recall(db1))


def test_binary_codes_of_a_constant_column_decode_to_it():
    """A column with no value below its mean (constant) decodes to its mean, not to 0 or NaN."""
    from reglab.bench.experiments.ssl import _binary_quantized

    x = torch.tensor([[0.5, 1.0], [0.5, -1.0], [0.5, 3.0]], dtype=torch.float64)
    got = _binary_quantized(x)
    assert torch.equal(got[:, 0], torch.full((3,), 0.5, dtype=torch.float64))
    assert got[:, 1].tolist() == [pytest.approx(2.0), pytest.approx(-1.0), pytest.approx(2.0)]


def test_ssl_collapse_runs_koleo_on_the_output_added_to_vicreg():
    from reglab.bench.tasks import get_task

    fn = get_task("ssl_collapse")
    r = fn({"name": "koleo"}, seed=0, quick=True, bind="output", base="vicreg")
    assert set(r.metrics) >= {
        "nn_distance", "uniformity", "recall_float", "recall_sq8", "recall_sq4", "recall_binary", "linear_probe_accuracy"
    }
    assert 0.0 < r.metrics["nn_distance"] <= 2.0 and -4.0 <= r.metrics["uniformity"] <= 0.0
    assert "vicreg" in r.setup["loss"]
    with pytest.raises(ValueError, match="bind"):
        fn({"name": "koleo"}, seed=0, quick=True, bind="nowhere")
    with pytest.raises(ValueError, match="base"):
        fn(None, seed=0, quick=True, base="simclr")
    claims = reglab.core.registry.get("koleo").claims
    on_ssl = [c for c in claims if c.task == "ssl_collapse"]
    assert on_ssl and all(c.task_args == {"bind": "output", "base": "vicreg"} for c in on_ssl)
    assert {c.task for c in claims} == {"ssl_collapse", "beir_adapter"}  # the rest are on the real retrieval task
