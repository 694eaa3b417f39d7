"""LeanVec (Tepper et al., 2023): ID = PCA, OOD = Frank–Wolfe; sheet test vector + independent references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone

import reglab
from reglab.embeddings.leanvec import LeanVec, leanvec_loss, leanvec_ood_matrices


def sheet_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 8)).astype(np.float32)
    Q = rng.standard_normal((6, 8))
    return X.astype(np.float64), Q


def brute_loss(A, B, X, Q):
    return float(np.linalg.norm(Q @ A @ B.T @ X.T - Q @ X.T) ** 2)


def ref_frank_wolfe(X, Q, k, steps=500, tol=1e-3):  # written from the sheet, loops over steps
    QtQ, XtX = Q.T @ Q, X.T @ X
    A = np.zeros((X.shape[1], k))
    B = np.zeros((X.shape[1], k))
    L = []
    for it in range(steps):
        g = 1 / (it + 1) ** 0.999
        gA = 2 * QtQ @ A @ B.T @ XtX @ B - 2 * QtQ @ XtX @ B
        U, _, Vt = np.linalg.svd(-gA, full_matrices=False)
        A = (1 - g) * A + g * U @ Vt
        gB = 2 * XtX @ B @ A.T @ QtQ @ A - 2 * XtX @ QtQ @ A
        U, _, Vt = np.linalg.svd(-gB, full_matrices=False)
        B = (1 - g) * B + g * U @ Vt
        L.append(brute_loss(A, B, X, Q))
        if it > 1 and abs(L[-1] - L[-2]) < tol * L[-2]:
            break
    return B, A, L


def test_sheet_test_vector():
    X, Q = sheet_data()
    B, A, L = leanvec_ood_matrices(Q.T @ Q, X.T @ X, 3)
    assert len(L) == 30
    assert L[-1] == pytest.approx(17.934880, abs=1e-5)
    assert brute_loss(A, B, X, Q) == pytest.approx(17.934880, abs=1e-5)
    assert leanvec_loss(np.zeros((8, 3)), np.zeros((8, 3)), Q.T @ Q, X.T @ X) == pytest.approx(209.903758, abs=1e-5)
    P = LeanVec(3).fit(X).state_dict()["data_matrix"].numpy()
    assert leanvec_loss(P, P, Q.T @ Q, X.T @ X) == pytest.approx(42.033393, abs=1e-5)


def test_ood_class_matches_reference_and_scaled_moments_change_nothing():
    X, Q = sheet_data()
    Bref, Aref, Lref = ref_frank_wolfe(X, Q, 3)
    t = LeanVec(3, mode="ood").fit(X, queries=Q)  # uses XᵀX/n and QᵀQ/m
    assert len(t.losses_) == len(Lref)
    np.testing.assert_allclose(t.state_dict()["data_matrix"].numpy(), Bref, atol=1e-9)
    np.testing.assert_allclose(t.state_dict()["query_matrix"].numpy(), Aref, atol=1e-9)
    np.testing.assert_allclose(t.transform(X), X @ Bref, atol=1e-9)
    np.testing.assert_allclose(t.transform_queries(Q), Q @ Aref, atol=1e-9)
    # Frank–Wolfe iterates stay in the spectral-norm unit ball
    assert np.linalg.norm(Bref, 2) <= 1 + 1e-9 and np.linalg.norm(Aref, 2) <= 1 + 1e-9


def test_id_is_pca_of_the_centred_database():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 6)) * [5, 3, 2, 1, 0.5, 0.1] + 10
    t = LeanVec(2).fit(X)
    Xc = X - X.mean(0)
    _, evecs = np.linalg.eigh(Xc.T @ Xc)
    P = evecs[:, ::-1][:, :2]
    M = t.state_dict()["data_matrix"].numpy()
    np.testing.assert_allclose(np.abs(M.T @ P), np.eye(2), atol=1e-8)  # same subspace, up to sign
    np.testing.assert_allclose(t.transform(X), X @ M)  # not centred
    np.testing.assert_array_equal(t.transform_queries(X), t.transform(X))


def test_ood_beats_id_on_shifted_queries():
    rng = np.random.default_rng(2)
    d, k = 16, 4
    X = rng.standard_normal((400, d)) * np.linspace(3, 0.5, d)
    Q = rng.standard_normal((200, d)) * np.linspace(0.2, 3, d)  # queries live where the database is thin
    ood = LeanVec(k, mode="ood").fit(X, queries=Q[:100])
    idt = LeanVec(k).fit(X)
    Qt = Q[100:]

    def err(t):
        return np.linalg.norm(t.transform_queries(Qt) @ t.transform(X).T - Qt @ X.T)

    assert err(ood) < err(idt)


def test_types_defaults_and_estimator_api():
    X = np.random.default_rng(3).standard_normal((40, 8)).astype(np.float32)
    t = LeanVec().fit(X)
    z = t.transform(X)
    assert z.shape == (40, 4) and z.dtype == np.float32 and t.n_components_ == 4
    zt = t.transform(torch.from_numpy(X))
    assert isinstance(zt, torch.Tensor) and zt.shape == (40, 4)
    assert t.transform_queries(torch.from_numpy(X[0])).shape == (4,)
    assert clone(LeanVec(3, mode="ood")).get_params() == {"n_components": 3, "mode": "ood", "max_steps": 500, "rel_tol": 1e-3}
    again = reglab.from_config(t.get_config())
    again.load_state_dict(t.state_dict())
    np.testing.assert_array_equal(again.transform(X), z)


def test_bad_inputs():
    X = np.random.default_rng(4).standard_normal((20, 6))
    with pytest.raises(reglab.RegularizerInputError, match="LeanVec expects n_components"):
        LeanVec(0)
    with pytest.raises(reglab.RegularizerInputError, match="mode"):
        LeanVec(mode="pca")
    with pytest.raises(reglab.RegularizerInputError, match="max_steps"):
        LeanVec(max_steps=0)
    with pytest.raises(ValueError, match="rel_tol"):
        LeanVec(rel_tol=0)
    with pytest.raises(reglab.RegularizerInputError, match="cannot keep n_components=7"):
        LeanVec(7).fit(X)
    with pytest.raises(reglab.RegularizerInputError, match=r"mode='ood'.*needs a sample of queries"):
        LeanVec(2, mode="ood").fit(X)
    with pytest.raises(reglab.RegularizerInputError, match=r"mode='id'.*database only"):
        LeanVec(2).fit(X, queries=X)
    with pytest.raises(reglab.RegularizerInputError, match=r"queries of shape \(20, 5\)"):
        LeanVec(2, mode="ood").fit(X, queries=X[:, :5])
    bad = X.copy()
    bad[3, 0] = np.inf
    with pytest.raises(reglab.RegularizerInputError, match=r"NaN/inf.*queries"):
        LeanVec(2, mode="ood").fit(X, queries=bad)
    t = LeanVec(2).fit(X)
    with pytest.raises(reglab.RegularizerInputError, match="6-dimensional"):
        t.transform_queries(X[:, :5])
    with pytest.raises(reglab.RegularizerInputError, match=r"NaN/inf.*rows 3"):
        t.transform_queries(bad)


def test_id_rankings_equal_those_of_svs_centred_projection():
    """SVS's PCA path (include/svs/leanvec/leanvec.h before commit d404d5f1) stores Pᵀ(x − μ) and reduces
    L2 queries to Pᵀ(q − μ), inner-product queries to Pᵀq; reglab projects both sides uncentred. L2
    distances are equal, inner products differ by ⟨Pᵀq, Pᵀμ⟩ per query: the same rankings."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((300, 12)) * np.linspace(0.2, 3.0, 12) + 5.0  # a database far from the origin
    Q = rng.standard_normal((20, 12)) * 2.0 + 4.0
    k = 5
    mu = X.mean(0)
    _, _, vt = np.linalg.svd(X - mu, full_matrices=False)  # SVS: dgesvd of the centred sample
    P = vt[:k].T
    svs_x, svs_q_l2, svs_q_ip = (X - mu) @ P, (Q - mu) @ P, Q @ P
    lv = LeanVec(k).fit(X)
    zx, zq = lv.transform(X), lv.transform_queries(Q)
    l2 = ((zq[:, None, :] - zx[None]) ** 2).sum(-1)
    svs_l2 = ((svs_q_l2[:, None, :] - svs_x[None]) ** 2).sum(-1)
    np.testing.assert_allclose(l2, svs_l2, rtol=1e-9, atol=1e-9)
    ip, svs_ip = zq @ zx.T, svs_q_ip @ svs_x.T
    shift = ip - svs_ip  # ⟨Pᵀq, Pᵀμ⟩: one constant per query
    np.testing.assert_allclose(shift, np.repeat(shift[:, :1], len(X), axis=1), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(np.argsort(-ip, axis=1, kind="stable")[:, :10],
                                  np.argsort(-svs_ip, axis=1, kind="stable")[:, :10])
    # the stored reduced vectors are SVS's plus Pᵀμ (up to the sign of each component)
    np.testing.assert_allclose(np.abs(zx - zx.mean(0)), np.abs(svs_x), rtol=1e-9, atol=1e-9)
