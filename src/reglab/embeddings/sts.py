"""STS evaluation: Spearman/Pearson of cosine similarity against gold scores.

Files hold one pair a line, ``score<TAB>sentence1<TAB>sentence2`` in UTF-8
(a BOM is tolerated). Quotes are literal text, not CSV quoting, so lines are
split on tabs only. Lines without a numeric score (a header) or without two
sentences are skipped and *counted*: the report names each file's skipped
lines, and the CLI prints them.

Each arm (a transform config, or None for the raw embeddings) is fitted
once on the *evaluation pool*: the distinct sentences of all the files being
evaluated, and nothing else (no training data, no gold scores), then applied
to both sides of every pair. That is the transductive protocol of
BERT-whitening (Su et al. 2021), which fits on the STS sentences
themselves. Zipfian whitening is fitted on the pool's tokens instead, weighted
by their counts in the pool (only for encoders that expose
``token_statistics``, i.e. the static baseline); since whitening is affine,
whitening the mean token vector equals averaging the whitened token vectors,
which is the paper's sentence embedding.

Given no path, ``reglab sts`` reads ``default_data_dir``: ``$REGLAB_STS_DATA``,
else the SemEval STS 2012–2014 test files shipped with reglab (12 files, those whose
terms allow redistribution; ``reglab/data/sts/NOTICE.md`` says which, from where,
under which terms, and why MSRpar is not among them).

The lab task ``sts`` (``reglab bench``) that runs this evaluation for one
arm lives in the lab, ``reglab.bench.experiments.sts``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_ARMS",
    "ENCODE_CHUNK",
    "StsReport",
    "check_encoded",
    "encode_checked",
    "SHIPPED_FILES",
    "default_data_dir",
    "evaluate_sts",
    "find_sts_files",
    "format_report",
    "load_hf_sts",
    "pearson",
    "read_sts_file",
    "shipped_data_dir",
    "spearman",
]


#: The arms of the README table: name -> transform config (None = raw embeddings).
#: "whiten" is Whitening(eps=1e-8), the setting the published tables were measured with.
#: all-MiniLM-L6-v2's sentence embeddings span only 381 of their 384 dimensions (3
#: eigenvalues of the covariance are ~1e-17, round-off); the floor keeps full whitening
#: from blowing that noise up, as the default Whitening() does by dropping those
#: directions (the same mean: 68.35 with the floor, 68.36 with k=381, on the 15-file
#: folder of docs/sts.md). 1e-8 is at most 0.2% of the smallest real eigenvalue of
#: either encoder's pool covariance (3.9e-5 MiniLM, 5.0e-6 static), so it leaves the
#: other directions practically untouched.
DEFAULT_ARMS: dict[str, dict[str, Any] | None] = {
    "raw": None,
    "center": {"name": "center"},
    "whiten": {"name": "whitening", "eps": 1e-8},
    "whiten-k128": {"name": "whitening", "k": 128},
    "abtt": {"name": "all_but_the_top"},
    "zipfian": {"name": "zipfian_whitening"},
}


# ---------------------------------------------------------------------------
# data


def read_sts_file(
    path: str | Path, limit: int | None = None, skipped: list[int] | None = None
) -> list[tuple[float, str, str]]:
    """(score, s1, s2) of every scored line of an STS file; the numbers of the
    non-blank lines that are not a scored pair are appended to ``skipped``."""
    pairs = []
    raw = Path(path).read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        lineno = raw[: err.start].count(b"\n") + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise ValueError(
            f"{path}: line {lineno} is not UTF-8 (byte {raw[err.start:err.start + 1]!r} at column {column}: "
            f"{err.reason}); STS files must be UTF-8 text (re-save it as UTF-8, e.g. iconv -f latin1 -t utf-8)"
        ) from None
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        try:
            score = float(parts[0]) if len(parts) >= 3 else math.nan
        except ValueError:
            score = math.nan
        if not math.isfinite(score) or not parts[1].strip() or not parts[2].strip():
            if skipped is not None:
                skipped.append(lineno)
            continue
        pairs.append((score, parts[1].strip(), parts[2].strip()))
        if limit is not None and len(pairs) >= limit:
            break
    return pairs


#: column names tried, in order, for the two sentences and the gold score of a Hugging Face STS dataset
HF_COLUMNS = (("sentence1", "sentence2", "score"), ("sentence1", "sentence2", "label"), ("text1", "text2", "score"))


def load_hf_sts(name: str, out_dir: str | Path, *, split: str = "test") -> Path:
    """An STS dataset through Hugging Face ``datasets`` (online, or a ``save_to_disk`` folder),
    written as ``out_dir/<name>.<split>.tsv`` for ``evaluate_sts``; returns the file.

    Accepts the usual column layouts (``sentence1``/``sentence2``/``score``, e.g.
    ``mteb/stsbenchmark-sts``; ``label`` for the score; ``text1``/``text2``).
    """
    try:
        import datasets
    except ImportError as err:
        raise ImportError("--hf needs Hugging Face datasets: pip install datasets, or pip install -e '.[hf]' from a reglab checkout") from err
    if Path(name).is_dir():
        loaded = datasets.load_from_disk(name)
        ds = loaded[split] if isinstance(loaded, datasets.DatasetDict) else loaded
    else:
        ds = datasets.load_dataset(name, split=split)
    cols = next((c for c in HF_COLUMNS if all(k in ds.column_names for k in c)), None)
    if cols is None:
        raise ValueError(f"{name}: no STS columns among {ds.column_names}; expected one of {list(HF_COLUMNS)}")
    out = Path(out_dir) / f"{Path(name).name or 'hf'}.{split}.tsv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for row in ds:
            a, b = (" ".join(str(row[c]).split()) for c in cols[:2])  # tabs/newlines inside a sentence
            f.write(f"{float(row[cols[2]])}\t{a}\t{b}\n")
    return out


def find_sts_files(paths: Iterable[str | Path]) -> list[Path]:
    """The files given, plus every ``*.tsv`` under the folders given (sorted)."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*.tsv") if q.is_file()))
        elif p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"no STS file or folder at {p}")
    return list(dict.fromkeys(found))


