"""``get_config`` / ``from_config``: rebuild any registered object from plain data.

The convention is scikit-learn's ``get_params``: every constructor argument is
stored on the instance under the same name. ``get_config`` reads them back, so
no class writes its own serialization and none can forget an argument.
Learned or accumulated state (anchors, EMA buffers, schedule step) is not
config: it lives in ``state_dict``.
"""

from __future__ import annotations

import inspect
from typing import Any


def _serialize(value: Any, owner: str, key: str) -> Any:
    from reglab.schedules import Schedule  # local: schedules imports nothing from here

    if isinstance(value, Schedule):
        return value.get_config()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_serialize(v, owner, key) for v in value]
    if isinstance(value, dict):
        return {str(k): _serialize(v, owner, key) for k, v in value.items()}
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    raise TypeError(
        f"{owner}.get_config cannot serialize argument {key!r} of type {type(value).__name__}; "
        f"pass plain numbers/strings or a reglab.schedules schedule"
    )


class Configurable:
    """Mixin giving ``get_config`` from the constructor signature."""

    #: Constructor arguments that are runtime objects (parameters, optimizers,
    #: models) rather than configuration; ``from_config`` takes them as kwargs.
    _runtime_args: tuple[str, ...] = ()

    def get_config(self) -> dict[str, Any]:
        name = getattr(type(self), "name", None) or type(self).__name__
        cfg: dict[str, Any] = {"name": name}
        for key, param in inspect.signature(type(self).__init__).parameters.items():
            if key == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if key in self._runtime_args:
                continue
            if not hasattr(self, key):
                raise AttributeError(
                    f"{type(self).__name__} must store constructor argument {key!r} as "
                    f"self.{key} so get_config can round-trip it"
                )
            cfg[key] = _serialize(getattr(self, key), type(self).__name__, key)
        return cfg


def deserialize_value(value: Any) -> Any:
    """Turn a serialized schedule back into a schedule; leave other values."""
    if isinstance(value, dict) and "schedule" in value:
        from reglab.schedules import from_config as schedule_from_config

        return schedule_from_config(value)
    return value
