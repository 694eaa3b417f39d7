"""reglab in a Hugging Face ``Trainer`` run.

    trainer = RegularizedTrainer(model=model, args=args, train_dataset=ds,
                                 regularizers=[reglab.L2(1e-4), reglab.create("group_lasso").on(params="*.dense.weight")])

:class:`RegularizedTrainer` adds the penalty to the loss in ``compute_loss``
(training only) and registers :class:`RegularizationCallback`, which runs
proximal steps and schedules after each optimizer step and adds every term
to the Trainer's logs (``reg/<name>``). If you keep your own Trainer
subclass, call :func:`add_penalty` in your ``compute_loss`` and add the
callback yourself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

try:
    import transformers
except ImportError as err:
    raise ImportError("reglab.integrations.transformers needs transformers: pip install 'reglab[transformers]'") from err

from reglab.core.attach import RegularizerSet, attach
from reglab.core.regularizer import Binding, Regularizer

__all__ = ["RegularizationCallback", "RegularizedTrainer", "add_penalty"]


def add_penalty(regs: RegularizerSet, model: Any, loss: Any) -> Any:
    """``loss + regs.penalty()`` while training; the loss unchanged in evaluation."""
    return loss + regs.penalty() if model.training else loss


class RegularizationCallback(transformers.TrainerCallback):
    """Proximal steps and schedules after each optimizer step; the terms in the logs."""

    def __init__(self, regs: RegularizerSet):
        self.regs = regs

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        self.regs.step(optimizer)

    def on_log(self, args, state, control, logs=None, **kwargs):
        # for the reporting callbacks after this one (TensorBoard, W&B); RegularizedTrainer.log
        # also puts the terms in state.log_history
        if logs is not None and "loss" in logs and self.regs.last:
            logs.update({f"reg/{k}": float(v) for k, v in self.regs.last.items()})


class RegularizedTrainer(transformers.Trainer):
    """A ``transformers.Trainer`` whose training loss includes the attached penalties."""

    def __init__(self, *args: Any, regularizers: Iterable[Binding | Regularizer] | RegularizerSet, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.regs = regularizers if isinstance(regularizers, RegularizerSet) else attach(self.model, list(regularizers))
        self.add_callback(RegularizationCallback(self.regs))

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        # Training logs (they carry "loss") get every term; Trainer.log stores its own
        # copy in log_history before callbacks see it, so this is where they must go in.
        if "loss" in logs and self.regs.last:
            logs = {**logs, **{f"reg/{k}": float(v) for k, v in self.regs.last.items()}}
        super().log(logs, *args, **kwargs)

    def compute_loss(self, model, inputs, return_outputs: bool = False, **kwargs):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, **kwargs)
        loss = add_penalty(self.regs, model, loss)
        return (loss, outputs) if return_outputs else loss
