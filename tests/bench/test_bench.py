"""The lab: results store (keys, digests, resume after SIGKILL, no orphan workers),
the suite (baselines, datasets, Holm, equal-CPU-time), data splits, and the CLI end to end."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import reglab

pytest.importorskip("scipy")

from reglab.bench import runner  # noqa: E402
from reglab.bench.cli import parse_blocks, parse_seeds  # noqa: E402
from reglab.bench.runner import ResultStore, RunSpec, record_digest, run_all  # noqa: E402
from reglab.bench.suite import (  # noqa: E402
    ClaimRef,
    check_claims,
    collect_claims,
    equal_cpu_time_values,
    evaluate,
    holds_everywhere,
    specs_for,
)
from reglab.bench.verdict import (  # noqa: E402
    INCONCLUSIVE, NO_EFFECT, NOT_REPRODUCED, NOT_RUN, REPRODUCED, UNINFORMATIVE, WORSE,
)  # fmt: skip
from reglab.cli import main  # noqa: E402
from reglab.core.paper import Baseline, Claim  # noqa: E402

# ------------------------------------------------------------------ seeds


def test_seeds_count_offset_and_range():
    assert parse_seeds("10", 200, False) == list(range(200, 210))
    assert parse_seeds("200:210", 0, False) == list(range(200, 210))
    assert parse_seeds(None, 0, False) == list(range(10)) and parse_seeds(None, 0, True) == [0, 1]
    assert parse_seeds(None, 300, True) == [300, 301]
    for bad, offset in (("0", 0), ("5:5", 0), ("a:b", 0), ("x", 0), ("200:210", 5), ("3", -1)):
        with pytest.raises(ValueError, match="seed"):
            parse_seeds(bad, offset, False)


def test_blocks_default_two_from_ten_seeds_and_need_five_per_block():
    assert parse_blocks(None, 20) == 2 and parse_blocks(None, 10) == 2 and parse_blocks(None, 9) == 1
    assert parse_blocks("4", 20) == 4 and parse_blocks("1", 2) == 1
    for bad, n in (("0", 20), ("x", 20), ("5", 20), ("3", 2)):
        with pytest.raises(ValueError, match="blocks"):
            parse_blocks(bad, n)
    from reglab.bench.suite import seed_blocks

    assert seed_blocks(range(200, 220), 2) == [tuple(range(200, 210)), tuple(range(210, 220))]
    assert [len(b) for b in seed_blocks(range(11), 2)] == [6, 5]


# ------------------------------------------------------------- results store


def test_run_keys_cover_everything_the_result_depends_on(monkeypatch):
    a = RunSpec("label_noise", {"noise": 0.4}, {"name": "elr"}, 0, False, "digits")
    assert a.key == RunSpec("label_noise", {"noise": 0.4}, {"name": "elr"}, 0, False, "digits").key
    others = [
        RunSpec("label_noise", {"noise": 0.2}, {"name": "elr"}, 0, False, "digits"),
        RunSpec("label_noise", {"noise": 0.4}, None, 0, False, "digits"),
        RunSpec("label_noise", {"noise": 0.4}, {"name": "elr", "weight": 7}, 0, False, "digits"),
        RunSpec("label_noise", {"noise": 0.4}, {"name": "elr"}, 1, False, "digits"),
        RunSpec("label_noise", {"noise": 0.4}, {"name": "elr"}, 0, True, "digits"),
        RunSpec("label_noise", {"noise": 0.4}, {"name": "elr"}, 0, False, "mnist1d"),
        RunSpec("calibration", {"noise": 0.4}, {"name": "elr"}, 0, False, "digits"),
    ]
    assert len({a.key, *(o.key for o in others)}) == 8
    key = a.key
    # another reglab or torch version, or edited code, gives another key: never reused
    monkeypatch.setattr(runner, "key_versions", lambda: {"reglab": "9.9", "torch": "2.13.0"})
    assert a.key != key
    monkeypatch.undo()
    assert a.key == key
    monkeypatch.setitem(runner._FINGERPRINTS, ("label_noise", "elr"), "edited-code")
    assert a.key != key


def test_a_task_reusing_another_tasks_code_reruns_when_that_code_changes(monkeypatch):
    import inspect

    from reglab.bench.experiments import transformer

    spec = RunSpec("positions", {}, None, 200, False, "digits")
    key = spec.key
    real = inspect.getsource

    def edited(obj):
        return real(obj) + "\n# edited\n" if obj is transformer else real(obj)

    monkeypatch.setattr(inspect, "getsource", edited)
    runner._FINGERPRINTS.clear()
    assert spec.key != key  # positions imports its model from the transformer task
    monkeypatch.undo()
    runner._FINGERPRINTS.clear()
    assert spec.key == key


def _record(key: str, seed: int = 0, value: float = 1.0) -> dict:
    return {"key": key, "task": "t", "seed": seed, "metrics": {"m": value}, "status": "ok"}


def test_store_skips_corrupted_and_edited_lines_with_warning_and_never_rewrites(tmp_path):
    path = tmp_path / "results.jsonl"
    store = ResultStore(path).load()
    store.append(_record("a"))
    store.append(_record("e", value=0.5))
    lines = path.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["metrics"]["m"] = 0.99  # a hand edit: the digest no longer matches
    torn = '{"key": "b", "task": "t", "se'  # a write cut by a kill: no newline
    path.write_text(lines[0] + "\n" + json.dumps(edited) + "\nnot json\n" + json.dumps({"key": "c"}) + "\n" + torn)
    before = path.read_bytes()
    with pytest.warns(RuntimeWarning) as caught:
        store = ResultStore(path).load()
    messages = " ".join(str(w.message) for w in caught)
    assert "3 corrupted line" in messages and "does not match their digest" in messages
    assert list(store.records) == ["a"] and store.bad_lines == [3, 4, 5] and store.edited_lines == [2]
    assert path.read_bytes() == before
    store.append(_record("d"))
    assert path.read_bytes().startswith(before)  # appended, never rewritten
    with pytest.warns(RuntimeWarning):
        reloaded = ResultStore(path).load()
    assert sorted(reloaded.records) == ["a", "d"]  # the new line is not glued to the torn one


def test_store_newest_line_of_a_key_wins(tmp_path):
    store = ResultStore(tmp_path / "r.jsonl").load()
    store.append(_record("a", value=1.0))
    store.append(_record("a", value=2.0))  # what --rerun appends
    assert ResultStore(tmp_path / "r.jsonl").load().records["a"]["metrics"]["m"] == 2.0
    rec = ResultStore(tmp_path / "r.jsonl").load().records["a"]
    assert rec["digest"] == record_digest(rec)


# ------------------------------------------------------------ resume after kill
# No test here depends on timing: the fake runs block (until killed) where a test needs a run in
# flight, and the tests wait for events (a line in a file), with a generous hang guard only.

FAKE_TASKS = '''
import os, time
from reglab.bench.tasks import TaskResult, TaskUnavailable, task

@task("fake_sleep")
def fake_sleep(arm, *, seed, quick=False, delay=0.0):
    with open(os.environ["FAKE_LOG"], "a") as f:
        f.write(f"{(arm or {}).get('name', 'base')}-{seed}-{os.getpid()}\\n")
    if seed >= int(os.environ.get("FAKE_BLOCK_FROM_SEED", "1000000")):
        while True:  # a run in flight until the test kills the bench
            time.sleep(3600)
    time.sleep(delay)
    return TaskResult({"score": seed + (1.0 if arm else 0.0)}, {"curve": [0.1, 0.2]}, 0.01, delay, 0.01)
'''

DRIVER = '''
import sys
import fake_lab_tasks  # registers the fake tasks
from reglab.bench.runner import ResultStore, RunSpec, run_all
if __name__ == "__main__":  # spawned workers re-import this file
    specs = [RunSpec("fake_sleep", {}, arm, seed) for seed in range(4) for arm in (None, {"name": "l2"})]
    run_all(specs, ResultStore(sys.argv[1]).load(), jobs=int(sys.argv[2]))
'''


def _driver(tmp_path):
    (tmp_path / "fake_lab_tasks.py").write_text(FAKE_TASKS)
    (tmp_path / "driver.py").write_text(DRIVER)
    log = tmp_path / "started.log"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "FAKE_LOG": str(log)}
    return [sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "results.jsonl")], env, log


def _lines(path) -> list[str]:
    return path.read_text().split("\n")[:-1] if path.exists() else []  # whole lines only


def _wait_until(predicate, what: str, guard: float = 300.0) -> None:
    """Wait for an event; ``guard`` only stops a hang (a generous bound, not a timing assertion)."""
    stop = time.monotonic() + guard
    while not predicate():
        assert time.monotonic() < stop, f"hang guard: waited {guard:g} s for {what}"
        time.sleep(0.05)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_runner_resumes_after_sigkill_without_repeating_or_losing_runs(tmp_path):
    cmd, env, log = _driver(tmp_path)
    results = tmp_path / "results.jsonl"
    # seed 0's two runs finish; the third run (seed 1) blocks, so the kill lands mid-suite
    proc = subprocess.Popen(cmd + ["1"], env={**env, "FAKE_BLOCK_FROM_SEED": "1"})
    try:
        _wait_until(lambda: len(_lines(log)) == 3 or proc.poll() is not None, "the third run to start")
        assert proc.poll() is None, "the bench exited before its blocking run"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            _kill(proc.pid)
        proc.wait()
    first = [json.loads(x)["key"] for x in _lines(results)]
    assert len(first) == 2, "the two finished runs are stored, the one in flight is not"
    started_first = _lines(log)

    subprocess.run(cmd + ["2"], env=env, check=True, timeout=600)  # resume in 2 worker processes (hang guard)
    keys = [json.loads(x)["key"] for x in _lines(results)]
    assert len(keys) == len(set(keys)) == 8  # every run exactly once
    started_second = [s.rsplit("-", 1)[0] for s in _lines(log)[len(started_first):]]
    assert sorted(started_second) == sorted(f"{arm}-{seed}" for seed in (1, 2, 3) for arm in ("base", "l2"))


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigkill_of_the_bench_leaves_no_worker_behind(tmp_path):
    cmd, env, log = _driver(tmp_path)
    proc = subprocess.Popen(cmd + ["2"], env={**env, "FAKE_BLOCK_FROM_SEED": "0"})  # two workers, every run blocks
    workers: set[int] = set()
    try:
        _wait_until(lambda: len(_lines(log)) >= 2 or proc.poll() is not None, "both workers to start a run")
        assert proc.poll() is None, "the bench exited before its blocking runs"
        workers = {int(s.rsplit("-", 1)[1]) for s in _lines(log)}
        assert len(workers) == 2 and all(_alive(p) for p in workers)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # each worker watches its parent and exits when it is gone
        _wait_until(lambda: not any(_alive(p) for p in workers), "the workers of the killed bench to exit")
    finally:
        for pid in [proc.pid] * (proc.poll() is None) + [p for p in workers if _alive(p)]:
            _kill(pid)
        proc.wait()


def test_unavailable_task_is_skipped_not_stored(tmp_path):
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


# ------------------------------------------------------------------ suite


def _claim(**kw) -> Claim:
    base = dict(
        statement="s", task="label_noise", metric="test_accuracy", direction="higher", min_effect=0.01,
        baselines=(Baseline("plain"), Baseline("smoothing", {"name": "label_smoothing"})), datasets=("digits", "mnist1d"),
    )  # fmt: skip
    return Claim(**{**base, **kw})


def _store_for(ref: ClaimRef, seeds, arm_value, base_values) -> dict:
    """Records for every run of ``ref``: metric values from the given functions of (dataset, seed)."""
    records = {}
    for ds in ref.claim.datasets:
        for seed in seeds:
            runs = ref.runs(ds, seed, False)
            values = [arm_value(ds, seed)] + [f(ds, seed) for f in base_values]
            for spec, v in zip(runs, values):
                records[spec.key] = {"key": spec.key, "metrics": {"test_accuracy": v}, "step_cpu_seconds": 1.0 + v}
    return records


def test_evaluate_judges_each_dataset_against_every_baseline_with_holm():
    ref = ClaimRef("elr", _claim(), "Liu et al. 2020")
    seeds = range(12)
    rng = np.random.default_rng(0)
    noise = {(ds, s): rng.normal(0, 0.002) for ds in ("digits", "mnist1d") for s in seeds}
    records = _store_for(
        ref, seeds,
        lambda ds, s: 0.80 + (0.05 if ds == "digits" else 0.0) + noise[ds, s],
        [lambda ds, s: 0.80, lambda ds, s: 0.80 + (0.06 if ds == "digits" else 0.0)],
    )  # fmt: skip
    out = evaluate([ref], records, list(seeds), False)
    assert [(o.dataset, [c.result.verdict for c in o.comparisons]) for o in out] == [
        ("digits", [REPRODUCED, NOT_REPRODUCED]),  # beats plain, loses to the strong alternative
        ("mnist1d", [NO_EFFECT, NO_EFFECT]),
    ]
    assert [o.verdict for o in out] == [NOT_REPRODUCED, NO_EFFECT]  # the weakest against all baselines
    assert out[0].beaten == ["plain"]
    assert all(c.result.p_adjusted >= c.result.p_value for o in out for c in o.comparisons)
    assert out[0].comparisons[0].result.n == 12 and out[0].comparisons[0].seeds == tuple(seeds)
    holds = holds_everywhere(out)
    assert holds[0][1].startswith("no (digits: not reproduced; mnist1d: no effect")


def test_non_inferiority_claim_whose_control_passes_is_uninformative():
    ctl = Baseline("no regularizer at all", why="should fail")
    claim = _claim(kind="non-inferiority", baselines=(Baseline("weight decay", {"name": "l2"}),), control=ctl,
                   datasets=("digits", "mnist1d"))  # fmt: skip
    ref = ClaimRef("norm_loss", claim, "")
    seeds = list(range(10))
    rng = np.random.default_rng(5)
    noise = {(ds, s): rng.normal(0, 0.002) for ds in claim.datasets for s in seeds}
    records = {}
    for ds in claim.datasets:
        for s in seeds:
            arm, base, control = ref.runs(ds, s, False)
            records[arm.key] = {"metrics": {"test_accuracy": 0.90 + noise[ds, s]}}
            records[base.key] = {"metrics": {"test_accuracy": 0.90}}
            # digits: doing nothing is as good (the test cannot fail); mnist1d: the control costs 5 points
            records[control.key] = {"metrics": {"test_accuracy": 0.90 + (0.0 if ds == "digits" else -0.05) - noise[ds, s]}}
    out = evaluate([ref], records, seeds, False)
    assert [o.verdict for o in out] == [UNINFORMATIVE, REPRODUCED]
    (digits,), (mnist,) = (o.comparisons for o in out)
    assert digits.control.verdict == REPRODUCED and "negative control (no regularizer at all) passes" in digits.result.note
    assert mnist.control.verdict == WORSE and mnist.result.verdict == REPRODUCED
    assert mnist.control.p_adjusted == mnist.control.p_value  # the control is judged unadjusted (lenient)
    # the report and verdicts.json show the control
    from reglab.bench.report import control_rows, summary_rows

    rows = control_rows(out)
    assert rows[0][2] == "no regularizer at all" and rows[0][8].startswith("yes") and rows[1][8] == "no (worse)"
    assert "no regularizer at all: passes" in summary_rows(out)[0]


def test_blocks_stable_scale_and_not_run(tmp_path):
    ref = ClaimRef("elr", _claim(baselines=(Baseline("plain"),)), "")
    seeds = list(range(200, 220))
    # digits: +3 points on every seed (stable); mnist1d: +3 points on the first block, +0.8 on the second
    records = _store_for(ref, seeds, lambda ds, s: 0.83 + 0.001 * (s % 3) if ds == "digits" or s < 210
                         else 0.807 + 0.001 * (s % 3), [lambda ds, s: 0.80])  # fmt: skip
    setup = {"data": "digits: train 1005 / val 252 / test 540; 20% noise", "model": "MLP 64-256-10 (ReLU)",
             "training": "Adam lr 1e-3, batch 128, 100 epochs"}  # fmt: skip
    for key in records:
        records[key]["setup"] = setup
    out = evaluate([ref], records, seeds, False, blocks=2)
    assert [o.verdict for o in out] == [REPRODUCED, REPRODUCED]
    assert out[0].blocks == ((tuple(range(200, 210)), REPRODUCED), (tuple(range(210, 220)), REPRODUCED))
    assert out[0].stable is True and out[1].stable is False and out[1].blocks[1][1] == NO_EFFECT
    assert out[0].scale == "digits: train 1005 / val 252 / test 540; MLP 64-256-10 (ReLU); 100 epochs"
    assert evaluate([ref], records, seeds, False)[0].blocks == ()  # one block: nothing to confirm
    from reglab.bench.report import blocks_text, write_verdicts

    assert blocks_text(out[0]) == "200–209: reproduced; 210–219: reproduced: stable"
    doc = json.loads(open(write_verdicts(str(tmp_path), out, seeds=seeds, quick=False, blocks=2)).read())
    cell = doc["regularizers"]["elr"]["verdicts"][0]
    assert doc["blocks"] == [list(range(200, 210)), list(range(210, 220))]
    assert cell["stable"] is True and [b["verdict"] for b in cell["blocks"]] == [REPRODUCED, REPRODUCED]
    assert cell["baselines"][0]["baseline_mean"] == pytest.approx(0.80) and "MLP" in cell["scale"]
    # a comparison whose runs were skipped is "not run (why)", not inconclusive
    key = ref.treated_run("digits", 200, False).key
    skipped = {ref.treated_run("digits", s, False).key: "skipped: needs the text extra" for s in seeds}
    kept = {k: v for k, v in records.items() if k not in skipped}
    o = evaluate([ref], kept, seeds, False, skipped=skipped)[0]
    assert key in skipped and o.verdict == NOT_RUN and o.comparisons[0].result.note == "skipped: needs the text extra"


def test_holm_family_is_the_claim_so_other_claims_never_change_a_verdict():
    seeds = range(10)
    rng = np.random.default_rng(3)
    noise = {(ds, s): rng.normal(0, 0.002) for ds in ("digits", "mnist1d") for s in seeds}
    refs = [ClaimRef(name, _claim(task_args={"noise": 0.1 * (i + 1)}), "", i) for i, name in
            enumerate(["elr", "pskd", "logit_clip", "sam", "cutout", "vicreg", "l2", "l1"])]  # fmt: skip
    records = {}
    for ref in refs:
        records.update(_store_for(ref, seeds, lambda ds, s: 0.85 + noise[ds, s], [lambda ds, s: 0.80] * 2))
    alone = evaluate(refs[:1], records, list(seeds), False)
    together = evaluate(refs, records, list(seeds), False)
    assert [o.verdict for o in alone] == [REPRODUCED, REPRODUCED]  # 4 comparisons: 4 × 2⁻¹⁰ < 0.05
    assert [o.verdict for o in together[:2]] == [o.verdict for o in alone]
    assert [c.result.p_adjusted for c in together[0].comparisons] == [c.result.p_adjusted for c in alone[0].comparisons]


def test_evaluate_drops_unpaired_seeds_and_baseline_metric_override():
    claim = _claim(baselines=(Baseline("temperature scaled", metric="ece_ts"),), datasets=("digits",), metric="ece",
                   direction="lower")  # fmt: skip
    ref = ClaimRef("pskd", claim, "")
    records = {}
    for seed in range(6):
        arm, base = ref.runs("digits", seed, False)
        records[arm.key] = {"metrics": {"ece": 0.02}, "step_cpu_seconds": 2.0}
        if seed != 3:  # the baseline of seed 3 never finished
            records[base.key] = {"metrics": {"ece": 0.5, "ece_ts": 0.05 + 0.001 * seed}, "step_cpu_seconds": 1.0}
    (o,) = evaluate([ref], records, list(range(6)), False)
    r = o.comparisons[0].result
    assert r.n == 5 and o.comparisons[0].seeds == (0, 1, 2, 4, 5)
    assert r.baseline_mean == pytest.approx(np.mean([0.05 + 0.001 * s for s in (0, 1, 2, 4, 5)]))
    assert r.verdict == REPRODUCED and o.comparisons[0].cpu_overhead[0] == pytest.approx(2.0)


def test_claim_paired_over_units_runs_once_and_pairs_unit_by_unit():
    claim = Claim("whitening helps", "sts", "spearman", "higher", min_effect=0.01, min_effect_reason="one point",
                  datasets=("sts",), paired_over="units", task_args={"encoder": "static"})  # fmt: skip
    ref = ClaimRef("whitening", claim, "")
    specs = specs_for([ref], range(200, 212), False)
    assert len(specs) == 2 and {s.seed for s in specs} == {0}  # one deterministic run per arm
    arm, base = ref.runs("sts", 200, False)
    files = [f"f{i}.tsv" for i in range(10)]
    records = {
        arm.key: {"metrics": {}, "units": {"spearman": {f: 0.60 + 0.011 * i for i, f in enumerate(files)}}},
        base.key: {"metrics": {}, "units": {"spearman": {f: 0.50 + 0.01 * i for i, f in enumerate(files[:8])}}},
    }
    (o,) = evaluate([ref], records, list(range(200, 212)), False)
    r = o.comparisons[0].result
    assert r.n == 8  # only the files both runs scored
    assert r.effect == pytest.approx(np.mean([0.10 + 0.001 * i for i in range(8)]))
    assert r.verdict == REPRODUCED and o.comparisons[0].seeds == tuple(range(8))


def test_quick_runs_one_claim_per_task_on_its_first_dataset():
    from reglab.bench.suite import smoke_selection

    refs = collect_claims()
    smoke = smoke_selection(refs)
    assert sorted(r.claim.task for r in smoke) == sorted({r.claim.task for r in refs})
    assert all(len(r.claim.datasets) == 1 for r in smoke)
    first = {}
    for r in refs:
        first.setdefault(r.claim.task, r)
    assert all(first[r.claim.task].id == r.id and first[r.claim.task].claim.datasets[0] == r.claim.datasets[0]
               for r in smoke)  # fmt: skip


def test_claim_without_smallest_effect_is_inconclusive_and_flagged():
    ref = ClaimRef("elr", _claim(min_effect=None, datasets=("digits",)), "")
    records = _store_for(ref, range(8), lambda ds, s: 0.9, [lambda ds, s: 0.5, lambda ds, s: 0.5])
    (o,) = evaluate([ref], records, list(range(8)), False)
    assert o.verdict == INCONCLUSIVE and "no smallest effect" in o.comparisons[0].result.note
    assert any("min_effect" in p for p in check_claims([ref]))
    bad = ClaimRef("elr", _claim(datasets=("cifar10",)), "")
    assert any("does not run on ['cifar10']" in p for p in check_claims([bad]))


def test_equal_cpu_time_compares_at_the_baselines_half_budget():
    base = {"curves": {"train_loss": [1.0, 0.8, 0.6, 0.5], "cpu_seconds": [1.0, 2.0, 3.0, 4.0]}}
    slow = {"curves": {"train_loss": [0.9, 0.5, 0.3, 0.2], "cpu_seconds": [1.0, 3.0, 5.0, 7.0]}}
    arm, b = equal_cpu_time_values(slow, base, "train_loss")
    assert b == 0.8  # after half its epochs, at 2.0 CPU seconds
    assert arm == pytest.approx(0.9 + (0.5 - 0.9) * 0.5)  # the arm between its epochs 1 and 2
    assert all(math.isnan(v) for v in equal_cpu_time_values({"curves": {}}, base, "train_loss"))


def test_every_declared_claim_is_testable_as_declared():
    refs = collect_claims()
    assert refs and check_claims(refs) == []
    for ref in refs:
        c = ref.claim
        assert c.min_effect_reason, f"{ref.id} gives no reason for its δ"
        assert c.compared_with and all(b.label for b in c.compared_with)
    # each claim with an outcome role is judged against more than a plain baseline somewhere
    assert sum(len(r.claim.compared_with) > 1 for r in refs) >= 5


# ------------------------------------------------------------------- data


def test_splits_are_disjoint_seeded_and_noise_spares_test():
    from reglab.bench.data import load

    a, b = load("digits", 3, label_noise=0.4), load("digits", 3, label_noise=0.4)
    assert torch_equal(a.x_train, b.x_train) and torch_equal(a.y_val, b.y_val)
    rows = {tuple(r.tolist()) for r in a.x_train} | {tuple(r.tolist()) for r in a.x_val}
    assert not rows & {tuple(r.tolist()) for r in a.x_test}  # no test image in train or val
    assert 0.3 < float((a.y_train != a.y_train_clean).float().mean()) < 0.5
    assert 0.25 < float((a.y_val != a.y_val_clean).float().mean()) < 0.55  # the validation labels are noisy too
    assert len(a.y_test) == 540 and len(a.y_val) == 252
    half = load("digits_half", 3)
    assert len(half.y_test) == 899 and len(half.y_train) < len(a.y_train)
    assert not torch_equal(load("digits", 4).y_test, a.y_test)


def test_mnist1d_is_built_offline_and_leaves_global_rngs_alone(monkeypatch):
    pytest.importorskip("mnist1d")
    import random
    import socket

    from reglab.bench.data import _pool, load

    def no_network(*args, **kwargs):
        raise AssertionError("MNIST-1D must be built locally, never downloaded")

    monkeypatch.setattr(socket, "create_connection", no_network)
    _pool.cache_clear()
    np.random.seed(123)
    random.seed(123)
    expected_np, expected_py = np.random.random(), random.random()
    np.random.seed(123)
    random.seed(123)
    data = load("mnist1d", 0)
    assert (np.random.random(), random.random()) == (expected_np, expected_py)
    assert data.num_features == 40 and len(data.y_test) == 1000 and data.image_shape == (1, 40)
    assert set(data.y_train.tolist()) == set(range(10))


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_selection_uses_validation_and_temperature_fit_recovers_t():
    import torch

    from reglab.bench.experiments._train import SelectOnValidation, fit_temperature

    model = torch.nn.Linear(2, 2)
    sel = SelectOnValidation(model)
    for epoch, score in enumerate([0.5, 0.9, 0.7]):
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        sel.update(score, epoch)
    assert sel.best_epoch == 1 and float(sel.best_model().weight[0, 0]) == 1.0
    assert float(model.weight[0, 0]) == 2.0  # the model itself stays at its last epoch

    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, 5, generator=g) * 2
    y = torch.distributions.Categorical(logits=true_logits).sample()
    assert fit_temperature(true_logits * 3.0, y) == pytest.approx(3.0, rel=0.1)  # over-confident by 3×


# ----------------------------------------------------------------------- CLI


def test_bench_unknown_name_suggests_close_names(tmp_path, capsys):
    assert main(["bench", "--quick", "--only", "elrr", "--out", str(tmp_path)]) == 2
    assert "did you mean 'elr'" in capsys.readouterr().err
    assert main(["bench", "--quick", "--only", "normalize", "--out", str(tmp_path)]) == 2
    assert "only claims the lab cannot test at its scale" in capsys.readouterr().err
    assert main(["bench", "--quick", "--only", "elr", "--seeds", "3:1", "--out", str(tmp_path)]) == 2
    assert "START < STOP" in capsys.readouterr().err


def test_bench_unwritable_out_is_a_clear_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["bench", "--quick", "--only", "elr", "--out", str(blocker / "sub")]) == 2
    assert "cannot write to --out" in capsys.readouterr().err


@pytest.fixture
def lab_claims(monkeypatch):
    """Claims on the lab's own tasks, declared on classic regularizers for the duration of a test."""
    monkeypatch.setattr(
        reglab.L2, "claims",
        (Claim("test claim", "clean_classification", "test_accuracy", "higher", min_effect=0.01,
               min_effect_reason="one point", datasets=("digits", "mnist1d")),),
    )  # fmt: skip
    monkeypatch.setattr(
        reglab.L1, "claims",
        (Claim("test claim", "structured_sparsity", "zero_filter_fraction", "higher", arm={"weight": 1.0},
               min_effect=0.05, min_effect_reason="5% of filters",
               baselines=(Baseline("none"), Baseline("l2", {"name": "l2", "weight": 1e-3}))),),
    )  # fmt: skip


