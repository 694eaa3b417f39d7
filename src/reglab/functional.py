"""Pure penalties: tensor in, scalar tensor out, differentiable, no state.

``import reglab.functional as RF`` then ``RF.group_lasso(w)``. Each function
is the one statement of its method's formula, in ``reglab.methods.<paper>``;
the matching ``reglab.Regularizer`` calls it. Weight penalties take one
tensor or a list of tensors (the sum over them, computed fused).
"""

from typing import Any as _Any

from reglab.methods import method_modules as _method_modules
from reglab.methods import public_names as _public_names
from reglab.ops.batches import covariance_offdiag, variance_hinge
from reglab.ops.targets import soft_cross_entropy


def _pure_functions() -> dict[str, _Any]:
    """Every public function (and named-terms tuple) of the method modules."""
    found: dict[str, _Any] = {}
    for module in _method_modules():
        for name, obj in _public_names(module).items():
            if not isinstance(obj, type) or issubclass(obj, tuple):
                found[name] = obj
    return found


globals().update(_pure_functions())
__all__ = sorted([*_pure_functions(), "covariance_offdiag", "variance_hinge", "soft_cross_entropy"])
