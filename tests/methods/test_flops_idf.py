"""IDF-aware FLOPS (Geng et al., 2024) as the released trainer does it: IDF on the query side."""

from __future__ import annotations

import pytest
import torch

import reglab
from reglab import functional as RF


def ref_scores(query_tokens, docs, idf):  # loops, from the sheet: q = 1[t ∈ query] ⊙ relu(idf), s = qᵀd
    out = []
    for qt in query_tokens:
        row = []
        for d in docs:
            row.append(sum((1.0 if qt[j] != 0 else 0.0) * max(idf[j], 0.0) * d[j] for j in range(len(d))))
        out.append(row)
    return out


def ref_flops(docs):
    n, v = len(docs), len(docs[0])
    return sum((sum(abs(docs[i][j]) for i in range(n)) / n) ** 2 for j in range(v))


def ref_trainer_flops(docs, m):
    """The released trainer's flops_value(d_rep, n // m) by loops: documents come g per query
    (row i·g + s is query i's slot s); per slot, the square of the mean over queries, summed."""
    g, v = len(docs) // m, len(docs[0])
    return sum(
        (sum(abs(docs[i * g + s][j]) for i in range(m)) / m) ** 2 for s in range(g) for j in range(v)
    )


def sheet_inputs():
    torch.manual_seed(0)
    d = torch.relu(torch.randn(4, 6, dtype=torch.float64))
    idf = torch.tensor([0.5, 1.0, 2.0, 3.0, 1.5, 0.1], dtype=torch.float64)
    q = torch.zeros(2, 6, dtype=torch.bool)
    q[0, [1, 3]] = True
    q[1, [0, 2, 5]] = True
    return q, d, idf


def test_sheet_test_vector():
    q, d, idf = sheet_inputs()
    out = RF.flops_idf(q, d, idf)
    expected = torch.tensor([[2.998528, 2.200585, 0.0, 0.259110], [0.0, 0.608917, 1.144684, 0.181249]], dtype=torch.float64)
    torch.testing.assert_close(out.scores, expected, atol=1e-6, rtol=0)
    # the trainer's FLOPS: 2 queries, 2 documents each, the mean taken per document slot (sheet: 2.280927)
    assert float(out.flops) == pytest.approx(2.280927, abs=1e-6)
    plain = RF.flops_idf(q, d, idf, flops_per_slot=False)
    assert float(plain.flops) == pytest.approx(0.996464, abs=1e-6)  # the plain FLOPS of all four
    torch.testing.assert_close(plain.scores, out.scores)


@pytest.mark.parametrize("m,g", [(3, 4), (2, 1), (1, 5), (4, 2)])
def test_flops_per_slot_matches_the_released_trainer(m, g):
    gen = torch.Generator().manual_seed(10 * m + g)
    docs = torch.relu(torch.randn(m * g, 7, generator=gen, dtype=torch.float64))
    q = torch.randint(0, 2, (m, 7), generator=gen)
    idf = torch.rand(7, generator=gen, dtype=torch.float64)
    out = RF.flops_idf(q, docs, idf)
    assert float(out.flops) == pytest.approx(ref_trainer_flops(docs.tolist(), m), rel=1e-12)
    plain = float(RF.flops_idf(q, docs, idf, flops_per_slot=False).flops)
    assert plain == pytest.approx(ref_flops(docs.tolist()), rel=1e-12)
    if g == 1:
        assert float(out.flops) == pytest.approx(plain, rel=1e-12)  # one slot: the same term
    else:
        assert float(out.flops) > plain  # by Jensen, the per-slot means square to more


def test_flops_per_slot_gradient_matches_autograd_of_the_reference():
    gen = torch.Generator().manual_seed(2)
    docs = torch.relu(torch.randn(6, 5, generator=gen, dtype=torch.float64)).requires_grad_()
    q = torch.ones(3, 5, dtype=torch.bool)
    RF.flops_idf(q, docs, torch.ones(5, dtype=torch.float64)).flops.backward()
    d2 = docs.detach().clone().requires_grad_()
    d2.reshape(3, 2, 5).abs().mean(0).pow(2).sum().backward()  # trainer.py's flops_value, written out
    torch.testing.assert_close(docs.grad, d2.grad)


def test_documents_not_grouped_by_query_are_refused_for_the_per_slot_term():
    q, d, idf = sheet_inputs()
    with pytest.raises(reglab.RegularizerInputError, match=r"flops_idf.*n = m·g.*n=3.*m=2.*flops_per_slot=False"):
        RF.flops_idf(q, d[:3], idf)
    assert float(RF.flops_idf(q, d[:3], idf, flops_per_slot=False).flops) == pytest.approx(ref_flops(d[:3].tolist()))
    with pytest.raises(reglab.RegularizerInputError, match=r"flops_idf.*flops_per_slot"):
        RF.flops_idf(q, d, idf, flops_per_slot="yes")


