"""benchmarks/_harness.py and run_all.py on trivial cases: structure only, never timing."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses look their module up
        spec.loader.exec_module(mod)
        return mod
    finally:
        sys.path.remove(str(BENCH))


H = _load("_harness")


def test_measure_interleaves_and_returns_stats_per_case():
    order = []
    cases = {k: (lambda k=k: order.append(k)) for k in "abc"}
    stats = H.measure(cases, repeats=4, warmup=1, threads=1)
    assert list(stats) == ["a", "b", "c"]
    for s in stats.values():
        assert isinstance(s, H.Stats) and s.repeats == 4 and len(s.samples) == 4
        assert s.q25 <= s.median <= s.q75 and s.iqr >= 0
    # warm-up a b c, then the round-robin order rotated by one each repeat
    assert order == list("abc") + list("abc") + list("bca") + list("cab") + list("abc")


def test_measure_number_and_bad_arguments():
    calls = []
    stats = H.measure({"x": lambda: calls.append(1)}, repeats=3, warmup=0, threads=None, number={"x": 5})
    assert len(calls) == 15 and stats["x"].number == 5
    with pytest.raises(ValueError, match="no cases"):
        H.measure({})
    with pytest.raises(ValueError, match="repeats"):
        H.measure({"x": lambda: None}, repeats=0)
    with pytest.raises(TypeError, match="callable"):
        H.measure({"x": 3})


def test_stats_quantiles_and_ratio():
    s = H.Stats.from_samples([4.0, 1.0, 3.0, 2.0, 5.0])
    assert (s.median, s.q25, s.q75, s.iqr) == (3.0, 2.0, 4.0, 2.0)
    t = H.Stats.from_samples([1.0, 1.5, 2.0, 2.5, 3.0])
    r = H.ratio(s, t)
    assert r.value == pytest.approx(1.5) and r.lo <= r.value <= r.hi
    assert H.ratio(s, t, seed=1).to_dict().keys() == {"value", "lo", "hi", "level"}
    with pytest.raises(ValueError):
        H.ratio(s, H.Stats.from_samples([0.0]))


def test_markdown_and_results_files(tmp_path):
    table = H.markdown_table(["a", "b"], [[1, "x"], [2, "y"]])
    assert table.splitlines()[:2] == ["| a | b |", "|---|---:|"] and len(table.splitlines()) == 4
    with pytest.raises(ValueError):
        H.markdown_table(["a", "b"], [[1]])
    stats = H.measure({"noop": lambda: None}, repeats=3, warmup=0, threads=1)
    jpath, mpath = H.write_results("demo", {"stats": stats, "nan": float("nan")}, "## demo\n\n" + table, tmp_path)
    data = json.loads(jpath.read_text())
    assert data["name"] == "demo" and data["nan"] is None
    assert {"torch", "threads", "cpu_model", "python"} <= set(data["machine"])
    assert len(data["stats"]["noop"]["samples"]) == 3
    assert mpath.read_text().startswith("## demo")
    run_all = _load("run_all")
    readme = run_all.collect(tmp_path)
    assert "## demo" in readme.read_text() and "Machine:" in readme.read_text()


def test_common_args_and_every_script_follows_the_contract():
    p = H.add_common_args(argparse.ArgumentParser(), repeats=20)
    assert H.resolve_repeats(p.parse_args([])) == 20
    assert H.resolve_repeats(p.parse_args(["--quick"])) == 3
    assert H.resolve_repeats(p.parse_args(["--quick", "--repeats", "7"])) == 7
    run_all = _load("run_all")
    found = run_all.scripts()
    assert {"bench_ssl_losses.py", "bench_weight_penalty.py"} <= {s.name for s in found}
    for script in found:
        src = script.read_text()
        assert "add_common_args(" in src and "write_results(" in src, script.name
