"""`reglab list` shows the committed lab run anywhere, and says which results it shows (issue 26, item 4)."""

import json
import os
from pathlib import Path

import reglab.docs
from reglab.bench.shipped import shipped_verdicts_path
from reglab.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_the_packaged_verdicts_equal_the_committed_lab_run():
    # refresh with `python -m reglab.docs README.md` after a lab run that rewrote docs/bench/verdicts.json
    shipped = shipped_verdicts_path()
    assert shipped.read_bytes() == (ROOT / "docs" / "bench" / "verdicts.json").read_bytes()
    assert "data/verdicts.json" in (ROOT / "pyproject.toml").read_text()  # shipped in the wheel


def _row(out, name):
    return next(line for line in out.splitlines() if line.startswith(name + " "))


def test_list_outside_a_bench_folder_shows_the_shipped_verdicts(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    doc = json.loads(shipped_verdicts_path().read_text())
    first = doc["regularizers"]["elr"]["verdicts"][0]
    assert f"{first['verdict']} on {first['dataset']}" in _row(out, "elr")
    assert not _row(out, "elr").rstrip().endswith("–")
    assert "verdicts: the lab run shipped with reglab" in out and "full runs" in out
    assert "seeds " in out.splitlines()[-1]


def test_a_quick_smoke_run_does_not_silently_replace_the_shipped_verdicts(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    os.makedirs("reglab-bench")
    Path("reglab-bench/results.jsonl").write_text('{"seed": 0, "quick": true}\n{"seed": 1, "quick": true}\n')
    assert main(["list"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert "the lab run shipped with reglab" in last
    assert "holds no full runs" in last and "--results reglab-bench" in last


def test_a_verdicts_file_is_read_generically(tmp_path, capsys):
    # outcomes and keys the lab may add later ("worse", "blocks") are shown or ignored, never an error
    doc = {
        "seeds": [7], "quick": True, "blocks": {"x": 1},
        "regularizers": {"l2": {"verdicts": [
            {"claim": "l2#1", "dataset": "digits", "verdict": "worse", "block": "b1"},
            {"claim": "l2#1", "dataset": "mnist1d", "verdict": "uninformative"},
            {"claim": "l1#1", "verdict": "reproduced"},  # another name's claim: not l2's
        ], "untestable": [], "new_key": []}},
    }  # fmt: skip
    path = tmp_path / "verdicts.json"
    path.write_text(json.dumps(doc))
    assert main(["info", "l2", "--results", str(path)]) == 0
    out = capsys.readouterr().out
    assert "worse on digits, uninformative on mnist1d (quick)" in out
    assert f"from {path} (seeds 7, quick smoke run)" in out


def test_python_m_reglab_docs_refreshes_the_packaged_copy(tmp_path, monkeypatch):
    (tmp_path / "docs" / "bench").mkdir(parents=True)
    (tmp_path / "docs" / "bench" / "verdicts.json").write_text('{"seeds": [1], "quick": false, "regularizers": {}}')
    readme = tmp_path / "README.md"
    readme.write_text(f"x\n{reglab.docs.START}\n{reglab.docs.END}\n")
    copy = tmp_path / "copy.json"
    monkeypatch.setattr(reglab.docs, "SHIPPED_COPY", copy)
    assert reglab.docs.main([str(readme)]) == 0
    assert copy.read_text() == (tmp_path / "docs" / "bench" / "verdicts.json").read_text()