def test_scores_do_not_overflow_float32_at_1e20():
    q, d, idf = sheet_inputs()
    big_d, big_idf = (d * 1e20).float(), (idf * 1e20).float()
    out = RF.flops_idf(q, big_d, big_idf)
    assert torch.isfinite(out.scores).all() and torch.isfinite(out.flops)
    expected = torch.tensor(ref_scores(q.tolist(), big_d.double().tolist(), big_idf.double().tolist()), dtype=torch.float64)
    torch.testing.assert_close(out.scores.double(), expected, rtol=1e-6, atol=0)
    assert float(out.flops) == pytest.approx(ref_trainer_flops(big_d.double().tolist(), 2), rel=1e-6)
    # the gradient into the float32 documents is finite too
    dd = big_d.clone().requires_grad_()
    RF.flops_idf(q, dd, torch.rand(6)).scores.sum().backward()
    assert torch.isfinite(dd.grad).all()
    # beyond float64: a clear error, not inf
    with pytest.raises(reglab.RegularizerInputError, match=r"flops_idf.*overflow float64"):
        RF.flops_idf(q, d * 1e200, idf * 1e200)


def test_matches_loop_reference_with_counts_and_negative_idf():
    g = torch.Generator().manual_seed(4)
    docs = torch.relu(torch.randn(5, 9, generator=g, dtype=torch.float64))
    counts = torch.randint(0, 3, (3, 9), generator=g)  # token counts: any non-zero means present
    idf = torch.randn(9, generator=g, dtype=torch.float64)  # negative IDF is cut by ReLU
    out = reglab.create("flops_idf", flops_per_slot=False)(counts, docs, idf)  # 5 documents for 3 queries
    torch.testing.assert_close(out.scores, torch.tensor(ref_scores(counts.tolist(), docs.tolist(), idf.tolist()), dtype=torch.float64))
    assert float(out.flops) == pytest.approx(ref_flops(docs.tolist()), rel=1e-12)
    assert float(out.flops) == pytest.approx(float(RF.flops(docs)), rel=1e-15)  # the plain FLOPS term


def test_ranking_gradient_on_a_document_term_scales_with_idf():
    q, d, idf = sheet_inputs()
    d = d.clone().requires_grad_()
    RF.flops_idf(q, d, idf).scores.sum().backward()
    # ∂(Σ scores)/∂d_ij = Σ_queries idf_j·1[j ∈ q]
    expected = (q.to(torch.float64) * idf).sum(0).expand_as(d)
    torch.testing.assert_close(d.grad, expected)
    # while the FLOPS gradient does not see idf at all
    d2 = d.detach().clone().requires_grad_()
    RF.flops_idf(q, d2, idf * 7, flops_per_slot=False).flops.backward()
    d3 = d.detach().clone().requires_grad_()
    RF.flops(d3).backward()
    torch.testing.assert_close(d2.grad, d3.grad)


def test_learnable_idf_gets_a_gradient_through_relu():
    q, d, _ = sheet_inputs()
    idf = torch.tensor([0.5, -1.0, 2.0, 3.0, 1.5, 0.1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda i, dd: RF.flops_idf(q, dd, i).scores, (idf, d.clone().requires_grad_()))
    RF.flops_idf(q, d, idf).scores.sum().backward()
    assert idf.grad[1] == 0  # relu(−1) is flat


def test_config_round_trip_and_metadata():
    reg = reglab.create("flops_idf", gather=False, flops_per_slot=False)
    again = reglab.from_config(reg.get_config())
    assert again.get_config() == reg.get_config() == {"name": "flops_idf", "flops_per_slot": False, "gather": False}
    assert reglab.create("flops_idf").get_config()["flops_per_slot"] is True
    cls = reglab.core.registry.get("flops_idf")
    assert cls.kind == "output" and cls.form == "module" and cls.paper.arxiv == "2411.04403"
    assert all(not c.testable and c.untestable_reason for c in cls.claims)


def test_bad_inputs_name_flops_idf():
    q, d, idf = sheet_inputs()
    with pytest.raises(reglab.RegularizerInputError, match=r"flops_idf.*one vocabulary"):
        RF.flops_idf(q[:, :5], d, idf)
    with pytest.raises(reglab.RegularizerInputError, match=r"flops_idf.*one vocabulary"):
        RF.flops_idf(q, d, idf[:5])
    bad = d.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(reglab.RegularizerInputError, match=r"flops_idf.*NaN"):
        RF.flops_idf(q, bad, idf)
    with pytest.raises(reglab.RegularizerInputError, match=r"flops_idf.*idf"):
        RF.flops_idf(q, d, torch.tensor([0, 1, 2, 3, 4, 5]))
    with pytest.raises(reglab.RegularizerInputError, match=r"flops_idf.*docs"):
        RF.flops_idf(q, d[0], idf)
    with pytest.raises(reglab.RegularizerInputError, match=r"flops_idf.*query_tokens"):
        RF.flops_idf([[1, 0]], d, idf)
