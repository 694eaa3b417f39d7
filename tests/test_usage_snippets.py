"""Every registered name has a usage snippet that runs (issue 26, item 10)."""

import contextlib
import io

import pytest
import torch

import reglab
from reglab.cli import main
from reglab.usage import FORM_USAGE, usage_snippet


@pytest.mark.parametrize("name", reglab.list_regularizers())
def test_every_snippet_runs(name):
    code = usage_snippet(name)
    torch.manual_seed(0)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, f"<usage of {name}>", "exec"), {"__name__": "__usage__"})


def test_reglab_info_prints_the_snippet(capsys):
    assert main(["info", "label_smoothing"]) == 0
    out = capsys.readouterr().out
    assert "usage:" in out and 'reglab.create("label_smoothing")' in out


def test_every_form_has_a_usage_line():
    forms = {getattr(reglab.core.registry.get(n), "form", "penalty") for n in reglab.list_regularizers()}
    assert forms <= set(FORM_USAGE)


def test_attaching_a_non_penalty_names_its_form_and_how_to_use_it():
    model = torch.nn.Linear(4, 2)
    with pytest.raises(TypeError, match=r"LabelSmoothing is a 'target' regularizer, not a penalty.*targets.*reglab info label_smoothing"):
        reglab.attach(model, [reglab.create("label_smoothing")])
    with pytest.raises(TypeError, match=r"'optimizer' regularizer.*wraps the optimizer"):
        reglab.attach(model, [reglab.create("sam", params=model.parameters())])
    with pytest.raises(TypeError, match=r"takes reglab regularizers or bindings, got 3"):
        reglab.attach(model, [3])
