"""The lab tasks added for the claims of every regularizer: their metrics mean what their docstrings say."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

pytest.importorskip("sklearn")

from reglab.bench.experiments._train import optimizer_step  # noqa: E402
from reglab.bench.experiments.autoencoder import code_metrics  # noqa: E402
from reglab.bench.experiments.classification import weight_structure  # noqa: E402
from reglab.bench.experiments.deep_plain import orthogonality_gap  # noqa: E402
from reglab.bench.experiments.residual import _drops  # noqa: E402
from reglab.bench.data import stratified_share  # noqa: E402
from reglab.bench.tasks import get_task  # noqa: E402


def test_code_metrics_count_active_dims_zeros_and_expected_flops():
    z = torch.zeros(4, 3)
    z[:, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # active, never zero
    z[:2, 1] = torch.tensor([0.001, 0.0])  # std 0.0005 < 1% of column 0's: inactive; nonzero in 1 of 4 rows
    m = code_metrics(z)
    assert m["active_dims"] == 1.0
    assert m["zero_fraction"] == pytest.approx(7 / 12)
    assert m["expected_flops"] == pytest.approx(1.0**2 + 0.25**2)  # Σ_j P(z_j ≠ 0)²


def test_weight_structure_energy_rank_and_near_zero_share():
    model = nn.Sequential(nn.Linear(4, 4, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.diag(torch.tensor([10.0, 1.0, 0.0, 0.0])))
    m = weight_structure(model)
    assert m["weight_rank99"] == 1.0  # 100/101 of Σσ² in the first value: 99% needs one
    assert m["weight_near_zero"] == pytest.approx(14 / 16)
    with torch.no_grad():
        model[0].weight.copy_(torch.eye(4))
    assert weight_structure(model)["weight_rank99"] == 4.0


def test_orthogonality_gap_is_zero_for_orthogonal_layers_only():
    lin = nn.Linear(5, 5)
    with torch.no_grad():
        lin.weight.copy_(torch.linalg.qr(torch.randn(5, 5))[0])
    assert orthogonality_gap(nn.Sequential(lin, nn.Linear(5, 3))) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        lin.weight.mul_(2.0)
    assert orthogonality_gap(nn.Sequential(lin)) == pytest.approx(math.sqrt(5 * 9) / math.sqrt(5))


def test_drop_path_uses_the_papers_linear_decay_rule_and_uniform_option():
    drops, stepped = _drops({"name": "drop_path", "p": 0.5}, 4, 100, uniform_rate=False)
    assert [d.p for d in drops] == pytest.approx([0.125, 0.25, 0.375, 0.5]) and stepped == []
    drops, _ = _drops({"name": "drop_path", "p": 0.3}, 4, 100, uniform_rate=True)
    assert [d.p for d in drops] == pytest.approx([0.3] * 4)
    drops, stepped = _drops({"name": "scheduled_drop_path"}, 3, 100, uniform_rate=False)
    assert len({id(d) for d in drops}) == 1 and stepped == [drops[0]] and drops[0].total_steps == 100


def test_stratified_share_is_stratified_disjoint_and_seeded():
    y = torch.arange(100) % 10
    kept, rest = stratified_share(y, 0.1, seed=0)
    assert len(kept) == 10 and sorted(y[kept].tolist()) == list(range(10))
    assert len(rest) == 90 and not set(kept.tolist()) & set(rest.tolist())
    assert (stratified_share(y, 0.1, seed=0)[0] == kept).all()
    assert not (stratified_share(y, 0.1, seed=1)[0] == kept).all()
    everything, none = stratified_share(y, 1.0, seed=0)
    assert len(everything) == 100 and len(none) == 0


def test_procedure_arms_change_the_update_and_sgd_option():
    model = nn.Linear(3, 2)
    opt, update = optimizer_step(model, {"name": "sam"}, lr=0.1)
    assert type(opt).__name__ == "SAM"
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    before = model.weight.detach().clone()
    update(lambda: nn.functional.cross_entropy(model(x), y))
    assert not torch.equal(before, model.weight)
    opt, _ = optimizer_step(model, None, lr=0.1, optimizer="sgd")
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    with pytest.raises(ValueError, match="'adam' or 'sgd'"):
        optimizer_step(model, None, lr=0.1, optimizer="lbfgs")


@pytest.mark.parametrize(
    "task,arm,args",
    [
        ("deep_residual", {"name": "drop_path", "p": 0.5}, {}),
        ("latent_code", {"name": "least_volume"}, {"code": "linear", "lipschitz_decoder": True}),
        ("semi_supervised", {"name": "consistency"}, {}),
        ("deep_plain", {"name": "soft_orthogonality"}, {"depth": 4}),
        ("transfer", {"name": "l2_sp", "new_params": "head.*", "beta_ratio": 0.1}, {}),
        ("clean_classification", {"name": "gaussian_noise"}, {}),
        ("nm_sparsity", {"name": "nm_sparsity", "n": 1, "m": 8, "method": "linear", "decay_coef": 0.01}, {}),
        ("nm_sparsity", None, {}),
        ("diff_transfer", {"name": "diff_pruning", "sparsity_pen": 1e-4}, {}),
        ("diff_transfer", None, {"freeze_body": True}),
        ("diff_transfer", {"name": "lottery_ticket_sft"}, {}),
    ],
)
def test_new_tasks_run_quick_with_their_metrics(task, arm, args):
    res = get_task(task)(arm, seed=0, quick=True, **args)
    assert res.metrics and all(math.isfinite(v) for v in res.metrics.values())
    assert res.setup["selection"] and res.setup["model"]