def test_bench_quick_end_to_end_on_own_tasks_rerun_skips_and_forces(tmp_path, capsys, lab_claims):
    out = tmp_path / "bench"
    args = ["bench", "--quick", "--only", "l2,l1", "--out", str(out), "--jobs", "1", "--seed-offset", "200"]
    assert main(args) == 0
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 14  # (l2 claim: 2 datasets × 2 arms + l1 claim: 3 arms) × 2 seeds
    recs = [json.loads(x) for x in lines]
    assert {r["seed"] for r in recs} == {200, 201}
    assert {"metrics", "curves", "step_cpu_seconds", "setup", "environment", "versions", "code", "digest"} <= set(recs[0])
    md = (out / "report.md").read_text()
    assert "2 seed(s) (200..201)" in md and "sign-flip" in md and "Holm" in md
    assert "| l2#1 | l2 |" in md and "| l1#1 | l1(weight=1.0) |" in md
    n_registered = len(reglab.list_regularizers())
    from reglab.bench.suite import coverage

    with_claims, _ = coverage()  # l1 and l2 carry the fixture's claims here
    assert f"Claims for {len(with_claims)} of {n_registered} registered" in md and "No claim yet:" in md
    assert "l1" in with_claims and "l2" in with_claims
    assert "clean_classification on mnist1d" in md and "Adam" in md  # the task's setup is named
    assert "holds on all" in md and "band is the interquartile range" in md
    assert (out / "plots" / "structured-sparsity-digits__accuracy-vs-sparsity.png").stat().st_size > 1000
    assert "<table>" in (out / "report.html").read_text()
    capsys.readouterr()
    with open(out / "results.jsonl", "a") as f:
        f.write("{corrupted\n")
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "0 run(s) to do, 14 already" in captured.out and "corrupted" in captured.err
    assert (out / "results.jsonl").read_text().splitlines()[:14] == lines
    assert main(args + ["--rerun"]) == 0
    assert "14 run(s) to do" in capsys.readouterr().out
    assert len((out / "results.jsonl").read_text().splitlines()) == 29


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
        [sys.executable, "-m", "reglab.cli", "bench", "--quick", "--only", "pskd", "--out", str(out), "--jobs", "2"],
        capture_output=True, text=True, timeout=1200,  # a hang guard only, generous for a loaded machine
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "report:" in proc.stdout and (out / "report.html").exists()
    md = (out / "report.md").read_text()
    assert "CE + temperature scaling" in md and "mnist1d" in md


