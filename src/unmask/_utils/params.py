"""A method's parameters have one source of truth: its constructor's signature (scikit-learn's rule,
``sklearn.base.BaseEstimator.get_params``).

A class with :class:`Parameters` keeps every constructor parameter as an attribute of the same name;
:meth:`~Parameters.get_params` reads those attributes, :meth:`~Parameters.set_params` rebuilds the object
with some of them changed, and ``repr`` shows the values that differ from the defaults. The command line
reads the allowed ``--param`` keys from the same signature (:func:`parameter_names`).
"""
from __future__ import annotations

import inspect
from typing import Any, ClassVar, TypeVar

from .validation import ParameterError

__all__ = ["Parameters", "parameter_names", "signature_parameters"]

P = TypeVar("P", bound="Parameters")

_NAMED = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def signature_parameters(cls: type, data: tuple[str, ...] = ("model",)) -> dict[str, inspect.Parameter] | None:
    """The named parameters of ``cls``'s constructor, without the data arguments ``data``; ``None`` when
    the signature cannot be read."""
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return None
    return {key: p for key, p in signature.parameters.items() if p.kind in _NAMED and key not in data}


def takes_any(cls: type) -> bool:
    """Whether ``cls``'s constructor takes ``**params`` (forwarded to something it wraps)."""
    try:
        return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in inspect.signature(cls).parameters.values())
    except (TypeError, ValueError):
        return True


def parameter_names(cls: type) -> frozenset[str] | None:
    """The keyword parameters ``cls(model, ...)`` takes, or ``None`` when its constructor forwards
    ``**params`` and so they cannot be told in advance."""
    named = signature_parameters(cls, getattr(cls, "_data_args", ("model",)))
    if named is None or takes_any(cls):
        return None
    return frozenset(named)


def _same(value: Any, default: Any) -> bool:
    if value is default:
        return True
    if default is inspect.Parameter.empty or type(value) is not type(default):
        return False
    try:
        return bool(value == default)
    except (TypeError, ValueError, RuntimeError):  # tensors and arrays: no single truth value
        return False


class Parameters:
    """``get_params()``, ``set_params(**params)`` and ``repr`` from the constructor's signature.

    ``_data_args`` names the constructor's leading positional arguments that are data, not parameters
    (a method's ``model``); they are passed again, unchanged, when :meth:`set_params` rebuilds the object.
    """

    _data_args: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def _signature(cls) -> dict[str, inspect.Parameter]:
        return signature_parameters(cls, cls._data_args) or {}

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters (every one, defaults included) with their current values."""
        return {key: getattr(self, key) for key in self._signature()}

    def set_params(self: P, **params: Any) -> P:
        """Change some parameters: the object is rebuilt (checks included) from :meth:`get_params` updated
        with ``params``; unknown names are refused. Returns the object itself."""
        current = self.get_params()
        unknown = sorted(set(params) - set(current))
        if unknown:
            raise ParameterError(f"{type(self).__name__} has no parameter {', '.join(unknown)}; "
                                 f"its parameters: {', '.join(current)}")
        data = [getattr(self, key) for key in self._data_args]
        type(self).__init__(self, *data, **{**current, **params})
        return self

    def _defaults(self) -> dict[str, Any]:
        """Each parameter's default (for ``repr``); a class that forwards ``**params`` adds the defaults of
        what it forwards them to."""
        return {key: p.default for key, p in self._signature().items()}

    def __repr__(self) -> str:
        defaults = self._defaults()
        shown = (f"{key}={value!r}" for key, value in self.get_params().items()
                 if not _same(value, defaults.get(key, inspect.Parameter.empty)))
        return f"{type(self).__name__}({', '.join(shown)})"
