"""No per-step host sync on accelerators: finite checks are queued and read once per step.

There is no GPU here: ``reglab.core.checks.defers`` decides, per tensor, whether a check is
queued (any device but the CPU); the tests make it say yes for CPU tensors and forbid every
host read (``Tensor.__bool__``, ``.item()``, ``.tolist()``) during the step, so a sync would fail.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

import reglab
from reglab.core import checks


@pytest.fixture
def accelerator(monkeypatch):
    """Pretend every tensor lives on an accelerator; start and end with an empty queue."""
    monkeypatch.setattr(checks, "defers", lambda x: True)
    checks._pending.clear()
    yield
    checks._pending.clear()


@contextlib.contextmanager
def no_host_sync(monkeypatch):
    def sync(self, *a, **k):
        raise AssertionError("host sync during the step")

    with monkeypatch.context() as m:
        for name in ("__bool__", "item", "tolist", "__float__", "__int__"):
            m.setattr(torch.Tensor, name, sync)
        yield


WEIGHT_NAMES = ["l1", "l2", "elastic_net", "group_lasso", "sparse_group_lasso", "soft_orthogonality", "norm_loss",
                "spectral_norm", "srip"]  # fmt: skip


@pytest.mark.parametrize("mode", ["penalty", "grad"])
@pytest.mark.parametrize("name", WEIGHT_NAMES)
def test_a_training_step_reads_nothing_back(accelerator, monkeypatch, name, mode):
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    regs = reglab.attach(model, reglab.create(name).on(mode=mode))
    loss_fn = nn.MSELoss()
    x, y = torch.randn(4, 6), torch.randn(4, 3)
    with no_host_sync(monkeypatch):
        with pytest.raises(AssertionError, match="host sync"):
            bool(torch.ones(()))  # the guard works
        loss = loss_fn(model(x), y) + regs.penalty()
        loss.backward()
        regs.add_grads()
    assert checks.pending_checks() >= 1
    regs.step()  # the one read, here
    assert checks.pending_checks() == 0


def test_nan_weight_raises_at_the_step_naming_the_regularizer(accelerator):
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    regs = reglab.attach(model, reglab.create("group_lasso"))
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    regs.penalty()  # no error yet: nothing was read
    with pytest.raises(reglab.RegularizerInputError, match=r"group_lasso.*non-finite.*checked at the step's end"):
        regs.step()
    assert checks.pending_checks() == 0


def test_queue_flushes_itself_without_a_regularizer_set(accelerator, monkeypatch):
    monkeypatch.setattr(checks, "FLUSH_EVERY", 3)
    reg = reglab.L2()
    reg(torch.randn(3, 3))
    reg(torch.randn(3, 3))
    assert checks.pending_checks() == 2
    with pytest.raises(reglab.RegularizerInputError, match="l2"):
        reg(torch.full((3, 3), float("nan")))
    assert checks.pending_checks() == 0


def test_cpu_still_raises_at_the_call():
    assert not checks.defers(torch.ones(1))
    with pytest.raises(reglab.RegularizerInputError, match="l2"):
        reglab.L2()(torch.full((3, 3), float("nan")))
    assert checks.pending_checks() == 0


@pytest.mark.parametrize("name", ["vicreg", "vcreg", "barlow_twins", "uniformity", "koleo", "flops"])
def test_representation_penalties_read_nothing_back(accelerator, monkeypatch, name):
    reg = reglab.create(name)
    z1 = torch.randn(16, 8, requires_grad=True)
    z2 = (z1.detach() + 0.1 * torch.randn(16, 8)).requires_grad_()
    with no_host_sync(monkeypatch):
        reg(*(z1, z2)[: reg.num_inputs]).backward()
    assert checks.pending_checks() >= 1
    checks.flush_checks()


def test_representation_nan_and_float32_overflow_raise_at_the_flush(accelerator):
    reg = reglab.create("vcreg")
    z = torch.randn(8, 4)
    z[0, 0] = float("nan")
    reg(z)  # nothing read yet
    with pytest.raises(reglab.RegularizerInputError, match=r"VCReg got NaN or inf.*checked at the step's end"):
        checks.flush_checks()
    reg(torch.randn(8, 4) * 1e12)
    with pytest.raises(reglab.RegularizerInputError, match="float32 statistics overflow; pass float64"):
        checks.flush_checks()
    reg(torch.randn(8, 4, dtype=torch.float64) * 1e12)  # float64 input: no overflow check
    checks.flush_checks()


# ---------------------------------------------------------------- labels, indices, group maps
def _label_calls():
    """(name, call(labels, index) -> value) for the regularizers that take class labels or dataset indices."""
    logits = torch.randn(6, 4, requires_grad=True)
    ls = reglab.create("label_smoothing")
    elr = reglab.create("elr", num_samples=10, num_classes=4)
    pskd = reglab.create("pskd", num_samples=10, num_classes=4)
    return [
        ("LabelSmoothing", lambda y, i: ls(y, 4).sum()),
        ("ELR", lambda y, i: elr(logits, i)),
        ("PSKD", lambda y, i: pskd(y, i, logits).sum()),
    ]


@pytest.mark.parametrize("k", range(3))
def test_labels_and_indices_are_checked_without_a_host_read(accelerator, monkeypatch, k):
    name, call = _label_calls()[k]
    y, i = torch.tensor([0, 1, 2, 3, 0, 1]), torch.arange(6)
    with no_host_sync(monkeypatch):
        call(y, i)
    assert checks.pending_checks() >= 1
    checks.flush_checks()


@pytest.mark.parametrize("k", range(3))
def test_an_out_of_range_label_or_index_raises_at_the_flush_and_never_indexes_out_of_bounds(accelerator, k):
    name, call = _label_calls()[k]
    y, i = torch.tensor([0, 1, 2, 3, 0, 1]), torch.arange(6)
    bad_y, bad_i = torch.tensor([0, 1, 2, 7, 0, 1]), torch.tensor([0, 1, 2, 3, 4, 12])
    value = call(bad_y if name != "ELR" else y, bad_i)  # clamped: no IndexError (a device assert on CUDA)
    assert torch.isfinite(value).all()
    what = "dataset indices in \\[0, 10\\)" if name == "ELR" else "labels in \\[0, 4\\)"
    with pytest.raises(reglab.RegularizerInputError, match=f"{name} expects {what}.*got a value outside it"):
        checks.flush_checks()


def test_cpu_labels_still_raise_at_the_call_with_the_values():
    with pytest.raises(reglab.RegularizerInputError, match=r"LabelSmoothing expects labels in \[0, 4\), got values in \[0, 7\]"):
        reglab.create("label_smoothing")(torch.tensor([0, 7]), 4)
    assert checks.pending_checks() == 0


def test_a_group_map_is_read_once_not_every_step(accelerator, monkeypatch):
    w = torch.randn(4, 6, requires_grad=True)
    ids = torch.arange(24).reshape(4, 6) % 5
    reg = reglab.create("group_lasso", groups=ids)
    first = reg(w)  # the map's check and structure: read once
    with no_host_sync(monkeypatch):
        again = reg(w)
        again.backward()
    assert torch.equal(first, again.detach())
    checks.flush_checks()
    ids[0, 0] = 3  # changed in place: checked and analysed again
    with pytest.raises(AssertionError, match="host sync"), no_host_sync(monkeypatch):
        reg(w)
    ids[0, 0] = -1
    with pytest.raises(reglab.RegularizerInputError, match="non-negative group ids"):
        reg(w)
