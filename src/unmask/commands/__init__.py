"""Deprecated: the commands are :mod:`unmask.cli`'s modules now (``unmask.cli.attribute`` ...); this alias
goes in the next release."""
import importlib
import warnings
from typing import Any


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    warnings.warn(f"unmask.commands.{name} is now unmask.cli.{name}", DeprecationWarning, stacklevel=2)
    try:
        return importlib.import_module(f"unmask.cli.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module 'unmask.commands' has no attribute {name!r}") from None
