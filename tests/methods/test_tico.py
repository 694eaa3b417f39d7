import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import reglab
from reglab.methods.tico import tico, tico_step


def _unit_rows(z):
    z = np.asarray(z.detach(), dtype=np.float64)
    out = np.zeros_like(z)
    for i in range(z.shape[0]):
        norm = math.sqrt(sum(v * v for v in z[i]))
        out[i] = z[i] / max(norm, 1e-12)
    return out


def ref_tico_loop(za, zb, c_prev, beta=0.9, rho=8.0):
    """One TiCo step with plain loops: returns (loss, C_t) from the paper's formula."""
    a, b = _unit_rows(za), _unit_rows(zb)
    n, d = a.shape
    c = [[beta * c_prev[p][q] + (1 - beta) * sum(a[i, p] * a[i, q] for i in range(n)) / n for q in range(d)] for p in range(d)]
    inv = 1 - sum(sum(a[i, k] * b[i, k] for k in range(d)) for i in range(n)) / n
    quad = sum(sum(a[i, p] * c[p][q] * a[i, q] for p in range(d) for q in range(d)) for i in range(n)) / n
    return inv + rho * quad, c


def ref_tico_first_call(za, zb):
    d = za.shape[1]
    return ref_tico_loop(za, zb, [[0.0] * d for _ in range(d)])[0]


REFERENCES = {"tico": ref_tico_first_call}


def sheet_tico(c_prev, za, zb, beta=0.9, rho=8.0, center=False):
    """The sheet's reference, transcribed."""
    if center:
        za = za - za.mean(0)
        zb = zb - zb.mean(0)
    za = F.normalize(za, dim=1)
    zb = F.normalize(zb, dim=1)
    b = za.T @ za / za.shape[0]
    c = beta * c_prev + (1 - beta) * b
    loss = 1 - (za * zb).sum(1).mean() + rho * ((za @ c) * za).sum(1).mean()
    return loss, c.detach()


@pytest.fixture
def sheet_views():
    torch.manual_seed(0)
    za = torch.randn(5, 3, dtype=torch.float64)
    zb = za + 0.3 * torch.randn(5, 3, dtype=torch.float64)
    return za, zb


def test_sheet_test_vector(sheet_views):
    za, zb = sheet_views
    reg = reglab.TiCo(rho=20.0).double()  # the sheet's vector is at ρ = 20
    l1 = reg.penalty(za, zb)
    assert float(l1) == pytest.approx(0.923762, abs=1e-6)
    assert torch.diagonal(reg.cov).tolist() == pytest.approx([0.021456, 0.037944, 0.040600], abs=1e-6)
    l2 = reg.penalty(zb, za)  # second step, views swapped, C carried over
    assert float(l2) == pytest.approx(1.376523, abs=1e-6)
    # the pure function, carrying C by hand, gives the same
    f1, c1 = tico(za, zb, rho=20.0)
    f2, _ = tico(zb, za, c1, rho=20.0)
    assert (float(f1), float(f2)) == pytest.approx((float(l1), float(l2)), rel=1e-12)
    # not the old-lightly centred variant (a different loss)
    centred, _ = sheet_tico(torch.zeros(3, 3, dtype=torch.float64), za, zb, rho=20.0, center=True)
    assert float(centred) == pytest.approx(0.935399, abs=1e-6)
    assert abs(float(l1) - float(centred)) > 1e-3


def test_ema_matches_hand_written_loop_over_steps():
    g = torch.Generator().manual_seed(4)
    reg = reglab.TiCo(beta=0.8, rho=8.0).double()
    c = [[0.0] * 4 for _ in range(4)]
    for step in range(5):
        za = torch.randn(6, 4, generator=g, dtype=torch.float64)
        zb = za + 0.2 * torch.randn(6, 4, generator=g, dtype=torch.float64)
        expected, c = ref_tico_loop(za, zb, c, beta=0.8, rho=8.0)
        got = reg.penalty(za, zb)
        assert float(got) == pytest.approx(expected, rel=1e-12), f"step {step}"
        np.testing.assert_allclose(reg.cov.numpy(), np.array(c), rtol=1e-12, atol=1e-15)
    # and the sheet's transcription agrees at the last step
    _, c_sheet = sheet_tico(torch.tensor(c, dtype=torch.float64), za, zb, beta=0.8, rho=8.0)
    assert not torch.equal(c_sheet, reg.cov)  # C moved on one more step


