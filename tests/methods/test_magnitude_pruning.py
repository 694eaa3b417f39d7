"""Magnitude pruning: Zhu–Gupta schedule, Global MP with the MT floor, masks via torch.nn.utils.prune."""

import numpy as np
import pytest
import torch
from torch import nn

import reglab
from reglab.methods.magnitude_pruning import MagnitudePruning, magnitude_masks, zhu_gupta_sparsity


def ref_schedule(step, s_i, s_f, t0, t1, power=3):  # the sheet's formula, written out
    p = min(max((step - t0) / (t1 - t0), 0.0), 1.0)
    return s_f + (s_i - s_f) * (1 - p) ** power


def test_schedule_sheet_vector():
    steps = [0, 100, 250, 500, 750, 1000, 1200]
    expected = [0.0, 0.2439, 0.520312, 0.7875, 0.885938, 0.9, 0.9]
    got = [zhu_gupta_sparsity(t, 0.0, 0.9, 0, 1000) for t in steps]
    assert got == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("t0,t1,s_i,s_f", [(0, 1000, 0.0, 0.9), (200, 700, 0.1, 0.95), (50, 51, 0.0, 0.5)])
def test_schedule_matches_formula(t0, t1, s_i, s_f):
    for t in range(0, 1200, 7):
        assert zhu_gupta_sparsity(t, s_i, s_f, t0, t1) == pytest.approx(ref_schedule(t, s_i, s_f, t0, t1), abs=1e-12)


def _sheet_weights():
    torch.manual_seed(0)
    return [torch.randn(4, 5, dtype=torch.float64), 0.1 * torch.randn(3, 4, dtype=torch.float64)]


def test_sheet_vectors_official_and_exact():
    ws = _sheet_weights()
    # faithful GlobalMP (kthvalue, >=, int truncation), the sheet's expected counts
    assert [int(m.sum()) for m in magnitude_masks(ws, 0.8, 0.0, exact=False)] == [8, 1]
    assert [int(m.sum()) for m in magnitude_masks(ws, 0.8, 6.25, exact=False)] == [6, 3]
    # strict rank: the 25 smallest go, the second layer collapses without a floor
    assert [int(m.sum()) for m in magnitude_masks(ws, 0.8, 0.0)] == [7, 0]
    # with the floor (min_w = int(32·6.25/100) = 2) the layer keeps exactly 2, total still 25 pruned
    assert [int(m.sum()) for m in magnitude_masks(ws, 0.8, 6.25)] == [5, 2]


@pytest.mark.parametrize("sparsity", [0.3, 0.8, 0.95])
def test_global_masks_match_numpy_sort(sparsity):
    g = torch.Generator().manual_seed(3)
    ws = [torch.randn(8, 9, generator=g, dtype=torch.float64) * s for s in (1.0, 0.3, 2.0)]
    a = np.concatenate([w.numpy().ravel() for w in ws])
    k = int(np.floor(sparsity * a.size + 1e-9))
    tau = np.sort(np.abs(a))[k - 1]  # no ties in continuous data
    masks = magnitude_masks(ws, sparsity, min_threshold=0.0)
    for w, m in zip(ws, masks):
        np.testing.assert_array_equal(m.numpy(), np.abs(w.numpy()) > tau)


def test_floor_keeps_min_share_per_layer():
    g = torch.Generator().manual_seed(1)
    ws = [torch.randn(200, generator=g, dtype=torch.float64).view(10, 20), 1e-3 * torch.randn(50, 4, generator=g, dtype=torch.float64)]
    n = sum(w.numel() for w in ws)
    for mt in (1.0, 5.0):
        min_w = int(n * mt / 100)
        masks = magnitude_masks(ws, 0.9, mt)
        assert all(int(m.sum()) >= min_w for m in masks)
        assert sum(int((~m).sum()) for m in masks) == int(0.9 * n)
    assert int(magnitude_masks(ws, 0.9, 0.0)[1].sum()) == 0  # without the floor the small layer collapses


def test_layer_ranking_prunes_each_tensor():
    ws = _sheet_weights()
    masks = magnitude_masks(ws, 0.5, ranking="layer")
    assert [int(m.sum()) for m in masks] == [10, 6]
    for w, m in zip(ws, masks):
        assert w.abs()[m].min() > w.abs()[~m].max()


def test_unreachable_floor_is_an_error():
    with pytest.raises(ValueError, match="magnitude_pruning"):
        magnitude_masks([torch.randn(10, 10), torch.randn(10, 10)], 0.9, min_threshold=30.0)


