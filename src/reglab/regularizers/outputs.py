"""Output / label regularizers (kind ``"output"``).

Forms, so nobody guesses:

* ``elr``, ``confidence_penalty``, ``entropy``, ``consistency``: **penalty**,
  add the returned scalar to the task loss;
* ``pskd``, ``label_smoothing``: **target**, they return soft targets; train
  with :func:`reglab.functional.soft_cross_entropy` on them;
* ``logit_clip``: **module**, apply it to the logits before the loss.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from reglab import distributed
from reglab import functional as RF
from reglab._validation import (
    RegularizerInputError,
    check_choice,
    check_positive,
    check_probability,
    check_tensor,
)
from reglab.config import Configurable
from reglab.functional.outputs import check_labels, check_logits
from reglab.paper import Claim, Paper
from reglab.registry import register
from reglab.regularizers.base import Regularizer

__all__ = ["ELR", "PSKD", "LabelSmoothing", "ConfidencePenalty", "Entropy", "LogitClip", "Consistency"]


def _check_size(who: str, name: str, value: int, minimum: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise RegularizerInputError(f"{who} expects {name} to be an integer >= {minimum}, got {value!r}")
    return value


def _check_index(who: str, index: object, num_samples: int, batch: int) -> torch.Tensor:
    check_tensor(who, index, arg="index", ndim=1, floating=False)
    assert isinstance(index, torch.Tensor)
    if index.is_floating_point() or index.dtype == torch.bool:
        raise RegularizerInputError(f"{who} expects integer dataset indices, got dtype {index.dtype}")
    if index.shape[0] != batch:
        raise RegularizerInputError(f"{who} got {index.shape[0]} indices for a batch of {batch} rows")
    lo, hi = int(index.min()), int(index.max())
    if lo < 0 or hi >= num_samples:
        raise RegularizerInputError(
            f"{who} expects dataset indices in [0, {num_samples}) (num_samples={num_samples}), "
            f"got values in [{lo}, {hi}]"
        )
    return index.long()


def _check_classes(who: str, logits: torch.Tensor, num_classes: int) -> None:
    if logits.shape[1] != num_classes:
        raise RegularizerInputError(
            f"{who} was built for num_classes={num_classes}, got logits with {logits.shape[1]} classes"
        )


def _gather_rows(index: torch.Tensor, rows: torch.Tensor, sync: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """All ranks' (index, rows) under DDP so every rank writes the same buffer rows."""
    if not (sync and distributed.is_distributed()):
        return index, rows
    # Two gathers: packing indices into float rows would lose exactness past 2**24 samples.
    return distributed.all_gather_nograd(index), distributed.all_gather_nograd(rows)