def test_state_is_detached_and_gradient_flows_through_current_batch(sheet_views):
    za, zb = (t.clone().requires_grad_() for t in sheet_views)
    reg = reglab.TiCo().double()
    reg.penalty(za, zb)
    assert not reg.cov.requires_grad
    loss = reg.penalty(za, zb)  # second step: C_{t−1} is a constant
    loss.backward()
    # gradient of the same loss with C_{t−1} fixed, by autograd on the sheet's form
    a2, b2 = (t.detach().clone().requires_grad_() for t in sheet_views)
    _, c1 = sheet_tico(torch.zeros(3, 3, dtype=torch.float64), *sheet_views)
    ls, _ = sheet_tico(c1, a2, b2)
    ls.backward()
    torch.testing.assert_close(za.grad, a2.grad, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(zb.grad, b2.grad, rtol=1e-12, atol=1e-14)


def test_default_rho_is_8_beta_09(sheet_views):
    """ρ = 8: lightly TiCoLoss (rho: float = 8.0, "Defaults to 8.0 [0]", [0] the paper; its ImageNet benchmark
    uses TiCoLoss(beta=0.9, rho=8.0)) and sayannag's help string ("Recommended value in the paper = 8.0")."""
    za, zb = sheet_views
    assert reglab.TiCo().rho == 8.0 and reglab.TiCo().beta == 0.9
    assert reglab.create("tico").get_config()["rho"] == 8.0
    loss, _ = tico(za, zb)
    expected, _ = sheet_tico(torch.zeros(3, 3, dtype=torch.float64), za, zb, rho=8.0)
    assert float(loss) == pytest.approx(float(expected), rel=1e-12)
    assert float(reglab.TiCo().double()(za, zb)) == pytest.approx(float(expected), rel=1e-12)


def test_eval_mode_and_components_do_not_touch_the_state(sheet_views):
    za, zb = sheet_views
    reg = reglab.TiCo().double()
    reg.penalty(za, zb)
    before = reg.cov.clone()
    reg.eval()
    first = float(reg.penalty(zb, za))
    assert float(reg.penalty(zb, za)) == first and torch.equal(reg.cov, before)
    reg.train()
    terms = reg.components(zb, za)
    assert torch.equal(reg.cov, before)
    assert float(terms.invariance + reg.rho * terms.contrast) == pytest.approx(first, rel=1e-12)
    assert float(reg.penalty(zb, za)) == pytest.approx(first, rel=1e-12)
    assert not torch.equal(reg.cov, before)


def test_state_dict_round_trip_resumes_exactly():
    g = torch.Generator().manual_seed(1)
    views = [(torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)) for _ in range(4)]
    a = reglab.TiCo()
    for za, zb in views[:2]:
        a(za, zb)
    b = reglab.TiCo()  # lazy: no state yet, takes the stored (5, 5)
    b.load_state_dict(a.state_dict())
    assert b.cov.shape == (5, 5) and torch.equal(a.cov, b.cov)
    for za, zb in views[2:]:
        assert float(a(za, zb)) == float(b(za, zb))
    assert torch.equal(a.cov, b.cov)
    # an instance built for its size loads it too
    c = reglab.TiCo(dim=5)
    assert c.cov.shape == (5, 5) and float(c.cov.abs().sum()) == 0.0
    c.load_state_dict(a.state_dict())
    assert torch.equal(c.cov, a.cov)
    assert reglab.from_config(c.get_config()).cov.shape == (5, 5)


def test_first_call_equals_a_fresh_dim_instance():
    z = torch.randn(6, 4), torch.randn(6, 4)
    assert float(reglab.TiCo()(*z)) == float(reglab.TiCo(dim=4)(*z))


def test_gradcheck_one_step():
    g = torch.Generator().manual_seed(2)
    za = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    zb = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    prev = tico(za.detach(), zb.detach())[1]
    assert torch.autograd.gradcheck(lambda a, b: tico(a, b, prev)[0], (za, zb))


