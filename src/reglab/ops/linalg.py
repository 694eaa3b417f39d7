"""Linear algebra shared by several methods: row views, Grams, pairwise distances, covariances, spectra."""

from __future__ import annotations

import math

import torch

from reglab.core import checks as _checks

__all__ = [
    "flatten_rows", "power_of_two_scale", "safe_norm", "normalize_rows", "gram", "gram_diag_offdiag_sq_sum", "gram_offdiag_sq_sum", "neg_sq_dist_logsumexp", "pairwise_sq_dists", "off_diagonal", "covariance",
    "spectrum_entropy", "weighted_moments", "eigh_descending",
]  # fmt: skip


def flatten_rows(w: torch.Tensor) -> torch.Tensor:
    """View a weight as a matrix of output units: (out, in * k...)."""
    return w.reshape(w.shape[0], -1)


def power_of_two_scale(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """The power of two at or below ``max|x|`` (over ``dim``, kept), detached. Dividing
    by it is exact in floating point, so scaled computations round exactly as the
    unscaled ones wherever those do not overflow."""
    amax = x.detach().abs().amax(dim=dim, keepdim=True) if dim is not None else x.detach().abs().amax()
    return torch.exp2(torch.floor(torch.log2(amax.clamp_min(torch.finfo(x.dtype).tiny))))


def safe_norm(x: torch.Tensor, ord: float = 2.0, dim: int | None = None, keepdim: bool = False) -> torch.Tensor:
    """``‖x‖_ord`` computed as ``s·‖x/s‖`` with ``s`` a power of two near ``max|x|``
    (held constant): the squares never overflow (1e20-scale input in float32 gives a
    1e21 norm, not inf) nor underflow, and the value and gradient ``x/‖x‖`` are those
    of the plain norm."""
    scale = power_of_two_scale(x, dim)
    out = torch.linalg.vector_norm(x / scale, ord=ord, dim=dim, keepdim=dim is not None) * scale
    return out if keepdim or dim is None else out.squeeze(dim)


def normalize_rows(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Rows scaled to unit L2 norm (rows of zero norm stay zero); overflow-safe.

    ``x / max(‖x‖, eps)`` with the norm from ``safe_norm``; the custom backward is
    ``(g − y·⟨y, g⟩)/‖x‖`` per row (``g/eps`` on clamped rows), four passes where
    autograd through the safe norm and the division needs about ten.
    """
    if x.ndim != 2:
        return _normalize_rows_autograd(x, eps)
    return _NormalizeRows.apply(x, float(eps))


def _row_norms(x: torch.Tensor) -> torch.Tensor:
    """``safe_norm(x, dim=1, keepdim=True)``, on CPU by the plain norm where that is exact.

    The power-of-two scaling of ``safe_norm`` changes no rounding, so the plain
    norm gives the same values wherever its squares neither overflow (the norm is
    finite) nor underflow (every row norm ≥ 2^-40 in float32, 2^-480 in float64:
    squares lost below the smallest normal then weigh < d·2^-60 relative). On CPU
    one cheap check picks it; elsewhere the safe path runs, with no host sync.
    """
    if not _checks.defers(x) and x.dtype in (torch.float32, torch.float64) and x.numel() > 0:
        norm = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        lo, hi = torch.aminmax(norm.detach())
        if math.isfinite(float(hi)) and float(lo) >= (2.0**-40 if x.dtype == torch.float32 else 2.0**-480):
            return norm
    return safe_norm(x, dim=1, keepdim=True)


def _normalize_rows_autograd(x: torch.Tensor, eps: float) -> torch.Tensor:
    return x / safe_norm(x, dim=1, keepdim=True).clamp_min(eps)


class _NormalizeRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, eps: float) -> torch.Tensor:
        norm = _row_norms(x)
        kept = norm >= eps  # clamp_min's gradient mask
        norm = norm.clamp_min(eps)
        y = x / norm
        ctx.eps = eps
        ctx.save_for_backward(x, y, norm, kept)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        x, y, norm, kept = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: differentiate the plain expression instead
            with torch.enable_grad():
                out = _normalize_rows_autograd(x, ctx.eps)
            return torch.autograd.grad(out, x, g, create_graph=True)[0], None
        dot = (y * g).sum(dim=1, keepdim=True) * kept
        return g.addcmul(y, dot, value=-1.0).div_(norm), None


def gram(x: torch.Tensor) -> torch.Tensor:
    """``x @ x.T`` for a (n, d) matrix or a batch (b, n, d)."""
    return x @ x.transpose(-1, -2)


def _uses_gram_route(n: int, d: int, cross: bool) -> bool:
    """Whether ``Σ_{i≠j} (aᵀb)_ij²`` is cheaper through n×n Grams than through the d×d ``aᵀb``.

    Forward + backward in multiply-adds. Two views (``cross``): the d×d route costs
    3nd² (one GEMM forward, two backward), the Gram route 4n²d (two Grams forward,
    one symmetric GEMM per input backward), so Grams win when n < 0.75·d. One view:
    2nd² against 2n²d (one GEMM each way), Grams win when n < d.
    """
    return 4 * n < 3 * d if cross else n < d


class _GramOffdiagSqSum(torch.autograd.Function):
    """``(diag(aᵀb), Σ_{i≠j} (aᵀb)_ij²)`` for (n, d) ``a``, ``b`` (``b is None``: ``b = a``), see
    ``gram_diag_offdiag_sq_sum``."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.set_materialize_grads(False)
        same = b is None
        b = a if same else b
        gram_route = _uses_gram_route(*a.shape, cross=not same)
        ctx.same, ctx.gram_route = same, gram_route
        if gram_route:
            # Σ_ij (aᵀb)_ij² = Σ (aaᵀ)∘(bbᵀ); the diagonal c_j = (aᵀb)_jj = Σ_i a_ij b_ij is subtracted
            ga = a @ a.T
            gb = ga if same else b @ b.T
            c = (a * b).sum(dim=0)
            ctx.save_for_backward(a, b, ga, gb, c)
            return c, (ga * gb).sum() - c.pow(2).sum()
        m = a.T @ b
        c = m.diagonal().clone()
        m.diagonal().zero_()  # the off-diagonal part exactly (no cancellation against the diagonal)
        ctx.save_for_backward(a, b, m)
        return c, m.pow(2).sum()

    @staticmethod
    def backward(ctx, grad_c: torch.Tensor | None, grad_off: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        need_a, need_b = ctx.needs_input_grad
        if grad_off is None and grad_c is None:
            return None, None
        fresh = torch.is_grad_enabled()  # create_graph: recompute the saved matrices with a graph
        if ctx.gram_route:
            a, b, ga, gb, c = ctx.saved_tensors
            if fresh:
                ga = a @ a.T
                gb = ga if ctx.same else b @ b.T
                c = (a * b).sum(dim=0)
            # ∂/∂a of g_off·(Σ (aaᵀ)∘(bbᵀ) − Σ_j c_j²) + Σ_j g_c,j c_j:
            # 2·g_off·(bbᵀ)a + b·(g_c − 2·g_off·c)   (and symmetrically for b)
            if grad_off is None:
                scale = grad_c
            else:
                scale = -2.0 * grad_off * c if grad_c is None else grad_c - 2.0 * grad_off * c
            if ctx.same:  # a = b: both contributions, 4·g_off·(aaᵀ)a + 2a·(g_c − 2·g_off·c)
                da = 2.0 * a * scale
                return da if grad_off is None else torch.addmm(da, ga * (4.0 * grad_off), a), None
            da = db = None  # the n×n Gram scaled (n < 0.75·d here: cheaper than scaling the n×d product)
            if need_a:
                da = b * scale if grad_off is None else torch.addmm(b * scale, gb * (2.0 * grad_off), a)
            if need_b:
                db = a * scale if grad_off is None else torch.addmm(a * scale, ga * (2.0 * grad_off), b)
            return da, db
        a, b, m = ctx.saved_tensors
        if fresh:
            m = a.T @ b
            m = m - torch.diag_embed(m.diagonal())
        # ∂/∂(aᵀb) = G = 2·g_off·M + diag(g_c); ∂/∂a = b·Gᵀ, ∂/∂b = a·G: the diagonal rides in the GEMM
        g = m * (2.0 * grad_off) if grad_off is not None else torch.zeros_like(m)
        if grad_c is not None:
            if fresh:
                g = g + torch.diag_embed(grad_c)
            else:
                g.diagonal().add_(grad_c)  # g is a fresh tensor
        if ctx.same:  # G symmetric up to the diagonal term: ∂/∂a = a·(G + Gᵀ)
            return a @ (g + g.T), None
        da = b @ g.T if need_a else None
        db = a @ g if need_b else None
        return da, db


def gram_diag_offdiag_sq_sum(a: torch.Tensor, b: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(diag(aᵀb), Σ_{i≠j} (aᵀb)_ij²)`` for (n, d) matrices (``b is None``: of ``aᵀa``), fast both ways.

    The diagonal and the off-diagonal sum of squares of the d×d cross-product, as
    in the Barlow Twins terms and the VICReg covariance term. When n×n Grams are
    cheaper (n < d for one matrix, n < 0.75·d for two; ``_uses_gram_route``)
    the sum is ``Σ (aaᵀ)∘(bbᵀ) − Σ_j c_j²`` and the d×d matrix is never formed;
    otherwise it is the d×d product with its diagonal zeroed (exact, no
    cancellation). Custom backwards need one GEMM per input where autograd would
    spend two (the Grams are symmetric; the diagonal's gradient is folded into
    the GEMM or is elementwise). Differentiable to any order: under
    ``create_graph`` the backward recomputes its matrices.
    """
    return _GramOffdiagSqSum.apply(a, b)


def gram_offdiag_sq_sum(a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``Σ_{i≠j} (aᵀb)_ij²`` (``b is None``: of ``aᵀa``); see ``gram_diag_offdiag_sq_sum``."""
    return _GramOffdiagSqSum.apply(a, b)[1]


def _sq_dist_logits(z: torch.Tensor, scale: float, diagonal: bool) -> torch.Tensor:
    """``−scale·‖z_i − z_j‖²`` (n×n, one GEMM; the diagonal −inf unless ``diagonal``)."""
    g = z @ z.T
    sq = g.diagonal()
    v = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * g).clamp_min(0.0) * (-scale)
    if diagonal:
        return v - torch.diag_embed(v.diagonal())  # exactly 0 on the diagonal
    return v.masked_fill(torch.eye(v.shape[0], dtype=torch.bool, device=v.device), float("-inf"))


class _NegSqDistLogSumExp(torch.autograd.Function):
    """``log Σ_{i,j} exp(−s‖z_i − z_j‖²)``; backward ``4(rowsum(Q)·z − Q·z)``, ``Q = −s·softmax``: one GEMM."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, scale: float, diagonal: bool) -> torch.Tensor:
        sq = (z * z).sum(dim=1)
        # −s·(‖z_i‖² + ‖z_j‖²) + 2s·z_i·z_j in one GEMM, then clamped (d² ≥ 0 ⇔ v ≤ 0), in place
        v = torch.addmm((sq.unsqueeze(1) + sq.unsqueeze(0)).mul_(-scale), z, z.T, alpha=2.0 * scale)
        v.clamp_max_(0.0)
        v.diagonal().fill_(0.0 if diagonal else float("-inf"))
        lse = torch.logsumexp(v.view(-1), dim=0)
        p = v.sub_(lse).exp_()  # the softmax over pairs (0 on an excluded diagonal)
        ctx.scale, ctx.diagonal = scale, diagonal
        ctx.save_for_backward(z, p)
        return lse

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        z, p = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph: the softmax again, with a graph
            v = _sq_dist_logits(z, ctx.scale, ctx.diagonal)
            p = torch.softmax(v.flatten(), dim=0).view_as(v)
        # L depends on D_ij = s_i + s_j − 2 z_i·z_j through ∂L/∂D = Q (symmetric):
        # ∂L/∂z_k = 4·(Σ_j Q_kj)·z_k − 4·(Q z)_k, the gradient of the true squared distance
        q = p * (-ctx.scale * grad)
        return torch.addmm(z * (4.0 * q.sum(dim=1, keepdim=True)), q, z, alpha=-4.0), None, None


def neg_sq_dist_logsumexp(z: torch.Tensor, scale: float, *, diagonal: bool = False) -> torch.Tensor:
    """``log Σ_{i≠j} exp(−scale·‖z_i − z_j‖²)`` over the rows of a (n, d) batch (``diagonal=True``: all i, j).

    Squared distances as ``‖z_i‖² + ‖z_j‖² − 2z_i·z_j`` (one n×n GEMM, clamped at 0);
    the custom backward is one more GEMM (autograd through the Gram spends two, plus
    the gather of an upper triangle) and is the gradient of the exact squared
    distance. Differentiable to any order (the backward recomputes under
    ``create_graph``).
    """
    return _NegSqDistLogSumExp.apply(z, float(scale), bool(diagonal))


def pairwise_sq_dists(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Squared Euclidean distances between rows, clamped at 0.

    Computed as ‖x‖² + ‖y‖² − 2xyᵀ (one matmul); for ``y is None`` the
    diagonal is set to exactly 0.
    """
    same = y is None
    y = x if y is None else y
    xx = (x * x).sum(-1, keepdim=True)
    yy = (y * y).sum(-1, keepdim=True).transpose(-1, -2)
    d = (xx + yy - 2.0 * (x @ y.transpose(-1, -2))).clamp_min(0.0)
    if same:
        d = d - torch.diag_embed(torch.diagonal(d, dim1=-2, dim2=-1))
    return d


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of a square matrix, flattened."""
    n = m.shape[-1]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def covariance(z: torch.Tensor, *, unbiased: bool = True) -> torch.Tensor:
    """Covariance of the columns of a (n, d) batch: (d, d)."""
    zc = z - z.mean(dim=0, keepdim=True)
    denom = z.shape[0] - 1 if unbiased else z.shape[0]
    return (zc.T @ zc) / denom


def spectrum_entropy(p: torch.Tensor) -> torch.Tensor:
    """Shannon entropy ``−Σ p log p`` of a spectrum, with 0·log 0 = 0."""
    return -torch.special.xlogy(p, p).sum()


def weighted_moments(x: torch.Tensor, p: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population covariance of the rows of x, optionally weighted by p (Σp = 1)."""
    if p is None:
        return x.mean(dim=0), covariance(x, unbiased=False)
    mu = p @ x
    xc = (x - mu) * p.sqrt()[:, None]
    return mu, xc.T @ xc


def eigh_descending(cov: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending) and eigenvectors of a symmetric matrix, with a deterministic sign.

    Each eigenvector's largest-magnitude entry is made positive so numpy and
    torch inputs, and repeated fits, give the same matrix.
    """
    evals, evecs = torch.linalg.eigh(cov)
    evals, evecs = evals.flip(0), evecs.flip(1)
    idx = evecs.abs().argmax(dim=0)
    signs = torch.sign(evecs[idx, torch.arange(evecs.shape[1])])
    signs[signs == 0] = 1.0
    return evals, evecs * signs


# ---------------------------------------------------------------------------
# streaming statistics of tall (n, d) matrices (post-hoc embedding transforms)
#
# These work on numpy arrays (CPU tensors are viewed as numpy without a copy):
# numpy's ``a.T @ a`` is a BLAS symmetric rank-k update (half the multiply-adds
# of a general GEMM), the kernel scikit-learn's PCA uses too.


def row_chunk(d: int, budget: int = 1 << 23) -> int:
    """Rows per chunk when streaming over an (n, d) matrix: ``budget`` elements (32 MiB of
    float32) per chunk, within [1024, 16384] rows (a BLAS update over fewer rows is
    inefficient; more gain nothing)."""
    return min(16384, max(1024, budget // max(int(d), 1)))


def streaming_moments(x, p=None, *, chunk: int | None = None, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and population covariance of the rows of ``x`` (weighted by ``p``, Σp = 1), float64.

    ``x``: an (n, d) numpy array or CPU tensor, float32 or float64 (float16 is read
    in float32). Memory beyond ``x`` is O(chunk·d + d²): ``x`` is read in row chunks
    and never copied whole, nor upcast. Per chunk b (n_b rows, weight W_b = Σ_b p):

    * the chunk mean m_b = Σ_b p_i x_i / W_b is accumulated in float64;
    * the chunk is centered at s_b = m_b rounded to x's dtype (a subtraction of
      nearby numbers, exact or nearly, so an offset ‖μ‖ ≫ σ costs no accuracy) and
      G_b = Σ_b p_i (x_i − s_b)(x_i − s_b)ᵀ is one BLAS update in x's dtype, added in
      float64; with r_b = Σ_b p_i (x_i − s_b) = W_b (m_b − s_b) (known exactly in
      float64), M_b = G_b − r_b r_bᵀ / W_b is the chunk's centered scatter;
    * chunks merge by Chan et al.'s pairwise update: M ← M + M_b + δδᵀ·W·W_b/(W+W_b),
      δ = m_b − μ, μ ← μ + δ·W_b/(W+W_b).

    ``dtype`` (numpy float32/float64): the precision of the per-chunk products,
    default x's (float32 unless x is float64). Float32 products leave a relative
    error of about ε₃₂·(tr Σ/d)/λ in the covariance along an eigenvalue λ
    (measured ≈ 0.6·2⁻²⁴·tr Σ/(dλ) for d = 768, n = 10⁵); float64 products cost
    about twice the time.

    Returns (μ, M / W) as float64 tensors; non-finite input rows make them non-finite
    (the caller checks, once, instead of scanning the input).
    """
    import numpy as np

    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().resolve_neg().resolve_conj().numpy()
    n, d = x.shape
    cdt = np.dtype(dtype) if dtype is not None else np.dtype(np.float64 if x.dtype == np.float64 else np.float32)
    rows = min(chunk or row_chunk(d), n)
    buf = np.empty((rows, d), dtype=cdt)
    pn = None if p is None else (p.detach().cpu().double().numpy() if isinstance(p, torch.Tensor) else np.asarray(p, np.float64))
    total = 0.0
    mean = np.zeros(d)
    scatter = np.zeros((d, d))
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf rows show in the result; callers check
        for start in range(0, n, rows):
            total, mean, scatter = _moments_chunk(x, pn, start, rows, buf, cdt, total, mean, scatter)
    return torch.from_numpy(mean), torch.from_numpy(scatter / total)


def _moments_chunk(x, pn, start, rows, buf, cdt, total, mean, scatter):
    """One chunk of ``streaming_moments``: returns the updated (W, μ, M)."""
    import numpy as np

    xb = x[start:start + rows]
    nb = xb.shape[0]
    if xb.dtype not in (np.float32, np.float64):
        xb = xb.astype(np.float32)
    if pn is None:
        wb = float(nb)
        mb = xb.sum(axis=0, dtype=np.float64) / wb
    else:
        pb = pn[start:start + nb]
        wb = float(pb.sum())
        if wb == 0.0:
            if not np.isfinite(xb.sum()):  # a non-finite row of weight 0 is still bad input
                mean = mean * np.nan
            return total, mean, scatter
        mb = (pb @ xb.astype(np.float64)) / wb
    shift = mb.astype(xb.dtype)  # exact-ish centering in x's dtype, then the products in cdt
    r = wb * (mb - shift.astype(np.float64))
    y = np.subtract(xb, shift, out=buf[:nb], dtype=cdt)
    if pn is not None:  # rows scaled by √(p_i n_b / W_b) (mean square 1: no under/overflow)
        y *= np.sqrt(pb * (nb / wb)).astype(cdt)[:, None]
    g = (y.T @ y).astype(np.float64)
    if pn is not None:
        g *= wb / nb
    g -= np.outer(r, r / wb)
    merged = total + wb
    delta = mb - mean
    mean += delta * (wb / merged)
    g += np.outer(delta, delta * (total * wb / merged))
    scatter += g
    return merged, mean, scatter


__all__ += ["row_chunk", "streaming_moments"]
