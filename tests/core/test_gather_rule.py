"""One rule for `gather` (issue 26, item 14): every batch-statistic regularizer gathers by default."""

import inspect

import reglab


def test_every_gather_option_defaults_to_true():
    found, wrong = [], []
    for name in reglab.list_regularizers():
        defaults = reglab.info(name).defaults
        if "gather" in defaults:
            found.append(name)
            if defaults["gather"] is not True:
                wrong.append(name)
    assert {"vicreg", "koleo", "t_regs", "barlow_twins"} <= set(found)
    assert not wrong, f"gather defaults to False for {wrong}; README 'Distributed': gather=True everywhere"


def test_every_functional_gather_defaults_to_true():
    import reglab.functional as RF

    wrong = [
        name for name in RF.__all__
        if callable(getattr(RF, name)) and not isinstance(getattr(RF, name), type)
        and "gather" in (params := _params(getattr(RF, name))) and params["gather"].default is not True
    ]  # fmt: skip
    assert not wrong, wrong


def _params(fn):
    try:
        return inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
