"""The module paths before the restructure still import, warn, and give the same objects."""

import importlib
import sys

import pytest

import reglab
import reglab.functional as RF
from reglab.core import registry
from reglab.ops import prox

OLD_PATHS = {
    "reglab.bind": {"attach": reglab.attach, "Binding": reglab.Binding, "RegularizerSet": reglab.RegularizerSet},
    "reglab.regularizers": {"VICReg": reglab.VICReg, "L2": reglab.L2, "Regularizer": reglab.Regularizer},
    "reglab.regularizers.weights": {"GroupLasso": reglab.GroupLasso},
    "reglab.regularizers.outputs": {"ELR": reglab.ELR},
    "reglab.registry": {"get": registry.get, "register": reglab.register},
    "reglab.paper": {"Paper": reglab.Paper, "Claim": reglab.Claim},
    "reglab.prox": {"soft_threshold": prox.soft_threshold},
}


@pytest.mark.parametrize("path", sorted(OLD_PATHS))
def test_old_path_warns_and_re_exports(path):
    for name in [m for m in sys.modules if m == path or m.startswith(path + ".")]:
        del sys.modules[name]
    if path.startswith("reglab.regularizers."):
        sys.modules.pop("reglab.regularizers", None)
    with pytest.warns(DeprecationWarning, match="deprecated"):
        module = importlib.import_module(path)
    for name, obj in OLD_PATHS[path].items():
        assert getattr(module, name) is obj


def test_public_aliases_do_not_warn():
    import reglab.distributed
    import reglab.schedules

    assert reglab.schedules.LinearWarmup is reglab.core.schedules.LinearWarmup
    assert reglab.distributed.gather is reglab.core.distributed.gather
    assert RF.vicreg is reglab.methods.vicreg.vicreg