#: the SemEval STS 2012–2014 test files shipped inside the package (see its NOTICE.md)
SHIPPED_FILES = (
    "2012/OnWN.test.tsv", "2012/SMTeuroparl.test.tsv", "2012/SMTnews.test.tsv",
    "2013/FNWN.test.tsv", "2013/OnWN.test.tsv", "2013/headlines.test.tsv",
    "2014/OnWN.test.tsv", "2014/deft-forum.test.tsv", "2014/deft-news.test.tsv",
    "2014/headlines.test.tsv", "2014/images.test.tsv", "2014/tweet-news.test.tsv",
)  # fmt: skip


def shipped_data_dir() -> Path | None:
    """The folder of the SemEval STS 2012–2014 test files shipped with reglab
    (``reglab/data/sts``: the 12 ``SHIPPED_FILES``, their readmes and NOTICE.md),
    found through ``importlib.resources`` so that it works from an installed
    wheel as from a source checkout; None if the install lacks it (or reglab is
    imported from a zip, where the files are not on disk)."""
    from importlib.resources import files

    folder = files("reglab").joinpath("data", "sts")
    return folder if isinstance(folder, Path) and folder.is_dir() else None


def default_data_dir() -> Path | None:
    """Where ``reglab sts`` / ``reglab retrieval`` (and the lab tasks) read STS files
    when given no path: ``$REGLAB_STS_DATA`` when it is set (as given, even if it
    does not exist, so that a mistyped path fails loudly rather than falling back),
    else ``shipped_data_dir``."""
    env = os.environ.get("REGLAB_STS_DATA")
    if env:
        return Path(env).expanduser()
    return shipped_data_dir()


# ---------------------------------------------------------------------------
# metrics


