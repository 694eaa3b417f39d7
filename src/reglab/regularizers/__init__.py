"""Deprecated module path: the classes live in ``reglab.methods.<paper>``; import them from ``reglab``."""

import warnings

from reglab import _METHOD_CLASSES
from reglab.core.regularizer import Penalty, Regularizer, WeightRegularizer  # noqa: F401

globals().update(_METHOD_CLASSES)
warnings.warn("reglab.regularizers is deprecated; import the classes from reglab", DeprecationWarning, stacklevel=2)
