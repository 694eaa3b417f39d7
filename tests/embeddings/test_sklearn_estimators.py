"""Embedding transforms are scikit-learn estimators: clone, Pipeline, GridSearchCV."""

import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

import reglab  # noqa: E402
from reglab.embeddings import Center, Pipeline, Whitening  # noqa: E402


@pytest.mark.parametrize("name", [n for n in reglab.list_regularizers("embedding")])
def test_every_transform_clones_with_equal_params(name):
    obj = reglab.create(name) if name != "embedding_pipeline" else Pipeline([Center(), Whitening(k=3)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copy = clone(obj)
    assert type(copy) is type(obj) and copy is not obj
    assert copy.get_config() == obj.get_config()


def test_set_params_validates_and_drops_fitted_state():
    w = Whitening(k=4).fit(np.random.default_rng(0).normal(size=(30, 6)))
    assert w.is_fitted
    w.set_params(k=2)
    assert w.k == 2 and not w.is_fitted
    with pytest.raises(reglab.RegularizerInputError):
        w.set_params(k=-1)
    with pytest.raises(ValueError, match="unknown parameters"):
        w.set_params(kk=3)


def test_grid_search_over_a_sklearn_pipeline():
    x, y = load_digits(return_X_y=True)
    x = x[:600].astype(np.float32)
    y = y[:600]
    pipe = make_pipeline(Whitening(k=16, shrinkage=0.1), LogisticRegression(max_iter=300))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence warnings of the classifier
        gs = GridSearchCV(pipe, {"whitening__k": [4, 32]}, cv=3).fit(x, y)
    assert gs.best_params_ == {"whitening__k": 32} and gs.best_score_ > 0.8


def test_numpy_in_numpy_out_torch_in_torch_out():
    x = np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32)
    p = clone(Pipeline([Center(), Whitening()])).fit(x)
    assert isinstance(p.transform(x), np.ndarray) and p.transform(x).dtype == np.float32
    t = p.transform(torch.from_numpy(x))
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