def test_bad_inputs():
    with pytest.raises(reglab.RegularizerInputError, match="magnitude_pruning"):
        magnitude_masks("w", 0.5)
    with pytest.raises(ValueError, match="magnitude_pruning"):
        magnitude_masks([torch.tensor([[1.0, float("nan")]])], 0.5)
    with pytest.raises(ValueError, match="MagnitudePruning.*final_sparsity"):
        MagnitudePruning(final_sparsity=1.5)
    with pytest.raises(ValueError, match="MagnitudePruning.*end_step"):
        MagnitudePruning(begin_step=10, end_step=5)
    with pytest.raises(ValueError, match="MagnitudePruning"):
        MagnitudePruning(ranking="local")


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))


def _train(model, regs, steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(steps):
        x = torch.randn(16, 10, generator=g)
        loss = model(x).pow(2).mean() + regs.penalty()
        opt.zero_grad()
        loss.backward()
        opt.step()
        regs.step(opt)
    return opt


def test_gradual_pruning_reaches_final_sparsity_exactly_and_masks_stay():
    model = _net()
    pr = MagnitudePruning(final_sparsity=0.9, begin_step=2, end_step=23, frequency=5)  # t1 off the Δt grid
    regs = reglab.attach(model, pr.on(modules=nn.Linear))
    n = sum(m.weight_mask.numel() for m in model if isinstance(m, nn.Linear))
    seen = []
    for _ in range(30):
        _train(model, regs, 1)
        seen.append(pr.sparsity())
    assert seen == sorted(seen)  # never decreases
    assert seen[1] == 0.0 and seen[2] == 0.0  # step 2 prunes at s_i = 0
    assert seen[7] == pytest.approx(int(ref_schedule(7, 0, 0.9, 2, 23) * n) / n)
    pruned = sum(int((m.weight_mask == 0).sum()) for m in model if isinstance(m, nn.Linear))
    assert pruned == int(0.9 * n)
    for m in model:
        if isinstance(m, nn.Linear):  # the effective weight is zero where masked, after the optimizer moved
            x = torch.randn(2, m.in_features)
            m(x)
            assert torch.all(m.weight[m.weight_mask == 0] == 0)
    pr.finalize()
    assert all(not hasattr(m, "weight_mask") for m in model)
    zeros = sum(int((m.weight == 0).sum()) for m in model if isinstance(m, nn.Linear))
    assert zeros == int(0.9 * n)


def test_masks_round_trip_state_dict():
    model = _net()
    pr = MagnitudePruning(final_sparsity=0.7, begin_step=0, end_step=10, frequency=2)
    regs = reglab.attach(model, pr.on(modules=nn.Linear))
    _train(model, regs, 5)
    model_state, regs_state = model.state_dict(), regs.state_dict()
    assert any(k.endswith("weight_mask") for k in model_state) and any(k.endswith("weight_orig") for k in model_state)
    fresh = _net()
    pr2 = MagnitudePruning(final_sparsity=0.7, begin_step=0, end_step=10, frequency=2)
    regs2 = reglab.attach(fresh, pr2.on(modules=nn.Linear))
    fresh.load_state_dict(model_state)
    regs2.load_state_dict(regs_state)
    assert pr2.step_count == pr.step_count == 5
    for k, v in pr.masks().items():
        torch.testing.assert_close(pr2.masks()[k], v)
    # both continue identically
    _train(model, regs, 8, seed=1)
    _train(fresh, regs2, 8, seed=1)
    for (k, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    n = 10 * 16 + 16 * 12 + 12 * 3
    assert pr2.sparsity() == pytest.approx(int(0.7 * n) / n)


def test_one_shot_when_begin_equals_end():
    model = _net()
    pr = MagnitudePruning(final_sparsity=0.5, begin_step=0, end_step=0)
    regs = reglab.attach(model, pr.on(modules=nn.Linear))
    before = [m.weight_orig.detach().clone() for m in model if isinstance(m, nn.Linear)]
    pr.step()
    expected = magnitude_masks(before, 0.5)
    for m, e in zip(pr.masks().values(), expected):
        torch.testing.assert_close(m, e.to(m.dtype))
    del regs


def test_config_round_trip_and_penalty_is_zero():
    pr = MagnitudePruning(final_sparsity=0.8, end_step=50, frequency=10, ranking="layer")
    again = reglab.from_config(pr.get_config())
    assert again.get_config() == pr.get_config()
    assert float(pr(torch.randn(3, 3))) == 0.0
    with pytest.raises(RuntimeError, match="not attached"):
        pr.masks()
