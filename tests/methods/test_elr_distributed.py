"""ELR / PS-KD per-sample buffers under DDP: 2 gloo processes vs one process on the global batch."""

import os
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import reglab

N, C, STEPS, WORLD = 12, 4, 3, 2


def batches():
    """Per step and rank: (logits, index, labels). Ranks' indices overlap across steps."""
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(STEPS):
        perm = torch.randperm(N, generator=g)
        sizes = (4, 3)  # uneven, like a last batch
        parts, start = [], 0
        for s in sizes:
            idx = perm[start : start + s]
            parts.append((torch.randn(s, C, generator=g) * 2, idx, torch.randint(0, C, (s,), generator=g)))
            start += s
        out.append(parts)
    return out


def run_single():
    elr, pskd = reglab.ELR(N, C), reglab.PSKD(N, C, total_epochs=2)
    for parts in batches():
        z = torch.cat([p[0] for p in parts])
        idx = torch.cat([p[1] for p in parts])
        y = torch.cat([p[2] for p in parts])
        elr(z, idx)
        pskd(y, idx, z)
    return elr.targets, pskd.predictions, pskd.seen


def worker(rank, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.set_num_threads(1)
        elr, pskd = reglab.ELR(N, C), reglab.PSKD(N, C, total_epochs=2)
        terms = []
        for parts in batches():
            z, idx, y = parts[rank]
            terms.append(elr(z, idx))
            pskd(y, idx, z)
        torch.save(
            {"elr": elr.targets, "pskd": pskd.predictions, "seen": pskd.seen, "terms": torch.stack(terms)},
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available() or sys.platform == "win32", reason="needs torch.distributed gloo")
def test_buffers_identical_across_ranks_and_equal_single_process(tmp_path):
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD, join=True)
    r0 = torch.load(tmp_path / "rank0.pt")
    r1 = torch.load(tmp_path / "rank1.pt")
    elr_ref, pskd_ref, seen_ref = run_single()
    for key in ("elr", "pskd", "seen"):
        assert torch.equal(r0[key], r1[key]), f"{key} buffers differ between ranks"
    assert torch.allclose(r0["elr"], elr_ref, atol=1e-6)
    assert torch.allclose(r0["pskd"], pskd_ref, atol=1e-6)
    assert torch.equal(r0["seen"], seen_ref)
    assert seen_ref.sum() > 7 and (r0["elr"].sum(1) > 0).sum() == seen_ref.sum()
    # the returned term is the local batch mean: ranks differ because their batches do
    assert not torch.allclose(r0["terms"], r1["terms"])
