"""Coefficient schedules; the implementation is :mod:`reglab.core.schedules`."""

from reglab.core.schedules import *  # noqa: F401,F403
from reglab.core.schedules import __all__  # noqa: F401
