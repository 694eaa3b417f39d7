"""Issue 24, "nothing silent" second pass: overflow and non-finite values, the meta device, one
regularizer bound twice, configs that name code, and the removed module paths."""

from __future__ import annotations

import importlib
import math
import sys

import pytest
import torch
from torch import nn

import reglab
import reglab.functional as RF
from reglab.core.registry import get
from reglab.embeddings import EmbeddingTransform, Whitening
from tests.methods._problem import loss_of, make_problem
from tests.methods._registry import PENALTIES, example, example_inputs, names

# ------------------------------------------------------------------ overflow: values and gradients


def test_sigma_reparam_of_1e20_weights_keeps_the_function():
    torch.manual_seed(0)
    layer = nn.Linear(5, 6)
    with torch.no_grad():
        layer.weight.mul_(1e20)
    w0 = layer.weight.detach().clone()
    RF.sigma_reparam_(layer)  # γ = σ(W₀): Ŵ = W₀ (was inf: ‖W u‖² overflowed, σ became 0)
    assert torch.allclose(layer.weight.double(), w0.double(), rtol=1e-5)
    layer(torch.randn(3, 5)).sum().backward()
    assert torch.isfinite(layer.parametrizations.weight.original.grad).all()
    # the pure function: σ of the 1e20 weight from a random unit u, against float64
    u = torch.nn.functional.normalize(torch.randn(5), dim=0)
    gamma = torch.tensor(2.0)
    w_hat, u_new = RF.sigma_reparam(w0, u, gamma)
    w_hat64, u_new64 = RF.sigma_reparam(w0.double(), u.double(), gamma.double())
    assert torch.isfinite(w_hat).all() and torch.isfinite(u_new).all()  # was NaN for some u
    torch.testing.assert_close(w_hat.double(), w_hat64, rtol=1e-5, atol=0.0)
    torch.testing.assert_close(u_new.double(), u_new64, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["vicreg", "vcreg"])
def test_a_float32_gradient_beyond_float32_is_an_error_not_inf(name):
    """At 1e20 the value is right in float64, but ∂L/∂z ≈ 1e58 cannot be a float32 gradient."""
    g = torch.Generator().manual_seed(0)
    z = [(torch.randn(16, 8, generator=g) * 1e20).requires_grad_() for _ in range(get(name).num_inputs)]
    reg = reglab.create(name, gather=False)
    value = reg(*z)
    assert torch.isfinite(value)  # the float64 value, as before
    with pytest.raises(reglab.RegularizerInputError, match=rf"(?i){name}.*gradient.*beyond float32.*float64"):
        value.backward()  # was: inf gradients, no error
    z64 = [t.detach().double().requires_grad_() for t in z]
    reg(*z64).backward()  # float64 input holds the gradient
    assert all(torch.isfinite(t.grad).all() for t in z64)


@pytest.mark.parametrize("name", PENALTIES)
def test_1e20_scale_input_gives_a_finite_gradient_or_a_clear_error(name):
    """The bad-input matrix's 1e20 cell, through backward: the float32 gradient is finite and equals
    the float64 one, or an error names the regularizer (forward or backward); never a silent inf."""
    if name == "gradient_norm":
        pytest.skip("takes a loss and parameters (its test below)")
    if name == "elle":
        pytest.skip("takes a model: the example's float64 model cannot take the float32 1e20 input (its float32 "
                    "1e20 case is in test_elle.py)")
    if name == "vanishing_gradient":
        pytest.skip("grad_h is a constant (detached by design) and the example's w_hh needs no grad: no graph to "
                    "backpropagate (its float32 1e20 case is in test_vanishing_gradient.py)")
    inputs = list(example_inputs(name))
    x = inputs[0]
    if not (isinstance(x, torch.Tensor) and x.is_floating_point()):
        pytest.skip("the first input is not a floating-point tensor")
    inputs[0] = (x.detach().float() * 1e20).requires_grad_()
    torch.manual_seed(0)
    try:
        out = example(name)(*inputs)
        out.backward()
    except reglab.RegularizerInputError as e:
        assert names(name).search(str(e)), f"{name}: the error does not name the regularizer: {e}"
        return
    if inputs[0].grad is None:
        return  # no gradient flows to this input (an index, a label-like input)
    assert torch.isfinite(inputs[0].grad).all(), f"{name}: silent non-finite gradient at 1e20 scale"


def test_gradient_norm_checks_the_gradients_it_computes():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    x = torch.tensor([[float("inf"), 1.0, 1.0]])
    loss = torch.tanh(net(x)).sum()  # tanh squashes the inf: a finite loss, NaN gradients
    assert torch.isfinite(loss)
    for method in ("double_backprop", "finite_difference"):
        gn = reglab.create("gradient_norm", method=method)
        with pytest.raises(reglab.RegularizerInputError, match=r"GradientNorm.*parameter 0 \(shape \(2, 3\)\).*NaN"):
            if method == "double_backprop":
                gn.penalty(torch.tanh(net(x)).sum(), net)  # was a NaN penalty
            else:
                gn.backward(lambda: torch.tanh(net(x)).sum(), net)
        assert net.weight.grad is None  # nothing written


