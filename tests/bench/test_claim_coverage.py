"""Every registered name states what its paper claims (issue: every regularizer states its claim).

A name may declare a testable claim (outcome or mechanism) or a claim with
``testable=False`` and the reason. ``NO_CLAIM_YET`` is the shrinking list of
names registered before this rule whose claims are still to be written: a
newly registered name without a claim fails here, and so does a listed name
that has gained one (take it off the list).
"""

from __future__ import annotations

import pytest

import reglab
from reglab.bench.suite import collect_claims, untestable_claims
from reglab.core.paper import Claim
from reglab.core.registry import get, list_regularizers

NO_CLAIM_YET: frozenset[str] = frozenset()  # every name registered before this rule now has one


def test_every_new_name_declares_a_claim():
    missing = sorted(n for n in list_regularizers() if not getattr(get(n), "claims", ()) and n not in NO_CLAIM_YET)
    assert not missing, f"registered without a lab claim (declare one, or testable=False with the reason): {missing}"


def test_the_no_claim_list_only_shrinks():
    stale = sorted(n for n in NO_CLAIM_YET if n in list_regularizers() and getattr(get(n), "claims", ()))
    assert not stale, f"these now declare claims; remove them from NO_CLAIM_YET: {stale}"
    unknown = sorted(NO_CLAIM_YET - set(list_regularizers()))
    assert not unknown, f"NO_CLAIM_YET names that are not registered: {unknown}"


def test_every_claim_has_a_role_and_every_outcome_claim_a_baseline_beyond_none():
    for ref in collect_claims():
        assert ref.claim.role in ("outcome", "mechanism")
        assert ref.claim.min_effect is not None, ref.id


def test_every_non_inferiority_claim_declares_a_negative_control():
    """A non-inferiority test that a do-nothing arm also passes shows nothing: each such claim names an
    arm that should fail it (the suite runs it through the same test and calls the claim uninformative
    when it passes)."""
    from reglab.core.paper import Baseline

    missing = [r.id for r in collect_claims() if r.claim.kind == "non-inferiority" and r.claim.control is None]
    assert not missing, f"non-inferiority claims without Claim.control (an arm that should fail the test): {missing}"
    for r in collect_claims():
        if r.claim.control is not None:
            assert isinstance(r.claim.control, Baseline) and r.claim.control.label and r.claim.control.why, r.id
    with pytest.raises(ValueError, match="control is for non-inferiority"):
        Claim("s", "t", "m", min_effect=0.1, control=Baseline("none"))


def test_tuning_is_recorded_and_one_sided_tuning_is_named():
    from reglab.core.paper import Tuned, Tuning

    assert Claim("s", "t", "m").tuning.describe() == "neither the arm nor the baselines tuned"
    one = Tuning(arm=Tuned("weight", (0.1, 0.3, 1.0), 0.3, "digits seeds 0-4, pruned50_accuracy"))
    assert one.one_sided and "weight = 0.3 picked from {0.1, 0.3, 1.0}" in one.describe()
    assert "one-sided" in one.describe()
    both = Tuning(arm=one.arm, baselines=(("L2", Tuned("weight", (5e-4, 5e-3), 5e-3, "the same seeds")),))
    assert not both.one_sided and "L2: weight = 0.005" in both.describe()
    with pytest.raises(TypeError, match="Tuning"):
        Claim("s", "t", "m", tuning="neither")
    with pytest.raises(ValueError, match="does not have"):
        Claim("s", "t", "m", tuning=both)


def test_an_arm_tuned_on_development_seeds_gives_its_baselines_the_same_chance():
    """Equal tuning: a claim whose arm was tuned either tunes a baseline too or has only baselines
    without a regularizer (nothing to tune)."""
    one_sided = [
        r.id for r in collect_claims() if r.claim.tuning.one_sided
        and any(b.arm is not None for b in r.claim.compared_with)
    ]
    assert not one_sided, f"arm tuned, regularized baselines not: {one_sided}"
    assert any(r.claim.tuning.arm is not None for r in collect_claims())


def test_untestable_claim_needs_a_reason_and_is_never_run(monkeypatch):
    with pytest.raises(ValueError, match="untestable_reason"):
        Claim("needs ImageNet", testable=False)
    with pytest.raises(ValueError, match="task= and metric="):
        Claim("a testable claim without a task")
    claim = Claim("ImageNet top-1 improves", testable=False, untestable_reason="needs ImageNet-scale training")
    monkeypatch.setattr(reglab.L2, "claims", (claim,))
    assert all(r.regularizer != "l2" for r in collect_claims())
    assert [(r.regularizer, r.claim.untestable_reason) for r in untestable_claims(["l2"])] == [
        ("l2", "needs ImageNet-scale training")
    ]
    with pytest.raises(ValueError, match="cannot test at its scale: needs ImageNet"):
        collect_claims(["l2"])
    assert "not testable at the lab's scale: needs ImageNet-scale training" in str(reglab.info("l2"))


def test_readme_verdict_column_reads_the_labs_verdicts_file(tmp_path):
    import json

    from reglab.docs import START, END, render

    path = tmp_path / "verdicts.json"
    path.write_text(json.dumps({"seeds": list(range(200, 220)), "quick": False, "regularizers": {
        "elr": {"verdicts": [{"claim": "elr#0", "dataset": "digits", "verdict": "reproduced", "stable": True},
                             {"claim": "elr#0", "dataset": "mnist1d", "verdict": "worse", "stable": True},
                             {"claim": "elr#1", "dataset": "digits", "verdict": "uninformative", "stable": False}],
                "untestable": [{"claim": "elr#1", "reason": "needs Clothing1M"}]}}}))  # fmt: skip
    text = render(f"x\n{START}\n{END}\ny", path)
    row = next(line for line in text.splitlines() if line.startswith("| `elr`"))
    assert row.endswith("| 1 reproduced, 1 uninformative, 1 worse; 2 of 3 stable; 1 claim(s) not testable here |")
    assert "| lab verdicts (toy scale) |" in text and "(seeds 200–219), at toy scale" in text
    assert "| `l2` |" in text and "no claim yet" in next(line for line in text.splitlines() if line.startswith("| `l2`"))
