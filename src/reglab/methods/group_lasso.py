"""Group lasso (Yuan & Lin, 2006; for deep networks Scardapane et al., 2017).

R(w) = Σ_g √p_g ‖w_g‖₂: each group's L2 norm scaled by the square root of
its size p_g (Yuan & Lin 2006; Scardapane et al. 2017, Eq. 5), which zeroes
whole units or filters. ``scale="none"`` gives the unscaled Σ_g ‖w_g‖₂ of
Wen et al. (2016, "Learning structured sparsity in deep neural networks",
NeurIPS, Eq. 2 with a single grouping). Groups: ``"out"`` = output units /
filters (rows of the flattened weight, p_g = in·k…; on a 1-D tensor each
element is its own group, so the penalty is √1·Σ|w_i| = ‖w‖₁), ``"in"`` =
input units / channels (dim 1, all other dims in the group), or, for one
tensor, an integer tensor of group ids with the weight's shape.

Global scope: each whole tensor is one group, Σ_t √p_t ‖w_t‖₂, which prunes
entire layers. Proximal operator (exact): group soft thresholding,
w_g ← max(0, 1 − t·c_g/‖w_g‖)·w_g with c_g = √p_g (or 1 for ``scale="none"``).
Gradient (``mode="grad"``): ∂R/∂w_g = c_g·w_g/‖w_g‖ (0 for an all-zero
group, as autograd gives): a per-group coefficient times w
(``reglab.ops.grads.group_norm_coefficients``), added with one
``addcmul_``, and fused with L2's λ·w by ``regs.add_grads`` on a shared tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from reglab.core import Baseline, Baselines, Claim, Paper, WeightRegularizer, register
from reglab.core.paper import Tuned, Tuning
from reglab.ops import as_tensors, checked_total, group_norm_sum, group_prox_, grouping, hyperparameters, one_of
from reglab.ops.grads import add_coefficients_, group_norm_coefficients

#: Group weights c_g: √p_g (Yuan & Lin 2006) or 1 (Wen et al. 2016).
SCALES = ("sqrt", "none")

PAPER = Paper(
    "Group sparse regularization for deep neural networks",
    "Scardapane, S., Comminiello, D., Hussain, A. and Uncini, A.", 2017, arxiv="1607.00485", venue="Neurocomputing")


@hyperparameters(groups=grouping, scale=one_of(*SCALES))
def group_lasso(
    w: torch.Tensor | Sequence[torch.Tensor], groups: str | torch.Tensor = "out", scale: str = "sqrt"
) -> torch.Tensor:
    """Group lasso ``Σ_g c_g ‖w_g‖₂`` (Yuan & Lin, 2006), summed over tensors.

    ``groups`` is ``"out"`` (output units/filters: rows of the flattened
    weight; on a 1-D tensor each element is its own group), ``"in"``
    (input units/channels: dim 1) or, for one tensor, an integer tensor of
    group ids with the weight's shape. ``scale``: ``"sqrt"`` (default)
    c_g = √p_g, Yuan & Lin (2006) and Scardapane et al. (2017, Eq. 5);
    ``"none"`` c_g = 1, Wen et al. (2016).
    """
    ws = as_tensors("group_lasso", w)
    return checked_total("group_lasso", group_norm_sum("group_lasso", ws, groups, scale == "sqrt"), ws)


def group_lasso_global(
    tensors: Sequence[torch.Tensor], groups: str | torch.Tensor = "out", scale: str = "sqrt"
) -> torch.Tensor:
    """Layer-level group lasso: each whole tensor is one group, ``Σ_t c_t ‖w_t‖₂``
    (c_t = √p_t, or 1 for ``scale="none"``).

    ``groups`` is accepted (and ignored) so the global form takes the same
    configuration as the local one.
    """
    ws = as_tensors("group_lasso", list(tensors))
    norms = torch.stack(torch._foreach_norm(ws, 2))
    if scale == "none":
        return checked_total("group_lasso", norms.sum(), ws)
    sizes = torch.tensor([math.sqrt(w.numel()) for w in ws], dtype=norms.dtype, device=norms.device)
    return checked_total("group_lasso", (sizes * norms).sum(), ws)


# Group lasso's weight was picked during development; its strongest baseline got a grid on the same seeds and
# metric (structured_sparsity on digits seeds 0-4, mean pruned50_accuracy per weight).
_SEEDS = "digits seeds 0-4 (test splits in view), pruned50_accuracy"
_TUNING = Tuning(
    arm=Tuned("weight (proximal)", (0.03, 0.1, 0.3, 1.0), 0.3, f"{_SEEDS}: 0.855, 0.882, 0.925, 0.824"),
    baselines=((
        "L2 (5, weight picked on dev seeds), same pruning",
        Tuned("weight", (5e-5, 5e-4, 5e-3, 5e-2, 0.5, 5.0, 15.0, 50.0), 5.0,
              f"{_SEEDS}: 0.870, 0.870, 0.870, 0.870, 0.839, 0.916, 0.838, 0.491"),
    ),),
)


@register
class GroupLasso(WeightRegularizer):
    """Group lasso: R(w) = Σ_g √p_g ‖w_g‖₂, zeroing whole units or filters.

    Groups (``groups``): ``"out"`` = output units / filters (rows of the
    flattened weight, p_g = in·k…; on a 1-D tensor each element is its own
    group), ``"in"`` = input units / channels (dim 1, all other dims in the
    group). ``scale="sqrt"`` (default) scales each group norm by √(group
    size), Yuan & Lin (2006); Scardapane et al. (2017), Eq. 5;
    ``scale="none"`` is the plain Σ_g ‖w_g‖₂ of Wen et al. (2016,
    structured sparsity learning). Arbitrary group maps (an integer tensor
    of ids per element) are supported by ``RF.group_lasso(w, groups=ids)``.

    Proximal operator (exact): group soft thresholding,
    w_g ← max(0, 1 − t·c_g/‖w_g‖)·w_g, c_g = √p_g or 1
    (``reglab.ops.prox.group_soft_threshold``). Gradient
    (``mode="grad"``): c_g·w_g/‖w_g‖, 0 on an all-zero group.

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
                    "L2 (5, weight picked on dev seeds), same pruning", {"name": "l2", "weight": 5.0},
                    why="weight decay + magnitude pruning, the usual recipe, at the weight the same grid search "
                    "on the same seeds picks",
                ),
            ),
            datasets=("digits", "digits_half"),
            settings="weight 0.3 in proximal mode (the paper tunes λ per network), picked on digits seeds 0-4 with "
            "their test splits in view, and the L2 baseline's weight picked the same way (see tuning): those seeds "
            "are not evidence; the committed report uses seeds 200+ and digits_half, never used in choosing. L2 "
            "is added to the loss (no proximal step), so its useful weights are far larger than weight decay's 5e-4",
            source="Scardapane et al. 2017, Sec. 5",
            tuning=_TUNING,
        ),
        Claim(
            "Group lasso does not cost accuracy before pruning",
            task="structured_sparsity", metric="test_accuracy", direction="higher", kind="non-inferiority",
            arm={"name": "group_lasso", "weight": 0.3},
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(Baseline("no regularizer"),),
            control=Baselines.shorter_training(10, 40),
            datasets=("digits", "digits_half"),
            settings="as above",
            source="Scardapane et al. 2017, Tables 2-4 (accuracy kept at high sparsity)",
            tuning=Tuning(arm=_TUNING.arm, note="picked for the pruning claim; the baseline, no regularizer, has "
                          "nothing to tune"),
        ),
    )

    def prox_(self, w: torch.Tensor, step_size: float) -> None:
        group_prox_("GroupLasso", w, self.groups, step_size, self.scale == "sqrt")

    @torch.no_grad()
    def grad_(self, tensors, grads, alpha):
        """``g_g += α·c_g·w_g/‖w_g‖`` per group: one ``addcmul_`` with a per-group coefficient (no
        temporary of the weight's size); returns Σ_g c_g‖w_g‖ from the same norms."""
        ws = as_tensors("group_lasso", list(tensors))
        value, coefs = self.grad_coefficients(ws)
        add_coefficients_(grads, ws, coefs, alpha)
        return value

    @torch.no_grad()
    def grad_coefficients(self, tensors):
        """``(Σ_g c_g‖w_g‖, [c_g/‖w_g‖ per group])``: the gradient is ``coef·w``, so
        ``regs.add_grads`` fuses it with L2's on the same tensor."""
        ws = as_tensors("group_lasso", list(tensors))
        value, coefs = group_norm_coefficients("group_lasso", ws, self.groups, self.scale == "sqrt")
        return checked_total("group_lasso", value, ws), coefs
