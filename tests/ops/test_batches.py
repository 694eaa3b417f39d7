"""Shared batch handling of the representation penalties (reglab.ops.batches):
validation naming the regularizer, dtypes, float32 statistics under bf16
autocast, minimum batch sizes and matching views. Over every registered
representation penalty."""

from __future__ import annotations

import pytest
import torch

import reglab
from reglab.core.errors import RegularizerInputError
from reglab.core.registry import get
from reglab.ops.batches import covariance_offdiag, prepare_batch, variance_hinge

NAMES = [n for n in reglab.list_regularizers("representation") if getattr(get(n), "takes_embedding_batches", True)]
TWO_VIEW = [n for n in NAMES if get(n).num_inputs == 2]


def _inputs(reg, z, noise=0.3):
    if reg.num_inputs == 2:
        return (z, z + noise * torch.randn_like(z))
    return (z,)


def test_names_cover_the_representation_penalties():
    assert {"vicreg", "vcreg", "barlow_twins", "alignment", "uniformity", "vne", "effective_rank", "dispersive",
            "flops", "l1_activation", "least_volume", "ldreg"} <= set(NAMES)  # fmt: skip
    assert set(TWO_VIEW) == {"vicreg", "barlow_twins", "alignment", "t_regs", "tico", "cma", "condition_number_immunization"}
    assert {"attention_entropy", "seqpe", "tcm", "kl_bottleneck"}.isdisjoint(NAMES)  # not embedding batches: their own tests cover them


# ------------------------------------------------------------ dtypes, autocast
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_dtype_and_scalar(name, dtype):
    reg = reglab.create(name)
    z = torch.randn(8, 6, dtype=dtype, requires_grad=True)
    out = reg(*_inputs(reg, z))
    assert out.shape == () and out.dtype == dtype and torch.isfinite(out)
    out.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_bf16_autocast_matches_float32(name):
    reg = reglab.create(name).eval()  # eval: every call sees the same state (TiCo's EMA)
    torch.manual_seed(0)
    lin = torch.nn.Linear(16, 12)
    x = torch.randn(32, 16)
    x2 = x + 0.1 * torch.randn_like(x)
    with torch.no_grad():
        z_ref = lin(x), lin(x2)
    ref = reg(*(z_ref[: reg.num_inputs]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = lin(x), lin(x2)
        assert z[0].dtype == torch.bfloat16
        out = reg(*(z[: reg.num_inputs]))
    assert out.dtype == torch.float32
    assert torch.isfinite(out)
    # the only error left is bf16's rounding of the embeddings themselves (8 bits of mantissa)
    assert float(out) == pytest.approx(float(ref), rel=5e-2, abs=5e-3)
    # statistics ran in float32: identical to the float32 loss on the upcast bf16 embeddings
    same = reg(*(t.float() for t in z[: reg.num_inputs]))
    assert float(out) == pytest.approx(float(same), rel=1e-6, abs=1e-7)


# ------------------------------------------------------------------ bad input
BAD = [
    ("rank", lambda: torch.randn(4, 3, 2)),
    ("empty", lambda: torch.randn(0, 3)),
    ("nan", lambda: torch.tensor([[1.0, float("nan")], [0.0, 1.0], [1.0, 2.0]])),
    ("inf", lambda: torch.tensor([[1.0, float("inf")], [0.0, 1.0], [1.0, 2.0]])),
    ("int", lambda: torch.ones(4, 3, dtype=torch.long)),
]
#: accept (n, ...) activations, flattened per sample
FLATTENING = {"dispersive", "l1_activation", "ldreg"}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case,make", BAD, ids=[b[0] for b in BAD])
def test_bad_inputs_name_the_regularizer(name, case, make):
    reg = reglab.create(name)
    if case == "rank" and name in FLATTENING:
        pytest.skip("accepts (n, ...) activations, flattened per sample")
    z = make()
    with pytest.raises(RegularizerInputError, match=get(name).__name__):
        reg(*([z] * reg.num_inputs))


@pytest.mark.parametrize(
    "name",
    ["vicreg", "vcreg", "barlow_twins", "uniformity", "vne", "effective_rank", "dispersive", "least_volume", "mhe_features"],
)
def test_batch_of_one_rejected(name):
    reg = reglab.create(name)
    z = torch.randn(1, 8)
    who = get(name).__name__
    with pytest.raises(RegularizerInputError, match=rf"{who} needs a batch of at least 2 embeddings, got shape \(1, 8\)"):
        reg(*([z] * reg.num_inputs))


#: two-input penalties whose inputs are two batches of their own sizes, not two views of one batch
UNPAIRED = {"condition_number_immunization"}  # the kept task's and the harmful task's features


@pytest.mark.parametrize("name", sorted(set(TWO_VIEW) - UNPAIRED))
def test_views_must_match(name):
    with pytest.raises(RegularizerInputError, match="same shape"):
        reglab.create(name)(torch.randn(4, 3), torch.randn(5, 3))


@pytest.mark.parametrize("name", sorted(UNPAIRED))
def test_unpaired_batches_must_share_their_width(name):
    reglab.create(name)(torch.randn(6, 3), torch.randn(5, 3))  # different sizes are fine
    with pytest.raises(RegularizerInputError):
        reglab.create(name)(torch.randn(6, 3), torch.randn(6, 4))


# ------------------------------------------------------- the shared helpers
def test_prepare_batch_upcasts_and_keeps_float64():
    assert prepare_batch("X", torch.randn(3, 2, dtype=torch.bfloat16)).dtype == torch.float32
    assert prepare_batch("X", torch.randn(3, 2, dtype=torch.float64)).dtype == torch.float64
    z = torch.randn(3, 2)
    assert prepare_batch("X", z) is z  # single process: gather is the identity
    with pytest.raises(RegularizerInputError, match=r"X needs a batch of at least 3 embeddings, got shape \(2, 2\)"):
        prepare_batch("X", torch.randn(2, 2), min_batch=3)


@pytest.mark.parametrize("n,d", [(5, 9), (12, 4)])  # the Gram (n<d) and the d×d route
def test_covariance_offdiag_and_variance_hinge_match_numpy(n, d):
    import numpy as np

    z = torch.randn(n, d, dtype=torch.float64)
    cov = np.cov(z.numpy(), rowvar=False)  # unbiased
    off = (cov**2).sum() - (np.diag(cov) ** 2).sum()
    assert float(covariance_offdiag(z)) == pytest.approx(off / d, rel=1e-10)
    std = np.sqrt(z.numpy().var(axis=0, ddof=1) + 1e-4)
    assert float(variance_hinge(z)) == pytest.approx(np.maximum(0.0, 1.0 - std).mean(), rel=1e-10, abs=1e-15)
