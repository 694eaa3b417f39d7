"""Lab task ``beir``: relevance (nDCG@10 against the qrels) of an index or transform on BEIR SciFact, per query.

SciFact's test split (Wadden et al. 2020 in BEIR's construction, Thakur et al. 2021: 5,183 abstracts, 300
test queries) embedded with the offline MiniLM encoder (documents as title + " " + text;
``reglab.embeddings.beir``, encodings cached by file hash). The arm is a registered embedding transform's
config: ``lvq`` / ``leanvec`` give a compressed index (``reglab.embeddings.retrieval.index_for_config``),
any other transform (``whitening``, ``all_but_the_top``) exact cosine search on the transformed vectors;
a baseline (``arm=None``) names its index with the task argument ``index`` (``"exact"``, ``"faiss-sq4"``,
``"faiss-pq-lvq4"``, ``"binary-rescore-float32"``, ``"truncate-96"`` ...:
``reglab.embeddings.retrieval.index_named``). LeanVec-OOD is fitted on the train-split queries.

Metric ``ndcg10``: mean nDCG@10 by trec_eval; ``units["ndcg10"]`` holds it per test query, the units the
claims pair over (``paired_over="units"``: the verdict engine's sign-flip test and BCa interval over
queries, the standard paired IR comparison). ``recall100``, ``mrr10`` and ``bytes_per_vector`` are reported
beside it. Deterministic (``seed`` is accepted and unused); ``quick`` keeps the first 60 test queries.

Data: the task argument ``data``, else ``$REGLAB_BEIR_SCIFACT``, else ``../shared/data/beir/scifact`` beside
the source checkout, else a SciFact downloaded before by ``reglab retrieval --beir scifact`` (cache). The
encoder (``reglab[text]``), pytrec_eval (``reglab[text]``) and, for faiss baselines, ``reglab[faiss]`` are
optional: without them the run is skipped.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from reglab.bench.tasks import TaskResult, TaskUnavailable, task


def scifact_dir(data: str | None = None) -> Path | None:
    """The SciFact folder the task reads (see the module docstring), or None."""
    from reglab.embeddings.beir import beir_cache_dir

    candidates = [data, os.environ.get("REGLAB_BEIR_SCIFACT")]
    candidates.append(str(Path(__file__).resolve().parents[4] / ".." / "shared" / "data" / "beir" / "scifact"))
    candidates.append(str(beir_cache_dir() / "scifact"))
    for c in candidates:
        if c and (Path(c) / "corpus.jsonl").is_file():
            return Path(c)
    return None


@task("beir", datasets=("scifact",))
def beir_task(
    arm: dict | None, *, seed: int = 0, quick: bool = False, dataset: str = "scifact", index: str = "",
    data: str | None = None, **task_args: Any,
) -> TaskResult:
    if task_args:
        raise TypeError(f"beir task got unknown arguments {sorted(task_args)}")
    if dataset != "scifact":
        raise ValueError(f"the beir task runs on SciFact (dataset 'scifact'), got {dataset!r}")
    from reglab.embeddings.encoders import TextExtraMissing, get_encoder
    from reglab.embeddings.retrieval import index_for_config, index_named

    root = scifact_dir(data)
    if root is None:
        raise TaskUnavailable("BEIR SciFact not found (task argument data, $REGLAB_BEIR_SCIFACT, ../shared/data/beir)")
    try:
        import pytrec_eval  # noqa: F401

        enc = get_encoder("minilm", use_cache=False)
    except (TextExtraMissing, ImportError) as err:
        raise TaskUnavailable(str(err)) from err
    from reglab.embeddings.beir import encode_beir, evaluate_beir, load_beir

    t0 = time.perf_counter()
    bd = load_beir(root, "test")
    docs, queries, fit = encode_beir(bd, enc)
    if quick:
        keep = 60
        bd.query_ids, bd.query_texts, queries = bd.query_ids[:keep], bd.query_texts[:keep], queries[:keep]
    d = docs.shape[1]
    if arm is not None:
        method = index_for_config(arm, d)
    elif index:
        method = index_named(index, d)
    else:
        raise ValueError("the beir task needs an arm or a baseline index (task argument index=...)")
    row = evaluate_beir(bd, docs, queries, fit, methods=[method], encoder=enc.name).rows[0]
    if row.failed:
        if row.failed.startswith("skipped"):
            raise TaskUnavailable(row.failed)
        raise RuntimeError(f"beir task, index {getattr(method, 'label', index)}: {row.failed}")
    return TaskResult(
        metrics={"ndcg10": row.scores["ndcg@10"], "recall100": row.scores["recall@100"],
                 "mrr10": row.scores["mrr@10"], "bytes_per_vector": float(row.bytes_per_vector)},  # fmt: skip
        units={"ndcg10": dict(row.per_query["ndcg@10"]), "recall100": dict(row.per_query["recall@100"])},
        seconds=time.perf_counter() - t0,
        setup={
            "data": f"BEIR SciFact test: {len(bd.doc_ids)} abstracts, {len(bd.query_ids)} queries "
            f"(MiniLM, d = {d}; documents as title + text)",
            "model": f"index: {getattr(method, 'label', index)} ({row.bytes_per_vector} bytes per vector)",
            "training": "none: indexes and transforms are fitted on the corpus (LeanVec-OOD on the 809 train queries)",
            "selection": "none; nDCG@10 by trec_eval, paired query by query (paired_over='units')",
        },
    )
