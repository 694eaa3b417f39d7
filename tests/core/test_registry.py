"""Generic checks over every registered class: metadata, config round-trip, state."""

import pytest
import torch
from torch import nn

import reglab
from reglab.core.paper import Paper
from reglab.core.registry import FORMS, KINDS, get

ALL = reglab.list_regularizers()


def runtime_args(cls):
    values = {
        "params": lambda: [nn.Parameter(torch.randn(3, 4))],
        "module": lambda: nn.Linear(4, 3),
        "base_optimizer": lambda: torch.optim.SGD,
    }
    unknown = set(cls._runtime_args) - set(values)
    assert not unknown, f"{cls.__name__} uses runtime args {unknown}; allowed: {sorted(values)}"
    return {k: values[k]() for k in cls._runtime_args}


def build(name):
    cls = get(name)
    return cls(**getattr(cls, "example_args", {}), **runtime_args(cls))


def test_every_kind_is_populated():
    for kind in KINDS:
        assert reglab.list_regularizers(kind), f"no regularizer of kind {kind!r}"


@pytest.mark.parametrize("name", ALL)
def test_metadata(name):
    cls = get(name)
    assert cls.kind in KINDS and cls.form in FORMS
    assert cls.__doc__ and len(cls.__doc__.strip()) > 20, f"{name} needs a docstring with its formula"
    assert cls.formula, f"{name} needs a one-line formula"
    if cls.paper is not None:
        assert isinstance(cls.paper, Paper)
        assert cls.paper.arxiv or cls.paper.doi, f"{name}'s paper needs an arXiv id or DOI"
        assert cls.paper.year > 1950 and cls.paper.authors and cls.paper.title
    info = reglab.info(name)
    assert info.name == name and name in str(info)


@pytest.mark.parametrize("name", ALL)
def test_config_round_trip(name):
    obj = build(name)
    cfg = obj.get_config()
    assert cfg["name"] == name
    again = reglab.from_config(cfg, **runtime_args(type(obj)))
    assert type(again) is type(obj)
    assert again.get_config() == cfg


@pytest.mark.parametrize("name", ALL)
def test_state_dict_round_trip(name):
    obj = build(name)
    if not isinstance(obj, nn.Module):
        pytest.skip("not an nn.Module")
    state = obj.state_dict()
    fresh = build(name)
    fresh.load_state_dict(state)
    for key, value in fresh.state_dict().items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, state[key]), key
        else:
            assert value == state[key], key


def test_create_passes_arguments():
    reg = reglab.create("l2", weight=3e-4)
    assert isinstance(reg, reglab.L2) and reg.current_weight == pytest.approx(3e-4)


def test_unknown_name_suggests_close_names():
    with pytest.raises(reglab.UnknownRegularizerError, match="did you mean 'l2'") as err:
        reglab.create("l22")
    assert isinstance(err.value, KeyError) and isinstance(err.value, ValueError)


def test_names_are_normalized():
    assert get("L2") is get("l2")


def test_list_by_kind():
    assert set(reglab.list_regularizers("weight")) >= {"l1", "l2"}
    assert all(get(n).kind == "weight" for n in reglab.list_regularizers("weight"))
    with pytest.raises(ValueError, match="unknown kind"):
        reglab.list_regularizers("weights")


def test_from_config_rejects_garbage():
    with pytest.raises(ValueError, match="name"):
        reglab.from_config({"weight": 1.0})


def test_register_validates_metadata():
    from reglab.core.registry import register

    class NoKind(reglab.Regularizer):
        name = "test_no_kind"

    with pytest.raises(TypeError, match="kind"):
        register(NoKind)

    class Dup(reglab.Regularizer):
        name = "l2"
        kind = "weight"

    with pytest.raises(ValueError, match="taken"):
        register(Dup)
