"""Representation regularizers: penalties on a batch of embeddings or activations.

Each class wraps one function of :mod:`reglab.functional.representations`.
Bind a single-view class to any layer with ``.on(activations="encoder.3")``;
two-view classes (``num_inputs = 2``) take both views' outputs. Batch-statistic
classes take ``gather=True``: under DDP their statistics are global and their
gradients equal the single-process ones (see :mod:`reglab.distributed`).
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch

from reglab import functional as RF
from reglab.paper import Claim, Paper
from reglab.registry import register
from reglab.regularizers.base import Regularizer
from reglab.regularizers.weights import MHE

__all__ = [
    "VICReg",
    "VCReg",
    "BarlowTwins",
    "Alignment",
    "Uniformity",
    "MHEFeatures",
    "VNE",
    "EffectiveRank",
    "Dispersive",
    "FLOPS",
    "L1Activation",
    "LeastVolume",
    "LDReg",
]

_VICREG = Paper(
    "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning",
    "Bardes, Ponce, LeCun",
    2022,
    arxiv="2105.04906",
    venue="ICLR",
    code="https://github.com/facebookresearch/vicreg",
)
_WANG_ISOLA = Paper(
    "Understanding Contrastive Representation Learning through Alignment and Uniformity on the Hypersphere",
    "Wang, Isola",
    2020,
    arxiv="2005.10242",
    venue="ICML",
    code="https://github.com/ssnl/align_uniform",
)


class _RepresentationRegularizer(Regularizer):
    kind: ClassVar[str] = "representation"
    target: ClassVar[str] = "activations"


@register
class VICReg(_RepresentationRegularizer):
    """VICReg: invariance, variance and covariance terms on two views' embeddings.

    L = λ·(1/(nd))Σ‖z_i − z'_i‖² + μ·½[v(Z) + v(Z')] + ν·[c(Z) + c(Z')], with
    v(Z) = (1/d)Σ_j max(0, γ − √(Var(z_·j) + ε)) and c(Z) = (1/d)Σ_{i≠j} Cov(Z)_ij²
    (unbiased variance and covariance).

    Defaults λ = μ = 25, ν = 1, γ = 1 and ε = 1e-4 (the paper's
    implementation details and the official code's defaults); the ½ on the variance term, the unbiased estimates and the division of the
    covariance sum by d are those of the official code
    (facebookresearch/vicreg, ``main_vicreg.py``, ``VICReg.forward``). With
    ``gather=True`` the statistics are computed on the global batch under DDP
    (the official code all-gathers the embeddings with ``FullGatherLayer``).
    When n < d the covariance term is computed from the n×n Gram matrix, never
    forming the d×d covariance.

    Bardes, Ponce & LeCun (2022), ICLR, arXiv:2105.04906.
    """

    name = "vicreg"
    paper = _VICREG
    formula = "λ·mse(z,z') + μ·½[v(z)+v(z')] + ν·[c(z)+c(z')], v = mean_j relu(γ−√(Var_j+ε)), c = Σ_{i≠j}Cov_ij²/d"
    num_inputs = 2
    claims = (
        Claim(
            "Variance and covariance terms prevent the collapse of invariance-only training",
            task="ssl_collapse",
            metric="effective_rank",
            direction="higher",
            baseline="invariance only",
            source="Bardes et al. 2022, ablation of the loss terms (without the variance term training collapses)",
        ),
        Claim(
            "Non-collapsed VICReg embeddings give a better linear probe than invariance-only training",
            task="ssl_collapse",
            metric="linear_probe_accuracy",
            direction="higher",
            baseline="invariance only",
            source="Bardes et al. 2022, ablation of the loss terms (linear evaluation)",
        ),
    )

    def __init__(
        self,
        weight: float = 1.0,
        sim_coeff: float = 25.0,
        std_coeff: float = 25.0,
        cov_coeff: float = 1.0,
        gamma: float = 1.0,
        eps: float = 1e-4,
        gather: bool = True,
    ):
        super().__init__(weight)
        self.sim_coeff = sim_coeff
        self.std_coeff = std_coeff
        self.cov_coeff = cov_coeff
        self.gamma = gamma
        self.eps = eps
        self.gather = gather

    def components(self, z1: torch.Tensor, z2: torch.Tensor) -> RF.VICRegTerms:
        return RF.vicreg_terms(z1, z2, gamma=self.gamma, eps=self.eps, gather=self.gather)

    def penalty(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return RF.vicreg(
            z1, z2, sim_coeff=self.sim_coeff, std_coeff=self.std_coeff, cov_coeff=self.cov_coeff,
            gamma=self.gamma, eps=self.eps, gather=self.gather,
        )  # fmt: skip


@register
class VCReg(_RepresentationRegularizer):
    """VCReg: VICReg's variance and covariance terms on a single view.

    L = μ·v(Z) + ν·c(Z), v and c exactly as in :class:`VICReg`. Used on any
    layer's activations (supervised or SSL) to keep every dimension's standard
    deviation above γ and dimensions decorrelated.

    Defaults: γ = 1, ε = 1e-4, μ = 25, ν = 1 are VICReg's (its §4.1); the
    VCReg paper tunes the two coefficients per setting, and its tuned values
    were not checked here, so pass yours.

    Zhu, Shwartz-Ziv, Chen & LeCun (2023), "Variance-Covariance Regularization
    Improves Representation Learning", arXiv:2306.13292.
    """

    name = "vcreg"
    paper = Paper(
        "Variance-Covariance Regularization Improves Representation Learning",
        "Zhu, Shwartz-Ziv, Chen, LeCun",
        2023,
        arxiv="2306.13292",
    )
    formula = "μ·mean_j relu(γ−√(Var_j+ε)) + ν·Σ_{i≠j}Cov_ij²/d"

    def __init__(
        self,
        weight: float = 1.0,
        std_coeff: float = 25.0,
        cov_coeff: float = 1.0,
        gamma: float = 1.0,
        eps: float = 1e-4,
        gather: bool = True,
    ):
        super().__init__(weight)
        self.std_coeff = std_coeff
        self.cov_coeff = cov_coeff
        self.gamma = gamma
        self.eps = eps
        self.gather = gather

    def components(self, z: torch.Tensor) -> RF.VCRegTerms:
        return RF.vcreg_terms(z, gamma=self.gamma, eps=self.eps, gather=self.gather)

    def penalty(self, z: torch.Tensor) -> torch.Tensor:
        return RF.vcreg(
            z, std_coeff=self.std_coeff, cov_coeff=self.cov_coeff, gamma=self.gamma, eps=self.eps, gather=self.gather
        )


@register
class BarlowTwins(_RepresentationRegularizer):
    """Barlow Twins: drive the cross-correlation of two views' embeddings to the identity.

    C = BN(Z)ᵀ BN(Z') / n, with BN the affine-free batch normalization over
    the batch (biased variance, ε = 1e-5 as ``nn.BatchNorm1d``);
    L = Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij².

    λ = 0.0051 as in the official code (facebookresearch/barlowtwins,
    ``main.py``, ``--lambd``; the paper states 5e-3). The official
    code normalizes with a SyncBatchNorm and divides by the global batch size;
    ``gather=True`` does the same.

    Zbontar, Jing, Misra, LeCun & Deny (2021), ICML, arXiv:2103.03230.
    """

    name = "barlow_twins"
    paper = Paper(
        "Barlow Twins: Self-Supervised Learning via Redundancy Reduction",
        "Zbontar, Jing, Misra, LeCun, Deny",
        2021,
        arxiv="2103.03230",
        venue="ICML",
        code="https://github.com/facebookresearch/barlowtwins",
    )
    formula = "Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij², C = BN(z)ᵀBN(z')/n"
    num_inputs = 2

    def __init__(self, weight: float = 1.0, lambd: float = 0.0051, eps: float = 1e-5, gather: bool = True):
        super().__init__(weight)
        self.lambd = lambd
        self.eps = eps
        self.gather = gather

    def components(self, z1: torch.Tensor, z2: torch.Tensor) -> RF.BarlowTwinsTerms:
        return RF.barlow_twins_terms(z1, z2, eps=self.eps, gather=self.gather)

    def penalty(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return RF.barlow_twins(z1, z2, lambd=self.lambd, eps=self.eps, gather=self.gather)


@register
class Alignment(_RepresentationRegularizer):
    """Alignment of positive pairs: L = E‖f(x) − f(y)‖₂^α on the unit sphere.

    α = 2 (the paper's default, §4 and ``align_loss`` in ssnl/align_uniform).
    The paper's features are L2-normalized; ``normalize=True`` does that here
    (the official function expects normalized inputs). A mean over pairs, so
    DDP's gradient averaging already gives the global value: no gather.

    Wang & Isola (2020), ICML, arXiv:2005.10242.
    """

    name = "alignment"
    paper = _WANG_ISOLA
    formula = "E_{(x,y)~pos} ‖f(x) − f(y)‖₂^α"
    num_inputs = 2

    def __init__(self, weight: float = 1.0, alpha: float = 2.0, normalize: bool = True):
        super().__init__(weight)
        self.alpha = alpha
        self.normalize = normalize

    def penalty(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return RF.alignment(z1, z2, alpha=self.alpha, normalize=self.normalize)


@register
class Uniformity(_RepresentationRegularizer):
    """Uniformity on the hypersphere: L = log E_{i<j} exp(−t‖f(x_i) − f(x_j)‖²).

    t = 2 (paper §4 and ``uniform_loss`` in ssnl/align_uniform, which averages
    over the n(n−1)/2 distinct pairs from ``torch.pdist``). Inputs are
    L2-normalized first (``normalize=True``); ``gather=True`` uses all pairs of
    the global batch under DDP.

    Wang & Isola (2020), ICML, arXiv:2005.10242.
    """

    name = "uniformity"
    paper = _WANG_ISOLA
    formula = "log E_{i<j} exp(−t‖z_i − z_j‖²)"

    def __init__(self, weight: float = 1.0, t: float = 2.0, normalize: bool = True, gather: bool = True):
        super().__init__(weight)
        self.t = t
        self.normalize = normalize
        self.gather = gather

    def penalty(self, z: torch.Tensor) -> torch.Tensor:
        return RF.uniformity(z, t=self.t, normalize=self.normalize, gather=self.gather)


@register
class MHEFeatures(_RepresentationRegularizer):
    """Minimum hyperspherical energy of a batch of embeddings.

    MHE (Liu et al., 2018) spreads a layer's filters evenly on the unit
    sphere; here the same energy acts on the batch's feature vectors:
    E_s = mean_{i<j} f_s(‖ẑ_i − ẑ_j‖), ẑ = z/‖z‖, f_s(r) = r^{−s} (s > 0) or
    log(1/r) (s = 0). It is computed by the same function as the weight
    penalty ``mhe`` (the official code's ‖z‖ = √(Σz² + 1e-4) and mean over
    pairs; s = 0 by default, the paper's logarithmic energy), with
    ``gather=True`` using all pairs of the global batch under DDP.
    ``half_space`` adds the reflected vectors −ẑ_j.

    Liu, Lin, Liu, Liu, Yu, Dai & Song (2018), NeurIPS, arXiv:1805.09298.
    """

    name = "mhe_features"
    paper = MHE.paper
    formula = "mean_{i<j} f_s(‖ẑ_i − ẑ_j‖),  f_s(r) = r^{−s} or log(1/r)"

    def __init__(self, weight: float = 1.0, s: float = 0.0, half_space: bool = False, gather: bool = True):
        super().__init__(weight)
        self.s = s
        self.half_space = half_space
        self.gather = gather

    def penalty(self, z: torch.Tensor) -> torch.Tensor:
        return RF.mhe_features(z, s=self.s, half_space=self.half_space, gather=self.gather)


class _VNETerms(NamedTuple):
    vne: torch.Tensor


class _RankTerms(NamedTuple):
    entropy: torch.Tensor
    effective_rank: torch.Tensor


@register
class VNE(_RepresentationRegularizer):
    """Von Neumann entropy of the representation: L = −VNE(H), so a positive
    weight α raises the entropy (L_total = L_task − α·VNE), a negative one lowers it.

    Z = row-normalized H; ρ = ZᵀZ/N (trace 1); VNE = −Σ λ log λ over the
    eigenvalues λ of ρ, computed as the squared singular values of Z/√N
    (jaeill/CVPR23-VNE, ``get_vne`` in its README). ``components()`` reports
    the entropy itself (``vne``). The paper picks the sign and size of α per
    application; there is no single default, 1.0 here.

    Kim, Kang, Lee & Lee (2023), CVPR, arXiv:2304.01434.
    """

    name = "vne"
    paper = Paper(
        "VNE: An Effective Method for Improving Deep Representation by Manipulating Eigenvalue Distribution",
        "Kim, Kang, Lee, Lee",
        2023,
        arxiv="2304.01434",
        venue="CVPR",
        code="https://github.com/jaeill/CVPR23-VNE",
    )
    formula = "−VNE, VNE = −Σ λ log λ, λ = eig(ZᵀZ/N), Z = normalize_rows(H)"

    def __init__(self, weight: float = 1.0, gather: bool = True):
        super().__init__(weight)
        self.gather = gather

    def components(self, h: torch.Tensor) -> _VNETerms:
        return _VNETerms(RF.vne(h, gather=self.gather))

    def penalty(self, h: torch.Tensor) -> torch.Tensor:
        return -self.components(h).vne


@register
class EffectiveRank(_RepresentationRegularizer):
    """Effective rank: L = −H(p), p_k = σ_k/Σσ + ε over the batch's singular
    values, so minimizing raises the effective rank exp(H) (Roy & Vetterli).

    ε = 1e-7 as in RankMe (Garrido et al., 2023, Eq. 1), which measures the
    same quantity on embeddings. ``components()`` reports the entropy and the
    effective rank exp(H).

    Roy & Vetterli (2007), "The effective rank: A measure of effective
    dimensionality", EUSIPCO.
    """

    name = "effective_rank"
    paper = Paper(
        "The effective rank: A measure of effective dimensionality",
        "Roy, Vetterli",
        2007,
        venue="EUSIPCO",
        doi="10.5281/zenodo.40472",
    )
    formula = "−H(σ/Σσ + ε), erank = exp(H)"

    def __init__(self, weight: float = 1.0, eps: float = 1e-7, gather: bool = True):
        super().__init__(weight)
        self.eps = eps
        self.gather = gather

    def components(self, z: torch.Tensor) -> _RankTerms:
        h = RF.spectral_entropy(z, eps=self.eps, gather=self.gather)
        return _RankTerms(h, h.exp())

    def penalty(self, z: torch.Tensor) -> torch.Tensor:
        return -RF.spectral_entropy(z, eps=self.eps, gather=self.gather)


@register
class Dispersive(_RepresentationRegularizer):
    """Dispersive loss: InfoNCE without positives, spreading a hidden layer's
    representations: L = log mean_{i,j} exp(−‖z_i − z_j‖²/(τ·D)).

    InfoNCE-L2 variant of the paper's Algorithm 1 snippet: z is the flattened
    activation of each sample, D its dimension, the mean over all N² ordered
    pairs (the zero diagonal included) and τ = 1 as in that snippet. The
    coefficient λ of the total loss L_diff + λ·L_disp is the ``weight``
    (the paper's per-model λ was not checked here; 1.0 by default).

    Wang & He (2025), "Diffuse and Disperse: Image Generation with
    Representation Regularization", arXiv:2506.09027.
    """

    name = "dispersive"
    paper = Paper(
        "Diffuse and Disperse: Image Generation with Representation Regularization",
        "Wang, He",
        2025,
        arxiv="2506.09027",
    )
    formula = "log mean_{i,j} exp(−‖z_i − z_j‖²/(τ·D))"

    def __init__(self, weight: float = 1.0, tau: float = 1.0, gather: bool = True):
        super().__init__(weight)
        self.tau = tau
        self.gather = gather

    def penalty(self, z: torch.Tensor) -> torch.Tensor:
        return RF.dispersive(z, tau=self.tau, gather=self.gather)


@register
class FLOPS(_RepresentationRegularizer):
    """FLOPS: a smooth proxy for the retrieval cost of sparse embeddings,
    L = Σ_j (mean_i |z_ij|)².

    Penalizes dimensions that are active across the batch quadratically, so
    non-zeros spread evenly over dimensions (Paria et al., 2020, Eq. 5; used by
    SPLADE). With ``gather=True`` the mean over i is over the global batch under
    DDP, then squared, matching a single process on the concatenated batch.

    Paria, Yeh, Yen, Xu, Ravikumar & Póczos (2020), ICLR, arXiv:2004.05665.
    """

    name = "flops"
    paper = Paper(
        "Minimizing FLOPs to Learn Efficient Sparse Representations",
        "Paria, Yeh, Yen, Xu, Ravikumar, Póczos",
        2020,
        arxiv="2004.05665",
        venue="ICLR",
    )
    formula = "Σ_j (mean_i |z_ij|)²"

    def __init__(self, weight: float = 1.0, gather: bool = True):
        super().__init__(weight)
        self.gather = gather

    def penalty(self, z: torch.Tensor) -> torch.Tensor:
        return RF.flops(z, gather=self.gather)


@register
class L1Activation(_RepresentationRegularizer):
    """Activation sparsity: L = mean_i ‖z_i‖₁ (each sample's activations flattened).

    The classic sparse-coding / sparse-autoencoder penalty on activations; a
    per-sample mean, so no gather is needed under DDP.
    """

    name = "l1_activation"
    formula = "mean_i Σ_j |z_ij|"

    def __init__(self, weight: float = 1e-4):
        super().__init__(weight)

    def penalty(self, z: torch.Tensor) -> torch.Tensor:
        return RF.l1_activation(z)


@register
class LeastVolume(_RepresentationRegularizer):
    """Least Volume: shrink an autoencoder's latent "volume", the geometric mean
    of the per-dimension standard deviations, L = exp(mean_j log(std_j(z) + η)).

    η = 1e-2 and λ = 1e-3 (the default ``weight``) follow the official code
    (IDEALLab/Least_Volume_ICLR2024: ``src/model/sparsity.py``, ``VolumeAE``
    and the README's ``-l 1e-3``). The method needs a Lipschitz decoder: wrap
    its layers in ``torch.nn.utils.parametrizations.spectral_norm`` (the paper,
    §2), or the decoder simply rescales and the penalty is meaningless.

    Chen & Fuge (2024), "Compressing Latent Space via Least Volume", ICLR.
    """

    name = "least_volume"
    paper = Paper(
        "Compressing Latent Space via Least Volume",
        "Chen, Fuge",
        2024,
        arxiv="2404.17773",
        venue="ICLR",
        code="https://github.com/IDEALLab/Least_Volume_ICLR2024",
    )
    formula = "exp(mean_j log(std_j(z) + η))"

    def __init__(self, weight: float = 1e-3, eta: float = 1e-2, gather: bool = True):
        super().__init__(weight)
        self.eta = eta
        self.gather = gather

    def penalty(self, z: torch.Tensor) -> torch.Tensor:
        return RF.least_volume(z, eta=self.eta, gather=self.gather)


@register
class LDReg(_RepresentationRegularizer):
    """LDReg: raise each sample's local intrinsic dimensionality (LID),
    L = mean_i −|log LID_i|, LID_i = m_i / (r_{k,i} − m_i).

    r_{j,i} are the sorted distances from sample i to the (detached, all-gathered)
    batch, m_i the mean of the k−1 nearest; method-of-moments estimator and
    the ``l1`` form of the official code (HanxunH/LDReg, ``lid.py`` and
    ``losses/ntxent_lid_reg.py``). Defaults k = 16 and α = 0.01 (the
    ``weight``) are the SimCLR ImageNet config
    (``configs/simclr_lid_l1_f_mom_bs_2048_e100/.../alpha_0.010000/k_16``);
    the paper uses α = 0.005 for BYOL/MoCo. Apply it to backbone features,
    both views concatenated. ``components()`` also reports the geometric-mean LID.
    A per-sample mean, so under DDP equal local batch sizes give the global mean.

    Huang, Erfani, Lo, Bailey & Ma (2024), "LDReg: Local Dimensionality
    Regularized Self-Supervised Learning", ICLR, arXiv:2401.10474.
    """

    name = "ldreg"
    paper = Paper(
        "LDReg: Local Dimensionality Regularized Self-Supervised Learning",
        "Huang, Erfani, Lo, Bailey, Ma",
        2024,
        arxiv="2401.10474",
        venue="ICLR",
        code="https://github.com/HanxunH/LDReg",
    )
    formula = "mean_i −|log LID_i|, LID_i = m_i/(r_k − m_i), m_i = mean_{j<k} r_j"

    def __init__(self, weight: float = 0.01, k: int = 16, gather: bool = True):
        super().__init__(weight)
        self.k = k
        self.gather = gather

    def components(self, z: torch.Tensor) -> RF.LDRegTerms:
        return RF.ldreg_terms(z, k=self.k, gather=self.gather)

    def penalty(self, z: torch.Tensor) -> torch.Tensor:
        return self.components(z).penalty
