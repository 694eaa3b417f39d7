"""LeanVec (Tepper, Bhati, Aguerrebere, Hildebrand & Willke, 2023): linear dimensionality reduction for search.

A post-hoc index transform, not a training regularizer. Database vectors are
reduced with a d×k matrix B (z_x = Bᵀx) and queries with a d×k matrix A
(z_q = Aᵀq), so that ⟨z_q, z_x⟩ ≈ ⟨q, x⟩; the search runs in k dimensions
(in SVS usually on LVQ-compressed reduced vectors) and re-ranks with the
full-dimensional vectors.

* **LeanVec-ID** (in-distribution, SVS's "PCA path"): A = B = P, the top-k
  eigenvectors of the centred database covariance.
* **LeanVec-OOD** (queries distributed unlike the database): A, B minimise
  f(A, B) = ‖Q A Bᵀ Xᵀ − Q Xᵀ‖²_F
          = tr(B Aᵀ K_Q A Bᵀ K_X) − 2 tr(K_Q A Bᵀ K_X) + tr(K_Q K_X),
  K_Q = QᵀQ, K_X = XᵀX (uncentred), by alternating Frank–Wolfe over the
  spectral-norm unit ball: S = U Vᵀ from svd(−∇), A ← (1−γ)A + γ S_A, then B
  likewise with the updated A; γ_t = 1/(t+1)^0.999; A = B = 0 at the start;
  stop when |Δf| < rel_tol·f (at most ``max_steps`` steps). SVS
  ``bindings/python/src/svs/leanvec.py`` ``compute_leanvec_matrices(X, Q,
  n_components, n_max_steps=500, rel_tol=1e-3)`` (our defaults), which returns
  (B, A) = (data matrix, query matrix).

The reduced vectors are not centred (z_x = Bᵀx, z_q = Aᵀq), so ⟨z_q, z_x⟩
approximates ⟨q, x⟩ directly (and, for ID, ‖z_q − z_x‖ approximates ‖q − x‖
within the kept subspace); the database mean is kept only as a fitted statistic.
This differs from SVS's ID (PCA) path, which centres: its ``LeanDataset::reduce``
stores Pᵀ(x − μ), and ``preprocess_queries`` reduces L2 queries to Pᵀ(q − μ) and
inner-product queries to Pᵀq (``include/svs/leanvec/leanvec.h``, ``transform_batch``
and the two ``transform_queries`` overloads, as of the commit before d404d5f1
removed the file). The rankings are the same: L2 distances are equal
(‖Pᵀ(q − μ) − Pᵀ(x − μ)‖ = ‖Pᵀq − Pᵀx‖) and inner products differ from SVS's
⟨Pᵀq, Pᵀ(x − μ)⟩ by ⟨Pᵀq, Pᵀμ⟩, one constant per query. The reduced vectors
themselves are SVS's plus Pᵀμ: a cosine between them, or a quantizer that does not
centre (LVQ does), sees the difference. OOD mode, as in SVS, does not centre.
K_Q and K_X are used divided by the number of rows (second moments): f is then
scaled by a constant, which changes neither the Frank–Wolfe directions (svd of
a scaled gradient) nor the relative stopping rule, so the iterates are those of
the unscaled code.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from reglab.core import Baseline, Claim, Paper, RegularizerInputError, register
from reglab.embeddings.base import EmbeddingTransform, as_matrix, beir_claim, beir_index, check_finite_rows
from reglab.ops import check_choice, check_positive, eigh_descending
from reglab.ops.linalg import streaming_moments

__all__ = ["LeanVec", "leanvec_ood_matrices", "leanvec_loss"]

PAPER = Paper(
    "LeanVec: Searching vectors faster by making them fit", "Tepper, Bhati, Aguerrebere, Hildebrand, Willke", 2023,
    arxiv="2312.16335", code="https://github.com/intel/ScalableVectorSearch")


def leanvec_loss(a: np.ndarray, b: np.ndarray, kq: np.ndarray, kx: np.ndarray) -> float:
    """f(A, B) = tr(B Aᵀ K_Q A Bᵀ K_X) − 2 tr(K_Q A Bᵀ K_X) + tr(K_Q K_X) = ‖Q A Bᵀ Xᵀ − Q Xᵀ‖²_F."""
    ab = a @ b.T
    return float(np.trace(ab.T @ kq @ ab @ kx) - 2 * np.trace(kq @ ab @ kx) + np.trace(kq @ kx))


def _fw_direction(grad: np.ndarray) -> np.ndarray:
    """argmin over the spectral-norm unit ball of ⟨grad, S⟩: S = U Vᵀ from svd(−grad)."""
    u, _, vt = np.linalg.svd(-grad, full_matrices=False)
    return u @ vt


def leanvec_ood_matrices(
    kq: np.ndarray, kx: np.ndarray, n_components: int, max_steps: int = 500, rel_tol: float = 1e-3
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """LeanVec-OOD by alternating Frank–Wolfe: (B, A, losses) from K_Q = QᵀQ and K_X = XᵀX (d×d, float64).

    ∇_A f = 2 K_Q A Bᵀ K_X B − 2 K_Q K_X B,  ∇_B f = 2 K_X B Aᵀ K_Q A − 2 K_X K_Q A;
    γ_t = 1/(t+1)^0.999; stops after the step t ≥ 2 whose |f_t − f_{t−1}| < rel_tol·f_{t−1}."""
    d = kq.shape[0]
    a = np.zeros((d, n_components))
    b = np.zeros((d, n_components))
    losses: list[float] = []
    for t in range(max_steps):
        gamma = 1.0 / (t + 1) ** 0.999
        grad_a = 2 * kq @ a @ (b.T @ kx @ b) - 2 * kq @ kx @ b
        a = (1 - gamma) * a + gamma * _fw_direction(grad_a)
        grad_b = 2 * kx @ b @ (a.T @ kq @ a) - 2 * kx @ kq @ a
        b = (1 - gamma) * b + gamma * _fw_direction(grad_b)
        losses.append(leanvec_loss(a, b, kq, kx))
        if t > 1 and abs(losses[-1] - losses[-2]) < rel_tol * losses[-2]:
            break
    return b, a, losses


@register
class LeanVec(EmbeddingTransform):
    """LeanVec: reduce database vectors with Bᵀx and queries with Aᵀq (Tepper et al., 2023).

    ``mode="id"`` (LeanVec-ID): A = B = the top-k principal directions of the
    database (PCA of the centred data; SVS's in-distribution path), applied to
    uncentred vectors: z = Pᵀx where SVS stores Pᵀ(x − μ) (same L2 and
    inner-product rankings; see the module docstring). ``mode="ood"``
    (LeanVec-OOD): ``fit(X, queries=Q)`` finds A (queries) and B (database)
    minimising ‖Q A Bᵀ Xᵀ − Q Xᵀ‖²_F by alternating Frank–Wolfe over the
    spectral-norm ball (SVS ``compute_leanvec_matrices``: ``max_steps=500``,
    ``rel_tol=1e-3``, the defaults here). The paper fits it on ≤ 100k database
    vectors and a held-out query sample.

    ``transform(x)`` reduces database vectors (z = Bᵀx), ``transform_queries``
    reduces queries (z = Aᵀq; the same as ``transform`` for ``"id"``); numpy in →
    numpy out, torch in → torch out. ``n_components`` k defaults to d // 2 (not
    from the paper, whose experiments pick k per dataset, e.g. 768 → 160).
    """

    name = "leanvec"
    paper = PAPER
    formula = "z_x = Bᵀx, z_q = Aᵀq;  ID: A = B = top-k PCs;  OOD: min_{‖A‖₂,‖B‖₂ ≤ 1} ‖Q A Bᵀ Xᵀ − Q Xᵀ‖²_F (Frank–Wolfe)"
    _state_keys = ("mean", "data_matrix", "query_matrix")
    claims = (
        Claim(
            "Reducing to d/2 with LeanVec (then LVQ-8) keeps more of exact search's top 10 than product "
            "quantization of the same size",
            task="retrieval", metric="recall10", direction="higher", arm={"n_components": 192}, paired_over="units", datasets=("sts",),
            min_effect=0.005, min_effect_reason="half a point of recall@10 against exact search",
            baselines=(
                Baseline("faiss PQ192×8 (192 B)", task_args={"index": "faiss-pq-lvq4"},
                         why="product quantization at the same bytes, the usual compressed index"),
            ),
            settings="MiniLM embeddings of the 14,563 STS sentences (d = 384 → 192, ID mode) with 2,293 STS queries "
            "instead of the paper's large text-to-image and text datasets; no re-ranking with full vectors; "
            "16 query folds as units",
            source="Tepper et al. 2023 (LeanVec), Sec. 5 (accuracy at reduced footprint)",
        ),
        beir_claim(
            "Reducing to d/2 with LeanVec (then LVQ-8) ranks better than product quantization of the same size",
            arm={"n_components": 192},
            baselines=(beir_index("faiss PQ192×8 (192 B)", "faiss-pq-lvq4", "product quantization at the same bytes"),),
            settings="LeanVec-ID, d = 384 → 192 stored as LVQ-8 (196 bytes); no re-ranking with full vectors",
            source="Tepper et al. 2023 (LeanVec), Sec. 5 (accuracy at reduced footprint)",
        ),
        Claim(
            "LeanVec-OOD keeps higher search accuracy than PCA (LeanVec-ID) at the same reduced dimension when "
            "queries are distributed unlike the database",
            testable=False,
            untestable_reason="an index measurement, not a training outcome: `reglab retrieval` reports recall@k "
            "against exact search for LeanVec-ID and -OOD at d/2 and d/4 (docs/retrieval.md)",
            source="Tepper et al. 2023 (arXiv:2312.16335), LeanVec-OOD vs LeanVec-ID on text-to-image queries",
        ),
    )

    def __init__(self, n_components: int | None = None, mode: str = "id", max_steps: int = 500, rel_tol: float = 1e-3):
        who = type(self).__name__
        if n_components is not None and (
            not isinstance(n_components, int) or isinstance(n_components, bool) or n_components < 1
        ):
            raise RegularizerInputError(f"{who} expects n_components to be a positive int or None, got {n_components!r}")
        check_choice(who, "mode", mode, ("id", "ood"))
        if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < 1:
            raise RegularizerInputError(f"{who} expects max_steps to be a positive int, got {max_steps!r}")
        check_positive(who, "rel_tol", rel_tol)
        self.n_components = n_components
        self.mode = mode
        self.max_steps = max_steps
        self.rel_tol = rel_tol

    def _fit(self, x, queries: Any = None, **fit_params):
        super()._fit(x, **fit_params)
        n, d = x.shape
        k = self.n_components if self.n_components is not None else max(1, d // 2)
        if k > d:
            raise RegularizerInputError(f"{self._who} cannot keep n_components={k} of {d}-dimensional embeddings")
        mu, cov = self._moments(x)
        if self.mode == "id":
            if queries is not None:
                raise RegularizerInputError(
                    f"{self._who}(mode='id') fits on the database only (PCA); queries are used by mode='ood'"
                )
            _, evecs = eigh_descending(cov)
            p = evecs[:, :k]
            self.losses_ = []
            return {"mean": mu, "data_matrix": p, "query_matrix": p.clone()}
        if queries is None:
            raise RegularizerInputError(
                f"{self._who}(mode='ood') needs a sample of queries: fit(database, queries=Q) with Q of shape (m, {d})"
            )
        q, _ = as_matrix(self._who, queries, arg="queries")
        if q.shape[1] != d:
            raise RegularizerInputError(
                f"{self._who} got queries of shape {tuple(queries.shape)} for {d}-dimensional database embeddings"
            )
        mq, cq = streaming_moments(q)
        if not (torch.isfinite(mq).all() and torch.isfinite(cq).all()):
            check_finite_rows(self._who, q, arg="queries")
        kx = (cov + torch.outer(mu, mu)).numpy()  # XᵀX / n
        kq = (cq + torch.outer(mq, mq)).numpy()  # QᵀQ / m
        b, a, losses = leanvec_ood_matrices(kq, kx, k, self.max_steps, self.rel_tol)
        self.losses_ = losses
        return {"mean": mu, "data_matrix": torch.from_numpy(b), "query_matrix": torch.from_numpy(a)}

    @property
    def n_components_(self) -> int | None:
        state = getattr(self, "_state", None)
        return int(state["data_matrix"].shape[1]) if state else None

    def _transform(self, x):
        return self._project(x, "data_matrix")

    def transform_queries(self, q: Any) -> Any:
        """Reduced queries z_q = Aᵀq (the query matrix; equal to ``transform`` for mode "id")."""
        qm, restore = as_matrix(self._who, q, arg="queries", allow_vector=True)
        self._check_fitted()
        if qm.shape[1] != self.n_features_in_:
            raise RegularizerInputError(
                f"{self._who} was fitted on {self.n_features_in_}-dimensional embeddings, got queries of shape {tuple(q.shape)}"
            )
        check_finite_rows(self._who, qm, arg="queries", shape=q.shape)
        return restore(self._project(qm, "query_matrix"))

    def _project(self, x: np.ndarray, key: str) -> np.ndarray:
        return x @ self._state[key].numpy().astype(x.dtype)
