"""Stochastic regularizers: masks against loop references, expectations, schedule state."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import reglab
from reglab import RegularizerInputError

HYP = settings(max_examples=15, deadline=None)


# ---------------------------------------------------------------- cutout
def cutout_reference(x, size, n_holes, seed):
    """Loop reference: same centre draws (cy for all, then cx), square [c − s//2, c − s//2 + s)."""
    g = torch.Generator().manual_seed(seed)
    n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    cy = torch.randint(0, h, (n, n_holes, 1, 1), generator=g)
    cx = torch.randint(0, w, (n, n_holes, 1, 1), generator=g)
    out = x.clone()
    for i in range(n):
        for k in range(n_holes):
            y0, x0 = int(cy[i, k]) - size // 2, int(cx[i, k]) - size // 2
            for r in range(max(y0, 0), min(y0 + size, h)):
                for c in range(max(x0, 0), min(x0 + size, w)):
                    out[i, ..., r, c] = 0
    return out


@pytest.mark.parametrize("shape, size, holes", [((6, 2, 9, 7), 4, 1), ((5, 8, 8), 3, 2), ((4, 1, 8, 8), 16, 1)])
def test_cutout_matches_loop_reference(shape, size, holes):
    x = torch.rand(shape) + 0.5  # strictly positive, so zeros mark the holes
    cut = reglab.Cutout(size=size, n_holes=holes)
    got = cut(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(got, cutout_reference(x, size, holes, 3))


def test_cutout_is_per_sample_and_bounded():
    x = torch.ones(64, 1, 16, 16)
    out = reglab.create("cutout", size=5)(x)
    zeros = (out == 0).flatten(1).sum(1)
    assert (zeros <= 25).all() and (zeros > 0).all()
    assert (zeros == 25).any() and (zeros < 25).any()  # interior squares and border-clipped ones
    masks = (out == 0).flatten(1)
    assert len({tuple(m.tolist()) for m in masks}) > 10  # different squares per sample


def test_cutout_eval_identity_dtype_and_bad_input():
    cut = reglab.Cutout(4)
    x = torch.rand(3, 1, 8, 8, dtype=torch.float64)
    assert cut(x).dtype == torch.float64
    assert cut(x.bfloat16()).dtype == torch.bfloat16
    cut.eval()
    assert cut(x) is x
    with pytest.raises(RegularizerInputError, match="Cutout.*3 or 4 dimensions"):
        cut(torch.rand(8, 8))
    with pytest.raises(RegularizerInputError, match="Cutout.*NaN"):
        cut(torch.full((1, 1, 4, 4), float("nan")))
    with pytest.raises(RegularizerInputError, match="Cutout.*size"):
        reglab.Cutout(0)


# ---------------------------------------------------------------- multi-sample dropout
def test_multi_sample_dropout_shapes_and_eval():
    head = nn.Linear(6, 3)
    msd = reglab.create("multi_sample_dropout", module=head, num_samples=4)
    z = torch.randn(5, 6)
    out = msd(z)
    assert out.shape == (4, 5, 3)
    assert not torch.allclose(out[0], out[1])  # independent masks
    msd.eval()
    assert torch.equal(msd(z), head(z))
    y = torch.tensor([0, 1, 2, 0, 1])
    assert float(msd.loss(z, y)) == pytest.approx(float(F.cross_entropy(head(z), y)))


def test_multi_sample_dropout_loss_is_mean_of_mask_losses():
    head = nn.Linear(6, 3)
    msd = reglab.MultiSampleDropout(head, num_samples=3, p=0.5)
    z, y = torch.randn(4, 6), torch.tensor([0, 1, 2, 1])
    torch.manual_seed(5)
    loss = msd.loss(z, y)
    # reference: the same three masks drawn by hand in the same RNG order
    torch.manual_seed(5)
    masks = F.dropout(torch.ones(3, 4, 6), 0.5, training=True)
    ref = sum(F.cross_entropy(head(z * m), y) for m in masks) / 3
    assert float(loss) == pytest.approx(float(ref), rel=1e-6)


def test_multi_sample_dropout_is_unbiased_for_linear_head():
    head = nn.Linear(6, 3)
    msd = reglab.MultiSampleDropout(head, num_samples=4000, p=0.5)
    z = torch.randn(2, 6)
    assert torch.allclose(msd(z).mean(0), head(z), atol=0.1)


def test_multi_sample_dropout_bad_inputs():
    with pytest.raises(RegularizerInputError, match="MultiSampleDropout"):
        reglab.MultiSampleDropout("head")
    with pytest.raises(RegularizerInputError, match="MultiSampleDropout.*num_samples"):
        reglab.MultiSampleDropout(nn.Linear(2, 2), num_samples=0)
    msd = reglab.MultiSampleDropout(nn.Linear(2, 2))
    with pytest.raises(RegularizerInputError, match="MultiSampleDropout.*at least 2"):
        msd(torch.randn(2))
    with pytest.raises(RegularizerInputError, match="MultiSampleDropout.*inf"):
        msd(torch.tensor([[1.0, float("inf")]]))


# ---------------------------------------------------------------- drop path
@HYP
@given(st.integers(0, 1000), st.sampled_from([0.2, 0.5, 0.8]), st.booleans())
def test_drop_path_is_per_sample(seed, p, scale):
    x = torch.rand(32, 3, 4) + 0.1
    dp = reglab.DropPath(p, scale_by_keep=scale)
    out = dp(x, generator=torch.Generator().manual_seed(seed))
    factor = 1 / (1 - p) if scale else 1.0
    for i in range(32):
        dropped = bool((out[i] == 0).all())
        assert dropped or torch.allclose(out[i], x[i] * factor)


def test_drop_path_expectation_eval_and_zero_rate():
    x = torch.ones(20000, 2)
    out = reglab.DropPath(0.3)(x)
    assert float(out.mean()) == pytest.approx(1.0, abs=0.03)  # survivors rescaled: unbiased
    assert float((out[:, 0] == 0).float().mean()) == pytest.approx(0.3, abs=0.02)
    unscaled = reglab.DropPath(0.3, scale_by_keep=False)(x)
    assert float(unscaled.max()) == 1.0
    dp = reglab.DropPath(0.3).eval()
    assert dp(x) is x
    assert reglab.DropPath(0.0)(x) is x
    with pytest.raises(RegularizerInputError, match="DropPath.*NaN"):
        reglab.DropPath(0.1)(torch.tensor([float("nan")]))
    with pytest.raises(RegularizerInputError, match="DropPath.*p"):
        reglab.DropPath(1.0)


def test_scheduled_drop_path_ramp_and_resume():
    sdp = reglab.create("scheduled_drop_path", total_steps=10, p_final=0.4)
    assert sdp.rate == 0.0
    x = torch.ones(50, 3)
    assert torch.equal(sdp(x), x)  # rate 0 at step 0
    for _ in range(5):
        sdp.step()
    assert sdp.rate == pytest.approx(0.2)
    fresh = reglab.ScheduledDropPath(total_steps=10, p_final=0.4)
    fresh.load_state_dict(sdp.state_dict())
    assert fresh.rate == pytest.approx(0.2)
    for _ in range(20):
        fresh.step()
    assert fresh.rate == pytest.approx(0.4)
    out = fresh(torch.ones(4000, 1))
    assert float((out == 0).float().mean()) == pytest.approx(0.4, abs=0.03)
    assert float(out.max()) == pytest.approx(1 / 0.6)


# ---------------------------------------------------------------- gaussian noise
def test_gaussian_noise():
    gn = reglab.create("gaussian_noise", sigma=0.5)
    x = torch.zeros(20000)
    out = gn(x)
    assert float(out.std()) == pytest.approx(0.5, rel=0.05) and abs(float(out.mean())) < 0.02
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(gn(x, generator=g1), 0.5 * torch.randn(20000, generator=g2))
    assert gn(torch.zeros(2, dtype=torch.bfloat16)).dtype == torch.bfloat16
    gn.eval()
    assert gn(x) is x
    with pytest.raises(RegularizerInputError, match="GaussianNoise.*floating"):
        reglab.GaussianNoise()(torch.zeros(3, dtype=torch.long))
    with pytest.raises(RegularizerInputError, match="GaussianNoise.*sigma"):
        reglab.GaussianNoise(-1.0)


def test_stochastic_lab_tasks_quick():
    from reglab.bench.tasks import get_task

    r = get_task("dropout_training")({"name": "multi_sample_dropout"}, seed=0, quick=True)
    assert len(r.curves["train_loss"]) == 4 and r.curves["train_loss"][-1] < r.curves["train_loss"][0]
    r = get_task("small_data_cnn")({"name": "cutout", "size": 4}, seed=0, quick=True)
    assert 0 <= r.metrics["occluded_accuracy"] <= 1 and r.metrics["test_accuracy"] > 0.2
