"""Old public names kept for one release: module attributes, keywords and class attributes that warn and forward."""
from __future__ import annotations

import functools
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


def renamed_keywords(**old_to_new: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator under which each old keyword (``random_state="seed"``) still works, with a
    DeprecationWarning, as the new one; both at once is a TypeError. The signature shows the new names only.
    The aliases are listed on the function as ``__renamed_keywords__`` (the command line accepts them too)."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{function.__qualname__}() got both {new}= and its old name {old}=")
                    warnings.warn(f"{function.__qualname__}(): {old}= is now {new}=", DeprecationWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        wrapper.__renamed_keywords__ = dict(old_to_new)  # type: ignore[attr-defined]
        return wrapper

    return decorate


class renamed_attribute:
    """A class attribute under an old name that reads (with a DeprecationWarning) the new one, on the class
    and on its instances: ``name = renamed_attribute("method")``; with ``call=True`` the old attribute is the
    result of the new method (``params = renamed_attribute("get_params", call=True)``)."""

    def __init__(self, new: str, call: bool = False) -> None:
        self.new, self.call = new, call

    def __set_name__(self, owner: type, name: str) -> None:
        self.old = name

    def __get__(self, instance: Any, owner: type) -> Any:
        new = self.new + "()" * self.call
        warnings.warn(f"{owner.__name__}.{self.old} is now {owner.__name__}.{new}", DeprecationWarning, stacklevel=2)
        value = getattr(owner if instance is None else instance, self.new)
        return value() if self.call and instance is not None else value
