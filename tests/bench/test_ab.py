"""`reglab ab`: the lab's verdicts on a train function it has never seen."""

from __future__ import annotations

import json
import math
import os
import sys

import pytest

import reglab

pytest.importorskip("scipy")

from reglab.bench.ab import ABRun, ab, arm_identity, parse_arm_spec  # noqa: E402
from reglab.bench.verdict import NO_EFFECT, REPRODUCED, WORSE  # noqa: E402
from reglab.cli import main  # noqa: E402
from tests.bench import _ab_train  # noqa: E402
from tests.bench._ab_train import train  # noqa: E402

MSE = {"metric": "test_mse", "higher_is_better": False, "min_effect": 1.0}


def test_identical_arm_is_never_reproduced_helpful_one_is(tmp_path):
    res = ab(train, {"ols": None, "same": None, "ridge": reglab.L2(0.5)}, baseline="ols", seeds=10, out=tmp_path, **MSE)
    assert res.comparisons["same"].verdict == NO_EFFECT  # identical runs: d = 0 on every seed
    assert res.comparisons["same"].effect == 0.0 and res.comparisons["same"].wins == 0
    ridge = res.comparisons["ridge"]
    assert ridge.verdict == REPRODUCED and ridge.effect < -1.0 and ridge.wins >= 9 and ridge.n == 10
    assert ridge.p_adjusted >= ridge.p_value and ridge.prob_better > 0.95
    assert res.seeds == list(range(10)) and "fixed in advance" in res.seeds_rule
    md, html = res.report(tmp_path / "report")
    text = open(md).read()
    assert "| ridge |" in text and "reproduced" in text and os.path.exists(tmp_path / "report" / "plots" / "effects.png")
    assert "<table>" in open(html).read()


def test_harmful_arm_is_worse():
    res = ab(train, {"ridge": reglab.L2(0.5), "ols": None}, baseline="ridge", seeds=10, **MSE)
    r = res.comparisons["ols"]
    assert r.verdict == WORSE and r.effect > 1.0 and "| worse" in "\n".join(" | ".join(row) for row in res.table())


def test_resume_reuses_runs_and_never_a_changed_config(tmp_path):
    arms = {"ols": None, "ridge": reglab.L2(0.5)}
    _ab_train.CALLS.clear()
    first = ab(train, arms, seeds=5, out=tmp_path, **MSE)
    assert len(_ab_train.CALLS) == 10
    _ab_train.CALLS.clear()
    again = ab(train, arms, seeds=5, out=tmp_path, **MSE)
    assert _ab_train.CALLS == [] and again.comparisons["ridge"].effect == first.comparisons["ridge"].effect
    ab(train, {"ols": None, "ridge": reglab.L2(0.6)}, seeds=5, out=tmp_path, **MSE)
    assert len(_ab_train.CALLS) == 5 and all("0.6" in c for c, _ in _ab_train.CALLS)  # only the changed arm
    _ab_train.CALLS.clear()
    ab(train, arms, seeds=5, out=tmp_path, rerun=True, **MSE)
    assert len(_ab_train.CALLS) == 10


def test_a_train_that_raises_is_reported_with_arm_and_seed_and_the_rest_goes_on():
    res = ab(_ab_train.train_raises_on_seed_3, {"ols": None, "ridge": reglab.L2(0.5)}, seeds=8, **MSE)
    assert any("train(ridge, seed=3) raised RuntimeError: out of memory" in e for e in res.errors)
    assert res.comparisons["ridge"].n == 7 and res.comparisons["ridge"].verdict == REPRODUCED


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (_ab_train.train_without_the_metric, "returned no metric 'test_mse' (it returned ['val_mse'])"),
        (_ab_train.train_nan, "returned a non-finite 'test_mse': nan"),
    ],
)
def test_missing_or_non_finite_metric_is_a_clear_error(fn, message):
    res = ab(fn, {"ols": None, "ridge": reglab.L2(0.5)}, seeds=6, **MSE)
    assert any(message in e and "ridge" in e for e in res.errors), res.errors
    assert "test_mse" in str(res)


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="min_effect"):
        ab(train, {"a": None, "b": reglab.L2()}, metric="m", min_effect=0)
    with pytest.raises(ValueError, match="name the baseline"):
        ab(train, {"a": None, "b": None}, metric="m", min_effect=1)
    with pytest.raises(ValueError, match="did you mean"):
        ab(train, {"ols": None, "b": reglab.L2()}, metric="m", min_effect=1, baseline="osl")
    with pytest.raises(ValueError, match="seeds"):
        ab(train, {"a": None, "b": reglab.L2()}, metric="m", min_effect=1, seeds=1)
    with pytest.raises(ValueError, match="tune names arms that do not exist"):
        ab(train, {"a": None, "b": reglab.L2()}, metric="m", min_effect=1, tune={"c": {"weight": [1]}})


