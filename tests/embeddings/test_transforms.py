"""Post-hoc embedding transforms: whitening, Zipfian whitening, all-but-the-top, pipelines."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import reglab
from reglab import RegularizerInputError
from reglab.embeddings import (
    AllButTheTop,
    Center,
    EmbeddingTransform,
    Normalize,
    NotFittedError,
    Pipeline,
    Whitening,
    ZipfianWhitening,
)


def correlated(n=400, d=8, seed=0, dtype=np.float64):
    """Anisotropic data with a non-zero mean and a known spread of variances."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    scales = np.geomspace(10.0, 0.1, d)
    x = rng.normal(size=(n, d)) * scales @ q.T + rng.normal(size=d) * 5
    return x.astype(dtype)


def pop_cov(z, p=None):
    """Textbook (weighted) population covariance, with loops over rows."""
    n, d = z.shape
    p = np.full(n, 1.0 / n) if p is None else p / p.sum()
    mu = sum(p[i] * z[i] for i in range(n))
    return sum(p[i] * np.outer(z[i] - mu, z[i] - mu) for i in range(n)), mu


# ---------------------------------------------------------------- whitening


@pytest.mark.parametrize("mode", ["pca", "zca"])
def test_whitening_gives_identity_covariance_on_fitted_data(mode):
    x = correlated()
    z = Whitening(mode=mode).fit_transform(x)
    cov, mu = pop_cov(z)
    np.testing.assert_allclose(cov, np.eye(x.shape[1]), atol=1e-9)
    np.testing.assert_allclose(mu, 0.0, atol=1e-9)


def test_whitening_matches_mahalanobis_inner_products():
    # (x−μ)W Wᵀ(y−μ) = (x−μ)ᵀ Σ⁻¹ (y−μ) for any whitening matrix, whatever the eigenvector signs.
    x = correlated(n=200, d=6)
    cov, mu = pop_cov(x)
    want = (x - mu) @ np.linalg.inv(cov) @ (x - mu).T
    for mode in ("pca", "zca"):
        z = Whitening(mode=mode).fit_transform(x)
        np.testing.assert_allclose(z @ z.T, want, rtol=1e-8, atol=1e-8)


def test_zca_is_symmetric_and_is_the_inverse_square_root():
    x = correlated()
    w = Whitening(mode="zca").fit(x)
    m = w.state_dict()["matrix"].numpy()
    np.testing.assert_allclose(m, m.T, atol=1e-12)
    cov, _ = pop_cov(x)
    # textbook Σ^{-1/2}: the symmetric matrix whose square is Σ⁻¹
    np.testing.assert_allclose(m @ m, np.linalg.inv(cov), rtol=1e-8, atol=1e-10)
    assert np.all(np.linalg.eigvalsh(m) > 0)


def test_pca_k_keeps_the_top_k_variance_directions():
    x = correlated(d=10)
    k = 3
    w = Whitening(k=k).fit(x)
    z = w.transform(x)
    assert z.shape == (x.shape[0], k)
    np.testing.assert_allclose(pop_cov(z)[0], np.eye(k), atol=1e-9)
    cov, _ = pop_cov(x)
    evals, evecs = np.linalg.eigh(cov)
    top = evecs[:, ::-1][:, :k]
    m = w.state_dict()["matrix"].numpy()
    q, _ = np.linalg.qr(m)
    np.testing.assert_allclose(q @ q.T, top @ top.T, atol=1e-9)  # same subspace
    # and the kept variances are the top-k eigenvalues, in order
    np.testing.assert_allclose(np.linalg.norm(m, axis=0) ** -2, evals[::-1][:k], rtol=1e-9)


def test_zca_k_whitens_inside_the_top_k_subspace():
    x = correlated(d=6)
    z = Whitening(mode="zca", k=2).fit_transform(x)
    assert z.shape == x.shape
    ev = np.sort(np.linalg.eigvalsh(pop_cov(z)[0]))[::-1]
    np.testing.assert_allclose(ev, [1, 1, 0, 0, 0, 0], atol=1e-9)


