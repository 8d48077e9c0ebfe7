"""Method parameters and targets as the command line takes them: ``--param [METHOD:]KEY=VALUE`` and
``--target``."""
from __future__ import annotations

import ast
from typing import Any, Callable, Sequence

from .._utils import params as _signature
from ._args import UsageError

__all__ = ["CLI_DEFAULT_PARAMS", "accepts", "method_params", "one_method_params", "parameter_names", "parse_params",
           "parse_target"]


def parse_target(text: str, classes: Sequence[str]) -> int | None:
    """``'predicted'`` -> None; ``'281'`` -> 281; a class name (case-insensitive) -> its index."""
    if text == "predicted":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    lowered = text.strip().lower()
    from ..models import zoo

    full = zoo.imagenet_classes(full=True) if list(classes) == list(zoo.imagenet_classes()) else ()
    for index, name in enumerate(classes):
        if name.lower() == lowered or (full and lowered in (n.strip().lower() for n in full[index].split(","))):
            return index
    raise UsageError(f"--target {text!r} is neither 'predicted', a class index, nor a class name of the model")


#: Parameters the command line gives methods whose own default for them is ``None`` (unbounded), unless
#: --param says otherwise: small internal batches keep integrated gradients fast and light on a CPU.
CLI_DEFAULT_PARAMS = {"batch_size": 16}


def parse_params(specs: Sequence[str] | None) -> list[tuple[str | None, str, Any]]:
    """``["steps=16", "lrp.epsilon:epsilon=1e-3"]`` -> ``[(None, "steps", 16), ("lrp.epsilon", "epsilon", 0.001)]``.

    Values are Python literals (numbers, booleans, tuples, strings in quotes); anything else stays a string.
    """
    parsed = []
    for spec in specs or []:
        key, sep, raw = spec.partition("=")
        method, colon, key = key.rpartition(":") if ":" in key else (None, "", key)
        key = key.strip()
        if not sep or not key.isidentifier() or (colon and not method):
            raise UsageError(f"--param {spec!r} is not of the form KEY=VALUE or METHOD:KEY=VALUE")
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()
        parsed.append((method or None, key, value))
    return parsed


def parameter_names(name: str, cls: type) -> frozenset[str] | None:
    """Keyword parameters the method ``name`` takes, read from its constructor's signature (every
    ``lrp.<preset>`` spells its preset's out); ``None`` when it forwards ``**params`` (``lrp``,
    ``smoothgrad``) and so they cannot be told in advance."""
    return _signature.parameter_names(cls)


def _old_names(cls: type) -> dict[str, str]:
    """Deprecated keyword aliases the constructor still takes (``internal_batch_size`` -> ``batch_size``)."""
    return dict(getattr(cls.__init__, "__renamed_keywords__", {}))


def accepts(name: str, cls: type) -> Callable[[str], bool]:
    names = parameter_names(name, cls)
    return (lambda key: True) if names is None else (names | set(_old_names(cls))).__contains__


def method_params(name: str, cls: type, net: Any, params: list[tuple[str | None, str, Any]]) -> dict[str, Any]:
    """Keyword arguments for method ``name``: box bounds (the z^B rule needs the valid input range) and
    :data:`CLI_DEFAULT_PARAMS` where the method is known to take them, then the user's ``--param`` values."""
    known = parameter_names(name, cls)
    chosen: dict[str, Any] = {}
    if known is not None and {"low", "high"} <= known:
        chosen.update(low=net.low, high=net.high)
    if known is not None:
        signature = _signature.signature_parameters(cls) or {}
        chosen.update({key: value for key, value in CLI_DEFAULT_PARAMS.items()
                       if key in signature and signature[key].default is None})
    takes = accepts(name, cls)
    chosen.update(_checked(name, cls, [(m, k, v) for m, k, v in params if m is None and takes(k)]))
    chosen.update(_checked(name, cls, [(m, k, v) for m, k, v in params if m == name]))
    return chosen


def one_method_params(name: str, cls: type, specs: Sequence[str] | None) -> dict[str, Any]:
    """``--param [METHOD:]KEY=VALUE`` of a command that runs the one method ``name``: every key must be
    one of its parameters (a one-line :class:`UsageError` lists them otherwise)."""
    params = parse_params(specs)
    for method, key, _ in params:
        if method not in (None, name):
            raise UsageError(f"--param {method}:{key}: {method!r} is not the method run ({name!r})")
    return _checked(name, cls, params)


def _checked(name: str, cls: type, params: list[tuple[str | None, str, Any]]) -> dict[str, Any]:
    """``{key: value}`` for method ``name``, old keyword names mapped to the new; an unknown key is refused."""
    known, takes, old = parameter_names(name, cls), accepts(name, cls), _old_names(cls)
    chosen: dict[str, Any] = {}
    for method, key, value in params:
        if not takes(key):
            where = f"{method}:{key}" if method else key
            raise UsageError(f"--param {where}: method {name!r} has no parameter {key!r}; it takes {', '.join(sorted(known or ()))}")
        chosen[old.get(key, key)] = value
    return chosen