def test_arm_specs_and_identities():
    assert parse_arm_spec("none") is None and parse_arm_spec("l2") == {"name": "l2"}
    assert parse_arm_spec('{"name": "elr", "weight": 3}') == {"name": "elr", "weight": 3}
    with pytest.raises(reglab.UnknownRegularizerError, match="did you mean"):
        parse_arm_spec("elrr")
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_arm_spec('{"name": elr}')
    assert arm_identity(reglab.L2(0.5)) != arm_identity(reglab.L2(0.6))
    assert arm_identity([reglab.L2(0.5), {"name": "l1"}]) == arm_identity([reglab.L2(0.5), {"name": "l1"}])
    assert ABRun(train, "r", reglab.L2(0.5), 0).key != ABRun(train, "r", reglab.L2(0.5), 1).key


def test_tuning_uses_validation_on_its_own_seeds_then_fresh_seeds():
    _ab_train.CALLS.clear()
    res = ab(train, {"ols": None, "ridge": reglab.L2(0.5)}, seeds=6, tune={"ridge": {"weight": [1e-4, 0.5, 1e4]}}, **MSE)
    t = res.tuning["ridge"]
    assert t["metric"] == "val_mse" and t["chosen"] == {"weight": 0.5} and t["budget"] == 9
    tune_seeds = set(t["seeds"])
    assert not tune_seeds & set(res.seeds)
    assert {s for _, s in _ab_train.CALLS} == tune_seeds | set(res.seeds)
    assert "weight=0.5" in repr(res.arms["ridge"]) or "0.5" in repr(res.arms["ridge"].get_config())


def test_auto_seeds_stop_when_the_interval_is_narrow_enough():
    res = ab(train, {"ols": None, "same": None}, baseline="ols", seeds="auto", **MSE)
    assert len(res.seeds) == 10 and "narrower than δ" in res.seeds_rule  # identical arms: width 0 at once
    wide = ab(train, {"ols": None, "ridge": reglab.L2(0.5)}, seeds="auto", max_seeds=15,
              metric="test_mse", higher_is_better=False, min_effect=0.01)  # fmt: skip
    assert len(wide.seeds) == 15 and "cap of 15" in wide.seeds_rule


def test_local_workers_run_the_same_results(tmp_path):
    one = ab(train, {"ols": None, "ridge": reglab.L2(0.5)}, seeds=5, **MSE)
    two = ab(train, {"ols": None, "ridge": reglab.L2(0.5)}, seeds=5, jobs=2, out=tmp_path, **MSE)
    assert two.values == one.values


def test_ray_backend_without_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ImportError, match=r"pip install ray \(from a reglab checkout: pip install -e '\.\[ray\]'\)"):
        ab(train, {"ols": None, "ridge": reglab.L2(0.5)}, backend="ray", **MSE)


@pytest.mark.slow
def test_ray_backend_runs_on_a_local_instance(tmp_path):
    ray = pytest.importorskip("ray")
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        res = ab(train, {"ols": None, "ridge": reglab.L2(0.5)}, seeds=5, backend="ray", out=tmp_path, **MSE)
        local = ab(train, {"ols": None, "ridge": reglab.L2(0.5)}, seeds=5, **MSE)
        # the lab's own runs go through the same backend (`reglab bench --backend ray`)
        from reglab.bench.runner import ResultStore, RunSpec, run_all

        store = ResultStore(tmp_path / "lab.jsonl").load()
        spec = RunSpec("calibration", {}, {"name": "pskd"}, 0, True, "digits")
        assert run_all([spec], store, backend="ray") == [] and spec.key in store.records
    finally:
        ray.shutdown()
    assert res.values == local.values and res.backend == "ray"