def test_eps_and_shrinkage_are_applied():
    x = correlated(d=5)
    cov, mu = pop_cov(x)
    lam = np.linalg.eigvalsh(cov)
    z = Whitening(eps=0.5).fit_transform(x)
    got = np.sort(np.linalg.eigvalsh(pop_cov(z)[0]))
    np.testing.assert_allclose(got, np.sort(lam / (lam + 0.5)), rtol=1e-9)
    alpha = 0.3
    shrunk = (1 - alpha) * cov + alpha * np.trace(cov) / 5 * np.eye(5)
    z = Whitening(mode="zca", shrinkage=alpha).fit_transform(x)
    want = (x - mu) @ np.linalg.inv(shrunk) @ (x - mu).T
    np.testing.assert_allclose(z @ z.T, want, rtol=1e-8, atol=1e-8)


def test_full_whitening_with_too_few_samples_says_what_to_do():
    x = correlated(n=5, d=8)
    with pytest.raises(RegularizerInputError, match=r"Whitening.*5 samples.*k ≤ 4.*shrinkage"):
        Whitening().fit(x)
    assert Whitening(k=4).fit_transform(x).shape == (5, 4)
    z = Whitening(shrinkage=0.1).fit_transform(x)
    assert np.isfinite(z).all()


def test_collinear_dimensions_are_dropped_not_amplified():
    x = correlated(d=4)
    x = np.concatenate([x, x[:, :1] * 2 - x[:, 1:2]], axis=1)  # 5th column is a combination
    for mode in ("pca", "zca"):
        z = Whitening(mode=mode).fit_transform(x)
        assert np.isfinite(z).all() and np.abs(z).max() < 10  # no round-off blown up to unit variance
        lam = np.sort(np.linalg.eigvalsh(pop_cov(z)[0]))
        np.testing.assert_allclose(lam, [0, 1, 1, 1, 1], atol=1e-9)  # identity on the data's span
    np.testing.assert_allclose(Whitening().fit_transform(x)[:, :4], Whitening(k=4).fit_transform(x), atol=1e-9)
    assert np.isfinite(Whitening(eps=1e-6).fit_transform(x)).all()


# ---------------------------------------------------------------- Zipfian


def test_zipfian_with_uniform_frequencies_equals_whitening():
    x = correlated()
    for mode in ("pca", "zca"):
        plain = Whitening(mode=mode).fit_transform(x)
        zipf = ZipfianWhitening(mode=mode).fit_transform(x, frequencies=np.full(len(x), 7.0))
        np.testing.assert_allclose(zipf, plain, atol=1e-10)


def test_zipfian_whitens_the_frequency_weighted_distribution():
    x = correlated(n=300, d=5)
    f = 1.0 / np.arange(1, 301)  # Zipf's law
    z = ZipfianWhitening().fit_transform(x, frequencies=f)
    cov, mu = pop_cov(z, f)
    np.testing.assert_allclose(cov, np.eye(5), atol=1e-9)
    np.testing.assert_allclose(mu, 0.0, atol=1e-9)
    # ... while the uniform covariance of the same output is far from I
    assert np.abs(pop_cov(z)[0] - np.eye(5)).max() > 0.1


def test_zipfian_integer_counts_equal_repeating_rows():
    x = correlated(n=60, d=4)
    counts = np.random.default_rng(1).integers(1, 6, size=60)
    zipf = ZipfianWhitening().fit(x, frequencies=counts).transform(x)
    plain = Whitening().fit(np.repeat(x, counts, axis=0)).transform(x)
    np.testing.assert_allclose(zipf, plain, atol=1e-9)


def test_zipfian_frequency_errors():
    x = correlated(n=50, d=3)
    with pytest.raises(RegularizerInputError, match="ZipfianWhitening.fit needs the items' frequencies"):
        ZipfianWhitening().fit(x)
    with pytest.raises(RegularizerInputError, match=r"shape \(50,\)"):
        ZipfianWhitening().fit(x, frequencies=np.ones(49))
    with pytest.raises(RegularizerInputError, match="non-negative"):
        ZipfianWhitening().fit(x, frequencies=-np.ones(50))
    with pytest.raises(TypeError, match="unexpected"):
        Whitening().fit(x, frequencies=np.ones(50))


# ---------------------------------------------------------------- all-but-the-top


