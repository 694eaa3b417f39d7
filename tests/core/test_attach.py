import gc
import re
import weakref

import pytest
import torch
from torch import nn

import reglab
from reglab import schedules
from reglab.core.selection import default_exclude
from reglab.core.regularizer import Regularizer


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)
        self.conv = nn.Conv2d(1, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 8), nn.ReLU())
        self.ln = nn.LayerNorm(8)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        return self.head(self.ln(self.encoder(self.bn(self.conv(x)))))


class MeanSquare(Regularizer):
    """Test-only activation regularizer: mean of squares of one view."""

    name = "test_mean_square"
    kind = "representation"
    target = "activations"

    def penalty(self, z):
        return z.pow(2).mean()


class TwoViewGap(Regularizer):
    """Test-only two-view regularizer: mean squared gap between views."""

    name = "test_two_view"
    kind = "representation"
    target = "activations"
    num_inputs = 2

    def penalty(self, a, b):
        return (a - b).pow(2).mean()


def names(regs, binding="l2"):
    return [n for n, _ in regs.parameters_of(binding)]


def test_default_selection_excludes_bias_and_norm_but_decays_embeddings():
    regs = reglab.attach(Net(), [reglab.L2(1.0)])
    assert names(regs) == ["emb.weight", "conv.weight", "encoder.1.weight", "head.weight"]


def test_exclude_none_selects_everything():
    m = Net()
    regs = reglab.attach(m, [reglab.L2(1.0).on(exclude=None)])
    assert len(names(regs)) == len(list(m.parameters()))


def test_glob_regex_module_and_predicate_selectors():
    m = Net()
    glob = reglab.attach(m, [reglab.L2().on("encoder.*")])
    assert names(glob) == ["encoder.1.weight"]
    rx = reglab.attach(m, [reglab.L2().on(re.compile(r"^(conv|head)\."))])
    assert names(rx) == ["conv.weight", "head.weight"]
    by_type = reglab.attach(m, [reglab.L2().on(modules=nn.Linear)])
    assert names(by_type) == ["encoder.1.weight", "head.weight"]
    pred = reglab.attach(m, [reglab.L2().on(where=lambda n, p, mod: p.ndim == 4)])
    assert names(pred) == ["conv.weight"]
    both = reglab.attach(m, [reglab.L2().on("*.weight", modules=nn.Linear, where=lambda n, p, mod: p.shape[0] == 2)])
    assert names(both) == ["head.weight"]
    listed = reglab.attach(m, [reglab.L2().on(["conv.*", re.compile("head")], exclude=None)])
    assert names(listed) == ["conv.weight", "conv.bias", "head.weight", "head.bias"]


def test_default_exclude_predicate():
    bn = nn.BatchNorm1d(3)
    assert default_exclude("bn.weight", bn.weight, bn)
    lin = nn.Linear(2, 2)
    assert default_exclude("x.bias", lin.bias, lin) and not default_exclude("x.weight", lin.weight, lin)


def test_shared_parameter_counted_once():
    lin = nn.Linear(3, 3, bias=False)
    model = nn.Sequential(lin, nn.ReLU(), lin)
    regs = reglab.attach(model, reglab.L2(1.0))
    assert len(regs.parameters_of("l2")) == 1
    assert float(regs.penalty()) == pytest.approx(0.5 * float(lin.weight.pow(2).sum()))


def test_penalty_sums_bindings_and_records_last():
    m = Net()
    regs = reglab.attach(m, [reglab.L2(0.5), reglab.L1(0.1).on(modules=nn.Conv2d), reglab.L2(2.0).on("head.weight")])
    total = regs.penalty()
    weights = [m.emb.weight, m.conv.weight, m.encoder[1].weight, m.head.weight]
    l2 = 0.5 * 0.5 * sum(float(w.pow(2).sum()) for w in weights)
    l1 = 0.1 * float(m.conv.weight.abs().sum())
    l2_head = 2.0 * 0.5 * float(m.head.weight.pow(2).sum())
    assert set(regs.last) == {"l2", "l1", "l2#2"}
    assert float(regs.last["l2"]) == pytest.approx(l2, rel=1e-5)
    assert float(regs.last["l1"]) == pytest.approx(l1, rel=1e-5)
    assert float(total) == pytest.approx(l2 + l1 + l2_head, rel=1e-5)
    assert not regs.last["l2"].requires_grad
    total.backward()
    assert torch.allclose(m.head.weight.grad, 0.5 * m.head.weight + 2.0 * m.head.weight, atol=1e-6)
    assert m.head.bias.grad is None


def test_zero_weight_costs_nothing_and_schedule_advances():
    m = Net()
    regs = reglab.attach(m, [reglab.L2(schedules.LinearWarmup(1.0, warmup_steps=2))])
    assert float(regs.penalty()) == 0.0 and regs.last == {}
    regs.step()
    assert float(regs.penalty()) > 0


def test_regularizer_set_state_round_trip_resumes_schedule():
    m = Net()
    make = lambda: reglab.attach(m, [reglab.L2(schedules.Cosine(1.0, 0.0, 10)), reglab.L1(schedules.Step(1.0, [2]))])
    regs = make()
    for _ in range(3):
        regs.step()
    expected = float(regs.penalty())
    again = make()
    again.load_state_dict(regs.state_dict())
    assert float(again.penalty()) == pytest.approx(expected)
    assert all(k.endswith("_extra_state") for k in regs.state_dict())  # the model is not in it


