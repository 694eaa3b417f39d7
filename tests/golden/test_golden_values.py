"""Every public regularizer gives the values it gave before the restructure (commit d725890)."""

from pathlib import Path

import numpy as np

from .capture import capture, load

FROZEN = Path(__file__).with_name("values_d725890.npz")


def test_public_names_are_kept():
    _, old = load(str(FROZEN))
    _, new = capture(set(old["registry"]))
    for group in ("reglab", "functional", "registry"):
        missing = sorted(set(old[group]) - set(new[group]))
        assert not missing, f"{group}: names gone since d725890: {missing}"


def test_values_unchanged_since_d725890():
    old, names = load(str(FROZEN))
    new, _ = capture(set(names["registry"]))
    assert set(old) <= set(new)
    worst, bad = 0.0, []
    for key, arrays in old.items():
        assert len(new[key]) == len(arrays), key
        for a, b in zip(arrays, new[key]):
            assert a.shape == b.shape, key
            if not a.size:
                continue
            rel = float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-300))
            worst = max(worst, rel)
            if rel > 1e-11:
                bad.append((key, rel))
    assert not bad, bad
    # 1e-11, not 1e-12: faster kernels (Barlow Twins' fused standardization) reassociate float64 sums
    assert worst <= 1e-11
