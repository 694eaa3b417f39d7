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
class Baseline:
    """An arm a claim is judged against.

    ``arm`` is a ``get_config``-style dict (None: the task without any
    regularizer). ``task_args`` override the claim's task arguments for this
    arm; ``metric`` reads another metric of the baseline's run (e.g. the
    temperature-scaled ECE of the plain run), default the claim's. ``why``
    says why a practitioner would use it instead.
    """

    label: str
    arm: dict[str, Any] | None = None
    task_args: dict[str, Any] = field(default_factory=dict)
    metric: str | None = None
    why: str = ""


CLAIM_KINDS = ("superiority", "non-inferiority")
CLAIM_ROLES = ("outcome", "mechanism")


@dataclass(frozen=True)
class Claim:
    """A claim from a paper that the lab (``reglab bench``) can test.

    ``task`` names a lab task (``reglab.bench.tasks``); ``task_args``
    configure it (e.g. noise rate), ``datasets`` the data it runs on (a
    verdict per dataset). The treated arm is the registered object built
    from ``arm`` (a ``get_config``-style dict; the class's own registry name
    and paper defaults when empty).

    ``kind`` is ``"superiority"`` (``metric`` moves in ``direction`` by at
    least ``min_effect``) or ``"non-inferiority"`` (it does not move against
    ``direction`` by more than ``min_effect``). ``min_effect`` is the
    smallest effect of interest δ in the metric's units, with
    ``min_effect_reason`` saying why. ``baselines`` are the arms the claim
    must beat: the plain baseline and the strongest simple alternative a
    practitioner would use instead (without them: ``baseline_arm`` labelled
    ``baseline``). ``role`` is ``"outcome"`` (what a user wants: accuracy,
    calibration, cost) or ``"mechanism"`` (the penalty does what its formula
    says). ``settings`` names every setting that is not the paper's and
    why. With ``at_equal_cpu_time`` the metric is a per-epoch curve of the
    task, compared at the process CPU time the baseline spends on half its
    epochs (a cost claim at equal compute).
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
    kind: Literal["superiority", "non-inferiority"] = "superiority"
    min_effect: float | None = None
    min_effect_reason: str = ""
    baselines: tuple[Baseline, ...] = ()
    datasets: tuple[str, ...] = ("digits",)
    role: Literal["outcome", "mechanism"] = "outcome"
    settings: str = ""
    at_equal_cpu_time: bool = False

    def __post_init__(self) -> None:
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"Claim.direction must be 'higher' or 'lower', got {self.direction!r}")
        if self.kind not in CLAIM_KINDS:
            raise ValueError(f"Claim.kind must be one of {CLAIM_KINDS}, got {self.kind!r}")
        if self.role not in CLAIM_ROLES:
            raise ValueError(f"Claim.role must be one of {CLAIM_ROLES}, got {self.role!r}")
        if self.min_effect is not None and not (isinstance(self.min_effect, (int, float)) and self.min_effect > 0):
            raise ValueError(f"Claim.min_effect must be a number > 0 (the smallest effect of interest), got {self.min_effect!r}")
        if not self.datasets or isinstance(self.datasets, str):
            raise ValueError(f"Claim.datasets must be a non-empty tuple of dataset names, got {self.datasets!r}")
        if not all(isinstance(b, Baseline) for b in self.baselines):
            raise TypeError("Claim.baselines must hold reglab.core.paper.Baseline objects")

    @property
    def compared_with(self) -> tuple[Baseline, ...]:
        """The baselines, or the single ``baseline_arm`` when none are listed."""
        return self.baselines or (Baseline(self.baseline, self.baseline_arm),)
