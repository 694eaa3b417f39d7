"""Retrieval compression benchmark behind ``reglab retrieval``: recall, bytes and speed.

For a database X (n, d) and queries Q (m, d) it compares compressed indexes
with exact search:

* **ground truth**: exact float32 inner-product top-k of the raw vectors
  (both sides L2-normalized first, so it is cosine search). recall@k is
  |top-k of the method ∩ exact top-k| / k, averaged over queries: agreement
  with exact search, not relevance;
* **hit@k**: when a relevant item is known per query (STS: the paired
  sentence), the fraction of queries whose relevant item is in the method's
  top-k (the exact row gives the ceiling);
* **bytes/vector**: exactly what each index stores per vector (LVQ: packed
  codes + two float16; faiss: ``sa_code_size()``); per-index constants
  (means, matrices, codebooks) are not counted;
* **queries/s**: the query set divided by the CPU time (``time.process_time``)
  of scoring and selecting the top-k for every query, BLAS and faiss limited
  to one thread. This is an exhaustive numpy/faiss scan, so it measures the
  arithmetic of each code, not the graph search and SIMD kernels of SVS
  (where LVQ's memory-bandwidth savings pay off).

Methods (the issue's list): raw float32; LVQ-4, LVQ-4×4, LVQ-8
(``LVQ``; the two-level code scored with both
levels over every vector: an exhaustive scan has no candidate list to
re-rank); LeanVec-ID and -OOD at d/2 and d/4
(``LeanVec``, its reduced vectors stored as
LVQ-8, SVS's usual primary; no re-ranking with full vectors, which would cost
a second copy); whitening (+ normalization) then LVQ-8, at d and d/2; faiss
``IndexScalarQuantizer`` SQ8 and SQ4 and ``IndexPQ`` (8-bit codes) at the
bytes of LVQ-4 and of the d/4 LeanVec rows (``pip install faiss-cpu``, the
``faiss`` extra; skipped with that message when absent).

``reglab retrieval --beir`` (``beir_methods``, scored against relevance judgements by
``reglab.embeddings.beir``) adds: exact search after a post-hoc transform (center, whitening,
all-but-the-top); faiss OPQ+PQ (``index_factory("OPQ{M},PQ{M}x8")``); binary codes (sign, faiss
``IndexBinaryFlat``) alone or with the Hamming candidates re-ranked (BPR's ±1 codes, or
sentence-transformers' int8 / float32 rescoring); plain truncation to the first dimensions.

STS data (``sts_retrieval_set``): the corpus is the distinct sentences of
the files; each pair with gold score ≥ 4 (of 5) gives a query (its sentence1)
whose relevant item is its sentence2; the query's own sentence is excluded from
its results. LeanVec-OOD is fitted on the sentence1s of the pairs scored
below 4 (held out from the evaluated queries).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reglab.core import RegularizerInputError

__all__ = [
    "FAISS_MISSING",
    "IndexSkipped",
    "RetrievalReport",
    "RetrievalRow",
    "beir_methods",
    "binary_codes",
    "default_methods",
    "evaluate_retrieval",
    "format_table",
    "index_for_config",
    "index_named",
    "int8_codes",
    "per_query_recall",
    "plot_recall_vs_bytes",
    "sts_retrieval_set",
]

FAISS_MISSING = "skipped: pip install faiss-cpu"
#: gold score (of 5) from which an STS pair counts as a query with a relevant item
MIN_SCORE = 4.0
_QUERY_CHUNK = 256
#: OPQ+PQ training (faiss ``OPQMatrix``): rotation/PQ alternations (the first PQ with as many k-means
#: iterations; faiss: 50 and 40) and the most database vectors it is trained on
OPQ_ITERATIONS, OPQ_TRAIN = 4, 2048


# ---------------------------------------------------------------------------
# data


@dataclass
class RetrievalSet:
    """Sentences of a corpus, the corpus index of each query, its relevant item, and an OOD fit sample."""

    sentences: list[str]
    queries: np.ndarray  # (m,) corpus ids of the query sentences
    relevant: np.ndarray  # (m,) corpus ids of their relevant sentences
    fit_queries: np.ndarray  # corpus ids of held-out query-side sentences (LeanVec-OOD)
    n_files: int = 0


def sts_retrieval_set(paths: Iterable[str | Path], min_score: float = MIN_SCORE, limit: int | None = None) -> RetrievalSet:
    """Corpus = distinct sentences of the STS files; queries = sentence1 of the pairs scored ≥ ``min_score``
    (each sentence once, pairs with two identical sentences skipped), relevant = their sentence2;
    OOD fit sample = the other sentence1s (pairs scored below ``min_score``)."""
    from reglab.embeddings.sts import find_sts_files, read_sts_file

    files = find_sts_files(paths)
    if not files:
        raise FileNotFoundError("no STS files (*.tsv) found")
    ids: dict[str, int] = {}
    queries: dict[int, int] = {}
    low: list[int] = []
    for f in files:
        for score, s1, s2 in read_sts_file(f, limit=limit):
            a = ids.setdefault(s1, len(ids))
            b = ids.setdefault(s2, len(ids))
            if score >= min_score and a != b:
                queries.setdefault(a, b)
            elif score < min_score:
                low.append(a)
    fit = np.array(sorted(set(low) - set(queries)), dtype=np.int64)
    q = np.fromiter(queries.keys(), dtype=np.int64, count=len(queries))
    r = np.fromiter(queries.values(), dtype=np.int64, count=len(queries))
    if len(q) == 0:
        raise ValueError(f"no STS pair with score ≥ {min_score} in {len(files)} file(s)")
    return RetrievalSet(list(ids), q, r, fit, len(files))


# ---------------------------------------------------------------------------
# search helpers


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    # norms in float64: a float32 row of 1e20-scale values squares past float32's range (inf norm, a zero row)
    norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1)).astype(np.float32)


def _topk(scores: np.ndarray, k: int, exclude: np.ndarray | None) -> np.ndarray:
    """Row-wise ids of the k largest scores (descending), skipping ``exclude[i]`` (−1: none)."""
    if exclude is not None:
        rows = np.flatnonzero(exclude >= 0)
        scores[rows, exclude[rows]] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def _scan(score_fn: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, k: int, exclude: np.ndarray | None) -> np.ndarray:
    out = []
    for s in range(0, len(queries), _QUERY_CHUNK):
        sl = slice(s, s + _QUERY_CHUNK)
        out.append(_topk(score_fn(queries[sl]), k, None if exclude is None else exclude[sl]))
    return np.concatenate(out)


class _Method:
    """One index: ``fit(db, fit_queries)`` then ``search(queries, k, exclude) -> ids``."""

    label = ""
    bytes_per_vector: int = 0
    group = ""
    skipped: str | None = None

    def fit(self, db: np.ndarray, fit_queries: np.ndarray | None) -> None:
        raise NotImplementedError

    def search(self, queries: np.ndarray, k: int, exclude: np.ndarray | None) -> np.ndarray:
        raise NotImplementedError


class _Raw(_Method):
    label, group = "float32 (exact)", "float32"

    def fit(self, db, fit_queries):
        self.db = db
        self.bytes_per_vector = 4 * db.shape[1]

    def search(self, queries, k, exclude):
        return _scan(lambda q: q @ self.db.T, queries, k, exclude)


class _LVQ(_Method):
    group = "LVQ"

    def __init__(self, bits: int, residual_bits: int = 0, pre: Callable[[int], list] | None = None, label: str = ""):
        self.bits, self.residual_bits, self.pre = bits, residual_bits, pre
        self.label = label or (f"LVQ-{bits}×{residual_bits}" if residual_bits else f"LVQ-{bits}")

    def fit(self, db, fit_queries):
        from reglab.embeddings.lvq import LVQ

        self.steps = []
        if self.pre is not None:
            from reglab.embeddings.base import Pipeline

            self.steps = [Pipeline(self.pre(db.shape[1])).fit(db)]
            db = self.steps[0].transform(db)
        self.lvq = LVQ(self.bits, self.residual_bits).fit(db)
        self.codes = self.lvq.encode(db)
        self.bytes_per_vector = self.codes.bytes_per_vector

    def _queries(self, q):
        for s in self.steps:
            q = s.transform(q)
        return q

    def search(self, queries, k, exclude):
        return _scan(lambda q: self.lvq.inner_product(self._queries(q), self.codes), queries, k, exclude)


class _LeanVec(_Method):
    group = "LeanVec"

    def __init__(self, mode: str, divisor: int):
        self.mode, self.divisor = mode, divisor
        self.label = f"LeanVec-{mode.upper()} d/{divisor} + LVQ-8"

    def fit(self, db, fit_queries):
        from reglab.embeddings.leanvec import LeanVec
        from reglab.embeddings.lvq import LVQ

        k = max(1, db.shape[1] // self.divisor)
        self.lv = LeanVec(k, mode=self.mode)
        if self.mode == "ood":
            if fit_queries is None or len(fit_queries) < 2:
                raise IndexSkipped("skipped: LeanVec-OOD needs a held-out query sample (--fit-queries)")
            self.lv.fit(db, queries=fit_queries)
        else:
            self.lv.fit(db)
        z = self.lv.transform(db)
        self.lvq = LVQ(8).fit(z)
        self.codes = self.lvq.encode(z)
        self.bytes_per_vector = self.codes.bytes_per_vector

    def search(self, queries, k, exclude):
        return _scan(lambda q: self.lvq.inner_product(self.lv.transform_queries(q), self.codes), queries, k, exclude)


class IndexSkipped(Exception):
    """An index that cannot be built here (faiss missing, no held-out queries, too few vectors); the message
    says why."""


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


class _Faiss(_Method):
    group = "faiss"

    def __init__(self, kind: str, arg: int = 0, label: str = ""):
        self.kind, self.arg, self.label = kind, arg, label

    def fit(self, db, fit_queries):
        faiss = _faiss()
        if faiss is None:
            raise IndexSkipped(FAISS_MISSING)
        faiss.omp_set_num_threads(1)
        d = db.shape[1]
        if self.kind == "pq":
            m = self.arg
            if d % m:
                raise IndexSkipped(f"skipped: PQ needs M dividing d={d}, got M={m}")
            if len(db) < 1000:
                raise IndexSkipped(f"skipped: PQ with 8-bit codes needs ≥ 1000 training vectors, got {len(db)}")
            index = faiss.IndexPQ(d, m, 8, faiss.METRIC_INNER_PRODUCT)
            index.pq.cp.min_points_per_centroid = 1  # only silences faiss's "provide ≥ 39·256 points" warning
        elif self.kind == "opq":
            m = self.arg
            if d % m:
                raise IndexSkipped(f"skipped: OPQ+PQ needs M dividing d={d}, got M={m}")
            if len(db) < 1000:
                raise IndexSkipped(f"skipped: OPQ+PQ with 8-bit codes needs ≥ 1000 training vectors, got {len(db)}")
            # OPQ (Ge et al. 2013): a learned rotation before PQ; faiss's factory string, as its docs use it
            # "np": no polysemous training, which index_factory's PQ does by default (a simulated annealing
            # of the code order for Hamming pre-filtering, which IndexPQ's ADC search does not use; it was
            # almost all of OPQ's minutes of fit); the plain PQ row (IndexPQ) never did it
            index = faiss.index_factory(d, f"OPQ{m},PQ{m}x8np", faiss.METRIC_INNER_PRODUCT)
            faiss.downcast_index(index.index).pq.cp.min_points_per_centroid = 1
            opq = faiss.downcast_VectorTransform(index.chain.at(0))
            # OPQ_ITERATIONS alternations of rotation and PQ, the first PQ with as many k-means iterations
            # (faiss: 50 and 40), trained on at most OPQ_TRAIN vectors of the database (faiss's own
            # OPQMatrix.max_train_points); the codes of every vector are then computed by the trained index
            opq.niter = opq.niter_pq_0 = OPQ_ITERATIONS
            train = db
            if len(db) > OPQ_TRAIN:
                train = db[np.sort(np.random.default_rng(0).choice(len(db), OPQ_TRAIN, replace=False))]
            index.train(np.ascontiguousarray(train))
        else:
            qt = {"sq8": faiss.ScalarQuantizer.QT_8bit, "sq4": faiss.ScalarQuantizer.QT_4bit}[self.kind]
            index = faiss.IndexScalarQuantizer(d, qt, faiss.METRIC_INNER_PRODUCT)
        if self.kind != "opq":
            index.train(db)
        index.add(db)
        self.index = index
        # the codes only (OPQ's rotation is a per-index constant, like LVQ's mean)
        self.bytes_per_vector = int((index.index if self.kind == "opq" else index).sa_code_size())

    def search(self, queries, k, exclude):
        extra = 0 if exclude is None else 1
        _, ids = self.index.search(np.ascontiguousarray(queries), min(k + extra, self.index.ntotal))
        return _drop_excluded(ids, exclude, k)


def _drop_excluded(ids: np.ndarray, exclude: np.ndarray | None, k: int) -> np.ndarray:
    """The first k of each row of ``ids`` (searched with one extra) without ``exclude[i]``; order is kept."""
    if exclude is None:
        return ids[:, :k]
    keep = ids != exclude[:, None]
    # drop the excluded id where present, else the last one
    keep[np.arange(len(ids)), np.where(keep.all(axis=1), ids.shape[1] - 1, np.argmin(keep, axis=1))] = False
    return ids[keep].reshape(len(ids), -1)[:, :k]


class _Transformed(_Method):
    """Exact float32 cosine search after a post-hoc transform fitted on the database (center, whitening,
    all-but-the-top ...): both sides transformed, then L2-normalized."""

    group = "transform"

    def __init__(self, make: Callable[[int], list], label: str):
        self.make, self.label = make, label

    def fit(self, db, fit_queries):
        from reglab.embeddings.base import Pipeline
        from reglab.embeddings.classic import Normalize

        self.pipe = Pipeline([*self.make(db.shape[1]), Normalize()]).fit(db)
        self.db = np.ascontiguousarray(self.pipe.transform(db), dtype=np.float32)
        self.bytes_per_vector = 4 * self.db.shape[1]

    def search(self, queries, k, exclude):
        return _scan(lambda q: np.asarray(self.pipe.transform(q), np.float32) @ self.db.T, queries, k, exclude)


class _Truncate(_Method):
    """The naive baseline: keep the first ``dims`` float32 coordinates (renormalized); not a Matryoshka
    model, so this shows what dropping bytes without any fitting costs."""

    group = "truncation"

    def __init__(self, dims: int):
        self.dims = dims
        self.label = f"truncate to {dims} dims (float32)"

    def fit(self, db, fit_queries):
        if self.dims > db.shape[1]:
            raise IndexSkipped(f"skipped: cannot keep {self.dims} of {db.shape[1]} dimensions")
        self.db = _normalize(db[:, : self.dims])
        self.bytes_per_vector = 4 * self.dims

    def search(self, queries, k, exclude):
        return _scan(lambda q: _normalize(q[:, : self.dims]) @ self.db.T, queries, k, exclude)


def binary_codes(x: np.ndarray) -> np.ndarray:
    """Sign bits packed 8 per byte, (n, ⌈d/8⌉) uint8: sentence-transformers' ``quantize_embeddings(x,
    "ubinary")`` (``np.packbits(x > 0)``), row by row."""
    return np.packbits(np.asarray(x) > 0, axis=1)


def _int8_ranges(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = x.min(axis=0).astype(np.float32)
    steps = (x.max(axis=0).astype(np.float32) - starts) / 255
    return starts, np.where(steps == 0, 1, steps).astype(np.float32)  # a constant dimension: step 1


def int8_codes(x: np.ndarray, calibration: np.ndarray | None = None) -> np.ndarray:
    """sentence-transformers' ``quantize_embeddings(x, "int8")``: per dimension the range [min, max] of
    ``calibration`` (default x itself) cut into 255 steps, clip(⌊(x − min)/step⌋, 0, 255) − 128."""
    x = np.asarray(x, dtype=np.float32)
    starts, steps = _int8_ranges(x if calibration is None else np.asarray(calibration, np.float32))
    return (np.clip(np.floor((x - starts) / steps), 0, 255) - 128).astype(np.int8)


def int8_decode(codes: np.ndarray, calibration: np.ndarray) -> np.ndarray:
    """The float vectors int8 codes stand for: (c + 128)·step + min (sentence-transformers'
    ``_dequantize_embeddings``, which its rescoring scores the float query against)."""
    starts, steps = _int8_ranges(np.asarray(calibration, np.float32))
    return ((codes.astype(np.float32) + 128) * steps + starts).astype(np.float32)


class _Binary(_Method):
    """Binary codes (the sign of each coordinate, d/8 bytes) searched by Hamming distance with faiss
    ``IndexBinaryFlat``; with ``rescore`` the top ``multiplier``·k candidates are re-scored by the float32
    query against a second representation and re-sorted (sentence-transformers / Hugging Face "embedding
    quantization" recipe: binary index in memory, rescoring vectors on disk):

    * ``"pm1"``: the ±1 codes themselves (``semantic_search_faiss(..., rescore=True)``): no extra bytes;
    * ``"int8"``: ``quantize_embeddings(..., "int8")`` codes calibrated on the database, dequantized and
      scored against the float32 query (as ``semantic_search_faiss`` rescores int8): d extra bytes;
    * ``"float32"``: the float32 vectors: 4d extra bytes.

    ``bytes_per_vector`` counts every byte stored per vector (code + rescoring vectors); the scan reads
    d/8."""

    group = "binary"

    def __init__(self, rescore: str | None = None, multiplier: int = 4):
        if rescore not in (None, "pm1", "int8", "float32"):
            raise ValueError(f"binary codes: rescore must be None, 'pm1', 'int8' or 'float32', got {rescore!r}")
        self.rescore, self.multiplier = rescore, multiplier
        self.label = "binary (sign, Hamming)" if rescore is None else {
            "pm1": "binary + rescore (±1 codes)", "int8": "binary + rescore (int8 vectors)",
            "float32": "binary + rescore (float32 vectors)"}[rescore]

    def fit(self, db, fit_queries):
        faiss = _faiss()
        if faiss is None:
            raise IndexSkipped(FAISS_MISSING)
        faiss.omp_set_num_threads(1)
        n, d = db.shape
        codes = binary_codes(db)
        self.index = faiss.IndexBinaryFlat(8 * codes.shape[1])
        self.index.add(codes)
        self.d = d
        extra = 0
        if self.rescore == "pm1":
            self.vectors = np.unpackbits(codes, axis=1, count=d).astype(np.float32) * 2 - 1
        elif self.rescore == "int8":
            self.codes8 = int8_codes(db)
            self.vectors = int8_decode(self.codes8, db)  # the (min, step) of each dimension: per-index constants
            extra = d
        elif self.rescore == "float32":
            self.vectors = db
            extra = 4 * d
        self.bytes_per_vector = codes.shape[1] + extra

    def search(self, queries, k, exclude):
        extra = 0 if exclude is None else 1
        depth = (k + extra) * (self.multiplier if self.rescore else 1)
        _, ids = self.index.search(binary_codes(queries), min(depth, self.index.ntotal))
        if self.rescore is not None:
            ids = self._rescore(np.ascontiguousarray(queries, np.float32), ids)
        return _drop_excluded(ids, exclude, k)

    def _rescore(self, q: np.ndarray, ids: np.ndarray) -> np.ndarray:
        out = np.empty_like(ids)
        for s in range(0, len(q), 32):
            cand = ids[s : s + 32]
            vecs = self.vectors[cand].astype(np.float32, copy=False)  # (b, c, d)
            scores = np.einsum("bd,bcd->bc", q[s : s + 32], vecs)
            order = np.argsort(-scores, axis=1, kind="stable")
            out[s : s + 32] = np.take_along_axis(cand, order, axis=1)
        return out


def index_named(name: str, d: int) -> _Method:
    """One index of the comparison by name: ``"exact"``, ``"lvq-B"`` / ``"lvq-BxR"``, ``"leanvec-id-K"`` /
    ``"leanvec-ood-K"`` (d/K dimensions, LVQ-8 codes), ``"faiss-sq8"``, ``"faiss-sq4"``, ``"faiss-pq-M"``
    (``M`` = ``"lvq4"`` or ``"d4"`` for the byte budget of LVQ-4 or of LeanVec d/4)."""
    from reglab.embeddings.lvq import bytes_per_vector

    parts = name.split("-")
    if name == "exact":
        return _Raw()
    if parts[0] == "lvq" and len(parts) == 2:
        bits, _, res = parts[1].partition("x")
        return _LVQ(int(bits), int(res or 0))
    if parts[0] == "leanvec" and len(parts) == 3:
        return _LeanVec(parts[1], int(parts[2]))
    if name in ("faiss-sq8", "faiss-sq4"):
        return _Faiss(parts[1], label=f"faiss {parts[1].upper()}")
    if parts[0] == "faiss" and parts[1:2] in (["pq"], ["opq"]) and len(parts) == 3 and parts[2] in ("lvq4", "d4"):
        budget = bytes_per_vector(d, 4) if parts[2] == "lvq4" else bytes_per_vector(max(1, d // 4), 8)
        m = _pq_m(d, budget)
        return _Faiss(parts[1], m, label=f"faiss PQ{m}×8" if parts[1] == "pq" else f"faiss OPQ+PQ{m}×8")
    if parts[0] == "truncate" and len(parts) == 2 and parts[1].isdigit():
        return _Truncate(int(parts[1]))
    if name == "binary":
        return _Binary()
    if parts[:2] == ["binary", "rescore"] and len(parts) == 3 and parts[2] in ("pm1", "int8", "float32"):
        return _Binary(parts[2])
    raise ValueError(
        f"unknown index {name!r}: exact, lvq-B[xR], leanvec-id|ood-K, faiss-sq8|sq4, faiss-pq|opq-lvq4|d4, "
        f"truncate-DIMS, binary, binary-rescore-pm1|int8|float32"
    )


def index_for_config(cfg: dict[str, Any], d: int) -> _Method:
    """The index a registered transform's config describes: ``lvq`` (``bits``, ``residual_bits``) or
    ``leanvec`` (``mode``, ``n_components``, default d/2; its vectors stored as LVQ-8); any other
    registered embedding transform (``whitening``, ``all_but_the_top``, ``center`` ...) gives exact float32
    cosine search on the transformed (then L2-normalized) vectors."""
    if cfg["name"] == "lvq":
        return _LVQ(int(cfg.get("bits", 8)), int(cfg.get("residual_bits", 0)))
    if cfg["name"] == "leanvec":
        return _LeanVec(cfg.get("mode", "id"), max(1, round(d / int(cfg.get("n_components") or d // 2))))
    if cfg["name"] == "binary_quantization":
        return _Binary(cfg.get("rescore", "pm1"), int(cfg.get("multiplier", 4)))
    from reglab.core.registry import from_config, get
    from reglab.embeddings.base import EmbeddingTransform

    if not issubclass(get(cfg["name"]), EmbeddingTransform):
        raise ValueError(f"no retrieval index for {cfg['name']!r}: lvq, leanvec or an embedding transform")
    params = ", ".join(f"{k}={v}" for k, v in cfg.items() if k != "name")
    return _Transformed(lambda _d: [from_config(dict(cfg))], label=f"{cfg['name']}({params})" if params else cfg["name"])


def per_query_recall(
    database: np.ndarray, queries: np.ndarray, index: _Method, *, k: int = 10, exclude: np.ndarray | None = None,
    fit_queries: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """(recall@k of each query against exact float32 search, bytes per vector) for one index; the
    inputs are L2-normalized first, as ``evaluate_retrieval`` does."""
    db, q = _normalize(np.ascontiguousarray(database, np.float32)), _normalize(np.ascontiguousarray(queries, np.float32))
    fq = None if fit_queries is None else _normalize(np.ascontiguousarray(fit_queries, np.float32))
    exact = _Raw()
    exact.fit(db, fq)
    truth = exact.search(q, k, exclude)
    index.fit(db, fq)
    got = index.search(q, k, exclude)
    hits = np.array([len(set(a.tolist()) & set(b.tolist())) for a, b in zip(got, truth)], dtype=np.float64)
    return hits / truth.shape[1], int(index.bytes_per_vector)


def _pq_m(d: int, target_bytes: int) -> int:
    """The largest divisor of d not above ``target_bytes`` (PQ with 8-bit codes stores M bytes)."""
    return max(m for m in range(1, d + 1) if d % m == 0 and m <= max(1, target_bytes))


def _lvq_and_leanvec() -> list[_Method]:
    """The LVQ and LeanVec rows both comparisons share, in table order."""
    return [_LVQ(8), _LVQ(4, 4), _LVQ(4), _LeanVec("id", 2), _LeanVec("ood", 2), _LeanVec("id", 4), _LeanVec("ood", 4)]


def default_methods(d: int) -> list[_Method]:
    """The issue's comparison, in table order."""
    from reglab.embeddings.classic import Normalize
    from reglab.embeddings.lvq import bytes_per_vector
    from reglab.embeddings.whitening import Whitening

    half = max(1, d // 2)
    return [
        _Raw(),
        *_lvq_and_leanvec(),
        _LVQ(8, pre=lambda d: [Whitening(eps=1e-8), Normalize()], label="whitening + LVQ-8"),
        _LVQ(8, pre=lambda d: [Whitening(k=half), Normalize()], label="whitening d/2 + LVQ-8"),
        _Faiss("sq8", label="faiss SQ8"),
        _Faiss("sq4", label="faiss SQ4"),
        _Faiss("pq", _pq_m(d, bytes_per_vector(d, 4)), label=f"faiss PQ{_pq_m(d, bytes_per_vector(d, 4))}×8"),
        _Faiss("pq", _pq_m(d, bytes_per_vector(max(1, d // 4), 8)), label=f"faiss PQ{_pq_m(d, bytes_per_vector(max(1, d // 4), 8))}×8"),
    ]


def beir_methods(d: int) -> list[_Method]:
    """The comparison of ``reglab retrieval --beir``, in table order: exact float32 first, then the
    post-hoc transforms (exact search after them), LVQ, LeanVec, faiss at equal bytes, binary codes with
    and without rescoring, and plain truncation to the bytes of the compressed rows (the naive baseline)."""
    from reglab.embeddings.all_but_the_top import AllButTheTop
    from reglab.embeddings.classic import Center
    from reglab.embeddings.whitening import Whitening

    half = max(1, d // 2)
    methods: list[_Method] = [
        _Raw(),
        _Transformed(lambda d: [Center()], "center"),
        # eps as `reglab sts` and default_methods: MiniLM's covariance can have null directions
        _Transformed(lambda d: [Whitening(eps=1e-8)], "whitening (k = d)"),
        _Transformed(lambda d: [Whitening(k=half)], f"whitening (k = {half})"),
        _Transformed(lambda d: [AllButTheTop()], "all-but-the-top"),
        *_lvq_and_leanvec(),
        index_named("faiss-sq8", d),
        index_named("faiss-sq4", d),
        index_named("faiss-pq-lvq4", d),
        index_named("faiss-opq-lvq4", d),
        index_named("faiss-pq-d4", d),
        index_named("faiss-opq-d4", d),
        _Binary(),
        _Binary("pm1"),
        _Binary("int8"),
        _Binary("float32"),
    ]
    # truncation to the bytes of float32 d/2, LVQ-8, LVQ-4 and the binary code
    for dims in sorted({half, d // 4, d // 8, d // 32} - {0}, reverse=True):
        methods.append(_Truncate(dims))
    return methods


# ---------------------------------------------------------------------------
# evaluation


@dataclass
class RetrievalRow:
    method: str
    group: str
    bytes_per_vector: int | None = None
    recall: dict[int, float] = field(default_factory=dict)
    hit: dict[int, float] = field(default_factory=dict)
    queries_per_s: float | None = None
    note: str = ""  # why the row has no numbers (skipped, or failed)
    failed: bool = False  # it raised: ``note`` says why; the other rows stand


@dataclass
class RetrievalReport:
    rows: list[RetrievalRow]
    n_database: int
    n_queries: int
    dim: int
    ks: tuple[int, ...]
    has_relevant: bool
    source: str = ""

    @property
    def failed(self) -> list[RetrievalRow]:
        return [r for r in self.rows if r.failed]


def _failure(err: BaseException) -> str:
    """The cause of a failed row, named as such: an overflow is not a collinearity."""
    if isinstance(err, FloatingPointError):
        return f"FAILED: numeric overflow ({err}); the vectors' scale is too large for this index"
    return f"FAILED: {type(err).__name__}: {err}"


def _as_array(who: str, x: Any, arg: str) -> np.ndarray:
    from reglab.embeddings.base import as_matrix, check_finite_rows

    a, _ = as_matrix(who, x, arg=arg)
    check_finite_rows(who, a, arg=arg)
    return np.ascontiguousarray(a, dtype=np.float32)


def evaluate_retrieval(
    database: Any,
    queries: Any,
    relevant: Any = None,
    *,
    exclude: Any = None,
    fit_queries: Any = None,
    methods: Sequence[_Method] | None = None,
    ks: Sequence[int] = (1, 10, 100),
    source: str = "",
    progress: Callable[[str], None] | None = None,
    steps: Callable[[str, int, int], None] | None = None,
) -> RetrievalReport:
    """Recall@k against exact float32 inner-product search, hit@k of ``relevant`` (one database id per
    query, −1 for none), bytes/vector and CPU queries/s for each method (``default_methods``).

    Both sides are L2-normalized first (cosine). ``exclude``: one database id per query to leave out
    of its results (−1: none), e.g. the query's own entry. ``fit_queries``: a held-out query sample for
    LeanVec-OOD (its rows are skipped without one).

    A method that raises (an index that cannot fit these vectors) is reported as a failed row
    (``row.failed``, the cause in ``row.note``; a numpy overflow named as one) and the other rows
    stand; the exact scan, the ground truth, must succeed. ``steps("indexes", done, total)``
    counts the methods done."""
    who = "reglab retrieval"
    db = _normalize(_as_array(who, database, "database vectors"))
    q = _normalize(_as_array(who, queries, "query vectors"))
    n, d = db.shape
    if q.shape[1] != d:
        raise RegularizerInputError(f"{who}: queries have dimension {q.shape[1]}, the database {d}")
    fq = None if fit_queries is None else _normalize(_as_array(who, fit_queries, "fit queries"))
    if fq is not None and fq.shape[1] != d:
        raise RegularizerInputError(f"{who}: fit queries have dimension {fq.shape[1]}, the database {d}")

    def ids(x: Any, arg: str) -> np.ndarray | None:
        if x is None:
            return None
        a = np.asarray(x)
        if a.shape != (len(q),) or not np.issubdtype(a.dtype, np.integer) or a.min() < -1 or a.max() >= n:
            raise RegularizerInputError(
                f"{who} expects {arg} as {len(q)} integer database ids in [-1, {n}) (one per query), "
                f"got shape {a.shape} and dtype {a.dtype}"
            )
        return a.astype(np.int64)

    rel, exc = ids(relevant, "relevant"), ids(exclude, "exclude")
    ks = tuple(sorted({min(int(k), n - (exc is not None)) for k in ks if k >= 1}))
    kmax = ks[-1]
    methods = list(default_methods(d) if methods is None else methods)
    from threadpoolctl import threadpool_limits

    rows: list[RetrievalRow] = []
    exact = None
    with threadpool_limits(1):
        for i, m in enumerate(methods):
            if steps is not None:
                steps("indexes", i, len(methods))
            row = RetrievalRow(m.label, m.group)
            rows.append(row)
            if progress:
                progress(f"{m.label} ...")
            if exact is None and not isinstance(m, _Raw):
                raise ValueError("the first method must be the exact float32 scan (the ground truth)")
            try:
                with np.errstate(over="raise"):  # an overflow fails its row under its own name
                    m.fit(db, fq)
                    t0 = time.process_time()
                    got = m.search(q, kmax, exc)
                    elapsed = time.process_time() - t0
            except IndexSkipped as err:
                row.note = str(err)
                continue
            except Exception as err:  # one index that cannot handle these vectors must not abort the others
                if exact is None:
                    raise  # no ground truth, no report
                row.note, row.failed = _failure(err), True
                continue
            if exact is None:  # the first method is the exact float32 scan
                exact = got
            row.bytes_per_vector = m.bytes_per_vector
            row.queries_per_s = len(q) / elapsed if elapsed > 0 else float("inf")
            for k in ks:
                row.recall[k] = _recall(got[:, :k], exact[:, :k])
                if rel is not None:
                    row.hit[k] = _hit(got[:, :k], rel)
    if steps is not None:
        steps("indexes", len(methods), len(methods))
    return RetrievalReport(rows, n, len(q), d, ks, rel is not None, source)


def _recall(got: np.ndarray, exact: np.ndarray) -> float:
    k = exact.shape[1]
    return float(np.mean([len(np.intersect1d(a, b, assume_unique=True)) / k for a, b in zip(got, exact)]))


def _hit(got: np.ndarray, relevant: np.ndarray) -> float:
    has = relevant >= 0
    if not has.any():
        return float("nan")
    return float((got[has] == relevant[has, None]).any(axis=1).mean())


# ---------------------------------------------------------------------------
# output


def format_table(report: RetrievalReport) -> str:
    """The markdown table: one row per method."""
    raw = 4 * report.dim
    head = ["method", "bytes/vector", "compression"] + [f"recall@{k}" for k in report.ks]
    if report.has_relevant:
        head += [f"hit@{k}" for k in report.ks if k <= 10]
    head += ["queries/s (1 CPU thread)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report.rows:
        if r.note:
            cells = [r.method, r.note] + [""] * (len(head) - 2)
        else:
            cells = [r.method, str(r.bytes_per_vector), f"{raw / r.bytes_per_vector:.1f}×"]
            cells += [f"{r.recall[k]:.3f}" for k in report.ks]
            if report.has_relevant:
                cells += [f"{r.hit[k]:.3f}" for k in report.ks if k <= 10]
            cells += [f"{r.queries_per_s:,.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_recall_vs_bytes(report: RetrievalReport, path: str | Path, k: int = 10) -> Path:
    """recall@k against bytes/vector (log scale), one marker per method, grouped by family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = min(report.ks, key=lambda kk: abs(kk - k))
    fig, ax = plt.subplots(figsize=(7.5, 5))
    markers = {"float32": "*", "LVQ": "o", "LeanVec": "s", "faiss": "^"}
    for r in report.rows:
        if r.note:
            continue
        ax.scatter(r.bytes_per_vector, r.recall[k], marker=markers.get(r.group, "o"), s=60, label=r.method)
        ax.annotate(r.method, (r.bytes_per_vector, r.recall[k]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes per vector (log scale)")
    ax.set_ylabel(f"recall@{k} vs exact float32 search")
    ax.set_title(f"{report.source or 'retrieval'}: n={report.n_database}, d={report.dim}, {report.n_queries} queries", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def describe(report: RetrievalReport, relevance: str = "") -> str:
    """The protocol in two sentences (printed above the table); ``relevance`` says what a
    query's relevant item is (e.g. "its STS pair, gold score ≥ 4 of 5")."""
    parts = [
        f"{report.n_queries} queries against {report.n_database} vectors of dimension {report.dim} ({report.source})."
        if report.source else f"{report.n_queries} queries against {report.n_database} vectors of dimension {report.dim}.",
        "recall@k: overlap with the exact float32 cosine top-k; bytes/vector: per-vector storage only "
        "(LVQ: packed codes + two float16); queries/s: CPU time (time.process_time) of an exhaustive scan "
        "of the whole query set, BLAS and faiss on one thread.",
    ]
    if report.has_relevant:
        what = f" ({relevance})" if relevance else ""
        parts.append(f"hit@k: the query's relevant item{what} is in the top-k.")
    return " ".join(parts)