def test_prox_mode_uses_lr_times_weight_per_param_group():
    m = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 4, bias=False))
    opt = torch.optim.SGD([{"params": m[0].parameters(), "lr": 0.1}, {"params": m[1].parameters(), "lr": 0.5}], lr=0.1)
    before = [m[0].weight.detach().clone(), m[1].weight.detach().clone()]
    regs = reglab.attach(m, [reglab.L1(0.2).on(mode="prox")])
    assert float(regs.penalty()) == 0.0  # prox bindings add nothing to the loss
    regs.step(opt)
    for w0, layer, lr in zip(before, m, (0.1, 0.5)):
        t = lr * 0.2
        expected = torch.sign(w0) * (w0.abs() - t).clamp_min(0)
        assert torch.allclose(layer.weight, expected)


def test_prox_errors():
    m = nn.Linear(3, 3)
    regs = reglab.attach(m, [reglab.L1(0.1).on(mode="prox")])
    with pytest.raises(ValueError, match="optimizer"):
        regs.step()
    other = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="does not update"):
        regs.step(other)


def test_binding_validation_errors():
    with pytest.raises(ValueError, match="mode"):
        reglab.L2().on(mode="bogus")
    with pytest.raises(ValueError, match="scope"):
        reglab.L2().on(scope="everywhere")
    with pytest.raises(ValueError, match="not both"):
        MeanSquare().on("x", activations="encoder")
    with pytest.raises(ValueError, match="cannot be bound to activations"):
        reglab.L2().on(activations="encoder")
    with pytest.raises(ValueError, match=r"bind it with .on\(activations"):
        reglab.attach(Net(), [MeanSquare()])
    with pytest.raises(ValueError, match="global"):
        reglab.L1().on(scope="global")
    with pytest.raises(ValueError, match="selects no parameters"):
        reglab.attach(Net(), [reglab.L2().on("nothing.*")])
    with pytest.raises(TypeError):
        reglab.L2().on(modules="Linear")
    with pytest.raises(ValueError, match="no such submodule.*'encoder'"):
        reglab.attach(Net(), [MeanSquare().on(activations="encodr")])


def test_activation_hook_penalty_and_release():
    m = Net()
    regs = reglab.attach(m, [MeanSquare(3.0).on(activations="encoder")])
    out = m(torch.randn(5, 1, 8, 8))
    captured = regs._captures[0][0]
    ref = weakref.ref(captured)
    expected = 3.0 * float(captured.pow(2).mean())
    del captured
    value = regs.penalty()
    assert float(value) == pytest.approx(expected)
    (out.sum() + value).backward()
    del out, value
    gc.collect()
    assert ref() is None, "the hook kept the activation alive past penalty()"
    with pytest.raises(RuntimeError, match="nothing was captured"):
        regs.penalty()


def test_activation_hook_skips_eval_and_no_grad():
    m = Net()
    regs = reglab.attach(m, [MeanSquare().on(activations="encoder")])
    m.eval()
    m(torch.randn(2, 1, 8, 8))
    m.train()
    with torch.no_grad():
        m(torch.randn(2, 1, 8, 8))
    assert len(regs._captures[0]) == 0


def test_activation_select_and_two_views():
    class TupleOut(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(x), {"aux": x}

    m = nn.Sequential()
    m.add_module("block", TupleOut())
    regs = reglab.attach(m, [TwoViewGap().on(activations="block", select=0)])
    a, b = torch.randn(4, 3), torch.randn(4, 3)
    m(a)
    m(b)
    expected = float((m.block.lin(a) - m.block.lin(b)).pow(2).mean())
    assert float(regs.penalty()) == pytest.approx(expected, rel=1e-6)
    m(a)
    with pytest.raises(RuntimeError, match="2 views"):
        regs.penalty()
    plain = nn.Sequential(TupleOut())
    reglab.attach(plain, [MeanSquare().on(activations="0")])
    with pytest.raises(TypeError, match="select="):
        plain(a)


def test_unconsumed_captures_are_bounded_with_a_warning():
    m = Net()
    regs = reglab.attach(m, [MeanSquare().on(activations="encoder")])
    with pytest.warns(UserWarning, match="never consumed"):
        for _ in range(6):
            m(torch.randn(2, 1, 8, 8))
    assert len(regs._captures[0]) == 4


def test_detach_removes_hooks():
    m = Net()
    with reglab.attach(m, [MeanSquare().on(activations="encoder")]) as regs:
        m(torch.randn(2, 1, 8, 8))
    assert len(regs._captures[0]) == 0
    m(torch.randn(2, 1, 8, 8))
    assert len(regs._captures[0]) == 0
    assert not m.encoder._forward_hooks


def test_regularizer_set_config_round_trips_through_json_and_yaml(tmp_path):
    import json
    import re

    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    regs = reglab.attach(net, [
        reglab.L2(5e-4),
        reglab.create("group_lasso", weight=1e-3).on(modules=nn.Conv2d, mode="prox"),
        reglab.create("vcreg").on(activations="1", name="hidden"),
        reglab.create("srip").on(params=[re.compile(r"^3\."), "0.*"], exclude=None),
    ])  # fmt: skip
    cfg = regs.get_config()
    assert json.loads(json.dumps(cfg)) == cfg
    again = reglab.attach_from_config(net, json.loads(json.dumps(cfg)))
    assert again.get_config() == cfg
    assert [[n for n, _ in ps] for ps in again._params] == [[n for n, _ in ps] for ps in regs._params]
    for suffix in (".json", ".yaml"):
        path = tmp_path / f"regs{suffix}"
        reglab.save_config(regs, path)
        assert reglab.attach_from_config(net, path).get_config() == cfg
    with pytest.raises(ValueError, match="callable"):
        reglab.attach(net, [reglab.L2().on(where=lambda n, p, m: True)]).get_config()
    with pytest.raises(ValueError, match="unknown selection fields"):
        reglab.attach_from_config(net, {"bindings": [{"regularizer": {"name": "l2"}, "on": {"modulez": []}}]})
