"""`reglab info` shows required arguments; `reglab list` finds the default results folder."""

import os

from reglab.cli import main


def test_info_shows_required_arguments(capsys):
    assert main(["info", "elr"]) == 0
    out = capsys.readouterr().out
    assert "required: num_samples, num_classes" in out


def test_list_reads_the_default_results_folder_when_it_holds_full_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    os.makedirs("reglab-bench")
    with open("reglab-bench/results.jsonl", "w") as f:
        f.write('{"seed": 3, "quick": false}\n{"seed": 4, "quick": false}\n')
    import reglab.bench.cli as bench_cli

    seen = []
    monkeypatch.setattr(bench_cli, "verdicts_from", lambda path, names, **_: seen.append(path) or {})
    assert main(["list"]) == 0 and seen == [os.path.join("reglab-bench", "results.jsonl")]
    assert "verdicts: from reglab-bench/results.jsonl (seeds 3, 4 full)" in capsys.readouterr().out
