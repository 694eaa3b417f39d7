"""mode="grad": closed-form gradients added in place by ``regs.add_grads()``.

* each ``grad_`` equals autograd of the method's pure function (float64, rel 1e-6) on the
  shapes the generic tests use, and returns the same value;
* a training run in grad mode equals one in penalty mode (plain, AMP GradScaler, gradient
  accumulation, DDP), including parameters without a grad and frozen ones;
* the API's errors: unsupported regularizers, activations, global scope, a second call per
  step, a scaler after ``unscale_``.
"""

from __future__ import annotations

import copy
import gc
import json
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import reglab
from reglab.core.registry import get
from reglab.ops.grads import add_scaled_

#: Every weight regularizer with a closed-form gradient (the ones issue 12 lists).
GRAD_NAMES = [
    "l1", "l2", "elastic_net", "group_lasso", "sparse_group_lasso", "soft_orthogonality", "norm_loss", "l2_sp",
    "spectral_norm", "srip",
]  # fmt: skip
#: Shapes of tests/methods/test_every_method.py: Linear, Conv2d, Conv1d, tall Linear.
SHAPES = [(5, 4), (4, 3, 3, 3), (3, 2, 3), (7, 3)]
#: Hyperparameter variants beyond the defaults.
VARIANTS = [
    ("group_lasso", {"groups": "in"}), ("group_lasso", {"scale": "none"}), ("sparse_group_lasso", {"groups": "in"}),
    ("elastic_net", {"l1_ratio": 0.2}), ("sparse_group_lasso", {"alpha": 0.3}),
]  # fmt: skip
CASES = [(n, {}) for n in GRAD_NAMES] + VARIANTS


def _weights(seed: int, shapes=SHAPES, dtype=torch.float64) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=dtype) for s in shapes]


def _pair(name: str, kwargs: dict, ws: list[torch.Tensor]):
    """Two instances with identical state (anchors at ``ws`` shifted, same power-iteration vectors)."""
    torch.manual_seed(0)
    a = reglab.create(name, **kwargs)
    leaves = [(w + 0.1 * torch.randn_like(w)).requires_grad_(True) for w in ws]
    if hasattr(a, "setup"):
        a.setup([(f"p{i}", w) for i, w in enumerate(ws)])  # anchors at ws (L2-SP)
        state = copy.deepcopy(a.state_dict())
        a = reglab.create(name, **kwargs)
        a.setup([(f"p{i}", w) for i, w in enumerate(leaves)])
        a.load_state_dict(state)
    b = copy.deepcopy(a)
    if hasattr(b, "setup"):
        b._slots = {}
        b.setup([(f"p{i}", w) for i, w in enumerate(leaves)])
    return a, b, leaves


@pytest.mark.parametrize("name,kwargs", CASES, ids=[f"{n}-{k}" if k else n for n, k in CASES])
def test_grad_equals_autograd_of_the_pure_function(name, kwargs):
    reg_auto, reg_grad, leaves = _pair(name, kwargs, _weights(3))
    value = reg_auto.penalty(leaves)
    value.backward()
    grads = [torch.full_like(w, 0.25) for w in leaves]  # added to, not overwritten
    got = reg_grad.grad_(leaves, grads, 0.7)
    assert not got.requires_grad
    torch.testing.assert_close(got, value.detach(), rtol=1e-10, atol=0)
    for g, w in zip(grads, leaves):
        torch.testing.assert_close(g, 0.25 + 0.7 * w.grad, rtol=1e-6, atol=1e-12)
    # power-iteration vectors advance exactly as in penalty mode
    for (k, a), (_, b) in zip(reg_auto.state_dict().items(), reg_grad.state_dict().items()):
        if isinstance(a, torch.Tensor):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=k)


@pytest.mark.parametrize("name", ["group_lasso", "sparse_group_lasso", "norm_loss", "l1"])
def test_zero_groups_get_the_autograd_subgradient(name):
    ws = _weights(4)
    for w in ws:
        w[0].zero_()  # an all-zero output unit (and zero elements)
    reg_auto, reg_grad, _ = _pair(name, {}, ws)
    leaves = [w.clone().requires_grad_(True) for w in ws]
    reg_auto.penalty(leaves).backward()
    grads = [torch.zeros_like(w) for w in leaves]
    reg_grad.grad_(leaves, grads, 1.0)
    for g, w in zip(grads, leaves):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, w.grad, rtol=1e-6, atol=1e-12)


