"""A train function the lab has never seen, for the A/B tests: linear regression with
30 features and 40 training samples (ordinary least squares overfits; ridge helps)."""

from __future__ import annotations

import os

import torch

import reglab

CALLS: list[tuple[str, int]] = []  # (arm description, seed) of every call in this process


def train(arm, seed: int) -> dict:
    if isinstance(arm, dict) and "name" in arm:  # from the command line: a config dict
        arm = reglab.from_config(arm)
    CALLS.append((repr(arm), seed))
    if os.environ.get("AB_TRAIN_LOG"):
        with open(os.environ["AB_TRAIN_LOG"], "a") as f:
            f.write(f"{seed}\n")
    g = torch.Generator().manual_seed(seed)  # the seed draws the data, its split and the init
    w_true = 0.5 * torch.randn(30, generator=g)
    x = torch.randn(300, 30, generator=g)
    y = x @ w_true + 2.0 * torch.randn(300, generator=g)
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = (x[:36], y[:36]), (x[36:100], y[36:100]), (x[100:], y[100:])
    torch.manual_seed(seed)
    model = torch.nn.Linear(30, 1)
    regs = reglab.attach(model, arm if isinstance(arm, list) else [arm]) if arm is not None else None
    opt = torch.optim.LBFGS(model.parameters(), lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x_tr).squeeze(1), y_tr)
        if regs is not None:
            loss = loss + regs.penalty()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        mse = lambda a, b: float(torch.nn.functional.mse_loss(model(a).squeeze(1), b))  # noqa: E731
        return {"test_mse": mse(x_te, y_te), "val_mse": mse(x_va, y_va)}


def train_raises_on_seed_3(arm, seed: int) -> dict:
    if arm is not None and seed == 3:
        raise RuntimeError("out of memory (simulated)")
    return train(arm, seed)


def train_without_the_metric(arm, seed: int) -> dict:
    out = train(arm, seed)
    if arm is not None:
        out.pop("test_mse")
    return out


def train_nan(arm, seed: int) -> dict:
    out = train(arm, seed)
    if arm is not None and seed == 1:
        out["test_mse"] = float("nan")
    return out


def train_hangs(arm, seed: int) -> dict:
    """Trivial metrics, except arm "hang" at seed 1: it starts a child process, writes both pids to
    $AB_HANG_PIDS, and never returns (as a deadlocked training would)."""
    if arm == "hang" and seed == 1:
        import subprocess
        import sys
        import time

        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(10**6)"])
        path = os.environ["AB_HANG_PIDS"]
        with open(path + ".tmp", "w") as f:
            f.write(f"{os.getpid()} {child.pid}\n")
        os.replace(path + ".tmp", path)  # appears whole: the test waits for it
        while True:
            time.sleep(3600)
    return {"m": 0.1 * seed + (1.0 if arm is not None else 0.0)}


def train_returns(arm, seed: int) -> dict:
    """The decisive metric as whatever $AB_METRIC_KIND says for the arm (a string, a bool, ...)."""
    value = 0.1 * seed + (1.0 if arm is not None else 0.0)
    if arm is not None:
        kind = os.environ.get("AB_METRIC_KIND", "float")
        value = {"str": f"{value}", "bool": True, "tensor": torch.tensor(value), "float": value}[kind]
    return {"m": value, "note": "extras that are not numbers are fine"}
