"""Values of every public regularizer on fixed float64 inputs, to freeze them across refactors.

``capture()`` evaluates every registry entry (single tensor, list of tensors
and attached, with gradients, for the weight penalties; value, input
gradients and components for the others; a few optimizer steps for SAM and
AMP; fit_transform for the post-hoc transforms) and every public function of
``reglab.functional``. ``values_d725890.npz`` holds what the code before the
"one paper, one file" restructure (commit d725890) returned; run this module
as a script to write the file for the current code.
"""

from __future__ import annotations

import sys
import types

import numpy as np
import torch
from torch import nn

import reglab
import reglab.functional as RF


def capture(registered: set[str] | None = None) -> tuple[dict[str, list[np.ndarray]], dict[str, list[str]]]:
    """(values by key, public names) for the reglab that is imported; ``registered`` limits the registry
    entries evaluated (the frozen file's: names added since are covered by their own reference tests)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        return _capture(registered)
    finally:
        torch.set_default_dtype(previous)


#: defaults corrected since d725890 (issue 15: the official recipes); the frozen values used the old
#: ones, and the formula, not the default, is what this file freezes
OLD_DEFAULTS = {"dispersive": {"weight": 1.0}, "gradient_norm": {"weight": 0.1, "r": 0.01}}


def _capture(registered=None):
    out = {}

    def rec(key, *vals):
        arrs = []
        for v in vals:
            if isinstance(v, torch.Tensor):
                arrs.append(v.detach().double().numpy().copy())
            elif isinstance(v, np.ndarray):
                arrs.append(v.astype(np.float64).copy())
            elif isinstance(v, (tuple, list)):
                arrs.extend(np.asarray(x.detach().double().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64) for x in v)
            else:
                arrs.append(np.asarray(float(v)))
        out[key] = arrs

    def gen(seed, *shape):
        g = torch.Generator().manual_seed(seed)
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    names = {
        "reglab": sorted(n for n in dir(reglab) if not n.startswith("_") and not isinstance(getattr(reglab, n), types.ModuleType)),
        "functional": sorted(n for n in dir(RF) if not n.startswith("_") and not isinstance(getattr(RF, n), types.ModuleType) and getattr(getattr(RF, n), "__module__", "").startswith("reglab")),
        "registry": reglab.list_regularizers(),
    }

    W = [gen(1, 6, 5), gen(2, 4, 3, 3, 3), gen(3, 7, 4)]
    Z1, Z2 = gen(4, 16, 8), gen(5, 16, 8)
    ZW = gen(6, 6, 20)
    L1_, L2_ = gen(7, 10, 4), gen(8, 10, 4)
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0, 1])
    index = torch.arange(10)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(16, 6)
            self.out = nn.Linear(6, 5)
        def forward(self, x):
            return self.out(torch.relu(self.fc(torch.relu(self.conv(x)).flatten(1))))

    for name in reglab.list_regularizers():
        if registered is not None and name not in registered:
            continue
        cls = reglab.info(name).cls
        kind, form = cls.kind, cls.form
        torch.manual_seed(123)
        try:
            if kind == "weight":
                if name == "l2_sp":
                    net = Net()
                    regs = reglab.attach(net, [reglab.create(name)])
                    with torch.no_grad():
                        for p in net.parameters():
                            p.add_(0.1 * torch.randn_like(p))
                    v = regs.penalty(); v.backward()
                    rec(name + "/attached", v, [p.grad for p in net.parameters() if p.grad is not None])
                    continue
                reg = reglab.create(name)
                ws = [w.clone().requires_grad_() for w in W]
                singles = [reg(w) for w in ws]
                rec(name + "/single", singles)
                torch.manual_seed(123)
                reg = reglab.create(name)
                ws = [w.clone().requires_grad_() for w in W]
                many = reg(ws); many.backward()
                rec(name + "/many", many, [w.grad for w in ws])
                torch.manual_seed(123)
                net = Net()
                regs = reglab.attach(net, [reglab.create(name)])
                v = regs.penalty(); v.backward()
                rec(name + "/attached", v, [p.grad for p in net.parameters() if p.grad is not None])
            elif kind == "representation":
                reg = reglab.create(name, **OLD_DEFAULTS.get(name, {}))
                z1, z2 = Z1.clone().requires_grad_(), Z2.clone().requires_grad_()
                args = (z1, z2) if cls.num_inputs == 2 else (z1,)
                v = reg(*args); v.backward()
                comps = reg.components(*[a.detach() for a in args])
                rec(name, v, [a.grad for a in args], list(comps))
            elif name == "elr":
                reg = reglab.create(name, num_samples=10, num_classes=4)
                lg = L1_.clone().requires_grad_()
                v1 = reg(lg, index); v2 = reg(lg, index); (v1 + v2).backward()
                rec(name, v1, v2, lg.grad, reg.targets)
            elif name == "pskd":
                reg = reglab.create(name, num_samples=10, num_classes=4, total_epochs=5)
                t1 = reg(labels, index, L1_); reg.next_epoch(); t2 = reg(labels, index, L2_)
                rec(name, t1, t2)
            elif name == "label_smoothing":
                rec(name, reglab.create(name)(labels, 4))
            elif name == "logit_clip":
                lg = (3 * L1_).clone().requires_grad_(); v = reglab.create(name)(lg); v.sum().backward()
                rec(name, v, lg.grad)
            elif kind == "output":
                reg = reglab.create(name)
                a, b = L1_.clone().requires_grad_(), L2_.clone().requires_grad_()
                args = (a, b) if cls.num_inputs == 2 else (a,)
                v = reg(*args); v.backward()
                rec(name, v, [x.grad for x in args])
            elif name == "multi_sample_dropout":
                torch.manual_seed(0)
                head = nn.Linear(8, 4)
                reg = reglab.create(name, module=head)
                torch.manual_seed(5)
                v = reg.loss(Z1, labels.repeat(2)[:16]); rec(name, v)
            elif name == "scheduled_drop_path":
                reg = reglab.create(name, total_steps=10)
                for _ in range(4): reg.step()
                torch.manual_seed(5); rec(name, reg(Z1))
            elif kind == "stochastic":
                reg = reglab.create(name)
                x = gen(9, 4, 3, 20, 20) if name == "cutout" else Z1
                torch.manual_seed(5); rec(name, reg(x))
            elif name in ("sam", "amp_perturbation"):
                net = Net()
                opt = reglab.create(name, params=net.parameters(), lr=0.1)
                x = gen(10, 8, 3, 4, 4); y = torch.randint(0, 5, (8,), generator=torch.Generator().manual_seed(1))
                def closure():
                    l = nn.functional.cross_entropy(net(x), y); l.backward(); return l
                for _ in range(3):
                    opt.step(closure)
                rec(name, [p.detach() for p in net.parameters()])
            elif name == "gradient_norm":
                net = Net()
                x = gen(10, 8, 3, 4, 4); y = torch.randint(0, 5, (8,), generator=torch.Generator().manual_seed(1))
                loss = nn.functional.cross_entropy(net(x), y)
                reg = reglab.create(name, **OLD_DEFAULTS[name])
                v = reg.penalty(loss, net)
                reg2 = reglab.create(name, method="finite_difference", **OLD_DEFAULTS[name])
                net.zero_grad()
                reg2.backward(lambda: nn.functional.cross_entropy(net(x), y), net)
                rec(name, v, [p.grad for p in net.parameters()])
            elif kind == "embedding":
                X = gen(11, 200, 12).numpy() * np.linspace(0.1, 3, 12) + 2.0
                if name == "embedding_pipeline":
                    obj = reglab.create(name, steps=[{"name": "center"}, {"name": "whitening"}])
                else:
                    obj = reglab.create(name)
                if name == "zipfian_whitening":
                    rec(name, obj.fit_transform(X, frequencies=np.arange(1, 201)))
                else:
                    rec(name, obj.fit_transform(X))
            else:
                print("UNCOVERED", name)
        except Exception as e:
            print("FAILED", name, type(e).__name__, e)
            raise

    # functional calls
    w = W[1]
    calls = {
        "l1": lambda: RF.l1(w), "l2": lambda: RF.l2(w), "elastic_net": lambda: RF.elastic_net(w, 0.3),
        "group_lasso": lambda: RF.group_lasso(w), "group_lasso_in": lambda: RF.group_lasso(w, "in"),
        "group_lasso_map": lambda: RF.group_lasso(W[0], torch.arange(30).reshape(6, 5) % 4),
        "group_lasso_global": lambda: RF.group_lasso_global(W),
        "sparse_group_lasso": lambda: RF.sparse_group_lasso(w, 0.5, "in"),
        "soft_orthogonality": lambda: RF.soft_orthogonality(w), "soft_orthogonality_tall": lambda: RF.soft_orthogonality(W[2]),
        "srip": lambda: RF.srip(w, torch.ones(4) / 2), "norm_loss": lambda: RF.norm_loss(w),
        "mhe": lambda: RF.mhe(w, 1.0, True), "mhe0": lambda: RF.mhe(W[2]),
        "spectral_norm": lambda: RF.spectral_norm(w, torch.ones(4) / 2), "nuclear_norm": lambda: RF.nuclear_norm(w),
        "l2_sp": lambda: RF.l2_sp(w, w * 0.5),
        "vicreg": lambda: RF.vicreg(Z1, Z2), "vicreg_terms": lambda: RF.vicreg_terms(Z1, Z2),
        "vicreg_wide": lambda: RF.vicreg(ZW, ZW * 0.5 + 0.1),
        "vcreg": lambda: RF.vcreg(Z1), "vcreg_terms": lambda: RF.vcreg_terms(ZW),
        "barlow_twins": lambda: RF.barlow_twins(Z1, Z2), "barlow_twins_terms": lambda: RF.barlow_twins_terms(ZW, ZW + 0.3),
        "alignment": lambda: RF.alignment(Z1, Z2, alpha=3.0), "uniformity": lambda: RF.uniformity(Z1, t=1.5),
        "mhe_features": lambda: RF.mhe_features(Z1, s=2.0), "vne": lambda: RF.vne(Z1),
        "spectral_entropy": lambda: RF.spectral_entropy(Z1), "effective_rank": lambda: RF.effective_rank(Z1),
        "dispersive": lambda: RF.dispersive(Z1, tau=0.5), "flops": lambda: RF.flops(Z1),
        "l1_activation": lambda: RF.l1_activation(Z1), "least_volume": lambda: RF.least_volume(Z1),
        "ldreg": lambda: RF.ldreg(ZW.T.contiguous(), k=5), "ldreg_terms": lambda: RF.ldreg_terms(Z1, k=4),
        "variance_hinge": lambda: RF.variance_hinge(Z1), "covariance_offdiag": lambda: RF.covariance_offdiag(ZW),
        "elr": lambda: RF.elr(L1_, L2_.softmax(1)), "entropy": lambda: RF.entropy(L1_),
        "confidence_penalty": lambda: RF.confidence_penalty(L1_), "consistency": lambda: RF.consistency(L1_, L2_),
        "logit_clip": lambda: RF.logit_clip(3 * L1_, 1.5, 1.0), "smooth_labels": lambda: RF.smooth_labels(labels, 4, 0.2),
        "soft_cross_entropy": lambda: RF.soft_cross_entropy(L1_, L2_.softmax(1)),
    }
    for k, f in calls.items():
        v = f()
        rec("RF/" + k, *(list(v) if isinstance(v, tuple) else [v]))
    missing = set(names["functional"]) - set(calls) - {"VICRegTerms", "VCRegTerms", "BarlowTwinsTerms", "LDRegTerms"}
    return out, names


def save(path: str) -> None:
    values, names = capture()
    arrays = {f"{key}||{i}": a for key, vals in values.items() for i, a in enumerate(vals)}
    arrays.update({f"names||{k}": np.array(v) for k, v in names.items()})
    np.savez_compressed(path, **arrays)


def load(path: str) -> tuple[dict[str, list[np.ndarray]], dict[str, list[str]]]:
    data = np.load(path)
    values: dict[str, list[np.ndarray]] = {}
    names: dict[str, list[str]] = {}
    for key in sorted(data.files, key=lambda k: (k.rsplit("||", 1)[0], int(k.rsplit("||", 1)[1]) if not k.startswith("names||") else 0)):
        if key.startswith("names||"):
            names[key.split("||", 1)[1]] = [str(x) for x in data[key]]
        else:
            base, i = key.rsplit("||", 1)
            values.setdefault(base, []).append(data[key])
    return values, names


if __name__ == "__main__":
    save(sys.argv[1])
