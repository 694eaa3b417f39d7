"""``reglab retrieval`` on small synthetic vectors (the --vectors path): recall, bytes, faiss skipping."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from reglab.cli import main
from reglab.embeddings import retrieval as R


def data(n=1200, d=32, m=60, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n, d)) @ (rng.standard_normal((d, d)) * np.linspace(2, 0.2, d))).astype(np.float32)
    Q = X[:m] + 0.05 * rng.standard_normal((m, d)).astype(np.float32)
    F = X[m:2 * m] + 0.05 * rng.standard_normal((m, d)).astype(np.float32)
    return X, Q, F


def rows(report):
    return {r.method: r for r in report.rows}


def test_recall_bytes_and_monotone_sanity():
    X, Q, F = data()
    rep = R.evaluate_retrieval(X, Q, relevant=np.arange(len(Q)), fit_queries=F, ks=(1, 10, 100))
    r = rows(rep)
    raw = r["float32 (exact)"]
    assert raw.recall == {1: 1.0, 10: 1.0, 100: 1.0} and raw.hit[1] == 1.0
    assert raw.bytes_per_vector == 4 * 32
    assert r["LVQ-8"].bytes_per_vector == 32 + 4 and r["LVQ-4"].bytes_per_vector == 16 + 4
    assert r["LVQ-4×4"].bytes_per_vector == 36
    assert r["LeanVec-ID d/2 + LVQ-8"].bytes_per_vector == 16 + 4 and r["LeanVec-OOD d/4 + LVQ-8"].bytes_per_vector == 8 + 4
    for k in (10, 100):
        assert r["LVQ-8"].recall[k] >= r["LVQ-4"].recall[k]
        assert r["LVQ-4×4"].recall[k] >= r["LVQ-4"].recall[k]
        assert r["LeanVec-ID d/2 + LVQ-8"].recall[k] >= r["LeanVec-ID d/4 + LVQ-8"].recall[k]
    assert r["LVQ-8"].recall[10] > 0.9
    assert all(0 <= v <= 1 for row in rep.rows if not row.note for v in row.recall.values())
    assert all(row.queries_per_s > 0 for row in rep.rows if not row.note)
    table = R.format_table(rep)
    assert table.count("\n") == len(rep.rows) + 1 and "| LVQ-4×4 | 36 | 3.6× |" in table


def test_recall_reference_by_sets():
    got = np.array([[1, 2, 3], [4, 5, 6]])
    exact = np.array([[3, 2, 9], [7, 8, 9]])
    assert R._recall(got, exact) == pytest.approx((2 / 3 + 0) / 2)
    assert R._hit(got[:, :1], np.array([1, -1])) == 1.0


def test_exclude_drops_the_query_itself_in_every_method():
    X, _, _ = data(n=1100)
    Q = X[:40]
    rep = R.evaluate_retrieval(X, Q, relevant=np.arange(40) + 40, exclude=np.arange(40), ks=(1, 10))
    for m in [R._Raw(), R._LVQ(8)]:
        m.fit(R._normalize(X), None)
        ids = m.search(R._normalize(Q), 10, np.arange(40))
        assert ids.shape == (40, 10) and not (ids == np.arange(40)[:, None]).any()
    assert rows(rep)["float32 (exact)"].recall[1] == 1.0


def test_faiss_rows_skipped_cleanly_when_absent(monkeypatch):
    real_import = builtins.__import__

    def no_faiss(name, *args, **kwargs):
        if name == "faiss" or name.startswith("faiss."):
            raise ImportError("No module named 'faiss'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_faiss)
    X, Q, _ = data(n=300)
    rep = R.evaluate_retrieval(X, Q, ks=(1, 10))
    faiss_rows = [r for r in rep.rows if r.group == "faiss"]
    assert len(faiss_rows) == 4 and all(r.note == R.FAISS_MISSING for r in faiss_rows)
    ood = [r for r in rep.rows if "OOD" in r.method]
    assert all("held-out query sample" in r.note for r in ood)  # no fit queries given
    table = R.format_table(rep)
    assert "| faiss SQ8 | skipped: pip install faiss-cpu |" in table


def test_faiss_rows_when_present():
    pytest.importorskip("faiss")
    X, Q, _ = data(n=1200)
    r = rows(R.evaluate_retrieval(X, Q, ks=(1, 10)))
    assert r["faiss SQ8"].bytes_per_vector == 32 and r["faiss SQ4"].bytes_per_vector == 16
    assert r["faiss PQ16×8"].bytes_per_vector == 16  # M = the largest divisor of d ≤ LVQ-4's 20 bytes
    assert r["faiss SQ8"].recall[10] > 0.9


def test_cli_vectors_path_writes_table_and_plot(tmp_path, capsys):
    X, Q, F = data(n=400)
    for name, arr in {"x": X, "q": Q, "f": F, "r": np.arange(len(Q))}.items():
        np.save(tmp_path / f"{name}.npy", arr)
    out = tmp_path / "out"
    rc = main(["retrieval", "--vectors", str(tmp_path / "x.npy"), "--queries", str(tmp_path / "q.npy"),
               "--relevant", str(tmp_path / "r.npy"), "--fit-queries", str(tmp_path / "f.npy"),
               "--k", "1,10", "--out", str(out)])  # fmt: skip
    assert rc == 0
    md = (out / "retrieval.md").read_text()
    assert "| float32 (exact) | 128 | 1.0× | 1.000 | 1.000 | 1.000 | 1.000 |" in md
    assert (out / "retrieval_plot.png").stat().st_size > 1000
    assert "LVQ-8" in capsys.readouterr().out


def test_cli_bad_inputs(tmp_path, capsys):
    X, Q, _ = data(n=150)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "q.npy", Q[:, :5])
    assert main(["retrieval", "--vectors", str(tmp_path / "x.npy")]) == 2
    assert main(["retrieval", "--vectors", str(tmp_path / "x.npy"), "--queries", str(tmp_path / "q.npy"), "--out", ""]) == 2
    assert "queries have dimension 5" in capsys.readouterr().err
    np.save(tmp_path / "q.npy", Q)
    np.save(tmp_path / "r.npy", np.full(len(Q), 500))
    assert main(["retrieval", "--vectors", str(tmp_path / "x.npy"), "--queries", str(tmp_path / "q.npy"),
                 "--relevant", str(tmp_path / "r.npy"), "--out", ""]) == 2  # fmt: skip
    assert "relevant" in capsys.readouterr().err


def test_sts_retrieval_set(tmp_path):
    f = tmp_path / "a.tsv"
    f.write_text("4.5\tA cat sits.\tA cat is sitting.\n1.0\tDogs bark.\tA cat sits.\n5.0\tSame.\tSame.\n"
                 "4.0\tA cat sits.\tAnother.\n3.9\tBirds fly.\tFish swim.\n", encoding="utf-8")  # fmt: skip
    s = R.sts_retrieval_set([f])
    assert s.sentences == ["A cat sits.", "A cat is sitting.", "Dogs bark.", "Same.", "Another.", "Birds fly.", "Fish swim."]
    assert s.queries.tolist() == [0] and s.relevant.tolist() == [1]  # one query per sentence; identical pair skipped
    assert s.fit_queries.tolist() == [2, 5]  # sentence1 of pairs scored < 4, not an evaluated query


def test_index_named_and_per_query_recall_for_the_lab_task():
    import numpy as np

    from reglab.embeddings.retrieval import index_named, per_query_recall

    rng = np.random.default_rng(0)
    db = rng.standard_normal((300, 16)).astype(np.float32)
    q = db[:20] + 0.01 * rng.standard_normal((20, 16)).astype(np.float32)
    recall, nbytes = per_query_recall(db, q, index_named("exact", 16), k=10)
    assert recall.shape == (20,) and (recall == 1.0).all() and nbytes == 64
    recall8, nbytes8 = per_query_recall(db, q, index_named("lvq-8", 16), k=10)
    assert nbytes8 == 16 + 4 and recall8.mean() > 0.8  # 8-bit codes + fp16 scale and bias
    recall1, _ = per_query_recall(db, q, index_named("lvq-1", 16), k=10)
    assert recall1.mean() < recall8.mean()  # fewer bits keep less of the exact top 10
    own = np.arange(20)
    recall_ex, _ = per_query_recall(db, q, index_named("exact", 16), k=5, exclude=own)
    assert (recall_ex == 1.0).all()
    with pytest.raises(ValueError, match="unknown index 'pq'"):
        index_named("pq", 16)


def test_index_for_config_builds_the_arms_of_the_lab_task():
    from reglab.embeddings.retrieval import index_for_config

    assert index_for_config({"name": "lvq", "bits": 4}, 384).label == "LVQ-4"
    assert index_for_config({"name": "lvq", "bits": 4, "residual_bits": 4}, 384).label == "LVQ-4×4"
    assert index_for_config({"name": "leanvec", "n_components": 96}, 384).label == "LeanVec-ID d/4 + LVQ-8"
    assert index_for_config({"name": "leanvec", "mode": "ood"}, 384).label == "LeanVec-OOD d/2 + LVQ-8"
    # any other embedding transform: exact search on its output (the beir task's whitening arms)
    assert index_for_config({"name": "whitening", "k": 256}, 384).label == "whitening(k=256)"
    with pytest.raises(ValueError, match="no retrieval index for 'l2'"):
        index_for_config({"name": "l2"}, 384)


def test_huge_vectors_are_normalized_without_overflow():
    X, Q, _ = data(n=300)
    small = R.evaluate_retrieval(X, Q, ks=(1, 10))
    huge = R.evaluate_retrieval(X * 1e30, Q * 1e30, ks=(1, 10))  # float32 squares of 1e30 overflow
    assert not huge.failed and [r.recall for r in huge.rows] == [r.recall for r in small.rows]


class _Overflows(R._Method):
    label, group = "overflows", "test"

    def fit(self, db, fit_queries):
        np.float32(3e38) * np.float32(10)  # a numpy overflow inside the index


def test_a_failing_index_is_reported_with_its_cause_and_the_rest_stands(tmp_path, capsys, monkeypatch):
    X, Q, _ = data(n=300)
    rep = R.evaluate_retrieval(np.zeros_like(X), Q, ks=(1, 10))  # all-zero database: whitening d/2 cannot fit
    r = rows(rep)
    assert r["whitening d/2 + LVQ-8"].failed and "non-negligible eigenvalues" in r["whitening d/2 + LVQ-8"].note
    assert r["LVQ-8"].recall and not r["LVQ-8"].failed and rep.failed == [r["whitening d/2 + LVQ-8"]]
    over = R.evaluate_retrieval(X, Q, ks=(1,), methods=[R._Raw(), _Overflows(), R._LVQ(8)])
    assert over.rows[1].note.startswith("FAILED: numeric overflow (overflow encountered") and over.rows[2].recall
    assert "| overflows | FAILED: numeric overflow" in R.format_table(over)
    np.save(tmp_path / "x.npy", np.zeros_like(X))
    np.save(tmp_path / "q.npy", Q)
    out = tmp_path / "out"
    rc = main(["retrieval", "--vectors", str(tmp_path / "x.npy"), "--queries", str(tmp_path / "q.npy"), "--k", "1",
               "--out", str(out)])  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 1 and "| whitening d/2 + LVQ-8 | FAILED: RegularizerInputError" in (out / "retrieval.md").read_text()
    assert "| LVQ-8 |" in captured.out and "(the other rows stand)" in captured.err


def test_sts_files_that_are_not_utf8_are_a_clear_cli_error(tmp_path, capsys):
    (tmp_path / "bad.tsv").write_bytes(b"4.5\tcaf\xe9\tcafe\n")
    assert main(["retrieval", str(tmp_path), "--out", ""]) == 2
    assert "bad.tsv: line 1 is not UTF-8" in capsys.readouterr().err