def test_gradient_norm_under_no_grad_is_named_or_works():
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    x = torch.randn(4, 3)
    gn = reglab.create("gradient_norm")
    loss = net(x).pow(2).sum()
    with torch.no_grad(), pytest.raises(reglab.RegularizerInputError, match="GradientNorm.penalty.*autograd off"):
        gn.penalty(loss, net)  # was a penalty without a graph, silently
    with torch.no_grad():
        frozen = net(x).pow(2).sum()
    with pytest.raises(reglab.RegularizerInputError, match="GradientNorm.*no autograd graph"):
        gn.penalty(frozen, net)  # was "element 0 of tensors does not require grad"
    for method in ("double_backprop", "finite_difference"):  # backward runs its closure with autograd on
        net.zero_grad()
        with torch.no_grad():
            reglab.create("gradient_norm", method=method).backward(lambda: net(x).pow(2).sum(), net)
        assert torch.isfinite(net.weight.grad).all() and net.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------ optimizers never step on NaN/inf


def _closure(opt, model, x, y):
    def closure():
        loss = loss_of(model, x, y)
        loss.backward()
        return loss

    return closure


@pytest.mark.parametrize("name", ["sam", "amp_perturbation"])
@pytest.mark.parametrize("case", ["nan input", "inf weight", "squashed inf input"])
def test_wrapped_optimizers_refuse_non_finite_values_before_touching_the_weights(name, case):
    model, x, y = make_problem()
    if case == "nan input":
        x[0, 0] = float("nan")  # a NaN loss
    elif case == "inf weight":
        with torch.no_grad():
            model[0].weight[0, 0] = float("inf")
    else:
        x[0, 0] = float("inf")  # the Tanh squashes it: finite loss, NaN gradient of the first layer
    before = [p.detach().clone() for p in model.parameters()]
    opt = reglab.create(name, params=model.parameters(), lr=0.1)
    who = type(opt).__name__
    expected = {"nan input": "non-finite loss", "inf weight": "NaN/inf values in parameter 0",
                "squashed inf input": "NaN/inf values in the gradient"}[case]  # fmt: skip
    with pytest.raises(reglab.RegularizerInputError, match=rf"{who} .*{expected}"):
        opt.step(_closure(opt, model, x, y))  # was: NaN written into every weight
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)


def test_sam_two_step_api_refuses_a_nan_gradient_with_the_weights_back_at_w():
    model, x, y = make_problem()
    sam = reglab.SAM(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    loss_of(model, x, y).backward()
    sam.first_step(zero_grad=True)  # a finite first pass: w + ε
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before))
    bad = x.clone()
    bad[0, 0] = float("nan")
    loss_of(model, bad, y).backward()
    with pytest.raises(reglab.RegularizerInputError, match="SAM .*gradient.*second pass"):
        sam.second_step(zero_grad=True)  # was: the base step with NaN gradients
    for p, b in zip(model.parameters(), before):  # w + ε − ε: w up to rounding, as SAM always restores it
        assert torch.isfinite(p).all() and torch.allclose(p, b, rtol=0.0, atol=1e-6)


def test_sam_still_skips_the_perturbation_on_a_grad_scaler_overflow():
    model, x, y = make_problem()
    sam = reglab.SAM(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    loss_of(model, x, y).backward()
    next(model.parameters()).grad[0, 0] = float("inf")
    sam.first_step()  # the GradScaler pattern: no error, no move; scaler.step then skips sam.step()
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)


# ------------------------------------------------------------------ the meta device


@pytest.mark.parametrize("name", ["sam", "amp_perturbation"])
def test_wrapped_optimizers_on_the_meta_device_say_so(name):
    model = nn.Linear(3, 2, device="meta")
    opt = reglab.create(name, params=model.parameters(), lr=0.1)

    def closure():
        loss = model(torch.randn(4, 3, device="meta")).sum()
        loss.backward()
        return loss

    with pytest.raises(reglab.RegularizerInputError, match=rf"{type(opt).__name__} .*meta device"):
        opt.step(closure)  # was "Tensor.item() cannot be called on meta tensors"


@pytest.mark.parametrize("name", reglab.list_regularizers("embedding"))
def test_post_hoc_transforms_on_the_meta_device_say_so(name):
    if name == "embedding_pipeline":
        pytest.skip("a pipeline hands its input to its steps")
    cls = get(name)
    meta = torch.empty(40, 8, device="meta")
    if cls.form != "posthoc":  # a differentiable torch module (soft_weighted_suppression): no fit, and the meta
        out = cls(**getattr(cls, "example_args", {}))(meta)  # device is its shape inference, as for any torch op
        assert out.device.type == "meta" and out.shape == meta.shape
        return
    fit_args = {"frequencies": torch.ones(40)} if name == "zipfian_whitening" else {}
    transform = cls(**getattr(cls, "example_args", {}))
    with pytest.raises(reglab.RegularizerInputError, match=rf"{cls.__name__} .*meta device"):
        transform.fit(meta, **fit_args)  # was "Cannot copy out of meta tensor; no data!"
    fitted = transform.fit(torch.randn(40, 8, generator=torch.Generator().manual_seed(0)), **fit_args)
    with pytest.raises(reglab.RegularizerInputError, match=rf"{cls.__name__} .*meta device"):
        fitted.transform(meta)


