"""Issue "nothing silent": frozen weights, half precision, overflow, pickling, stale state, bad lab files."""

from __future__ import annotations

import io
import os
import pickle

import pytest
import torch
from torch import nn

import reglab
import reglab.functional as RF
from reglab.core.registry import get


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def test_frozen_parameters_are_neither_selected_nor_moved_by_prox():
    net = _net()
    net[0].weight.requires_grad_(False)
    frozen = net[0].weight.detach().clone()
    regs = reglab.attach(net, [reglab.create("group_lasso", weight=10.0).on(mode="prox")])
    assert [n for n, _ in regs._params[0]] == ["2.weight"]
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.1)
    net(torch.randn(3, 8)).sum().backward()
    opt.step()
    regs.step(opt)
    assert torch.equal(net[0].weight, frozen)
    # frozen after attach: the prox step skips it too
    net2 = _net()
    regs2 = reglab.attach(net2, [reglab.create("group_lasso", weight=10.0).on(mode="prox")])
    net2[2].weight.requires_grad_(False)
    before = net2[2].weight.detach().clone()
    regs2.step(torch.optim.SGD(net2.parameters(), lr=0.1))
    assert torch.equal(net2[2].weight, before)
    # l2_sp keeps no anchor for a frozen parameter; frozen=True opts back in
    net3 = _net()
    net3[0].weight.requires_grad_(False)
    l2sp = reglab.create("l2_sp")
    reglab.attach(net3, [l2sp])
    assert [k for k in l2sp.state_dict() if "0__weight" in k] == []
    assert len(reglab.attach(_net(), [reglab.L2().on(frozen=True)])._params[0]) == 2


class _ViTBits(nn.Module):
    def __init__(self):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.randn(1, 5, 8))
        self.cls_token = nn.Parameter(torch.randn(1, 1, 8))
        self.gamma = nn.Parameter(torch.ones(8))  # LayerScale
        self.proj = nn.Linear(8, 8)
        self.norm_scale = nn.Parameter(torch.ones(8))  # a custom RMSNorm's weight


def test_default_selection_leaves_out_1d_parameters_and_token_tables():
    names = [n for n, _ in reglab.Selection(params="*").parameters(_ViTBits())]
    assert names == ["proj.weight"]


def test_fp16_and_bf16_models_get_float32_penalties():
    w = (torch.randn(1000, 1000, generator=torch.Generator().manual_seed(0)) * 0.3).half()
    assert float(reglab.create("l2", weight=1.0)(w)) == pytest.approx(float(RF.l2(w.double())), rel=1e-4)  # was inf
    assert torch.isfinite(RF.nuclear_norm(w[:50, :40].bfloat16()))  # was "svd not implemented for Half"
    net = _net()
    regs = reglab.attach(net, [reglab.L2(5e-4), reglab.create("group_lasso", weight=1e-3), reglab.create("soft_orthogonality")])
    with torch.autocast("cpu", torch.bfloat16):  # the README's stack under bf16 autocast
        loss = net(torch.randn(4, 8)).sum() + regs.penalty()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    net.half()
    penalty = regs.penalty()
    penalty.backward()
    assert penalty.dtype == torch.float32 and net[0].weight.grad.dtype == torch.float16


@pytest.mark.parametrize("name", ["uniformity", "alignment", "barlow_twins", "vicreg", "vcreg", "dispersive", "mhe_features"])
def test_1e20_scale_batches_give_the_float64_value(name):
    g = torch.Generator().manual_seed(0)
    z = [torch.randn(16, 8, generator=g) * 1e20 for _ in range(get(name).num_inputs)]
    reg = reglab.create(name, gather=False) if "gather" in reglab.info(name).defaults else reglab.create(name)
    got = reg(*z)
    expected = reg(*[t.double() for t in z])
    assert torch.isfinite(got) and float(got) == pytest.approx(float(expected), rel=1e-6)