def _correlation(fn_name: str, x: Sequence[float], y: Sequence[float]) -> float:
    """``scipy.stats.pearsonr`` / ``spearmanr``; NaN (no warning) when either side is constant."""
    import warnings

    from scipy import stats

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(getattr(stats, fn_name)(x, y).statistic)


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    return _correlation("pearsonr", x, y)


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    return _correlation("spearmanr", x, y)


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    denom = na * nb
    dots = np.einsum("ij,ij->i", a, b)
    return np.divide(dots, denom, out=np.zeros_like(dots), where=denom > 0)


# ---------------------------------------------------------------------------
# evaluation


@dataclass
class StsReport:
    encoder: str
    files: list[str]
    n_pairs: dict[str, int]
    n_pool: int
    #: arm -> file -> (spearman, pearson); an arm that cannot run for this encoder is absent
    scores: dict[str, dict[str, tuple[float, float]]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # arm -> why (cannot run with this encoder)
    failed: dict[str, str] = field(default_factory=dict)  # arm -> the error it raised (the other arms go on)
    skipped_lines: dict[str, list[int]] = field(default_factory=dict)  # file -> line numbers not read as pairs

    def mean(self, arm: str, metric: str = "spearman") -> float:
        j = 0 if metric == "spearman" else 1
        vals = [self.scores[arm][f][j] for f in self.files]
        return float(np.mean(vals))

    def __repr__(self) -> str:
        # short file names (folder/file), not absolute paths; the mean Spearman of each arm
        means = {arm: round(self.mean(arm), 4) for arm in self.scores}
        extra = "".join(f", {k}={v!r}" for k, v in (("skipped", self.skipped), ("failed", self.failed)) if v)
        return (
            f"StsReport(encoder={self.encoder!r}, files={[_short(f) for f in self.files]}, "
            f"pairs={sum(self.n_pairs.values())}, n_pool={self.n_pool}, mean_spearman={means}{extra})"
        )


def _build(arm: Any):
    if arm is None:
        return None
    from reglab.core.registry import from_config
    from reglab.embeddings.base import EmbeddingTransform

    obj = from_config(arm) if isinstance(arm, dict) else arm
    if not isinstance(obj, EmbeddingTransform):
        raise TypeError(f"an STS arm must be an embedding transform or its config, got {arm!r}")
    return obj


def _too_small(obj: Any, n: int, d: int) -> str | None:
    """Why ``obj`` cannot fit ``n`` sentences of dimension ``d`` (None if it can): it keeps more
    dimensions than the embeddings have, or, unregularized, at least as many as there are sentences
    (e.g. ``whiten-k128`` with ``--limit 5``). Such an arm is skipped, with this reason, not failed."""
    from reglab.embeddings.base import Pipeline

    if isinstance(obj, Pipeline):
        return next((why for t in obj.transforms if (why := _too_small(t, n, d))), None)
    k = getattr(obj, "k", None) or getattr(obj, "n_components", None)
    if not isinstance(k, int) or isinstance(k, bool):
        return None
    if k > d:
        return f"keeps {k} dimensions, the encoder gives {d}"
    regularized = bool(getattr(obj, "eps", 0) or getattr(obj, "shrinkage", 0))
    if not regularized and n <= k:
        return f"keeps {k} dimensions, needs more than {k} sentences; the pool has {n} (fewer pairs with --limit?)"
    return None


def check_encoded(encoder: Any, texts: Sequence[str], emb: Any) -> np.ndarray:
    """``encoder.encode(texts)``'s output as an (n, d) array, or a clear ``ValueError``: one row per
    text, every value finite (a NaN vector would otherwise still get a correlation)."""
    who = f"encoder {encoder_name(encoder)}"
    try:
        arr = np.asarray(emb, dtype=np.float64) if emb is not None else None
    except (TypeError, ValueError) as err:
        raise ValueError(f"{who}: encode() returned {type(emb).__name__}, not an array of numbers ({err})") from None
    if arr is None or arr.ndim != 2 or arr.shape[0] != len(texts):
        shape = None if arr is None else arr.shape
        raise ValueError(
            f"{who}: encode() of {len(texts)} sentences returned an array of shape {shape}; expected "
            f"({len(texts)}, d): one row per sentence, in order"
        )
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if len(bad):
        shown = "; ".join(f"row {i}: {texts[i][:60]!r}" for i in bad[:3])
        raise ValueError(
            f"{who}: encode() returned NaN or inf for {len(bad)} of {len(texts)} sentences ({shown}"
            f"{'; …' if len(bad) > 3 else ''}); a non-finite embedding has no cosine similarity"
        )
    return np.asarray(emb)


#: sentences per encode() call of evaluate_sts (progress is reported between calls)
ENCODE_CHUNK = 512


def encode_checked(encoder: Any, texts: Sequence[str], steps: Callable[[str, int, int], None] | None = None) -> np.ndarray:
    """``encoder.encode`` over ``texts`` in calls of ``ENCODE_CHUNK`` sentences, each output checked
    (``check_encoded``); ``steps("encoding", done, total)`` after each call."""
    chunks = []
    for start in range(0, len(texts), ENCODE_CHUNK):
        part = list(texts[start : start + ENCODE_CHUNK])
        chunks.append(check_encoded(encoder, part, encoder.encode(part)))
        if steps is not None:
            steps("encoding", start + len(part), len(texts))
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)


