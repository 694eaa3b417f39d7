"""T-REGS (Mordacq et al., 2025) against a brute-force Kruskal MST written here, and the sheet's test vector."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reglab
from reglab import RegularizerInputError
from reglab import functional as RF
from reglab.core.registry import get


# ---------------------------------------------------------------- references
def kruskal(points):
    """Edges (i, j, length) of a Euclidean MST by Kruskal's algorithm on plain lists (union-find)."""
    n = len(points)
    edges = sorted((math.dist(points[i], points[j]), i, j) for i, j in itertools.combinations(range(n), 2))
    parent = list(range(n))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    tree = []
    for d, i, j in edges:
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[ri] = rj
            tree.append((i, j, d))
    return tree


def ref_t_reg(points, gamma=0.2, lam=8e-4):
    n = len(points)
    length = -sum(d for _, _, d in kruskal(points)) / n
    sphere = sum((math.sqrt(sum(x * x for x in p)) - 1) ** 2 for p in points) / n
    return gamma * length + lam * sphere


def ref_t_regs(z1, z2, beta=10.0, gamma=0.2, lam=8e-4):
    """β·(1/n)Σ_i‖z_i − z'_i‖² + T-REG(Z) + T-REG(Z') (paper Sec. 5), by loops."""
    a, b = z1.tolist(), z2.tolist()
    mse = sum(sum((x - y) ** 2 for x, y in zip(p, q)) for p, q in zip(a, b)) / len(a)
    return beta * mse + ref_t_reg(a, gamma, lam) + ref_t_reg(b, gamma, lam)


REFERENCES = {"t_regs": ref_t_regs}


# -------------------------------------------------------------------- values
def test_sheet_test_vector():
    torch.manual_seed(0)
    z = torch.randn(6, 3, dtype=torch.float64)
    zp = z + 0.1 * torch.randn(6, 3, dtype=torch.float64)
    assert float(RF.mst_length(z)) == pytest.approx(8.067922, abs=1e-6)
    assert float(-RF.mst_length(z) / 6) == pytest.approx(-1.344654, abs=1e-6)
    assert float(RF.t_reg(z)) == pytest.approx(-0.268339, abs=1e-6)
    assert float(RF.t_regs(z, zp)) == pytest.approx(-0.187443, abs=1e-6)
    t = reglab.create("t_regs").components(z, zp)
    assert t._fields == ("invariance", "length", "sphere")
    assert float(10 * t.invariance + 0.2 * t.length + 8e-4 * t.sphere) == pytest.approx(-0.187443, abs=1e-6)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 12), d=st.integers(1, 5), seed=st.integers(0, 10_000))