def test_group_map_gradient_equals_autograd():
    w = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    ids = torch.randint(0, 3, (4, 6)) * 2  # non-contiguous ids
    for scale in ("sqrt", "none"):
        reg = reglab.create("group_lasso", groups=ids, scale=scale)
        w.grad = None
        value = reg.penalty(w)
        value.backward()
        g = torch.zeros_like(w)
        torch.testing.assert_close(reg.grad_([w], [g], 1.0), value.detach())
        torch.testing.assert_close(g, w.grad, rtol=1e-6, atol=1e-12)


def test_l2_sp_new_parameters_gradient():
    shared, new = torch.randn(4, 3, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    reg = reglab.create("l2_sp", new_params="head.*", beta_ratio=0.5)
    reg.setup([("body.w", shared), ("head.w", new)])
    with torch.no_grad():
        shared.add_(0.3)
    expected = [shared - (shared - 0.3), 0.5 * new]
    grads = [torch.zeros_like(shared), torch.zeros_like(new)]
    value = reg.grad_([shared, new], grads, 2.0)
    torch.testing.assert_close(value, 0.5 * (0.3**2) * 12 + 0.25 * new.pow(2).sum())
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, 2.0 * e)


def test_low_precision_weights_get_float32_math_added_to_their_grads():
    ws = [w.bfloat16() for w in _weights(5)]
    grads = [torch.zeros_like(w) for w in ws]
    value = reglab.create("soft_orthogonality").grad_(ws, grads, 1.0)
    assert value.dtype == torch.float32 and all(g.dtype == torch.bfloat16 for g in grads)
    exact = [torch.zeros_like(w, dtype=torch.float32) for w in ws]
    reglab.create("soft_orthogonality").grad_([w.float() for w in ws], exact, 1.0)
    for g, e in zip(grads, exact):
        torch.testing.assert_close(g.float(), e, rtol=1e-2, atol=1e-2)


def test_tensor_alpha_scales_without_reading_it():
    grads, ups = [torch.ones(3), torch.ones(2)], [torch.full((3,), 2.0), torch.full((2,), 3.0)]
    add_scaled_(grads, ups, torch.tensor(4.0))
    torch.testing.assert_close(grads[0], torch.full((3,), 9.0))
    torch.testing.assert_close(grads[1], torch.full((2,), 13.0))


# ----------------------------------------------------------------------------- the API
def test_unsupported_regularizers_name_the_supported_ones():
    for name in ("mhe", "nuclear_norm"):
        with pytest.raises(ValueError, match=r"no closed-form gradient.*supports: .*l2.*soft_orthogonality"):
            reglab.create(name).on(mode="grad")
    base = reglab.WeightRegularizer.grad_
    supported = {n for n in reglab.list_regularizers("weight") if getattr(get(n), "grad_", base) is not base}
    assert set(GRAD_NAMES) <= supported
    with pytest.raises(ValueError, match="not activations"):
        reglab.L2().on(activations="x", mode="grad")
    with pytest.raises(ValueError, match="per tensor"):
        reglab.create("group_lasso").on(mode="grad", scope="global")
    with pytest.raises(ValueError, match="mode must be one of"):
        reglab.L2().on(mode="gradient")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(6, 8)
        self.b = nn.Linear(8, 5)
        self.c = nn.Conv1d(2, 4, 3)  # unused in forward: no grad this step
        self.c.weight.data.mul_(3.0)  # away from the soft-orthogonality minimum

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


def _bindings(mode: str, every: int = 1, power_iteration: bool = True):
    return [
        reglab.L2(0.05).on(mode=mode, every=every),
        reglab.create("group_lasso", weight=0.01).on(params="a.weight", mode=mode, every=every),
        reglab.create("soft_orthogonality", weight=0.01).on(params=["b.weight", "c.weight"], mode=mode, every=every),
    ] + ([reglab.create("srip", weight=0.01).on(params="a.weight", mode=mode, every=every)] if power_iteration else [])


