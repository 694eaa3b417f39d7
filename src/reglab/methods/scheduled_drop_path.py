"""ScheduledDropPath (Zoph, Vasudevan, Shlens & Le, CVPR 2018, Sec. 3): drop path whose rate ramps linearly.

p_t = p_final·t/T for training step t of T, then p_final; per sample, as in
``reglab.methods.drop_path``. The paper does not give one final rate for
all models; 0.3 is the catalog's digits setting, not a paper constant.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from reglab.core import Baseline, Claim, LinearRamp, Paper, register
from reglab.methods.drop_path import DropPath
from reglab.ops import check_int, has_data

PAPER = Paper(
    "Learning Transferable Architectures for Scalable Image Recognition", "Zoph, Vasudevan, Shlens, Le", 2018,
    arxiv="1707.07012", venue="CVPR")


@register
class ScheduledDropPath(DropPath):
    """ScheduledDropPath: drop path whose rate ramps linearly over training.

    NASNet (Zoph et al., 2018, Sec. 3): ``p_t = p_final · t / T`` for
    training step ``t`` of ``total_steps`` T, then ``p_final``. The rate is a
    ``reglab.schedules.LinearRamp`` evaluated at a step counter kept in
    a buffer (in ``state_dict``, so a resumed run continues the ramp); call
    ``sdp.step()`` once per optimizer step. Per sample, survivors rescaled
    by ``1/(1 − p_t)`` when ``scale_by_keep`` (see ``DropPath``). The
    paper does not give one final rate for all models; 0.3 here is the
    catalog's digits setting, not a paper constant.
    """

    name = "scheduled_drop_path"
    claims = (
        Claim(
            "Ramping the drop-path rate over training improves on a constant rate",
            task="deep_residual", metric="test_accuracy", direction="higher",
            min_effect=0.005, min_effect_reason="half a point of test accuracy",
            baselines=(
                Baseline("no drop path"),
                Baseline("constant drop path (p = 0.3 in every block)", {"name": "drop_path", "p": 0.3},
                         task_args={"uniform_rate": True},
                         why="DropPath without the schedule: what NASNet's ablation compares with"),
            ),
            datasets=("digits", "digits_half"),
            settings="a pre-norm residual MLP with 8 blocks on 8×8 digits instead of NASNet cells on CIFAR-10/ImageNet; "
            "p_final = 0.3 is not a paper constant; both arms use the same rate in every block",
            source="Zoph et al. 2018, Sec. 3 (ScheduledDropPath 'significantly improves the final performance' "
            "over DropPath)",
        ),
    )
    paper = PAPER
    formula = "p_t = p_final · min(t, T) / T;  y_i = x_i · b_i / (1 − p_t)"
    example_args: ClassVar[dict] = {"total_steps": 100}

    def __init__(self, total_steps: int, p_final: float = 0.3, scale_by_keep: bool = True):
        super().__init__(p=p_final, scale_by_keep=scale_by_keep)
        self.total_steps = check_int("ScheduledDropPath", "total_steps", total_steps, 1)
        self.p_final = self.p
        self.schedule = LinearRamp(0.0, self.p_final, self.total_steps)
        self.register_buffer("step_count", torch.zeros((), dtype=torch.long))

    @property
    def rate(self) -> float:
        # on the meta device the count has no value: shape inference runs at step 0
        return self.schedule(int(self.step_count) if has_data(self.step_count) else 0)

    def step(self) -> None:
        self.step_count.add_(1)
