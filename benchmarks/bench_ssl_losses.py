"""VICReg and Barlow Twins: reglab vs lightly, time and peak memory (forward + backward).

    python benchmarks/bench_ssl_losses.py [--device cpu|cuda] [--reps 5] [--dims 2048 8192]

Batch 256, two views, float32. The reference is lightly's ``VICRegLoss`` /
``BarlowTwinsLoss`` when lightly is installed; its package ``__init__``
imports torchvision, so the two loss modules are loaded directly from their
files (``pip install --no-deps lightly`` is enough). Without lightly a plain
textbook implementation (d×d covariance / cross-correlation) stands in, and
the output says so. Values must agree to 1e-5 (relative).

Peak memory: ``torch.cuda.max_memory_allocated`` on CUDA; on CPU the growth
of the process's max RSS, each measurement in a fresh subprocess (so one
implementation's high-water mark never hides another's).

Where the d×d matrix is avoided: when n < d, reglab computes the VICReg
covariance term from the n×n Gram matrix (Σ_{i≠j}C_ij² = ‖ZcZcᵀ‖_F²/(n−1)² −
Σ_j Var_j²) and the Barlow Twins off-diagonal sum from the elementwise
product of the two views' n×n Gram matrices (‖AᵀB‖_F² = Σ (AAᵀ)∘(BBᵀ)), both
O(n²d) time and O(n²) memory instead of O(nd²) and O(d²).
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing as mp
import resource
import sys
import time
import types
from pathlib import Path

import torch
import torch.nn.functional as F

BATCH = 256


# ------------------------------------------------------------------ references
def _load_lightly():
    """lightly's two loss classes, without importing its torchvision-dependent package."""
    spec = importlib.util.find_spec("lightly")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0])

    def load(modname: str, path: Path):
        s = importlib.util.spec_from_file_location(modname, path)
        m = importlib.util.module_from_spec(s)
        sys.modules[modname] = m
        s.loader.exec_module(m)
        return m

    for pkg in ("lightly", "lightly.utils", "lightly.loss"):
        sys.modules.setdefault(pkg, types.ModuleType(pkg))
    try:
        load("lightly.utils.dist", root / "utils" / "dist.py")
        vic = load("lightly.loss.vicreg_loss", root / "loss" / "vicreg_loss.py")
        bt = load("lightly.loss.barlow_twins_loss", root / "loss" / "barlow_twins_loss.py")
    except Exception as exc:  # noqa: BLE001 - any import failure means "no lightly"
        print(f"# lightly found but its loss modules failed to load: {exc!r}")
        return None
    return {
        "vicreg": vic.VICRegLoss(),  # 25/25/1, eps 1e-4
        "barlow_twins": bt.BarlowTwinsLoss(lambda_param=0.0051),  # official code's λ
    }


def _plain_vicreg(z1, z2):
    def v(z):
        return F.relu(1 - torch.sqrt(z.var(dim=0) + 1e-4)).mean()

    def c(z):
        zc = z - z.mean(0)
        cov = zc.T @ zc / (z.shape[0] - 1)
        return (cov.pow(2).sum() - cov.diagonal().pow(2).sum()) / z.shape[1]

    return 25 * F.mse_loss(z1, z2) + 25 * 0.5 * (v(z1) + v(z2)) + c(z1) + c(z2)


def _plain_barlow(z1, z2):
    def bn(z):
        return (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5)

    c = bn(z1).T @ bn(z2) / z1.shape[0]
    on = (c.diagonal() - 1).pow(2).sum()
    return on + 0.0051 * (c.pow(2).sum() - c.diagonal().pow(2).sum())


def _reference(name: str):
    lightly = _load_lightly()
    if lightly is not None:
        return lightly[name], "lightly"
    return {"vicreg": _plain_vicreg, "barlow_twins": _plain_barlow}[name], "plain (lightly unavailable)"


def _ours(name: str):
    import reglab

    return reglab.create(name, gather=False)


# ------------------------------------------------------------------ measuring
def _inputs(d: int, device: str):
    g = torch.Generator().manual_seed(0)
    z1 = torch.randn(BATCH, d, generator=g)
    z2 = z1 + 0.5 * torch.randn(BATCH, d, generator=g)
    return z1.to(device).requires_grad_(), z2.to(device).requires_grad_()


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _measure(impl: str, name: str, d: int, device: str, reps: int, out) -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    fn, label = _reference(name) if impl == "reference" else (_ours(name), "reglab")
    z1, z2 = _inputs(d, device)
    # CPU: the high-water mark over the whole run, warm-up included (large
    # allocations are mmapped and returned, so a later call would not raise it)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    # warm-up (also the value)
    loss = fn(z1, z2)
    loss.backward()
    value = float(loss.detach())
    z1.grad = z2.grad = None
    _sync(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = rss0
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        loss = fn(z1, z2)
        loss.backward()
        _sync(device)
        times.append(time.perf_counter() - t0)
        z1.grad = z2.grad = None
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        # growth of the RSS high-water mark: memory the loss needed beyond its inputs
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    out.put({"impl": label, "value": value, "ms": 1e3 * sorted(times)[len(times) // 2], "peak_mb": peak / 2**20})


def _run_isolated(impl, name, d, device, reps):
    if device == "cuda":  # CUDA peak stats are exact in-process; a reset is enough
        q = _ListQueue()
        _measure(impl, name, d, device, reps, q)
        return q.items[0]
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_measure, args=(impl, name, d, device, reps, q))
    p.start()
    res = q.get()
    p.join()
    return res


class _ListQueue:
    def __init__(self):
        self.items = []

    def put(self, x):
        self.items.append(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dims", type=int, nargs="+", default=[2048, 8192])
    args = ap.parse_args()
    print(f"# batch {BATCH}, float32, device {args.device}, median of {args.reps} forward+backward")
    print(f"{'loss':<13}{'d':>6}  {'impl':<28}{'value':>14}{'ms':>10}{'peak MB':>10}")
    for name in ("vicreg", "barlow_twins"):
        for d in args.dims:
            ref = _run_isolated("reference", name, d, args.device, args.reps)
            ours = _run_isolated("ours", name, d, args.device, args.reps)
            for r in (ref, ours):
                print(f"{name:<13}{d:>6}  {r['impl']:<28}{r['value']:>14.6f}{r['ms']:>10.2f}{r['peak_mb']:>10.1f}")
            rel = abs(ours["value"] - ref["value"]) / max(abs(ref["value"]), 1e-12)
            status = "OK" if rel <= 1e-5 else "MISMATCH"
            print(f"{'':<19}relative difference {rel:.2e} ({status}); speed-up x{ref['ms'] / ours['ms']:.2f}")


if __name__ == "__main__":
    main()
