"""Cost of the fused weight penalties next to a training step (CPU, 2 threads).

    python benchmarks/bench_weight_penalty.py [--repeats 5] [--out result.json]

(a) one forward+backward of a CIFAR ResNet-18 at batch 32;
(b) ``regs.penalty()`` forward+backward for L2(5e-4) + GroupLasso(1e-4) on
    the convs + SoftOrthogonality(1e-4), all through the fused functions (one call on the list of tensors);
(c) the same value by a naive loop: one plain-autograd expression per
    parameter (½‖w‖², Σ√p‖row‖, ‖G − I‖²_F), what a user would write by hand.
Reports the median over repeats after one warm-up and checks (b) == (c).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reglab  # noqa: E402
from models import ResNet18  # noqa: E402


def naive_l2(w: torch.Tensor) -> torch.Tensor:
    return 0.5 * w.pow(2).sum()


def naive_group_lasso(w: torch.Tensor) -> torch.Tensor:
    rows = w.reshape(w.shape[0], -1)
    return rows.shape[1] ** 0.5 * rows.norm(dim=1).sum()


def naive_soft_orthogonality(w: torch.Tensor) -> torch.Tensor:
    m = w.reshape(w.shape[0], -1)
    m = m.T if m.shape[0] > m.shape[1] else m
    g = m @ m.T
    return (g - torch.eye(g.shape[0])).pow(2).sum()


def timed(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Median ms per function; the functions are interleaved in every repeat so
    that load from other processes on a shared CPU hits all of them alike."""
    outs = {k: fn() for k, fn in fns.items()}  # warm-up
    times: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            outs[k] = fn()
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}, outs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = ResNet18()
    x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
    regs = reglab.attach(
        model,
        [reglab.L2(5e-4), reglab.GroupLasso(1e-4).on(modules=nn.Conv2d), reglab.SoftOrthogonality(1e-4)],
    )
    bindings = [(b.regularizer, [p for _, p in regs.parameters_of(n)]) for n, b in zip(regs._names, regs.bindings)]
    naive_fn = {"l2": naive_l2, "group_lasso": naive_group_lasso, "soft_orthogonality": naive_soft_orthogonality}

    def step():
        model.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        return None

    def fused():
        model.zero_grad(set_to_none=True)
        value = regs.penalty()
        value.backward()
        return value.detach()

    def naive():
        model.zero_grad(set_to_none=True)
        total = torch.zeros(())
        for reg, params in bindings:
            fn = naive_fn[reg.name]
            for p in params:
                total = total + reg.current_weight * fn(p)
        total.backward()
        return total.detach()

    ms, outs = timed({"step": step, "fused": fused, "naive": naive}, args.repeats)
    step_ms, fused_ms, naive_ms = ms["step"], ms["fused"], ms["naive"]
    fused_value, naive_value = outs["fused"], outs["naive"]
    rel = abs(float(fused_value) - float(naive_value)) / abs(float(naive_value))
    result = {
        "model": "ResNet-18 (CIFAR, BasicBlock [2,2,2,2], 64-512)",
        "params": sum(p.numel() for p in model.parameters()),
        "batch": 32,
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "step_ms": step_ms,
        "fused_ms": fused_ms,
        "naive_ms": naive_ms,
        "fused_pct_of_step": 100 * fused_ms / step_ms,
        "naive_pct_of_step": 100 * naive_ms / step_ms,
        "fused_value": float(fused_value),
        "naive_value": float(naive_value),
        "relative_difference": rel,
        "values_match": rel <= 1e-5,
    }
    print(f"ResNet-18, batch 32, {args.threads} threads, median of {args.repeats} interleaved repeats after warm-up\n")
    print("| what | ms | % of step |")
    print("|---|---:|---:|")
    print(f"| (a) forward+backward | {step_ms:.1f} | 100.0 |")
    print(f"| (b) fused regs.penalty() fwd+bwd | {fused_ms:.1f} | {result['fused_pct_of_step']:.1f} |")
    print(f"| (c) naive per-parameter loop fwd+bwd | {naive_ms:.1f} | {result['naive_pct_of_step']:.1f} |")
    print(f"\nvalues: fused {float(fused_value):.6f}, naive {float(naive_value):.6f}, rel. diff {rel:.1e}")
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=2))
    if not result["values_match"]:
        raise SystemExit(f"fused and naive penalties differ: relative difference {rel:.2e} > 1e-5")
    return result


if __name__ == "__main__":
    main()
