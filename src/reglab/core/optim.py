"""Optimizer wrappers (SAM, AMP): a regularizer that changes the update rule around a base optimizer."""

from __future__ import annotations

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