def test_1e20_scale_weights_and_logits():
    w = torch.randn(6, 5, generator=torch.Generator().manual_seed(1)) * 1e20
    assert float(RF.mhe(w)) == pytest.approx(float(RF.mhe(w.double())), rel=1e-5)  # was −0.35
    clipped = RF.logit_clip(w)  # was all zeros: the row norms overflowed
    assert torch.allclose(clipped.double().norm(dim=1), torch.ones(6, dtype=torch.float64), rtol=1e-5)
    with pytest.raises(reglab.RegularizerInputError, match="spectral_norm"):  # ½σ² = 1e41 > float32 max
        reglab.create("spectral_norm")(w)
    half_sq = reglab.create("spectral_norm", weight=1.0)(w.double())  # float64 holds it
    true = 0.5 * float(torch.linalg.matrix_norm(w.double(), 2)) ** 2
    assert 0.5 * true < float(half_sq) <= true * (1 + 1e-9)  # one power-iteration step: a lower estimate


def test_a_model_with_hooks_pickles_and_saves():
    net = _net()
    regs = reglab.attach(net, [reglab.create("vcreg").on(activations="1"), reglab.L2()])
    net(torch.randn(5, 8))
    clone = pickle.loads(pickle.dumps(net))
    assert len(clone[1]._forward_hooks) == 1
    torch.save(net, io.BytesIO())
    assert torch.isfinite(regs.penalty())


def test_state_for_renamed_parameters_is_reported_not_kept():
    old = nn.Sequential(nn.Linear(4, 4))
    reg = reglab.create("l2_sp")
    reglab.attach(old, [reg])
    state = reg.state_dict()
    renamed = nn.Sequential(nn.Identity(), nn.Linear(4, 4))
    fresh = reglab.create("l2_sp")
    reglab.attach(renamed, [fresh])
    with pytest.raises(RuntimeError, match="Unexpected key"):
        fresh.load_state_dict(state)
    fresh.load_state_dict(state, strict=False)
    assert not any("0__weight" in k for k in fresh.state_dict())  # no stale buffer
    loaded = reglab.create("l2_sp")
    loaded.load_state_dict(state)  # before setup: kept, to be bound by name
    reglab.attach(old, [loaded])
    assert torch.equal(loaded.state_dict()["anchor__0__weight"], state["anchor__0__weight"])


def test_negative_weights_and_0d_group_lasso_are_clear_errors():
    with pytest.raises(ValueError, match="weight must be >= 0"):
        reglab.L2(-1e-4)
    with pytest.raises(reglab.RegularizerInputError, match="group_lasso.*0-d"):
        RF.group_lasso(torch.tensor(1.0))


def test_elr_duplicate_indices_are_an_error():
    elr = reglab.create("elr", num_samples=10, num_classes=3)
    with pytest.raises(reglab.RegularizerInputError, match="duplicate dataset indices"):
        elr(torch.randn(3, 3), torch.tensor([1, 1, 2]))


def test_compiled_training_step_equals_eager():
    def step(net, regs, x):
        net.zero_grad()
        loss = net(x).pow(2).mean() + regs.penalty()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in net.parameters()]

    x = torch.randn(6, 8, generator=torch.Generator().manual_seed(2))
    eager_net, comp_net = _net(), _net()
    regs_e = reglab.attach(eager_net, [reglab.L2(1e-2), reglab.create("soft_orthogonality")])
    regs_c = reglab.attach(comp_net, [reglab.L2(1e-2), reglab.create("soft_orthogonality")])
    ref_loss, ref_grads = step(eager_net, regs_e, x)
    compiled = torch.compile(lambda: comp_net(x).pow(2).mean() + regs_c.penalty(), backend="eager", fullgraph=True)
    comp_net.zero_grad()
    loss = compiled()
    loss.backward()
    torch.testing.assert_close(loss.detach(), ref_loss)
    for p, g in zip(comp_net.parameters(), ref_grads):
        torch.testing.assert_close(p.grad, g)


def test_lab_files_fail_clearly(tmp_path, capsys, monkeypatch):
    from reglab.cli import main

    out = tmp_path / "bench"
    out.mkdir()
    results = out / "results.jsonl"
    results.write_text("")
    real_open = os.open

    def read_only(path, flags, *args):  # as a read-only file behaves for a non-root user
        if os.fspath(path) == str(results) and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", read_only)
    assert main(["bench", "--quick", "--only", "pskd", "--out", str(out)]) == 2  # before any run, none lost
    assert "cannot append to the results file" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(["list", "--results", str(out)]) == 0  # the --out folder, not only the file
