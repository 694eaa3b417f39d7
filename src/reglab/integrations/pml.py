"""Use a reglab embedding regularizer as a pytorch-metric-learning loss's ``embedding_regularizer=``.

pytorch-metric-learning (PML) calls ``loss.embedding_regularizer(embeddings)`` on the batch
of embeddings its loss receives and adds the scalar, times ``embedding_reg_weight``, to the
loss (``EmbeddingRegularizerMixin``). A reglab regularizer on one batch of embeddings
already maps ``(n, d)`` to a weighted scalar; ``as_pml_regularizer`` checks that it
can (one input, a penalty) and wraps it so PML sees a module with that call::

    from pytorch_metric_learning import losses
    from reglab.integrations.pml import as_pml_regularizer

    loss_fn = losses.ContrastiveLoss(embedding_regularizer=as_pml_regularizer(reglab.KoLeo(0.1)))

The regularizer's own ``weight`` applies, and PML's ``embedding_reg_weight`` (default 1)
multiplies it again. Two-view losses (VICReg, Barlow Twins) take two batches and do not fit
PML's one-batch call: use them on the two views directly. PML itself is not imported here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["PMLEmbeddingRegularizer", "as_pml_regularizer"]


class PMLEmbeddingRegularizer(nn.Module):
    """A reglab penalty on one batch of embeddings, called as PML calls an embedding regularizer."""

    def __init__(self, regularizer: Any):
        super().__init__()
        from reglab.core.regularizer import Regularizer

        who = type(regularizer).__name__
        if not isinstance(regularizer, Regularizer):
            form = getattr(type(regularizer), "form", None)
            raise TypeError(
                f"as_pml_regularizer takes a reglab penalty on embeddings, got {who}"
                + (f" (a {form!r} regularizer, not a penalty)" if form else "")
            )
        if regularizer.num_inputs != 1 or regularizer.target == "weights":
            raise TypeError(
                f"as_pml_regularizer: {who} takes {regularizer.num_inputs} input(s) of kind "
                f"{regularizer.kind!r}; PML passes one batch of embeddings (n, d), so only single-batch "
                f"embedding regularizers fit (koleo, uniformity, vcreg, flops, ...); call two-view losses "
                f"on the two views directly"
            )
        self.regularizer = regularizer

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.regularizer(embeddings)


def as_pml_regularizer(regularizer: Any) -> PMLEmbeddingRegularizer:
    """Wrap ``regularizer`` for ``pytorch_metric_learning.losses.*(embedding_regularizer=...)``."""
    return PMLEmbeddingRegularizer(regularizer)
