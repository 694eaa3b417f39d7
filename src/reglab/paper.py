"""Deprecated module path: use reglab.core.paper. Removed in the next release."""

import warnings

from reglab.core.paper import Claim, Paper  # noqa: F401

warnings.warn("reglab.paper is deprecated; import from reglab.core.paper", DeprecationWarning, stacklevel=2)
