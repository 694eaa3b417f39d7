"""Elastic Weight Consolidation (Kirkpatrick et al., PNAS 2017): a quadratic anchor weighted by the
diagonal Fisher information of the previous task.

Their Eq. 3: L(θ) = L_B(θ) + Σ_i (λ/2)·F_i·(θ_i − θ*_{A,i})², θ*_A the weights after task A and
F the diagonal of the Fisher information at θ*_A, F_i = E_x E_{y∼p_θ(y|x)}[(∂ log p_θ(y|x)/∂θ_i)²]
(their "Materials and Methods": the Fisher is computed from first-order derivatives alone). The
authors released no code; the expectation over y is taken exactly here (a sum over the model's
classes weighted by its probabilities), the "true" Fisher, or with the dataset's labels
(``fisher="empirical"``, the common shortcut). For more than one previous task the Fisher
matrices are summed and the anchor moves to the newest weights (Huszár 2018, "Note on the
quadratic penalties in elastic weight consolidation", PNAS; the online EWC of Schwarz et al. 2018
with γ = 1), which for two tasks is the paper's Eq. 3 exactly. ``weight`` is λ; the paper tunes it
per experiment and reports no value, the default 100 is a library choice.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from reglab.core import AnchorState, Baseline, Claim, Paper, RegularizerInputError, register
from reglab.core.paper import Tuned, Tuning
from reglab.ops import as_tensors, check_choice, checked_total, paired_tensors, sum_terms

__all__ = ["ewc", "fisher_diagonal", "EWC"]

PAPER = Paper(
    "Overcoming catastrophic forgetting in neural networks",
    "Kirkpatrick, Pascanu, Rabinowitz, Veness, Desjardins, Rusu, Milan, Quan, Ramalho, Grabska-Barwinska, "
    "Hassabis, Clopath, Kumaran, Hadsell", 2017, arxiv="1612.00796", venue="PNAS")

WHO = "EWC"


def ewc(
    w: torch.Tensor | Sequence[torch.Tensor],
    anchor: torch.Tensor | Sequence[torch.Tensor],
    fisher: torch.Tensor | Sequence[torch.Tensor],
) -> torch.Tensor:
    """EWC ``½·Σ_i F_i·(w_i − w*_i)²`` summed over tensors (Kirkpatrick et al., 2017, Eq. 3 without λ)."""
    ws, anchors = paired_tensors("ewc", w, anchor, "anchor", lambda t: tuple(t.shape))
    _, fishers = paired_tensors("ewc", ws, fisher, "fisher", lambda t: tuple(t.shape))
    terms = [0.5 * (f.to(t.dtype) * (t - a.to(t.dtype)).pow(2)).sum() for t, a, f in zip(ws, anchors, fishers)]
    return checked_total("ewc", sum_terms(terms), [*ws, *anchors, *fishers])


@torch.no_grad()
def fisher_diagonal(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor | None = None,
    *,
    params: Sequence[str] | None = None,
    fisher: str = "true",
    batch_size: int = 256,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The diagonal Fisher ``E_x[(∂ log p(y|x)/∂θ)²]`` of a classifier (logits out) per named parameter.

    ``fisher="true"``: the expectation over ``y ∼ p_θ(y|x)`` exactly, ``Σ_c p_c(x)·(∂ log p_c/∂θ)²``
    (the Fisher information, Kirkpatrick et al. 2017; C gradients per input); ``"sampled"``: at one
    ``y ∼ p_θ(y|x)`` per input (``generator``), an unbiased Monte Carlo estimate of the same Fisher at the
    cost of one gradient per input; ``"empirical"``: at the given ``targets`` (not the Fisher of the model).
    Per-sample gradients by ``torch.func`` (vmap over the batch, the model in eval mode, restored after),
    averaged over the samples. ``params``: names to compute (default every parameter requiring grad).
    """
    from torch.func import functional_call, grad, vmap

    check_choice(WHO, "fisher", fisher, ("true", "sampled", "empirical"))
    if not isinstance(inputs, torch.Tensor) or inputs.ndim < 1 or inputs.shape[0] == 0:
        raise RegularizerInputError(f"{WHO}.consolidate needs a non-empty batch of inputs, got {inputs!r:.80}")
    if not bool(torch.isfinite(inputs).all()):
        raise RegularizerInputError(f"{WHO}.consolidate got NaN/inf in its inputs")
    if fisher == "empirical" and (targets is None or targets.shape[:1] != inputs.shape[:1]):
        raise RegularizerInputError(f"{WHO}: the empirical Fisher needs one label per input (targets=)")
    named = dict(model.named_parameters())
    names = [n for n, p in named.items() if p.requires_grad] if params is None else list(params)
    if not names:
        raise RegularizerInputError(f"{WHO}.consolidate found no parameters to estimate the Fisher of")
    fixed = {n: p.detach() for n, p in named.items()}
    buffers = dict(model.named_buffers())

    def log_probs(chosen, x):
        out = functional_call(model, ({**fixed, **chosen}, buffers), (x[None],))
        if out.ndim != 2:
            raise RegularizerInputError(f"{WHO} expects the model to return (batch, classes) logits, got {tuple(out.shape)}")
        return torch.log_softmax(out, dim=-1)[0]

    def one(chosen, x, c):
        return log_probs(chosen, x).gather(0, c[None])[0]

    per_sample_grad = vmap(grad(one), in_dims=(None, 0, 0))
    chosen = {n: fixed[n] for n in names}
    sums = {n: torch.zeros_like(fixed[n], dtype=torch.float64) for n in names}
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            for start in range(0, inputs.shape[0], batch_size):
                x = inputs[start : start + batch_size]
                if fisher != "true":
                    if fisher == "empirical":
                        labels = targets[start : start + batch_size].long()
                    else:  # one label per input drawn from the model: a Monte Carlo estimate of the true Fisher
                        with torch.no_grad():
                            probs = torch.softmax(functional_call(model, (fixed, buffers), (x,)).float(), dim=-1)
                        labels = torch.multinomial(probs, 1, generator=generator)[:, 0]
                    g = per_sample_grad(chosen, x, labels)
                    for n in names:
                        sums[n] += g[n].pow(2).sum(0).double()
                    continue
                probs = vmap(lambda xi: log_probs(chosen, xi).exp())(x)  # (b, C)
                for c in range(probs.shape[1]):
                    g = per_sample_grad(chosen, x, torch.full((x.shape[0],), c, dtype=torch.long))
                    for n in names:
                        w = probs[:, c].reshape(-1, *([1] * fixed[n].ndim))
                        sums[n] += (w * g[n].pow(2)).sum(0).double()
    finally:
        model.train(was_training)
    out = {n: (s / inputs.shape[0]).to(fixed[n].dtype) for n, s in sums.items()}
    for n, f in out.items():
        if not bool(torch.isfinite(f).all()):
            raise RegularizerInputError(f"{WHO}: the Fisher of parameter {n!r} is not finite (NaN/inf gradients)")
    return out


