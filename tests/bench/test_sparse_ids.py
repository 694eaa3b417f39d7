"""The sparse_ids lab task: the synthetic long-tailed CTR data, the id encoding and quick runs of its arms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from reglab.bench.experiments import sparse_ids as S
from reglab.bench.tasks import TASK_DATASETS, get_task


def test_pool_is_fixed_long_tailed_and_noisy():
    ids, labels = S.make_pool("zipf1.0", 4000)
    again, _ = S.make_pool.__wrapped__("zipf1.0", 4000)
    assert np.array_equal(ids, again)  # the pool does not depend on the run's seed
    assert ids.shape == (4000, 3) and ids[:, 0].max() < S.USERS and ids[:, 2].max() < S.SLOTS
    counts = np.bincount(ids[:, 0])
    assert counts.max() > 50 * np.median(counts[counts > 0])  # a heavy head and a long tail of rare users
    assert 0.15 < labels.mean() < 0.5
    steep, _ = S.make_pool("zipf1.2", 4000)
    assert len(np.unique(steep[:, 0])) < len(np.unique(ids[:, 0]))  # the steeper law has fewer distinct ids
    with pytest.raises(KeyError, match="sparse_ids runs on"):
        S.make_pool("digits")


def test_encoding_gives_each_field_a_block_and_filters_rare_ids():
    ids = np.array([[0, 1, 0], [2, 1, 1], [2, 0, 1]])
    counts = [np.array([1, 0, 2]), np.array([1, 2]), np.array([1, 2])]
    rows = S.encode(ids, counts, 0)
    assert rows.tolist() == [[1, 4 + 2, 7 + 1], [3, 4 + 2, 7 + 2], [3, 4 + 1, 7 + 2]]
    filtered = S.encode(ids, counts, 2)  # ids seen once go to the field's OOV row (row 0 of its block)
    assert filtered.tolist() == [[0, 4 + 2, 7 + 0], [3, 4 + 2, 7 + 2], [3, 4 + 0, 7 + 2]]
    assert S.encode(np.array([[1, 0, 0]]), counts, 0)[0, 0] == 0  # an id unseen in training: OOV


@pytest.mark.parametrize("arm, args", [(None, {}), ({"name": "mba", "weight": 0.1}, {}),
                                       ({"name": "l2", "weight": 1e-3}, {}), (None, {"min_count": 2})])
def test_quick_runs_score_auc_on_the_selected_epoch(arm, args):
    assert TASK_DATASETS["sparse_ids"] == ("zipf1.0", "zipf1.2")
    res = get_task("sparse_ids")(arm, seed=0, quick=True, **args)
    assert set(res.metrics) == {"test_auc", "val_auc"}
    assert all(math.isfinite(v) and 0.5 < v < 1 for v in res.metrics.values())
    assert res.metrics["val_auc"] == max(res.curves["val_auc"]) and len(res.curves["val_auc"]) == S.QUICK_EPOCHS
    assert "Zipf" in res.setup["data"] and res.setup["selection"] == "epoch of best validation AUC"
    assert ("filter" in res.setup["data"]) == bool(args)


def test_seed_draws_the_run_and_mba_changes_it():
    run = get_task("sparse_ids")
    a, b = run(None, seed=1, quick=True), run(None, seed=1, quick=True)
    assert a.metrics == b.metrics
    assert run(None, seed=2, quick=True).metrics != a.metrics
    assert run({"name": "mba", "weight": 1.0}, seed=1, quick=True).metrics != a.metrics


def test_other_arms_are_refused():
    with pytest.raises(ValueError, match="sparse_ids takes mba or a weight penalty"):
        get_task("sparse_ids")({"name": "label_smoothing"}, seed=0, quick=True)