def _train(mode: str, steps: int = 4, every: int = 1, micro: int = 1, scaler=None, freeze=False):
    torch.manual_seed(0)
    model = Net().double()
    # penalty mode advances a power iteration once per penalty() call, i.e. per micro-batch
    regs = reglab.attach(model, _bindings(mode, every, power_iteration=micro == 1))
    if freeze:
        model.b.weight.requires_grad_(False)  # frozen after attach
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(1)
    logs = []
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        for _ in range(micro):
            x = torch.randn(4, 6, generator=g, dtype=torch.float64)
            loss = (model(x).pow(2).mean() + regs.penalty()) / micro
            (scaler.scale(loss) if scaler is not None else loss).backward()
        regs.add_grads(scaler)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        regs.step(opt)
        logs.append({k: float(v) for k, v in regs.last.items()})
    return model, logs


def _assert_same(a: nn.Module, b: nn.Module, rtol=1e-10):
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=rtol, atol=1e-12, msg=n)


def test_training_in_grad_mode_equals_penalty_mode_and_logs_the_same_values():
    a, la = _train("penalty")
    b, lb = _train("grad")
    _assert_same(a, b)
    for x, y in zip(la, lb):
        assert x == pytest.approx(y, rel=1e-10)
    assert set(lb[0]) == {"l2", "group_lasso", "soft_orthogonality", "srip"}
    # the unused conv weight got λ∇R in both modes (its grad was None before add_grads)
    assert not torch.equal(b.c.weight, Net().double().c.weight)


def test_parameter_without_grad_gets_one():
    model = Net().double()
    regs = reglab.attach(model, reglab.create("soft_orthogonality", weight=0.5).on(params="c.weight", mode="grad"))
    assert model.c.weight.grad is None
    regs.add_grads()
    w = model.c.weight.detach().clone().requires_grad_(True)
    (0.5 * reglab.functional.soft_orthogonality(w)).backward()
    torch.testing.assert_close(model.c.weight.grad, w.grad)


def test_frozen_parameters_are_skipped():
    a, _ = _train("penalty", freeze=True)
    b, _ = _train("grad", freeze=True)
    _assert_same(a, b)
    torch.testing.assert_close(b.b.weight, Net().double().b.weight)  # never moved
    assert b.b.weight.grad is None


def test_gradient_accumulation_adds_once_per_optimizer_step():
    a, _ = _train("penalty", micro=3)
    b, _ = _train("grad", micro=3)
    _assert_same(a, b)
    model = Net().double()
    regs = reglab.attach(model, reglab.L2(0.1).on(mode="grad"))
    regs.add_grads()
    with pytest.raises(RuntimeError, match="once per optimizer step"):
        regs.add_grads()  # e.g. called per micro-batch
    regs.step()
    regs.add_grads()  # the next step is fine


def test_amp_grad_scaler_scales_the_added_gradient():
    a, _ = _train("penalty", scaler=torch.amp.GradScaler("cpu", init_scale=1024.0))
    b, _ = _train("grad", scaler=torch.amp.GradScaler("cpu", init_scale=1024.0))
    _assert_same(a, b, rtol=1e-9)
    c, _ = _train("grad")
    _assert_same(b, c, rtol=1e-9)  # no overflow here: scaling is invisible in the result


def test_scaler_after_unscale_raises_and_without_it_is_right():
    model = Net().double()
    regs = reglab.attach(model, reglab.L2(0.1).on(params="a.weight", mode="grad"))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    scaler.scale(model(torch.randn(2, 6, dtype=torch.float64)).sum()).backward()
    before = model.a.weight.grad.clone() / 8.0
    scaler.unscale_(opt)
    with pytest.raises(ValueError, match="already unscaled"):
        regs.add_grads(scaler)
    regs.add_grads()
    torch.testing.assert_close(model.a.weight.grad, before + 0.1 * model.a.weight.detach())


