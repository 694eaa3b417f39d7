"""NViT: global structural pruning by Hessian-aware (squared group Taylor) saliency with latency regularization.

Yang, Yin, Shen, Molchanov, Li & Kautz (CVPR 2023), "Global Vision Transformer
Pruning with Hessian-Aware Saliency". Pinned from the official code
(NVlabs/NViT, ``nvit/pruning_core/pruning_engine_general.py``):

* saliency, ``add_criteria`` method 23 (``Taylor_gate_expectation``, the
  ``"method": 23`` of ``nvit/pruning_configs/*.json``): for a structural unit u
  whose parameters are the slices θ_u of several tensors (along each tensor's
  ``dim``), per batch ``c_u = (Σ θ_u·∂L/∂θ_u)²`` (the summed first-order Taylor
  term, squared: the paper's Hessian-aware approximation), averaged over the
  batches (``compute_saliency``: accumulated / ``iterations_done``);
* latency regularization (``compute_saliency``, ``latency_regularization``):
  ``c_u − η·(T(n) − T(n − 1))`` with T the latency at the layer's current
  number n of active units (official: a look-up table over ViT dimensions);
* selection (``group_criteria`` and the pruning loop): within a layer, units
  sorted by criterion are chunked into groups of ``group_size`` with the summed
  criterion; over all layers the ``k``-th smallest group criterion is the
  threshold (``np.sort(all)[k − 1]``); every group at or below it is pruned,
  but a layer keeps at least one group (``leave_at_least_one_group``).

Not included: the ViT-specific coupling of units (embedding, heads, QK, V,
MLP), their fixed group sizes (16/2/8/8) and the divisors (EMB/12, head/6,
QK/2), the ViT latency table, and the iterative prune–fine-tune schedule with
momentum; here the units are the output neurons of ``nn.Linear`` layers
(weight row + bias entry), one shot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from reglab.core import Claim, Paper, RegularizerInputError, register
from reglab.core.config import Configurable
from reglab.core.registry import Registered
from reglab.ops import check_tensor, hyperparameters, integer, non_negative
from reglab.ops.validation import describe

__all__ = ["group_taylor_saliency", "latency_adjusted", "select_groups", "nvit_prune_", "NViTPruning"]

PAPER = Paper(
    "Global Vision Transformer Pruning with Hessian-Aware Saliency",
    "Yang, H., Yin, H., Shen, M., Molchanov, P., Li, H. and Kautz, J.", 2023, arxiv="2110.04869", venue="CVPR",
    code="https://github.com/NVlabs/NViT")

WHO = "NViTPruning"


def group_taylor_saliency(
    tensors: Sequence[torch.Tensor], grads: Sequence[torch.Tensor], dims: Sequence[int],
) -> torch.Tensor:
    """``(Σ_t Σ_{entries of unit u along dims[t]} θ·g)²`` per unit u (official method 23, one batch)."""
    if not (len(tensors) == len(grads) == len(dims)) or not tensors:
        raise RegularizerInputError(f"{WHO} expects as many tensors, gradients and dims (at least one), got "
                                    f"{len(tensors)}, {len(grads)} and {len(dims)}")
    total = None
    for t, g, d in zip(tensors, grads, dims):
        t = check_tensor(WHO, t, arg="parameter", min_ndim=1)
        g = check_tensor(WHO, g, arg="gradient", min_ndim=1)
        if t.shape != g.shape:
            raise RegularizerInputError(f"{WHO} expects a gradient of the parameter's shape {tuple(t.shape)}, got "
                                        f"{tuple(g.shape)}")
        if not 0 <= d < t.ndim:
            raise RegularizerInputError(f"{WHO}: dim {d} is out of range for a parameter of shape {tuple(t.shape)}")
        v = (t * g).movedim(d, 0).reshape(t.shape[d], -1).sum(1)
        if total is not None and v.shape != total.shape:
            raise RegularizerInputError(f"{WHO} expects every tensor of a layer to have the same number of units, "
                                        f"got {total.shape[0]} and {v.shape[0]}")
        total = v if total is None else total + v
    return total.pow(2)


def latency_adjusted(
    saliency: torch.Tensor, width: int, latency: Callable[[int], float] | None, weight: float,
) -> torch.Tensor:
    """``c − η·(T(n) − T(n − 1))``: the latency saved by removing one unit at width n (official)."""
    if latency is None or weight == 0:
        return saliency
    return saliency - weight * (float(latency(width)) - float(latency(width - 1)))


def select_groups(criteria: Sequence[torch.Tensor], num_groups: int, group_size: int = 1) -> list[torch.Tensor]:
    """Keep-masks per layer: prune the groups with criterion ≤ the ``num_groups``-th smallest (official ranking).

    Units of a layer sorted by criterion form groups of ``group_size`` (summed criterion);
    every layer keeps at least one group.
    """
    integer(1)(WHO, "group_size", group_size)
    integer(0)(WHO, "num_groups", num_groups)
    groups = []
    for li, c in enumerate(criteria):
        c = check_tensor(WHO, c, arg="criteria", ndim=1).detach().double()
        order = torch.argsort(c, stable=True)
        for start in range(0, c.numel(), group_size):
            idx = order[start:start + group_size]
            groups.append((li, idx, float(c[idx].sum())))
    masks = [torch.ones(c.numel(), dtype=torch.bool) for c in criteria]
    if num_groups == 0:
        return masks
    values = sorted(v for _, _, v in groups)
    threshold = values[min(num_groups, len(values)) - 1]
    per_layer = [sum(1 for g in groups if g[0] == li) for li in range(len(criteria))]
    zeroed = [0] * len(criteria)
    for li, idx, v in groups:
        if v <= threshold and zeroed[li] < per_layer[li] - 1:
            masks[li][idx] = False
            zeroed[li] += 1
    return masks


def _hidden_linears(model: nn.Module) -> list[nn.Linear]:
    if not isinstance(model, nn.Module):
        raise RegularizerInputError(f"{WHO} prunes an nn.Module, got {describe(model)}")
    lins = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if len(lins) < 2:
        raise RegularizerInputError(f"{WHO} prunes the output units of the hidden nn.Linear layers (all but the "
                                    f"last); {type(model).__name__} has {len(lins)} nn.Linear")
    return lins[:-1]


@hyperparameters(WHO, num_prune=integer(0), group_size=integer(1), latency_weight=non_negative)
def nvit_prune_(
    model: nn.Module,
    batches: Sequence[Any],
    loss_fn: Callable[[nn.Module, Any], torch.Tensor],
    latency: Callable[[int], float] | None,
    num_prune: int = 1,
    group_size: int = 1,
    latency_weight: float = 0.0,
) -> list[torch.Tensor]:
    """Prune ``num_prune`` groups of hidden units of ``model``'s ``nn.Linear`` layers (all but the last)
    in place by the averaged squared group Taylor saliency; returns the keep-masks per layer.

    ``loss_fn(model, batch)`` is the loss whose gradients are taken; ``latency(n)`` (optional) the
    latency of a layer with n units, used with ``latency_weight`` η.
    """
    lins = _hidden_linears(model)
    if not isinstance(batches, (list, tuple)) or not batches:
        raise RegularizerInputError(f"{WHO} expects a non-empty list of calibration batches, got {describe(batches)}")
    sal = [torch.zeros(m.out_features, dtype=torch.float64) for m in lins]
    params = [p for m in lins for p in ([m.weight] if m.bias is None else [m.weight, m.bias])]
    for b in batches:
        loss = loss_fn(model, b)
        if not torch.isfinite(loss):
            raise RegularizerInputError(f"{WHO}: the loss is not finite ({float(loss)})")
        grads = iter(torch.autograd.grad(loss, params, allow_unused=True))
        for i, m in enumerate(lins):
            ts = [m.weight] if m.bias is None else [m.weight, m.bias]
            gs = [next(grads) for _ in ts]
            gs = [torch.zeros_like(t) if g is None else g for t, g in zip(ts, gs)]
            sal[i] += group_taylor_saliency([t.detach().double() for t in ts], [g.double() for g in gs], [0] * len(ts))
    crit = []
    for m, s in zip(lins, sal):
        alive = m.weight.detach().abs().sum(1) > 0
        if m.bias is not None:
            alive |= m.bias.detach() != 0
        c = torch.where(alive, s / len(batches), torch.zeros_like(s))  # official: criterion × gate
        crit.append(latency_adjusted(c, int(alive.sum()), latency, latency_weight))
    masks = select_groups(crit, num_prune, group_size)
    with torch.no_grad():
        for m, keep in zip(lins, masks):
            m.weight.mul_(keep[:, None].to(m.weight.dtype))
            if m.bias is not None:
                m.bias.mul_(keep.to(m.bias.dtype))
    return masks


@register
class NViTPruning(Registered, Configurable):
    """NViT-style global structural pruning: squared group Taylor saliency, latency-regularized, one shot.

    ``reglab.NViTPruning(num_prune=16)(model, batches, loss_fn, latency=None)`` scores each hidden
    unit (output neuron of every ``nn.Linear`` but the last: its weight row and bias entry) by the
    batch mean of (Σ θ·∂L/∂θ)², subtracts η·(T(n) − T(n − 1)) when a latency function is given,
    and zeroes the ``num_prune`` lowest-ranked groups over all layers (each layer keeps one group).
    Returns the keep-masks. ``num_prune`` counts the units pruned so far too (the official count
    is cumulative over pruning iterations: pruned units rank first with criterion 0 − latency
    term). Fine-tune afterwards, as the paper does.
    """

    name = "nvit_pruning"
    kind = "weight"
    form = "operation"
    paper = PAPER
    formula = "c_u = mean_b (Σ_{θ∈u} θ·∂L_b/∂θ)² − η·(T(n) − T(n−1)); prune groups with c ≤ k-th smallest, globally"
    function = nvit_prune_
    claims = (
        Claim(
            "Global structural pruning by the Hessian-aware saliency keeps more accuracy than magnitude-based "
            "structural pruning at equal remaining units, after the same fine-tuning (Yang et al. 2023, Table 5)",
            task="pruning", metric="accuracy_at_90", direction="higher",
            testable=False,
            untestable_reason="the lab's pruning task measures unstructured sparsity; structural unit pruning with "
            "fine-tuning would need a new task, and the paper's latency-aware part needs a measured latency table; "
            "not added within this issue's time",
            source="Yang et al. 2023, Sec. 5 (DeiT-B on ImageNet), ablation of the saliency",
        ),
    )

    def __call__(self, model: nn.Module, batches: Sequence[Any], loss_fn: Callable,
                 latency: Callable[[int], float] | None = None) -> list[torch.Tensor]:
        return nvit_prune_(model, batches, loss_fn, latency, self.num_prune, self.group_size, self.latency_weight)

    apply = __call__

    def __repr__(self) -> str:
        return (f"NViTPruning(num_prune={self.num_prune!r}, group_size={self.group_size!r}, "
                f"latency_weight={self.latency_weight!r})")
