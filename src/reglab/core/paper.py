"""Citation metadata and lab claims attached to every registered class."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class Paper:
    """Where a method comes from. ``arxiv`` or ``doi`` identifies it."""

    title: str
    authors: str
    year: int
    arxiv: str | None = None
    doi: str | None = None
    venue: str | None = None
    code: str | None = None  # official repository, where its defaults were checked

    def cite(self) -> str:
        ident = f"arXiv:{self.arxiv}" if self.arxiv else (f"doi:{self.doi}" if self.doi else "")
        venue = f" {self.venue}." if self.venue else ""
        return f"{self.authors} ({self.year}). {self.title}.{venue} {ident}".strip()

    def short_cite(self) -> str:
        """``"Bardes et al. 2022"``: first author's surname, "et al." when there are more, year."""
        first = self.authors.split(",")[0].split(" and ")[0].strip()
        etal = " et al." if ("," in self.authors or " and " in self.authors) else ""
        return f"{first.split()[-1] if first else '?'}{etal} {self.year}"

    def __str__(self) -> str:
        return self.cite()


@dataclass(frozen=True)
class Claim:
    """A claim from a paper that the lab (``reglab bench``) can test.

    ``task`` names a lab task (``reglab.bench.tasks``); ``task_args``
    configure it (e.g. noise rate). The treated arm is the registered object
    built from ``arm`` (a ``get_config``-style dict; the class's own registry
    name and paper defaults when empty). The baseline arm is ``baseline_arm``
    (a config dict, or None for the same task without any regularizer), shown
    in reports as ``baseline``. ``direction`` says whether the paper expects
    ``metric`` to be higher or lower than the baseline's.
    """

    statement: str
    task: str
    metric: str
    direction: Literal["higher", "lower"]
    baseline: str = "no regularizer"
    baseline_arm: dict[str, Any] | None = None
    task_args: dict[str, Any] = field(default_factory=dict)
    arm: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # where in the paper the claim is made

    def __post_init__(self) -> None:
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"Claim.direction must be 'higher' or 'lower', got {self.direction!r}")
