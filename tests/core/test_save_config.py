"""save_config never destroys an existing file (issue 26, item 2)."""

import json
import sys

import pytest
from torch import nn

import reglab


def _regs():
    return reglab.attach(nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)), [reglab.L2(1e-4)])


def test_missing_pyyaml_leaves_an_existing_yaml_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "regularizers.yaml"
    path.write_text("bindings: []  # hand-edited\n")
    monkeypatch.setitem(sys.modules, "yaml", None)  # `import yaml` raises ImportError
    with pytest.raises(ImportError, match="PyYAML"):
        reglab.save_config(_regs(), path)
    assert path.read_text() == "bindings: []  # hand-edited\n"
    assert [p.name for p in tmp_path.iterdir()] == ["regularizers.yaml"]  # no temporary file left behind


def test_unserializable_config_leaves_an_existing_file_intact(tmp_path):
    path = tmp_path / "regs.json"
    path.write_text('{"keep": 1}')
    net = nn.Linear(3, 4)
    regs = reglab.attach(net, [reglab.L2().on(where=lambda n, p, m: True)])
    with pytest.raises(ValueError, match="callable"):
        reglab.save_config(regs, path)
    assert json.loads(path.read_text()) == {"keep": 1}


def test_save_config_replaces_the_file_atomically(tmp_path):
    path = tmp_path / "regs.json"
    path.write_text("old")
    reglab.save_config(_regs(), path)
    assert json.loads(path.read_text())["bindings"][0]["regularizer"]["name"] == "l2"
    assert [p.name for p in tmp_path.iterdir()] == ["regs.json"]
