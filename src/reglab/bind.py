"""Deprecated module path: use reglab.core.attach / reglab.core.regularizer / reglab.core.selection. Removed in the next release."""

import warnings

from reglab.core.attach import RegularizerSet, attach  # noqa: F401
from reglab.core.regularizer import Binding  # noqa: F401
from reglab.core.selection import EXCLUDED_MODULE_TYPES, default_exclude  # noqa: F401

warnings.warn("reglab.bind is deprecated; import from reglab.core.attach", DeprecationWarning, stacklevel=2)
