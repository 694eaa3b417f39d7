"""Gradual magnitude pruning (Zhu & Gupta 2017) with global ranking and a per-layer floor (Gupta et al. 2022).

Schedule (Zhu & Gupta, "To prune, or not to prune", arXiv:1710.01878, Eq. 1)::

    s_t = s_f + (s_i − s_f)·(1 − p)³,   p = clamp((t − t₀)/(t₁ − t₀), 0, 1)

with masks recomputed every Δt steps (``frequency``) between t₀ and t₁. At each
update the s_t·N smallest-|w| weights are zeroed: globally over all selected
tensors (Global MP, Gupta et al., arXiv:2209.14624) or in each tensor
(``ranking="layer"``, as tensorflow/model-optimization's ``prune_low_magnitude``).
Global ranking has a per-layer minimum threshold (MT, manasgupta-1/GlobalMP,
``Global MP with MT/prune_withMT.py``): no layer keeps fewer than
⌊N·MT/100⌋ weights (MT is a percentage of all prunable weights, default 0.05 %).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from reglab.core import Baseline, Claim, Paper, RegularizerInputError, WeightRegularizer, register
from reglab.core.paper import Tuned, Tuning
from reglab.ops import as_tensors, check_choice, check_int, check_positive, check_probability, has_data

__all__ = ["zhu_gupta_sparsity", "layer_sparsities", "magnitude_masks", "MagnitudePruning"]

PAPER = Paper(
    "To prune, or not to prune: exploring the efficacy of pruning for model compression",
    "Zhu, M. and Gupta, S.", 2017, arxiv="1710.01878", venue="ICLR Workshop",
    code="https://github.com/tensorflow/model-optimization")
GLOBAL_MP = Paper(
    "Is Complexity Required for Neural Network Pruning? A Case Study on Global Magnitude Pruning",
    "Gupta, M., Camci, E., Keneta, V. R., Vaidyanathan, A., Kanodia, R., Foo, C.-S., Min, W. and Lin, J.", 2022,
    arxiv="2209.14624", code="https://github.com/manasgupta-1/GlobalMP")

_WHO = "magnitude_pruning"
_EPS = 1e-9  # s·n products such as 9.99996 are counted as 10, not truncated to 9 (GlobalMP pitfall ii)


def zhu_gupta_sparsity(
    step: int,
    initial_sparsity: float = 0.0,
    final_sparsity: float = 0.9,
    begin_step: int = 0,
    end_step: int = 1000,
    power: float = 3.0,
) -> float:
    """Zhu & Gupta (2017), Eq. 1: ``s_f + (s_i − s_f)(1 − p)^power``, ``p = clamp((t − t₀)/(t₁ − t₀), 0, 1)``.

    ``s_i`` before ``t₀``, ``s_f`` from ``t₁`` on (``t₀ = t₁``: a step from s_i to s_f).
    Identical to tfmot's ``PolynomialDecay`` (power 3).
    """
    if end_step <= begin_step:
        p = 1.0 if step >= end_step else 0.0
    else:
        p = min(max((step - begin_step) / (end_step - begin_step), 0.0), 1.0)
    return final_sparsity + (initial_sparsity - final_sparsity) * (1.0 - p) ** power


def layer_sparsities(
    sizes: Sequence[int], pruned: Sequence[int], sparsity: float, min_threshold: float = 0.05,
    *, min_weights: int | None = None,
) -> list[float]:
    """The per-layer sparsities of Global MP with the minimum threshold (MT), GlobalMP ``step2()``.

    ``pruned[l]`` is how many weights of layer l the global ranking removes.
    With ``min_w = ⌊N·MT/100⌋`` (or ``min_weights``): layers with n_l < min_w are
    not pruned; all s_l are rescaled by s/s_total; a layer (n_l > min_w) left
    with fewer than min_w weights is clamped to s_l = 1 − min_w/n_l; rescale and
    re-clamp while the total sparsity is below s.

    The floating-point operations are those of manasgupta-1/GlobalMP
    ``Global MP with MT/prune_withMT.py`` in order (s_l read back from the
    logged percentage 100·p_l/n_l, numpy sums, the same rescale and clamp
    expressions and the same loop condition), so the result is the official
    one bit for bit wherever the official loop ends. Where it would not end
    (rounding leaves the total one ulp under s and the rescale-and-clamp step
    comes back to a state it was in: the official ``while`` spins forever),
    the loop stops at that state; where no state reaches s (the floors leave
    too few weights to prune) this raises. ``sparsity`` 0, or no weight pruned
    by the global pass (the official code divides by zero), gives zeros.
    """
    n = np.asarray(sizes, dtype=np.float64)
    total_n = np.sum(n)
    if min_weights is None:
        min_weights = int(float(total_n) * min_threshold / 100 + _EPS)
    min_w = min_weights
    # step() logs 100·pruned/size per layer; step2() reads the percentages back and divides by 100
    s = np.array([100 * p / x for p, x in zip(pruned, sizes)], dtype=np.float64) / 100
    s[np.where(n < min_w)] = 0
    tot = np.sum(n * s) / total_n
    if sparsity == 0 or tot == 0:
        return [0.0] * len(n)

    def clamp(s: np.ndarray) -> None:
        short = np.where(((1 - s) * n < min_w) & (n > min_w))
        s[short] = 1 - min_w / n[short]

    s = s / tot * sparsity
    tot = np.sum(n * s) / total_n
    if np.any((1 - s) * n < min_w):
        clamp(s)
        tot = np.sum(n * s) / total_n
        seen = {s.tobytes()}
        while tot < sparsity:
            s = s / tot * sparsity
            clamp(s)
            tot = np.sum(n * s) / total_n
            state = s.tobytes()
            if state in seen or len(seen) > 10_000:  # the official loop would never end
                if tot < sparsity - 1e-9:
                    raise ValueError(
                        f"{_WHO}: sparsity {sparsity} is not reachable with min_threshold={min_threshold}% "
                        f"(every layer keeps at least {min_w} weights); lower one of them"
                    )
                break
            seen.add(state)
    return [float(v) for v in s]


def _exact_counts(sizes: Sequence[int], s: Sequence[float], target: int, caps: Sequence[int]) -> list[int]:
    """Integers k_l ≤ caps_l near s_l·n_l summing to ``target`` (largest remainder)."""
    want = [v * x for v, x in zip(s, sizes)]
    k = [min(int(w + _EPS), c) for w, c in zip(want, caps)]
    diff = target - sum(k)
    order = sorted(range(len(k)), key=lambda i: want[i] - k[i], reverse=diff > 0)
    while diff != 0:
        moved = False
        for i in order:
            if diff > 0 and k[i] < caps[i]:
                k[i], diff, moved = k[i] + 1, diff - 1, True
            elif diff < 0 and k[i] > 0:
                k[i], diff, moved = k[i] - 1, diff + 1, True
            if diff == 0:
                break
        if not moved:
            break
    return k


def _smallest(a: torch.Tensor, k: int) -> torch.Tensor:
    """Keep-mask of a flat |w|: False on its k smallest entries (ties by position)."""
    keep = torch.ones_like(a, dtype=torch.bool)
    if k > 0:
        keep[torch.argsort(a, stable=True)[:k]] = False
    return keep


@torch.no_grad()
def magnitude_masks(
    w: torch.Tensor | Sequence[torch.Tensor],
    sparsity: float = 0.9,
    min_threshold: float = 0.05,
    ranking: str = "global",
    exact: bool = True,
) -> list[torch.Tensor]:
    """Keep-masks (bool, one per tensor) zeroing the ``sparsity`` share of smallest |w|.

    ``ranking="global"`` (Global MP, Gupta et al. 2022): ranked across all
    tensors, then per-layer sparsities refined by the minimum threshold
    (``layer_sparsities``; ``min_threshold`` in percent of all weights;
    0 disables it). ``ranking="layer"``: each tensor pruned at ``sparsity``
    (round((1 − s)·n_l) kept, as tfmot).

    ``exact=True`` prunes exactly ⌊s·N⌋ weights (strict rank, ties by
    position; per-layer counts by largest remainder, never below the floor).
    ``exact=False`` reproduces manasgupta-1/GlobalMP ``prune_withMT.py``
    (``step()``, ``step2()``, ``step3()``) bit for bit, its quirks included:
    ``τ = kthvalue(|w|, k)`` with ``|w| ≥ τ`` kept (so k − 1 weights go per
    pass, and a layer at s_l = 1 keeps its largest weight), ``k = int(s·N)``,
    ``min_w = int(N·MT/100)`` and ``int(s_l·n_l)`` truncation, and the
    floating-point steps of ``layer_sparsities``. Two departures: the
    official code concatenates one uninitialised ``torch.empty(1)`` value into
    the global sort (a bug, reproduced in neither mode), and where its
    rescaling loop would never end (rounding leaves the total sparsity an ulp
    under s; see ``layer_sparsities``) the loop stops instead, and a layer
    of exactly min_w weights given s_l > 1, where the official ``kthvalue``
    fails, keeps its largest weight (as at s_l = 1).
    Weights on the meta device have no values to rank: a clear error.
    """
    ws = [t.detach().abs() for t in as_tensors(_WHO, w, upcast=False)]
    if not all(has_data(t) for t in ws):
        raise RegularizerInputError(
            f"{_WHO} cannot rank weights without values (meta or fake tensors, e.g. a model built on the meta "
            f"device); materialize the model on a real device (to_empty + load_state_dict) before pruning"
        )
    check_probability(_WHO, "sparsity", sparsity, inclusive_one=True)
    check_positive(_WHO, "min_threshold", min_threshold, allow_zero=True)
    check_choice(_WHO, "ranking", ranking, ("global", "layer"))
    for t in ws:
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{_WHO}: a weight of shape {tuple(t.shape)} has NaN or inf entries; cannot rank them")
    flat = [t.flatten().double() for t in ws]
    sizes = [t.numel() for t in flat]
    if ranking == "layer":
        return [_smallest(a, x - round((1 - sparsity) * x)).view_as(t) for a, x, t in zip(flat, sizes, ws)]
    a = torch.cat(flat)
    total = a.numel()
    if exact:
        k = int(sparsity * total + _EPS)
        keep = _smallest(a, k)
        pruned = [int((~m).sum()) for m in keep.split(sizes)]
        min_w = int(total * min_threshold / 100 + _EPS)
    else:  # GlobalMP step(): plain truncation, k = 0 raised to 1
        k = max(int(sparsity * total), 1)
        tau = torch.kthvalue(a, k).values
        pruned = [x - int((t >= tau).sum()) for t, x in zip(flat, sizes)]
        min_w = int(total * min_threshold / 100)
    s = layer_sparsities(sizes, pruned, sparsity, min_threshold, min_weights=min_w)
    masks = []
    if exact:
        caps = [x if x <= min_w else x - min_w for x in sizes]
        caps = [0 if x < min_w else c for x, c in zip(sizes, caps)]
        counts = _exact_counts(sizes, s, k, caps)
        masks = [_smallest(t, c) for t, c in zip(flat, counts)]
    else:
        for t, sl, x in zip(flat, s, sizes):
            # GlobalMP step3(); k ≤ n: a layer of exactly min_w weights is neither zeroed nor clamped by step2()
            # and can get s_l > 1, where the official kthvalue fails; it keeps its largest weight, as at s_l = 1
            kk = min(max(int(sl * x), 1), x)
            masks.append(t >= torch.kthvalue(t, kk).values)
    return [m.view_as(t) for m, t in zip(masks, ws)]


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    path, _, leaf = name.rpartition(".")
    return (model.get_submodule(path) if path else model), leaf


@register
class MagnitudePruning(WeightRegularizer):
    """Gradual magnitude pruning: a mask schedule, not a loss term (its penalty is 0).

    Zhu & Gupta (2017), Eq. 1: ``s_t = s_f + (s_i − s_f)(1 − (t − t₀)/(t₁ − t₀))³``;
    at steps t₀, t₀ + Δt, … ≤ t₁ (and at t₁ itself, so s_f is always reached;
    tfmot skips t₁ when it is off the Δt grid) the s_t·N smallest |w| of the
    selected tensors are masked: ranked globally with Gupta et al.'s (2022)
    per-layer minimum threshold (``magnitude_masks``), or per tensor
    (``ranking="layer"``). Masked weights stay masked: the ranking is on the
    masked weights and the schedule never decreases. ``begin_step =
    end_step``: one-shot pruning at that step.

    Use::

        pruner = reglab.MagnitudePruning(final_sparsity=0.9, begin_step=0, end_step=2000, frequency=100)
        regs = reglab.attach(model, pruner.on(modules=(nn.Linear, nn.Conv2d)))
        ... loss.backward(); opt.step(); regs.step(opt)   # after optimizer step t: masks for s_t
        pruner.finalize()                                 # make the zeros permanent

    ``reglab.attach`` installs ``torch.nn.utils.prune`` masks (all ones)
    on the owning modules, so the model's ``state_dict`` holds
    ``weight_orig`` and ``weight_mask`` from then on (load a pruned
    checkpoint after attaching; a dense one before). The optimizer keeps
    the same parameter objects (now named ``weight_orig``); masked entries
    get zero gradient. The step counter is in the pruner's state_dict
    (``regs.state_dict()``), so a resumed run continues the schedule.

    Defaults: s_i = 0 and the cubic power (Zhu & Gupta); Δt = 100 steps
    (tfmot's ``PolynomialDecay`` default; paper: 100–1000); MT = 0.05 %
    (GlobalMP's ``--min-threshold``); s_f = 0.9 and t₁ = 1000 are library
    choices — set them for your run.
    """

    name = "magnitude_pruning"
    form = "pruning"
    paper = PAPER
    formula = "s_t = s_f + (s_i − s_f)(1 − (t − t₀)/(t₁ − t₀))³; mask the s_t·N smallest |w| (global, MT floor)"
    claims = tuple(
        Claim(
            f"Gradual magnitude pruning beats one-shot pruning after training at {pct} % sparsity: higher test "
            f"accuracy at equal sparsity and equal epochs (Zhu & Gupta 2017: gradual pruning keeps accuracy "
            f"at high sparsity)",
            task="pruning", metric=f"accuracy_at_{pct}", direction="higher",
            arm={"name": "magnitude_pruning"},
            min_effect=0.02, min_effect_reason="two points of test accuracy",
            baselines=(
                Baseline("one-shot global magnitude pruning after plain training, same fine-tuning",
                         why="the simplest pruning recipe"),
                Baseline("L1 (0.3, proximal, weight picked on dev seeds) then one-shot pruning",
                         {"name": "l1", "weight": 0.3},
                         why="sparsity-inducing penalty before magnitude pruning, at its best weight on dev seeds"),
                Baseline("group lasso (0.03, proximal) then one-shot pruning", {"name": "group_lasso", "weight": 0.03},
                         why="the structured penalty of the sparsity family"),
            ),
            datasets=("digits", "digits_half"),
            settings="MLP 64-256-10 on digits, Adam 1e-3, 30 epochs + 5 fine-tune epochs for every arm (paper: "
            "ImageNet/PTB models, SGD); the task sets final_sparsity to the target, pruning from 25 % to 75 % of "
            "training with Δt = one epoch (~20 steps; paper 100-1000 steps on much longer runs); global ranking "
            "with the 0.05 % floor (Gupta et al. 2022) instead of per-layer. Group-lasso weight 0.03: the "
            "cumulative proximal threshold 600 steps·1e-3·0.03 ≈ 0.02 is a third of the first layer's mean "
            "initial |w| (0.06), shrinking small weights without costing dense accuracy; set from that "
            "estimate and checked on digits seeds 0-2 (test splits in view), not tuned on seeds ≥ 200. L1 at "
            "its weight picked on dev seeds (see tuning)",
            source="Zhu & Gupta 2017, Sec. 4 and Tables 1-4",
            tuning=Tuning(
                baselines=(
                    ("L1 (0.3, proximal, weight picked on dev seeds) then one-shot pruning",
                     Tuned("weight", (0.003, 0.01, 0.03, 0.1, 0.3, 1.0), 0.3,
                                  "digits seeds 0-2 (test splits in view), mean test accuracy at 90 % sparsity 0.935, "
                                  "0.933, 0.935, 0.938, 0.949, 0.856 and at 95 % 0.670, 0.677, 0.725, 0.827, 0.918, 0.852")),
                    ("group lasso (0.03, proximal) then one-shot pruning",
                     Tuned("weight", None, 0.03, "a proximal-threshold estimate, checked on digits seeds 0-2")),
                ),
                note="the arm runs the paper's schedule untuned (shared L1 grid with HyperSparse's claims)",
            ),
        )
        for pct in (90, 95)
    )

    def __init__(
        self,
        final_sparsity: float = 0.9,
        initial_sparsity: float = 0.0,
        begin_step: int = 0,
        end_step: int = 1000,
        frequency: int = 100,
        power: float = 3.0,
        min_threshold: float = 0.05,
        ranking: str = "global",
        exact: bool = True,
    ):
        super().__init__(0.0)  # no loss term: regs.penalty() skips it
        who = "MagnitudePruning"
        self.final_sparsity = check_probability(who, "final_sparsity", final_sparsity)
        self.initial_sparsity = check_probability(who, "initial_sparsity", initial_sparsity)
        if self.initial_sparsity > self.final_sparsity:
            raise ValueError(f"{who}: initial_sparsity {initial_sparsity} > final_sparsity {final_sparsity}")
        self.begin_step = check_int(who, "begin_step", begin_step, 0)
        self.end_step = check_int(who, "end_step", end_step, begin_step)
        self.frequency = check_int(who, "frequency", frequency, 1)
        self.power = check_positive(who, "power", power)
        self.min_threshold = check_positive(who, "min_threshold", min_threshold, allow_zero=True)
        if self.min_threshold >= 100:
            raise ValueError(f"{who} expects min_threshold in percent, in [0, 100), got {min_threshold!r}")
        self.ranking = check_choice(who, "ranking", ranking, ("global", "layer"))
        if not isinstance(exact, bool):
            raise ValueError(f"{who} expects exact to be True or False, got {exact!r}")
        self.exact = exact
        self.__dict__["_targets"] = []  # (name, param, module, leaf, trainable at attach): a plain list

    # ------------------------------------------------------------ schedule
    def sparsity_at(self, step: int) -> float:
        """s_t of the schedule (``zhu_gupta_sparsity``)."""
        return zhu_gupta_sparsity(
            step, self.initial_sparsity, self.final_sparsity, self.begin_step, self.end_step, self.power
        )

    def updates_at(self, step: int) -> bool:
        """True at the steps the masks are recomputed: t₀ ≤ t ≤ t₁ on the Δt grid, and t₁."""
        if step < self.begin_step or step > self.end_step:
            return False
        return step == self.end_step or (step - self.begin_step) % self.frequency == 0

    # ------------------------------------------------------------- binding
    def penalty(self, w: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        """0: pruning changes the weights through masks, not through the loss."""
        ws = as_tensors("MagnitudePruning", w if isinstance(w, torch.Tensor) else list(w))
        return torch.zeros((), device=ws[0].device, dtype=torch.float32)

    def setup_model(self, model: nn.Module, named_params: Sequence[tuple[str, nn.Parameter]]) -> None:
        """Install all-ones ``torch.nn.utils.prune`` masks on the selected weights (``reglab.attach`` calls it)."""
        targets = []
        for name, p in named_params:
            module, leaf = _owner(model, name)
            if leaf.endswith("_orig") and isinstance(getattr(module, leaf[: -len("_orig")] + "_mask", None), torch.Tensor):
                leaf = leaf[: -len("_orig")]  # already pruned (e.g. attached again after loading)
            else:
                prune.custom_from_mask(module, leaf, torch.ones_like(p, dtype=p.dtype))
            targets.append((name, p, module, leaf, p.requires_grad))
        self.__dict__["_targets"] = targets

    def _need_targets(self) -> list:
        targets = self.__dict__["_targets"]
        if not targets:
            raise RuntimeError("MagnitudePruning is not attached: use reglab.attach(model, pruner.on(...)) first")
        return targets

    def masks(self) -> dict[str, torch.Tensor]:
        """The current masks by parameter name (as selected at attach time)."""
        return {name: getattr(m, leaf + "_mask") for name, _, m, leaf, _ in self._need_targets()}

    @torch.no_grad()
    def prune_to(self, sparsity: float) -> None:
        """Recompute the masks now at ``sparsity`` (ranking the currently masked weights).

        A weight frozen after ``attach`` (``requires_grad=False`` now, trainable then) is never
        moved: its mask stays as it is and it leaves the ranking, so ``sparsity`` is that of the
        weights still trained. Weights already frozen at attach time (selected with
        ``frozen=True``) are pruned, as asked."""
        targets = [t for t in self._need_targets() if t[1].requires_grad or not t[4]]
        if not targets:
            return
        current = [p.detach() * getattr(m, leaf + "_mask") for _, p, m, leaf, _ in targets]
        new = magnitude_masks(current, sparsity, self.min_threshold, self.ranking, self.exact)
        for (_, p, m, leaf, _), keep in zip(targets, new):
            mask = getattr(m, leaf + "_mask")
            mask.copy_(keep.to(mask.dtype))
            setattr(m, leaf, p * mask)  # what the forward pre-hook would compute

    def step(self) -> None:
        """After optimizer step t (``regs.step(opt)``): recompute the masks if t is an update step."""
        if self.updates_at(self._step) and self.__dict__["_targets"]:
            self.prune_to(self.sparsity_at(self._step))
        self._step += 1

    def sparsity(self) -> float:
        """The share of masked entries over the selected tensors."""
        ms = list(self.masks().values())
        return 1.0 - sum(float(m.sum()) for m in ms) / sum(m.numel() for m in ms)

    def finalize(self) -> None:
        """Make the pruning permanent (``torch.nn.utils.prune.remove``): weights become ``orig·mask``
        plain parameters again, masks leave the state_dict; the pruner is detached."""
        for _, _, m, leaf, _ in self._need_targets():
            prune.remove(m, leaf)
        self.__dict__["_targets"] = []

    remove = finalize