@pytest.mark.parametrize("D", [1, 3])
def test_all_but_the_top_removes_exactly_D_directions(D):
    x = correlated(d=10)
    z = AllButTheTop(n_components=D).fit_transform(x)
    assert z.shape == x.shape
    ev = np.sort(np.linalg.eigvalsh(pop_cov(z)[0]))
    assert np.all(ev[:D] < 1e-10) and np.all(ev[D:] > 1e-3)
    xc = x - x.mean(0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    top = vt[:D]
    np.testing.assert_allclose(z @ top.T, 0.0, atol=1e-9)  # nothing left along the top PCs
    np.testing.assert_allclose(z + (xc @ top.T) @ top, xc, atol=1e-9)  # everything else untouched


def test_all_but_the_top_default_is_d_over_100():
    for d, want in ((300, 3), (384, 4), (50, 1)):
        x = np.random.default_rng(0).normal(size=(d + 50, d))
        assert AllButTheTop().fit(x).state_dict()["components"].shape == (want, d)


# ---------------------------------------------------------------- center / normalize


def test_center_and_normalize():
    x = correlated()
    np.testing.assert_allclose(Center().fit_transform(x).mean(0), 0.0, atol=1e-10)
    y = np.vstack([x[:3], np.zeros((1, x.shape[1]))])
    n = Normalize().transform(y)  # no fit needed
    np.testing.assert_allclose(np.linalg.norm(n[:3], axis=1), 1.0)
    assert np.all(n[3] == 0)
    np.testing.assert_allclose(n[0], x[0] / np.linalg.norm(x[0]))


# ---------------------------------------------------------------- types, parity, state

ALL = [
    lambda: Center(),
    lambda: Normalize(),
    lambda: Whitening(),
    lambda: Whitening(mode="zca", k=3),
    lambda: AllButTheTop(n_components=2),
    lambda: Pipeline([Center(), Whitening(k=4), Normalize()]),
]


@pytest.mark.parametrize("make", ALL)
def test_numpy_torch_parity_and_types(make):
    x = correlated(dtype=np.float32)
    out_np = make().fit_transform(x)
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32
    xt = torch.from_numpy(x)
    out_t = make().fit_transform(xt)
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
    np.testing.assert_array_equal(out_t.numpy(), out_np)
    out64 = make().fit_transform(xt.double())
    assert out64.dtype == torch.float64
    np.testing.assert_allclose(out64.numpy(), out_np, rtol=1e-4, atol=1e-4)
    out_bf16 = make().fit(xt).transform(xt.bfloat16())
    assert out_bf16.dtype == torch.bfloat16


def test_statistics_are_float64_and_vectors_transform_like_rows():
    x = correlated(dtype=np.float32)
    w = Whitening().fit(torch.from_numpy(x))
    assert all(v.dtype == torch.float64 for v in w.state_dict().values())
    v = w.transform(torch.from_numpy(x[5]))
    assert v.shape == (x.shape[1],)
    torch.testing.assert_close(v, w.transform(torch.from_numpy(x[5:6]))[0])


@pytest.mark.parametrize("make", ALL + [lambda: ZipfianWhitening(k=4)])
def test_config_state_and_save_load_round_trip(make, tmp_path):
    x = correlated()
    t = make()
    if isinstance(t, ZipfianWhitening):
        t.fit(x, frequencies=np.arange(1, len(x) + 1))
    else:
        t.fit(x)
    cfg = t.get_config()
    again = reglab.from_config(cfg)
    assert type(again) is type(t) and again.get_config() == cfg
    again.load_state_dict(t.state_dict())
    np.testing.assert_array_equal(again.transform(x), t.transform(x))
    t.save(tmp_path / "t.pt")
    loaded = EmbeddingTransform.load(tmp_path / "t.pt")
    assert type(loaded) is type(t)
    np.testing.assert_array_equal(loaded.transform(x), t.transform(x))


def test_pipeline_equals_manual_chain_and_builds_from_configs():
    x = correlated()
    p = Pipeline([{"name": "center"}, {"name": "whitening", "k": 4}, {"name": "normalize"}])
    manual = Normalize().transform(Whitening(k=4).fit_transform(Center().fit_transform(x)))
    np.testing.assert_allclose(p.fit_transform(x), manual, atol=1e-12)
    assert reglab.create("embedding_pipeline", steps=p.steps).steps == p.steps
    zp = Pipeline([ZipfianWhitening(), Normalize()])
    f = np.arange(1, len(x) + 1)
    np.testing.assert_allclose(
        zp.fit_transform(x, frequencies=f),
        Normalize().transform(ZipfianWhitening().fit_transform(x, frequencies=f)),
        atol=1e-12,
    )
    with pytest.raises(RegularizerInputError, match="Pipeline steps"):
        Pipeline([42])


def test_registered_with_kind_and_form():
    names = set(reglab.list_regularizers("embedding"))
    assert {"center", "normalize", "whitening", "zipfian_whitening", "all_but_the_top", "embedding_pipeline"} <= names
    for n in names:
        cls = reglab.core.registry.get(n)
        assert cls.kind == "embedding" and cls.form == "posthoc"
    assert reglab.core.registry.get("zipfian_whitening").paper.arxiv == "2411.00680"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("make", [Center, Whitening, AllButTheTop, lambda: Pipeline([Center()])])
def test_transform_before_fit(make):
    t = make()
    with pytest.raises(NotFittedError, match=r"not fitted yet.*\.fit"):
        t.transform(correlated())


def test_input_errors_name_the_transform():
    x = correlated()
    w = Whitening().fit(x)
    with pytest.raises(RegularizerInputError, match=r"Whitening was fitted on 8-dimensional embeddings, got shape \(400, 7\)"):
        w.transform(x[:, :7])
    bad = x.copy()
    bad[[3, 17]] = np.nan
    with pytest.raises(RegularizerInputError, match=r"Whitening got NaN/inf in 2 row\(s\).*rows 3, 17"):
        Whitening().fit(bad)
    with pytest.raises(RegularizerInputError, match="rows 3, 17"):
        w.transform(bad)
    with pytest.raises(RegularizerInputError, match="floating-point"):
        Center().fit(np.ones((4, 3), dtype=np.int64))
    with pytest.raises(RegularizerInputError, match="floating-point"):
        Center().fit(torch.ones(4, 3, dtype=torch.int64))
    with pytest.raises(RegularizerInputError, match=r"shape \(n, d\)"):
        Center().fit(x[0])
    with pytest.raises(RegularizerInputError, match="empty"):
        Center().fit(np.zeros((0, 3)))
    with pytest.raises(RegularizerInputError, match="at least 2"):
        Center().fit(x[:1])
    with pytest.raises(RegularizerInputError, match="numpy array or torch tensor"):
        Center().fit([[1.0, 2.0]])
    with pytest.raises(RegularizerInputError, match="cannot keep k=9"):
        Whitening(k=9).fit(x)


def test_constructor_errors():
    with pytest.raises(RegularizerInputError, match="mode"):
        Whitening(mode="cholesky")
    with pytest.raises(RegularizerInputError, match="k to be a positive int"):
        Whitening(k=0)
    with pytest.raises(RegularizerInputError, match="shrinkage"):
        Whitening(shrinkage=1.5)
    with pytest.raises(RegularizerInputError, match="eps"):
        Whitening(eps=-1.0)
    with pytest.raises(RegularizerInputError, match="n_components"):
        AllButTheTop(n_components=-1)
    with pytest.raises(RegularizerInputError, match="cannot remove 5"):
        AllButTheTop(n_components=5).fit(correlated(d=5))
    with pytest.raises(RegularizerInputError, match="load_state_dict expects keys"):
        Whitening().load_state_dict({"mean": torch.zeros(3)})


# ---------------------------------------------------------------- invariance


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), mode=st.sampled_from(["pca", "zca"]))
def test_whitened_geometry_is_affine_invariant(seed, mode):
    # Whitening XA + b gives the same inner products as whitening X (A invertible).
    rng = np.random.default_rng(seed)
    x = correlated(n=60, d=4, seed=seed)
    a = rng.normal(size=(4, 4)) + 3 * np.eye(4)
    b = rng.normal(size=4) * 10
    z1 = Whitening(mode=mode).fit_transform(x)
    z2 = Whitening(mode=mode).fit_transform(x @ a + b)
    np.testing.assert_allclose(z1 @ z1.T, z2 @ z2.T, rtol=1e-6, atol=1e-6)


def test_pca_eigenvector_signs_are_deterministic():
    # each whitening direction has its largest-magnitude entry positive, so refits agree bit for bit
    x = correlated()
    m = Whitening().fit(x).state_dict()["matrix"]
    idx = m.abs().argmax(dim=0)
    assert (m[idx, torch.arange(m.shape[1])] > 0).all()
    torch.testing.assert_close(Whitening().fit(-x).state_dict()["matrix"], m, rtol=1e-9, atol=1e-12)
