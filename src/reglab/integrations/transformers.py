"""reglab in a Hugging Face ``Trainer`` run.

    trainer = RegularizedTrainer(model=model, args=args, train_dataset=ds,
                                 regularizers=[reglab.L2(1e-4), reglab.create("group_lasso").on(params="*.dense.weight")])

``RegularizedTrainer`` adds the penalty to the loss in ``compute_loss``
(training only) and registers ``RegularizationCallback``, which runs
proximal steps and schedules after each optimizer step and adds every term
to the Trainer's logs (``reg/<name>``). If you keep your own Trainer
subclass, call ``add_penalty`` in your ``compute_loss`` and add the
callback yourself.

Bindings with ``mode="grad"`` get ``regs.add_grads()`` once per optimizer
step, after the last accumulated micro-batch: ``RegularizedTrainer``
adds them just before gradient clipping (as the penalty's gradient would be
clipped), and the callback's ``on_pre_optimizer_step`` (transformers ≥ 4.40)
adds them if that did not run (``max_grad_norm=0``); there clipping is
already done. Under fp16 the Trainer's GradScaler is passed while the
gradients still carry its scale. A callback added by hand to a plain
``Trainer`` adds them in ``on_pre_optimizer_step``, after clipping; pass it
``trainer=`` so it finds the GradScaler. ``every=k`` bindings follow the
regularizers' step counter, advanced in ``on_step_end``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

try:
    import transformers
except ImportError as err:
    raise ImportError("reglab.integrations.transformers needs transformers: pip install -e '.[transformers]' (from a reglab checkout)") from err

from reglab.core.attach import RegularizerSet, attach
from reglab.core.regularizer import Binding, Regularizer

__all__ = ["RegularizationCallback", "RegularizedTrainer", "add_penalty"]


def add_penalty(regs: RegularizerSet, model: Any, loss: Any) -> Any:
    """``loss + regs.penalty()`` while training; the loss unchanged in evaluation."""
    return loss + regs.penalty() if model.training else loss


def _scaler_if_still_scaled(trainer: Any, optimizer: Any) -> Any:
    """The accelerator's fp16 GradScaler while ``optimizer``'s gradients still carry its scale, else None."""
    scaler = getattr(getattr(trainer, "accelerator", None), "scaler", None)
    if scaler is None or not scaler.is_enabled():
        return None
    opt = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps the torch one
    state = getattr(scaler, "_per_optimizer_states", {}).get(id(opt))
    stage = getattr(state.get("stage"), "name", None) if state else None
    return None if stage == "UNSCALED" else scaler


class RegularizationCallback(transformers.TrainerCallback):
    """Grad-mode gradients before each optimizer step; proximal steps and schedules after it;
    the terms in the logs."""

    def __init__(self, regs: RegularizerSet, trainer: Any = None):
        self.regs = regs
        self.trainer = trainer
        self.added = False  # add_grads already ran for this optimizer step

    def add_grads(self, optimizer: Any) -> None:
        """``regs.add_grads`` once per optimizer step, with the GradScaler while gradients are scaled."""
        if not self.added:
            self.regs.add_grads(_scaler_if_still_scaled(self.trainer, optimizer))
            self.added = True

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
        self.add_grads(optimizer)

    def on_step_end(self, args, state, control, optimizer=None, **kwargs):
        if not self.added:  # transformers without on_pre_optimizer_step: too late for this step
            if any(b.mode == "grad" for b in self.regs.bindings):
                raise RuntimeError(
                    "reglab: mode='grad' bindings need transformers >= 4.40 (on_pre_optimizer_step) or "
                    "RegularizedTrainer; use mode='penalty'"
                )
        self.added = False
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
        self.reg_callback = RegularizationCallback(self.regs, trainer=self)
        self.add_callback(self.reg_callback)

    def _clip_grad_norm(self, model, *args: Any, **kwargs: Any):
        # grad-mode gradients go in before clipping, as the penalty's gradient would
        self.reg_callback.add_grads(self.optimizer)
        return super()._clip_grad_norm(model, *args, **kwargs)

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
