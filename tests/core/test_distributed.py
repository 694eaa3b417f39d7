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
