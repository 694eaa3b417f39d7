"""Claims declare what the lab needs to judge them, and refuse what it cannot."""

import pytest

from reglab.core.paper import Baseline, Claim, Paper


def test_claim_defaults_and_compared_with():
    c = Claim("s", "task", "m", "higher", min_effect=0.01)
    assert c.kind == "superiority" and c.role == "outcome" and c.datasets == ("digits",)
    (b,) = c.compared_with
    assert b.label == "no regularizer" and b.arm is None and b.metric is None
    both = Claim("s", "task", "m", "higher", baselines=(Baseline("plain"), Baseline("ls", {"name": "label_smoothing"})))
    assert [x.label for x in both.compared_with] == ["plain", "ls"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"direction": "up"}, "direction"),
        ({"kind": "equivalence"}, "kind"),
        ({"role": "side effect"}, "role"),
        ({"min_effect": 0.0}, "min_effect"),
        ({"min_effect": -1}, "min_effect"),
        ({"datasets": ()}, "datasets"),
        ({"datasets": "digits"}, "datasets"),
    ],
)
def test_claim_rejects_what_the_lab_cannot_judge(kwargs, match):
    base = {"statement": "s", "task": "t", "metric": "m", "direction": "higher"}
    with pytest.raises(ValueError, match=match):
        Claim(**{**base, **kwargs})
    with pytest.raises(TypeError, match="Baseline"):
        Claim(**base, baselines=({"label": "plain"},))


def test_short_cite():
    assert Paper("T", "Adrien Bardes, Jean Ponce and Yann LeCun", 2022).short_cite() == "Bardes et al. 2022"
    assert Paper("T", "Hiroshi Inoue", 2019).short_cite() == "Inoue 2019"
