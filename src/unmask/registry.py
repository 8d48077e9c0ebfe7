"""One registry of attribution methods: a name maps to a class with a uniform interface.

Every method class is built as ``Method(model, **params)`` and explains with
``method.explain(inputs, target=None) -> Explanation``; ``unmask.explain`` is the one front door.
"""
from __future__ import annotations

from typing import Callable, TypeVar

_METHODS: dict[str, type] = {}
_LAZY_MODULES = ("unmask.lrp.method", "unmask.attribution")

T = TypeVar("T", bound=type)


def register(name: str) -> Callable[[T], T]:
    """Class decorator that adds a method under ``name`` (e.g. ``"saliency"``, ``"lrp.epsilon"``)."""

    def decorate(cls: T) -> T:
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"method {name!r} is already registered by {_METHODS[name].__name__}")
        _METHODS[name] = cls
        return cls

    return decorate


def _load() -> None:
    import importlib

    for module in _LAZY_MODULES:
        importlib.import_module(module)


def methods() -> list[str]:
    """All registered method names, sorted."""
    _load()
    return sorted(_METHODS)


def get(name: str) -> type:
    """The method class registered as ``name``; a ValueError lists the known names otherwise."""
    _load()
    try:
        return _METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(sorted(_METHODS))}") from None