def _needs_frequencies(obj: Any) -> bool:
    from reglab.embeddings.base import Pipeline

    if isinstance(obj, Pipeline):
        return any(_needs_frequencies(t) for t in obj.transforms)
    return getattr(obj, "takes_frequencies", False)


def evaluate_sts(
    encoder,
    paths: Iterable[str | Path],
    arms: dict[str, Any] | None = None,
    *,
    limit_per_file: int | None = None,
    progress: Callable[[str], None] | None = None,
    steps: Callable[[str, int, int], None] | None = None,
) -> StsReport:
    """Score ``encoder`` on the STS files under ``paths`` for each arm.

    ``arms`` maps a column name to a transform, its config dict, or None
    (raw); default ``DEFAULT_ARMS``. Each transform is fitted on the
    distinct sentences of all the files (the evaluation pool) only.

    An arm that cannot run here (token frequencies the encoder lacks, more
    kept dimensions than the pool allows) is in ``report.skipped``; one that
    raises is in ``report.failed``; the other arms go on. The encoder's output
    is checked (one finite row per sentence): a ``ValueError`` otherwise.
    ``progress(message)`` gets a line per stage; ``steps(stage, done, total)``
    counts sentences encoded (``"encoding"``, between calls of
    ``ENCODE_CHUNK`` sentences) and arms scored (``"arms"``).
    """
    files = find_sts_files(paths)
    if not files:
        raise FileNotFoundError("no STS files (*.tsv) found in the given paths")
    arms = DEFAULT_ARMS if arms is None else arms
    skipped_lines: dict[str, list[int]] = {str(f): [] for f in files}
    data = {str(f): read_sts_file(f, limit_per_file, skipped_lines[str(f)]) for f in files}
    data = {f: pairs for f, pairs in data.items() if pairs}
    if not data:
        raise ValueError("the STS files hold no scored sentence pairs (score<TAB>sentence1<TAB>sentence2)")
    for f, pairs in data.items():
        if len(pairs) < 2 or len({s for s, _, _ in pairs}) < 2:
            raise ValueError(
                f"{f}: {len(pairs)} pair(s) whose gold scores are all equal: a correlation with them is undefined"
            )
    pool = list(dict.fromkeys(s for pairs in data.values() for _, a, b in pairs for s in (a, b)))
    if progress is not None:
        cached = " (cached encodings are reused)" if hasattr(encoder, "cache_dir") else ""
        progress(f"encoding {len(pool)} distinct sentences of {sum(len(p) for p in data.values())} pairs "
                 f"with {encoder_name(encoder)}{cached}")  # fmt: skip
    emb = encode_checked(encoder, pool, steps)
    index = {s: i for i, s in enumerate(pool)}
    report = StsReport(
        encoder=encoder_name(encoder),
        files=list(data),
        n_pairs={f: len(p) for f, p in data.items()},
        n_pool=len(pool),
        skipped_lines={f: lines for f, lines in skipped_lines.items() if lines},
    )
    for done, (arm_name, arm) in enumerate(arms.items()):
        if steps is not None:
            steps("arms", done, len(arms))
        obj = _build(arm)
        if obj is not None and _needs_frequencies(obj) and not hasattr(encoder, "token_statistics"):
            report.skipped[arm_name] = "needs token frequencies (static encoders only)"
            continue
        too_small = None if obj is None or _needs_frequencies(obj) else _too_small(obj, len(pool), emb.shape[1])
        if too_small:
            report.skipped[arm_name] = too_small
            continue
        try:  # one arm that cannot fit these data (too few sentences for k, …) must not abort the others
            if obj is None:
                z = emb
            elif _needs_frequencies(obj):
                vectors, counts = encoder.token_statistics(pool)
                z = obj.fit(vectors, frequencies=counts).transform(emb.astype(np.float64))
            else:
                z = obj.fit_transform(emb.astype(np.float64))
        except Exception as err:
            report.failed[arm_name] = f"{type(err).__name__}: {err}"
            continue
        z = np.asarray(z, dtype=np.float64)
        scores = {}
        for f, pairs in data.items():
            gold = np.array([s for s, _, _ in pairs])
            a = z[[index[p[1]] for p in pairs]]
            b = z[[index[p[2]] for p in pairs]]
            cos = _cosine_rows(a, b)
            scores[f] = (spearman(cos, gold), pearson(cos, gold))
        bad = [f for f, v in scores.items() if not all(math.isfinite(x) for x in v)]
        if bad:
            report.failed[arm_name] = f"undefined correlation (constant similarities) on {', '.join(map(_short, bad))}"
            continue
        report.scores[arm_name] = scores
    if steps is not None:
        steps("arms", len(arms), len(arms))
    return report


