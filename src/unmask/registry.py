"""One registry of attribution methods: a name maps to a class with a uniform interface.

Every method class is built as ``Method(model, **params)`` and explains with
``method.explain(inputs, target=None) -> Explanation``; ``unmask.explain`` is the one front door.
Its parameters are its constructor's signature (``get_params()``, :mod:`unmask._utils.params`), and the
class of each of unmask's methods carries its registry name as ``method``.
"""
from __future__ import annotations

from typing import Callable, TypeVar

from ._utils.registry import Registry

T = TypeVar("T", bound=type)

_REGISTRY: Registry[type] = Registry("method", ("unmask.lrp.method", "unmask.attribution"), "known methods", unique=True)
_METHODS = _REGISTRY.entries
_load = _REGISTRY.load


def register(name: str) -> Callable[[T], T]:
    """Class decorator that adds a method under ``name`` (e.g. ``"saliency"``, ``"lrp.epsilon"``)."""
    return _REGISTRY.register(name)


def methods() -> list[str]:
    """All registered method names, sorted."""
    return _REGISTRY.names()


def get(name: str) -> type:
    """The method class registered as ``name``; a ValueError lists the known names otherwise."""
    return _REGISTRY.get(name)
