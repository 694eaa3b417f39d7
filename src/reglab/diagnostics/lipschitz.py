"""An upper bound on a feed-forward network's ℓ2 Lipschitz constant: the product of its layers' bounds.

Each linear layer contributes the Gram-iteration bound on its spectral norm
(Delattre et al. 2023; ``reglab.methods.gram_iteration.gram_spectral_bound``),
each nonlinearity its Lipschitz constant. ``L(f_K ∘ … ∘ f_1) ≤ Π_k L(f_k)``, so
the product bounds the network when it *is* that chain: an ``nn.Sequential``
(nested ones are flattened) or a single layer. Anything else (residual
connections, attention, custom modules) cannot be read off the module tree
and is refused.

Per layer:

* ``nn.Linear``: σ̂(W) (bias does not change a Lipschitz constant);
* ``nn.Conv1d``/``nn.Conv2d``: σ̂ of the circular convolution on the padded
  input size n + 2·padding (``padding_mode='circular'``: n). A zero-padded
  convolution equals zero-padding (an isometry), a circular convolution of
  that size, then a crop, so this is an upper bound; stride only subsamples
  (1-Lipschitz); dilation is a kernel with zeros inserted; groups give a
  block-diagonal operator (max over groups). Spatial sizes are traced with
  one forward of a zero input of ``input_shape`` (needed when there are convs);
* activations: ReLU, ReLU6, Hardtanh, Tanh, ELU/CELU (α ≤ 1), Softplus,
  Softsign, Identity: 1; LeakyReLU: max(1, |slope|); Sigmoid: 1/4;
  GELU 1.129, SiLU 1.1, Mish 1.089, Hardswish 1.5 (sup of |derivative|);
* ``nn.Flatten``, ``nn.Unflatten``, ``nn.Dropout`` (evaluation, identity):
  1; average pooling: 1 (a kernel of ℓ1 norm 1, by Young's inequality);
  max pooling: √(Π_i ⌈k_i/s_i⌉) (each input lies in at most that many windows);
* ``BatchNorm1d/2d`` in evaluation form (running statistics):
  max_c |γ_c|/√(var_c + ε). LayerNorm and other normalizations are not
  globally Lipschitz: refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from reglab.core.errors import RegularizerInputError
from reglab.methods.gram_iteration import gram_spectral_bound

__all__ = ["lipschitz_bound", "layer_lipschitz_bounds"]

WHO = "lipschitz_bound"

#: nonlinearities and shape modules with a fixed Lipschitz constant (sup |derivative|, rounded up)
_CONSTANTS: dict[type, float] = {
    nn.ReLU: 1.0, nn.ReLU6: 1.0, nn.Hardtanh: 1.0, nn.Tanh: 1.0, nn.Softplus: 1.0, nn.Softsign: 1.0,
    nn.Identity: 1.0, nn.Sigmoid: 0.25, nn.GELU: 1.129, nn.SiLU: 1.1, nn.Mish: 1.089, nn.Hardswish: 1.5,
    nn.Flatten: 1.0, nn.Unflatten: 1.0, nn.Dropout: 1.0, nn.AvgPool1d: 1.0, nn.AvgPool2d: 1.0,
    nn.AdaptiveAvgPool1d: 1.0, nn.AdaptiveAvgPool2d: 1.0,
}


def _chain(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The leaf modules of a (nested) ``nn.Sequential`` in forward order."""
    if not isinstance(model, nn.Sequential):
        return [("", model)]
    out = []
    for name, child in model.named_children():
        out += [(f"{name}.{n}" if n else name, m) for n, m in _chain(child)]
    return out


def _conv_kernel(conv: nn.Conv1d | nn.Conv2d) -> list[torch.Tensor]:
    """The kernel(s) of a conv as a stride-1, dilation-1 operator: one per group, dilation made explicit."""
    w = conv.weight.detach()
    dilation = tuple(conv.dilation)
    if any(d > 1 for d in dilation):
        k = w.shape[2:]
        size = tuple(d * (s - 1) + 1 for d, s in zip(dilation, k))
        dilated = w.new_zeros(*w.shape[:2], *size)
        index = (slice(None), slice(None), *(slice(None, None, d) for d in dilation))
        dilated[index] = w
        w = dilated
    return list(w.chunk(conv.groups, dim=0))