def encoder_name(encoder: Any) -> str:
    """A name for the report: ``encoder.name``, a SentenceTransformer's model, or the type."""
    name = getattr(encoder, "name", None)
    if isinstance(name, str) and name:
        return name
    card = getattr(getattr(encoder, "model_card_data", None), "base_model", None)
    return str(card) if card else type(encoder).__name__


def _short(f: str) -> str:
    p = Path(f)
    return f"{p.parent.name}/{p.name}" if p.parent.name else p.name


def format_report(report: StsReport, *, markdown: bool = False, per_file: bool = True) -> str:
    """Per-file and mean Spearman / Pearson (×100) for each arm, side by side."""
    arms = list(report.scores)
    head = ["file", "pairs"] + [f"{a} ρ / r" for a in arms]
    rows = []
    if per_file:
        for f in report.files:
            cells = [f"{100 * report.scores[a][f][0]:.2f} / {100 * report.scores[a][f][1]:.2f}" for a in arms]
            rows.append([_short(f), str(report.n_pairs[f])] + cells)
    mean_cells = [f"{100 * report.mean(a, 'spearman'):.2f} / {100 * report.mean(a, 'pearson'):.2f}" for a in arms]
    rows.append([f"mean ({len(report.files)} files)", str(sum(report.n_pairs.values()))] + mean_cells)
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for r in rows:
            if r is rows[-1]:
                r = [f"**{c}**" for c in r]
            lines.append("| " + " | ".join(r) + " |")
    else:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
        fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
        lines = [fmt(head), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]
    title = (
        f"encoder {report.encoder}: Spearman ρ / Pearson r ×100 of cosine vs gold; transforms fitted "
        f"on the {report.n_pool} distinct sentences of the evaluation pool only"
    )
    out = [title, ""] + lines
    for arm, why in report.skipped.items():
        out.append(f"(arm {arm!r} skipped: {why})")
    for arm, why in report.failed.items():
        out.append(f"(arm {arm!r} FAILED: {why})")
    for f, nums in report.skipped_lines.items():
        shown = ", ".join(map(str, nums[:10])) + (", …" if len(nums) > 10 else "")
        out.append(f"({_short(f)}: {len(nums)} line(s) not read as score<TAB>s1<TAB>s2: line {shown})")
    return "\n".join(out)