def test_penalty_skips_grad_bindings_and_keeps_their_logged_values():
    model = Net().double()
    regs = reglab.attach(model, [reglab.L2(0.1).on(mode="grad"), reglab.create("l1", weight=0.01)])
    regs.add_grads()
    assert set(regs.last) == {"l2"}
    total = regs.penalty()
    torch.testing.assert_close(total, 0.01 * reglab.functional.l1([p for _, p in regs.parameters_of("l1")]))
    assert set(regs.last) == {"l2", "l1"}


def test_config_round_trip_keeps_mode_and_every():
    model = Net()
    regs = reglab.attach(model, reglab.L2(0.1).on(mode="grad", every=4))
    cfg = regs.get_config()
    assert cfg["bindings"][0]["on"] == {"mode": "grad", "every": 4}
    again = reglab.attach_from_config(model, json.loads(json.dumps(cfg)))
    assert again.bindings[0].mode == "grad" and again.bindings[0].every == 4


# ----------------------------------------------------------------------------- DDP
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    from datetime import timedelta

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=60))
    try:
        result = {}
        for mode in ("penalty", "grad"):
            torch.manual_seed(0)
            model = Net().double()
            model.c = nn.Identity()  # DDP needs every parameter used
            ddp = torch.nn.parallel.DistributedDataParallel(model)
            regs = reglab.attach(model, [
                reglab.L2(0.05).on(mode=mode),
                reglab.create("soft_orthogonality", weight=0.01).on(params="b.weight", mode=mode),
                reglab.create("srip", weight=0.01).on(params="a.weight", mode=mode),
            ])  # fmt: skip
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            g = torch.Generator().manual_seed(7)
            for _ in range(3):
                x = torch.randn(2 * world, 6, generator=g, dtype=torch.float64)[2 * rank : 2 * rank + 2]
                opt.zero_grad()
                (ddp(x).pow(2).mean() + regs.penalty()).backward()
                regs.add_grads()
                opt.step()
                regs.step(opt)
            result[mode] = [p.detach().flatten().tolist() for p in model.parameters()]
            del ddp
            gc.collect()
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(result, f)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_ddp_grad_mode_equals_penalty_mode_on_every_rank(tmp_path):
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    for ranks in (r0, r1):
        for a, b in zip(ranks["penalty"], ranks["grad"]):
            assert a == pytest.approx(b, rel=1e-9, abs=1e-12)
    for a, b in zip(r0["grad"], r1["grad"]):  # identical on every rank: added once, not averaged away
        assert a == b


