"""Drop path / stochastic depth (Huang, Sun, Liu, Sedra & Weinberger, ECCV 2016).

Drop a residual branch for a random subset of samples: y_i = x_i·b_i/(1 − p),
b_i ~ Bernoulli(1 − p), one draw per sample (dim 0), broadcast over the
rest. ``scale_by_keep=True`` rescales the survivors by 1/(1 − p) so the
branch's expected output is unchanged (nothing to change at test time);
``False`` is the original formulation, which instead scales the branch by
(1 − p) at test time. Default p = 0.1 (a common setting; Huang et al. use a
linear-in-depth rule ending at 0.5).
"""

from __future__ import annotations

import torch

from reglab.core import Baseline, Claim, FunctionModule, Paper, register
from reglab.ops import check_tensor, hyperparameters, probability

PAPER = Paper(
    "Deep Networks with Stochastic Depth", "Huang, Sun, Liu, Sedra, Weinberger", 2016,
    arxiv="1603.09382", venue="ECCV")


@hyperparameters("DropPath", p=probability)
def drop_path(
    x: torch.Tensor, p: float = 0.1, training: bool = True, scale_by_keep: bool = True, generator=None
) -> torch.Tensor:
    """Zero whole samples of a residual branch with probability ``p``.

    One Bernoulli(1 − p) draw per sample (dim 0), broadcast over the rest.
    With ``scale_by_keep`` the surviving samples are multiplied by 1/(1 − p)
    so the branch's expected output is unchanged.
    """
    if not training or p == 0.0:
        return x
    keep = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    mask = torch.empty(shape, device=x.device, dtype=x.dtype).bernoulli_(keep, generator=generator)
    if scale_by_keep and keep > 0:
        mask = mask / keep
    return x * mask


@register
class DropPath(FunctionModule):
    """Drop path (stochastic depth): drop a residual branch for a random subset of samples.

    Wrap the branch's output: ``x = x + dp(branch(x))``. In training each
    sample's branch output is zeroed with probability ``p`` (one draw per
    sample, not per element). ``scale_by_keep=True`` means: the samples
    whose branch survives have it multiplied by ``1/(1 − p)``, so its
    average over the random drops equals the undropped output and nothing
    needs to change at test time. With ``scale_by_keep=False`` the
    survivors pass unchanged (the original stochastic-depth formulation,
    which instead scales the branch by (1 − p) at test time; do that
    yourself). Identity in ``.eval()``. Default p = 0.1 (a common setting;
    Huang et al. 2016 use a linear-in-depth rule ending at 0.5).
    """

    name = "drop_path"
    claims = (
        Claim(
            "Stochastic depth improves the test accuracy of a deep residual network",
            task="deep_residual", metric="test_accuracy", direction="higher", arm={"name": "drop_path", "p": 0.5},
            min_effect=0.005, min_effect_reason="half a point of test accuracy",
            baselines=(
                Baseline("no drop path"),
                Baseline("dropout 0.1 in every branch", task_args={"dropout": 0.1},
                         why="the standard stochastic regularizer a practitioner would use instead"),
            ),
            datasets=("digits", "digits_half"),
            settings="a pre-norm residual MLP with 8 blocks on 8×8 digits, Adam, 30 epochs (validation accuracy plateaus by then), epoch selected on "
            "validation, instead of 110-layer ResNets on CIFAR with SGD; the paper's linear decay rule with "
            "p_L = 0.5 (their default), not this module's default p = 0.1",
            source="Huang et al. 2016, Table 1 (CIFAR-10/100, SVHN test error)",
        ),
    )
    kind = "stochastic"
    form = "transform"
    paper = PAPER
    formula = "y_i = x_i · b_i / (1 − p),  b_i ~ Bernoulli(1 − p) per sample"
    function = drop_path
    call_args = ("training", "generator")

    @property
    def rate(self) -> float:
        """The drop probability now (constant here; scheduled in subclasses)."""
        return self.p

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        check_tensor(type(self).__name__, x, arg="branch output", min_ndim=1)
        return drop_path(x, self.rate, self.training, self.scale_by_keep, generator)
