"""CLI subcommands of the lab: ``bench``, ``list``, ``info``."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the lab's subcommands to the ``reglab`` parser."""
