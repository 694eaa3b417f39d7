"""OReX's input-gradient hinge: cap the spatial gradient of a neural field at the training samples
(Sawdayee, Vaxman, Bermano, "OReX: Object Reconstruction from Planar Cross-sections Using Neural Fields", CVPR 2023).

    R = mean_i max(‖∇_x f(x_i)‖₂ − α, 0),   α = 100,

the norm over the last (coordinate) dimension of the inputs, the gradient of the summed outputs taken
with ``create_graph=True`` (double backprop). The penalty is local because the training points are: OReX
samples them near the cross-sections' in/out boundaries, where ripples appear. Pinned from the official
code, haimsaw/OReX @ 089db1f: ``Trainer.py`` ``_get_loss_parts`` (L33–50) and ``Globals.py`` L47–48
(``--eikonal_hinge_lambda`` 1e-4, ``--hinge_alpha`` 100).
"""

from __future__ import annotations

import torch

from reglab.core import Claim, Paper, Regularizer, RegularizerInputError, register
from reglab.ops import check_tensor, hyperparameters, non_negative

__all__ = ["gradient_hinge", "GradientHinge"]

PAPER = Paper(
    "OReX: Object Reconstruction from Planar Cross-sections Using Neural Fields", "Sawdayee, Vaxman, Bermano",
    2023, arxiv="2211.12886", venue="CVPR", code="https://github.com/haimsaw/OReX")

WHO = "GradientHinge"


@hyperparameters(WHO, alpha=non_negative)
def gradient_hinge(inputs: torch.Tensor, output: torch.Tensor, *, alpha: float = 100.0) -> torch.Tensor:
    """``mean max(‖∂(Σ output)/∂inputs‖ − α, 0)``, the norm over ``inputs``' last dimension (OReX ``Trainer.py``).

    ``inputs`` must require grad before ``output = f(inputs)``; the graph is kept so the penalty trains f.
    """
    check_tensor(WHO, inputs, arg="inputs", min_ndim=1)
    check_tensor(WHO, output, arg="output", min_ndim=0)
    if not inputs.requires_grad or not output.requires_grad:
        raise RegularizerInputError(
            f"{WHO} needs inputs that require grad and an output computed from them: call "
            f"inputs.requires_grad_(True) before output = f(inputs)")
    (grad,) = torch.autograd.grad(output.sum(), inputs, create_graph=True, allow_unused=True)
    if grad is None:
        raise RegularizerInputError(f"{WHO}: the output was not computed from these inputs")
    return torch.relu(grad.norm(dim=-1) - alpha).mean()


@register
class GradientHinge(Regularizer):
    """OReX's localized input-gradient hinge: mean_i max(‖∇_x f(x_i)‖ − α, 0), α = 100.

    ``reg(inputs, output)`` with ``inputs.requires_grad_(True)`` set before the forward; apply it at the
    points where ripples should be suppressed (OReX: its training samples, drawn near the slices' in/out
    boundaries). Default weight 1e-4 (``--eikonal_hinge_lambda``). Per-point mean: no gather.
    """

    name = "gradient_hinge"
    kind = "procedure"
    form = "penalty"
    num_inputs = 2
    paper = PAPER
    formula = "mean_i max(‖∇_x f(x_i)‖₂ − α, 0)"
    function = gradient_hinge
    default_weight = 1e-4
    claims = (
        Claim(
            "The input-gradient hinge near the in/out boundaries removes ripple artifacts from reconstructions "
            "from planar cross-sections",
            testable=False,
            untestable_reason="needs 3-D reconstruction of shapes from planar slices with a surface-quality "
            "metric; no lab task fits a neural field",
        ),
    )
