"""Orthogonal convolution regularizer (OCNN; Wang, Chen, Chakraborty & Yu, CVPR 2020).

A convolution is orthogonal (its doubly block-Toeplitz matrix is) when the
kernel convolved with itself is the identity kernel:

    R(K) = ‖Conv(K, K, stride=s, padding=p) − I_r0‖_F

where Conv(K, K) treats the (out, in, k, k) kernel both as a batch of `out`
inputs and as the filter bank, giving an (out, out, h', w') tensor, and I_r0
holds the identity (out×out) at the spatial centre ⌊h'/2⌋, ⌊w'/2⌋ and
zeros elsewhere. Note the norm is **not squared**.

Pinned from the official code (samaonline/Orthogonal-Convolutional-Neural-Networks,
``imagenet/utils.py``: ``deconv_orth_dist(kernel, stride=2, padding=1)``
(the formula above, ``torch.norm``), ``orth_dist`` (‖MᵀM − I‖_F, M the
flattened weight made tall: for 1×1 convolutions and matrices);
``imagenet/main_orth18.py``: each 3×3 kernel is called with its layer's
stride (1 or 2) and the default padding 1, each 1×1 downsample convolution
with ``orth_dist``, and the sum is weighted by ``-r 0.1``). Here 1-D and
3-D convolutions use conv1d/conv3d the same way (the official code has 2-D
only); 2-D weights and 1×1 kernels use ``orth_dist``, as the official code
does for its 1×1 layers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from reglab.core import Claim, Paper, WeightRegularizer, register
from reglab.ops import as_tensors, checked_total, flatten_rows, full_precision, hyperparameters, integer, sum_terms
from reglab.ops.linalg import gram

__all__ = ["conv_orthogonality", "ConvOrthogonality"]

PAPER = Paper(
    "Orthogonal Convolutional Neural Networks",
    "Wang, J., Chen, Y., Chakraborty, R. and Yu, S. X.", 2020, arxiv="1911.12207", venue="CVPR",
    code="https://github.com/samaonline/Orthogonal-Convolutional-Neural-Networks")

WHO = "conv_orthogonality"
_CONV = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}


def _matrix_distance(w: torch.Tensor) -> torch.Tensor:
    """Official ``orth_dist``: ‖MᵀM − I‖_F with M the flattened weight, transposed to be tall."""
    m = flatten_rows(w)
    if m.shape[0] < m.shape[1]:
        m = m.T
    d = gram(m.T)
    d.diagonal().sub_(1.0)
    return torch.linalg.vector_norm(d)


def _kernel_distance(w: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """Official ``deconv_orth_dist``: ‖Conv(K, K, stride, padding) − I_r0‖_F."""
    out = _CONV[w.ndim](w, w, stride=stride, padding=padding)
    target = torch.zeros_like(out)
    centre = tuple(s // 2 for s in out.shape[2:])
    idx = torch.arange(w.shape[0], device=w.device)
    target[(idx, idx, *centre)] = 1.0
    return torch.linalg.vector_norm(out - target)


@full_precision
@hyperparameters("ConvOrthogonality", stride=integer(1), padding=integer(0))
def conv_orthogonality(
    w: torch.Tensor | Sequence[torch.Tensor], stride: int = 1, padding: int = 1
) -> torch.Tensor:
    """OCNN (Wang et al., 2020): ``Σ ‖Conv(K, K, stride, padding) − I_r0‖_F`` over the kernels.

    Convolution kernels (out, in, k…) with a spatial size above 1 use the
    kernel condition; matrices and 1×1 kernels use ``‖MᵀM − I‖_F`` (M the
    flattened weight, made tall), as the official code does for its 1×1
    layers. ``stride`` should be the layer's stride; ``padding`` 1 is the
    official default (the paper's full condition uses ⌊(k − 1)/s⌋·s).
    """
    ws = as_tensors(WHO, w, min_ndim=2)
    terms = []
    for t in ws:
        if t.ndim == 2 or all(s == 1 for s in t.shape[2:]):
            terms.append(_matrix_distance(t))
        else:
            terms.append(_kernel_distance(t, stride, padding))
    return checked_total(WHO, sum_terms(terms), ws)


@register
class ConvOrthogonality(WeightRegularizer):
    """OCNN kernel orthogonality: R(K) = ‖Conv(K, K, stride, padding) − I_r0‖_F (not squared).

    Wang, Chen, Chakraborty & Yu (2020): a convolution layer is orthogonal
    (norm-preserving, with uniform spectrum) when its kernel, convolved with
    itself at the layer's stride, is the identity at the centre and zero at
    every other shift; the penalty is the Frobenius distance to that. The
    official code (samaonline/Orthogonal-Convolutional-Neural-Networks)
    calls it per 3×3 layer with the layer's stride and padding 1, uses
    ‖MᵀM − I‖_F for 1×1 convolutions, and weights the sum by r = 0.1 on
    ImageNet. Bind layers of different strides separately::

        regs = reglab.attach(model, [
            reglab.ConvOrthogonality(0.1).on(modules=[m for m in convs if m.stride[0] == 1]),
            reglab.ConvOrthogonality(0.1, stride=2).on(modules=[m for m in convs if m.stride[0] == 2]),
        ])

    Cost: one convolution of the kernel with itself per layer (out²·in·k⁴).
    """

    name = "conv_orthogonality"
    formula = "R(K) = ‖Conv(K, K, stride, padding) − I_r0‖_F"
    paper = PAPER
    function = conv_orthogonality
    default_weight = 0.1
    claims = (
        Claim(
            "Kernel orthogonality improves image classification accuracy and robustness of CNNs",
            testable=False,
            untestable_reason="needs a CNN task taking a weight penalty: the lab's CNN task (small_data_cnn) takes "
            "input transforms only, and on the MLP tasks the penalty reduces to ‖WᵀW − I‖_F (soft orthogonality, "
            "already tested there)",
            source="Wang et al. 2020, Tables 3-6 (CIFAR-100 and ImageNet ResNets, robustness to attacks)",
        ),
    )
