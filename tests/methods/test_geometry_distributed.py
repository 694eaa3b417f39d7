"""The representation-geometry penalties with batch statistics under 2 gloo ranks with uneven rows:
each rank gets the single-process value on the concatenated batch, and gather's gradient contract
(rank r's input receives world·∂L/∂z_r; DDP divides by world). One spawn for every case."""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import reglab
from reglab import functional as RF

pytestmark = pytest.mark.skipif(
    not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed with gloo"
)

ROWS = (9, 14)  # uneven; energy confusion needs > 2·num_pairs rows in the global batch


def _mine(x: torch.Tensor, rank: int) -> torch.Tensor:
    start = sum(ROWS[:rank])
    return x[start : start + ROWS[rank]]


def _check(name, fn, fulls, rank, world, out):
    refs = [f.clone().requires_grad_() for f in fulls]
    ref = fn(*refs, gather=False)
    ref.backward()
    locs = [_mine(f, rank).clone().requires_grad_() for f in fulls]
    value = fn(*locs, gather=True)
    value.backward()
    torch.testing.assert_close(value.detach(), ref.detach(), rtol=1e-9, atol=1e-12, msg=f"{name} value")
    for loc, full in zip(locs, refs):
        if loc.grad is not None:
            torch.testing.assert_close(loc.grad / world, _mine(full.grad, rank), msg=f"{name} grad")
    out[name] = float(value)


def _cases(rank: int, world: int) -> dict[str, float]:
    n = sum(ROWS)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, 4, generator=g, dtype=torch.float64)
    p = torch.randn(n, 4, generator=g, dtype=torch.float64)
    o = torch.randn(n, 6, generator=g, dtype=torch.float64)
    y = torch.arange(n) % 3
    out: dict[str, float] = {}
    _check("wae_mmd", lambda a, b, gather: RF.wae_mmd(a, b, gather=gather), (z, p), rank, world, out)
    _check("structure", lambda a, b, gather: RF.structure(a, b, levels=2, temperature=0.5, gather=gather),
           (z, o), rank, world, out)  # fmt: skip
    _check("energy_confusion", lambda a, gather: RF.energy_confusion(
        a, y if not gather else _mine(y, rank), torch.Generator().manual_seed(3), num_pairs=3, gather=gather),
        (z,), rank, world, out)  # fmt: skip
    w = torch.randn(3, 4, generator=g, dtype=torch.float64)
    _check("ridg", lambda a, gather: RF.ridg(a, y if not gather else _mine(y, rank), w, gather=gather).penalty,
           (z,), rank, world, out)  # fmt: skip
    # path length: each rank draws its own directions, so the value is not the single-process one; the
    # lengths are gathered, so the penalty and the running mean are the same on every rank (compared below)
    lin = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.randn(3, 4, generator=g, dtype=torch.float64))
    xl = _mine(z, rank).clone().requires_grad_()
    step = RF.path_length(torch.tanh(lin(xl)), xl, 0.2, None, torch.Generator().manual_seed(5 + rank))
    assert step.lengths.shape == (n,)
    out["path_length"] = float(step.penalty)
    out["path_length_mean"] = float(step.mean)
    return out


def _worker(rank: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    world = len(ROWS)
    dist.init_process_group("gloo", init_method=f"file://{out_dir}/init", rank=rank, world_size=world,
                            timeout=timedelta(seconds=60))  # fmt: skip
    report: dict[str, object] = {}
    try:
        report["values"] = _cases(rank, world)
    except Exception as e:  # noqa: BLE001 - reported to the test
        report["error"] = f"{type(e).__name__}: {e}"
    finally:
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(report, f)
        dist.destroy_process_group()


def test_single_process_value_and_gradient_contract_on_every_rank(tmp_path):
    ctx = mp.start_processes(_worker, args=(str(tmp_path),), nprocs=len(ROWS), join=False, start_method="spawn")
    try:
        while not ctx.join(timeout=300):
            pass
    finally:
        for proc in ctx.processes:
            if proc.is_alive():
                proc.kill()
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(len(ROWS))]
    for r, report in enumerate(reports):
        assert "error" not in report, f"rank {r}: {report.get('error')}"
    assert reports[0]["values"] == reports[1]["values"]
    assert set(reports[0]["values"]) == {"wae_mmd", "structure", "energy_confusion", "ridg", "path_length", "path_length_mean"}
