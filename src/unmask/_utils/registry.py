"""A registry filled lazily: names mapped to objects by ``register(name)`` in modules that are imported on
the first lookup. Behind :mod:`unmask.registry` (attribution methods) and :mod:`unmask.zoo` (models)."""
from __future__ import annotations

import importlib
from typing import Callable, Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """``kind``: what an entry is, for messages (``"method"``); ``modules``: the modules whose import
    registers the built-in entries; ``known``: how an unknown-name error introduces the names there are;
    ``unique``: refuse a second, different object under a taken name."""

    def __init__(self, kind: str, modules: tuple[str, ...], known: str, *, unique: bool = False) -> None:
        self.kind, self.modules, self.known, self.unique = kind, modules, known, unique
        self.entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that adds its object under ``name`` and returns it unchanged."""

        def decorate(entry: T) -> T:
            taken = self.entries.get(name)
            if self.unique and taken is not None and taken is not entry:
                raise ValueError(f"{self.kind} {name!r} is already registered by {getattr(taken, '__name__', taken)}")
            self.entries[name] = entry
            return entry

        return decorate

    def load(self) -> None:
        """Import the modules that register the built-in entries (a no-op once they are imported)."""
        for module in self.modules:
            importlib.import_module(module)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self.load()
        return sorted(self.entries)

    def get(self, name: str) -> T:
        """The entry ``name``; a ValueError that lists the names there are otherwise."""
        self.load()
        try:
            return self.entries[name]
        except KeyError:
            raise ValueError(f"unknown {self.kind} {name!r}; {self.known}: {', '.join(sorted(self.entries))}") from None

