"""Old public names kept for one release: a module-level ``__getattr__`` that warns and forwards."""
from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping


def renamed(module: str, names: Mapping[str, str], namespace: Mapping[str, Any]) -> Callable[[str], Any]:
    """A ``__getattr__`` for ``module`` under which each old name in ``names`` gives ``namespace[new]``
    with a DeprecationWarning; any other name raises AttributeError as usual."""

    def __getattr__(name: str) -> Any:
        if name in names:
            warnings.warn(f"{module}.{name} is now {module}.{names[name]}", DeprecationWarning, stacklevel=2)
            return namespace[names[name]]
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
