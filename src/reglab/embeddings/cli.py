"""CLI subcommand ``reglab sts``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``sts`` to the ``reglab`` parser."""
