"""Hierarchical Channel Sampling (Bao, Sivanandan & Karaletsos, ICLR 2024: "Channel Vision Transformers: An
Image Is Worth C x 16 x 16 Words").

Per training batch: draw the number of channels to keep m ∼ U{1, …, C} (C = the channels present,
i.e. not all zero in the batch), then a uniformly random subset of C − m channels to zero, and
rescale the input by C/m. Unlike independent channel dropout, whose kept count concentrates near
C·(1 − p), every subset size is equally likely, which trains the model for test inputs where only
some channels exist. Pinned from the official code (insitro/ChannelViT, commit 1077a103,
``channelvit/backbone/hcs_vit.py``, ``PatchEmbed.forward``: ``Cin`` = nonzero channels of the batch,
``C_new = random.randint(1, Cin)``, ``x = x / C_new * Cin``, ``random.sample`` of the Cin − C_new
channels set to 0; training only; README "Training ViT-S/8 with HCS" steps 1-3). Channels are
counted present when any entry is nonzero (the official tests their sum, which differs only for a
channel whose entries cancel exactly).
"""

from __future__ import annotations

import torch

from reglab.core import Claim, FunctionModule, Paper, register
from reglab.ops import check_tensor

__all__ = ["hierarchical_channel_sampling", "HierarchicalChannelSampling"]

PAPER = Paper(
    "Channel Vision Transformers: An Image Is Worth C x 16 x 16 Words",
    "Bao, Sivanandan, Karaletsos", 2024, arxiv="2309.16108", venue="ICLR", code="https://github.com/insitro/ChannelViT")

WHO = "HierarchicalChannelSampling"


def hierarchical_channel_sampling(
    x: torch.Tensor, training: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """HCS on a (batch, channels, ...) input: keep m ∼ U{1..C} of the C present channels (one draw per
    batch), zero the others, scale by C/m; the identity when not ``training``."""
    check_tensor(WHO, x, arg="input", min_ndim=2)
    if not training:
        return x
    present = (x != 0).flatten(2).any(dim=2).any(dim=0) if x.ndim > 2 else (x != 0).any(dim=0)
    channels = present.nonzero().flatten()
    c_in = int(channels.numel())
    if c_in <= 1:
        return x
    keep = int(torch.randint(1, c_in + 1, (1,), generator=generator))
    dropped = channels[torch.randperm(c_in, generator=generator)[: c_in - keep].to(channels.device)]
    mask = torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
    mask[dropped] = 0.0
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    return x * (mask * (c_in / keep)).reshape(shape)


@register
class HierarchicalChannelSampling(FunctionModule):
    """Hierarchical Channel Sampling: train on a random subset of the input channels, of uniform size.

    Per batch, in training: m ∼ U{1, …, C} channels are kept (C = the channels present in the batch),
    the other C − m, chosen uniformly, are zeroed, and the input is scaled by C/m (Bao et al., 2024,
    Sec. 3.2; official ``hcs_vit.py``). Identity in ``.eval()``. A transform for multi-channel
    inputs (channels on dim 1: image channels, modalities, sensor bands); place it before the
    first layer. The same draw applies to the whole batch, as in the official code. No
    hyperparameters.
    """

    name = "hierarchical_channel_sampling"
    kind = "stochastic"
    form = "transform"
    paper = PAPER
    formula = "m ∼ U{1..C};  zero a random C − m channels;  x ← x·C/m  (per batch, training only)"
    function = hierarchical_channel_sampling
    call_args = ("training", "generator")
    claims = (
        Claim(
            "Training with HCS keeps accuracy when only a subset of the input channels is available at test time",
            testable=False,
            untestable_reason="no lab task has multi-channel inputs evaluated on channel subsets (the paper's "
            "JUMP-CP cell painting, So2Sat and ImageNet-by-RGB-channel); a faithful test needs a task that "
            "trains on all channels and reports accuracy on each subset",
            source="Bao et al. 2024, Tables 1-3 (ViT and ChannelViT with vs without HCS on channel subsets)",
        ),
    )

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return super().forward(x, training=self.training, generator=generator)
