"""Fixed simplex-ETF classifier head, dense or sparse (FedLoGe's SSE-C; Xiao et al., ICLR 2024).

The head is a frozen d×K matrix M whose K unit columns form a simplex
equiangular tight frame (pairwise cosine −1/(K−1), the geometry of neural
collapse): ``M = √(K/(K−1))·P·(I_K − 11ᵀ/K)`` with P a d×K matrix of
orthonormal columns from the QR decomposition of a uniform random matrix
(ZackZikaiXiao/FedLoGe, the ``ETF_Classifier`` of ``util/etf_methods.py``
and of each method file, e.g. ``methods/fedrod_etf.py``). Logits are
``h @ M``; the head is never trained (FedLoGe's ``g_head`` is in no optimizer).

The *sparse* variant (SSE-C, FedLoGe's ``gen_sparse_ETF``): zero a random
share β of M's entries (default β = 0.6 in the server's ``prepare``), then
refine the remaining entries with Adam (lr 1e-4, 10 000 steps, gradients
masked to the non-zero entries) on
``Σ_k (‖m_k‖ − 0.1)² − mean_k arccos(clamp(max_{j≠k} cos(m_k, m_j), ±0.99999))``,
which restores near-equal angles after sparsification. The official
``g_head`` is an ``nn.Linear`` whose randomly initialised bias also stays
frozen; we leave the bias out.
"""

from __future__ import annotations

import math

import torch
from reglab.core import Baseline, Claim, FunctionModule, Paper, RegularizerInputError, register
from reglab.ops import check_int, check_probability, check_tensor, hyperparameters, integer, positive, probability

__all__ = ["simplex_etf", "simplex_etf_logits", "SimplexETFHead"]

PAPER = Paper(
    "FedLoGe: Joint Local and Generic Federated Learning under Long-tailed Data",
    "Xiao, Z., Chen, Z., Liu, L., Feng, Y., Wu, J., Liu, W., Zhou, J. T., Yang, H. H. and Liu, Z.", 2024,
    arxiv="2401.08977", venue="ICLR", code="https://github.com/ZackZikaiXiao/FedLoGe")


