"""Coefficient schedules; the implementation is ``reglab.core.schedules``."""

from reglab.core.schedules import *  # noqa: F401,F403
from reglab.core.schedules import __all__  # noqa: F401