def test_covariance_term_pushes_embeddings_apart():
    """Collapsed view-a embeddings pay the most contrast; orthogonal ones the least."""
    same = torch.ones(4, 4)
    orth = torch.eye(4)
    s_same = tico_step(same, same)
    s_orth = tico_step(orth, orth)
    assert float(s_same.invariance) == pytest.approx(0.0, abs=1e-7)
    assert float(s_same.contrast) == pytest.approx(0.1 * 1.0)  # (1−β)·1
    assert float(s_orth.contrast) == pytest.approx(0.1 * 0.25)  # (1−β)/N


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: reglab.TiCo()(torch.randn(1, 3), torch.randn(1, 3)), r"TiCo needs a batch of at least 2"),
        (lambda: reglab.TiCo()(torch.randn(4, 3), torch.randn(4, 2)), r"TiCo"),
        (lambda: tico(torch.randn(4, 3), torch.randn(4, 3), torch.zeros(2, 2)), r"TiCo's covariance state is \(2, 2\)"),
        (lambda: reglab.TiCo(dim=5)(torch.randn(4, 3), torch.randn(4, 3)), r"expects a \(3, 3\) matrix"),
        (lambda: reglab.TiCo()(torch.randn(4, 3), torch.full((4, 3), float("nan"))), r"TiCo got NaN"),
    ],
)
def test_bad_inputs(call, match):
    with pytest.raises(reglab.RegularizerInputError, match=match):
        call()


def test_size_change_after_first_call_is_an_error():
    reg = reglab.TiCo()
    reg(torch.randn(4, 3), torch.randn(4, 3))
    with pytest.raises(reglab.RegularizerInputError, match=r"TiCo's covariance state is \(3, 3\)"):
        reg(torch.randn(4, 6), torch.randn(4, 6))


@pytest.mark.parametrize("bad", [{"beta": 1.0}, {"beta": -0.1}, {"rho": 0.0}, {"rho": -2.0}, {"dim": 0}])
def test_bad_hyperparameters(bad):
    with pytest.raises(ValueError, match="TiCo"):
        reglab.TiCo(**bad)


def test_functional_hyperparameters_are_checked():
    z = torch.randn(4, 3)
    with pytest.raises(ValueError, match="rho"):
        tico(z, z, rho=-1.0)
    with pytest.raises(ValueError, match="beta"):
        tico(z, z, beta=1.5)


# ---------------------------------------------------------------- DDP (2 gloo processes)
WORLD, DIM, STEPS = 2, 4, 3
SIZES = (4, 3)  # uneven, like a last batch


def _ddp_batches():
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(STEPS):
        za = torch.randn(sum(SIZES), DIM, generator=g, dtype=torch.float64)
        out.append((za, za + 0.3 * torch.randn(sum(SIZES), DIM, generator=g, dtype=torch.float64)))
    return out


def _ddp_worker(rank, init_file, out_dir):
    import os

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        reg = reglab.TiCo().double()
        start = sum(SIZES[:rank])
        losses, grads = [], []
        for za, zb in _ddp_batches():
            a = za[start : start + SIZES[rank]].clone().requires_grad_()
            b = zb[start : start + SIZES[rank]].clone().requires_grad_()
            loss = reg(a, b)
            loss.backward()
            losses.append(loss.detach())
            grads.append((a.grad, b.grad))
        torch.save({"cov": reg.cov, "losses": torch.stack(losses), "grads": grads}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="needs torch.distributed gloo")
def test_ddp_ranks_keep_identical_state_equal_to_one_process(tmp_path):
    import sys

    import torch.multiprocessing as mp

    if sys.platform == "win32":
        pytest.skip("gloo file init")
    mp.spawn(_ddp_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert torch.equal(r0["cov"], r1["cov"]), "the ranks' covariance states differ"
    single = reglab.TiCo().double()
    for step, (za, zb) in enumerate(_ddp_batches()):
        a, b = za.clone().requires_grad_(), zb.clone().requires_grad_()
        loss = single(a, b)
        loss.backward()
        for rank, r in enumerate((r0, r1)):
            assert float(r["losses"][step]) == pytest.approx(float(loss), rel=1e-12)
            # reglab's gather contract: rank r gets WORLD·∂L/∂z_r; DDP's averaging then gives ∂L/∂z_r
            start = sum(SIZES[:rank])
            rows = slice(start, start + SIZES[rank])
            torch.testing.assert_close(r["grads"][step][0], WORLD * a.grad[rows], rtol=1e-10, atol=1e-12)
            torch.testing.assert_close(r["grads"][step][1], WORLD * b.grad[rows], rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(r0["cov"], single.cov, rtol=1e-12, atol=1e-14)