@hyperparameters("SimplexETFHead", sparsity=probability, steps=integer(0), lr=positive)
def simplex_etf(
    num_classes: int,
    dim: int,
    sparsity: float = 0.0,
    steps: int = 10000,
    lr: float = 1e-4,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A ``(dim, num_classes)`` simplex ETF ``√(K/(K−1))·P·(I − 11ᵀ/K)`` (FedLoGe ``ETF_Classifier``).

    With ``sparsity`` β > 0: zero ``int(β·dim·K)`` random entries and refine
    the others with ``steps`` Adam steps (``lr``) on FedLoGe's
    ``gen_sparse_ETF`` loss (norm target 0.1, max-cosine angle term). Needs
    ``dim ≥ num_classes`` (the QR of a dim×K matrix, as the official code).
    """
    k = check_int("SimplexETFHead", "num_classes", num_classes, 2)
    d = check_int("SimplexETFHead", "dim", dim, 1)
    if d < k:
        raise RegularizerInputError(
            f"SimplexETFHead needs dim >= num_classes (a dim×K matrix with orthonormal columns), got dim={d}, "
            f"num_classes={k}"
        )
    a = torch.rand(d, k, generator=generator, dtype=torch.float64)
    p, _ = torch.linalg.qr(a)
    m = math.sqrt(k / (k - 1)) * p @ (torch.eye(k, dtype=torch.float64) - torch.full((k, k), 1.0 / k, dtype=torch.float64))
    if sparsity == 0.0:
        return m.float()
    zeros = int(sparsity * d * k)
    idx = torch.randperm(d * k, generator=generator)[:zeros]
    m = m.flatten().clone()
    m[idx] = 0.0
    m = m.reshape(d, k).float()
    mask = (m != 0).float()
    x = m.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad()
            norms = x.norm(dim=0)
            norm_loss = ((norms - 0.1) ** 2).sum()
            cos = (x / norms).T @ (x / norms)
            cos = cos - 2.0 * torch.eye(k)  # the diagonal becomes −1: never the max
            angle_loss = -torch.acos(cos.max(dim=1).values.clamp(-0.99999, 0.99999)).mean()
            (norm_loss + angle_loss).backward()
            x.grad.mul_(mask)
            opt.step()
    return x.detach()


def simplex_etf_logits(features: torch.Tensor, etf: torch.Tensor) -> torch.Tensor:
    """Logits ``h @ M`` of features ``(n, d)`` against a fixed ``(d, K)`` ETF ``M``."""
    check_tensor("SimplexETFHead", features, arg="features", ndim=2)
    if features.shape[1] != etf.shape[0]:
        raise RegularizerInputError(
            f"SimplexETFHead expects features of width {etf.shape[0]}, got shape {tuple(features.shape)}"
        )
    return features @ etf.to(features.dtype)


@register
class SimplexETFHead(FunctionModule):
    """A frozen simplex-ETF classifier head (FedLoGe's SSE-C when ``sparsity`` > 0): logits = h @ M.

    ``M = √(K/(K−1))·P·(I − 11ᵀ/K)`` (d×K, P with orthonormal columns) is
    drawn once and kept as the buffer ``etf`` (in ``state_dict``, never a
    parameter): the K class vectors are unit norm with pairwise cosine
    −1/(K−1), the neural-collapse geometry, fixed before training so the
    features must align to them. ``sparsity`` β zeroes a random share of
    M and re-spreads the remaining entries (FedLoGe's ``gen_sparse_ETF``:
    Adam lr 1e-4, 10 000 steps; their default β = 0.6). Use in place of
    the last ``nn.Linear``: ``logits = head(body(x))``.
    """

    name = "simplex_etf_head"
    kind = "output"
    form = "module"
    paper = PAPER
    formula = "logits = h·M,  M = √(K/(K−1))·P·(I − 11ᵀ/K) fixed (β of its entries zeroed when sparse)"
    function = simplex_etf_logits
    example_args = {"in_features": 8, "num_classes": 4}
    claims = (
        Claim(
            "A fixed simplex-ETF head gives better balanced accuracy than a learned linear head when the training "
            "data are long-tailed",
            task="long_tail", metric="balanced_accuracy", direction="higher",
            arm={"name": "simplex_etf_head"},
            min_effect=0.01, min_effect_reason="one point of balanced (mean per-class) test accuracy",
            baselines=(Baseline("learned linear head", why="the head the ETF replaces"),),
            datasets=("digits",),
            settings="centralized training of an MLP 64-256-10 on digits with a 50:1 long-tailed training split "
            "(balanced validation and test) instead of federated CIFAR/ImageNet-LT with ResNets; the dense ETF "
            "(sparsity 0) instead of SSE-C's β = 0.6, whose 10 000-step refinement costs more than a lab run; no "
            "GLA-FR feature realignment or local heads; nothing tuned",
            source="Xiao et al. 2024, Sec. 4 and Table 5 (the static ETF classifier's gain on long-tailed data); "
            "the neural-collapse argument for fixed ETF heads under imbalance (Yang et al. 2022)",
        ),
        Claim(
            "The fixed ETF head helps the tail classes most",
            task="long_tail", metric="tail_accuracy", direction="higher", role="mechanism",
            arm={"name": "simplex_etf_head"},
            min_effect=0.02, min_effect_reason="two points of mean recall over the five rarest classes",
            baselines=(Baseline("learned linear head", why="the head the ETF replaces"),),
            datasets=("digits",),
            settings="as above",
            source="Xiao et al. 2024, Sec. 3.2 (the fixed ETF keeps minority-class prototypes from collapsing)",
        ),
        Claim(
            "A fixed sparse ETF head improves generic (balanced) accuracy under long-tailed federated data",
            testable=False,
            untestable_reason="the paper's claim is about federated long-tailed training (CIFAR-LT, ImageNet-LT, "
            "iNaturalist, many clients); the lab has no long-tailed or federated task, and none of its tasks "
            "swaps the classifier head (arms are penalties, targets or logit transforms)",
            source="Xiao et al. 2024, Tables 1-3 (FedLoGe with SSE-C vs Fed-LT baselines)",
        ),
    )

    def __init__(self, in_features: int, num_classes: int, sparsity: float = 0.0) -> None:
        FunctionModule._init_from_values(self, {})
        check_probability("SimplexETFHead", "sparsity", sparsity)
        self.in_features = check_int("SimplexETFHead", "in_features", in_features, 1)
        self.num_classes = check_int("SimplexETFHead", "num_classes", num_classes, 2)
        self.sparsity = float(sparsity)
        self.register_buffer("etf", simplex_etf(self.num_classes, self.in_features, sparsity=self.sparsity))

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return simplex_etf_logits(features, self.etf)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, num_classes={self.num_classes}, sparsity={self.sparsity}"

