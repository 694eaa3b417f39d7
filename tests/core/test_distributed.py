"""Batch-statistic regularizers under real DistributedDataParallel.

One spawn of 2 CPU processes (gloo) checks every loss: a small model wrapped
in DDP sees half of the batch on each rank; the loss value and the parameter
gradients after DDP's averaging must equal a single-process run on the full
batch (rtol 1e-5). Ranks hold unequal batch sizes in one case (the last batch
of an epoch).
"""

from __future__ import annotations

import gc
import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import reglab
from reglab import distributed as D

CASES = [
    # (registry name, kwargs, rank batch sizes)
    ("vicreg", {}, (6, 6)),
    ("barlow_twins", {}, (6, 6)),
    ("vcreg", {}, (6, 6)),
    ("uniformity", {}, (6, 6)),
    ("flops", {}, (6, 6)),
    ("vne", {}, (6, 6)),
    ("effective_rank", {}, (6, 6)),
    ("dispersive", {}, (6, 6)),
    ("alignment", {}, (6, 6)),  # per-pair mean: no gather, DDP's average is already global
    ("l1_activation", {}, (6, 6)),
    ("least_volume", {}, (6, 6)),
    ("ldreg", {"k": 4}, (6, 6)),
    ("mhe_features", {}, (6, 6)),  # detached, gathered reference; per-sample mean
    ("vicreg", {}, (7, 4)),  # unequal rank batches
    ("uniformity", {}, (7, 4)),
]


# per-sample means: each rank's loss is its local mean; DDP's gradient average is the global one
PER_SAMPLE = {"alignment", "l1_activation", "ldreg"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 6)).double()


