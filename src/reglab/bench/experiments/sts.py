"""Lab task ``sts``: semantic textual similarity with a post-hoc embedding transform.

The arm is an embedding transform's config (None: the raw embeddings). It is
fitted on the distinct sentences of the STS files only (the transductive
protocol of BERT-whitening, Su et al. 2021) and scored by the mean Spearman
and Pearson correlation of cosine similarity with the gold scores, as
:func:`reglab.embeddings.sts.evaluate_sts` does for ``reglab sts``. The data
and the encoder are optional (``$REGLAB_STS_DATA`` or ``../shared/data/sts``;
extra ``reglab[text]``): without them the run is reported as skipped.
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
    """Mean Spearman (and Pearson) over the STS files for one arm.

    Deterministic: ``seed`` is accepted for the lab's protocol but nothing is
    random. ``quick`` uses the first 200 pairs of each file. Raises
    :class:`TaskUnavailable` when the text extra or the data is missing.
    """
    if dataset != "sts":
        raise ValueError(f"the sts task runs on the STS files only (dataset 'sts'), got {dataset!r}")
    if task_args:
        raise TypeError(f"sts task got unknown arguments {sorted(task_args)}")
    from reglab.embeddings.encoders import TextExtraMissing, get_encoder

    root = Path(data) if data else default_data_dir()
    if root is None or not root.exists():
        raise TaskUnavailable(
            f"STS data not found (looked at {data or '$REGLAB_STS_DATA and ../shared/data/sts'})"
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
    return TaskResult(
        metrics={
            "mean_spearman": report.mean("arm", "spearman"),
            "mean_pearson": report.mean("arm", "pearson"),
        },
        seconds=time.perf_counter() - t0,
    )
