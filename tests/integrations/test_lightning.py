"""The Lightning callback, end to end with the real library on CPU."""

import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch")

import reglab  # noqa: E402
from reglab.integrations.lightning import RegularizationCallback  # noqa: E402


class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _data():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)


def _trainer(callbacks, **kw):
    return pl.Trainer(max_epochs=1, callbacks=callbacks, accelerator="cpu", logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1, **kw)  # fmt: skip


def test_callback_equals_adding_the_penalty_to_the_loss_by_hand():
    regs = [reglab.L2(1e-1), reglab.create("vcreg", weight=0.1).on(activations="net.1")]
    model = Tiny()
    cb = RegularizationCallback(regs)
    _trainer([cb]).fit(model, _data())

    class ByHand(Tiny):
        def setup(self, stage):
            self.regs = reglab.attach(self, [reglab.L2(1e-1), reglab.create("vcreg", weight=0.1).on(activations="net.1")])

        def training_step(self, batch, batch_idx):
            return super().training_step(batch, batch_idx) + self.regs.penalty()

    ref = ByHand()
    _trainer([]).fit(ref, _data())
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert set(cb.regs.last) == {"l2", "vcreg"}


def test_prox_runs_after_each_optimizer_step_and_terms_are_logged():
    model = Tiny()
    cb = RegularizationCallback([reglab.create("group_lasso", weight=5.0).on(params="net.0.weight", mode="prox")])
    trainer = _trainer([cb])
    trainer.fit(model, _data())
    rows = model.net[0].weight.detach().norm(dim=1)
    assert (rows == 0).sum() >= 1  # exact zero rows: the proximal step ran
    cb2 = RegularizationCallback([reglab.L2(1e-2)])
    trainer2 = _trainer([cb2])
    trainer2.fit(Tiny(), _data())
    assert "reg/l2" in trainer2.logged_metrics


def test_gradient_accumulation_scales_the_penalty_like_the_loss():
    a, b = Tiny(), Tiny()
    _trainer([RegularizationCallback([reglab.L2(1e-1)])], accumulate_grad_batches=2).fit(a, _data())

    class ByHand(Tiny):
        def setup(self, stage):
            self.regs = reglab.attach(self, [reglab.L2(1e-1)])

        def training_step(self, batch, batch_idx):
            return super().training_step(batch, batch_idx) + self.regs.penalty()

    b = ByHand()
    _trainer([], accumulate_grad_batches=2).fit(b, _data())
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def _grad_mode_run(mode, **kw):
    model = Tiny()
    regs = [
        reglab.L2(1e-1).on(mode=mode),
        reglab.create("soft_orthogonality", weight=1e-2).on(params="net.0.weight", mode=mode, every=2),
    ]
    cb = RegularizationCallback(regs)
    _trainer([cb], **kw).fit(model, _data())
    return model, cb


@pytest.mark.parametrize("accumulate", [1, 2])
def test_grad_mode_equals_penalty_mode(accumulate):
    a, cb_a = _grad_mode_run("penalty", accumulate_grad_batches=accumulate)
    b, cb_b = _grad_mode_run("grad", accumulate_grad_batches=accumulate)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)
    steps = 4 // accumulate
    assert cb_b.regs.regularizers[0].step_count == steps  # one regs.step() per optimizer step
    plain = Tiny()
    _trainer([], accumulate_grad_batches=accumulate).fit(plain, _data())
    assert not torch.allclose(plain.net[0].weight, b.net[0].weight)  # the gradients were added
