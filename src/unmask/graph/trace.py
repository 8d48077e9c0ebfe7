"""Trace an ``nn.Module`` into a ``torch.fx`` graph whose leaves are the standard layers.

Standard ``torch.nn`` layers stay leaves (one node per call). Subclasses that override ``forward``
(e.g. a ``Conv2d`` that pads "same" before calling ``F.conv2d``) and user containers are traced
through, so functional residual adds, concatenations and paddings become explicit nodes.
"""
from __future__ import annotations

import copy
from typing import Iterable

from torch import fx, nn

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


class TraceError(RuntimeError):
    """The model could not be turned into a graph."""


def _torch_base(cls: type) -> type | None:
    for base in cls.__mro__:
        if base.__module__.startswith(("torch.nn", "torch.ao.nn")):
            return base
    return None


def is_standard_layer(module: nn.Module) -> bool:
    """True for a ``torch.nn`` layer, or a subclass of one that keeps its ``forward``."""
    if isinstance(module, _CONTAINERS):
        return False
    base = _torch_base(type(module))
    if base is None or base is nn.Module:
        return False
    return type(module).forward is base.forward


class _Tracer(fx.Tracer):
    def __init__(self, leaf_types: tuple[type, ...], leaf_names: frozenset[str]):
        super().__init__()
        self.leaf_types = leaf_types
        self.leaf_names = leaf_names

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if module_qualified_name in self.leaf_names or (self.leaf_types and isinstance(m, self.leaf_types)):
            return True
        return is_standard_layer(m)


def trace(
    model: nn.Module,
    leaf_types: Iterable[type] = (),
    leaf_names: Iterable[str] = (),
    copy_model: bool = True,
) -> fx.GraphModule:
    """Trace ``model`` symbolically; by default over a deep copy, so the caller may change it freely.

    ``leaf_types`` / ``leaf_names`` keep further modules as single nodes (e.g. a custom block that
    has its own relevance rule). The copy has its hooks removed and its parameters detached from
    autograd (explanations never train).
    """
    if copy_model:
        model = copy.deepcopy(model)
        for module in model.modules():
            for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
                getattr(module, hooks, {}).clear()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
    tracer = _Tracer(tuple(leaf_types), frozenset(leaf_names))
    try:
        graph = tracer.trace(model)
    except Exception as error:  # fx raises many types for untraceable code
        raise TraceError(
            f"could not trace {type(model).__name__} with torch.fx: {error}. Data-dependent control flow "
            "cannot be traced; give the offending module a rule so it stays a single node, or rewrite "
            "the branch without Python conditions on tensor values."
        ) from error
    return fx.GraphModule(tracer.root, graph, type(model).__name__)


def owner(node: fx.Node) -> tuple[str, type | None]:
    """Module path and type of the innermost module a node belongs to (``("", None)`` at top level)."""
    if node.op == "call_module":
        return str(node.target), None
    stack = node.meta.get("nn_module_stack")
    if not stack:
        return "", None
    path, module_type = list(stack.values())[-1]
    return str(path), module_type if isinstance(module_type, type) else None
