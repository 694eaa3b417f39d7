"""``get_config`` / ``from_config``, and constructors derived from a method's pure function.

The convention is scikit-learn's ``get_params``: every constructor argument is
stored on the instance under the same name. ``get_config`` reads them back, so
no class writes its own serialization and none can forget an argument.
Learned or accumulated state (anchors, EMA buffers, schedule step) is not
config: it lives in ``state_dict``.

**Defaults are written once**, in the signature of the method's pure
function (as optax does in its factories). A class that sets
``function = some_penalty`` and defines no ``__init__`` gets one whose
signature is the function's hyperparameters (its parameters with a default,
less ``call_args``), preceded by ``leading_parameters()`` (``weight`` for
penalties). The derived ``__init__`` validates the values with the
function's declared constraints (``reglab.ops.validation.hyperparameters``)
and stores them as attributes, so ``get_config``, ``reglab info`` and
``from_config`` all read the one signature.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

#: Class attributes that hold a method's pure functions; stored as staticmethods.
FUNCTION_ATTRIBUTES = ("function", "terms", "global_function")


def _serialize(value: Any, owner: str, key: str) -> Any:
    from reglab.core.schedules import Schedule  # local: schedules imports nothing from here

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


def hyperparameter_names(fn: Any, exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The parameters of ``fn`` that have a default (its configuration), less ``exclude``."""
    if fn is None:
        return ()
    return tuple(
        name
        for name, p in inspect.signature(fn).parameters.items()
        if p.default is not inspect.Parameter.empty
        and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and name not in exclude
    )


def _forwards_options(fn: Any) -> bool:
    return fn is not None and any(p.kind == p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values())


class Configurable:
    """Mixin: ``get_config`` from the constructor signature, and a derived constructor.

    Subclasses that name a pure ``function`` (and optionally a ``terms``
    function returning the named components) and define no ``__init__`` get
    one derived from those functions' signatures; see the module docstring.
    """

    #: Constructor arguments that are runtime objects (parameters, optimizers,
    #: models) rather than configuration; ``from_config`` takes them as kwargs.
    _runtime_args: ClassVar[tuple[str, ...]] = ()
    #: The method's pure function, the only statement of its formula.
    function: ClassVar[Any] = None
    #: Optional pure function returning the unweighted named terms.
    terms: ClassVar[Any] = None
    #: Parameters of ``function`` supplied per call, not configuration (``training``, ``generator``).
    call_args: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for attr in FUNCTION_ATTRIBUTES:
            fn = cls.__dict__.get(attr)
            if fn is not None and not isinstance(fn, staticmethod):
                setattr(cls, attr, staticmethod(fn))
        if cls.function is not None and "__init__" not in cls.__dict__:
            cls.__init__ = _derived_init(cls)  # type: ignore[method-assign]
        cls._terms_params = hyperparameter_names(cls.terms, cls.call_args)
        cls._function_params = hyperparameter_names(cls.function, cls.call_args)
        if _forwards_options(cls.function):  # e.g. vicreg(..., **options) passes them on to vicreg_terms
            cls._function_params += tuple(k for k in cls._terms_params if k not in cls._function_params)

    @classmethod
    def leading_parameters(cls) -> list[inspect.Parameter]:
        """Constructor parameters before the function's hyperparameters (``weight`` for penalties)."""
        return []

    def _init_from_values(self, values: dict[str, Any]) -> None:
        """Called by the derived ``__init__`` with every bound argument (defaults applied)."""
        for key, value in values.items():
            setattr(self, key, value)

    def function_kwargs(self) -> dict[str, Any]:
        """The stored hyperparameters of ``function``, to call it with."""
        return {k: getattr(self, k) for k in self._function_params}

    def terms_kwargs(self) -> dict[str, Any]:
        """The stored hyperparameters of ``terms``."""
        return {k: getattr(self, k) for k in self._terms_params}

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


def _derived_init(cls: type) -> Any:
    """An ``__init__`` whose signature is ``leading_parameters()`` + the functions' hyperparameters."""
    params: dict[str, inspect.Parameter] = {}
    for fn in (cls.function, cls.terms):
        if fn is not None:
            signature_of_fn = inspect.signature(fn).parameters
            for name in hyperparameter_names(fn, cls.call_args):
                params.setdefault(name, signature_of_fn[name].replace(kind=inspect.Parameter.POSITIONAL_OR_KEYWORD))
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    signature = inspect.Signature([self_param, *cls.leading_parameters(), *params.values()])
    checks = [fn for fn in (cls.function, cls.terms) if hasattr(fn, "check_hyperparameters")]

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        del values["self"]
        for fn in checks:
            fn.check_hyperparameters(type(self).__name__, values)
        self._init_from_values(values)

    __init__.__signature__ = signature  # type: ignore[attr-defined]
    __init__.__qualname__ = f"{cls.__qualname__}.__init__"
    __init__.__doc__ = f"Hyperparameters and defaults of ``{cls.function.__name__}``."
    return __init__


def deserialize_value(value: Any) -> Any:
    """Turn a serialized schedule back into a schedule; leave other values."""
    if isinstance(value, dict) and "schedule" in value:
        from reglab.core.schedules import from_config as schedule_from_config

        return schedule_from_config(value)
    return value
