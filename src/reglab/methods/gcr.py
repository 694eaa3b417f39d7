"""GCR: Grassmann class representation, a classifier head of class subspaces (Wang, Li & Zhang, ICCV 2023).

Each class c is a k-dimensional subspace with orthonormal basis S_c; the
logit is the norm of the normalized feature's projection on it,
``logit_c = γ·‖S_cᵀ·x/‖x‖‖`` (γ = 25, k = 8 in the ImageNet configs). The
bases live on the Grassmann manifold and are trained by Riemannian SGD: the
Euclidean gradient D (after momentum) is projected, ``G = D − S·SᵀD``, and
S moves along the geodesic ``S ← (S·V·cos(ηΣ) − U·sin(ηΣ))·Vᵀ`` with
``G = UΣVᵀ``; every 5th step S is re-orthonormalized by QR. Official code
(innerlee/gcr): ``gcr/grassmann_head.py`` (``GrassmannClsHead``: normalize,
``gamma * fc(x)``, reshape to (C, k), norm; init = QR of a normal matrix)
and ``gcr/rsgd.py`` (``_single_tensor_sgd``, ``REORTH_STEP = 5``,
``LR_FACTOR = 1``, no weight decay on the bases); ``gamma=25.0``,
``dims=[8] * 1000`` in ``configs/resnet/resnet50d_8xb32_coslr_in1k_gcr8.py``.
"""

from __future__ import annotations

import torch
from torch import nn

from reglab.core import Claim, FunctionModule, Paper, RegularizerInputError, register
from reglab.ops import check_int, check_positive, check_tensor, normalize_rows

__all__ = ["grassmann_logits", "grassmann_step_", "GrassmannHead"]

PAPER = Paper(
    "Get the Best of Both Worlds: Improving Accuracy and Transferability by Grassmann Class Representation",
    "Wang, H., Li, Z. and Zhang, W.", 2023, arxiv="2308.01547", venue="ICCV", code="https://github.com/innerlee/gcr")


def grassmann_logits(features: torch.Tensor, bases: torch.Tensor, gamma: float = 25.0) -> torch.Tensor:
    """``γ·‖S_c x̂‖`` per class: ``features`` (n, d), ``bases`` (C, k, d) with orthonormal rows per class."""
    check_tensor("GrassmannHead", features, arg="features", ndim=2)
    if bases.ndim != 3 or features.shape[1] != bases.shape[2]:
        raise RegularizerInputError(
            f"GrassmannHead expects features of width {bases.shape[-1]} and (classes, k, d) bases, got features "
            f"{tuple(features.shape)} and bases {tuple(bases.shape)}"
        )
    x = normalize_rows(features)
    return gamma * torch.einsum("ckd,nd->nck", bases.to(x.dtype), x).norm(dim=-1)


@torch.no_grad()
def grassmann_step_(bases: torch.Tensor, direction: torch.Tensor, lr: float, reorthonormalize: bool = False) -> None:
    """In place, one Riemannian SGD step on each class subspace (official ``rsgd.py``).

    ``bases`` (C, k, d) rows orthonormal per class; ``direction`` the
    Euclidean gradient (after momentum) of the same shape. ``G = D − S SᵀD``
    (column form), ``G = UΣVᵀ``, ``S ← (S V cos(ηΣ) − U sin(ηΣ)) Vᵀ``; QR after
    the step when ``reorthonormalize``.
    """
    s = bases.transpose(1, 2)  # (C, d, k): columns span the class subspace
    d = direction.transpose(1, 2).to(s.dtype)
    g = d - s @ (s.transpose(1, 2) @ d)
    u, sig, vt = torch.linalg.svd(g, full_matrices=False)
    step = -lr * sig
    new = (s @ vt.transpose(1, 2) * torch.cos(step).unsqueeze(1) + u * torch.sin(step).unsqueeze(1)) @ vt
    if reorthonormalize:
        new = torch.linalg.qr(new).Q
    bases.copy_(new.transpose(1, 2))


@register
class GrassmannHead(FunctionModule):
    """GCR head: logit_c = γ·‖S_cᵀ x/‖x‖‖, one k-dim subspace per class, trained by Riemannian SGD.

    ``bases`` (C, k, d), orthonormal rows per class (QR of a normal matrix at
    init), is a parameter that the ordinary optimizer must **not** update:
    give the optimizer the other parameters and call ``head.step_(lr)``
    after ``backward()``; it applies momentum (0.9, like the paper's SGD) to
    the Euclidean gradient, projects it to the tangent space and moves each
    basis along the geodesic (official ``rsgd.py``; QR every 5th step).
    Defaults γ = 25 and k = 8 from the official ImageNet configs.
    """

    name = "grassmann_head"
    kind = "output"
    form = "module"
    paper = PAPER
    formula = "logit_c = γ·‖S_cᵀ x̂‖,  S_c ∈ Gr(k, d); Riemannian SGD with geodesic steps"
    function = grassmann_logits
    example_args = {"in_features": 8, "num_classes": 3, "dim": 2}
    claims = (
        Claim(
            "Grassmann class subspaces improve ImageNet accuracy and the transferability of the features",
            testable=False,
            untestable_reason="the claim is about ImageNet-1K training of ResNet/Swin/DeiT with the head trained "
            "by Riemannian SGD and linear transfer to six datasets; the lab's tasks train every parameter with "
            "Adam and cannot hand the bases to a Riemannian optimizer",
            source="Wang, Li & Zhang 2023, Tables 1-3 (top-1 error and linear-transfer accuracy)",
        ),
    )

    def __init__(self, in_features: int, num_classes: int, dim: int = 8, gamma: float = 25.0, momentum: float = 0.9):
        FunctionModule._init_from_values(self, {})
        self.in_features = check_int("GrassmannHead", "in_features", in_features, 1)
        self.num_classes = check_int("GrassmannHead", "num_classes", num_classes, 1)
        self.dim = check_int("GrassmannHead", "dim", dim, 1)
        if self.dim > self.in_features:
            raise RegularizerInputError(
                f"GrassmannHead needs dim <= in_features (a k-dim subspace of R^d), got dim={dim}, "
                f"in_features={in_features}"
            )
        self.gamma = check_positive("GrassmannHead", "gamma", gamma)
        self.momentum = float(momentum)
        w = torch.randn(self.num_classes, self.in_features, self.dim)
        self.bases = nn.Parameter(torch.linalg.qr(w).Q.transpose(1, 2).contiguous())
        self.register_buffer("momentum_buffer", torch.zeros_like(self.bases))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return grassmann_logits(features, self.bases, self.gamma)

    @torch.no_grad()
    def step_(self, lr: float) -> None:
        """One Riemannian SGD step from ``bases.grad`` (momentum, projection, geodesic; QR every 5th step)."""
        if self.bases.grad is None:
            raise RegularizerInputError("GrassmannHead.step_ needs bases.grad: call loss.backward() first")
        buf = self.momentum_buffer
        if int(self.steps) == 0:
            buf.copy_(self.bases.grad)
        else:
            buf.mul_(self.momentum).add_(self.bases.grad)
        grassmann_step_(self.bases, buf, lr, reorthonormalize=int(self.steps) % 5 == 0)
        self.steps += 1
        self.bases.grad = None

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}, dim={self.dim}, gamma={self.gamma}"