def _circular_size(conv: nn.Conv1d | nn.Conv2d, spatial: Sequence[int]) -> tuple[int, ...]:
    if conv.padding_mode == "circular":
        return tuple(spatial)
    if isinstance(conv.padding, str):  # "valid" or "same": the padded size is at most n + k - 1
        extra = [0] * len(spatial) if conv.padding == "valid" else [
            d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
        return tuple(n + e for n, e in zip(spatial, extra))
    return tuple(n + 2 * p for n, p in zip(spatial, conv.padding))


def _activation_constant(name: str, module: nn.Module) -> float | None:
    if isinstance(module, nn.LeakyReLU):
        return max(1.0, abs(module.negative_slope))
    if isinstance(module, (nn.ELU, nn.CELU)):
        return max(1.0, float(module.alpha))
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d)):
        dims = 1 if isinstance(module, nn.MaxPool1d) else 2
        k = (module.kernel_size,) * dims if isinstance(module.kernel_size, int) else tuple(module.kernel_size)
        s = module.stride if module.stride is not None else module.kernel_size
        s = (s,) * dims if isinstance(s, int) else tuple(s)
        return math.sqrt(math.prod(math.ceil(ki / si) for ki, si in zip(k, s)))
    for cls, value in _CONSTANTS.items():
        if type(module) is cls:
            return value
    return None


def layer_lipschitz_bounds(
    model: nn.Module, input_shape: Sequence[int] | None = None, n_iter: int = 6
) -> list[tuple[str, float]]:
    """``(name, bound)`` for each layer of a feed-forward chain, in forward order; see the module docstring.

    ``input_shape`` is one sample's shape without the batch dimension, e.g.
    (1, 28, 28); needed when the model has conv layers (their bound depends on
    the spatial size). ``n_iter`` is the Gram-iteration count T.
    """
    if not isinstance(model, nn.Module):
        raise RegularizerInputError(f"{WHO} expects an nn.Module, got {type(model).__name__}")
    chain = _chain(model)
    has_conv = any(isinstance(m, (nn.Conv1d, nn.Conv2d)) for _, m in chain)
    if has_conv and input_shape is None:
        raise RegularizerInputError(
            f"{WHO}: the model has conv layers, whose bound depends on the input size; pass input_shape= "
            f"(one sample's shape, e.g. (1, 28, 28))")
    x = None
    if input_shape is not None:
        try:
            ref = next(model.parameters())
            x = torch.zeros(1, *input_shape, dtype=ref.dtype, device=ref.device)
        except StopIteration:
            x = torch.zeros(1, *input_shape)
    out: list[tuple[str, float]] = []
    for name, module in chain:
        label = name or type(module).__name__
        if isinstance(module, nn.Linear):
            bound = float(gram_spectral_bound(module.weight.detach(), n_iter))
        elif isinstance(module, (nn.Conv1d, nn.Conv2d)):
            assert x is not None
            sizes = _circular_size(module, x.shape[2:])
            bound = max(float(gram_spectral_bound(k, n_iter, sizes)) for k in _conv_kernel(module))
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            if module.running_var is None:
                raise RegularizerInputError(
                    f"{WHO}: {label} ({type(module).__name__}) keeps no running statistics, so it is not a fixed "
                    f"function")
            scale = torch.rsqrt(module.running_var.detach() + module.eps)
            if module.weight is not None:
                scale = scale * module.weight.detach().abs()
            bound = float(scale.max())
        else:
            constant = _activation_constant(name, module)
            if constant is None:
                raise RegularizerInputError(
                    f"{WHO} cannot bound {label} ({type(module).__name__}): it knows Linear, Conv1d/Conv2d, "
                    f"eval-mode BatchNorm, pooling and the common activations, chained in an nn.Sequential "
                    f"(no residual connections)")
            bound = constant
        out.append((label, bound))
        if x is not None:
            with torch.no_grad():
                was = module.training
                module.eval()
                x = module(x)
                module.train(was)
    return out


def lipschitz_bound(model: nn.Module, input_shape: Sequence[int] | None = None, n_iter: int = 6) -> float:
    """An upper bound on the ℓ2 Lipschitz constant of a feed-forward ``nn.Sequential``: Π_layers bound.

    Linear and conv layers contribute their Gram-iteration spectral bound
    (Delattre et al. 2023), activations their Lipschitz constant; see the
    module docstring for every layer type and ``layer_lipschitz_bounds``
    for the per-layer values. ``input_shape`` (one sample, no batch
    dimension) is needed for conv layers. Only for plain chains: residual
    connections and other graphs cannot be read from the module tree and
    are refused.
    """
    return math.prod(b for _, b in layer_lipschitz_bounds(model, input_shape, n_iter))
