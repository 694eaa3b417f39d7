"""Does label smoothing or L2 help *my* model? An A/B on scikit-learn's wine data.

The lab never uses wine. The train function below is ordinary user code: the
seed draws the split, the initialization and the batch order, so the arms of
one seed form a pair. Run it with

    python examples/ab_wine.py                      # 10 seeds, report in reglab-ab-wine/

or from the command line (train receives None or a config dict there):

    reglab ab examples.ab_wine:train --arm plain=none --arm l2='{"name": "l2", "weight": 0.001}' \\
        --arm smoothing=label_smoothing --metric test_accuracy --min-effect 0.01 --seeds 10
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sklearn.datasets import load_wine
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import reglab
import reglab.functional as RF


def train(arm, seed: int) -> dict:
    if isinstance(arm, dict):  # from the command line: a config dict
        arm = reglab.from_config(arm)
    x, y = load_wine(return_X_y=True)
    x_rest, x_te, y_rest, y_te = train_test_split(x, y, test_size=0.3, random_state=seed, stratify=y)
    x_tr, x_va, y_tr, y_va = train_test_split(x_rest, y_rest, test_size=0.25, random_state=seed, stratify=y_rest)
    scaler = StandardScaler().fit(x_tr)
    t = lambda a: torch.tensor(scaler.transform(a), dtype=torch.float32)  # noqa: E731
    x_tr, x_va, x_te = t(x_tr), t(x_va), t(x_te)
    y_tr, y_va, y_te = (torch.tensor(v) for v in (y_tr, y_va, y_te))

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(13, 64), torch.nn.ReLU(), torch.nn.Linear(64, 3))
    weight_reg = arm if getattr(arm, "kind", None) == "weight" else None
    regs = reglab.attach(model, [weight_reg]) if weight_reg is not None else None
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(60):
        for idx in torch.randperm(len(y_tr), generator=gen).split(16):
            logits = model(x_tr[idx])
            if getattr(arm, "name", None) == "label_smoothing":
                loss = RF.soft_cross_entropy(logits, arm(y_tr[idx], 3))
            else:
                loss = F.cross_entropy(logits, y_tr[idx])
            if regs is not None:
                loss = loss + regs.penalty()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = lambda a, b: float((model(a).argmax(1) == b).float().mean())  # noqa: E731
        return {"test_accuracy": acc(x_te, y_te), "val_accuracy": acc(x_va, y_va)}


if __name__ == "__main__":
    result = reglab.ab(
        train,
        {"plain": None, "l2": reglab.L2(1e-3), "smoothing": reglab.create("label_smoothing")},
        metric="test_accuracy",
        min_effect=0.01,  # one point of accuracy
        seeds=10,
        out="reglab-ab-wine",
        tune={"l2": {"weight": [1e-4, 1e-3, 1e-2]}},
    )
    print(result)
    print("report:", result.report("reglab-ab-wine")[0])
