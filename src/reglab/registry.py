"""Deprecated module path: use reglab.core.registry. Removed in the next release."""

import warnings

from reglab.core.registry import *  # noqa: F401,F403
from reglab.core.registry import FORMS, KINDS, get, markdown_table  # noqa: F401

warnings.warn("reglab.registry is deprecated; import from reglab.core.registry", DeprecationWarning, stacklevel=2)
