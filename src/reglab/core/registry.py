"""Name -> class, with metadata; ``reglab.create("group_lasso", weight=1e-4)``.

Classes register themselves with ``register`` where they are defined,
so their metadata (kind, paper, formula, claims) sits beside the code. Importing
any ``reglab`` module first runs ``reglab/__init__``, which imports every method
module, so the registry is complete before any lookup.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar

from reglab.core.errors import UnknownRegularizerError
from reglab.core.paper import Claim, Paper

KINDS = ("weight", "representation", "output", "stochastic", "procedure", "embedding")

#: How a registered object is used, so nobody has to guess.
FORMS = {
    "penalty": "call it on tensors and add the returned scalar to the loss",
    "target": "transforms the training targets; train with the returned targets",
    "transform": "a tensor transform applied to inputs or activations during training",
    "module": "an nn.Module to insert into (or wrap around part of) the model",
    "optimizer": "an optimizer wrapper that changes the update rule",
    "posthoc": "fit on embeddings after training, then transform them",
    "operation": "call it on the model between training rounds (e.g. when new data arrive); it changes the weights in place, no loss term",
    "pruning": "attach it; regs.step(opt) after optimizer.step() updates its weight masks on a schedule (no loss term)",
    "reparametrization": "apply it to the model before building the optimizer; it reparametrizes the layers' weights (torch parametrize, state in state_dict; no loss term)",
}

_REGISTRY: dict[str, type] = {}


class Registered:
    """The metadata every registered class carries, which the registry reports.

    ``name`` (registry name), ``kind`` (one of ``KINDS``), ``form`` (one of
    ``FORMS``), ``paper``, ``formula`` (one line) and ``claims`` (for the lab).
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    form: ClassVar[str] = "penalty"
    paper: ClassVar[Paper | None] = None
    formula: ClassVar[str] = ""
    claims: ClassVar[tuple[Claim, ...]] = ()


def register(cls: type) -> type:
    """Class decorator: add ``cls`` under ``cls.name`` after checking its metadata."""
    name = getattr(cls, "name", "")
    if not name or not isinstance(name, str):
        raise TypeError(f"{cls.__name__} needs a class attribute `name` to be registered")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"registry name {name!r} is taken by {_REGISTRY[name].__qualname__}")
    kind = getattr(cls, "kind", None)
    if kind not in KINDS:
        raise TypeError(f"{cls.__name__}.kind must be one of {KINDS}, got {kind!r}")
    form = getattr(cls, "form", None)
    if form not in FORMS:
        raise TypeError(f"{cls.__name__}.form must be one of {sorted(FORMS)}, got {form!r}")
    paper = getattr(cls, "paper", None)
    if paper is not None and not isinstance(paper, Paper):
        raise TypeError(f"{cls.__name__}.paper must be a reglab.Paper or None")
    for claim in getattr(cls, "claims", ()):
        if not isinstance(claim, Claim):
            raise TypeError(f"{cls.__name__}.claims must hold reglab.Claim objects")
    _REGISTRY[name] = cls
    return cls


def get(name: str) -> type:
    """The registered class for ``name``."""
    if not isinstance(name, str):
        raise TypeError(f"registry names are strings, got {name!r}")
    key = name.strip().lower().replace("-", "_")
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, list(_REGISTRY), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownRegularizerError(
        f"unknown regularizer {name!r}{hint} (`reglab list` shows all {len(_REGISTRY)})"
    )


def create(name: str, **kwargs: Any) -> Any:
    """Build a registered object: ``create("group_lasso", weight=1e-4, groups="out")``."""
    return get(name)(**kwargs)