@register
class ELR(Regularizer):
    """Early-Learning Regularization: pull predictions towards an EMA of their own past.

    For each training sample ``i`` (by dataset index) ELR keeps a target
    ``t_i`` (buffer ``targets``, N×C, in ``state_dict``). At every call::

        p̂_i = clamp(softmax(z_i), 1e-4, 1 − 1e-4), renormalized, detached
        t_i ← β·t_i + (1 − β)·p̂_i
        R = mean_i log(1 − ⟨p_i, t_i⟩)

    and ``elr(logits, index)`` returns ``λ·R``, to add to cross-entropy.
    Early in training the network fits the clean labels first; the targets
    record those early predictions and the term keeps the model near them, so
    it does not memorize the wrong labels later (Liu et al., 2020, Eq. 6-7).

    Defaults: ``λ = weight = 3`` and ``β = 0.7``, the official CIFAR-10
    configuration (shengliu66/ELR ``ELR/config_cifar10.json``; CIFAR-100
    uses β = 0.9, λ = 7). The clamp to [1e-4, 1 − 1e-4] and the renormalized
    p̂ in the target update follow the official ``ELR/model/loss.py``. The
    buffer starts at zero (as the official code), so the first term for a
    sample is ``log(1 − (1 − β)·⟨p, p̂⟩)``. The targets update only in
    training mode (``.eval()`` evaluates the term without touching them).

    DDP: with ``sync=True`` every call all-gathers the batch's
    ``(index, p̂)`` from all ranks (``reglab.distributed.all_gather_nograd``)
    and every rank applies the same EMA update to the global batch, so the
    buffers stay identical on all ranks (and equal to a single-process run
    on the concatenated batch) even when the sampler reshuffles which rank
    sees which sample. The returned term uses only the local rows; DDP's
    gradient averaging then matches the single-process mean. Cost: one
    all-gather of B×(C+1) floats per step.
    """

    name = "elr"
    kind = "output"
    form = "penalty"
    paper = Paper(
        title="Early-Learning Regularization Prevents Memorization of Noisy Labels",
        authors="Liu, Niles-Weed, Razavian, Fernandez-Granda",
        year=2020,
        arxiv="2007.00151",
        venue="NeurIPS",
        code="https://github.com/shengliu66/ELR",
    )
    formula = "t_i ← β t_i + (1−β) p̂_i;  R = λ · mean_i log(1 − ⟨p_i, t_i⟩)"
    claims = (
        Claim(
            statement="ELR prevents memorization of noisy labels: final clean-test accuracy stays "
            "near its early peak under 40% symmetric noise, where plain CE falls",
            task="label_noise",
            metric="final_accuracy",
            direction="higher",
            task_args={"noise": 0.4},
            source="Liu et al. 2020, Sec. 5 / Fig. 1",
        ),
        Claim(
            statement="ELR lowers the share of noisy training samples predicted as their wrong label",
            task="label_noise",
            metric="memorization",
            direction="lower",
            task_args={"noise": 0.4},
            source="Liu et al. 2020, Fig. 1",
        ),
        *(
            Claim(
                statement=f"ELR keeps clean-test accuracy higher than plain CE under {int(rate * 100)}% "
                "symmetric label noise",
                task="label_noise",
                metric="final_accuracy",
                direction="higher",
                task_args={"noise": rate},
                source="Liu et al. 2020, Table 1 (symmetric noise 20-80%)",
            )
            for rate in (0.2, 0.6)
        ),
    )
    example_args: ClassVar[dict] = {"num_samples": 8, "num_classes": 3}

    def __init__(
        self,
        num_samples: int,
        num_classes: int,
        weight: float = 3.0,
        beta: float = 0.7,
        sync: bool = True,
    ):
        super().__init__(weight)
        self.num_samples = _check_size("ELR", "num_samples", num_samples, 1)
        self.num_classes = _check_size("ELR", "num_classes", num_classes, 2)
        self.beta = check_probability("ELR", "beta", beta)
        self.sync = bool(sync)
        self.register_buffer("targets", torch.zeros(num_samples, num_classes))

    @torch.no_grad()
    def _update(self, logits: torch.Tensor, index: torch.Tensor) -> None:
        p = logits.detach().float().softmax(dim=1).clamp(1e-4, 1.0 - 1e-4)
        p = p / p.sum(dim=1, keepdim=True)
        index, p = _gather_rows(index, p, self.sync)
        t = self.targets
        t[index] = self.beta * t[index] + (1.0 - self.beta) * p.to(t.dtype)

    def penalty(self, logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        check_logits("ELR", logits)
        _check_classes("ELR", logits, self.num_classes)
        index = _check_index("ELR", index, self.num_samples, logits.shape[0])
        if self.training:
            self._update(logits, index)
        return RF.elr(logits, self.targets[index].to(logits.dtype))


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
    all-gathers (index, prediction) every call, as in :class:`ELR`.
    """

    name = "pskd"
    kind = "output"
    form = "target"
    paper = Paper(
        title="Self-Knowledge Distillation with Progressive Refinement of Targets",
        authors="Kim, Ji, Yoon, Hwang",
        year=2021,
        arxiv="2006.12000",
        venue="ICCV",
        code="https://github.com/lgcnsai/PS-KD-Pytorch",
    )
    formula = "ỹ_i = (1 − α_t)·y_i + α_t·p_i(t−1),  α_t = α_T·(t+1)/T"
    claims = (
        Claim(
            statement="PS-KD improves calibration (lower ECE) over plain cross-entropy",
            task="calibration",
            metric="ece",
            direction="lower",
            source="Kim et al. 2021, Table 1 (ECE)",
        ),
        Claim(
            statement="PS-KD does not cost accuracy (it improves it in the paper)",
            task="calibration",
            metric="accuracy",
            direction="higher",
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
        self.num_samples = _check_size("PSKD", "num_samples", num_samples, 1)
        self.num_classes = _check_size("PSKD", "num_classes", num_classes, 2)
        self.alpha_T = check_probability("PSKD", "alpha_T", alpha_T, inclusive_one=True)
        self.total_epochs = _check_size("PSKD", "total_epochs", total_epochs, 1)
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
        check_logits("PSKD", logits)
        _check_classes("PSKD", logits, self.num_classes)
        check_labels("PSKD", labels, self.num_classes, batch=logits.shape[0])
        index = _check_index("PSKD", index, self.num_samples, logits.shape[0])
        onehot = F.one_hot(labels.long(), self.num_classes).to(self.predictions.dtype)
        prev = torch.where(self.seen[index, None], self.predictions[index], onehot)
        alpha = self.alpha
        soft = (1.0 - alpha) * onehot + alpha * prev
        if self.training:
            with torch.no_grad():
                probs = logits.detach().to(self.predictions.dtype).softmax(dim=1)
                idx, probs = _gather_rows(index, probs, self.sync)
                self.predictions[idx] = probs
                self.seen[idx] = True
        return soft.to(logits.dtype)


@register
class LabelSmoothing(Configurable, nn.Module):
    """Label smoothing: train on ``(1 − ε)·onehot(y) + ε/C`` instead of the one-hot label.

    A target transform: ``targets = ls(labels, num_classes)``, then
    ``RF.soft_cross_entropy(logits, targets)``. Equivalent to
    ``F.cross_entropy(..., label_smoothing=ε)``. ε = 0.1 as in Szegedy et al.
    (2016, Sec. 7, ImageNet with C = 1000).
    """

    name = "label_smoothing"
    kind = "output"
    form = "target"
    paper = Paper(
        title="Rethinking the Inception Architecture for Computer Vision",
        authors="Szegedy, Vanhoucke, Ioffe, Shlens, Wojna",
        year=2016,
        arxiv="1512.00567",
        venue="CVPR",
    )
    formula = "ỹ = (1 − ε)·onehot(y) + ε/C"

    def __init__(self, epsilon: float = 0.1):
        super().__init__()
        self.epsilon = check_probability("LabelSmoothing", "epsilon", epsilon)

    def forward(self, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
        return RF.smooth_labels(labels, num_classes, self.epsilon)


@register
class ConfidencePenalty(Regularizer):
    """Confidence penalty: penalize low-entropy (over-confident) output distributions.

    ``R = β·(−H(p))`` with ``H(p) = −Σ_c p_c log p_c`` averaged over the
    batch; adding it to the loss raises the entropy of the predictions
    (Pereyra et al., 2017, Eq. 2). β = ``weight``. The paper tunes β per
    task by grid search and gives no single default; 0.1 here is a mild
    starting point, not the paper's number.
    """

    name = "confidence_penalty"
    kind = "output"
    paper = Paper(
        title="Regularizing Neural Networks by Penalizing Confident Output Distributions",
        authors="Pereyra, Tucker, Chorowski, Kaiser, Hinton",
        year=2017,
        arxiv="1701.06548",
        venue="ICLR workshop",
    )
    formula = "R = −β·H(softmax(z))"

    def __init__(self, weight: float = 0.1):
        super().__init__(weight)

    def penalty(self, logits: torch.Tensor) -> torch.Tensor:
        return RF.confidence_penalty(logits)


@register
class Entropy(Regularizer):
    """Prediction-entropy regularizer with an explicit sign.

    ``direction="min"`` returns ``+w·H(p)`` (entropy minimization, as in
    semi-supervised learning: Grandvalet & Bengio, 2004);
    ``direction="max"`` returns ``−w·H(p)`` (maximization; the same as the
    confidence penalty). ``H`` is the batch mean of the per-sample entropy
    in nats. Either way the returned value is added to the loss.
    """

    name = "entropy"
    kind = "output"
    paper = None
    formula = "R = ±w·mean_i H(softmax(z_i)),  + for direction='min', − for 'max'"

    def __init__(self, weight: float = 0.1, direction: str = "min"):
        super().__init__(weight)
        self.direction = check_choice("Entropy", "direction", direction, ("min", "max"))

    def penalty(self, logits: torch.Tensor) -> torch.Tensor:
        h = RF.entropy(logits)
        return h if self.direction == "min" else -h


@register
class LogitClip(Configurable, nn.Module):
    """LogitClip: clamp the norm of each logit vector to at most δ.

    ``z ← z·min(1, δ/‖z‖_p)``; cross-entropy (or any loss) on the clipped
    logits is bounded, which limits memorization of noisy labels (Wei et al.,
    2023, Eq. 3). A module: ``loss = F.cross_entropy(clip(model(x)), y)``;
    the gradient flows through the rescaling. Clipping is applied in
    training and in eval alike (it never changes the argmax).

    The paper writes δ = 1/τ. The official code (hongxin001/LogitClip,
    ``algorithms/clip.py``, ``train.py``) uses p = 2 and ``--temp`` τ = 1
    by default, i.e. δ = 1 (our default); its README example uses τ = 1.5.
    (For τ ≠ 1 that code tests ``‖z‖ > τ`` but rescales to ``1/τ``; we
    follow the paper: rows with ``‖z‖ > δ`` are rescaled to norm δ.) δ is a
    hyperparameter to tune per dataset; too small a δ underfits.
    """

    name = "logit_clip"
    kind = "output"
    form = "module"
    paper = Paper(
        title="Mitigating Memorization of Noisy Labels by Clipping the Model Prediction",
        authors="Wei, Zhuang, Xie, Feng, Niu, An, Li",
        year=2023,
        arxiv="2212.04055",
        venue="ICML",
        code="https://github.com/hongxin001/LogitClip",
    )
    formula = "z ← z · min(1, δ / ‖z‖_p)"

    def __init__(self, delta: float = 1.0, p: float = 2.0):
        super().__init__()
        self.delta = check_positive("LogitClip", "delta", delta)
        self.p = check_positive("LogitClip", "p", p)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return RF.logit_clip(logits, self.delta, self.p)


@register
class Consistency(Regularizer):
    """Two-view prediction consistency: symmetric KL between the softmaxes of two views.

    ``R = mean_i KL(p_a,i ‖ p_b,i) + KL(p_b,i ‖ p_a,i)`` for logits of two
    augmentations of the same inputs (catalog E9; the DKL term of LegoGCD).
    Call ``cons(logits_view_a, logits_view_b)``. Gradients flow through both
    views; detach one view for the stop-gradient variant.
    """

    name = "consistency"
    kind = "output"
    paper = None
    formula = "R = w·mean_i [KL(p_a‖p_b) + KL(p_b‖p_a)]"
    num_inputs = 2

    def __init__(self, weight: float = 1.0):
        super().__init__(weight)

    def penalty(self, logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
        return RF.consistency(logits_a, logits_b)
