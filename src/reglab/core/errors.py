"""The exceptions reglab raises for bad input (the checks themselves live in ``reglab.ops.validation``)."""

from __future__ import annotations


class RegularizerInputError(ValueError):
    """A regularizer was given input it cannot use; the message names it, what it got and what it expects."""


class UnknownRegularizerError(KeyError, ValueError):
    """An unknown registry name; the message suggests the closest names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])
