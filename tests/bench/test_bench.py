"""The lab: verdict logic, the results store, resume after SIGKILL, the CLI end to end."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import reglab

pytest.importorskip("scipy")
from scipy import stats  # noqa: E402

from reglab.bench.runner import ResultStore, RunSpec, run_all  # noqa: E402
from reglab.bench.verdict import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, paired_comparison  # noqa: E402
from reglab.cli import main  # noqa: E402
from reglab.core.paper import Claim  # noqa: E402

# ------------------------------------------------------------------ verdicts


def test_verdict_reproduced_and_not_reproduced_by_direction():
    arm, base = [0.91, 0.93, 0.92, 0.95], [0.90, 0.90, 0.91, 0.92]
    assert paired_comparison(arm, base, "higher").verdict == REPRODUCED
    assert paired_comparison(arm, base, "lower").verdict == NOT_REPRODUCED
    assert paired_comparison(base, arm, "lower").verdict == REPRODUCED


def test_verdict_matches_textbook_paired_t():
    arm, base = [0.81, 0.85, 0.80, 0.86, 0.83], [0.80, 0.82, 0.81, 0.83, 0.80]
    r = paired_comparison(arm, base, "higher")
    d = [a - b for a, b in zip(arm, base)]
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    lo, hi = stats.t.interval(0.95, len(d) - 1, loc=mean, scale=sd / math.sqrt(len(d)))
    assert r.effect == pytest.approx(mean)
    assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi))
    assert r.p_value == pytest.approx(stats.ttest_rel(arm, base).pvalue)
    assert r.baseline_mean == pytest.approx(sum(base) / 5) and r.arm_mean == pytest.approx(sum(arm) / 5)
    assert r.verdict == (REPRODUCED if lo > 0 else INCONCLUSIVE)


def test_verdict_interval_containing_zero_is_inconclusive():
    r = paired_comparison([0.9, 0.8, 0.95], [0.85, 0.85, 0.85], "higher")
    assert r.ci_low < 0 < r.ci_high and r.verdict == INCONCLUSIVE


def test_verdict_one_seed_and_no_seed_are_inconclusive_without_interval():
    r = paired_comparison([0.99], [0.5], "higher")
    assert r.verdict == INCONCLUSIVE and r.n == 1 and math.isnan(r.ci_low) and r.effect == pytest.approx(0.49)
    assert paired_comparison([], [], "lower").verdict == INCONCLUSIVE


def test_verdict_constant_differences_and_nan():
    r = paired_comparison([1.0, 2.0, 3.0], [0.5, 1.5, 2.5], "higher")
    assert r.verdict == REPRODUCED and r.ci_low == r.ci_high == pytest.approx(0.5) and r.p_value == 0.0
    assert paired_comparison([1.0, 2.0], [1.0, 2.0], "higher").verdict == INCONCLUSIVE
    assert paired_comparison([1.0, float("nan")], [0.0, 0.0], "higher").verdict == INCONCLUSIVE
    with pytest.raises(ValueError):
        paired_comparison([1.0], [1.0, 2.0], "higher")


# ------------------------------------------------------------- results store


def test_run_keys_identify_task_args_arm_seed_quick():
    a = RunSpec("t", {"noise": 0.4}, {"name": "elr"}, 0, False)
    assert a.key == RunSpec("t", {"noise": 0.4}, {"name": "elr"}, 0, False).key
    others = [
        RunSpec("t", {"noise": 0.2}, {"name": "elr"}, 0, False),
        RunSpec("t", {"noise": 0.4}, None, 0, False),
        RunSpec("t", {"noise": 0.4}, {"name": "elr"}, 1, False),
        RunSpec("t", {"noise": 0.4}, {"name": "elr"}, 0, True),
        RunSpec("u", {"noise": 0.4}, {"name": "elr"}, 0, False),
    ]
    assert len({a.key, *(o.key for o in others)}) == 6


def _record(key: str, seed: int = 0) -> dict:
    return {"key": key, "task": "t", "seed": seed, "metrics": {"m": 1.0}, "status": "ok"}


def test_store_skips_corrupted_lines_with_warning_and_never_rewrites(tmp_path):
    path = tmp_path / "results.jsonl"
    good = json.dumps(_record("a")) + "\n"
    torn = '{"key": "b", "task": "t", "se'  # a write cut by a kill: no newline
    path.write_text(good + "not json\n" + json.dumps({"key": "c"}) + "\n" + torn)
    before = path.read_bytes()
    with pytest.warns(RuntimeWarning, match="3 corrupted line"):
        store = ResultStore(path).load()
    assert list(store.records) == ["a"] and store.bad_lines == [2, 3, 4]
    assert path.read_bytes() == before
    store.append(_record("d"))
    assert path.read_bytes().startswith(before)  # appended, never rewritten
    with pytest.warns(RuntimeWarning):
        reloaded = ResultStore(path).load()
    assert sorted(reloaded.records) == ["a", "d"]  # the new line is not glued to the torn one


# ------------------------------------------------------------ resume after kill

FAKE_TASKS = '''
import os, time
from reglab.bench.tasks import TaskResult, TaskUnavailable, task

@task("fake_sleep")
def fake_sleep(arm, *, seed, quick=False, delay=0.25):
    with open(os.environ["FAKE_LOG"], "a") as f:
        f.write(f"{(arm or {}).get('name', 'base')}-{seed}\\n")
    time.sleep(delay)
    return TaskResult({"score": seed + (1.0 if arm else 0.0)}, {"curve": [0.1, 0.2]}, 0.01, delay)

@task("fake_unavailable")
def fake_unavailable(arm, *, seed, quick=False):
    raise TaskUnavailable("needs an extra that is not installed")
'''

DRIVER = '''
import sys
import fake_lab_tasks  # registers the fake tasks
from reglab.bench.runner import ResultStore, RunSpec, run_all
if __name__ == "__main__":  # spawned workers re-import this file
    specs = [RunSpec("fake_sleep", {}, arm, seed) for seed in range(4) for arm in (None, {"name": "l2"})]
    run_all(specs, ResultStore(sys.argv[1]).load(), jobs=int(sys.argv[2]))
'''


def test_runner_resumes_after_sigkill_without_repeating_or_losing_runs(tmp_path):
    (tmp_path / "fake_lab_tasks.py").write_text(FAKE_TASKS)
    (tmp_path / "driver.py").write_text(DRIVER)
    results, log = tmp_path / "results.jsonl", tmp_path / "started.log"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "FAKE_LOG": str(log)}
    cmd = [sys.executable, str(tmp_path / "driver.py"), str(results)]
    proc = subprocess.Popen(cmd + ["1"], env=env)
    deadline = time.time() + 60
    while time.time() < deadline and (not results.exists() or results.read_text().count("\n") < 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = [json.loads(x)["key"] for x in results.read_text().splitlines()]
    assert 2 <= len(first) < 8, "the kill must land mid-suite"
    started_first = log.read_text().split()

    subprocess.run(cmd + ["2"], env=env, check=True, timeout=120)  # resume in 2 worker processes
    keys = [json.loads(x)["key"] for x in results.read_text().splitlines()]
    specs = [RunSpec("fake_sleep", {}, arm, s) for s in range(4) for arm in (None, {"name": "l2"})]
    assert sorted(keys) == sorted(s.key for s in specs)  # every run exactly once
    started_second = log.read_text().split()[len(started_first):]
    first_recs = [json.loads(x) for x in results.read_text().splitlines()[: len(first)]]
    done_first = {f"{(r['arm'] or {}).get('name', 'base')}-{r['seed']}" for r in first_recs}
    assert not done_first & set(started_second), "a finished run was repeated"
    assert len(started_second) == 8 - len(first)


def test_unavailable_task_is_skipped_not_stored(tmp_path, monkeypatch):
    from reglab.bench.tasks import TASKS, TaskUnavailable, task

    @task("fake_unavailable_inproc")
    def _fake(arm, *, seed, quick=False):
        raise TaskUnavailable("needs the text extra")

    try:
        store = ResultStore(tmp_path / "r.jsonl").load()
        failed = run_all([RunSpec("fake_unavailable_inproc", {}, None, 0), RunSpec("no_such_task", {}, None, 0)], store)
        assert [r["status"] for r in failed] == ["skipped", "skipped"]
        assert "text extra" in failed[0]["error"] and "unknown lab task" in failed[1]["error"]
        assert not (tmp_path / "r.jsonl").exists()
    finally:
        TASKS.pop("fake_unavailable_inproc", None)


# ----------------------------------------------------------------------- CLI


def test_bench_unknown_name_suggests_close_names(tmp_path, capsys):
    assert main(["bench", "--quick", "--only", "elrr", "--out", str(tmp_path)]) == 2
    assert "did you mean 'elr'" in capsys.readouterr().err
    assert main(["bench", "--quick", "--only", "center", "--out", str(tmp_path)]) == 2
    assert "no lab claims" in capsys.readouterr().err


def test_bench_unwritable_out_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["bench", "--quick", "--only", "elr", "--out", str(blocker / "sub")]) == 2
    assert "cannot write to --out" in capsys.readouterr().err


@pytest.fixture
def lab_claims(monkeypatch):
    """Claims on my own tasks, declared on classic regularizers for the duration of a test."""
    import reglab

    monkeypatch.setattr(reglab.L2, "claims", (Claim("test claim", "clean_classification", "test_accuracy", "higher"),))
    monkeypatch.setattr(
        reglab.L1,
        "claims",
        (Claim("test claim", "structured_sparsity", "zero_filter_fraction", "higher", arm={"weight": 1.0}),),
    )


def test_bench_quick_end_to_end_on_own_tasks_and_rerun_skips(tmp_path, capsys, lab_claims):
    out = tmp_path / "bench"
    args = ["bench", "--quick", "--only", "l2,l1", "--out", str(out), "--jobs", "1"]
    assert main(args) == 0
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 8  # 2 claims × (arm + baseline) × 2 seeds
    rec = json.loads(lines[0])
    assert {"metrics", "curves", "step_seconds", "seconds", "versions", "timestamp"} <= set(rec)
    md = (out / "report.md").read_text()
    assert "paired t-test" in md and "| regularizer | paper | claim |" in md
    assert md.count("| l2 |") == 1 and md.count("| l1(weight=1.0) |") == 1
    assert (out / "plots" / "structured-sparsity__accuracy-vs-sparsity.png").stat().st_size > 1000
    assert "<table>" in (out / "report.html").read_text()
    capsys.readouterr()
    with open(out / "results.jsonl", "a") as f:
        f.write("{corrupted\n")
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "0 run(s) to do, 8 already" in captured.out and "corrupted" in captured.err
    assert (out / "results.jsonl").read_text().splitlines()[:8] == lines


def test_list_and_info_show_claims_and_verdicts(tmp_path, capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["name", "kind", "paper"] and "elr" in out
    results = tmp_path / "results.jsonl"
    results.write_text("")
    assert main(["info", "elr", "--results", str(results)]) == 0
    assert "claim:" in capsys.readouterr().out
    assert main(["info", "elrr"]) == 2


def test_cli_quick_subprocess_real_claims(tmp_path):
    """The CI smoke: `reglab bench --quick` on one real claim set, in a fresh process."""
    out = tmp_path / "b"
    proc = subprocess.run(
        [sys.executable, "-m", "reglab.cli", "bench", "--quick", "--only", "elr", "--out", str(out), "--jobs", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "report:" in proc.stdout and (out / "report.html").exists()
    # one baseline and one ELR run per distinct task setting of ELR's claims, per quick seed
    from reglab.bench.cli import QUICK_SEEDS

    settings = {tuple(sorted(c.task_args.items())) for c in reglab.info("elr").claims}
    assert len((out / "results.jsonl").read_text().splitlines()) == 2 * len(settings) * QUICK_SEEDS
