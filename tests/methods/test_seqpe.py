"""SeqPE (Li et al., 2025): contrastive and transfer terms against loop references, the sheet's
test vector, gradients, the samplers and bad input."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab.methods.seqpe import (
    seqpe_contrastive, seqpe_contrastive_positions, seqpe_labels, seqpe_transfer,
    seqpe_transfer_positions,
)

from ._reference import Reference


def _log_softmax(row):
    m = max(row)
    lse = m + math.log(sum(math.exp(v - m) for v in row))
    return [v - lse for v in row]


def ref_contrastive(pivot, cand, labels, scale=1.0, heads=1):
    """Mean over pivots (and heads) of −log softmax(s·⟨pivot, cand_k⟩)[label], by loops."""
    b, d = len(pivot), len(pivot[0])
    k = len(cand) // b
    hd = d // heads
    total = 0.0
    for i in range(b):
        for h in range(heads):
            sl = range(h * hd, (h + 1) * hd)
            logits = [scale * sum(pivot[i][j] * cand[i * k + c][j] for j in sl) for c in range(k)]
            total -= _log_softmax(logits)[labels[i]]
    return total / (b * heads)


def ref_transfer(main, idx, trans, beta=0.8, metric="kl_div", scale=1.0):
    """Forward value: KL(P_m‖P_t) + KL(P_t‖P_m) elementwise-mean (β only moves the gradient), by loops."""
    b, n = len(idx), len(idx[0])
    total, count = 0.0, 0
    for blk in range(b):
        m = [main[i] for i in idx[blk]]
        t = trans[blk * n:(blk + 1) * n]
        for r in range(n):
            pm = _log_softmax([scale * sum(x * y for x, y in zip(m[r], m[c])) for c in range(n)])
            pt = _log_softmax([scale * sum(x * y for x, y in zip(t[r], t[c])) for c in range(n)])
            for c in range(n):
                if metric == "kl_div":
                    total += math.exp(pm[c]) * (pm[c] - pt[c]) + math.exp(pt[c]) * (pt[c] - pm[c])
                else:
                    total += (pt[c] - pm[c]) ** 2
                count += 1
    value = total / count
    return value if metric == "kl_div" else value  # mse: β·v + (1−β)·v


def _inputs(g):
    b, k, d, length, n = 4, 5, 6, 10, 4
    pivot = torch.randn(b, d, generator=g, dtype=torch.float64)
    cand = torch.randn(b * k, d, generator=g, dtype=torch.float64)
    ppos = torch.randint(0, 50, (b,), generator=g)
    cpos = torch.randint(0, 50, (b, k), generator=g)
    labels = ((cpos - ppos[:, None]) ** 2).argmin(1)
    main = torch.randn(length, d, generator=g, dtype=torch.float64)
    idx = torch.stack([torch.randperm(length, generator=g)[:n] for _ in range(2)])
    trans = torch.randn(2 * n, d, generator=g, dtype=torch.float64)
    return pivot, cand, labels, main, idx, trans


def ref_seqpe(pivot, cand, labels, main, idx, trans):
    ct = ref_contrastive(pivot.tolist(), cand.tolist(), labels.tolist())
    tr = ref_transfer(main.tolist(), idx.tolist(), trans.tolist())
    return 0.1 * ct + 0.1 * tr


REFERENCES = {"seqpe": Reference(ref_seqpe, inputs=_inputs)}


def test_sheet_vector():
    torch.manual_seed(0)
    B, N, D = 2, 4, 3
    pivot = torch.randn(B, D, dtype=torch.float64)
    cand = torch.randn(B * N, D, dtype=torch.float64)
    pivot_pos = torch.tensor([[5.0, 5.0], [0.0, 3.0]], dtype=torch.float64)
    cand_pos = torch.tensor([[9, 9], [4, 6], [0, 0], [7, 1], [3, 3], [0, 4], [8, 8], [1, 0]],
                            dtype=torch.float64).reshape(B, N, 2)
    labels = seqpe_labels(pivot_pos, cand_pos)
    assert labels.tolist() == [1, 1]
    assert float(seqpe_contrastive(pivot, cand, labels)) == pytest.approx(2.712670, abs=1e-6)
    main_table = torch.randn(10, D, dtype=torch.float64)
    idx = torch.tensor([0, 1, 2, 3, 4, 5]).reshape(2, 3)
    trans = torch.randn(6, D, dtype=torch.float64)
    for beta in (1.0, 0.8):
        assert float(seqpe_transfer(main_table, idx, trans, beta=beta)) == pytest.approx(0.567825, abs=1e-6)
    # (1, L, D) main table and (B, n, D) shifted PEs are the same call
    assert float(seqpe_transfer(main_table[None], idx, trans.reshape(2, 3, D))) == pytest.approx(0.567825, abs=1e-6)


def test_terms_and_options_against_reference():
    g = torch.Generator().manual_seed(1)
    pivot, cand, labels, main, idx, trans = _inputs(g)
    t = reglab.create("seqpe").components(pivot, cand, labels, main, idx, trans)
    assert t._fields == ("contrastive", "transfer")
    assert float(t.contrastive) == pytest.approx(ref_contrastive(pivot.tolist(), cand.tolist(), labels.tolist()), rel=1e-10)
    assert float(t.transfer) == pytest.approx(ref_transfer(main.tolist(), idx.tolist(), trans.tolist()), rel=1e-10)
    got = seqpe_contrastive(pivot, cand, labels, scale=0.5, heads=2)
    assert float(got) == pytest.approx(ref_contrastive(pivot.tolist(), cand.tolist(), labels.tolist(), 0.5, 2), rel=1e-10)
    mse = seqpe_transfer(main, idx, trans, metric="mse", scale=0.7)
    assert float(mse) == pytest.approx(ref_transfer(main.tolist(), idx.tolist(), trans.tolist(), metric="mse", scale=0.7), rel=1e-10)
    ls = seqpe_contrastive(pivot, cand, labels, label_smoothing=0.1)
    logits = pivot[:, None, :].mul(cand.reshape(4, 5, 6)).sum(-1)
    expected = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=0.1)
    assert float(ls) == pytest.approx(float(expected), rel=1e-12)
    total = reglab.create("seqpe", weight=2.0, contrastive_weight=0.3, transfer_weight=0.5)(pivot, cand, labels, main, idx, trans)
    assert float(total) == pytest.approx(2 * (0.3 * float(t.contrastive) + 0.5 * float(t.transfer)), rel=1e-12)


def test_gradcheck():
    g = torch.Generator().manual_seed(2)
    pivot, cand, labels, main, idx, trans = _inputs(g)
    args = [t.clone().requires_grad_() for t in (pivot, cand)]
    for heads in (1, 2):
        assert torch.autograd.gradcheck(lambda p, c: seqpe_contrastive(p, c, labels, heads=heads), args)


def _undetached_transfer(main, idx, trans):
    """The symmetric KL with no side detached (plain torch, elementwise mean)."""
    m = main[idx.reshape(-1)].reshape(2, 4, -1)
    t = trans.reshape(2, 4, -1)
    pm, pt = (m @ m.transpose(1, 2)).log_softmax(-1), (t @ t.transpose(1, 2)).log_softmax(-1)
    return (pm.exp() * (pm - pt) + pt.exp() * (pt - pm)).mean()


def test_transfer_gradient_is_the_teacher_split_of_the_full_gradient():
    """β on the student side, 1−β on the teacher side: at β = 0.5 each side gets half the full gradient."""
    g = torch.Generator().manual_seed(2)
    _, _, _, main, idx, trans = _inputs(g)
    m, t = main.clone().requires_grad_(), trans.clone().requires_grad_()
    seqpe_transfer(m, idx, t, beta=0.5).backward()
    m2, t2 = main.clone().requires_grad_(), trans.clone().requires_grad_()
    _undetached_transfer(m2, idx, t2).backward()
    torch.testing.assert_close(m.grad, 0.5 * m2.grad)
    torch.testing.assert_close(t.grad, 0.5 * t2.grad)
    assert torch.autograd.gradcheck(lambda a, b: _undetached_transfer(a, idx, b),
                                    (main.clone().requires_grad_(), trans.clone().requires_grad_()))


def test_beta_moves_only_the_gradient():
    g = torch.Generator().manual_seed(3)
    _, _, _, main, idx, trans = _inputs(g)
    grads = {}
    for beta in (1.0, 0.8):
        m, t = main.clone().requires_grad_(), trans.clone().requires_grad_()
        value = seqpe_transfer(m, idx, t, beta=beta)
        value.backward()
        grads[beta] = (float(value), torch.zeros_like(m) if m.grad is None else m.grad.clone(), t.grad.clone())
    assert grads[1.0][0] == pytest.approx(grads[0.8][0], rel=1e-12)
    assert torch.count_nonzero(grads[1.0][1]) == 0  # β = 1: the main range is only the teacher
    assert grads[0.8][1].abs().sum() > 0
    torch.testing.assert_close(grads[0.8][2], 0.8 * grads[1.0][2])


def test_labels_from_positions_not_pes():
    ppos = torch.tensor([10, 3])
    cpos = torch.tensor([[0, 12, 9, 30], [4, 2, 50, 7]])
    assert seqpe_labels(ppos, cpos).tolist() == [2, 0]  # ties go to the first


@pytest.mark.parametrize("dims", [1, 2])
def test_contrastive_sampler(dims):
    side, k = (200, 16) if dims == 1 else (16, 16)
    g = torch.Generator().manual_seed(0)
    piv = torch.randint(0, side, (32,) if dims == 1 else (32, 2), generator=g)
    cand, labels = seqpe_contrastive_positions(piv, side=side, num_candidates=k, dims=dims,
                                               generator=torch.Generator().manual_seed(5))
    again, _ = seqpe_contrastive_positions(piv, side=side, num_candidates=k, dims=dims,
                                           generator=torch.Generator().manual_seed(5))
    assert torch.equal(cand, again)
    assert cand.shape == ((32, k) if dims == 1 else (32, k, 2))
    assert int(cand.min()) >= 0 and int(cand.max()) < side
    p = piv.reshape(32, 1, -1)
    c = cand.reshape(32, k, -1)
    for i in range(32):
        rows = [tuple(r) for r in c[i].tolist()]
        assert len(set(rows)) == k, "candidates are deduplicated"
        assert tuple(p[i, 0].tolist()) not in rows, "the pivot is excluded"
    dist = ((c - p) ** 2).sum(-1)
    assert torch.equal(dist.gather(1, labels[:, None])[:, 0], dist.min(1).values)


def test_transfer_sampler():
    g = torch.Generator().manual_seed(0)
    idx, pos = seqpe_transfer_positions(16, max_position=100, batch_size=8, num=5, generator=g)
    assert idx.shape == pos.shape == (8, 5)
    assert all(len(set(r)) == 5 for r in idx.tolist())
    start = pos - idx
    assert (start == start[:, :1]).all() and int(start.min()) >= 16 and int((start + 16).max()) <= 100
    idx, pos = seqpe_transfer_positions(8, max_position=16, batch_size=64, num=8, width=4, generator=g)
    start = pos - torch.stack([idx // 4, idx % 4], -1)
    assert (start == start[:, :1]).all()
    assert ((start[:, 0, 0] >= 2) | (start[:, 0, 1] >= 4)).all(), "never the main block itself"
    assert int(pos.max()) < 16


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda a: a.__setitem__(2, torch.tensor([0, 1, 2, 5])), "labels in \\[0, 5\\)"),
        (lambda a: a.__setitem__(1, a[1][:-1]), "B·K rows"),
        (lambda a: a.__setitem__(1, a[1][:, :-1]), "dimension 6"),
        (lambda a: a.__setitem__(4, a[4] + 10), "main_indices in \\[0, 10\\)"),
        (lambda a: a.__setitem__(4, a[4].double()), "integer main_indices"),
        (lambda a: a.__setitem__(5, a[5][:-1]), "trans_pe of shape"),
        (lambda a: a.__setitem__(2, a[2].double()), "integer class labels"),
    ],
)
def test_bad_inputs_are_named(change, match):
    args = list(_inputs(torch.Generator().manual_seed(0)))
    change(args)
    with pytest.raises(reglab.RegularizerInputError, match=match) as e:
        reglab.create("seqpe")(*args)
    assert "SeqPE" in str(e.value)


@pytest.mark.parametrize("kwargs", [{"beta": 1.5}, {"metric": "l1"}, {"scale": 0.0}, {"label_smoothing": 1.0},
                                    {"contrastive_heads": 0}, {"transfer_weight": -1.0}])
def test_bad_hyperparameters(kwargs):
    with pytest.raises(ValueError, match="SeqPE"):
        reglab.create("seqpe", **kwargs)


def test_heads_must_divide_dimension():
    args = _inputs(torch.Generator().manual_seed(0))
    with pytest.raises(reglab.RegularizerInputError, match="divisible by heads=4"):
        seqpe_contrastive(*args[:3], heads=4)


def official_2d_starts(max_position, h, w):
    """ghrua/seqpe image_seqpe/pe_sampler.py, SeqPeTransferDataSampler.init_dataset (data_dim=2):
    create_2d_pos_list(0, 0, n_max - h, n_max - w) (range ends exclusive), then p[0] >= h or p[1] >= w."""
    cells = [(i, j) for i in range(0, max_position - h) for j in range(0, max_position - w)]
    return [p for p in cells if p[0] >= h or p[1] >= w]


@pytest.mark.parametrize("length,width,max_position", [(8, 4, 10), (6, 2, 9), (4, 4, 3), (9, 3, 7)])
def test_2d_transfer_starts_are_the_official_cells(length, width, max_position):
    h = length // width
    official = official_2d_starts(max_position, h, width)
    if not official:
        with pytest.raises(reglab.RegularizerInputError, match="SeqPE transfer sampler needs a start cell"):
            seqpe_transfer_positions(length, max_position=max_position, num=2, width=width)
        return
    g = torch.Generator().manual_seed(3)
    idx, pos = seqpe_transfer_positions(length, max_position=max_position, batch_size=3000, num=2, width=width,
                                        generator=g)
    start = (pos - torch.stack([idx // width, idx % width], -1))[:, 0]
    drawn = set(map(tuple, start.tolist()))
    assert drawn == set(official)  # every official start cell, and no other (not the last row or column)
    # and uniformly: the draw is the official list indexed by one uniform integer per block
    g = torch.Generator().manual_seed(3)
    for _ in range(3000):
        torch.randperm(length, generator=g)
    picks = torch.randint(len(official), (3000,), generator=g).tolist()
    assert start.tolist() == [list(official[i]) for i in picks]


def test_1e20_scale_position_encodings_give_the_right_finite_loss():
    g = torch.Generator().manual_seed(0)
    pivot, cand, labels, main, idx, trans = _inputs(g)
    big = [t.float() * 1e20 for t in (pivot, cand, main, trans)]
    pv, cd, mn, tr = (t.clone().requires_grad_() for t in big)
    ct = seqpe_contrastive(pv, cd, labels)
    expected = ref_contrastive(*(t.double().tolist() for t in big[:2]), labels.tolist())
    assert math.isfinite(float(ct)) and float(ct) == pytest.approx(expected, rel=1e-5)
    tl = seqpe_transfer(mn, idx, tr)
    expected = ref_transfer(big[2].double().tolist(), idx.tolist(), big[3].double().tolist())
    assert math.isfinite(float(tl)) and float(tl) == pytest.approx(expected, rel=1e-5)
    (ct + tl).backward()
    assert all(torch.isfinite(t.grad).all() for t in (pv, cd, mn, tr))
    total = reglab.create("seqpe")(big[0], big[1], labels, big[2], idx, big[3])
    assert math.isfinite(float(total))
    with pytest.raises(reglab.RegularizerInputError, match="SeqPE.*non-finite"):
        seqpe_contrastive(pivot * 1e200, cand * 1e200, labels)
