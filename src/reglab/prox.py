"""Deprecated module path: use reglab.ops.prox and reglab.core.attach. Removed in the next release."""

import warnings

from reglab.core.attach import apply_prox, learning_rates  # noqa: F401
from reglab.ops.prox import group_soft_threshold, soft_threshold  # noqa: F401

warnings.warn("reglab.prox is deprecated; import from reglab.ops.prox", DeprecationWarning, stacklevel=2)
