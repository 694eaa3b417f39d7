"""`reglab info` shows required arguments; `reglab list` finds the default results folder."""

import os

from reglab.cli import main


def test_info_shows_required_arguments(capsys):
    assert main(["info", "elr"]) == 0
    out = capsys.readouterr().out
    assert "required: num_samples, num_classes" in out


def test_list_reads_the_default_results_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    os.makedirs("reglab-bench")
    with open("reglab-bench/results.jsonl", "w") as f:
        f.write("")
    import reglab.cli as cli

    seen = []
    monkeypatch.setattr(cli, "_verdicts", lambda path, names: seen.append(path) or {})
    assert main(["list"]) == 0 and seen == ["reglab-bench"]
    os.remove("reglab-bench/results.jsonl")
    assert main(["list"]) == 0 and seen[-1] is None
