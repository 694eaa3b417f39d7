"""TopK / k-sparse activation (Makhzani & Frey, 2013; Gao et al., 2024): keep the k largest pre-activations.

z_j = ReLU(a_j) if j is among the k largest entries of a (last dimension), else 0.
This is the TopK sparse autoencoder's activation as the reference code writes it
(openai/sparse_autoencoder @ 4965b941, ``sparse_autoencoder/model.py`` class
``TopK``, L162-174: ``torch.topk`` on the last dimension, ``postact_fn = ReLU``
applied to the kept values, scattered into zeros); k = 32 is the default of its
training ``Config`` (``sparse_autoencoder/train.py`` L683-700). The k-sparse
autoencoder of Makhzani & Frey keeps the k largest values of a linear code
without the ReLU (``relu=False``).
"""

from __future__ import annotations

import torch

from reglab.core import Claim, FunctionModule, Paper, RegularizerInputError, register
from reglab.ops import check_tensor, hyperparameters, integer

PAPER = Paper(
    "Scaling and evaluating sparse autoencoders", "Gao, Dupré la Tour, Tillman, Goh, Troll, Radford, Sutskever, "
    "Leike, Wu", 2024, arxiv="2406.04093", code="https://github.com/openai/sparse_autoencoder")
PAPER_KSPARSE = Paper("k-Sparse Autoencoders", "Makhzani, Frey", 2013, arxiv="1312.5663", venue="ICLR 2014")


@hyperparameters("TopK", k=integer(1))
def topk_activation(a: torch.Tensor, k: int = 32, relu: bool = True) -> torch.Tensor:
    """TopK activation: the k largest entries of ``a`` along its last dimension kept (ReLU'd), the rest zeroed.

    ``a``: (..., n) pre-activations, n ≥ k. The gradient is the identity on the
    kept entries (times the ReLU gate) and zero elsewhere; ties are broken by
    ``torch.topk``. With ``relu=True`` (the TopK SAE) a row keeps fewer than k
    non-zeros when some of its k largest pre-activations are ≤ 0; ``relu=False``
    is Makhzani & Frey's k-sparse code (exactly k values kept, any sign).
    """
    who = "TopK"
    check_tensor(who, a, arg="pre-activations", min_ndim=1)
    if not isinstance(relu, bool):
        raise RegularizerInputError(f"{who} expects relu to be True or False, got {relu!r}")
    n = a.shape[-1]
    if k > n:
        raise RegularizerInputError(f"{who} keeps k={k} entries but the last dimension has only {n} (shape {tuple(a.shape)})")
    values, indices = torch.topk(a, k, dim=-1, sorted=False)
    if relu:
        values = torch.relu(values)
    return torch.zeros_like(a).scatter(-1, indices, values)


@register
class TopK(FunctionModule):
    """TopK activation: keep the k largest pre-activations of each row, zero the rest.

    z = scatter(topk(a, k), ReLU) — the activation of TopK sparse autoencoders
    (Gao et al., 2024; openai/sparse_autoencoder ``model.py`` ``TopK``) and,
    with ``relu=False``, the k-sparse autoencoder of Makhzani & Frey (2013).
    Sparsity is set exactly by k instead of being traded off by an L1 weight,
    and it shrinks no kept value (no L1 bias). A module: put it after the
    encoder's linear layer, ``nn.Sequential(nn.Linear(d, n), reglab.create("topk", k=32))``.
    Default k = 32 (the reference code's ``Config.k``). Not shipped here: the
    AuxK dead-latent loss and k annealing of Makhzani & Frey's training recipe.
    """

    name = "topk"
    kind = "representation"
    form = "module"
    takes_embedding_batches = False
    paper = PAPER
    formula = "z_j = ReLU(a_j)·1[j ∈ argtopk(a, k)]"
    function = topk_activation
    example_args = {"k": 2}
    claims = (
        Claim(
            "At the same number of active latents, a TopK code reconstructs better than an L1-penalized ReLU code",
            testable=False,
            untestable_reason="the lab's latent_code task adds its arm to the loss as a penalty on the code and "
            "cannot insert an activation module into the encoder; a fair comparison also needs the L1 baseline "
            "tuned to the same mean ℓ0, which no shipped task does",
            source="Gao et al. 2024, Sec. 2-3 (TopK vs ReLU+L1 sparsity-reconstruction frontier); Makhzani & Frey "
            "2013 (k-sparse AE)",
        ),
    )
