"""Deprecated module path (see ``reglab.regularizers``)."""

from reglab.regularizers import *  # noqa: F401,F403
