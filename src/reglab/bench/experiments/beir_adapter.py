"""Lab task ``beir_adapter``: a small adapter on frozen MiniLM embeddings, fine-tuned on BEIR SciFact's
train qrels with in-batch InfoNCE, with and without a regularizer; judged on test nDCG@10 in float32 and
after 4-bit (LVQ-4) and binary (sign) compression of the document index.

Data: SciFact in BEIR's layout (5,183 abstracts; 809 train queries with 919 judged pairs; 300 test
queries), embedded once with the offline MiniLM encoder (``all-MiniLM-L6-v2``; documents as title + " " +
text; the encodings cached by ``reglab.embeddings.beir``, loaded once per worker process). The encoder is
frozen; the adapter is one residual MLP shared by queries and documents,
``f(x) = x + W₂ relu(W₁ x + b₁) + b₂`` (384-384-384), with W₂ and b₂ initialized at zero so that training
starts from the identity (MiniLM itself). Each seed draws W₁'s initialization, the batch order, and the
validation share: 20% of the train queries held out for model selection.

Training: pairs (train query, relevant document) of the remaining train queries, batches of 128 pairs,
InfoNCE over in-batch documents at temperature 0.05 (sentence-transformers' MultipleNegativesRankingLoss,
scale 20), cosine similarity; a batch document relevant to another query of the batch is masked out of
that query's negatives. Adam (lr 1e-3), 20 epochs. Selection: after every epoch (and at epoch 0, the
identity) nDCG@10 of the validation queries against the whole corpus; the best epoch's adapter is kept
(never the test split).

The arm: a representation regularizer (``koleo``, ``uniformity``, ``vcreg``, ``flops``, ...) is added to
the loss, with its default weight, on the adapter's outputs for the batch's distinct documents (the
vectors the index stores and compresses; before the cosine normalization; KoLeo and uniformity normalize
themselves); a weight regularizer (``l2_init``: L2 toward the initialization, i.e. toward the identity
adapter) is attached to every adapter parameter (``.on(exclude=None)``) and its penalty added to the loss.

Metrics (test queries, the selected adapter): ``ndcg10`` (exact cosine search, float32), ``ndcg10_lvq4``
(LVQ-4 codes of the documents, ``reglab.embeddings.lvq``), ``ndcg10_binary`` (the sign of each coordinate,
Hamming search with faiss ``IndexBinaryFlat``, no rescoring), ``recall100`` and ``mrr10`` (float32), all by
trec_eval (``pytrec_eval``); ``val_ndcg10`` and ``epoch`` (the selection); ``nn_distance``: mean distance
of 1,024 fixed documents to their nearest other document of the corpus, on the unit sphere (what
spreading regularizers act on). Claims pair the arms seed by seed on the mean over the 300 test queries
(``paired_over="seeds"``): the per-query pairing of the deterministic ``beir`` task would ignore the
training randomness that decides a fine-tuned model (and would judge one seed's adapter). The per-query
values are not stored (300 × 3 numbers per run, unused by the verdicts).

Task argument ``epochs`` (default 20; 0 keeps MiniLM itself: the negative control of non-inferiority
claims). ``quick``: 2 epochs, 60 test queries. Data: as the ``beir`` task (argument ``data``,
``$REGLAB_BEIR_SCIFACT``, ``../shared/data/beir/scifact``, the BEIR cache); the encoder and pytrec_eval
(``reglab[text]``) and faiss (``reglab[faiss]``) are optional: without them the run is skipped.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reglab.bench.tasks import TaskResult, TaskUnavailable, build_arm, task

EPOCHS, QUICK_EPOCHS, BATCH, LR, TEMPERATURE, VAL_SHARE, QUICK_QUERIES = 20, 2, 128, 1e-3, 0.05, 0.2, 60
NN_SAMPLE = 1024  # documents whose nearest-neighbour distance is reported (fixed, the same for every seed)


@dataclass
class _Frozen:
    """SciFact embedded by MiniLM (L2-normalized rows), loaded once per process."""

    test: Any  # BeirData of the test split
    docs: torch.Tensor  # (n_docs, d)
    test_queries: torch.Tensor  # (300, d)
    train_ids: list[str]  # train query ids, file order
    train_queries: torch.Tensor  # (809, d), rows in train_ids order
    train_rel: dict[str, list[int]]  # train query id -> row numbers of its relevant documents
    encoder: str


_FROZEN: dict[str, _Frozen] = {}


def _frozen(root: Path) -> _Frozen:
    key = str(root.resolve())
    if key in _FROZEN:
        return _FROZEN[key]
    from reglab.embeddings.beir import encode_beir, load_beir
    from reglab.embeddings.encoders import TextExtraMissing, get_encoder

    try:
        import pytrec_eval  # noqa: F401

        enc = get_encoder("minilm", use_cache=False)
    except (TextExtraMissing, ImportError) as err:
        raise TaskUnavailable(str(err)) from err
    test = load_beir(root, "test")
    docs, queries, fit = encode_beir(test, enc)  # fit: the train-split queries (the other qrels)
    train = load_beir(root, "train")
    row = {d: i for i, d in enumerate(test.doc_ids)}
    fit_row = {q: i for i, q in enumerate(test.fit_query_ids)}
    train_ids = [q for q in train.query_ids if q in fit_row]
    rel = {q: sorted(row[d] for d, s in train.qrels[q].items() if s > 0) for q in train_ids}
    train_ids = [q for q in train_ids if rel[q]]

    def unit(x: np.ndarray) -> torch.Tensor:
        return F.normalize(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), dim=1)

    out = _Frozen(test, unit(docs), unit(queries), train_ids, unit(fit[[fit_row[q] for q in train_ids]]),
                  rel, enc.name)  # fmt: skip
    _FROZEN[key] = out
    return out


class ResidualAdapter(nn.Module):
    """``x + W₂ relu(W₁ x + b₁) + b₂``, W₂ = 0 and b₂ = 0 at initialization (the identity map)."""

    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.up = nn.Linear(d, hidden)
        self.down = nn.Linear(hidden, d)
        nn.init.zeros_(self.down.weight)
        nn.init.zeros_(self.down.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(F.relu(self.up(x)))


def _ndcg10(ids: list[str], q: torch.Tensor, docs: torch.Tensor, doc_ids: np.ndarray, qrels: dict) -> float:
    """Mean nDCG@10 (trec_eval) of exact cosine search of the rows ``q`` (normalized) over ``docs``."""
    from reglab.embeddings.beir import ir_metrics

    top = (q @ docs.T).topk(10, dim=1).indices.numpy()
    ranked = {qid: doc_ids[row].tolist() for qid, row in zip(ids, top)}
    per = ir_metrics(ranked, {qid: qrels[qid] for qid in ids})["ndcg@10"]
    return float(np.mean([per[qid] for qid in ids]))


def _nn_distance(docs: torch.Tensor) -> float:
    """Mean distance on the unit sphere from NN_SAMPLE fixed documents to their nearest other document."""
    n = docs.shape[0]
    sample = torch.randperm(n, generator=torch.Generator().manual_seed(0))[: min(NN_SAMPLE, n - 1)]
    sim = docs[sample] @ docs.T
    sim[torch.arange(len(sample)), sample] = float("-inf")
    best = sim.max(dim=1).values.clamp(-1.0, 1.0)
    return float(torch.sqrt(2.0 - 2.0 * best).mean())


@task("beir_adapter", datasets=("scifact",))
def beir_adapter(
    arm: dict | None, *, seed: int, quick: bool = False, dataset: str = "scifact", epochs: int = EPOCHS,
    data: str | None = None, **task_args: Any,
) -> TaskResult:
    if task_args:
        raise TypeError(f"beir_adapter task got unknown arguments {sorted(task_args)}")
    if dataset != "scifact":
        raise ValueError(f"the beir_adapter task runs on SciFact (dataset 'scifact'), got {dataset!r}")
    if not (isinstance(epochs, int) and epochs >= 0):
        raise ValueError(f"beir_adapter: epochs must be an integer ≥ 0, got {epochs!r}")
    from reglab.bench.experiments.beir import scifact_dir

    start = time.perf_counter()
    root = scifact_dir(data)
    if root is None:
        raise TaskUnavailable("BEIR SciFact not found (task argument data, $REGLAB_BEIR_SCIFACT, ../shared/data/beir)")
    fz = _frozen(root)
    epochs = min(epochs, QUICK_EPOCHS) if quick else epochs
    d = fz.docs.shape[1]
    doc_ids = np.asarray(fz.test.doc_ids, dtype=object)

    # everything random derives from the seed: validation share, initialization, batch order
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(fz.train_ids), generator=gen).tolist()
    n_val = round(VAL_SHARE * len(order))
    val_ids = [fz.train_ids[i] for i in sorted(order[:n_val])]
    fit_rows = sorted(order[n_val:])
    val_q = fz.train_queries[[fz.train_ids.index(q) for q in val_ids]]
    val_qrels = {q: {fz.test.doc_ids[r]: 1 for r in fz.train_rel[q]} for q in val_ids}
    pairs = torch.tensor([(i, r) for i in fit_rows for r in fz.train_rel[fz.train_ids[i]]], dtype=torch.long)
    rel_sets = [set(fz.train_rel[q]) for q in fz.train_ids]

    torch.manual_seed(seed)
    model = ResidualAdapter(d, d)
    reg = build_arm(arm)
    regs = rep = None
    if reg is not None:
        kind = getattr(reg, "kind", None)
        if kind == "representation":
            rep = reg
        elif kind == "weight":
            import reglab

            regs = reglab.attach(model, reg.on(exclude=None))  # every adapter parameter, biases included
        else:
            raise ValueError(f"beir_adapter takes representation or weight regularizers, got {type(reg).__name__}")
    opt = torch.optim.Adam(model.parameters(), lr=LR)

    @torch.no_grad()
    def embed(x: torch.Tensor) -> torch.Tensor:
        return F.normalize(model(x), dim=1)

    def validate() -> float:
        model.eval()
        score = _ndcg10(val_ids, embed(val_q), embed(fz.docs), doc_ids, val_qrels)
        model.train()
        return score

    best_val, best_epoch, best_state = validate(), 0, copy.deepcopy(model.state_dict())
    val_curve, loss_curve, epoch_cpu = [best_val], [], []
    step_wall: list[float] = []
    step_cpu: list[float] = []
    for epoch in range(1, epochs + 1):
        perm = pairs[torch.randperm(len(pairs), generator=gen)]
        total = 0.0
        for b in range(0, len(perm), BATCH):
            batch = perm[b : b + BATCH]
            if len(batch) < 2:
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            qi, di = batch[:, 0], batch[:, 1]
            zq, zd = model(fz.train_queries[qi]), model(fz.docs[di])
            logits = F.normalize(zq, dim=1) @ F.normalize(zd, dim=1).T / TEMPERATURE
            # a batch document relevant to query i (other than its own pair) is not a negative of i
            dl = di.tolist()
            mask = torch.tensor([[j != i and dl[j] in rel_sets[q] for j in range(len(dl))]
                                 for i, q in enumerate(qi.tolist())])  # fmt: skip
            loss = F.cross_entropy(logits.masked_fill(mask, float("-inf")), torch.arange(len(batch)))
            if rep is not None:
                first = sorted({d_: j for j, d_ in reversed(list(enumerate(dl)))}.values())  # distinct documents
                loss = loss + rep(zd[first])
            if regs is not None:
                loss = loss + regs.penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
            step_wall.append(time.perf_counter() - t0)
            step_cpu.append(time.process_time() - c0)
            total += float(loss.detach()) * len(batch)
        if not np.isfinite(total):
            raise FloatingPointError(f"beir_adapter: the training loss is not finite at epoch {epoch}")
        loss_curve.append(total / len(pairs))
        epoch_cpu.append(sum(step_cpu))
        val = validate()
        val_curve.append(val)
        if val > best_val:
            best_val, best_epoch, best_state = val, epoch, copy.deepcopy(model.state_dict())
    if regs is not None:
        regs.detach()
    model.load_state_dict(best_state)
    model.eval()

    from reglab.embeddings.beir import evaluate_beir
    from reglab.embeddings.retrieval import index_named

    test = fz.test
    tq = fz.test_queries
    if quick:
        test = copy.copy(test)
        test.query_ids = test.query_ids[:QUICK_QUERIES]
        test.query_texts = test.query_texts[:QUICK_QUERIES]
        tq = tq[:QUICK_QUERIES]
    docs_a, q_a = embed(fz.docs), embed(tq)
    report = evaluate_beir(test, docs_a.numpy(), q_a.numpy(), None, encoder=fz.encoder,
                           methods=[index_named("exact", d), index_named("lvq-4", d), index_named("binary", d)])
    rows = {"": report.rows[0], "_lvq4": report.rows[1], "_binary": report.rows[2]}
    for suffix, row in rows.items():
        if row.failed:
            if row.failed.startswith("skipped"):
                raise TaskUnavailable(row.failed)
            raise RuntimeError(f"beir_adapter, index {row.method}: {row.failed}")
    raw = rows[""]
    metrics = {f"ndcg10{s}": row.scores["ndcg@10"] for s, row in rows.items()}
    metrics.update(recall100=raw.scores["recall@100"], mrr10=raw.scores["mrr@10"], val_ndcg10=best_val,
                   epoch=float(best_epoch), nn_distance=_nn_distance(docs_a))  # fmt: skip
    return TaskResult(
        metrics=metrics,
        curves={"val_ndcg10": val_curve, "train_loss": loss_curve, "cpu_seconds": epoch_cpu},
        step_seconds=float(np.mean(step_wall)) if step_wall else float("nan"),
        step_cpu_seconds=float(np.mean(step_cpu)) if step_cpu else float("nan"),
        seconds=time.perf_counter() - start,
        setup={
            "data": f"BEIR SciFact: {len(test.doc_ids)} abstracts; {len(fz.train_ids) - n_val} train queries "
            f"({len(pairs)} pairs) for training, {n_val} for validation (drawn by the seed); "
            f"{len(test.query_ids)} test queries; frozen MiniLM embeddings (d = {d})",
            "model": f"residual MLP adapter {d}-{d}-{d} shared by queries and documents, from the identity "
            "(output layer at zero); the arm on the batch's document outputs (representation) or on every "
            "adapter parameter (weight)",
            "training": f"in-batch InfoNCE (τ = {TEMPERATURE}), Adam lr {LR:g}, batch {BATCH} pairs, {epochs} epochs",
            "selection": "epoch (0 = MiniLM itself included) of best validation nDCG@10; test nDCG@10 by "
            "trec_eval in float32, LVQ-4 and binary (sign, Hamming) codes of the documents",
        },
    )
