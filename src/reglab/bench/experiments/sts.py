"""Lab task ``sts``: semantic textual similarity with a post-hoc embedding transform.

The arm is an embedding transform's config (None: the raw embeddings). It is
fitted on the distinct sentences of the STS files only (the transductive
protocol of BERT-whitening, Su et al. 2021) and scored by the mean Spearman
and Pearson correlation of cosine similarity with the gold scores, as
``reglab.embeddings.sts.evaluate_sts`` does for ``reglab sts``. The data
and the encoder are optional (``$REGLAB_STS_DATA``, else the SemEval STS test files shipped with reglab;
the ``text`` extra): without them the run is reported as skipped.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from reglab.bench.tasks import TaskResult, TaskUnavailable, task
from reglab.embeddings.sts import default_data_dir, evaluate_sts


@task("sts", datasets=("sts",))
def sts_task(
    arm: dict | None,
    *,
    seed: int = 0,
    quick: bool = False,
    dataset: str = "sts",
    encoder: str = "minilm",
    data: str | None = None,
    **task_args: Any,
) -> TaskResult:
    """Mean Spearman (and Pearson) over the STS files for one arm, and per file (``units``).

    Deterministic: ``seed`` is accepted for the lab's protocol but nothing is
    random. ``quick`` uses the first 200 pairs of each file. Raises
    ``TaskUnavailable`` when the text extra or the data is missing.
    """
    if dataset != "sts":
        raise ValueError(f"the sts task runs on the STS files only (dataset 'sts'), got {dataset!r}")
    if task_args:
        raise TypeError(f"sts task got unknown arguments {sorted(task_args)}")
    from reglab.embeddings.encoders import TextExtraMissing, get_encoder

    root = Path(data) if data else default_data_dir()
    if root is None or not root.exists():
        raise TaskUnavailable(
            f"STS data not found (looked at {data or '$REGLAB_STS_DATA and the files shipped with reglab'})"
        )
    try:
        enc = get_encoder(encoder)
    except TextExtraMissing as err:
        raise TaskUnavailable(str(err)) from err
    t0 = time.perf_counter()
    report = evaluate_sts(enc, [root], {"arm": arm}, limit_per_file=200 if quick else None)
    if "arm" in report.failed:
        raise RuntimeError(f"arm {arm!r} failed with encoder {encoder!r}: {report.failed['arm']}")
    if "arm" not in report.scores:
        raise TaskUnavailable(f"arm {arm!r} cannot run with encoder {encoder!r}: {report.skipped.get('arm')}")
    def unit(f: str) -> str:
        path = Path(f)
        return str(path.relative_to(root)) if path.is_relative_to(root) else path.name

    scores = report.scores["arm"]
    return TaskResult(
        metrics={
            "mean_spearman": report.mean("arm", "spearman"),
            "mean_pearson": report.mean("arm", "pearson"),
        },
        units={
            "spearman": {unit(f): scores[f][0] for f in report.files},
            "pearson": {unit(f): scores[f][1] for f in report.files},
        },
        seconds=time.perf_counter() - t0,
        setup={
            "data": f"STS files under {root.name}/ ({len(report.files)} files; the distinct sentences of all of "
            "them are the pool a transform is fitted on)",
            "model": f"encoder {encoder!r}; cosine similarity of the (transformed) embeddings",
            "training": "none: the transform is fitted post hoc on the evaluation pool (transductive, as in "
            "BERT-whitening)",
            "selection": "none; claims pair the arms file by file (paired_over='units')",
        },
    )