# ------------------------------------------------------------------ one regularizer bound twice


def test_a_regularizer_bound_twice_steps_once_per_step():
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    reg = reglab.L2(reglab.schedules.LinearRamp(0.1, 1.1, 10))
    regs = reglab.attach(net, [reg.on(params="0.*"), reg.on(params="1.*", every=2, name="l2_second")])
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    applied = []
    for _ in range(4):
        regs.penalty()
        applied.append("l2_second" in regs.last)
        regs.step(opt)
    assert reg.step_count == 4 and reg.current_weight == pytest.approx(0.5)  # was 8 and 0.9
    assert applied == [True, False, True, False]  # every=2: was applied at every step (phase advanced twice)
    fresh = reglab.L2(reglab.schedules.LinearRamp(0.1, 1.1, 10))
    again = reglab.attach(net, [fresh.on(params="0.*"), fresh.on(params="1.*", every=2)])
    again.load_state_dict(regs.state_dict())
    assert fresh.step_count == 4


# ------------------------------------------------------------------ configs are data


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 4))

    def forward(self, x):
        return x @ self.w


def test_attach_from_config_never_imports_what_a_config_names():
    sys.modules.pop("this", None)  # importing it prints the Zen of Python: code a config must not run
    net = nn.Sequential(_Block(), nn.Linear(4, 2))
    for path in ("this.Anything", "os.system", "subprocess.Popen"):
        cfg = {"bindings": [{"regularizer": {"name": "l2"}, "on": {"modules": [path]}}]}
        with pytest.raises(ValueError, match=rf"attach_from_config: .*{path}.*never imports.*module_types="):
            reglab.attach_from_config(net, cfg)
    assert "this" not in sys.modules  # was imported (and run) by _resolve_type


def test_attach_from_config_resolves_torch_nn_the_models_types_and_an_allow_list():
    net = nn.Sequential(_Block(), nn.Linear(4, 2))
    regs = reglab.attach(net, [reglab.L2().on(modules=_Block, params="*"), reglab.L2().on(modules=nn.Linear)])
    cfg = regs.get_config()
    assert reglab.attach_from_config(net, cfg).get_config() == cfg  # a type of the model's modules
    short = {"bindings": [{"regularizer": {"name": "l2"}, "on": {"modules": ["torch.nn.Linear"]}}]}
    assert [n for n, _ in reglab.attach_from_config(net, short)._params[0]] == ["1.weight"]
    other = nn.Sequential(nn.Linear(4, 4))  # no _Block in it: only an explicit allow-list resolves it
    block_only = {"bindings": [{"regularizer": {"name": "l2"}, "on": {"modules": cfg["bindings"][0]["on"]["modules"]}}]}
    with pytest.raises(ValueError, match="never imports"):
        reglab.attach_from_config(other, block_only)
    other.add_module("block", _Block())
    other_cfg = {"bindings": [{"regularizer": {"name": "l2"}, "on": {"modules": cfg["bindings"][0]["on"]["modules"],
                                                                     "params": "*"}}]}  # fmt: skip
    regs2 = reglab.attach_from_config(other, other_cfg, module_types=[_Block])
    assert [n for n, _ in regs2._params[0]] == ["block.w"]
    with pytest.raises(TypeError, match="module_types takes nn.Module classes"):
        reglab.attach_from_config(other, other_cfg, module_types=["os.system"])


@pytest.mark.parametrize("config", [{"name": "l2", "weight": 1.0}, {"name": "sam", "rho": 0.05}, {"name": "nope"}])
def test_loading_a_file_that_names_a_non_transform_says_so(tmp_path, config):
    path = tmp_path / "t.pt"
    torch.save({"config": config, "state": {}}, path)
    expected = rf"names '{config['name']}', which is not an embedding transform"
    with pytest.raises(reglab.RegularizerInputError, match=expected):
        EmbeddingTransform.load(path)  # was: built L2/SAM, then an obscure failure
    torch.save([1, 2], path)
    with pytest.raises(reglab.RegularizerInputError, match="not a file written by EmbeddingTransform.save"):
        EmbeddingTransform.load(path)
    Whitening().fit(torch.randn(30, 4, generator=torch.Generator().manual_seed(0))).save(path)
    assert isinstance(EmbeddingTransform.load(path), Whitening)


# ------------------------------------------------------------------ the removed module paths


@pytest.mark.parametrize(
    "path", ["reglab.bind", "reglab.regularizers", "reglab.registry", "reglab.paper", "reglab.prox"]
)
def test_the_pre_restructure_module_paths_are_gone(path):
    sys.modules.pop(path, None)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(path)


def test_public_module_aliases_are_the_core_modules():
    import reglab.distributed
    import reglab.schedules

    assert reglab.schedules.LinearWarmup is reglab.core.schedules.LinearWarmup
    assert reglab.distributed.gather is reglab.core.distributed.gather
    assert math.isfinite(reglab.schedules.Constant(1.0)(0))