def test_mst_length_matches_kruskal(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    u, v = RF.mst_edges(z)
    assert len(u) == n - 1
    assert float(RF.mst_length(z)) == pytest.approx(sum(e[2] for e in kruskal(z.tolist())), rel=1e-10, abs=1e-12)


def test_ties_and_duplicates_give_a_spanning_tree_of_minimal_length():
    grid = torch.tensor([[i, j] for i in range(3) for j in range(3)], dtype=torch.float64)  # many equal edges
    assert float(RF.mst_length(grid)) == pytest.approx(8.0)
    dup = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    u, v = RF.mst_edges(dup)
    assert len(u) == 4  # zero-length edges are kept (scipy would give a forest)
    assert float(RF.mst_length(dup)) == pytest.approx(3.0)
    # connectivity: the edges join every point
    parent = list(range(5))

    def find(a):
        while parent[a] != a:
            a = parent[a]
        return a

    for a, b in zip(u.tolist(), v.tolist()):
        parent[find(a)] = find(b)
    assert len({find(i) for i in range(5)}) == 1


def test_duplicate_rows_have_finite_gradient():
    z = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.5], [0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    loss = RF.t_regs(z, z.detach() + 0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


def test_gradient_is_the_sum_of_edge_forces():
    """Paper Eq. 3: ∇_x E(MST) = Σ_{edges (x, y)} (x − y)/‖x − y‖, with the tree from Kruskal."""
    g = torch.Generator().manual_seed(4)
    z = torch.randn(9, 3, generator=g, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(RF.mst_length(z), z)
    pts = z.detach().tolist()
    want = [[0.0] * 3 for _ in pts]
    for i, j, d in kruskal(pts):
        for k in range(3):
            f = (pts[i][k] - pts[j][k]) / d
            want[i][k] += f
            want[j][k] -= f
    torch.testing.assert_close(grad, torch.tensor(want, dtype=torch.float64), rtol=1e-10, atol=1e-12)


def test_gradcheck_and_beta_zero_is_the_regularizer_alone():
    g = torch.Generator().manual_seed(2)
    z1 = torch.randn(7, 4, generator=g, dtype=torch.float64, requires_grad=True)
    z2 = (z1.detach() + 0.3 * torch.randn(7, 4, generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: RF.t_regs(a, b, beta=0.0), (z1, z2))
    assert float(RF.t_regs(z1, z2, beta=0.0)) == pytest.approx(float(RF.t_reg(z1) + RF.t_reg(z2)), rel=1e-12)
    assert float(RF.t_regs(z1, z2, beta=0.0)) == pytest.approx(ref_t_regs(z1, z2, beta=0.0), rel=1e-10)


def test_float32_input_and_weight():
    z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
    reg = reglab.create("t_regs", weight=0.5)
    got = reg(z1, z2)
    assert got.dtype == torch.float32
    assert float(got) == pytest.approx(0.5 * ref_t_regs(z1.double(), z2.double()), rel=1e-5)


# --------------------------------------------------------------- bad input
def test_hyperparameter_order_is_enforced():
    z = torch.randn(5, 3)
    with pytest.raises(RegularizerInputError, match="TREGS expects gamma >= lam"):
        reglab.create("t_regs", gamma=0.1, lam=1.0)
    with pytest.raises(RegularizerInputError, match="TREGS expects beta >= gamma"):
        reglab.create("t_regs", beta=0.1, gamma=0.2)
    with pytest.raises(RegularizerInputError, match="TREGS expects beta >= gamma"):
        RF.t_regs(z, z, beta=0.1)
    with pytest.raises(RegularizerInputError, match="TREGS expects gamma >= lam"):
        RF.t_reg(z, gamma=0.0, lam=1.0)
    with pytest.raises(RegularizerInputError, match="TREGS expects beta to be a non-negative number"):
        reglab.create("t_regs", beta=-1.0)
    reglab.create("t_regs", beta=0.0)  # auxiliary use


def test_bad_inputs_name_the_regularizer():
    reg = reglab.create("t_regs")
    with pytest.raises(RegularizerInputError, match="TREGS expects two views of the same shape"):
        reg(torch.randn(5, 3), torch.randn(4, 3))
    with pytest.raises(RegularizerInputError, match="TREGS needs a batch of at least 2"):
        reg(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(RegularizerInputError, match="TREGS .*NaN"):
        reg(torch.full((4, 3), float("nan")), torch.randn(4, 3))
    with pytest.raises(RegularizerInputError, match="TREGS expects embeddings with 2 dimensions"):
        RF.t_reg(torch.randn(4, 3, 2))


def test_claims_point_to_the_ssl_task():
    claims = get("t_regs").claims
    assert {c.task for c in claims} == {"ssl_collapse"}
    assert {c.metric for c in claims} == {"effective_rank", "linear_probe_accuracy"}
    assert any(b.arm == {"name": "vicreg"} for c in claims for b in c.baselines)


def test_ssl_collapse_task_quick():
    from reglab.bench.tasks import get_task

    r = get_task("ssl_collapse")({"name": "t_regs"}, seed=0, quick=True)
    assert set(r.metrics) >= {"effective_rank", "linear_probe_accuracy"}
