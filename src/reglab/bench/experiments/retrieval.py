"""Lab task ``retrieval``: recall of compressed indexes against exact search, paired over query folds.

The corpus and queries of ``reglab retrieval`` (``reglab.embeddings.retrieval.sts_retrieval_set``: the
distinct sentences of the STS files, embedded with the offline MiniLM encoder; queries = sentence1 of the
pairs with gold score ≥ 4, each query's own entry excluded). An index is built from the arm (``lvq``:
``bits``/``residual_bits``; ``leanvec``: ``mode`` and ``n_components`` dimensions stored as LVQ-8) or, for the
baselines (``arm=None``), from the task argument ``index`` (``"faiss-sq4"``, ``"faiss-pq-lvq4"``...:
``reglab.embeddings.retrieval.index_named``). Metric: recall@10 against exact float32 search; the
queries are split into 16 fixed folds (a seeded permutation, the same for every arm), the units the
claims pair over (``paired_over="units"``); ``bytes_per_vector`` says what the index stores. The data and
encoder are optional (``$REGLAB_STS_DATA``, else the SemEval STS test files shipped with reglab; the ``text`` extra), faiss too
(the ``faiss`` extra): without them the run is skipped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from reglab.bench.tasks import TaskResult, TaskUnavailable, task
from reglab.embeddings.sts import default_data_dir

FOLDS = 16


def _index_for(arm: dict | None, index: str, d: int):
    from reglab.embeddings.retrieval import index_for_config, index_named

    if arm is not None:
        return index_for_config(arm, d)
    if not index:
        raise ValueError("the retrieval task needs an arm or a baseline index (task argument index=...)")
    return index_named(index, d)


@task("retrieval", datasets=("sts",))
def retrieval(
    arm: dict | None, *, seed: int = 0, quick: bool = False, dataset: str = "sts", index: str = "",
    data: str | None = None, **task_args: Any,
) -> TaskResult:
    if task_args:
        raise TypeError(f"retrieval task got unknown arguments {sorted(task_args)}")
    from reglab.embeddings.encoders import TextExtraMissing, get_encoder
    from reglab.embeddings.retrieval import IndexSkipped, per_query_recall, sts_retrieval_set

    root = Path(data) if data else default_data_dir()
    if root is None or not root.exists():
        raise TaskUnavailable("STS data not found (looked at $REGLAB_STS_DATA and the files shipped with reglab)")
    try:
        enc = get_encoder("minilm")
    except TextExtraMissing as err:
        raise TaskUnavailable(str(err)) from err
    t0 = time.perf_counter()
    rs = sts_retrieval_set([root], limit=200 if quick else None)
    emb = np.asarray(enc.encode(rs.sentences), dtype=np.float32)
    method = _index_for(arm, index, emb.shape[1])
    try:
        recall, nbytes = per_query_recall(
            emb, emb[rs.queries], method, k=10, exclude=rs.queries, fit_queries=emb[rs.fit_queries]
        )
    except IndexSkipped as err:
        raise TaskUnavailable(str(err)) from err
    fold = np.random.default_rng(0).permutation(len(recall)) % FOLDS
    units = {f"fold{f:02d}": float(recall[fold == f].mean()) for f in range(FOLDS)}
    return TaskResult(
        metrics={"recall10": float(recall.mean()), "bytes_per_vector": float(nbytes)},
        units={"recall10": units},
        seconds=time.perf_counter() - t0,
        setup={
            "data": f"{len(rs.sentences)} distinct STS sentences (MiniLM, d = {emb.shape[1]}), {len(recall)} queries",
            "model": f"index: {getattr(method, 'label', index)}",
            "training": "none: indexes are fitted on the corpus (LeanVec-OOD also on held-out query sentences)",
            "selection": f"none; recall@10 against exact float32 search, paired over {FOLDS} fixed query folds",
        },
    )
