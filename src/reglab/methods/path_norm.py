"""Path-norm (Gonon, Brisebarre, Riccietti & Gribonval, ICLR 2024): the L^q norm of the path-lifting of a ReLU network.

Φ_q(θ) = (Σ_paths Π_{edges on the path} |w_e|^q)^{1/q}, over every path from
an input (or a bias: a bias starts a path) to an output of the network's DAG.
It is invariant to the rescaling symmetries of ReLU networks and bounds
their generalization error (the paper's Theorem 3.1).

Computed as the official toolkit does (agonon/pathnorm_toolkit,
``src/pathnorm/path_norm/compute_path_norm.py``: ``set_weights_for_path_norm``
puts ``|w|^q`` in every weight and bias, ``get_path_norm`` then runs one
forward pass on a constant input of ones and returns
``(Σ outputs)^{1/q}``; the paper's Theorem A.1): with all weights
non-negative and the input positive every ReLU is the identity, so the
output sums the path products. Here the weights are substituted with
``torch.func.functional_call`` (the model is not modified), so the result
is differentiable and can be used as a penalty.

Supported layers: Linear and Conv (weights and biases), ReLU, Identity,
Flatten, Dropout (off during the computation), and average pooling for
q = 1 (its weights 1/k would need the power q otherwise: the official code
corrects the one final average pool of a ResNet by ``(1/49)^(q−1)``).
Max pooling (which the toolkit replaces by a sum-convolution) and
normalization layers (to be folded into the weights first) raise an error,
as do other layers. The forward may add skip connections (a sum of paths).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from reglab.core import Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.ops import hyperparameters
from reglab.ops.validation import describe

__all__ = ["path_norm", "PathNorm"]

PAPER = Paper(
    "A path-norm toolkit for modern networks: consequences, promises and challenges",
    "Gonon, A., Brisebarre, N., Riccietti, E. and Gribonval, R.", 2024, arxiv="2310.01225", venue="ICLR",
    code="https://github.com/agonon/pathnorm_toolkit")

WHO = "PathNorm"
_WEIGHTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NEUTRAL = (nn.ReLU, nn.Identity, nn.Flatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
_AVERAGE = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)


def _at_least_one(who: str, name: str, value: object) -> object:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 1:
        raise RegularizerInputError(f"{who} expects {name} ≥ 1 (the L^q path-norm), got {value!r}")
    return value


def _check_model(model: object, q: float) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise RegularizerInputError(f"{WHO} expects an nn.Module (a ReLU network), got {describe(model)}")
    for name, m in model.named_modules():
        if list(m.children()):
            if list(m.parameters(recurse=False)):
                raise RegularizerInputError(
                    f"{WHO}: module {name or 'the model'} ({type(m).__name__}) holds parameters of its own; the "
                    f"path-norm is computed for networks of Linear/Conv layers, ReLU, average pooling and skips"
                )
            continue
        if isinstance(m, _WEIGHTED) or isinstance(m, _NEUTRAL):
            continue
        if isinstance(m, _AVERAGE):
            if q != 1:
                raise RegularizerInputError(
                    f"{WHO}: average pooling ({name}) is supported for q = 1 only (its weights 1/k would need "
                    f"the power q), got q={q}"
                )
            continue
        raise RegularizerInputError(
            f"{WHO}: layer {name} ({type(m).__name__}) is not supported: the path-norm is computed for DAG ReLU "
            f"networks of Linear/Conv layers, ReLU, average pooling and skip connections (fold normalization "
            f"layers into the weights first; max pooling needs the toolkit's sum-convolution replacement)"
        )
    return model


@hyperparameters(WHO, q=_at_least_one)
def path_norm(model: nn.Module, input_shape: Sequence[int], q: float = 1.0) -> torch.Tensor:
    """The L^q path-norm of a ReLU network (Gonon et al., 2024, Theorem A.1): ``(Σ f_{|θ|^q}(1))^{1/q}``.

    ``input_shape``: one sample's shape (without the batch dimension), e.g.
    ``(64,)`` or ``(3, 32, 32)``. Every weight and bias is replaced by
    ``|·|^q`` (differentiably; the model is left as it is), the network is
    run on a single all-ones input in eval mode, and the outputs are summed.
    """
    _check_model(model, q)
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    if not (isinstance(input_shape, (tuple, list, torch.Size)) and input_shape
            and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in input_shape)):
        raise RegularizerInputError(f"{WHO} expects input_shape, a sequence of positive ints, got {input_shape!r}")
    params = dict(model.named_parameters())
    if not params:
        raise RegularizerInputError(f"{WHO}: the model has no parameters")
    first = next(iter(params.values()))
    if not first.is_floating_point():
        raise RegularizerInputError(f"{WHO} expects floating-point weights, got {first.dtype}")
    for name, p in params.items():
        if p.device.type != "meta" and not bool(torch.isfinite(p).all()):
            raise RegularizerInputError(f"{WHO}: parameter {name} of shape {tuple(p.shape)} has NaN or inf values")
    powered = {n: p.abs() if q == 1 else p.abs().pow(q) for n, p in params.items()}
    ones = torch.ones(1, *input_shape, dtype=first.dtype, device=first.device)
    was_training = model.training
    model.eval()
    try:
        out = torch.func.functional_call(model, powered, (ones,))
    except RuntimeError as e:
        raise RegularizerInputError(
            f"{WHO}: the model's forward failed on an all-ones input of shape {tuple(ones.shape)} "
            f"(input_shape={tuple(input_shape)}): {e}"
        ) from None
    finally:
        model.train(was_training)
    total = out.sum()
    value = total if q == 1 else total.pow(1.0 / q)
    if value.device.type != "meta" and not bool(torch.isfinite(value)):
        raise RegularizerInputError(
            f"{WHO}: the path-norm overflows {value.dtype} (the path products grow with depth); compute it in float64"
        )
    return value


@register
class PathNorm(Regularizer):
    """Path-norm Φ_q(θ) = (Σ_paths Π|w|^q)^{1/q} of a ReLU network; a diagnostic and a penalty.

    Gonon et al. (2024): the L^q norm of the network's path-lifting, one
    forward pass on an all-ones input with every weight and bias replaced by
    ``|·|^q`` (Theorem A.1; the official toolkit's recipe). Invariant to the
    rescaling symmetries of ReLU networks (scale a hidden unit's input
    weights by c and its output weights by 1/c), it appears in their
    generalization bound. As a penalty it is differentiable::

        pn = reglab.PathNorm(weight=1e-4)                # L1 path-norm
        loss = task_loss + pn(model, input_shape=(64,))
        reglab.functional.path_norm(model, (64,), q=2)   # the L2 path-norm, as a diagnostic

    Supports Linear/Conv layers, ReLU, Dropout, average pooling (q = 1) and
    skip connections; raises on other layers. Cost: one forward pass on one
    input. The default weight is a library choice (the paper proposes no
    penalty coefficient).
    """

    name = "path_norm"
    kind = "weight"
    formula = "Φ_q(θ) = (Σ_paths Π_e |w_e|^q)^{1/q} = (Σ f_{|θ|^q}(1))^{1/q}"
    paper = PAPER
    function = path_norm
    default_weight = 1e-4
    claims = (
        Claim(
            "The path-norm bounds the generalization error of ReLU networks and is invariant to their rescaling "
            "symmetries",
            testable=False,
            untestable_reason="a generalization bound and its numerical evaluation on ImageNet ResNets, not an "
            "accuracy gain from a penalty; the invariance is checked exactly in the tests",
            source="Gonon et al. 2024, Theorem 3.1 and Sec. 5 (path-norms of pretrained ResNets)",
        ),
    )
