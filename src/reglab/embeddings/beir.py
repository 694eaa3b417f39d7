"""BEIR retrieval data (Thakur et al., NeurIPS 2021 Datasets and Benchmarks): loader, metrics, encodings.

**Layout** (what BEIR's ``GenericDataLoader`` and MTEB read): a folder with
``corpus.jsonl`` (one JSON object a line: ``_id``, ``title`` (optional),
``text``), ``queries.jsonl`` (``_id``, ``text``) and ``qrels/{split}.tsv``
(``query-id<TAB>corpus-id<TAB>score``, a header line first). ``load_beir``
reads such a folder for one split; given a dataset *name* instead of a path
(``"scifact"``) it downloads BEIR's official zip into a cache folder once,
checks the archive and its layout, and reads it from there. Bad folders get a
``BeirFormatError`` naming the file and line: a missing qrels file, a
qrels id absent from the corpus or queries, duplicate ids, empty text,
non-UTF-8 bytes, malformed JSON or TSV.

A document is encoded as ``title + " " + text`` (stripped), as BEIR's
``SentenceBERT`` wrapper does for sentence encoders; a query as its text.

**Metrics** come from ``pytrec_eval`` (pip ``pytrec_eval-terrier``): the
Python binding of NIST's ``trec_eval``, the evaluator BEIR's
``EvaluateRetrieval`` and MTEB call, so nDCG@10 and Recall@100 here are the
numbers those papers and leaderboards report (same gain = qrels score, same
log2 discount, same ideal ranking from the qrels). It is a small C extension
with numpy/scipy as its only dependencies; ``ranx`` (the other well-kept
choice) pulls numba and computes the same quantities in its own code, which
would make the published numbers an extra cross-check instead of the
definition. MRR@10 is trec_eval's ``recip_rank`` on each query's top 10 (BEIR
computes MRR@k the same way). A ranking is handed to the evaluator with
scores that strictly decrease along it, so trec_eval's tie-breaking (by
document id) never reorders it: the metrics judge exactly the order a method
returned, ties included.

**Encodings** are cached on disk keyed by the encoder's name and the sha256 of
``corpus.jsonl`` / ``queries.jsonl`` (``encode_beir``): a changed file
is re-encoded, an unchanged one never is.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "BEIR_URL",
    "BeirData",
    "BeirFormatError",
    "METRICS",
    "beir_cache_dir",
    "encode_beir",
    "ir_metrics",
    "load_beir",
    "read_beir_folder",
]

#: where BEIR publishes its datasets (``{name}.zip``, one folder ``{name}/`` inside)
BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/"
#: metric names of ``ir_metrics`` (the keys of results.json rows)
METRICS = ("ndcg@10", "recall@100", "mrr@10")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


class BeirFormatError(ValueError):
    """A BEIR folder that does not follow the layout; the message names the file and line."""


@dataclass
class BeirData:
    """One split of a BEIR dataset.

    ``doc_ids`` / ``doc_texts``: the whole corpus in file order (text = title + " " + text);
    ``query_ids`` / ``query_texts``: the queries judged in ``qrels/{split}.tsv``, in queries.jsonl order;
    ``qrels``: query id → {doc id: score}; ``fit_query_ids`` / ``fit_query_texts``: queries of the other
    splits' qrels (for a query-aware fit such as LeanVec-OOD; never the evaluated ones);
    ``hashes``: sha256 of corpus.jsonl and queries.jsonl (the encoding cache key)."""

    name: str
    root: Path
    split: str
    doc_ids: list[str]
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]
    fit_query_ids: list[str] = field(default_factory=list)
    fit_query_texts: list[str] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)
    all_query_ids: list[str] = field(default_factory=list)  # every query of queries.jsonl, file order
    all_query_texts: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------
# reading a folder


def _lines(path: Path):
    """(line number, decoded line) of a UTF-8 text file; BeirFormatError on bytes that are not UTF-8."""
    with open(path, "rb") as f:
        for no, raw in enumerate(f, 1):
            try:
                yield no, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise BeirFormatError(f"{path}:{no}: not UTF-8 ({err.reason} at byte {err.start})") from None


def _read_jsonl(path: Path, kind: str, with_title: bool) -> tuple[list[str], list[str], dict[str, int]]:
    """(ids, texts, id → line) of corpus.jsonl / queries.jsonl."""
    if not path.is_file():
        raise BeirFormatError(f"{path}: missing ({kind} file of the BEIR layout)")
    ids: list[str] = []
    texts: list[str] = []
    where: dict[str, int] = {}
    for no, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise BeirFormatError(f"{path}:{no}: not a JSON object ({err.msg})") from None
        if not isinstance(obj, dict) or "_id" not in obj:
            raise BeirFormatError(f"{path}:{no}: expected a JSON object with an '_id' field")
        did = str(obj["_id"])
        if did in where:
            raise BeirFormatError(f"{path}:{no}: duplicate _id {did!r} (first on line {where[did]})")
        text = obj.get("text")
        title = obj.get("title") if with_title else None
        if not isinstance(text, str) or (title is not None and not isinstance(title, str)):
            raise BeirFormatError(f"{path}:{no}: 'text' (and 'title') must be strings, _id {did!r}")
        full = f"{title} {text}".strip() if title else text.strip()
        if not full:
            raise BeirFormatError(f"{path}:{no}: empty text for _id {did!r}")
        where[did] = no
        ids.append(did)
        texts.append(full)
    if not ids:
        raise BeirFormatError(f"{path}: no {kind} entries")
    return ids, texts, where


def _read_qrels(path: Path, docs: dict[str, int], queries: dict[str, int]) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    seen: dict[tuple[str, str], int] = {}
    for no, line in _lines(path):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 3:
            raise BeirFormatError(f"{path}:{no}: expected query-id<TAB>corpus-id<TAB>score, got {len(cols)} field(s)")
        qid, did, score = (c.strip() for c in cols)
        try:
            value = int(score)
        except ValueError:
            if no == 1 and not qrels:  # the header line (BEIR: query-id corpus-id score)
                continue
            raise BeirFormatError(f"{path}:{no}: score must be an integer, got {score!r}") from None
        if qid not in queries:
            raise BeirFormatError(f"{path}:{no}: query-id {qid!r} is not in queries.jsonl")
        if did not in docs:
            raise BeirFormatError(f"{path}:{no}: corpus-id {did!r} is not in corpus.jsonl")
        if (qid, did) in seen:
            raise BeirFormatError(f"{path}:{no}: duplicate judgement {qid!r} → {did!r} (first on line {seen[qid, did]})")
        seen[qid, did] = no
        qrels.setdefault(qid, {})[did] = value
    if not qrels:
        raise BeirFormatError(f"{path}: no judgements")
    return qrels


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_beir_folder(root: str | Path, split: str = "test") -> BeirData:
    """One split of a folder in BEIR's layout (see the module docstring); ``BeirFormatError`` names
    the file and line of anything malformed."""
    root = Path(root)
    if not root.is_dir():
        raise BeirFormatError(f"{root}: not a folder (expected corpus.jsonl, queries.jsonl, qrels/{split}.tsv)")
    qrels_dir = root / "qrels"
    qrels_path = qrels_dir / f"{split}.tsv"
    if not qrels_path.is_file():
        have = sorted(p.stem for p in qrels_dir.glob("*.tsv")) if qrels_dir.is_dir() else []
        raise BeirFormatError(
            f"{qrels_path}: missing (the qrels of split {split!r}); splits present: {have or 'none'}"
        )
    doc_ids, doc_texts, doc_where = _read_jsonl(root / "corpus.jsonl", "corpus", with_title=True)
    q_ids, q_texts, q_where = _read_jsonl(root / "queries.jsonl", "queries", with_title=False)
    qrels = _read_qrels(qrels_path, doc_where, q_where)
    judged = [i for i, q in enumerate(q_ids) if q in qrels]
    others: set[str] = set()
    for p in sorted(qrels_dir.glob("*.tsv")):
        if p != qrels_path:
            others |= set(_read_qrels(p, doc_where, q_where))
    others -= set(qrels)
    fit = [i for i, q in enumerate(q_ids) if q in others]
    return BeirData(
        name=root.name, root=root, split=split, doc_ids=doc_ids, doc_texts=doc_texts,
        query_ids=[q_ids[i] for i in judged], query_texts=[q_texts[i] for i in judged], qrels=qrels,
        fit_query_ids=[q_ids[i] for i in fit], fit_query_texts=[q_texts[i] for i in fit],
        hashes={"corpus": _sha256(root / "corpus.jsonl"), "queries": _sha256(root / "queries.jsonl")},
        all_query_ids=q_ids, all_query_texts=q_texts,
    )  # fmt: skip


# ---------------------------------------------------------------------------
# a dataset by name: BEIR's official zip, downloaded once into the cache


def beir_cache_dir() -> Path:
    """``$REGLAB_BEIR_CACHE`` if set, else ``~/.cache/reglab/beir``."""
    env = os.environ.get("REGLAB_BEIR_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "reglab" / "beir"


def _fetch(url: str, dest: Path) -> None:
    """Download ``url`` to ``dest`` (urllib: http(s) and file:// URLs)."""
    from urllib.request import urlopen

    with urlopen(url, timeout=60) as resp, open(dest, "wb") as out:  # noqa: S310 (a fixed https / file URL)
        shutil.copyfileobj(resp, out, 1 << 20)


def _extract_checked(archive: Path, name: str, target: Path) -> None:
    """Check the zip (CRC of every member, no path leaving the folder, the BEIR layout) and unpack its
    ``{name}/`` folder to ``target`` atomically."""
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise BeirFormatError(f"{archive}: corrupt member {bad!r} (CRC mismatch); delete it and retry")
            members = zf.namelist()
            for m in members:
                if m.startswith("/") or ".." in Path(m).parts:
                    raise BeirFormatError(f"{archive}: unsafe member path {m!r}")
            prefix = f"{name}/"
            for need in ("corpus.jsonl", "queries.jsonl"):
                if prefix + need not in members:
                    raise BeirFormatError(f"{archive}: not a BEIR dataset zip (no {prefix}{need})")
            if not any(m.startswith(prefix + "qrels/") and m.endswith(".tsv") for m in members):
                raise BeirFormatError(f"{archive}: not a BEIR dataset zip (no {prefix}qrels/*.tsv)")
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
            try:
                zf.extractall(tmp, [m for m in members if m.startswith(prefix)])
                os.replace(tmp / name, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except zipfile.BadZipFile as err:
        raise BeirFormatError(f"{archive}: not a zip file ({err}); delete it and retry") from None


def load_beir(
    source: str | Path, split: str = "test", *, cache_dir: str | Path | None = None, base_url: str = BEIR_URL,
    fetch: Callable[[str, Path], None] | None = None,
) -> BeirData:
    """One split of a BEIR dataset: ``source`` is a folder in BEIR's layout, or a dataset name of BEIR
    (``"scifact"``, ``"nfcorpus"``, ...) that is downloaded once from ``base_url + name + ".zip"`` into
    ``cache_dir`` (default ``beir_cache_dir``), checked (zip CRCs, layout) and read from there.

    A name is only looked up online when no folder of that name exists; ``fetch(url, dest)`` replaces
    the download (tests)."""
    path = Path(source)
    if path.is_dir():
        return read_beir_folder(path, split)
    name = str(source)
    if os.sep in name or not _NAME.match(name):
        raise BeirFormatError(f"{source}: no such folder, and not a BEIR dataset name such as 'scifact'")
    cache = Path(cache_dir) if cache_dir is not None else beir_cache_dir()
    folder = cache / name
    if not folder.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        url = base_url.rstrip("/") + f"/{name}.zip"
        archive = cache / f"{name}.zip"
        if not archive.is_file():
            part = cache / f".{name}.zip.{os.getpid()}.part"
            try:
                (fetch or _fetch)(url, part)
            except OSError as err:
                part.unlink(missing_ok=True)
                raise BeirFormatError(f"{name}: could not download {url} ({err}); give a local BEIR folder instead") from None
            os.replace(part, archive)
        _extract_checked(archive, name.split("/")[-1], folder)
    return read_beir_folder(folder, split)


# ---------------------------------------------------------------------------
# metrics


def _pytrec_eval():
    try:
        import pytrec_eval
    except ImportError as err:
        raise ImportError(
            "BEIR metrics need pytrec_eval (pip install pytrec_eval-terrier, in the reglab[text] extra)"
        ) from err
    return pytrec_eval


def ir_metrics(ranked: dict[str, Sequence[str]], qrels: dict[str, dict[str, int]]) -> dict[str, dict[str, float]]:
    """Per-query nDCG@10, Recall@100 and MRR@10 of ranked document ids (best first) by ``trec_eval``
    (``pytrec_eval``): metric name → {query id: value}, for every query of ``qrels`` (a query with no
    ranking scores 0). Judgements with score ≤ 0 count as not relevant (trec_eval's rule)."""
    pte = _pytrec_eval()
    run: dict[str, dict[str, float]] = {}
    top10: dict[str, dict[str, float]] = {}
    for qid in qrels:
        docs = list(ranked.get(qid, ()))
        if len(set(docs)) != len(docs):
            raise ValueError(f"ranking of query {qid!r} lists a document twice")
        n = len(docs)
        # strictly decreasing scores: trec_eval sorts by score and would break ties by document id
        run[qid] = {d: float(n - r) for r, d in enumerate(docs)} or {"\x00none": 0.0}
        top10[qid] = {d: float(n - r) for r, d in enumerate(docs[:10])} or {"\x00none": 0.0}
    main = pte.RelevanceEvaluator(qrels, {"ndcg_cut.10", "recall.100"}).evaluate(run)
    rr = pte.RelevanceEvaluator(qrels, {"recip_rank"}).evaluate(top10)
    out: dict[str, dict[str, float]] = {m: {} for m in METRICS}
    for qid in qrels:
        out["ndcg@10"][qid] = float(main[qid]["ndcg_cut_10"]) if qid in main else 0.0
        out["recall@100"][qid] = float(main[qid]["recall_100"]) if qid in main else 0.0
        out["mrr@10"][qid] = float(rr[qid]["recip_rank"]) if qid in rr else 0.0
    return out


# ---------------------------------------------------------------------------
# encodings, cached by file hash


def _encode_cached(encoder: Any, texts: list[str], file_hash: str, what: str, cache: Path | None) -> np.ndarray:
    path = None
    if cache is not None:
        model = hashlib.sha256(encoder.name.encode()).hexdigest()[:10]
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder.name)[:60]
        # v1: the text recipe (title + " " + text, stripped); bump it when the recipe changes
        path = cache / f"{slug}-{model}" / f"{what}-v1-{file_hash[:24]}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        # One encoder per cache entry: processes that want the same encodings at once (the lab's workers
        # starting the beir and beir_adapter tasks together) wait for the first instead of each spending
        # minutes of CPU on the same corpus.
        with _file_lock(path.with_suffix(".lock")):
            vecs = _load_cached(path, len(texts))
            if vecs is None:
                vecs = _encode_checked(encoder, texts)
                tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp.npy")
                np.save(tmp, vecs)
                os.replace(tmp, path)
            return vecs
    return _encode_checked(encoder, texts)


def _load_cached(path: Path, rows: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        vecs = np.load(path)
    except (OSError, ValueError):  # a torn write: encode again
        return None
    return vecs if vecs.shape[0] == rows else None


def _encode_checked(encoder: Any, texts: list[str]) -> np.ndarray:
    vecs = np.asarray(encoder.encode(texts), dtype=np.float32)
    if vecs.ndim != 2 or vecs.shape[0] != len(texts):
        raise ValueError(f"encoder {encoder.name!r} returned shape {vecs.shape} for {len(texts)} texts")
    return vecs


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (POSIX ``flock``; a no-op where fcntl is missing)."""
    try:
        import fcntl
    except ImportError:  # Windows: no cross-process lock, at worst two processes encode the same texts
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def encode_beir(
    data: BeirData, encoder: Any, cache_dir: str | Path | None = None, use_cache: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(corpus vectors, evaluated query vectors, fit-query vectors) of ``data`` with ``encoder`` (anything
    with ``name`` and ``encode(texts)``). The whole corpus and every query of queries.jsonl are encoded
    once and cached under ``cache_dir/beir`` (default: beside the sentence cache, ``$REGLAB_CACHE`` or
    ``~/.cache/reglab/encodings``), keyed by the encoder name and the files' sha256."""
    from reglab.embeddings.encoders import default_cache_dir

    cache = None
    if use_cache:
        cache = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "beir"
    docs = _encode_cached(encoder, data.doc_texts, data.hashes["corpus"], "corpus", cache)
    all_q, all_t = data.all_query_ids, data.all_query_texts
    if not all_q:  # a hand-built BeirData: the queries it names
        all_q, all_t = data.query_ids + data.fit_query_ids, data.query_texts + data.fit_query_texts
    qv = _encode_cached(encoder, all_t, data.hashes["queries"], "queries", cache)
    row = {q: i for i, q in enumerate(all_q)}
    queries = qv[[row[q] for q in data.query_ids]]
    fit = qv[[row[q] for q in data.fit_query_ids]] if data.fit_query_ids else np.zeros((0, qv.shape[1]), np.float32)
    return docs, queries, fit


# ---------------------------------------------------------------------------
# evaluation: one row per index of reglab.embeddings.retrieval


@dataclass
class BeirRow:
    method: str
    group: str
    bytes_per_vector: int | None = None
    scores: dict[str, float] = field(default_factory=dict)  # metric → mean over queries
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)  # metric → {query id: value}
    queries_per_cpu_second: float | None = None
    fit_seconds: float | None = None
    failed: str = ""


@dataclass
class BeirReport:
    dataset: str
    split: str
    n_queries: int
    n_docs: int
    dim: int
    rows: list[BeirRow]
    encoder: str = ""


def evaluate_beir(
    data: BeirData, docs: np.ndarray, queries: np.ndarray, fit_queries: np.ndarray | None = None, *,
    methods: Sequence[Any] | None = None, depth: int = 100, progress: Callable[[str], None] | None = None,
    encoder: str = "",
) -> BeirReport:
    """nDCG@10, Recall@100, MRR@10 (per query and mean), bytes per vector, queries per CPU second (search
    of every query, one BLAS / faiss thread) and CPU seconds of fitting, for each index of ``methods``
    (default ``reglab.embeddings.retrieval.beir_methods``; the first row is named ``raw``). Both sides
    are L2-normalized first (cosine). A method that raises is reported as failed with its error; the
    other rows stand."""
    import time

    from threadpoolctl import threadpool_limits

    from reglab.embeddings.retrieval import IndexSkipped, _normalize, beir_methods

    if docs.shape[0] != len(data.doc_ids) or queries.shape[0] != len(data.query_ids):
        raise ValueError(
            f"{docs.shape[0]} document and {queries.shape[0]} query vectors for {len(data.doc_ids)} documents "
            f"and {len(data.query_ids)} queries"
        )
    db, q = _normalize(docs), _normalize(queries)
    fq = _normalize(fit_queries) if fit_queries is not None and len(fit_queries) >= 2 else None
    methods = list(beir_methods(db.shape[1]) if methods is None else methods)
    doc_ids = np.asarray(data.doc_ids, dtype=object)
    rows: list[BeirRow] = []
    with threadpool_limits(1):
        for i, m in enumerate(methods):
            row = BeirRow("raw" if i == 0 else m.label, m.group)
            rows.append(row)
            if progress:
                progress(f"{row.method} ...")
            try:
                t0 = time.process_time()
                m.fit(db, fq)
                row.fit_seconds = time.process_time() - t0
                t0 = time.process_time()
                got = m.search(q, min(depth, len(db)), None)
                elapsed = time.process_time() - t0
            except IndexSkipped as err:
                row.failed = str(err)
                continue
            except Exception as err:  # noqa: BLE001 (one failing index must not sink the table)
                row.failed = f"failed: {type(err).__name__}: {err}"
                continue
            ranked = {qid: doc_ids[ids[ids >= 0]].tolist() for qid, ids in zip(data.query_ids, got)}
            row.per_query = ir_metrics(ranked, {qid: data.qrels[qid] for qid in data.query_ids})
            row.scores = {k: float(np.mean(list(v.values()))) for k, v in row.per_query.items()}
            row.bytes_per_vector = int(m.bytes_per_vector)
            row.queries_per_cpu_second = len(q) / elapsed if elapsed > 0 else float("inf")
    return BeirReport(data.name, data.split, len(data.query_ids), len(data.doc_ids), db.shape[1], rows, encoder)


def results_json(report: BeirReport) -> dict[str, Any]:
    """The ``results.json`` object: dataset, split, queries, and one row per method with the metric means,
    bytes per vector and queries per CPU second (``fit_seconds`` beside them; a failed method has null
    numbers and ``failed``: why)."""
    rows = []
    for r in report.rows:
        row: dict[str, Any] = {"method": r.method}
        row.update({k: (r.scores.get(k) if not r.failed else None) for k in METRICS})
        row["bytes_per_vector"] = r.bytes_per_vector
        row["queries_per_cpu_second"] = r.queries_per_cpu_second
        row["fit_seconds"] = r.fit_seconds
        if r.failed:
            row["failed"] = r.failed
        rows.append(row)
    return {"dataset": report.dataset, "split": report.split, "queries": report.n_queries, "rows": rows}


def format_beir_table(report: BeirReport) -> str:
    """The markdown table, one row per method."""
    raw = 4 * report.dim
    head = ["method", "nDCG@10", "Recall@100", "MRR@10", "bytes/vector", "compression", "queries/CPU s", "fit CPU s"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in report.rows:
        if r.failed:
            cells = [r.method, r.failed] + [""] * (len(head) - 2)
        else:
            cells = [r.method] + [f"{r.scores[k]:.4f}" for k in METRICS] + [
                str(r.bytes_per_vector), f"{raw / r.bytes_per_vector:.1f}×", f"{r.queries_per_cpu_second:,.0f}",
                f"{r.fit_seconds:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe_beir(report: BeirReport) -> str:
    from reglab.embeddings.retrieval import OPQ_ITERATIONS, OPQ_TRAIN

    opq = ""
    if any("OPQ" in r.method and not r.failed for r in report.rows):
        used = min(OPQ_TRAIN, report.n_docs)
        on = "every document" if used == report.n_docs else f"{used:,} of the {report.n_docs:,} documents"
        opq = (f" OPQ+PQ: {OPQ_ITERATIONS} rotation/PQ alternations (faiss's default 50), trained on {on}, "
               "without polysemous training (unused by its search).")
    return (
        f"{report.dataset} ({report.split}): {report.n_queries} queries against {report.n_docs} documents, "
        f"{report.encoder or 'embeddings'} (d = {report.dim}), exact or compressed cosine search of the top 100. "
        "Metrics by trec_eval (pytrec_eval); bytes/vector: what each index stores per vector (binary + "
        "rescoring: the code plus the rescoring vectors); queries/CPU s: CPU time of searching every query, "
        "BLAS and faiss on one thread; fit CPU s: fitting the index on the corpus." + opq
    )


def plot_ndcg_vs_bytes(report: BeirReport, path: str | Path) -> Path:
    """nDCG@10 against bytes per vector (log scale), one marker per method, grouped by family."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = {"float32": "*", "transform": "P", "LVQ": "o", "LeanVec": "s", "faiss": "^", "binary": "D",
               "truncation": "x"}  # fmt: skip
    for r in report.rows:
        if r.failed:
            continue
        ax.scatter(r.bytes_per_vector, r.scores["ndcg@10"], marker=markers.get(r.group, "o"), s=50, label=r.method)
        ax.annotate(r.method, (r.bytes_per_vector, r.scores["ndcg@10"]), fontsize=6, xytext=(4, 3),
                    textcoords="offset points")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xlabel("bytes per vector (log scale)")
    ax.set_ylabel("nDCG@10")
    ax.set_title(f"{report.dataset} ({report.split}, {report.n_queries} queries), {report.encoder}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=5, loc="lower right", ncol=2)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
