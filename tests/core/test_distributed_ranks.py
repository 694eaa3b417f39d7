"""Every gathering regularizer under 3 and 4 gloo processes with uneven ranks (0 and 1 rows).

One process group per world size runs every case (spawning costs seconds). Each
case either computes the single-process value on the concatenated batch on
every rank (and the gather gradient contract), or raises the same
``RegularizerInputError`` on every rank. A rank left waiting in a collective
would hit the process group's timeout (60 s) and fail the test; the join below
is only a hang guard, never a measure of speed.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import reglab
from reglab import distributed as D
from reglab.core.registry import info

pytestmark = pytest.mark.skipif(
    not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed with gloo"
)

DIM = 5
# every name with a `gather` option, and the per-sample buffers with `sync`
ONE_VIEW = ("dispersive", "effective_rank", "flops", "least_volume", "mhe_features", "uniformity", "vcreg", "vne", "koleo")
TWO_VIEWS = ("vicreg", "barlow_twins", "tico", "t_regs", "cma", "condition_number_immunization")
#: two-input penalties whose batches may differ in size (the kept and the harmful task's features)
UNPAIRED = ("condition_number_immunization",)
KWARGS = {"koleo": {"gather": True}, "t_regs": {"gather": True}, "ldreg": {"k": 4}}
ROWS = {3: (0, 1, 15), 4: (7, 0, 1, 8)}


def _batch(n: int, seed: int, dims: tuple[int, ...] = (DIM,)) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, *dims, generator=g, dtype=torch.float64)
    return z1, z1 + 0.3 * torch.randn(n, *dims, generator=g, dtype=torch.float64)


def _mine(x: torch.Tensor, rows: tuple[int, ...], rank: int) -> torch.Tensor:
    start = sum(rows[:rank])
    return x[start : start + rows[rank]]


def _call(name: str, *views: torch.Tensor, **kwargs) -> torch.Tensor:
    reg = reglab.create(name, **{**KWARGS.get(name, {}), **kwargs})
    return reg(*views[: 2 if name in TWO_VIEWS else 1])


def _value_cases(rank: int, world: int) -> dict[str, object]:
    """The single-process value (and gradient) on every rank where the global batch is fine."""
    rows = ROWS[world]
    out: dict[str, object] = {}
    for i, name in enumerate(ONE_VIEW + TWO_VIEWS + ("dispersive_conv",)):
        name, dims = ("dispersive", (2, 3)) if name == "dispersive_conv" else (name, (DIM,))
        full1, full2 = _batch(sum(rows), 10 + i, dims)
        ref1, ref2 = full1.clone().requires_grad_(), full2.clone().requires_grad_()
        ref = _call(name, ref1, ref2, gather=False)
        ref.backward()
        z1 = _mine(full1, rows, rank).clone().requires_grad_()
        z2 = _mine(full2, rows, rank).clone().requires_grad_()
        value = _call(name, z1, z2)
        value.backward()
        torch.testing.assert_close(value.detach(), ref.detach(), rtol=1e-9, atol=1e-12, msg=f"{name} value")
        # gather's contract: rank r's input receives world·∂L/∂z_r (DDP divides by world)
        for local, full in ((z1, ref1), (z2, ref2)):
            if local.grad is not None:
                torch.testing.assert_close(local.grad / world, _mine(full.grad, rows, rank), msg=f"{name} grad")
        out[f"{name}{dims}"] = float(value.detach())

    # KoLeo with ids (the SSCD variant): the ids are gathered with the rows
    full, _ = _batch(sum(rows), 29)
    ids = torch.arange(sum(rows)) // 2
    ref = reglab.create("koleo", gather=False)(full, ids=ids)
    value = reglab.create("koleo", gather=True)(_mine(full, rows, rank), ids=_mine(ids, rows, rank))
    torch.testing.assert_close(value, ref, msg="koleo ids")
    out["koleo ids"] = float(value)

    # TCM: the labels are gathered with the rows, the pairs are the global batch's
    full, _ = _batch(sum(rows), 33)
    labels = torch.arange(sum(rows)) % 3
    ref_z = full.clone().requires_grad_()
    ref = reglab.create("tcm", gather=False)(ref_z, labels)
    ref.backward()
    z = _mine(full, rows, rank).clone().requires_grad_()
    value = reglab.create("tcm")(z, _mine(labels, rows, rank))
    value.backward()
    torch.testing.assert_close(value.detach(), ref.detach(), msg="tcm labels")
    if z.grad is not None:
        torch.testing.assert_close(z.grad / world, _mine(ref_z.grad, rows, rank), msg="tcm grad")
    out["tcm labels"] = float(value.detach())

    # LDReg: a per-sample mean against the gathered reference; Σ_r n_r·L_r is the global sum
    full, _ = _batch(sum(rows), 30)
    z = _mine(full, rows, rank).clone().requires_grad_()
    value = reglab.create("ldreg", k=4)(z)
    value.backward()  # a rank with no rows still joins the backward, with a zero gradient
    total = torch.tensor([float(value.detach()) * rows[rank]], dtype=torch.float64)
    dist.all_reduce(total)
    ref = reglab.create("ldreg", k=4, gather=False)(full)
    torch.testing.assert_close(total / sum(rows), ref.detach().reshape(1), msg="ldreg")
    out["ldreg"] = float(total)

    # flops_idf: the scores stay local, the FLOPS term is over all ranks' documents
    g = torch.Generator().manual_seed(31)
    queries = (torch.rand(sum(rows), 7, generator=g) < 0.4).to(torch.int64)
    docs = torch.rand(sum(rows), 7, generator=g, dtype=torch.float64)
    idf = torch.rand(7, generator=g, dtype=torch.float64)
    ref_scores, ref_flops = reglab.create("flops_idf", gather=False)(queries, docs, idf)
    scores, flops = reglab.create("flops_idf")(_mine(queries, rows, rank), _mine(docs, rows, rank), idf)
    torch.testing.assert_close(flops, ref_flops, msg="flops_idf flops")
    mine = _mine(torch.arange(sum(rows)), rows, rank)
    torch.testing.assert_close(scores, ref_scores[mine][:, mine], msg="flops_idf scores")
    out["flops_idf"] = float(flops)

    # ELR and PS-KD: identical buffers on every rank, equal to one process on the global batch
    n_samples, classes = 40, 3
    g = torch.Generator().manual_seed(32)
    logits = torch.randn(sum(rows), classes, generator=g, dtype=torch.float64)
    index = torch.randperm(n_samples, generator=g)[: sum(rows)]
    labels = torch.randint(0, classes, (sum(rows),), generator=g)
    elr_ref = reglab.create("elr", num_samples=n_samples, num_classes=classes, sync=False)
    pskd_ref = reglab.create("pskd", num_samples=n_samples, num_classes=classes, total_epochs=2, sync=False)
    elr_ref(logits, index)
    soft_ref = pskd_ref(labels, index, logits)
    elr, pskd = reglab.create("elr", num_samples=n_samples, num_classes=classes), reglab.create(
        "pskd", num_samples=n_samples, num_classes=classes, total_epochs=2)
    mine = lambda x: _mine(x, rows, rank)  # noqa: E731
    elr(mine(logits), mine(index))
    soft = pskd(mine(labels), mine(index), mine(logits))
    torch.testing.assert_close(elr.targets, elr_ref.targets, msg="elr targets")
    torch.testing.assert_close(pskd.predictions, pskd_ref.predictions, msg="pskd predictions")
    torch.testing.assert_close(soft, mine(soft_ref), msg="pskd targets")
    out["elr"] = float(elr.targets.sum())
    return out


def _error_cases(rank: int, world: int) -> list[tuple[str, str, str]]:
    """(case, regularizer name shown, the bad rank) for inputs that must raise the same error everywhere."""
    rows = ROWS[world]
    bad = world - 2  # a rank holding 1 row in both layouts
    cases = []

    def views(n=None, dims=(DIM,), dtype=torch.float64):
        z1, z2 = _batch(rows[rank] if n is None else n, 40 + rank, dims)
        return z1.to(dtype), z2.to(dtype)

    for name in ONE_VIEW + TWO_VIEWS + ("ldreg",):
        cases += [
            (f"{name}: 1-d input on one rank", name, lambda name=name: _call(
                name, *(views() if rank != bad else (torch.randn(3, dtype=torch.float64),) * 2))),
            (f"{name}: int dtype on one rank", name, lambda name=name: _call(
                name, *(views() if rank != bad else (torch.ones(rows[rank], DIM, dtype=torch.int64),) * 2))),
            (f"{name}: wrong width on one rank", name, lambda name=name: _call(
                name, *views(dims=(DIM + (rank == bad),)))),
            (f"{name}: fp16 on one rank", name, lambda name=name: _call(
                name, *views(dtype=torch.float16 if rank == bad else torch.float32))),
            (f"{name}: a NaN in the global batch", name, lambda name=name: _call(
                name, *[v.index_fill(1, torch.tensor([0]), float("nan")) if rank == bad else v for v in views()])),
            (f"{name}: global batch too small", name, lambda name=name: _call(
                name, *views(n=int(rank == bad and name != "flops")))),
        ]  # fmt: skip
    for name in TWO_VIEWS:
        if name in UNPAIRED:  # two batches of their own sizes, not two views of one batch
            continue
        cases.append((f"{name}: mismatched views on one rank", name, lambda name=name: _call(
            name, views()[0], views(n=rows[rank] + (rank == bad))[1])))  # fmt: skip

    cases.append(("koleo: float ids on one rank", "koleo", lambda: reglab.create("koleo", gather=True)(
        views()[0], ids=torch.zeros(rows[rank], dtype=torch.float32 if rank == bad else torch.int64))))

    cases.append(("tcm: float labels on one rank", "TCM", lambda: reglab.create("tcm")(
        views()[0], torch.zeros(rows[rank], dtype=torch.float32 if rank == bad else torch.int64))))
    cases.append(("tcm: label count on one rank", "TCM", lambda: reglab.create("tcm")(
        views()[0], torch.zeros(rows[rank] + (rank == bad), dtype=torch.int64))))

    def flops_idf(queries_vocab=7, docs_dtype=torch.float64, n=None):
        n = rows[rank] if n is None else n
        return reglab.create("flops_idf")(
            torch.ones(n, queries_vocab, dtype=torch.int64), torch.rand(n, 7).to(docs_dtype), torch.rand(7))

    cases += [
        ("flops_idf: vocabulary mismatch on one rank", "flops_idf", lambda: flops_idf(queries_vocab=7 + (rank == bad))),
        ("flops_idf: int docs on one rank", "flops_idf",
         lambda: flops_idf(docs_dtype=torch.int64 if rank == bad else torch.float64)),
        ("flops_idf: no documents on any rank", "flops_idf", lambda: flops_idf(n=0)),
    ]  # fmt: skip

    for name in ("elr", "pskd"):
        def buffer(name=name, classes=3, index_shift=0, n=None, label_shift=0):
            n = rows[rank] if n is None else n
            reg = reglab.create(name, num_samples=40, num_classes=3)
            logits, index = torch.randn(n, classes), torch.arange(n) + 10 * rank + index_shift
            if name == "elr":
                return reg(logits, index)
            return reg(torch.zeros(n, dtype=torch.long) + label_shift, index, logits)

        cases += [
            (f"{name}: class count on one rank", name.upper(), lambda b=buffer: b(classes=3 + (rank == bad))),
            (f"{name}: index out of range on one rank", name.upper(), lambda b=buffer: b(index_shift=100 * (rank == bad))),
            (f"{name}: empty global batch", name.upper(), lambda b=buffer: b(n=0)),
        ]  # fmt: skip
        if name == "pskd":
            cases.append(("pskd: label out of range on one rank", "PSKD", lambda b=buffer: b(label_shift=5 * (rank == bad))))
    return cases


_WHO = {  # the name each regularizer gives itself in errors
    "dispersive": "Dispersive", "effective_rank": "EffectiveRank", "flops": "FLOPS", "least_volume": "LeastVolume",
    "mhe_features": "MHEFeatures", "uniformity": "Uniformity", "vcreg": "VCReg", "vne": "VNE", "koleo": "KoLeo",
    "vicreg": "VICReg", "barlow_twins": "BarlowTwins", "tico": "TiCo", "t_regs": "TREGS", "ldreg": "LDReg", "cma": "CMA",
    "condition_number_immunization": "ConditionNumberImmunization",
}  # fmt: skip


def _run_cases(rank: int, world: int) -> dict[str, object]:
    report: dict[str, object] = {}
    try:
        report["values"] = _value_cases(rank, world)
    except Exception:  # noqa: BLE001 - reported to the parent, which fails the test with it
        report["values"] = traceback.format_exc()
    errors = {}
    for case, who, call in _error_cases(rank, world):
        try:
            call()
            errors[case] = ("no error", _WHO.get(who, who))
        except reglab.RegularizerInputError as e:
            errors[case] = (str(e), _WHO.get(who, who))
        except Exception as e:  # noqa: BLE001 - a backend error instead of the agreed one
            errors[case] = (f"{type(e).__name__}: {e}", _WHO.get(who, who))
    report["errors"] = errors
    # every rank is still in step: one more gather works
    report["after"] = D.gather(torch.full((rank, 2), float(rank))).sum().item()
    return report


def _worker(rank: int, out_dir: str) -> None:
    """One spawn serves both world sizes (a spawn costs seconds): 4 ranks, then ranks 0-2 in a new group."""
    torch.set_num_threads(1)
    for world in sorted(ROWS, reverse=True):
        if rank >= world:
            continue
        # the timeout is a hang guard: a rank left waiting in a collective fails within a minute
        dist.init_process_group(
            "gloo", init_method=f"file://{out_dir}/init{world}", rank=rank, world_size=world,
            timeout=timedelta(seconds=60),
        )  # fmt: skip
        report: dict[str, object] = {"world": D.world_size()}
        try:
            report.update(_run_cases(rank, world))
        finally:
            with open(os.path.join(out_dir, f"world{world}-rank{rank}.json"), "w") as f:
                json.dump(report, f)
            dist.destroy_process_group()


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[int, list[dict]]:
    out = tmp_path_factory.mktemp("ranks")
    ctx = mp.start_processes(_worker, args=(str(out),), nprocs=max(ROWS), join=False, start_method="spawn")
    try:
        while not ctx.join(timeout=300):  # hang guard only; the groups' own timeout fires first
            pass
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    return {world: [json.loads((out / f"world{world}-rank{r}.json").read_text()) for r in range(world)] for world in ROWS}


@pytest.mark.parametrize("world", sorted(ROWS))
def test_uneven_and_bad_ranks_give_the_value_or_the_same_error_on_every_rank(world, reports):
    reports = reports[world]
    assert [report["world"] for report in reports] == [world] * world
    for r, report in enumerate(reports):
        assert isinstance(report["values"], dict), f"rank {r}: {report['values']}"
    assert all(report["values"] == reports[0]["values"] for report in reports)
    assert len(reports[0]["values"]) == len(ONE_VIEW) + len(TWO_VIEWS) + 6
    cases = reports[0]["errors"]
    assert len(cases) == 114
    for case, (message, who) in cases.items():
        same = {report["errors"][case][0] for report in reports}
        assert len(same) == 1, f"{case}: ranks raised different errors: {same}"
        assert message != "no error" and not message.startswith(("RuntimeError", "DistBackendError")), f"{case}: {message}"
        assert message.startswith(who), f"{case}: {message}"
        if "one rank" in case:  # the rank that sent the bad input is named
            assert f"rank {world - 2}" in message, f"{case}: {message}"
        if "global batch" in case or "any rank" in case:
            assert "global batch" in message or "every rank" in message, f"{case}: {message}"
    assert reports[0]["after"] == sum(r * 2 * r for r in range(world))