def test_cli_end_to_end_from_the_current_directory(tmp_path, monkeypatch, capsys):
    (tmp_path / "my_experiment.py").write_text(
        "from tests.bench._ab_train import train as _t\n\ndef train(arm, seed):\n    return _t(arm, seed)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    out = tmp_path / "ab"
    args = ["ab", "my_experiment:train", "--arm", "ols=none", "--arm", 'ridge={"name": "l2", "weight": 0.5}',
            "--metric", "test_mse", "--lower-is-better", "--min-effect", "1", "--seeds", "6", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "ridge" in printed and "reproduced" in printed and (out / "report.md").exists()
    assert "12 run(s) to do, 0 already in results.jsonl" in printed and "[12/12] test " in printed  # progress
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == 12 and json.loads(lines[0])["task"] == "ab:my_experiment:train"
    assert main(args[:5] + ["ridge=l2x"] + args[6:]) == 2
    assert "did you mean" in capsys.readouterr().err
    assert main(["ab", "no_such_module:train", "--arm", "a=none", "--metric", "m", "--min-effect", "1"]) == 2
    assert "cannot import 'no_such_module'" in capsys.readouterr().err


def test_reglab_ab_is_the_same_function():
    res = reglab.ab(train, {"ols": None, "ridge": reglab.L2(0.5)}, seeds=5, **MSE)
    assert math.isfinite(res.comparisons["ridge"].effect)


def test_workers_running_a_train_defined_in_the_users_script(tmp_path):
    """Spawned workers import the user's script as __mp_main__: its runs must still be found."""
    import subprocess

    script = tmp_path / "exp.py"
    script.write_text(
        "import reglab, torch\n"
        "def train(arm, seed):\n"
        "    g = torch.Generator().manual_seed(seed)\n"
        "    return {'m': float(torch.randn(1, generator=g)) + (0.5 if arm is not None else 0.0)}\n"
        "if __name__ == '__main__':\n"
        "    r = reglab.ab(train, {'base': None, 'l2': reglab.L2()}, metric='m', min_effect=0.1, seeds=6, jobs=2)\n"
        "    print(r.comparisons['l2'].n, r.comparisons['l2'].verdict)\n"
    )
    # timeout: a hang guard only, generous for a loaded machine (spawning two workers can take minutes there)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == ["6", "reproduced"]


# ------------------------------------------------------------------ timeouts, metric types, the folder lock


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_train_that_never_returns_times_out_and_leaves_no_process(tmp_path, monkeypatch):
    """The timeout is what is tested (not a speed): the hanging run is killed with the child it
    started, reported with its arm and seed, and every other run finishes."""
    import multiprocessing as mp

    pids = tmp_path / "hang.pids"
    monkeypatch.setenv("AB_HANG_PIDS", str(pids))
    res = ab(_ab_train.train_hangs, {"base": None, "hang": "hang"}, metric="m", min_effect=0.5, seeds=4,
             out=tmp_path / "ab", timeout=10)  # fmt: skip
    # the other runs return at once: 10 s is a wide margin even on a loaded machine
    assert [e for e in res.errors if "timed out after 10 s" in e] == [res.errors[0]] and len(res.errors) == 1
    assert res.errors[0].startswith("train(hang, seed=1) timed out")
    assert res.values["base"] == {0: 0.0, 1: 0.1, 2: 0.2, 3: pytest.approx(0.3)}  # the other runs went on
    assert sorted(res.values["hang"]) == [0, 2, 3] and res.comparisons["hang"].n == 3
    worker, child = map(int, pids.read_text().split())
    _wait_until(lambda: not _alive(worker) and not _alive(child), "the hanging run's processes to be gone")
    assert mp.active_children() == []
    lines = (tmp_path / "ab" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 7  # the timed-out run is not stored: a rerun tries it again


def _wait_until(predicate, what: str, guard: float = 120.0) -> None:
    """Wait for an event; ``guard`` only stops a hang (a generous bound, not a timing assertion)."""
    import time

    stop = time.monotonic() + guard
    while not predicate():
        assert time.monotonic() < stop, f"hang guard: waited {guard:g} s for {what}"
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["str", "bool"])
def test_a_string_or_bool_metric_is_refused_clearly(kind, monkeypatch):
    monkeypatch.setenv("AB_METRIC_KIND", kind)
    res = ab(_ab_train.train_returns, {"base": None, "arm": "x"}, metric="m", min_effect=0.5, seeds=3)
    shown = "'1.0'" if kind == "str" else "True"
    assert any(f"train(arm, seed=0) returned a non-numeric 'm': {shown} ({kind})" in e and "not a bool or a string" in e
               for e in res.errors), res.errors  # fmt: skip
    assert res.values["arm"] == {} and res.comparisons["arm"].n == 0


def test_numbers_of_any_kind_are_metrics_and_extras_are_ignored(monkeypatch):
    monkeypatch.setenv("AB_METRIC_KIND", "tensor")
    res = ab(_ab_train.train_returns, {"base": None, "arm": "x"}, metric="m", min_effect=0.5, seeds=3)
    assert res.errors == [] and res.values["arm"] == {0: 1.0, 1: pytest.approx(1.1), 2: pytest.approx(1.2)}


def test_bad_timeouts_are_clear():
    for bad in (0, -1, float("inf"), True, "5"):
        with pytest.raises(ValueError, match="timeout must be a number of seconds"):
            ab(train, {"a": None, "b": reglab.L2()}, metric="m", min_effect=1, timeout=bad)
    with pytest.raises(ValueError, match="local backend only"):
        ab(train, {"a": None, "b": reglab.L2()}, metric="m", min_effect=1, timeout=5, backend="ray")


def test_ab_report_does_not_import_the_ab_module():
    """ab runs the A/B and imports the report; the report (with the result type) needs nothing back."""
    import ast

    import reglab.bench.ab_report as rep

    tree = ast.parse(open(rep.__file__).read())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}  # fmt: skip
    assert "reglab.bench.ab" not in imported
    from reglab.bench.ab import ABResult

    assert ABResult is rep.ABResult


def test_cli_passes_the_timeout(tmp_path, capsys):
    args = ["ab", "tests.bench._ab_train:train", "--arm", "ols=none", "--arm", "ridge=l2", "--metric", "test_mse",
            "--min-effect", "1", "--seeds", "2", "--out", str(tmp_path), "--timeout", "0"]  # fmt: skip
    assert main(args) == 2
    assert "timeout must be a number of seconds > 0" in capsys.readouterr().err
