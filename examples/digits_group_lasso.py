"""Structured sparsity with a proximal group lasso on a small digits CNN.

    python examples/digits_group_lasso.py [--lam 5e-3] [--epochs 30]

Binds ``L2(5e-4)`` as a loss term on every weight and ``GroupLasso(λ)`` in
proximal mode on the conv layers: after each SGD step, every filter is
shrunk by group soft thresholding with threshold lr·λ·√(filter size), so
filters the loss does not defend reach exactly zero.

Choosing λ: a conv2 filter has p = 16·3·3 = 144 weights (√p = 12) and starts
with norm ≈ 0.58 (PyTorch's default init gives each weight variance 1/(3p)).
With lr = 0.05 and 20 steps per epoch over 30 epochs (600 steps), the prox
removes up to 600·0.05·λ·12 = 360·λ of norm from an undefended filter, so
λ = 5e-3 (1.8 in total, three times the initial norm) zeroes the filters the loss
does not need, while a useful filter's gradient easily outweighs the
0.05·λ·12 = 3e-3 shrinkage per step. (λ = 0 gives no zero filters.)
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import reglab
from reglab.bench.data import digits


def make_model() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 10),
    )  # fmt: skip


def zero_filter_fraction(model: nn.Module) -> tuple[int, int]:
    zero = total = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            norms = m.weight.detach().flatten(1).norm(dim=1)
            zero += int((norms == 0).sum())
            total += norms.numel()
    return zero, total


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lam", type=float, default=5e-3, help="group lasso weight λ")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    torch.set_num_threads(min(2, torch.get_num_threads()))
    torch.manual_seed(args.seed)
    data = digits(args.seed)
    x_train, x_test = data.images(data.x_train), data.images(data.x_test)
    model = make_model()
    regs = reglab.attach(
        model, [reglab.L2(5e-4), reglab.GroupLasso(args.lam).on(modules=nn.Conv2d, mode="prox")]
    )
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    gen = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        for idx in torch.randperm(len(x_train), generator=gen).split(64):
            loss = nn.functional.cross_entropy(model(x_train[idx]), data.y_train[idx]) + regs.penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
            regs.step(opt)  # the proximal group-lasso step on the conv filters
    model.eval()
    with torch.no_grad():
        acc = (model(x_test).argmax(1) == data.y_test).float().mean().item()
    zero, total = zero_filter_fraction(model)
    result = {"lam": args.lam, "test_accuracy": acc, "zero_filters": zero, "filters": total,
              "zero_fraction": zero / total, "seconds": time.perf_counter() - start}  # fmt: skip
    print(f"λ = {args.lam:g}: test accuracy {acc:.3f}, conv filters exactly zero: "
          f"{zero}/{total} ({100 * zero / total:.0f}%), {result['seconds']:.1f} s")  # fmt: skip
    return result


if __name__ == "__main__":
    main()
