"""The ``attention_logits`` lab task: the per-head q/k hook, its metrics and arms (quick runs), qk_norm's claims on it."""

from __future__ import annotations

import math

import pytest
import torch

import reglab
from reglab.bench.experiments.attention_logits import LogitTransformer, QKAttention, attention_logits, tokens_of
from reglab.bench.suite import check_claims, collect_claims

METRICS = ("final_loss", "final_accuracy", "test_accuracy", "max_attention_logit", "attention_entropy",
           "initial_loss", "diverged")  # fmt: skip


def test_tokens_are_patches_in_raster_order():
    x = torch.arange(64.0).reshape(1, 64)
    t = tokens_of(x, (1, 8, 8))
    assert t.shape == (1, 16, 4) and t[0, 1].tolist() == [2.0, 3.0, 10.0, 11.0]
    assert tokens_of(torch.zeros(3, 40), (1, 40)).shape == (3, 10, 4)


def test_the_hook_sees_each_heads_queries_and_keys():
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, q, k):
            seen.append((q.shape, k.shape))
            return q, k

    torch.manual_seed(0)
    attn = QKAttention(32, 4, Spy())
    attn(torch.randn(5, 16, 32))
    assert seen == [((5, 4, 16, 8), (5, 4, 16, 8))]


def test_qk_norm_bounds_the_recorded_logits():
    torch.manual_seed(0)
    plain = QKAttention(32, 4)
    normed = QKAttention(32, 4, reglab.QKNorm())
    normed.load_state_dict(plain.state_dict())
    with torch.no_grad():
        plain.qkv.weight.mul_(20.0), normed.qkv.weight.mul_(20.0)  # large q and k: large raw logits
    h = torch.randn(3, 16, 32)
    plain(h), normed(h)
    assert normed.max_logit <= math.sqrt(8) + 1e-4 < plain.max_logit
    assert 0.0 <= normed.entropy <= math.log(16) + 1e-4


def test_each_block_builds_its_own_arm():
    model = LogitTransformer(4, 16, 10, depth=2, heads=4, make_qk=lambda: reglab.QKNorm(head_dim=8, affine=True))
    arms = [b.attn.qk for b in model.blocks]
    assert arms[0] is not arms[1] and sum(1 for n, _ in model.named_parameters() if "q_weight" in n) == 2


@pytest.mark.parametrize(
    "arm, args",
    [
        (None, {}),
        ({"name": "qk_norm"}, {}),
        ({"name": "qk_norm", "affine": True, "norm": "rmsnorm"}, {"heads": 2, "depth": 1}),
        (None, {"warmup": 10, "clip": 1.0, "dataset": "mnist1d"}),
    ],
)
def test_quick_runs_report_the_metrics(arm, args):
    r = attention_logits(arm, seed=0, quick=True, **args)
    assert set(METRICS) <= set(r.metrics)
    assert all(math.isfinite(v) for v in r.metrics.values())
    assert r.metrics["diverged"] == 0.0
    assert 0.0 < r.metrics["final_loss"] <= r.metrics["initial_loss"]
    assert len(r.curves["max_attention_logit"]) == 2 and len(r.curves["cpu_seconds"]) == 2
    if arm is not None and not arm.get("affine"):
        assert r.metrics["max_attention_logit"] <= math.sqrt(8) + 1e-4


def test_a_diverged_run_scores_its_initial_loss():
    r = attention_logits(None, seed=0, quick=True, lr=1e8)
    assert r.metrics["diverged"] in (0.0, 1.0)
    assert all(v == v for v in r.metrics.values())
    if r.metrics["diverged"]:
        assert r.metrics["final_loss"] == r.metrics["initial_loss"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="attention_logits takes a module arm"):
        attention_logits({"name": "l2"}, seed=0, quick=True)
    with pytest.raises(ValueError, match="heads must divide"):
        attention_logits(None, seed=0, quick=True, heads=5)


def test_qk_norm_claims_run_on_this_task_against_plain_and_warm_up():
    refs = collect_claims(["qk_norm"])
    assert not check_claims(refs)
    assert {(r.claim.metric, r.claim.role, r.claim.direction) for r in refs} == {
        ("max_attention_logit", "mechanism", "lower"), ("final_loss", "outcome", "lower"),
    }
    for ref in refs:
        c = ref.claim
        assert c.task == "attention_logits" and c.min_effect and c.min_effect_reason and c.settings
        assert "Wortsman" in c.source
        labels = [b.label for b in c.compared_with]
        assert any(b.arm is None and not b.task_args for b in c.compared_with), labels
        assert any(b.task_args.get("warmup") for b in c.compared_with) and all(b.why for b in c.baselines[1:])
    assert [c for c in reglab.QKNorm.claims if not c.testable][0].untestable_reason