@register
class EWC(AnchorState):
    """Elastic Weight Consolidation: ``R(θ) = ½·Σ_i F_i·(θ_i − θ*_i)²``, λ = ``weight``.

    Kirkpatrick et al. (2017), Eq. 3: after task A, each weight is pulled back toward its value
    θ*_A in proportion to F_i, the diagonal Fisher information of task A at θ*_A, so the weights
    that task A's predictions depend on move least while learning task B.

    Usage: train task A; ``regs = reglab.attach(model, EWC(λ))``; ``reg.consolidate(model,
    x_A)`` (records θ* and estimates F on task A's inputs); train task B on ``loss +
    regs.penalty()``. ``consolidate`` again after task B to protect both (Fishers summed, anchor
    at the newest weights: Huszár 2018). ``fisher="true"`` (the default) takes the exact
    expectation over the model's predicted classes (C gradients per input); ``"sampled"`` draws one
    label per input from the model (unbiased, one gradient per input); ``"empirical"`` uses the labels
    given to ``consolidate``. Anchors (``anchor__<name>``) and Fishers (``fisher__<name>``) are buffers,
    so they round-trip ``state_dict``. Before the first ``consolidate`` the Fisher is 0 (no previous task) and the
    penalty is 0, with a warning.
    The paper gives no λ (tuned per experiment); the default 100 is a library choice.
    """

    name = "ewc"
    formula = "R(θ) = ½ Σ_i F_i (θ_i − θ*_i)²,  F = diagonal Fisher of the previous task at θ*"
    paper = PAPER
    function = ewc
    default_weight = 100.0
    claims = (
        Claim(
            "EWC keeps the first task while learning the second: average accuracy over both tasks beats plain "
            "fine-tuning and an L2 pull toward the first task's weights",
            task="continual", metric="average_accuracy", direction="higher",
            arm={"name": "ewc", "weight": 1000.0, "fisher": "sampled"},
            min_effect=0.01, min_effect_reason="one point of accuracy averaged over the two tasks",
            baselines=(
                Baseline("fine-tuning, no regularizer", why="plain sequential training (the paper's SGD curve)"),
                Baseline("L2 toward the task-A weights (α = 0.1)", {"name": "l2_sp", "weight": 0.1},
                         why="the same anchor with a uniform weight (the paper's L2 curve)"),
            ),
            datasets=("digits",),
            settings="two tasks, digits then the same digits under a fixed random pixel permutation (the paper's "
            "permuted MNIST, Fig. 2A, on 8×8 digits), an MLP 64-256-256-10 with one shared head, Adam 1e-3, 20 epochs "
            "per task, last epoch; the Fisher on task A's 1005 training inputs with one label drawn from the model per "
            "input (fisher=\"sampled\", an unbiased estimate of the true Fisher at a tenth of its cost); λ and the L2 "
            "baseline's α tuned on the same dev seeds with four values each",
            source="Kirkpatrick et al. 2017, Fig. 2A-B (EWC vs SGD vs L2 on permuted MNIST)",
            tuning=Tuning(
                arm=Tuned("weight λ", (10.0, 100.0, 1000.0, 10000.0), 1000.0,
                          "dev seeds 0-4, digits, average_accuracy (0.80, 0.87, 0.90, 0.90)"),
                baselines=(("L2 toward the task-A weights (α = 0.1)",
                            Tuned("weight α", (0.01, 0.1, 1.0, 10.0), 0.1,
                                  "dev seeds 0-4, digits, average_accuracy (0.82, 0.84, 0.70, 0.55)")),),
            ),
        ),
    )

    @classmethod
    def leading_parameters(cls) -> list[inspect.Parameter]:
        fisher = inspect.Parameter("fisher", inspect.Parameter.POSITIONAL_OR_KEYWORD, default="true")
        return [*super().leading_parameters(), fisher]

    def _init_from_values(self, values: dict[str, Any]) -> None:
        self.fisher = check_choice(WHO, "fisher", values.get("fisher", "true"), ("true", "sampled", "empirical"))
        super()._init_from_values(values)

    # ------------------------------------------------------------------ state
    def _fisher_key(self, w: torch.Tensor) -> str | None:
        slot = self._slots.get(id(w))
        if slot is None or slot[0]() is not w:
            return None
        return "fisher__" + slot[1][len(self._state_prefix):]

    def _fisher(self, w: torch.Tensor) -> torch.Tensor:
        """The stored Fisher of ``w``; before any ``consolidate``, zeros (no previous task: nothing to
        protect), with a one-time warning, since a forgotten ``consolidate`` would silently disable EWC."""
        self._anchor(w)  # a tensor never set up raises, naming EWC
        key = self._fisher_key(w)
        buf = self._buffers.get(key)
        if buf is None:
            if not getattr(self, "_warned", False):
                warnings.warn(
                    f"{WHO} has no Fisher yet (reg.consolidate(model, inputs) was not called after the previous "
                    f"task): its penalty is 0 until then", RuntimeWarning, stacklevel=3,
                )
                self._warned = True
            return torch.zeros_like(w)
        return buf

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing, unexpected, errors):
        for full, value in state_dict.items():
            name = full[len(prefix):]
            if full.startswith(prefix + "fisher__") and "." not in name:
                buf = self._buffers.get(name)
                if buf is None or buf.shape != value.shape:
                    self.register_buffer(name, torch.empty_like(value))
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing, unexpected, errors)

    def consolidate(
        self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor | None = None, *, batch_size: int = 256,
        generator: torch.Generator | None = None,
    ) -> None:
        """After a task: anchor the bound parameters at their current values and add the task's diagonal
        Fisher (estimated on ``inputs``, with ``targets`` for ``fisher="empirical"``) to the stored one.
        Parameters are those ``reglab.attach`` (or ``setup``) bound; if none, every parameter of ``model``."""
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not any(self._fisher_key(p) is not None for _, p in named):
            self.setup(named)
        bound = [(n, p) for n, p in named if self._fisher_key(p) is not None]
        if not bound:
            raise RegularizerInputError(f"{WHO}.consolidate: none of the model's parameters is bound to this EWC")
        fishers = fisher_diagonal(model, inputs, targets, params=[n for n, _ in bound], fisher=self.fisher,
                                  batch_size=batch_size, generator=generator)
        with torch.no_grad():
            for n, p in bound:
                self._anchor(p).copy_(p.detach())
                key = self._fisher_key(p)
                new = fishers[n].detach().clone()
                old = self._buffers.get(key)
                self.register_buffer(key, new if old is None or old.shape != new.shape else old + new.to(old.dtype))

    def penalty(
        self, w: torch.Tensor | Sequence[torch.Tensor], anchor: torch.Tensor | Sequence[torch.Tensor] | None = None,
        fisher: torch.Tensor | Sequence[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if (anchor is None) != (fisher is None):
            raise RegularizerInputError(f"{WHO}.penalty takes anchor= and fisher= together, or neither")
        if anchor is not None:
            return ewc(w, anchor, fisher)
        ws = as_tensors("ewc", w, upcast=False)
        return ewc(ws, [self._anchor(t) for t in ws], [self._fisher(t) for t in ws])