def list_regularizers(kind: str | None = None) -> list[str]:
    """Registered names, sorted, optionally of one ``kind``."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; kinds are {KINDS}")
    return sorted(n for n, c in _REGISTRY.items() if kind is None or c.kind == kind)


@dataclass(frozen=True)
class Info:
    name: str
    cls: type
    kind: str
    form: str
    summary: str
    formula: str
    defaults: dict[str, Any]
    paper: Paper | None
    claims: tuple[Claim, ...] = field(default_factory=tuple)
    required: tuple[str, ...] = ()  # constructor arguments without a default (sizes, a module, params)

    def __str__(self) -> str:
        lines = [
            f"{self.name}  ({self.kind}, {self.form}: {FORMS[self.form]})",
            f"  class:    {self.cls.__module__}.{self.cls.__qualname__}",
            f"  summary:  {self.summary}",
        ]
        if self.formula:
            lines.append(f"  formula:  {self.formula}")
        if self.required:
            lines.append("  required: " + ", ".join(self.required))
        if self.defaults:
            lines.append("  defaults: " + ", ".join(f"{k}={v!r}" for k, v in self.defaults.items()))
        lines.append(f"  paper:    {self.paper.cite() if self.paper else '(classic; no single paper)'}")
        for claim in self.claims:
            if not claim.testable:
                lines.append(f"  claim:    {claim.statement} [not testable at the lab's scale: {claim.untestable_reason}]")
                continue
            lines.append(
                f"  claim:    {claim.statement} [{claim.role}; {claim.task}: {claim.metric} {claim.direction} than "
                f"{', '.join(b.label for b in claim.compared_with)}]"
            )
        return "\n".join(lines)


def info(name: str) -> Info:
    """Kind, form, formula, defaults and paper of a registered name."""
    cls = get(name)
    params = [
        (k, p) for k, p in inspect.signature(cls.__init__).parameters.items()
        if k != "self" and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]  # fmt: skip
    defaults = {k: p.default for k, p in params if p.default is not inspect.Parameter.empty}
    required = tuple(k for k, p in params if p.default is inspect.Parameter.empty)
    doc = inspect.getdoc(cls) or ""
    return Info(
        name=cls.name,
        cls=cls,
        kind=cls.kind,
        form=cls.form,
        summary=doc.split("\n\n")[0].replace("\n", " "),
        formula=getattr(cls, "formula", ""),
        defaults=defaults,
        paper=getattr(cls, "paper", None),
        claims=tuple(getattr(cls, "claims", ())),
        required=required,
    )


def from_config(cfg: dict[str, Any], **runtime: Any) -> Any:
    """Rebuild an object from ``obj.get_config()``.

    ``runtime`` supplies constructor arguments that are live objects rather
    than configuration (parameters, a base optimizer).
    """
    from reglab.core.config import deserialize_value

    if not isinstance(cfg, dict) or "name" not in cfg:
        raise ValueError(f"from_config expects a dict from get_config() with a 'name' key, got {cfg!r}")
    cfg = dict(cfg)
    cls = get(cfg.pop("name"))
    kwargs = {k: deserialize_value(v) for k, v in cfg.items()}
    kwargs.update(runtime)
    return cls(**kwargs)


def markdown_table(verdicts: dict[str, str] | None = None) -> str:
    """The README's table of registered names (regenerated by ``python -m reglab.docs``);
    ``verdicts`` (name -> text) fills a lab-verdict column when given."""
    rows = ["| name | kind | form | paper |", "|---|---|---|---|"]
    if verdicts is not None:
        rows = ["| name | kind | form | paper | lab verdicts |", "|---|---|---|---|---|"]
    for kind in KINDS:
        for name in list_regularizers(kind):
            cls = _REGISTRY[name]
            paper = getattr(cls, "paper", None)
            if paper is None:
                cite = "classic"
            else:
                link = (
                    f"https://arxiv.org/abs/{paper.arxiv}" if paper.arxiv else f"https://doi.org/{paper.doi}"
                )
                cite = f"[{paper.title}]({link}) ({paper.year})"
            row = f"| `{name}` | {kind} | {cls.form} | {cite} |"
            if verdicts is not None:
                row += f" {verdicts.get(name, 'no claim yet')} |"
            rows.append(row)
    return "\n".join(rows)
