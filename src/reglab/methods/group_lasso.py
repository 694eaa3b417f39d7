"""Group lasso (Yuan & Lin, 2006; for deep networks Scardapane et al., 2017).

R(w) = Σ_g √p_g ‖w_g‖₂: each group's L2 norm scaled by the square root of
its size p_g (Yuan & Lin 2006; Scardapane et al. 2017, Eq. 5), which zeroes
whole units or filters. Groups: ``"out"`` = output units / filters (rows of
the flattened weight, p_g = in·k…; each element of a 1-D tensor is a group),
``"in"`` = input units / channels (dim 1, all other dims in the group), or,
for one tensor, an integer tensor of group ids with the weight's shape.

Global scope: each whole tensor is one group, Σ_t √p_t ‖w_t‖₂, which prunes
entire layers. Proximal operator (exact): group soft thresholding,
w_g ← max(0, 1 − t√p_g/‖w_g‖)·w_g.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from reglab.core import Baseline, Claim, Paper, WeightRegularizer, register
from reglab.ops import as_tensors, checked_total, group_norm_sum, group_prox_, grouping, hyperparameters

PAPER = Paper(
    "Group sparse regularization for deep neural networks",
    "Scardapane, S., Comminiello, D., Hussain, A. and Uncini, A.", 2017, arxiv="1607.00485", venue="Neurocomputing")


@hyperparameters(groups=grouping)
def group_lasso(w: torch.Tensor | Sequence[torch.Tensor], groups: str | torch.Tensor = "out") -> torch.Tensor:
    """Group lasso ``Σ_g √p_g ‖w_g‖₂`` (Yuan & Lin, 2006), summed over tensors.

    ``groups`` is ``"out"`` (output units/filters: rows of the flattened
    weight), ``"in"`` (input units/channels: dim 1) or, for one tensor, an
    integer tensor of group ids with the weight's shape.
    """
    ws = as_tensors("group_lasso", w)
    return checked_total("group_lasso", group_norm_sum("group_lasso", ws, groups), ws)


def group_lasso_global(tensors: Sequence[torch.Tensor], groups: str | torch.Tensor = "out") -> torch.Tensor:
    """Layer-level group lasso: each whole tensor is one group, ``Σ_t √p_t ‖w_t‖₂``.

    ``groups`` is accepted (and ignored) so the global form takes the same
    configuration as the local one.
    """
    ws = as_tensors("group_lasso", list(tensors))
    norms = torch.stack(torch._foreach_norm(ws, 2))
    sizes = torch.tensor([math.sqrt(w.numel()) for w in ws], dtype=norms.dtype, device=norms.device)
    return checked_total("group_lasso", (sizes * norms).sum(), ws)


@register
class GroupLasso(WeightRegularizer):
    """Group lasso: R(w) = Σ_g √p_g ‖w_g‖₂, zeroing whole units or filters.

    Groups (``groups``): ``"out"`` = output units / filters (rows of the
    flattened weight, p_g = in·k…), ``"in"`` = input units / channels (dim
    1, all other dims in the group). Each group norm is scaled by √(group
    size), Yuan & Lin (2006); Scardapane et al. (2017), Eq. 5. Arbitrary
    group maps (an integer tensor of ids per element) are supported by
    ``RF.group_lasso(w, groups=ids)``.

    Proximal operator (exact): group soft thresholding,
    w_g ← max(0, 1 − t√p_g/‖w_g‖)·w_g (:func:`reglab.ops.prox.group_soft_threshold`).

    Global scope (``.on(scope="global")``): each whole tensor is one group,
    Σ_t √p_t‖w_t‖₂, which prunes entire layers (layer-level sparsity).
    """

    name = "group_lasso"
    formula = "R(w) = Σ_g √p_g ‖w_g‖₂"
    paper = PAPER
    function = group_lasso
    global_function = group_lasso_global
    default_weight = 1e-4
    # Lab weight 0.3: with Adam at lr 1e-3 for ~800 steps, the cumulative
    # proximal threshold 800·lr·λ·√p reaches the ~0.6 initial filter norm of
    # the first conv layer (√p = 3) at λ ≈ 0.25; not a paper constant.
    claims = (
        Claim(
            "Group lasso keeps accuracy with many filters removed: test accuracy after pruning half of each "
            "layer's filters (smallest norm, no retraining) is higher",
            task="structured_sparsity", metric="pruned50_accuracy", direction="higher",
            arm={"name": "group_lasso", "weight": 0.3},
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(
                Baseline("no regularizer, same pruning"),
                Baseline(
                    "L2 (5e-4), same pruning", {"name": "l2", "weight": 5e-4},
                    why="weight decay + magnitude pruning, the usual recipe",
                ),
            ),
            datasets=("digits", "digits_half"),
            settings="weight 0.3 in proximal mode (the paper tunes λ per network) was chosen during development on "
            "digits seeds 0-4, with their test splits in view: those seeds are not evidence; the committed report "
            "uses seeds 200+ and digits_half, never used in choosing it. L2 5e-4 is the common default, not tuned",
            source="Scardapane et al. 2017, Sec. 5",
        ),
        Claim(
            "Group lasso does not cost accuracy before pruning",
            task="structured_sparsity", metric="test_accuracy", direction="higher", kind="non-inferiority",
            arm={"name": "group_lasso", "weight": 0.3},
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(Baseline("no regularizer"),),
            datasets=("digits", "digits_half"),
            settings="as above",
            source="Scardapane et al. 2017, Tables 2-4 (accuracy kept at high sparsity)",
        ),
    )

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        group_prox_("GroupLasso", w, self.groups, step_size)
