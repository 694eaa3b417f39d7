"""reglab in a Lightning run: one callback.

    trainer = L.Trainer(callbacks=[RegularizationCallback([reglab.L2(5e-4),
                                    reglab.create("vcreg").on(activations="encoder")])])

The callback attaches the regularizers to the LightningModule at ``setup``,
adds the gradient of their penalty to every backward pass (before Lightning's
own, so penalties on activations share the forward graph; scaled like the
loss under gradient accumulation and fp16 loss scaling), runs proximal steps
and schedules after each optimizer step, and logs every term with
``log_dict`` (``reg/<name>``). Your ``training_step`` stays unchanged.

Bindings with ``mode="grad"`` get ``regs.add_grads()`` in
``on_before_optimizer_step``: once per optimizer step (after the last
accumulated batch), after the precision plugin has unscaled the gradients
(the scaler is passed only to optimizers that unscale inside their own
``step``), and before gradient clipping, as the penalty's gradient would be.
``every=k`` bindings follow the regularizers' step counter, which advances
after each optimizer step (``on_train_batch_end``), as ``regs.step()`` does
in a hand-written loop.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

try:
    import lightning.pytorch as pl
except ImportError:  # the older package name
    try:
        import pytorch_lightning as pl  # type: ignore[no-redef]
    except ImportError as err:
        raise ImportError("reglab.integrations.lightning needs Lightning: pip install -e '.[lightning]' (from a reglab checkout)") from err

from reglab.core.attach import RegularizerSet, attach
from reglab.core.regularizer import Binding, Regularizer

__all__ = ["RegularizationCallback"]


def _scaler(trainer: Any) -> Any:
    """The precision plugin's enabled fp16 GradScaler, or None."""
    plugin = getattr(trainer.strategy, "precision_plugin", None) or getattr(trainer, "precision_plugin", None)
    scaler = getattr(plugin, "scaler", None)
    return scaler if scaler is not None and scaler.is_enabled() else None


def _loss_scale(trainer: Any) -> float:
    """The fp16 GradScaler's current scale (1 without loss scaling)."""
    scaler = _scaler(trainer)
    return float(scaler.get_scale()) if scaler is not None else 1.0


def _scaler_if_still_scaled(trainer: Any, optimizer: Any) -> Any:
    """The GradScaler when ``optimizer``'s gradients still carry its scale (it was not unscaled
    before ``on_before_optimizer_step``, as for optimizers that unscale in ``step``), else None."""
    scaler = _scaler(trainer)
    if scaler is None:
        return None
    opt = getattr(optimizer, "_optimizer", optimizer)  # a LightningOptimizer wraps the torch one
    state = getattr(scaler, "_per_optimizer_states", {}).get(id(opt))
    stage = getattr(state.get("stage"), "name", None) if state else None
    return None if stage == "UNSCALED" else scaler


class RegularizationCallback(pl.Callback):
    """Attach ``regularizers`` to the module being trained and train with their penalty.

    ``regularizers``: what ``reglab.attach`` takes (regularizers or
    ``reg.on(...)`` bindings), or an already attached ``RegularizerSet``.
    ``log``: log each term's value (``reg/<name>``) every ``log_every_n_steps``.
    """

    def __init__(self, regularizers: Iterable[Binding | Regularizer] | RegularizerSet, *, log: bool = True):
        super().__init__()
        self._spec = regularizers
        self.regs: RegularizerSet | None = regularizers if isinstance(regularizers, RegularizerSet) else None
        self.log = log
        self._stepped: Any = None  # the optimizer of a step not yet followed by regs.step()

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.regs is None:
            self.regs = attach(pl_module, list(self._spec))  # type: ignore[arg-type]

    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        assert self.regs is not None
        penalty = self.regs.penalty()
        if penalty.requires_grad:
            # Same scaling as the loss Lightning is about to backpropagate: 1/k under
            # gradient accumulation, the GradScaler's factor under fp16.
            scale = _loss_scale(trainer) / max(int(trainer.accumulate_grad_batches), 1)
            (penalty * scale).backward(retain_graph=True)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer) -> None:
        # after the last accumulated backward and the plugin's unscale_, before clipping and the step
        if self.regs is None or not pl_module.training:
            return
        self.regs.add_grads(_scaler_if_still_scaled(trainer, optimizer))
        self._stepped = optimizer

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        if self.regs is None:
            return
        if self._stepped is not None:  # after optimizer.step(): proximal updates and schedule steps
            optimizer, self._stepped = self._stepped, None
            self.regs.step(getattr(optimizer, "_optimizer", optimizer))
        if self.log and self.regs.last:
            pl_module.log_dict({f"reg/{k}": v for k, v in self.regs.last.items()}, on_step=True, prog_bar=False)

    def state_dict(self) -> dict[str, Any]:
        return self.regs.state_dict() if self.regs is not None else {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.regs is not None and state_dict:
            self.regs.load_state_dict(state_dict)
