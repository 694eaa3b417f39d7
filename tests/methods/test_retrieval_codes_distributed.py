"""codebook_entropy, sinkhorn_codes and mba under 2 gloo processes with uneven batches (3 and 5 rows):
the global-batch value (and gradient contract) of one process on the concatenated batch, on every rank."""

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

pytestmark = pytest.mark.skipif(
    not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed with gloo"
)

ROWS = (3, 5)


def _mine(x, rank):
    start = sum(ROWS[:rank])
    return x[start : start + ROWS[rank]]


def _cases(rank: int) -> dict:
    import reglab
    from reglab.methods.sinkhorn_codes import sinkhorn_codes

    world = len(ROWS)
    out = {}
    g = torch.Generator().manual_seed(0)
    # codebook entropy: the mean assignment over the global batch
    full = torch.randn(sum(ROWS), 6, generator=g, dtype=torch.float64)
    ref_in = full.clone().requires_grad_()
    ref = reglab.create("codebook_entropy", temperature=0.5, gather=False)(ref_in)
    ref.backward()
    local = _mine(full, rank).clone().requires_grad_()
    value = reglab.create("codebook_entropy", temperature=0.5)(local)
    value.backward()
    torch.testing.assert_close(value.detach(), ref.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(local.grad / world, _mine(ref_in.grad, rank), rtol=1e-8, atol=1e-12)
    out["codebook_entropy"] = float(value)
    # Sinkhorn codes: balanced over the global batch (sums and min/max all-reduced)
    e = torch.randn(sum(ROWS), 4, generator=g, dtype=torch.float64)
    c = torch.randn(2, 3, 2, generator=g, dtype=torch.float64)
    for eps in (0.003, 0.3):
        ref_codes = sinkhorn_codes(e, c, epsilon=eps, gather=False)
        codes = sinkhorn_codes(_mine(e, rank), c, epsilon=eps)
        assert torch.equal(codes, _mine(ref_codes, rank)), (eps, codes, _mine(ref_codes, rank))
    out["sinkhorn"] = True
    # MBA: every rank penalizes the union of all ranks' ids
    w = torch.randn(10, 3, generator=g, dtype=torch.float64)
    counts = torch.arange(1, 11)
    ids = [torch.tensor([0, 2, 2]), torch.tensor([5, 9, 2, 7, 7])]
    ref = reglab.create("mba", gather=False)(w, torch.cat(ids), counts)
    value = reglab.create("mba")(w, ids[rank], counts)
    torch.testing.assert_close(value, ref)
    out["mba"] = float(value)
    return out


def _worker(rank: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out_dir}/init", rank=rank, world_size=len(ROWS),
                            timeout=timedelta(seconds=60))  # fmt: skip
    try:
        try:
            report = {"values": _cases(rank)}
        except Exception:  # noqa: BLE001 - reported to the parent
            report = {"values": traceback.format_exc()}
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(report, f)
    finally:
        dist.destroy_process_group()


def test_global_batch_values_on_every_rank(tmp_path):
    ctx = mp.start_processes(_worker, args=(str(tmp_path),), nprocs=len(ROWS), join=False, start_method="spawn")
    try:
        while not ctx.join(timeout=300):  # hang guard only
            pass
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(len(ROWS))]
    for r, rep in enumerate(reports):
        assert isinstance(rep["values"], dict), f"rank {r}: {rep['values']}"
    assert reports[0]["values"] == reports[1]["values"]
