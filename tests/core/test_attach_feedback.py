"""What a binding selected is visible, and the easy mistakes warn (issue 26, items 11 and 12)."""

import warnings

import pytest
import torch
from torch import nn

import reglab


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))


def _train_step(model, regs, opt):
    x, y = torch.randn(4, 1, 8, 8), torch.randint(0, 10, (4,))
    opt.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y) + regs.penalty()
    loss.backward()
    regs.add_grads()
    opt.step()
    regs.step(opt)


def test_quickstart_prox_binding_is_logged_and_its_selection_shown():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    regs = reglab.attach(model, [
        reglab.L2(5e-4),
        reglab.create("group_lasso", weight=1e-3).on(modules=nn.Conv2d, mode="prox"),
        reglab.create("l1", weight=1e-4).on(where=lambda n, p, m: n.startswith("3."), mode="grad"),
    ])  # fmt: skip
    _train_step(model, regs, opt)
    assert set(regs.last) == {"l2", "group_lasso", "l1"}
    expected = 1e-3 * reglab.create("group_lasso").penalty([model[0].weight.detach()])
    torch.testing.assert_close(regs.last["group_lasso"], expected)
    _train_step(model, regs, opt)  # the next penalty() keeps the prox and grad entries
    assert set(regs.last) == {"l2", "group_lasso", "l1"}

    text = regs.summary()
    lasso = text[text.index("group_lasso:"):text.index("l1:")]
    assert "modules=Conv2d" in lasso and "0.weight  (8, 1, 3, 3)  Conv2d" in lasso and "3.weight" not in lasso
    assert "selected by default" in text and "3.weight  (10, 288)  Linear" in text
    assert "0.bias" not in text  # excluded by default
    assert "where=" in text and "params=None" not in repr(regs.bindings[1]) + repr(regs.bindings[2])
    assert repr(regs.bindings[1]) == "Binding(group_lasso, modules=Conv2d, mode=prox, scope=local)"


def test_summary_names_hooked_activations():
    model = _model()
    regs = reglab.attach(model, [reglab.create("vcreg").on(activations="2")])
    assert "output of '2' (Flatten)" in regs.summary()


def test_regs_step_without_optimizer_step_warns_once():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    regs = reglab.attach(model, [reglab.create("group_lasso", weight=1e-3).on(modules=nn.Conv2d, mode="prox")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the right order never warns
        for _ in range(3):
            _train_step(model, regs, opt)
    for _ in range(1):  # the mistake: regs.step(opt) in place of opt.step()
        nn.functional.cross_entropy(model(torch.randn(4, 1, 8, 8)), torch.randint(0, 10, (4,))).backward()
        with pytest.warns(UserWarning, match=r"optimizer.step\(\) did not run") as record:
            regs.step(opt)
    assert record[0].filename == __file__  # points at the user's call
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once
        regs.step(opt)


def test_a_step_skipped_for_infinite_gradients_does_not_warn():
    # GradScaler.step skips optimizer.step() when the gradients hold inf/NaN: not the mistake
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    regs = reglab.attach(model, [reglab.L2(1e-4)])
    _train_step(model, regs, opt)
    model[0].weight.grad.fill_(float("inf"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        regs.step(opt)


def test_l2_with_optimizer_weight_decay_warns_once():
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=5e-4)
    regs = reglab.attach(model, [reglab.L2(5e-4)])
    with pytest.warns(UserWarning, match=r"weight_decay=0.0005 both decay 0.weight, 3.weight: the decay is applied"):
        _train_step(model, regs, opt)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _train_step(model, regs, opt)


def test_l2_on_parameters_without_optimizer_decay_does_not_warn():
    model = _model()
    decayed = [p for n, p in model.named_parameters() if n.endswith("bias")]
    rest = [p for n, p in model.named_parameters() if not n.endswith("bias")]
    opt = torch.optim.AdamW([{"params": decayed, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}])
    regs = reglab.attach(model, [reglab.L2(5e-4), reglab.create("l1", weight=1e-4)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _train_step(model, regs, opt)
        _train_step(model, regs, opt)


def test_a_wrapped_optimizer_is_observed_through_the_optimizer_it_holds():
    class Wrapper(torch.optim.Optimizer):  # as Accelerate's AcceleratedOptimizer: no Optimizer.__init__
        def __init__(self, optimizer):
            self.optimizer = optimizer

        @property
        def param_groups(self):
            return self.optimizer.param_groups

        def step(self, closure=None):
            return self.optimizer.step(closure)

        def zero_grad(self, set_to_none=True):
            self.optimizer.zero_grad(set_to_none)

    model = _model()
    opt = Wrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    regs = reglab.attach(model, [reglab.L2(1e-4)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            _train_step(model, regs, opt)
    with pytest.warns(UserWarning, match="did not run"):
        regs.step(opt)


def test_a_new_optimizer_whose_id_was_reused_never_warns():
    import warnings

    import torch
    from torch import nn

    import reglab

    model = nn.Linear(4, 2)
    regs = reglab.attach(model, reglab.L2(1e-3))
    x = torch.randn(8, 4)

    def train(opt):
        for _ in range(2):
            opt.zero_grad()
            (model(x).pow(2).mean() + regs.penalty()).backward()
            opt.step()
            regs.step(opt)

    old, new = torch.optim.SGD(model.parameters(), lr=0.1), torch.optim.SGD(model.parameters(), lr=0.1)
    train(old)
    # CPython reuses a collected object's id: the next round's optimizer can get the old one's id (as a fresh
    # optimizer per warm-start round did in the lab). Simulate that reuse deterministically.
    watch = regs.__dict__["_optimizer_watch"]
    watch[id(new)] = watch.pop(id(old))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(new)
