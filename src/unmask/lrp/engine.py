"""The reverse pass: relevance flows from the output to the input, one rule per graph step."""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import torch
from torch import fx, nn

from ..graph.canonize import ExplainableGraph, Step
from ..graph.linear import Affine
from .composites import Composite
from .rules import Rule


class UnsupportedLayerError(ValueError):
    """A graph step received relevance but no rule applies to it."""


@dataclass
class Layer:
    """What a rule sees of one step: its input values, output, weights and non-negativity."""

    step: Step
    inputs: list[torch.Tensor]
    output: Any
    nonnegative: list[bool]
    graph: ExplainableGraph
    values: dict[fx.Node, Any]

    @property
    def affine(self) -> Affine | None:
        return self.step.affine

    @property
    def module(self) -> nn.Module | None:
        return self.step.module

    @property
    def node(self) -> fx.Node:
        return self.step.node

    def describe(self) -> str:
        return f"node {self.step.name!r} at {self.step.describe()}"

    def arguments(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The node's call arguments with values in place of nodes (constants computed on demand)."""
        resolve = lambda n: self.graph._lookup(n, self.values)  # noqa: E731
        return fx.node.map_arg(self.node.args, resolve), fx.node.map_arg(self.node.kwargs, resolve)

    def vjp(self, grad: Any) -> list[torch.Tensor | None]:
        """``J^T grad`` for each input (``None`` for inputs the output does not depend on)."""
        if self.affine is not None:
            return [self.affine.transpose(grad, self.inputs[0])]
        if _takes_piece(self.step.node, self.inputs):  # one piece of split/chunk/unbind: routed to its slot
            return [grad] + [None] * (len(self.inputs) - 1)
        indices = self.values.get((self.step.node, "indices"))
        if indices is not None:  # max pooling: the gradient goes to the winners the forward pass recorded
            (x,) = self.inputs
            routed = x.new_zeros(x.shape[:2] + (x.shape[2] * x.shape[3],))
            routed.scatter_add_(2, indices.flatten(2), grad.flatten(2).to(x.dtype))
            return [routed.view_as(x)]
        carriers = [i for i, x in enumerate(self.inputs) if isinstance(x, torch.Tensor) and x.is_floating_point()]
        with torch.enable_grad():
            leaves = {self.step.inputs[i]: self.inputs[i].detach().requires_grad_(True) for i in carriers}
            out = self.graph.evaluate(self.step, self.values, leaves)
            outs, grads = _pairs(out, grad)
            if not outs:
                return [None] * len(self.inputs)
            found = torch.autograd.grad(outs, list(leaves.values()), grads, allow_unused=True)
        result: list[torch.Tensor | None] = [None] * len(self.inputs)
        for i, g in zip(carriers, found):
            result[i] = g
        return result


def _pairs(out: Any, grad: Any) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    if isinstance(out, torch.Tensor):
        return ([out], [grad]) if out.requires_grad else ([], [])
    outs, grads = [], []
    for o, g in zip(out, grad):
        if g is not None and isinstance(o, torch.Tensor) and o.requires_grad:
            outs.append(o)
            grads.append(g)
    return outs, grads


class Engine:
    """Binds a composite's rules to a graph and runs forward and reverse passes."""

    def __init__(self, graph: ExplainableGraph, composite: Composite):
        self.graph = graph
        self.composite = composite
        self.rules: dict[fx.Node, Rule | None] = {s.node: composite.rule_for(s) for s in graph.ordered()}
        for step in graph.ordered():
            rule = self.rules[step.node]
            if rule is not None and rule.needs_weights and step.affine is None:
                raise ValueError(f"{type(rule).__name__} was mapped to {step.describe()} ({step.kind}), "
                                 "which has no weights; it applies to convolutions and dense layers only")

    def backward(self, values: dict[fx.Node, Any], relevance: torch.Tensor,
                 record: dict[str, Any] | None = None) -> torch.Tensor:
        """Propagate ``relevance`` (shaped like the output) to the input.

        ``record``, if given, receives the relevance at every step's output, keyed by node name.
        """
        graph = self.graph
        pending: dict[fx.Node, Any] = {graph.output: relevance}
        for step in reversed(graph.ordered()):
            r = pending.pop(step.node, None)
            if r is None:
                continue
            if record is not None:
                record[step.name] = r
            rule = self.rules[step.node]
            if rule is None:
                raise UnsupportedLayerError(
                    f"no relevance rule for node {step.name!r} ({step.kind}: {step.describe()}). Register one "
                    f"by name, e.g. unmask.LRP(model, composite=Composite(..., names={{'{step.path or step.name}': "
                    "rules.Epsilon()}})), or by type with Composite({YourModule: rules.Epsilon()})"
                )
            layer = Layer(
                step, [values[n] for n in step.inputs], values[step.node],
                [graph.nonnegative(n) for n in step.inputs], graph, values,
            )
            for node, part in zip(step.inputs, rule(layer, r)):
                if part is not None:
                    _accumulate(pending, node, part, step, values)
        result = pending.get(graph.input)
        if result is None:
            return torch.zeros_like(values[graph.input])
        return result


def _takes_piece(node: fx.Node, inputs: list[Any]) -> bool:
    """``pieces[i]``: an item taken from the tuple of a multi-output op (``split``, ``chunk``, ``unbind``)."""
    return node.op == "call_function" and node.target is operator.getitem and isinstance(inputs[0], (tuple, list))


def _accumulate(pending: dict[fx.Node, Any], node: fx.Node, part: torch.Tensor, step: Step,
                values: dict[fx.Node, Any]) -> None:
    """Add relevance for ``node``; an item taken from a tuple (``split``, ``chunk``) goes to its slot (a
    slice of pieces to theirs), so pieces used twice add up and unused ones stay empty."""
    if _takes_piece(step.node, [values[node]]):
        pieces = values[node]
        slots = pending.setdefault(node, [None] * len(pieces))
        index = step.node.args[1]
        indices = range(len(pieces))[index] if isinstance(index, slice) else [range(len(pieces))[index]]
        parts = part if isinstance(index, slice) else [part]
        for i, p in zip(indices, parts):
            if p is not None:
                slots[i] = p if slots[i] is None else slots[i] + p
        return
    current = pending.get(node)
    pending[node] = part if current is None else current + part
