"""BEIR loader, metrics and ``reglab retrieval --beir`` on tiny synthetic BEIR folders (hash encoder)."""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest

from reglab.embeddings import beir as B
from reglab.embeddings import retrieval as R

needs_trec_eval = pytest.mark.skipif(
    __import__("importlib").util.find_spec("pytrec_eval") is None, reason="pip install pytrec_eval-terrier"
)

SCIFACT = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "beir" / "scifact"


class HashEncoder:
    """A bag of hashed words: deterministic, fast, and documents sharing words with a query score high."""

    name = "test-hash-bow-48"

    def __init__(self):
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        out = np.zeros((len(texts), 48), np.float32)
        for i, t in enumerate(texts):
            for w in t.lower().split():
                h = int(hashlib.md5(w.encode()).hexdigest(), 16)
                out[i, h % 48] += 1.0
                out[i, (h // 48) % 48] -= 0.5
        return out


def write_beir(root: Path, n_docs=150, n_queries=40, seed=0, header=True) -> dict[str, str]:
    """A BEIR folder: documents of random words, each query the first words of one document (its relevant
    one, score 1; every fifth query a second relevant document with score 2); test = the first 30 queries,
    train = the rest. Returns query id → its first relevant document."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(400)]
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    docs = {f"doc{i}": " ".join(rng.choice(words, 10)) for i in range(n_docs)}
    with open(root / "corpus.jsonl", "w", encoding="utf-8") as f:
        for k, v in docs.items():
            f.write(json.dumps({"_id": k, "title": k.upper(), "text": v}) + "\n")
    rel = {f"q{i}": f"doc{int(rng.integers(n_docs))}" for i in range(n_queries)}
    with open(root / "queries.jsonl", "w", encoding="utf-8") as f:
        for q, d in rel.items():
            f.write(json.dumps({"_id": q, "text": " ".join(docs[d].split()[:5]), "metadata": {}}) + "\n")
    for split, ids in (("test", range(30)), ("train", range(30, n_queries))):
        with open(root / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as f:
            if header:
                f.write("query-id\tcorpus-id\tscore\n")
            for i in ids:
                f.write(f"q{i}\t{rel[f'q{i}']}\t1\n")
                if i % 5 == 0:
                    f.write(f"q{i}\tdoc{(int(rel[f'q{i}'][3:]) + 1) % n_docs}\t2\n")
    return rel


# ---------------------------------------------------------------------------
# loader


def test_reads_the_layout_and_splits(tmp_path):
    write_beir(tmp_path)
    data = B.load_beir(tmp_path, "test")
    assert len(data.doc_ids) == 150 and data.doc_texts[0].startswith("DOC0 ")  # title + " " + text
    assert data.query_ids == [f"q{i}" for i in range(30)] and len(data.fit_query_ids) == 10
    assert data.qrels["q0"][next(iter(data.qrels["q0"]))] == 1 and len(data.qrels["q5"]) == 2
    assert not set(data.fit_query_ids) & set(data.query_ids)
    train = B.load_beir(str(tmp_path), "train")
    assert train.query_ids == [f"q{i}" for i in range(30, 40)] and len(train.fit_query_ids) == 30
    # a headerless qrels file is read too (its first line is a judgement)
    write_beir(tmp_path / "nohead", header=False)
    assert len(B.load_beir(tmp_path / "nohead").query_ids) == 30


def _break(tmp_path, file, lines):
    write_beir(tmp_path)
    with open(tmp_path / file, "ab") as f:
        f.write(lines)
    with pytest.raises(B.BeirFormatError) as err:
        B.load_beir(tmp_path)
    return str(err.value)


@pytest.mark.parametrize(
    "file, lines, expected",
    [
        ("qrels/test.tsv", b"q1\tnope\t1\n", "test.tsv:38: corpus-id 'nope' is not in corpus.jsonl"),
        ("qrels/test.tsv", b"zz\tdoc1\t1\n", "test.tsv:38: query-id 'zz' is not in queries.jsonl"),
        ("qrels/test.tsv", b"q1\tdoc1\tx\n", "test.tsv:38: score must be an integer"),
        ("qrels/test.tsv", b"q1\tdoc1\n", "test.tsv:38: expected query-id<TAB>corpus-id<TAB>score"),
        ("corpus.jsonl", b'{"_id": "doc3", "text": "again"}\n', "corpus.jsonl:151: duplicate _id 'doc3' (first on line 4)"),
        ("queries.jsonl", b'{"_id": "q1", "text": "again"}\n', "queries.jsonl:41: duplicate _id 'q1' (first on line 2)"),
        ("corpus.jsonl", b'{"_id": "e", "title": " ", "text": "  "}\n', "corpus.jsonl:151: empty text for _id 'e'"),
        ("queries.jsonl", b'{"_id": "e", "text": ""}\n', "queries.jsonl:41: empty text for _id 'e'"),
        ("corpus.jsonl", b'{"_id": "x", "text": "caf\xe9"}\n', "corpus.jsonl:151: not UTF-8"),
        ("corpus.jsonl", b'{"_id": "x", "text": \n', "corpus.jsonl:151: not a JSON object"),
        ("queries.jsonl", b'{"text": "no id"}\n', "queries.jsonl:41: expected a JSON object with an '_id' field"),
    ],
)
def test_bad_folders_name_file_and_line(tmp_path, file, lines, expected):
    assert expected in _break(tmp_path, file, lines)


def test_duplicate_judgement_and_missing_files(tmp_path):
    msg = _break(tmp_path, "qrels/test.tsv", b"q1\tdoc7\t1\nq1\tdoc7\t1\n")
    assert "test.tsv:39: duplicate judgement 'q1' → 'doc7' (first on line 38)" in msg
    with pytest.raises(B.BeirFormatError, match=r"qrels/dev.tsv: missing .*splits present: \['test', 'train'\]"):
        B.load_beir(tmp_path, "dev")
    (tmp_path / "queries.jsonl").unlink()
    with pytest.raises(B.BeirFormatError, match=r"queries.jsonl: missing"):
        B.load_beir(tmp_path)
    with pytest.raises(B.BeirFormatError, match="not a BEIR dataset name"):
        B.load_beir(str(tmp_path / "nowhere"))


def _zip(src: Path, name: str, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w") as zf:
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, f"{name}/{p.relative_to(src).as_posix()}")
    return dest


def test_dataset_name_downloads_once_into_the_cache(tmp_path):
    write_beir(tmp_path / "src")
    server = tmp_path / "server"
    server.mkdir()
    _zip(tmp_path / "src", "toyset", server / "toyset.zip")
    cache = tmp_path / "cache"
    data = B.load_beir("toyset", cache_dir=cache, base_url=server.as_uri() + "/")  # file:// through urllib
    assert len(data.query_ids) == 30 and (cache / "toyset" / "corpus.jsonl").is_file()
    fetched = []
    again = B.load_beir("toyset", cache_dir=cache, fetch=lambda url, dest: fetched.append(url))
    assert fetched == [] and again.hashes == data.hashes  # read from the cache, no second download
    urls = []

    def fake(url, dest):
        urls.append(url)
        _zip(tmp_path / "src", "other", dest)

    B.load_beir("other", cache_dir=cache, fetch=fake)
    assert urls == [B.BEIR_URL + "other.zip"]


def test_download_checks_the_archive(tmp_path):
    def not_a_zip(url, dest):
        Path(dest).write_bytes(b"<html>404</html>")

    with pytest.raises(B.BeirFormatError, match="not a zip file"):
        B.load_beir("broken", cache_dir=tmp_path, fetch=not_a_zip)
    (tmp_path / "broken.zip").unlink()

    def wrong_layout(url, dest):
        with zipfile.ZipFile(dest, "w") as zf:
            zf.writestr("wrong/corpus.jsonl", "{}")

    with pytest.raises(B.BeirFormatError, match=r"not a BEIR dataset zip \(no wrong2/corpus.jsonl\)"):
        B.load_beir("wrong2", cache_dir=tmp_path, fetch=wrong_layout)
    assert not (tmp_path / "wrong2").exists()

    def offline(url, dest):
        raise OSError("network is unreachable")

    with pytest.raises(B.BeirFormatError, match="could not download .*give a local BEIR folder"):
        B.load_beir("nonet", cache_dir=tmp_path, fetch=offline)


# ---------------------------------------------------------------------------
# metrics against a plain implementation


def plain_metrics(ranking: list[str], qrel: dict[str, int]) -> tuple[float, float, float]:
    """nDCG@10 (gain = grade, log2(rank + 1) discount, ideal from the qrels), Recall@100, MRR@10."""
    dcg = sum(qrel.get(d, 0) / math.log2(r + 2) for r, d in enumerate(ranking[:10]) if qrel.get(d, 0) > 0)
    ideal = sorted((g for g in qrel.values() if g > 0), reverse=True)[:10]
    idcg = sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
    rel = {d for d, g in qrel.items() if g > 0}
    recall = len(rel & set(ranking[:100])) / len(rel)
    rr = next((1 / (r + 1) for r, d in enumerate(ranking[:10]) if d in rel), 0.0)
    return dcg / idcg, recall, rr


@needs_trec_eval
def test_metrics_match_a_plain_implementation():
    rng = np.random.default_rng(3)
    docs = [f"d{i}" for i in range(300)]
    qrels, ranked = {}, {}
    for q in range(60):
        judged = rng.choice(docs, int(rng.integers(1, 6)), replace=False)
        qrels[f"q{q}"] = {str(d): int(rng.integers(0, 3)) for d in judged}
        qrels[f"q{q}"][str(judged[0])] = int(rng.integers(1, 3))  # at least one relevant
        ranked[f"q{q}"] = [str(d) for d in rng.permutation(docs)[:120]]
        if q % 3 == 0:  # put relevant documents high, so the metrics are not all near 0
            for d in judged[:2]:
                ranked[f"q{q}"].remove(str(d)) if str(d) in ranked[f"q{q}"] else None
                ranked[f"q{q}"].insert(int(rng.integers(0, 8)), str(d))
    ranked["q1"] = []  # a query with no results scores 0
    got = B.ir_metrics(ranked, qrels)
    for q in qrels:
        want = plain_metrics(ranked[q], qrels[q]) if ranked[q] else (0.0, 0.0, 0.0)
        assert [got["ndcg@10"][q], got["recall@100"][q], got["mrr@10"][q]] == pytest.approx(want, abs=1e-12)
    assert 0.1 < np.mean(list(got["ndcg@10"].values())) < 0.9


@needs_trec_eval
def test_metrics_keep_the_given_order_of_ties():
    # trec_eval sorts by score and breaks ties by document id: the ranking's own order must count
    qrels = {"q": {"a": 1}}
    assert B.ir_metrics({"q": ["z", "a"]}, qrels)["mrr@10"]["q"] == 0.5
    assert B.ir_metrics({"q": ["a", "z"]}, qrels)["mrr@10"]["q"] == 1.0
    with pytest.raises(ValueError, match="twice"):
        B.ir_metrics({"q": ["a", "a"]}, qrels)


# ---------------------------------------------------------------------------
# evaluation and the CLI


@needs_trec_eval
def test_raw_ndcg_equals_an_independent_computation(tmp_path):
    write_beir(tmp_path)
    data = B.load_beir(tmp_path)
    enc = HashEncoder()
    docs, queries, fit = B.encode_beir(data, enc, cache_dir=tmp_path / "cache")
    report = B.evaluate_beir(data, docs, queries, fit, methods=[R._Raw(), R._LVQ(8), R._Truncate(4)])
    # independent: cosine by hand, full argsort, the plain metrics above
    dn = docs / np.linalg.norm(docs, axis=1, keepdims=True)
    qn = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    order = np.argsort(-(qn @ dn.T), axis=1, kind="stable")
    ndcg = [plain_metrics([data.doc_ids[j] for j in order[i]], data.qrels[q])[0] for i, q in enumerate(data.query_ids)]
    raw = report.rows[0]
    assert raw.method == "raw" and raw.scores["ndcg@10"] == pytest.approx(np.mean(ndcg), abs=1e-6)
    assert raw.scores["ndcg@10"] > 0.5  # the hash encoder finds the source document
    assert report.rows[2].scores["ndcg@10"] < raw.scores["ndcg@10"]  # 4 of 48 dimensions lose the ranking
    assert list(raw.per_query["ndcg@10"]) == data.query_ids
    # the encodings are cached by file hash: a second call does not encode
    B.encode_beir(data, enc, cache_dir=tmp_path / "cache")
    assert enc.calls == 2  # corpus + queries, once


def test_concurrent_callers_encode_once(tmp_path):
    """Callers asking for the same encodings at once wait on the cache entry's lock: one encodes, the rest
    read its file (the lab's workers start the beir and beir_adapter tasks together)."""
    import threading

    gate, release = threading.Event(), threading.Event()

    class Slow(HashEncoder):
        def encode(self, texts):
            gate.set()  # the first caller holds the lock now
            release.wait(30)
            return super().encode(texts)

    write_beir(tmp_path)
    data = B.load_beir(tmp_path)
    enc = Slow()
    out: list = []
    first = threading.Thread(target=lambda: out.append(B.encode_beir(data, enc, cache_dir=tmp_path / "c")))
    first.start()
    assert gate.wait(30)
    second = threading.Thread(target=lambda: out.append(B.encode_beir(data, enc, cache_dir=tmp_path / "c")))
    second.start()
    release.set()
    first.join(60)
    second.join(60)
    assert len(out) == 2 and enc.calls == 2  # corpus + queries, once, for both callers
    np.testing.assert_array_equal(out[0][0], out[1][0])


@needs_trec_eval
def test_a_failing_method_is_reported_and_the_rest_stands(tmp_path):
    write_beir(tmp_path)
    data = B.load_beir(tmp_path)
    docs, queries, fit = B.encode_beir(data, HashEncoder(), use_cache=False)

    class Boom(R._Raw):
        label = "boom"

        def fit(self, db, fq):
            raise RuntimeError("kaput")

    report = B.evaluate_beir(data, docs, queries, fit, methods=[R._Raw(), Boom(), R._LVQ(4)])
    assert report.rows[1].failed == "failed: RuntimeError: kaput" and not report.rows[2].failed
    out = B.results_json(report)
    assert out["rows"][1]["ndcg@10"] is None and out["rows"][1]["failed"].endswith("kaput")
    assert "| boom | failed: RuntimeError: kaput |" in B.format_beir_table(report)


def test_binary_codes_match_sentence_transformers():
    st = pytest.importorskip("sentence_transformers.quantization")
    x = np.random.default_rng(0).standard_normal((20, 64)).astype(np.float32)
    assert np.array_equal(R.binary_codes(x), st.quantize_embeddings(x, "ubinary"))
    assert np.array_equal(R.int8_codes(x), st.quantize_embeddings(x, "int8"))


def test_binary_rescoring_reorders_the_hamming_candidates():
    pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    X = R._normalize(rng.standard_normal((400, 64)).astype(np.float32))
    Q = R._normalize(X[:30] + 0.3 * rng.standard_normal((30, 64)).astype(np.float32))
    exact = np.argsort(-(Q @ X.T), axis=1)[:, :10]
    overlap = {}
    for m in (R._Binary(), R._Binary("pm1"), R._Binary("int8"), R._Binary("float32")):
        m.fit(X, None)
        got = m.search(Q, 10, None)
        assert got.shape == (30, 10)
        overlap[m.label] = np.mean([len(set(a) & set(b)) for a, b in zip(got, exact)])
    assert overlap["binary + rescore (float32 vectors)"] > overlap["binary (sign, Hamming)"]
    assert overlap["binary + rescore (float32 vectors)"] >= overlap["binary + rescore (int8 vectors)"] - 0.5


@needs_trec_eval
def test_cli_end_to_end_on_a_synthetic_folder(tmp_path, monkeypatch, capsys):
    pytest.importorskip("faiss")  # the faiss rows (SQ, PQ, binary) are part of what is checked
    import reglab.embeddings.encoders as E
    from reglab.cli import main

    write_beir(tmp_path / "toy")
    monkeypatch.setattr(E, "get_encoder", lambda name, **kw: HashEncoder())
    monkeypatch.setattr(E, "default_cache_dir", lambda: tmp_path / "cache")
    rc = main(["retrieval", "--beir", str(tmp_path / "toy"), "--out", str(tmp_path / "out")])
    assert rc == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(res) == {"dataset", "split", "queries", "rows"} and res["split"] == "test" and res["queries"] == 30
    rows = {r["method"]: r for r in res["rows"]}
    assert res["rows"][0]["method"] == "raw" and rows["raw"]["bytes_per_vector"] == 4 * 48
    for r in res["rows"]:
        assert {"method", "ndcg@10", "recall@100", "mrr@10", "bytes_per_vector", "queries_per_cpu_second"} <= set(r)
    assert rows["LVQ-8"]["bytes_per_vector"] == 48 + 4 and rows["binary (sign, Hamming)"]["bytes_per_vector"] == 6
    # PQ needs 1,000 training vectors: reported as skipped, the rest stands
    assert "1000 training vectors" in rows["faiss PQ24×8"]["failed"] and rows["faiss SQ4"]["ndcg@10"] > 0.3
    assert abs(rows["LVQ-8"]["ndcg@10"] - rows["raw"]["ndcg@10"]) < 0.05
    assert (tmp_path / "out" / "results.md").read_text().count("\n| ") == len(res["rows"]) + 1
    assert (tmp_path / "out" / "ndcg_vs_bytes.png").stat().st_size > 1000
    assert "| raw | " in capsys.readouterr().out
    assert main(["retrieval", "--beir", str(tmp_path / "toy"), "--skip", "lvq, Binary", "--out", str(tmp_path / "o2")]) == 0
    kept = [r["method"] for r in json.loads((tmp_path / "o2" / "results.json").read_text())["rows"]]
    assert "raw" in kept and "faiss SQ8" in kept and not [m for m in kept if "LVQ" in m or "binary" in m]
    capsys.readouterr()
    assert main(["retrieval", "--beir", str(tmp_path / "toy"), "--split", "dev", "--out", ""]) == 2
    assert "qrels/dev.tsv: missing" in capsys.readouterr().err


@needs_trec_eval
@pytest.mark.text
@pytest.mark.slow
def test_scifact_raw_ndcg_with_minilm():
    """SciFact test split with MiniLM (encodings cached after the first run): raw nDCG@10 near MTEB's
    published 0.645 for all-MiniLM-L6-v2."""
    from reglab.embeddings.encoders import get_encoder

    if not SCIFACT.is_dir():
        pytest.skip(f"no SciFact folder at {SCIFACT}")
    data = B.load_beir(SCIFACT)
    assert (len(data.doc_ids), len(data.query_ids), len(data.fit_query_ids)) == (5183, 300, 809)
    docs, queries, fit = B.encode_beir(data, get_encoder("minilm", use_cache=False))
    report = B.evaluate_beir(data, docs, queries, fit, methods=[R._Raw()])
    assert report.rows[0].scores["ndcg@10"] == pytest.approx(0.645, abs=0.01)


@needs_trec_eval
def test_lab_task_reports_per_query_units(tmp_path, monkeypatch):
    pytest.importorskip("faiss")  # the faiss rows (SQ, PQ, binary) are part of what is checked
    import reglab.embeddings.encoders as E
    from reglab.bench.experiments.beir import beir_task
    from reglab.bench.tasks import TaskUnavailable

    write_beir(tmp_path / "toy")
    monkeypatch.setattr(E, "get_encoder", lambda name, **kw: HashEncoder())
    monkeypatch.setattr(E, "default_cache_dir", lambda: tmp_path / "cache")
    lvq = beir_task({"name": "lvq", "bits": 8}, data=str(tmp_path / "toy"))
    raw = beir_task(None, index="exact", data=str(tmp_path / "toy"))
    white = beir_task({"name": "whitening", "k": 24}, data=str(tmp_path / "toy"))
    assert list(lvq.units["ndcg10"]) == [f"q{i}" for i in range(30)] == list(raw.units["ndcg10"])
    assert lvq.metrics["bytes_per_vector"] == 52 and raw.metrics["bytes_per_vector"] == 192
    assert raw.metrics["ndcg10"] == pytest.approx(np.mean(list(raw.units["ndcg10"].values())))
    assert white.metrics["bytes_per_vector"] == 4 * 24
    with pytest.raises(TaskUnavailable, match="1000 training vectors"):  # PQ on 150 documents
        beir_task(None, index="faiss-pq-lvq4", data=str(tmp_path / "toy"))


def test_every_beir_claim_names_indexes_that_exist():
    from reglab.bench.suite import collect_claims

    refs = [r for r in collect_claims() if r.claim.task == "beir"]
    assert {r.regularizer for r in refs} >= {"lvq", "leanvec", "binary_quantization", "whitening", "all_but_the_top"}
    for ref in refs:
        assert R.index_for_config(ref.arm(), 384) is not None
        arms = [b for b in ref.claim.compared_with] + ([ref.claim.control] if ref.claim.control else [])
        for b in arms:
            assert R.index_named(b.task_args["index"], 384) is not None
        if ref.claim.kind == "non-inferiority":
            assert ref.claim.control is not None, ref.id
