"""A reglab embedding regularizer plugs into a PML loss's embedding_regularizer= (issue 26, item 14)."""

import pytest
import torch

import reglab
from reglab.integrations.pml import as_pml_regularizer


def test_the_adapter_refuses_what_pml_cannot_call():
    with pytest.raises(TypeError, match="VICReg takes 2 input"):
        as_pml_regularizer(reglab.create("vicreg"))
    with pytest.raises(TypeError, match="'target' regularizer"):
        as_pml_regularizer(reglab.create("label_smoothing"))
    with pytest.raises(TypeError, match="L2 takes 1 input"):
        as_pml_regularizer(reglab.L2())


def test_a_pml_loss_adds_the_reglab_regularizer():
    losses = pytest.importorskip("pytorch_metric_learning.losses")  # pip install --no-deps pytorch-metric-learning
    torch.manual_seed(0)
    emb = torch.randn(16, 8, requires_grad=True)
    labels = torch.arange(8).repeat(2)
    koleo = reglab.create("koleo", weight=0.1)
    plain = losses.ContrastiveLoss()(emb, labels)
    regularized = losses.ContrastiveLoss(embedding_regularizer=as_pml_regularizer(koleo), embedding_reg_weight=2.0)
    got = regularized(emb, labels)
    torch.testing.assert_close(got, plain + 2.0 * 0.1 * reglab.functional.koleo(emb))
    got.backward()
    assert emb.grad is not None and torch.isfinite(emb.grad).all()
