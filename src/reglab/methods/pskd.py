"""Progressive Self-Knowledge Distillation (Kim, Ji, Yoon & Hwang, ICCV 2021).

A target transform: the model teaches itself with softened targets
ỹ_i = (1 − α_t)·onehot(y_i) + α_t·p_i^{prev}, α_t = α_T·(t + 1)/T, where
p_i^{prev} is the model's prediction for sample i at the previous epoch.
α_T = 0.8 (the paper's implementation details); the ramp is the official
one (lgcnsai/PS-KD-Pytorch ``main.py``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from reglab.core import Baseline, Claim, Configurable, Paper, RegularizerInputError, all_gather_indexed, register
from reglab.core.distributed import agree, is_distributed
from reglab.ops import (
    check_index, check_int, check_labels, check_logits, check_num_classes, check_probability, check_table_size,
)

PAPER = Paper(
    "Self-Knowledge Distillation with Progressive Refinement of Targets", "Kim, Ji, Yoon, Hwang", 2021,
    arxiv="2006.12000", venue="ICCV", code="https://github.com/lgcnsai/PS-KD-Pytorch")


@register
class PSKD(Configurable, nn.Module):
    """Progressive Self-Knowledge Distillation: the model teaches itself with softened targets.

    A target transform. For sample ``i`` at epoch ``t`` (0-based) of ``T``::

        α_t = α_T · (t + 1) / T
        ỹ_i = (1 − α_t)·onehot(y_i) + α_t·p_i^{prev}

    where ``p_i^{prev}`` is the model's softmax for sample ``i`` the last time
    it was seen (the previous epoch); train with soft-target cross-entropy
    ``RF.soft_cross_entropy(logits, ỹ)``. Calling ``pskd(labels, index,
    logits)`` returns ``ỹ`` and then records ``softmax(logits)`` (detached,
    in training mode only) as the sample's new ``p^{prev}``. Samples never
    seen use their one-hot label as ``p^{prev}`` (the official code fills the
    buffer with one-hot labels in epoch 0).

    ``α_T = 0.8`` (Kim et al., 2021, implementation details of the CIFAR-100 / ImageNet runs);
    the ramp ``α_T·(epoch + 1)/T`` is the official one (lgcnsai/PS-KD-Pytorch
    ``main.py``). ``total_epochs`` is ``T``; call ``pskd.set_epoch(e)`` at the
    start of each epoch (or ``next_epoch()`` after it). The epoch and the
    N×C prediction buffer are in ``state_dict``. Under DDP, ``sync=True``
    all-gathers (index, prediction) every call, as in ``ELR``.
    """

    name = "pskd"
    kind = "output"
    form = "target"
    paper = PAPER
    formula = "ỹ_i = (1 − α_t)·y_i + α_t·p_i(t−1),  α_t = α_T·(t+1)/T"
    claims = (
        Claim(
            "PS-KD improves calibration (lower ECE)",
            task="calibration", metric="ece", direction="lower",
            min_effect=0.01, min_effect_reason="one ECE point (0.01): the paper's gains are several points",
            baselines=(
                Baseline("CE"),
                Baseline("label smoothing (ε=0.1)", {"name": "label_smoothing"}, why="the one-line calibration fix"),
                Baseline(
                    "CE + temperature scaling", metric="ece_temperature_scaled",
                    why="post-hoc calibration on the validation split (Guo et al. 2017), free at training time",
                ),
            ),
            datasets=("digits", "mnist1d"),
            settings="an MLP (digits) or MNIST-1D's ConvBase CNN on 20% of the training data, Adam, 200 epochs (the paper's 300 cut for the lab's 30-minute budget), "
            "instead of ResNet/DenseNet on CIFAR-100 with SGD; α_T=0.8 is the paper's; T is the task's epoch count",
            source="Kim et al. 2021, Table 1 (ECE)",
        ),
        Claim(
            "PS-KD does not cost accuracy (it improves it in the paper)",
            task="calibration", metric="accuracy", direction="higher", kind="non-inferiority",
            min_effect=0.01, min_effect_reason="one point of test accuracy",
            baselines=(Baseline("CE"),),
            control=Baseline(
                "CE on a quarter of the training data", task_args={"train_fraction": 0.05},
                why="negative control: a weakened model (5% of the training split instead of 20%, same test "
                "split) that the same test must reject (at 10% it loses only 1-2 points on digits)",
            ),
            datasets=("digits", "mnist1d"),
            settings="as above",
            source="Kim et al. 2021, Table 1",
        ),
    )
    example_args: ClassVar[dict] = {"num_samples": 8, "num_classes": 3}

    def __init__(
        self,
        num_samples: int,
        num_classes: int,
        alpha_T: float = 0.8,
        total_epochs: int = 300,
        sync: bool = True,
    ):
        super().__init__()
        self.num_samples, self.num_classes = check_table_size("PSKD", num_samples, num_classes)
        self.alpha_T = check_probability("PSKD", "alpha_T", alpha_T, inclusive_one=True)
        self.total_epochs = check_int("PSKD", "total_epochs", total_epochs, 1)
        self.sync = bool(sync)
        self.register_buffer("predictions", torch.zeros(num_samples, num_classes))
        self.register_buffer("seen", torch.zeros(num_samples, dtype=torch.bool))
        self.register_buffer("epoch", torch.zeros((), dtype=torch.long))

    @property
    def alpha(self) -> float:
        """α_t for the current epoch."""
        return self.alpha_T * min(int(self.epoch) + 1, self.total_epochs) / self.total_epochs

    def set_epoch(self, epoch: int) -> None:
        self.epoch.fill_(int(epoch))

    def next_epoch(self) -> None:
        self.epoch.add_(1)

    def forward(self, labels: torch.Tensor, index: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        # Under DDP (sync) a rank may hold 0 rows (the global batch is checked after the gather), and the
        # local checks run in one agreement over ranks: one rank's bad input raises the same error on all.
        gathered = self.training and self.sync and is_distributed()
        with agree("PSKD", enabled=gathered):
            check_logits("PSKD", logits, nonempty=not gathered)
            check_num_classes("PSKD", logits, self.num_classes)
            labels = check_labels("PSKD", labels, self.num_classes, batch=logits.shape[0], nonempty=not gathered)
            index = check_index("PSKD", index, self.num_samples, logits.shape[0])
        onehot = F.one_hot(labels.long(), self.num_classes).to(self.predictions.dtype)
        prev = torch.where(self.seen[index, None], self.predictions[index], onehot)
        # α_t from the epoch buffer on its device: reading it with int() would sync the host every step
        alpha = self.alpha_T * (self.epoch + 1).clamp(max=self.total_epochs).to(onehot.dtype) / self.total_epochs
        soft = (1.0 - alpha) * onehot + alpha * prev
        if self.training:
            with torch.no_grad():
                probs = logits.detach().to(self.predictions.dtype).softmax(dim=1)
                idx, probs = all_gather_indexed(index, probs, self.sync, who="PSKD")
                if idx.numel() == 0:
                    raise RegularizerInputError("PSKD got an empty batch on every rank (no logits in the global batch)")
                self.predictions[idx] = probs
                self.seen[idx] = True
        return soft.to(logits.dtype)