# ------------------------------------------------------------------ the --out lock

HOLDER = """
import sys
from reglab.bench.runner import lock_folder
with lock_folder(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.read()  # hold the lock until the test closes our stdin
"""


def _hold_lock(folder):
    """Another process holding ``folder``'s lock (as a running bench does); waits until it holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})  # fmt: skip
    assert proc.stdout.readline().strip() == "locked"  # an event, not a delay
    return proc


def test_a_second_bench_on_the_same_out_refuses_naming_the_folder_and_the_holder(tmp_path, capsys, lab_claims):
    out = tmp_path / "bench"
    holder = _hold_lock(out)
    try:
        assert main(["bench", "--quick", "--only", "l2", "--out", str(out), "--jobs", "1"]) == 2
        err = capsys.readouterr().err
        assert f"{str(out)!r} is in use by another reglab bench or ab (pid {holder.pid})" in err
        assert not (out / "results.jsonl").exists()  # nothing ran
        with pytest.raises(runner.FolderInUse, match=f"pid {holder.pid}"):
            reglab.ab(lambda arm, seed: {"m": 1.0}, {"a": None, "b": reglab.L2()}, metric="m", min_effect=1, out=out)
    finally:
        holder.stdin.close()
        holder.wait()
    # the lock goes with its holder: now the folder is free, and one process may nest it
    with runner.lock_folder(out), runner.lock_folder(out):
        pass
    with runner.lock_folder(out):
        pass


def test_queue_starts_one_run_per_shared_cache_and_keeps_the_set():
    from reglab.bench.runner import RunSpec
    from reglab.bench.suite import queue_order

    specs = [
        RunSpec("beir", {"index": "exact"}, None, 0, False, "scifact"),
        RunSpec("beir", {}, {"name": "lvq"}, 0, False, "scifact"),
        RunSpec("clean_classification", {}, None, 200, False, "digits"),
        RunSpec("beir_adapter", {}, None, 200, False, "scifact"),
        RunSpec("sts", {"encoder": "minilm"}, None, 0, False, "sts"),
        RunSpec("clean_classification", {}, None, 201, False, "digits"),
    ]
    order = queue_order(specs)
    assert sorted(s.key for s in order) == sorted(s.key for s in specs)
    assert [s.task for s in order] == ["beir", "sts", "clean_classification", "clean_classification", "beir",
                                       "beir_adapter"]
    # a group whose first run is stored starts its first run not stored
    order = queue_order(specs, done=lambda key: key == specs[0].key)
    assert order[0] is specs[1] and order[-2] is specs[0]


def test_the_full_run_skips_the_budget_cuts_and_lists_them():
    from reglab.bench.suite import BUDGET_CUTS, apply_budget, collect_claims

    refs = collect_claims()
    kept, cut = apply_budget(refs)
    assert all("digits_half" not in r.claim.datasets for r in kept)
    assert not any(r.id in ("lq#1", "cel0#1", "scad#1", "wae_mmd#3") for r in kept)
    elr2 = [r for r in kept if r.id == "elr#2"]
    assert elr2 and "mnist1d" not in elr2[0].claim.datasets and "digits" in elr2[0].claim.datasets
    # every declared cell is either kept or listed with its reason, never silently dropped
    declared = {(r.id, d) for r in refs for d in r.claim.datasets}
    kept_cells = {(r.id, d) for r in kept for d in r.claim.datasets}
    assert kept_cells | {(i, d) for i, d, _ in cut} == declared and not kept_cells & {(i, d) for i, d, _ in cut}
    assert all(why for _, _, why in cut)
    # every cut names a claim or dataset that exists
    ids = {r.id for r in refs} | {"*"}
    datasets = {d for r in refs for d in r.claim.datasets} | {"*"}
    assert all(i in ids and d in datasets for i, d in BUDGET_CUTS)
