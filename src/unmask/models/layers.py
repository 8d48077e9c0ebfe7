"""Finding a layer of a model by module, by its name in ``model.named_modules()``, or by default."""
from __future__ import annotations

import difflib

from torch import nn

__all__ = ["find_layer", "resolve_layer"]

_SHOWN = 60


def find_layer(model: nn.Module, layer: nn.Module | str | None, default: type[nn.Module] | None = nn.Conv2d) -> tuple[str, nn.Module]:
    """Name and module of ``layer``: a submodule, its name in ``model.named_modules()``, or ``None`` for
    the last module of type ``default`` in ``named_modules()`` order (the last ``nn.Conv2d``).

    An unknown name raises a ValueError that suggests close names and lists the model's layers."""
    modules = dict(model.named_modules())
    if layer is None:
        if default is None:
            raise ValueError("give a layer: a module name from model.named_modules() or the module itself")
        matches = [name for name, module in modules.items() if isinstance(module, default)]
        if not matches:
            kind = f"nn.{default.__name__}" if default.__module__.startswith("torch.nn") else default.__name__
            raise ValueError(f"the model has no {kind} layer; pass the layer by module or name")
        return matches[-1], modules[matches[-1]]
    if isinstance(layer, str):
        if layer and layer in modules:
            return layer, modules[layer]
        raise ValueError(_unknown(model, layer, [n for n in modules if n]))
    if isinstance(layer, nn.Module):
        for name, module in modules.items():
            if module is layer:
                return name, module
        raise ValueError(f"the given {type(layer).__name__} layer is not a submodule of the model")
    raise ValueError(f"layer must be a module, a module name or None, got {type(layer).__name__}")


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule ``name`` of ``model`` (as in ``model.named_modules()``), or a ValueError listing the names."""
    if not isinstance(name, str):
        raise ValueError(_unknown(model, name, [n for n, _ in model.named_modules() if n]))
    return find_layer(model, name)[1]


def _unknown(model: nn.Module, name: object, names: list[str]) -> str:
    close = difflib.get_close_matches(str(name), names, n=5, cutoff=0.5)
    shown = names[:_SHOWN]
    more = "" if len(names) <= _SHOWN else f" ... ({len(names) - _SHOWN} more; see model.named_modules())"
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"{type(model).__name__} has no layer {name!r}.{hint} Layers are module names from model.named_modules(): "
        f"{', '.join(shown)}{more}"
    )
