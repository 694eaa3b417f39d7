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
    arm (a value ``None`` drops the claim's argument: the task's default); ``metric`` reads another metric of the baseline's run (e.g. the
    temperature-scaled ECE of the plain run), default the claim's. ``why``
    says why a practitioner would use it instead.
    """

    label: str
    arm: dict[str, Any] | None = None
    task_args: dict[str, Any] = field(default_factory=dict)
    metric: str | None = None
    why: str = ""


@dataclass(frozen=True)
class Tuned:
    """One arm's tuning before the verdict seeds: the hyperparameter, the values tried (None when
    the grid was not recorded), the value picked and what it was picked on (seeds, data, metric)."""

    parameter: str
    grid: tuple[Any, ...] | None
    picked: Any
    on: str

    def describe(self) -> str:
        grid = f"from {{{', '.join(map(str, self.grid))}}}" if self.grid else "(grid not recorded)"
        return f"{self.parameter} = {self.picked} picked {grid} on {self.on}"


@dataclass(frozen=True)
class Tuning:
    """What was tuned for a claim, for the arm and for each baseline (by label).

    The default, ``Tuning()``, declares that neither the arm nor any baseline
    was tuned: paper, official or class defaults, or values set from an
    estimate before any run. An arm tuned on development seeds should give its
    strongest baseline the same grid on the same seeds (``baselines``), or the
    report shows the tuning as one-sided."""

    arm: Tuned | None = None
    baselines: tuple[tuple[str, Tuned], ...] = ()  # (baseline label, its tuning)
    note: str = ""

    @property
    def one_sided(self) -> bool:
        """The arm was tuned and no baseline was."""
        return self.arm is not None and not self.baselines

    def describe(self) -> str:
        if self.arm is None and not self.baselines:
            text = "neither the arm nor the baselines tuned"
        else:
            parts = [f"arm: {self.arm.describe() if self.arm else 'not tuned'}"]
            parts += [f"{label}: {t.describe()}" for label, t in self.baselines]
            if self.one_sided:
                parts.append("baselines: not tuned (one-sided tuning)")
            text = "; ".join(parts)
        return text + (f" ({self.note})" if self.note else "")


NOT_TUNED = Tuning()


class Baselines:
    """Baselines that claims of several methods share, written once (same arm and label, so the lab runs
    them once and the report reads the same everywhere)."""

    CE = Baseline("CE")
    LABEL_SMOOTHING = Baseline(
        "label smoothing (ε=0.1)", {"name": "label_smoothing"}, why="the one-line fix a practitioner tries first"
    )
    TEMPERATURE_SCALING = Baseline(
        "CE + temperature scaling", metric="ece_temperature_scaled",
        why="post-hoc calibration on the validation split (Guo et al. 2017), free at training time",
    )
    INVARIANCE_ONLY = Baseline("invariance only", why="the two-view loss that collapses without a regularizer")
    UNTRAINED_ENCODER = Baseline(
        "untrained encoder", metric="untrained_probe_accuracy",
        why="random features of the same encoder: what training must add to",
    )
    RAW_INPUT = Baseline("raw pixels", metric="raw_probe_accuracy", why="no representation learning at all")
    VICREG = Baseline("VICReg", {"name": "vicreg"}, why="the standard non-contrastive SSL loss")
    # the lab's ``beir_adapter`` task (a retrieval adapter fine-tuned on frozen MiniLM embeddings of SciFact)
    INFONCE_ADAPTER = Baseline(
        "InfoNCE adapter alone", why="the fine-tuned adapter without a regularizer (early stopping on validation)"
    )
    INFONCE_ADAPTER_UNIFORMITY = Baseline(
        "InfoNCE adapter + uniformity (Wang & Isola, t=2, λ=1)", {"name": "uniformity"},
        why="the other common loss that spreads embeddings on the sphere",
    )
    INFONCE_ADAPTER_KOLEO = Baseline(
        "InfoNCE adapter + KoLeo (λ=0.1)", {"name": "koleo"},
        why="the nearest-neighbour spreading loss (DINOv2's weight), the alternative to a pairwise one",
    )
    FROZEN_ENCODER = Baseline(
        "MiniLM without the adapter (0 epochs)", task_args={"epochs": 0},
        why="negative control: the frozen encoder itself, which a test of 'costs no nDCG@10 of fine-tuning' must "
        "tell from the fine-tuned adapter",
    )

    @staticmethod
    def shorter_training(epochs: int, of: int) -> Baseline:
        """A non-inferiority claim's negative control: the plain model trained for ``epochs`` of the task's
        ``of`` epochs, a weakened model a test of "costs no accuracy" must tell from the baseline."""
        return Baseline(
            f"no regularizer, {epochs} of {of} epochs", task_args={"epochs": epochs},
            why=f"negative control: a weakened model ({epochs} of the task's {of} epochs) that the same test must reject",
        )


#: ``ssl_collapse`` arguments where the invariance-only baseline is partially, not totally, collapsed: at 10
#: epochs its embedding keeps an effective rank of about 12 of 32 on digits and 17 on digits_half (dev seeds
#: 0-2: 12.5, 12.6, 11.8 and 18.0, 18.2, 16.5), while at the default 50 it reaches the floor of 1 by epoch
#: 20, where a regularizer that only slows the collapse reads as "no effect". The single-view regularizer
#: is bound to the 32-d embedding that collapses and is probed (``bind="output"``).
PARTIAL_COLLAPSE: dict[str, Any] = {"epochs": 10, "bind": "output"}
PARTIAL_COLLAPSE_SETTINGS = (
    "10 epochs instead of the task's 50, so that the invariance-only baseline is partially collapsed (effective "
    "rank about 12 of 32 on digits, 17 on digits_half, on dev seeds 0-2) rather than at the floor of 1; the "
    "regularizer on the 32-d embedding (the layer that collapses and is probed), not the 256-unit hidden layer"
)


def ssl_claims(
    mechanism: str, outcome: str, *, settings: str, source_mechanism: str, source_outcome: str,
    task_args: dict[str, Any] | None = None,
) -> tuple[Claim, Claim]:
    """The two claims of a representation regularizer on the lab's two-view ``ssl_collapse`` task: it
    prevents collapse (mechanism: effective rank vs invariance only, δ = one dimension of 32) and its
    representations give a better linear probe (outcome: vs invariance only, the untrained encoder and
    raw pixels, δ = one point)."""
    common = {"task": "ssl_collapse", "direction": "higher", "datasets": ("digits", "digits_half"),
              "task_args": dict(task_args or {})}  # fmt: skip
    return (
        Claim(
            mechanism, metric="effective_rank", role="mechanism", min_effect=1.0,
            min_effect_reason="one effective dimension (of 32)", baselines=(Baselines.INVARIANCE_ONLY,),
            settings=settings, source=source_mechanism, **common,
        ),
        Claim(
            outcome, metric="linear_probe_accuracy", min_effect=0.01, min_effect_reason="one point of probe accuracy",
            baselines=(Baselines.INVARIANCE_ONLY, Baselines.UNTRAINED_ENCODER, Baselines.RAW_INPUT),
            settings="as above", source=source_outcome, **common,
        ),
    )  # fmt: skip


#: what every claim on the ``beir_adapter`` task does differently from its paper
BEIR_ADAPTER_SETTINGS = (
    "a retrieval adapter fine-tuned on a real pretrained encoder instead of the paper's training from scratch: "
    "frozen all-MiniLM-L6-v2 embeddings of BEIR SciFact, a residual MLP 384-384-384 from the identity shared by "
    "queries and documents, in-batch InfoNCE (τ = 0.05, batch 128 pairs, Adam 1e-3, 20 epochs) on the train "
    "qrels less a 20% validation share drawn by the seed, epoch picked on validation nDCG@10; the regularizer "
    "at its class default weight on the batch's document outputs (a weight regularizer on every adapter "
    "parameter); judged on the mean nDCG@10 of the 300 test queries, paired over seeds (the seed draws the "
    "adapter's initialization, batch order and validation share); nothing tuned (developed on seeds 0-4)"
)

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

    A claim the lab cannot test honestly at its scale (it needs ImageNet-size
    training, a model family the lab does not have, ...) is declared with
    ``testable=False`` and ``untestable_reason``: the lab never runs it and
    its report lists it with the reason, so the gap is visible.

    ``control`` (required of non-inferiority claims, a test checks it) is a
    negative control: an arm that should fail the same test (no regularizer
    where the claim is that the regularizer can replace another one, a plain
    warm start, a penalty strong enough to cost accuracy). It runs on the
    claim's task and datasets and goes through the same non-inferiority test
    against each baseline; when it passes too, the test could not have failed
    and the claim is "uninformative", whatever the arm did.

    ``tuning`` records what was tuned before the verdict seeds, for the arm
    and the baselines (default: neither).

    ``paired_over="units"`` is for a deterministic task that reports one
    value per unit of evaluation (e.g. per STS file, ``TaskResult.units``):
    the lab runs each arm once (seed 0) and pairs the arms unit by unit.
    """

    statement: str
    task: str = ""
    metric: str = ""
    direction: Literal["higher", "lower"] = "higher"
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
    testable: bool = True
    untestable_reason: str = ""
    paired_over: Literal["seeds", "units"] = "seeds"
    control: Baseline | None = None
    tuning: Tuning = NOT_TUNED

    def __post_init__(self) -> None:
        if not self.testable:
            if not self.untestable_reason.strip():
                raise ValueError(
                    f"Claim {self.statement[:50]!r}: testable=False needs untestable_reason (why it cannot be "
                    f"tested honestly at the lab's scale)"
                )
            return
        if self.paired_over not in ("seeds", "units"):
            raise ValueError(f"Claim.paired_over must be 'seeds' or 'units', got {self.paired_over!r}")
        if not self.task or not self.metric:
            raise ValueError(f"Claim {self.statement[:50]!r}: a testable claim needs task= and metric=")
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
        if self.control is not None and not isinstance(self.control, Baseline):
            raise TypeError(f"Claim.control must be a reglab.core.paper.Baseline (an arm that should fail), got {self.control!r}")
        if self.control is not None and self.kind != "non-inferiority":
            raise ValueError(f"Claim {self.statement[:50]!r}: a control is for non-inferiority claims (kind={self.kind!r})")
        if not isinstance(self.tuning, Tuning):
            raise TypeError(f"Claim.tuning must be a reglab.core.paper.Tuning, got {self.tuning!r}")
        labels = {b.label for b in self.compared_with}
        unknown = [label for label, _ in self.tuning.baselines if label not in labels]
        if unknown:
            raise ValueError(f"Claim {self.statement[:50]!r}: tuning names baselines it does not have: {unknown} "
                             f"(its baselines: {sorted(labels)})")

    @property
    def compared_with(self) -> tuple[Baseline, ...]:
        """The baselines, or the single ``baseline_arm`` when none are listed."""
        return self.baselines or (Baseline(self.baseline, self.baseline_arm),)
