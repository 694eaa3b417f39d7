"""Optimizer wrappers (SAM, AMP): a regularizer that changes the update rule around a base optimizer."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from reglab.core.config import Configurable
from reglab.core.errors import RegularizerInputError
from reglab.core.registry import Registered

__all__ = ["WrappedOptimizer"]


class WrappedOptimizer(Registered, Configurable, torch.optim.Optimizer):
    """Shares its param groups with ``base_optimizer(params, **kwargs)``.

    The base optimizer's keyword arguments (``lr``, ``momentum``...) are
    configuration: ``get_config`` includes them so ``from_config`` rebuilds
    the same optimizer.
    """

    kind: ClassVar[str] = "procedure"
    form: ClassVar[str] = "optimizer"
    _runtime_args = ("params", "base_optimizer")

    def _setup(self, params, base_optimizer, defaults: dict[str, Any], kwargs: dict[str, Any]) -> None:
        if not (isinstance(base_optimizer, type) and issubclass(base_optimizer, torch.optim.Optimizer)):
            raise RegularizerInputError(
                f"{type(self).__name__} expects base_optimizer to be an optimizer class such as "
                f"torch.optim.SGD, got {base_optimizer!r}"
            )
        self.base_kwargs = dict(kwargs)
        torch.optim.Optimizer.__init__(self, params, dict(defaults, **kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups
        # One state dict for both, so state_dict() carries the base optimizer's momentum etc.
        self.state = self.base_optimizer.state
        self.defaults.update(self.base_optimizer.defaults)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.base_optimizer.param_groups = self.param_groups
        self.base_optimizer.state = self.state

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()
        cfg.update(self.base_kwargs)
        return cfg

    def _params_with_grad(self) -> list[torch.Tensor]:
        return [p for g in self.param_groups for p in g["params"] if p.grad is not None]

    def _checked_closure_loss(self, closure: Any, when: str) -> Any:
        """The loss of ``closure`` (evaluated with gradients on; None without a closure), after refusing
        meta parameters and a non-finite loss, weight or gradient (``when`` names the stage)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self._refuse_meta()
        self._refuse_nonfinite(loss, when=when)
        return loss

    # ---------------------------------------------------------------- refusals
    def _refuse_meta(self) -> None:
        """A clear error for parameters on the meta device (a shape, no values): nothing to step."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.device.type == "meta":
                    raise RegularizerInputError(
                        f"{type(self).__name__} cannot step a parameter on the meta device (shape {tuple(p.shape)}: "
                        f"a shape without values); materialize the model first (model.to_empty(device=...) and "
                        f"initialize it, or load a checkpoint)"
                    )

    def _refuse_nonfinite(
        self, loss: Any = None, *, grads: bool = True, weights: bool = True, when: str = "",
        extra: torch.Tensor | None = None,
    ) -> float | None:
        """Raise ``RegularizerInputError`` if the loss, a parameter or a gradient holds NaN/inf, so a
        step never writes them into the weights; ``when`` says at which stage. Reads every max |·|
        with one host sync per device (``torch._foreach_norm(…, inf)``), ``extra`` (a 0-d tensor,
        such as SAM's gradient norm) in the same read; returns ``extra``'s value."""
        who = type(self).__name__
        items: list[tuple[str, int, int, torch.Tensor]] = []  # (what, group, index, tensor)
        if isinstance(loss, torch.Tensor):
            items.append(("loss", -1, -1, loss.detach().float()))
        elif isinstance(loss, (int, float)):
            items.append(("loss", -1, -1, torch.tensor(float(loss))))
        if extra is not None:
            items.append(("extra", -1, -1, extra.detach()))
        for g, group in enumerate(self.param_groups):
            for k, p in enumerate(group["params"]):
                if weights:
                    items.append(("weight", g, k, p.detach()))
                if grads and p.grad is not None and not p.grad.is_sparse:
                    items.append(("grad", g, k, p.grad.detach()))
        values = _max_abs(t for *_, t in items)
        value_of_extra = next((v for (what, *_), v in zip(items, values) if what == "extra"), None)
        order = {"weight": 0, "loss": 1, "grad": 2}  # a non-finite weight is the cause of the rest
        bad = [(item, v) for item, v in zip(items, values) if item[0] != "extra" and not math.isfinite(v)]
        if not bad:
            return value_of_extra
        (what, g, k, t), v = min(bad, key=lambda iv: order[iv[0][0]])
        where = f" {when}" if when else ""
        if what == "loss":
            shown = float(t.reshape(-1)[0]) if t.numel() == 1 else v
            raise RegularizerInputError(
                f"{who} got a non-finite loss ({shown}){where}; refusing to step: the weights are left as they were"
            )
        param = f"parameter {k} (shape {tuple(t.shape)}) of param group {g}"
        if what == "weight":
            raise RegularizerInputError(
                f"{who} found NaN/inf values in {param}{where}; refusing to step on non-finite weights"
            )
        raise RegularizerInputError(
            f"{who} found NaN/inf values in the gradient of {param}{where}; refusing to step: the weights are left "
            f"as they were (a NaN/inf input or loss gives NaN gradients)"
        )


def _max_abs(tensors: Any) -> list[float]:
    """``max |t|`` of each tensor as a Python float (NaN if it holds a NaN, 0 if empty), one host
    sync per device."""
    tensors = list(tensors)
    out = [0.0] * len(tensors)
    by_device: dict[torch.device, list[int]] = {}
    for i, t in enumerate(tensors):
        if t.numel():
            by_device.setdefault(t.device, []).append(i)
    for idx in by_device.values():
        norms = torch._foreach_norm([tensors[i].reshape(-1) for i in idx], float("inf"))
        for i, v in zip(idx, torch.stack([n.float() for n in norms]).tolist()):
            out[i] = v
    return out
