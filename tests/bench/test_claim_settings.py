"""Claims are tested where they can fail: non-inferiority claims carry a negative control, the representation
claims run where the invariance-only baseline is partially (not totally) collapsed, KoLeo's retrieval claim
uses codes that cost something."""

from __future__ import annotations

import pytest

from reglab.bench.suite import collect_claims
from reglab.core.paper import PARTIAL_COLLAPSE, Baseline, Claim


def test_every_non_inferiority_claim_declares_a_control_that_differs_from_its_baselines():
    refs = [r for r in collect_claims() if r.claim.testable and r.claim.kind == "non-inferiority"]
    assert refs
    for ref in refs:
        c = ref.claim
        assert isinstance(c.control, Baseline), f"{ref.id}: a non-inferiority claim needs control=Baseline(...)"
        assert c.control.why.strip(), f"{ref.id}: say why the control should fail"
        for b in c.compared_with:
            same = (b.arm, b.task_args, b.metric) == (c.control.arm, c.control.task_args, c.control.metric)
            assert not same, f"{ref.id}: the control {c.control.label!r} is the baseline {b.label!r} itself"


def test_a_control_must_be_a_baseline():
    with pytest.raises(TypeError, match="control"):
        Claim("x", task="clean_classification", metric="test_accuracy", control={"name": "l2"})


@pytest.mark.parametrize("name", ["vne", "ldreg", "effective_rank", "mhe_features", "t_regs"])
def test_representation_claims_run_at_partial_collapse(name):
    from reglab.core.registry import get

    claims = [c for c in get(name).claims if c.testable]
    assert claims and all(c.task == "ssl_collapse" and c.task_args == PARTIAL_COLLAPSE for c in claims)
    assert all("10 epochs" in c.settings for c in claims if c.settings != "as above")


def test_invariance_only_is_partially_collapsed_in_that_setting():
    """The setting the representation claims use leaves the baseline between the floor (1) and full rank (32)."""
    from reglab.bench.tasks import get_task

    r = get_task("ssl_collapse")(None, seed=0, **PARTIAL_COLLAPSE)
    assert 3.0 < r.metrics["effective_rank"] < 25.0
    assert len(r.curves["effective_rank"]) == PARTIAL_COLLAPSE["epochs"]


def test_koleo_retrieval_claim_uses_binary_codes_against_uniformity():
    from reglab.core.registry import get

    (claim,) = [c for c in get("koleo").claims if c.metric.startswith("recall")]
    assert claim.metric == "recall_binary"
    assert {b.label for b in claim.baselines} >= {"VICReg alone", "VICReg + uniformity (Wang & Isola, t=2, λ=1)"}