def _loss(model, reg, x1, x2):
    z1 = model(x1)
    if reg.num_inputs == 2:
        return reg(z1, model(x2))
    return reg(z1)


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    report = {}
    try:
        for i, (name, kwargs, sizes) in enumerate(CASES):
            g = torch.Generator().manual_seed(100 + i)
            n = sum(sizes)
            x1 = torch.randn(n, 5, generator=g, dtype=torch.float64)
            x2 = x1 + 0.3 * torch.randn(n, 5, generator=g, dtype=torch.float64)

            # single-process reference on the concatenated batch
            ref_model = _model()
            per_sample = name in PER_SAMPLE
            no_gather = {"gather": False} if "gather" in reglab.info(name).defaults else {}
            ref_reg = reglab.create(name, **no_gather, **kwargs)
            ref = _loss(ref_model, ref_reg, x1, x2)
            ref.backward()
            ref_grads = [p.grad.clone() for p in ref_model.parameters()]

            # DDP: this rank's rows only
            start = sum(sizes[:rank])
            sl = slice(start, start + sizes[rank])
            ddp = torch.nn.parallel.DistributedDataParallel(_model())
            loss = _loss(ddp, reglab.create(name, **kwargs), x1[sl], x2[sl])
            loss.backward()
            if per_sample:  # each rank holds its local mean; their average is the global one
                loss = loss.detach().clone()
                dist.all_reduce(loss)
                loss /= world
            grads = [p.grad for p in ddp.module.parameters()]
            torch.testing.assert_close(loss.detach(), ref.detach(), rtol=1e-5, atol=1e-8, msg=f"{name} loss")
            for a, b in zip(grads, ref_grads):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8, msg=lambda m: f"{name} {sizes} grad: {m}")
            report[f"{name}{sizes}"] = float(loss.detach())

        # gather's backward must not write into a gradient another node also receives
        x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
        b = torch.zeros(6, 2, dtype=torch.float64, requires_grad=True)
        c = torch.arange(12, dtype=torch.float64).reshape(6, 2)
        ((D.gather(x) + b) * c).sum().backward()
        torch.testing.assert_close(b.grad, c, msg="gather backward modified a shared gradient in place")
        torch.testing.assert_close(x.grad, world * c[3 * rank : 3 * rank + 3])
        report["shared_grad"] = True
        report["world_size"] = D.world_size()
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(report, f)
        # DDP reducers must go before the group, and no rank may tear down gloo
        # while the other still talks to it ("terminate called ..." at exit)
        del ddp
        gc.collect()
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_ddp_gradients_equal_single_process(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert reports[0]["world_size"] == 2
    assert len(reports[0]) == len(CASES) + 2
    # every rank computed the same global loss
    for key in reports[0]:
        assert reports[0][key] == pytest.approx(reports[1][key], rel=1e-12)


def test_gather_is_identity_without_process_group():
    x = torch.randn(4, 3, requires_grad=True)
    assert D.gather(x) is x
    assert D.world_size() == 1 and D.rank() == 0 and not D.is_distributed()


# Edge ranks: a rank with 1 or 0 rows, a NaN on one rank. Every rank must finish
# within seconds with the single-process value, or all raise the same clear error.
EDGE_CASES = [
    ("vicreg", (12, 1)), ("vicreg", (13, 0)), ("barlow_twins", (12, 1)), ("barlow_twins", (13, 0)),
    ("uniformity", (12, 1)), ("uniformity", (13, 0)), ("vcreg", (12, 1)), ("vcreg", (13, 0)),
    ("flops", (12, 1)), ("flops", (13, 0)),
]  # fmt: skip


def _edge_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    from datetime import timedelta

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    # a hang fails in 60 s instead of the default 30 min
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    report = {}
    try:
        for i, (name, sizes) in enumerate(EDGE_CASES):
            g = torch.Generator().manual_seed(200 + i)
            n = sum(sizes)
            x1 = torch.randn(n, 5, generator=g, dtype=torch.float64)
            x2 = x1 + 0.3 * torch.randn(n, 5, generator=g, dtype=torch.float64)
            ref_model = _model()
            ref = _loss(ref_model, reglab.create(name, gather=False), x1, x2)
            ref.backward()
            start = sum(sizes[:rank])
            sl = slice(start, start + sizes[rank])
            ddp = torch.nn.parallel.DistributedDataParallel(_model())
            loss = _loss(ddp, reglab.create(name), x1[sl], x2[sl])
            loss.backward()
            torch.testing.assert_close(loss.detach(), ref.detach(), rtol=1e-5, atol=1e-8, msg=f"{name}{sizes}")
            for a, b in zip(ddp.module.parameters(), ref_model.parameters()):
                torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-8, msg=lambda m: f"{name}{sizes}: {m}")
            report[f"{name}{sizes}"] = "ok"
            del ddp
        # a NaN on rank 1 only, and a global batch of one row: the same error on every rank
        for label, rows in (("nan", None), ("one row", (1, 0))):
            z = torch.randn(4, 6, dtype=torch.float64)
            if rows is None and rank == 1:
                z[0, 0] = float("nan")
            if rows is not None:
                z = z[: rows[rank]]
            try:
                reglab.create("vicreg")(z, z + 1.0)
                report[label] = "no error"
            except reglab.RegularizerInputError as e:
                report[label] = str(e)
        # ELR: a rank with 0 rows, and duplicate indices across ranks
        elr = reglab.create("elr", num_samples=20, num_classes=3)
        logits = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
        local = slice(0, 5) if rank == 0 else slice(0, 0)
        value = elr(logits[local], torch.arange(5)[local])
        value.backward()
        report["elr empty rank"] = float(value.detach())
        report["elr targets"] = elr.targets.sum().item()
        try:
            elr(torch.randn(2, 3, dtype=torch.float64), torch.tensor([7, 8]))  # both ranks: the same indices
            report["elr duplicates"] = "no error"
        except reglab.RegularizerInputError as e:
            report["elr duplicates"] = str(e)
        with open(os.path.join(out_dir, f"edge{rank}.json"), "w") as f:
            json.dump(report, f)
        gc.collect()
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_ddp_edge_ranks_finish_with_the_right_value_or_the_same_error(tmp_path):
    # a rank left waiting in a collective fails through the process group's own timeout, not a clock here
    mp.spawn(_edge_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"edge{r}.json").read_text()) for r in range(2))
    for name, sizes in EDGE_CASES:
        assert r0[f"{name}{sizes}"] == r1[f"{name}{sizes}"] == "ok"
    assert r0["nan"] == r1["nan"] and "NaN" in r0["nan"] and "global batch" in r0["nan"]
    assert r0["one row"] == r1["one row"] and "at least 2" in r0["one row"] and "all ranks" in r0["one row"]
    assert r0["elr targets"] == pytest.approx(r1["elr targets"]) and r0["elr targets"] == pytest.approx(5 * 0.3, rel=1e-6)
    assert r1["elr empty rank"] == 0.0
    assert r0["elr duplicates"] == r1["elr duplicates"] and "duplicate dataset indices" in r0["elr duplicates"]
