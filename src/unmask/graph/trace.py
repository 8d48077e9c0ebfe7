"""Trace an ``nn.Module`` into a ``torch.fx`` graph whose leaves are the standard layers.

Standard ``torch.nn`` layers stay leaves (one node per call). Subclasses that override ``forward``
(e.g. a ``Conv2d`` that pads "same" before calling ``F.conv2d``) and user containers are traced
through, so functional residual adds, concatenations and paddings become explicit nodes.

Without an example input the trace is symbolic and holds for every input shape. With ``example`` it
is specialised to that input: the model runs on it while it is traced, so shapes (``x.shape``,
``x.size()``, ``len(x)``) are plain numbers, Python branches and arithmetic on them are resolved,
and branches on values computed from parameters only are taken as they are. A branch on the *values*
of the input stops the trace with an error that names the module.
"""
from __future__ import annotations

import copy
from typing import Any, Iterable, Iterator

import torch
from torch import fx, nn

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)
# Tensor metadata that is a plain value in a trace specialised to the input shape.
_METADATA = frozenset({"shape", "ndim", "dtype", "device", "is_cuda", "layout"})
_METADATA_METHODS = frozenset({"size", "dim", "numel", "nelement", "is_floating_point", "is_complex",
                               "get_device", "element_size", "stride", "is_contiguous"})


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
        super().__init__(param_shapes_constant=True)
        self.leaf_types = leaf_types
        self.leaf_names = leaf_names

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        if module_qualified_name in self.leaf_names or (self.leaf_types and isinstance(m, self.leaf_types)):
            return True
        return is_standard_layer(m)


class _ConcreteProxy(fx.Proxy):
    """A proxy that knows the value it stands for on the example input (kept by its tracer)."""

    @property
    def value(self) -> Any:
        return self.tracer.values[self.node]

    def __getattr__(self, k: str) -> Any:
        if k in _METADATA or k in _METADATA_METHODS:
            return getattr(self.value, k)
        return super().__getattr__(k)

    def __len__(self) -> int:
        return len(self.value)


class _ConcreteTracer(_Tracer):
    """Traces while running the model on an example input: every node's value is known."""

    def __init__(self, leaf_types: tuple[type, ...], leaf_names: frozenset[str], example: torch.Tensor):
        super().__init__(leaf_types, leaf_names)
        self.example = example
        self.values: dict[fx.Node, Any] = {}
        self.dynamic: set[fx.Node] = set()  # nodes whose value depends on the input
        self._running = False  # evaluating a node on concrete values: modules run, nothing is recorded

    def proxy(self, node: fx.Node) -> fx.Proxy:
        return _ConcreteProxy(node, self)

    def create_proxy(self, kind, target, args, kwargs, name=None, type_expr=None, proxy_factory_fn=None):
        proxy = super().create_proxy(kind, target, args, kwargs, name, type_expr, proxy_factory_fn)
        node = proxy.node
        if kind == "placeholder":
            first = not any(n.op == "placeholder" for n in self.values)
            self.values[node] = self.example if first else (args[0] if args else None)
            if first:
                self.dynamic.add(node)
            return proxy
        concrete = fx.node.map_aggregate(args, self._concrete), fx.node.map_aggregate(kwargs, self._concrete)
        self._running = True
        try:
            with torch.no_grad():
                self.values[node] = self._run(kind, target, *concrete)
        finally:
            self._running = False
        if any(n in self.dynamic for n in node.all_input_nodes):
            self.dynamic.add(node)
        return proxy

    def call_module(self, m: nn.Module, forward: Any, args: tuple, kwargs: dict) -> Any:
        if self._running:
            return forward(*args, **kwargs)
        return super().call_module(m, forward, args, kwargs)

    def getattr(self, attr: str, attr_val: Any, parameter_proxy_cache: dict) -> Any:
        if self._running:
            return attr_val
        return super().getattr(attr, attr_val, parameter_proxy_cache)

    def _concrete(self, a: Any) -> Any:
        return self.values[a.node] if isinstance(a, fx.Proxy) else a

    def _run(self, kind: str, target: Any, args: tuple, kwargs: dict) -> Any:
        if kind == "get_attr":
            value: Any = self.root
            for part in target.split("."):
                value = getattr(value, part)
            return value
        if kind == "call_module":
            return self.root.get_submodule(target)(*args, **kwargs)
        if kind == "call_method":
            return getattr(args[0], target)(*args[1:], **kwargs)
        return target(*args, **kwargs)

    def to_bool(self, obj: fx.Proxy) -> bool:
        if obj.node not in self.dynamic:
            return bool(self.values[obj.node])  # computed from parameters or shapes only
        path, module_type = next(reversed(self.module_stack.values()), ("", None))
        where = f"{path} ({getattr(module_type, '__name__', module_type)})" if path else "the model's forward"
        key = path or "<module path>"
        raise TraceError(
            f"{where} branches on the values of its input (a Python condition on a tensor), which no single "
            f"graph can follow. Give that module its own rule so it stays one node, e.g. "
            f"Composite(..., names={{'{key}': rules.Epsilon()}}), or rewrite the branch with torch.where"
        )

    def iter(self, obj: fx.Proxy) -> Iterator:
        value = self.values[obj.node]
        count = value.shape[0] if isinstance(value, torch.Tensor) else len(value)
        return iter([obj[i] for i in range(count)])


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy without hooks whose parameters do not require gradients (explanations never train)."""
    model = copy.deepcopy(model)
    for module in model.modules():
        for hooks in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            getattr(module, hooks, {}).clear()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model


def trace(
    model: nn.Module,
    leaf_types: Iterable[type] = (),
    leaf_names: Iterable[str] = (),
    copy_model: bool = True,
    example: torch.Tensor | None = None,
) -> fx.GraphModule:
    """Trace ``model``; by default over a deep copy, so the caller may change it freely.

    ``leaf_types`` / ``leaf_names`` keep further modules as single nodes (e.g. a custom block that
    has its own relevance rule). The copy has its hooks removed and its parameters detached from
    autograd (explanations never train). ``example``: an input batch to specialise the trace to its
    shape (see the module docstring); the graph is then valid for inputs of that shape only.
    """
    if copy_model:
        model = frozen_copy(model)
    leaves = (tuple(leaf_types), frozenset(leaf_names))
    tracer = _Tracer(*leaves) if example is None else _ConcreteTracer(*leaves, example)
    try:
        graph = tracer.trace(model)
    except TraceError:
        raise
    except Exception as error:  # fx raises many types for untraceable code
        hint = ("give the offending module a rule so it stays a single node, or rewrite the branch without "
                "Python conditions on tensor values") if example is None else (
                "give the offending module a rule so it stays a single node")
        raise TraceError(f"could not trace {type(model).__name__} with torch.fx: {error}. {hint}.") from error
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