# ----------------------------------------------------------------------------- fusion (coef·w gradients)
class ConvNet(nn.Module):
    """A conv and a linear layer in the forward; an unused conv (its grad stays None) and a linear
    layer frozen after attach."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 4 * 4, 5)
        self.unused = nn.Conv2d(2, 3, 3)
        self.frozen = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(torch.tanh(self.conv(x)).flatten(1))


def _fused_bindings(groups: str, every: int):
    return [
        reglab.L2(0.05).on(mode="grad", every=every),  # every weight, incl. unused and frozen
        reglab.GroupLasso(0.01, groups=groups).on(params="*.weight", mode="grad", every=every),
    ]


def _three_ways(groups: str, every: int = 1, scaler_scale: float | None = None):
    """(fused add_grads, sequential grad_ per binding, autograd of the penalties): the
    unscaled gradient of every parameter after one step, and the logged values."""
    out = []
    x = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    for way in ("fused", "sequential", "autograd"):
        model = ConvNet().double()
        regs = reglab.attach(model, _fused_bindings(groups, every))
        model.frozen.weight.requires_grad_(False)  # frozen after attach
        scaler = torch.amp.GradScaler("cpu", init_scale=scaler_scale) if scaler_scale else None
        scale = scaler_scale or 1.0
        steps = []
        for _ in range(every + 1):  # with every=k: an applied step, k-1 skipped ones, an applied one
            model.zero_grad(set_to_none=True)
            loss = model(x).pow(2).mean()
            applies = all(b.applies_now() for b in regs.bindings)
            if way == "autograd" and applies:
                for b in regs.bindings:
                    ps = [p for _, p in regs.parameters_of(b.name) if p.requires_grad]
                    loss = loss + b.coefficient * b.regularizer.penalty(ps)
            (loss * scale).backward()
            if way == "fused":
                regs.add_grads(scaler)
            elif way == "sequential" and applies:
                for b in regs.bindings:
                    ps = [p for _, p in regs.parameters_of(b.name) if p.requires_grad]
                    for p in ps:
                        if p.grad is None:
                            p.grad = torch.zeros_like(p)
                    b.regularizer.grad_(ps, [p.grad for p in ps], b.coefficient * scale)
            steps.append({n: None if p.grad is None else p.grad / scale for n, p in model.named_parameters()})
            regs.step()
        out.append(steps)
    return out


def _assert_same_grads(a: dict, b: dict):
    assert a.keys() == b.keys()
    for n in a:
        if a[n] is None or b[n] is None:
            assert a[n] is None and b[n] is None, n
        else:
            torch.testing.assert_close(a[n], b[n], rtol=1e-10, atol=1e-14, msg=n)


@pytest.mark.parametrize("groups", ["out", "in"])
@pytest.mark.parametrize("every,scale", [(1, None), (1, 1024.0), (2, None), (2, 64.0)])
def test_fused_equals_sequential_grad_equals_autograd(groups, every, scale):
    fused, sequential, autograd = _three_ways(groups, every, scale)
    for f, s, a in zip(fused, sequential, autograd):
        _assert_same_grads(f, s)
        _assert_same_grads(f, a)
    first = fused[0]
    assert first["frozen.weight"] is None  # frozen after attach: skipped
    assert first["unused.weight"] is not None  # no grad before add_grads: zeros + the term
    assert first["unused.bias"] is None  # not selected
    # the unused conv's gradient is exactly λ_l2·w + λ_gl·c_g·w_g/‖w_g‖ (coefficient × every)
    w = ConvNet().double().unused.weight.detach()
    dims = (1, 2, 3) if groups == "out" else (0, 2, 3)
    size = w[0].numel() if groups == "out" else w[:, 0].numel()
    expected = every * (0.05 * w + 0.01 * size**0.5 * w / w.pow(2).sum(dims, keepdim=True).sqrt())
    torch.testing.assert_close(first["unused.weight"], expected, rtol=1e-10, atol=0)
    if every == 2:  # the skipped step adds nothing (and creates no gradient)
        assert fused[1]["unused.weight"] is None and fused[2]["unused.weight"] is not None


def test_fused_logs_the_same_values_as_penalty_mode():
    model = ConvNet().double()
    regs = reglab.attach(model, _fused_bindings("out", 1))
    regs.add_grads()
    ws = [p for _, p in regs.parameters_of("l2")]
    gl = [p for _, p in regs.parameters_of("group_lasso")]
    assert float(regs.last["l2"]) == pytest.approx(float(0.05 * reglab.functional.l2(ws)), rel=1e-12)
    assert float(regs.last["group_lasso"]) == pytest.approx(float(0.01 * reglab.functional.group_lasso(gl)), rel=1e-12)


def test_add_grads_fuses_coef_w_gradients_into_one_pass_per_tensor(monkeypatch):
    import reglab.core.attach as attach_module

    model = ConvNet().double()
    regs = reglab.attach(model, _fused_bindings("out", 1) + [reglab.ElasticNet(0.01).on(params="fc.weight", mode="grad")])
    calls = []
    real = attach_module.add_coefficients_

    def spy(grads, tensors, coefs, alpha=1.0):
        calls.append([id(t) for t in tensors])
        return real(grads, tensors, coefs, alpha)

    def no_grad_(*args, **kwargs):
        raise AssertionError("a fusable binding went through its own grad_")

    monkeypatch.setattr(attach_module, "add_coefficients_", spy)
    monkeypatch.setattr(reglab.L2, "grad_", no_grad_)
    monkeypatch.setattr(reglab.GroupLasso, "grad_", no_grad_)
    regs.add_grads()
    selected = {id(p) for _, p in regs.parameters_of("l2")} | {id(p) for _, p in regs.parameters_of("group_lasso")}
    assert len(calls) == 1 and sorted(calls[0]) == sorted(selected)  # each tensor once
    # the elastic net (sign(w) is not coef·w) kept its own grad_, on top of the fused terms
    w = model.fc.weight.detach()
    rows = w.pow(2).sum(1, keepdim=True).sqrt()
    expected = 0.05 * w + 0.01 * w.shape[1] ** 0.5 * w / rows + 0.01 * (0.5 * torch.sign(w) + 0.5 * w)
    torch.testing.assert_close(model.fc.weight.grad, expected, rtol=1e-10, atol=1e-15)


def test_a_subclass_overriding_grad_is_not_fused():
    class Doubled(reglab.L2):
        name = None  # not registered

        def grad_(self, tensors, grads, alpha):
            return super().grad_(tensors, grads, 2 * alpha)

    assert reglab.L2().has_grad_coefficients and reglab.GroupLasso().has_grad_coefficients
    assert not Doubled().has_grad_coefficients
    assert not reglab.ElasticNet().has_grad_coefficients and not reglab.create("l1").has_grad_coefficients
    model = ConvNet().double()
    regs = reglab.attach(model, Doubled(0.1).on(params="fc.weight", mode="grad"))
    regs.add_grads()
    torch.testing.assert_close(model.fc.weight.grad, 0.2 * model.fc.weight.detach())


def test_add_coefficients_with_a_tensor_scale_and_mixed_coefficients():
    from reglab.core.regularizer import add_coefficients_

    ws = _weights(6, [(4, 3, 2, 2), (5, 3), (3, 4)])
    grads = [torch.full_like(w, 0.5) for w in ws]
    coefs = [torch.rand(4, 1, 1, 1, dtype=torch.float64), 0.3, torch.rand(1, 4, dtype=torch.float64)]
    add_coefficients_(grads, ws, coefs, torch.tensor(8.0, dtype=torch.float64))  # a 0-d loss scale
    for g, w, c in zip(grads, ws, coefs):
        torch.testing.assert_close(g, 0.5 + 8.0 * c * w, rtol=1e-12, atol=0)


@pytest.mark.parametrize("groups", ["out", "in"])
def test_group_coefficients_over_chunks_and_layouts_equal_autograd(groups, monkeypatch):
    import reglab.ops.grads as grads_module

    monkeypatch.setattr(grads_module, "_CHUNK", 7)  # several chunks over dim 0 (groups="in")
    conv = torch.randn(6, 5, 3, 3, dtype=torch.float64).to(memory_format=torch.channels_last)
    conv[:, 1] = 0.0  # an all-zero input channel
    conv[2] = 0.0  # an all-zero filter
    ws = [conv, torch.randn(7, 5, dtype=torch.float64)]
    leaves = [w.detach().clone().requires_grad_(True) for w in ws]
    reg = reglab.GroupLasso(groups=groups)
    value = reg.penalty(leaves)
    value.backward()
    grads = [torch.zeros_like(w) for w in ws]
    got = reg.grad_(ws, grads, 1.0)
    torch.testing.assert_close(got, value.detach(), rtol=1e-12, atol=0)
    for g, w in zip(grads, leaves):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, w.grad, rtol=1e-10, atol=1e-15)
    _, coefs = reg.grad_coefficients(ws)  # one value per group, not a tensor of the weight's size
    expected = [(6, 1, 1, 1), (7, 1)] if groups == "out" else [(1, 5, 1, 1), (1, 5)]
    assert [tuple(c.shape) for c in coefs] == expected


def test_low_precision_group_lasso_gets_float32_coefficients():
    ws = [w.bfloat16() for w in _weights(7, [(4, 3, 3, 3), (5, 4)])]
    grads = [torch.zeros_like(w) for w in ws]
    reg = reglab.GroupLasso()
    value = reg.grad_(ws, grads, 1.0)
    assert value.dtype == torch.float32 and all(g.dtype == torch.bfloat16 for g in grads)
    exact = [torch.zeros(w.shape, dtype=torch.float64) for w in ws]
    reg.grad_([w.double() for w in ws], exact, 1.0)
    for g, e in zip(grads, exact):
        torch.testing.assert_close(g.double(), e, rtol=1e-2, atol=1e-2)
