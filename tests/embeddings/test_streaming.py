"""Post-hoc transforms stream over row chunks in the input's precision: accuracy and memory.

The references are independent: float64 numpy on the upcast input (np.cov-style
centering, np.linalg.eigh), never our ops.
"""

import numpy as np
import pytest
import torch

import reglab.embeddings.base as base_mod
import reglab.ops.linalg as linalg_mod
from reglab import RegularizerInputError
from reglab.embeddings import AllButTheTop, Center, Normalize, Pipeline, Whitening, ZipfianWhitening
from reglab.ops.linalg import streaming_moments


def spectrum_data(n, d, ratio, offset=0.0, seed=0, dtype=np.float32):
    """Rows with eigenvalues geomspace(1, 1/ratio), random rotation, mean of norm ≈ offset·σ_max·√d."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    ev = np.geomspace(1.0, 1.0 / ratio, d)
    x = (rng.normal(size=(n, d)) * np.sqrt(ev)) @ q.T + offset * rng.normal(size=d)
    return x.astype(dtype)


def ref_whitening(x, p=None):
    """float64 reference PCA whitening (eigenvalues descending), from the upcast input."""
    x = x.astype(np.float64)
    p = np.full(len(x), 1.0 / len(x)) if p is None else p / p.sum()
    mu = p @ x
    xc = x - mu
    cov = (xc * p[:, None]).T @ xc
    lam, u = np.linalg.eigh(cov)
    return mu, cov, lam[::-1], u[:, ::-1]


@pytest.fixture
def small_chunks(monkeypatch):
    """Force 1000-row chunks, so small test data cross several chunk boundaries."""
    monkeypatch.setattr(linalg_mod, "row_chunk", lambda d, budget=None: 1000)
    monkeypatch.setattr(base_mod, "row_chunk", lambda d, budget=None: 1000)


# ---------------------------------------------------------------- accuracy


@pytest.mark.parametrize("offset", [0.0, 100.0])
@pytest.mark.parametrize("weighted", [False, True])
def test_streaming_moments_match_float64_reference(offset, weighted):
    x = spectrum_data(5500, 16, ratio=100, offset=offset)
    p = np.random.default_rng(1).uniform(0, 2, size=len(x)) if weighted else None
    if weighted:
        p[1000:2000] = 0.0  # a whole chunk of weight 0
        p = p / p.sum()
    mu_ref, cov_ref, lam, _ = ref_whitening(x, p)
    for dtype in (np.float32, np.float64):
        mu, cov = streaming_moments(x, p, chunk=1000, dtype=dtype)
        assert mu.dtype == cov.dtype == torch.float64
        np.testing.assert_allclose(mu.numpy(), mu_ref, rtol=0, atol=1e-12 * (1 + np.abs(mu_ref).max()))
        # relative to the smallest eigenvalue: what whitening amplifies (centering per chunk: no offset loss)
        tol = 1e-5 if dtype == np.float32 else 1e-12
        assert np.abs(cov.numpy() - cov_ref).max() / lam[-1] < tol


@pytest.mark.parametrize("offset", [0.0, 100.0])
@pytest.mark.parametrize("mode", ["pca", "zca"])
def test_float32_whitening_matches_float64_reference(small_chunks, offset, mode):
    x = spectrum_data(6000, 24, ratio=50, offset=offset)
    mu, cov, lam, u = ref_whitening(x)
    w_ref = u / np.sqrt(lam) if mode == "pca" else (u / np.sqrt(lam)) @ u.T
    z_ref = (x.astype(np.float64) - mu) @ w_ref
    w = Whitening(mode=mode).fit(x)
    z = w.transform(x)
    assert z.dtype == np.float32
    # the whitened output has identity covariance (population estimate) ...
    zc = z.astype(np.float64) - z.astype(np.float64).mean(0)
    np.testing.assert_allclose(zc.T @ zc / len(z), np.eye(24), atol=1e-5)
    # ... and equals the float64 reference (PCA columns up to sign) to ~1e-5
    if mode == "pca":
        z = z * np.sign((z * z_ref).sum(0))
    assert np.abs(z - z_ref).max() < 1e-5 * np.abs(z_ref).max()
    np.testing.assert_allclose(w.state_dict()["eigenvalues"].numpy(), lam, rtol=1e-5)


def test_auto_precision_redoes_ill_conditioned_products_in_float64():
    x = spectrum_data(3000, 24, ratio=1e5)  # float32 products err ≈ 1e-3 along the smallest direction
    mu, cov, lam, u = ref_whitening(x)
    z_ref = (x.astype(np.float64) - mu) @ (u / np.sqrt(lam))

    def err(precision):
        z = Whitening(precision=precision).fit_transform(x).astype(np.float64)
        return np.abs(z * np.sign((z * z_ref).sum(0)) - z_ref).max() / np.abs(z_ref).max()

    assert err("auto") < 1e-5 and err("float64") < 1e-5
    assert err("float32") > 1e-5  # what auto avoids
    # well conditioned: auto keeps the float32 products (same result as forcing them)
    y = spectrum_data(3000, 24, ratio=10)
    np.testing.assert_array_equal(Whitening().fit(y).state_dict()["matrix"],
                                  Whitening(precision="float32").fit(y).state_dict()["matrix"])


def test_zipfian_streaming_matches_weighted_reference(small_chunks):
    x = spectrum_data(4500, 12, ratio=30, offset=100.0)
    f = 1.0 / np.arange(1, len(x) + 1)
    mu, cov, lam, u = ref_whitening(x, f)
    z = ZipfianWhitening().fit_transform(x, frequencies=f).astype(np.float64)
    z_ref = (x.astype(np.float64) - mu) @ (u / np.sqrt(lam))
    z = z * np.sign((z * z_ref).sum(0))
    assert np.abs(z - z_ref).max() < 1e-5 * np.abs(z_ref).max()


def test_center_and_all_but_the_top_keep_the_float64_mean_under_a_large_offset(small_chunks):
    x = spectrum_data(3500, 16, ratio=10, offset=100.0)
    x64 = x.astype(np.float64)
    ref = x64 - x64.mean(0)
    got = Center().fit_transform(x)
    assert got.dtype == np.float32
    # one float32 rounding of the centered value (a float32 mean alone would be ~100× worse)
    assert np.abs(got - ref).max() <= 4 * np.finfo(np.float32).eps * np.abs(ref).max()
    top = np.linalg.svd(ref, full_matrices=False)[2][:2]
    abtt_ref = ref - (ref @ top.T) @ top
    got = AllButTheTop(n_components=2).fit_transform(x)
    assert np.abs(got - abtt_ref).max() < 1e-5 * np.abs(abtt_ref).max()


def test_chunked_results_equal_whole_array_results(small_chunks):
    x = spectrum_data(2500, 8, ratio=10, dtype=np.float64)
    for make in (Center, Normalize, lambda: Whitening(k=5), lambda: AllButTheTop(n_components=1)):
        chunked = make().fit_transform(x)
        with pytest.MonkeyPatch.context() as m:
            m.setattr(linalg_mod, "row_chunk", lambda d, budget=None: 10**9)
            m.setattr(base_mod, "row_chunk", lambda d, budget=None: 10**9)
            whole = make().fit_transform(x)
        np.testing.assert_allclose(chunked, whole, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------- bad rows in later chunks


def test_nan_rows_in_later_chunks_are_named(small_chunks):
    x = spectrum_data(3000, 6, ratio=10)
    x[2500, 3] = np.nan
    x[2999, 0] = np.inf
    for make in (Center, Whitening, AllButTheTop, lambda: Pipeline([Center(), Normalize()])):
        with pytest.raises(RegularizerInputError, match=r"2 row\(s\).*rows 2500, 2999"):
            make().fit(x)
    w = Whitening().fit(x[:2400])
    with pytest.raises(RegularizerInputError, match=r"Whitening got NaN/inf.*rows 2500, 2999"):
        w.transform(x)
    with pytest.raises(RegularizerInputError, match="Normalize got NaN/inf.*rows 2500"):
        Normalize().transform(x)
    f = np.ones(len(x))
    f[2000:3000] = 0.0  # a NaN row of weight 0 is still refused
    with pytest.raises(RegularizerInputError, match="ZipfianWhitening got NaN/inf"):
        ZipfianWhitening().fit(x, frequencies=f)


def test_precision_is_validated_and_round_trips():
    with pytest.raises(RegularizerInputError, match="precision"):
        Whitening(precision="half")
    assert Whitening(precision="float64").get_config()["precision"] == "float64"


# ---------------------------------------------------------------- memory


def _peak_rss_growth(fn):
    """Peak resident-set growth (bytes) while fn runs, from /proc (VmHWM reset by clear_refs)."""
    def status(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith(key))

    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("needs Linux /proc/self/clear_refs to reset the peak RSS")
    before = status("VmRSS:")
    out = fn()
    return status("VmHWM:") - before, out


@pytest.fixture(scope="module")
def tall():
    x = np.random.default_rng(0).standard_normal(size=(200_000, 64), dtype=np.float32)
    x += 50.0
    return x


@pytest.mark.parametrize("make", [Whitening, AllButTheTop, Center])
def test_no_float64_copy_of_the_data(make, tall):
    x = tall
    n, d = x.shape
    f64_copy = n * d * 8
    t = make()
    grew, _ = _peak_rss_growth(lambda: t.fit(x))
    assert grew < 0.5 * f64_copy, f"fit grew the peak RSS by {grew / 2**20:.0f} MiB"
    grew, z = _peak_rss_growth(lambda: t.transform(x))
    assert z.dtype == np.float32
    # the float32 output itself (half a float64 copy for d_out = d) plus O(chunk·d)
    assert grew < z.nbytes + 0.25 * f64_copy, f"transform grew the peak RSS by {grew / 2**20:.0f} MiB"
    assert isinstance(t.transform(torch.from_numpy(x[:5])), torch.Tensor)
