"""The worked example in CONTRIBUTING.md runs as written: one method file, one test file."""

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / "CONTRIBUTING.md").read_text(), flags=re.S)


@pytest.mark.slow
def test_worked_example_registers_and_passes_its_checks(tmp_path):
    method, test = _blocks()[:2]
    method = method.replace('title="..."', 'title="A made-up paper"')
    method = re.sub(r"claims = \(Claim\(.*?\),\)\n", "", method)
    script = tmp_path / "example.py"
    script.write_text(
        textwrap.dedent(
            """
            import types, sys, torch, reglab
            source = {method!r}
            module = types.ModuleType("reglab.methods.projection_penalty")
            sys.modules[module.__name__] = module
            exec(compile(source, "projection_penalty.py", "exec"), module.__dict__)
            exec({test!r}, ns := {{}})
            reg = reglab.create("projection_penalty")
            assert reg.get_config() == {{"name": "projection_penalty", "weight": 1e-4, "scale": 1.0}}
            w = torch.randn(4, 3, dtype=torch.float64)
            assert abs(float(reg.penalty(w)) - ns["ref_projection_penalty"](w)) < 1e-9
            assert abs(float(reg([w, 2 * w])) - 1e-4 * (float(reg.penalty(w)) + float(reg.penalty(2 * w)))) < 1e-12
            ns["test_gradcheck"]()
            try:
                reglab.create("projection_penalty", scale=-1.0)
            except reglab.RegularizerInputError as e:
                assert "scale" in str(e)
            else:
                raise AssertionError("scale=-1 was accepted")
            print("ok")
            """
        ).format(method=method, test=test)
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
