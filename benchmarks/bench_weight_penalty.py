"""Cost of weight penalties next to a training step: ResNet-18, batch 32, CPU, 1 thread.

    python benchmarks/bench_weight_penalty.py [--quick] [--repeats 20] [--threads 1]

The step (denominator): ``zero_grad`` + forward + cross-entropy backward + ``SGD.step()``
of a CIFAR ResNet-18 (``models.py``) at batch 32. Each other row is the work one
configuration adds to that step, timed on its own (process CPU time, interleaved with
the step, median and IQR over the repeats; ``_harness.py``):

* ``SGD(weight_decay=5e-4)``, the reference: ``step()`` of an SGD with weight decay
  minus ``step()`` of one without (the cost of the built-in decay);
* ``L2 + GroupLasso``, ``mode="penalty"``: ``regs.penalty().backward()`` + ``regs.step()``;
* ``L2 + GroupLasso``, ``mode="grad"``: ``regs.add_grads()`` + ``regs.step()`` (λ∇R added
  to ``p.grad`` in place, no autograd graph);
* ``+ SoftOrthogonality`` (penalty mode, every step);
* ``+ SoftOrthogonality(every=16)`` (L2 + GroupLasso and SO in grad mode, SO applied on
  every 16th step with weight 16·λ): one sample is 16 consecutive steps, divided by 16.

L2(5e-4) on every weight, GroupLasso(1e-4) on the convolutions, SoftOrthogonality(1e-4)
on every weight. Rows that need ``regs.add_grads`` (mode="grad") are skipped, with a
note, where the installed reglab does not have it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

import reglab  # noqa: E402
from _harness import (  # noqa: E402
    add_common_args, fmt_ms, markdown_table, measure, ratio, resolve_repeats, write_results,
)
from models import ResNet18  # noqa: E402

NAME = "weight_penalty"


def _regs(model: nn.Module, mode: str, orthogonality: bool, every: int = 1):
    bindings = [reglab.L2(5e-4).on(mode=mode), reglab.GroupLasso(1e-4).on(modules=nn.Conv2d, mode=mode)]
    if orthogonality:
        bindings.append(reglab.SoftOrthogonality(1e-4).on(mode=mode, every=every))
    return reglab.attach(model, bindings)


def run(args: argparse.Namespace) -> dict:
    repeats = resolve_repeats(args)
    torch.manual_seed(0)
    widths = (8, 16, 32, 64) if args.quick else (64, 128, 256, 512)
    model = ResNet18(widths=widths)
    batch = 8 if args.quick else 32
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    opt_wd = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    has_grad_mode = hasattr(reglab.core.attach.RegularizerSet, "add_grads")

    def step():
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()

    step()  # every parameter has a .grad from here on
    with torch.no_grad():  # keep the weights where they were (the SGD steps above and below move them)
        snapshot = [p.detach().clone() for p in model.parameters()]

    def sgd_step():
        opt.step()

    def sgd_wd_step():
        opt_wd.step()

    def penalty_case(regs):
        def run_case():
            regs.penalty().backward()
            regs.step()

        return run_case

    def grad_case(regs, steps: int = 1):
        def run_case():
            for _ in range(steps):
                regs.add_grads()
                regs.step()

        return run_case

    cases = {"step": step, "sgd_step": sgd_step, "sgd_wd_step": sgd_wd_step}
    labels = {
        "l2_gl_penalty": "L2 + GroupLasso, mode=\"penalty\"",
        "l2_gl_grad": "L2 + GroupLasso, mode=\"grad\"",
        "l2_gl_so_penalty": "L2 + GroupLasso + SoftOrthogonality, mode=\"penalty\"",
        "l2_gl_so16_grad": "L2 + GroupLasso + SoftOrthogonality(every=16), mode=\"grad\"",
    }
    cases["l2_gl_penalty"] = penalty_case(_regs(model, "penalty", False))
    cases["l2_gl_so_penalty"] = penalty_case(_regs(model, "penalty", True))
    skipped = []
    if has_grad_mode:
        cases["l2_gl_grad"] = grad_case(_regs(model, "grad", False))
        cases["l2_gl_so16_grad"] = grad_case(_regs(model, "grad", True, every=16), steps=16)
    else:
        skipped = ["l2_gl_grad", "l2_gl_so16_grad"]
        print("# skipped: API not available (regs.add_grads is missing): mode=\"grad\" rows not measured")

    stats = measure(cases, repeats=repeats, warmup=args.warmup, threads=args.threads)
    if "l2_gl_so16_grad" in stats:  # per step: the sample covered 16 steps
        s = stats["l2_gl_so16_grad"]
        stats["l2_gl_so16_grad"] = type(s).from_samples([v / 16 for v in s.samples], number=16)
    with torch.no_grad():
        for p, v in zip(model.parameters(), snapshot):
            p.copy_(v)

    step_s = stats["step"]
    wd_ms = stats["sgd_wd_step"].median_ms - stats["sgd_step"].median_ms
    rows = [["training step (fwd + bwd + SGD.step), the denominator", fmt_ms(step_s), "100"]]
    rows.append([
        "SGD(weight_decay=5e-4) (reference: step with decay − step without)", f"{wd_ms:.2f}",
        f"{100 * wd_ms / step_s.median_ms:.2f}",
    ])
    pct = {}
    for key, label in labels.items():
        if key in skipped:
            rows.append([label, "skipped: API not available", "—"])
            continue
        r = ratio(stats[key], step_s)
        pct[key] = {"percent": 100 * r.value, "lo": 100 * r.lo, "hi": 100 * r.hi}
        rows.append([label, fmt_ms(stats[key]), f"{100 * r.value:.2f} [{100 * r.lo:.2f}, {100 * r.hi:.2f}]"])
    table = markdown_table(["what (per training step)", "ms, median (q25–q75)", "% of the step [90% CI]"], rows)
    model_desc = f"CIFAR ResNet-18 (widths {widths}), batch {batch}"
    md = (
        f"### Weight penalties next to a training step\n\n"
        f"`python benchmarks/bench_weight_penalty.py`: {model_desc}, CPU, {args.threads} thread(s); "
        f"process CPU time, median (q25–q75) over {repeats} interleaved repeats. L2(5e-4) on every weight, "
        f"GroupLasso(1e-4) on the convolutions, SoftOrthogonality(1e-4) on every weight; "
        f"targets: L2 + GroupLasso in mode=\"grad\" ≤ 1%, + SoftOrthogonality(every=16) ≤ 3%.\n\n{table}\n"
    )
    payload = {
        "description": "weight penalties next to a training step; times in seconds per call",
        "model": model_desc,
        "params": sum(p.numel() for p in model.parameters()),
        "repeats": repeats,
        "warmup": args.warmup,
        "stats": stats,
        "weight_decay_ms": wd_ms,
        "percent_of_step": pct,
        "skipped": skipped,
    }
    write_results(NAME, payload, md, args.results_dir, args.threads)
    print(md)
    return payload


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, repeats=20, warmup=2, threads=1)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    main()
