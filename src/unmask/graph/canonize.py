"""An explainable graph: the traced model with BatchNorm folded, in-place ops removed, kinds known.

Canonization works on the traced copy, never on the user's model. It
- turns in-place operations (``ReLU(inplace=True)``, ``x += y``, ``relu_``) into out-of-place ones, so
  every intermediate value stays available for the reverse pass;
- gives every convolution and dense layer, module or functional, an explicit :class:`Affine`;
- folds each BatchNorm into the weighted layer before it (``W' = W a``, ``b' = b a + c`` with
  ``a = gamma / sqrt(var + eps)``, ``c = beta - mean a``), or into the dense / unpadded convolution
  after it (``W' = W diag(a)``, ``b' = b + W c``); other BatchNorms stay as elementwise affine layers;
- merges an elementwise function of one tensor written as several steps (``x * relu6(x + 3) / 6``,
  ``x * sigmoid(x)``) into one ``activation`` step of that tensor: relevance passes as through any
  activation, instead of a product sending it to one factor and added constants absorbing it;
- marks which values are non-negative whatever the input (after a ReLU), so rules can skip passes;
- marks the first weighted layers: those that consume the input in the graph.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import fx, nn

from .kinds import is_elementwise, makes_nonnegative, node_kind
from .linear import Affine
from .trace import owner, trace

_OUT_OF_PLACE = {
    F.relu_: F.relu, torch.relu_: torch.relu, operator.iadd: operator.add, operator.isub: operator.sub,
    operator.imul: operator.mul, operator.itruediv: operator.truediv,
}
_PASS_THROUGH_NONNEG = {"structure", "maxpool", "avgpool", "sum"}


@dataclass
class Step:
    """One node of the explainable graph.

    ``inputs`` are the input-dependent nodes feeding it; ``module`` is the called module, or for a
    functional call the innermost module it was traced in (used to match rules by layer type).
    """

    node: fx.Node
    kind: str
    path: str
    module: nn.Module | None
    inputs: list[fx.Node] = field(default_factory=list)
    affine: Affine | None = None
    nonnegative: bool = False
    first: bool = False
    merged: list[str] = field(default_factory=list)  # the BatchNorms (and constant scalings) folded in
    region: list["Step"] = field(default_factory=list)  # inner steps of a merged elementwise function

    @property
    def name(self) -> str:
        return self.node.name

    def describe(self) -> str:
        what = type(self.module).__name__ if self.module is not None and self.node.op == "call_module" else (
            getattr(self.node.target, "__name__", str(self.node.target)))
        return f"{self.path or '<top>'} ({what})"


class ExplainableGraph:
    """A traced, canonized copy of a model that runs forward keeping every intermediate value."""

    def __init__(self, model: nn.Module, leaf_types: tuple[type, ...] = (), leaf_names: tuple[str, ...] = (),
                 fold_batchnorm: bool = True, example: torch.Tensor | None = None, copy_model: bool = True):
        self.module = trace(model, leaf_types, leaf_names, copy_model, example)
        self.shape = None if example is None else tuple(example.shape)  # None: valid for every input shape
        self.graph = self.module.graph
        self._remove_inplace()
        self.steps: dict[fx.Node, Step] = {}
        self._constants: dict[fx.Node, Any] = {}
        placeholders = [n for n in self.graph.nodes if n.op == "placeholder"]
        if not placeholders:
            raise ValueError("the model's forward takes no input")
        self.input = placeholders[0]
        self._defaults = {n: n.args[0] for n in placeholders[1:] if n.args}
        for extra in placeholders[1:]:
            if extra not in self._defaults:
                raise ValueError(
                    f"the model's forward takes several inputs ({', '.join(p.name for p in placeholders)}); "
                    "explanations need a single input tensor: wrap the model"
                )
        self.output = self._output_node()
        self._build_steps()
        self._merge_zero_pads()
        if fold_batchnorm:
            self._fold_batchnorms()
        self._merge_elementwise()
        self._mark_nonnegative()
        self._mark_first_layers()

    # construction -------------------------------------------------------------------------------
    def _remove_inplace(self) -> None:
        for module in self.module.modules():
            if getattr(module, "inplace", False) is True:
                module.inplace = False
        for node in self.graph.nodes:
            if node.op == "call_function":
                node.target = _OUT_OF_PLACE.get(node.target, node.target)
                if node.kwargs.get("inplace"):
                    node.kwargs = {**node.kwargs, "inplace": False}
            elif node.op == "call_method" and node.target.endswith("_") and not node.target.startswith("__"):
                if hasattr(torch.Tensor, node.target[:-1]):
                    node.target = node.target[:-1]

    def _output_node(self) -> fx.Node:
        out = next(n for n in self.graph.nodes if n.op == "output")
        value = out.args[0]
        if not isinstance(value, fx.Node):
            raise ValueError(
                "the model returns a structure (tuple, list or dict), not one tensor; wrap it so that forward "
                "returns the logits to explain"
            )
        return value

    def _value(self, arg: Any) -> Any:
        """Resolve a constant argument: a parameter, or a value computed from parameters only (weight
        standardisation, a scaled gain) is evaluated once and folded in."""
        if isinstance(arg, fx.Node):
            if arg in self._dynamic:
                raise ValueError(f"expected a constant, got node {arg.name}")
            with torch.no_grad():
                return self._lookup(arg, {})
        return arg

    def _build_steps(self) -> None:
        dynamic = self._dynamic = {self.input}
        for node in self.graph.nodes:
            if node.op in ("placeholder", "output"):
                continue
            if node.op == "get_attr":
                self._constants[node] = _get_attr(self.module, node.target)
                continue
            module = self.module.get_submodule(node.target) if node.op == "call_module" else None
            path, _ = owner(node)
            owner_module = module if module is not None else _find(self.module, path)
            inputs = [n for n in node.all_input_nodes if n in dynamic]
            kind = node_kind(node, module)
            if not inputs or kind == "constant":
                continue  # parameters, shapes, sizes: evaluated on demand, carry no relevance
            dynamic.add(node)
            if kind == "multiply":
                kind = "gate" if len(inputs) > 1 else "scale"
            step = Step(node, kind, path, owner_module, inputs)
            if kind in ("convolution", "linear"):
                step.affine = self._affine(node, module)
            self.steps[node] = step
        if self.output not in self.steps:
            raise ValueError("the model's output does not depend on its input")

    def _affine(self, node: fx.Node, module: nn.Module | None) -> Affine:
        if module is not None:
            if isinstance(module, nn.Linear):
                return Affine.dense(module.weight.detach(), _detach(module.bias))
            transposed = isinstance(module, nn.modules.conv._ConvTransposeNd)
            padded = None
            if not transposed and module.padding_mode != "zeros":
                padded = _mode_padding(module)
            return Affine.convolution(
                module.weight.detach(), _detach(module.bias), module.stride,
                0 if padded is not None else module.padding, module.dilation, module.groups, transposed,
                getattr(module, "output_padding", 0), padded,
            )
        target = node.target
        names = {
            F.linear: ("input", "weight", "bias"),
            F.conv1d: _CONV_ARGS, F.conv2d: _CONV_ARGS, F.conv3d: _CONV_ARGS,
        }.get(target, _TCONV_ARGS)
        bound = dict(zip(names, node.args))
        bound.update(node.kwargs)
        if any(isinstance(bound.get(k), fx.Node) and bound[k] in self._dynamic for k in ("weight", "bias")):
            raise ValueError(f"{node.name}: weights that depend on the input are not supported")
        weight = self._value(bound["weight"]).detach()
        bias = _detach(self._value(bound.get("bias")))
        if target is F.linear:
            return Affine.dense(weight, bias)
        return Affine.convolution(
            weight, bias, bound.get("stride", 1), bound.get("padding", 0), bound.get("dilation", 1),
            bound.get("groups", 1), target not in (F.conv1d, F.conv2d, F.conv3d), bound.get("output_padding", 0),
        )

    def _batchnorm_affine(self, node: fx.Node, module: nn.Module | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel ``(a, c)`` with ``BN(x) = a x + c`` in eval mode."""
        if module is not None:
            mean, var, weight, bias, eps = (module.running_mean, module.running_var, module.weight, module.bias,
                                            module.eps)
        else:
            names = ("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps")
            bound = dict(zip(names, node.args))
            bound.update(node.kwargs)
            if bound.get("training", False):
                raise ValueError(f"{node.name}: batch_norm is called with training=True; explain in eval mode")
            mean, var = self._value(bound["running_mean"]), self._value(bound["running_var"])
            weight, bias, eps = self._value(bound.get("weight")), self._value(bound.get("bias")), bound.get("eps", 1e-5)
        if mean is None or var is None:
            raise ValueError(f"{node.name}: BatchNorm without running statistics cannot be explained in eval mode")
        # in float64, rounded once when folded: the folded layer is as exact as the layer pair it replaces
        scale = (var.detach().double() + eps).rsqrt()
        if weight is not None:
            scale = scale * weight.detach().double()
        shift = -mean.detach().double() * scale + (bias.detach().double() if bias is not None else 0)
        return scale, shift

    def _fold_batchnorms(self) -> None:
        """Fold every per-channel affine step (BatchNorm in any form, ``x * c``, ``x / c``, ``x + c``, ``x - c``
        with a per-channel constant ``c``) into the weighted layer before it, through identity and dropout
        steps; a BatchNorm that has none is folded into the dense / unpadded convolutions after it."""
        for node, step in list(self.steps.items()):
            if node not in self.steps or len(step.inputs) != 1:
                continue
            channel_map = self._channel_map(step)
            if channel_map is None:
                continue
            scale, shift = channel_map
            producer = self._producer(step.inputs[0])
            if step.kind == "batchnorm" and self._fold_into_concatenated(node, step, producer, scale, shift):
                continue
            before = self.steps.get(producer)
            if before is not None and before.affine is not None and self._consumers(producer) == 1 and not (
                before.affine.transposed and before.affine.groups != 1
            ):
                channels = before.affine.weight.shape[before.affine.out_channel_dim]
                if step.kind == "batchnorm":  # already one value per channel
                    a, c = (scale, shift) if scale.numel() == channels else (None, None)
                else:
                    a, c = _per_channel(scale, before.affine, channels), _per_channel(shift, before.affine, channels)
                if a is not None and c is not None:
                    before.affine = before.affine.scaled(a, c)
                    self._merged_into(before, step)
                    self._bypass(node, step.inputs[0])
                    continue
            if step.kind != "batchnorm":
                continue
            after = self._consumer_steps(node)
            if after and all(s.affine is not None and _foldable_forward(s.affine)
                             and s.affine.weight.shape[1] == scale.numel() for s in after):
                for s in after:
                    s.affine = _fold_forward(s.affine, scale, shift)
                    self._merged_into(s, step)
                self._bypass(node, step.inputs[0])

    def _fold_into_concatenated(self, node: fx.Node, step: Step, producer: fx.Node, scale: torch.Tensor,
                                shift: torch.Tensor) -> bool:
        """A BatchNorm after ``torch.cat`` of weighted layers along channels (MixNet's mixed convolutions:
        split -> one convolution per chunk -> cat -> BatchNorm) is folded slice by slice: each layer gets the
        part of ``(scale, shift)`` that normalises its own output channels."""
        cat = self.steps.get(producer)
        if (cat is None or cat.node.op != "call_function" or cat.node.target not in (torch.cat, torch.concat)
                or self._consumers(producer) != 1):
            return False
        bound = {**dict(zip(("tensors", "dim"), cat.node.args)), **cat.node.kwargs}
        pieces = bound.get("tensors")
        if bound.get("dim", 0) != 1 or not isinstance(pieces, (list, tuple)) or len(set(pieces)) != len(pieces):
            return False
        layers = [self.steps.get(self._producer(p)) if isinstance(p, fx.Node) else None for p in pieces]
        if not all(layer is not None and layer.affine is not None and self._consumers(layer.node) == 1
                   and not (layer.affine.transposed and layer.affine.groups != 1) for layer in layers):
            return False
        channels = [layer.affine.weight.shape[layer.affine.out_channel_dim] for layer in layers]
        if sum(channels) != scale.numel():
            return False
        start = 0
        for layer, count in zip(layers, channels):
            layer.affine = layer.affine.scaled(scale[start:start + count], shift[start:start + count])
            self._merged_into(layer, step)
            start += count
        self._bypass(node, step.inputs[0])
        return True

    def _merge_elementwise(self) -> None:
        """Each maximal elementwise function ``h(x)`` of one tensor ``x`` that combines ``x`` with itself (a product
        ``x * g(x)``, a sum ``x + c x^3``) or is non-linear with constants inside (``relu6(x + 3)``) becomes one
        ``activation`` step with input ``x``; its inner steps stay for the forward pass and get no relevance.
        Affine ones (``x * c + d``) are left to BatchNorm folding and their own rules."""
        source: dict[fx.Node, fx.Node] = {}  # node -> the tensor it is an elementwise function of
        inner: dict[fx.Node, list[fx.Node]] = {}  # node -> the steps between that tensor and it
        order = {n: i for i, n in enumerate(self.steps)}
        for node, step in self.steps.items():
            if not is_elementwise(node, step.kind) or not step.inputs:
                continue
            roots = {source.get(n, n) for n in step.inputs}
            if len(roots) != 1:
                continue
            source[node] = roots.pop()
            members = {m for n in step.inputs if n in source for m in inner[n] + [n]}
            inner[node] = sorted(members, key=order.__getitem__)  # in forward order
        for node, root in source.items():
            if any(source.get(user) is root for user in node.users) and self.output is not node:
                continue  # not the end of its elementwise function
            top = self.steps[node]
            steps = [self.steps[n] for n in inner[node]]
            function = steps + [top]
            combines = any(len(s.inputs) > 1 for s in function)  # x * g(x), x + c x^3
            nonlinear = any(s.kind not in ("scale", "sum") for s in function)
            if not combines and (not nonlinear or all(s.kind in ("activation", "scale") for s in function)):
                continue  # affine (x * c + d: folded or its own steps), or a chain every rule passes through
            top.kind, top.inputs, top.region = "activation", [root], steps

    def _merge_zero_pads(self) -> None:
        """A zero pad whose only consumer is a convolution becomes part of it: rules then see the unpadded input
        and send no relevance to the padded zeros (as Zennit does for a padded ``Conv2d``)."""
        for node, step in list(self.steps.items()):
            amounts = _zero_pad_amounts(step)
            if amounts is None or self._consumers(node) != 1 or self.output is node:
                continue
            (user,) = [u for u in node.users if u in self.steps]
            conv = self.steps[user]
            if conv.affine is None or conv.inputs != [node]:
                continue
            merged = conv.affine.zero_padded(amounts)
            if merged is not None:
                conv.affine = merged
                self._merged_into(conv, step)
                self._bypass(node, step.inputs[0])

    def _channel_map(self, step: Step) -> tuple[Any, Any] | None:
        """``(scale, shift)`` if the step computes ``x * scale + shift`` with constants (BatchNorm in eval mode,
        a product, quotient, sum or difference with a constant), else ``None``."""
        node = step.node
        if step.kind == "batchnorm":
            module = self.module.get_submodule(node.target) if node.op == "call_module" else None
            return self._batchnorm_affine(node, module)
        operation = _ELEMENTWISE.get(node.target) if node.op != "call_module" else None
        if operation is None or step.kind not in ("scale", "sum") or node.kwargs or len(node.args) != 2:
            return None
        position = node.args.index(step.inputs[0]) if step.inputs[0] in node.args else None
        if position is None or (position == 1 and operation in ("div", "sub")):
            return None
        other = node.args[1 - position]
        if isinstance(other, fx.Node) and (other in self._dynamic or self._reads_input(other)):
            return None  # input-dependent, or computed from the input's shape (q * head_dim ** -0.5)
        value = self._value(other)
        if not isinstance(value, (int, float, torch.Tensor)) or isinstance(value, bool):
            return None
        return {"mul": (value, 0.0), "div": (1 / value, 0.0), "add": (1.0, value), "sub": (1.0, -value)}[operation]

    def _reads_input(self, node: fx.Node) -> bool:
        """Whether a constant node is computed from an input-dependent one (its shape, its size)."""
        seen, frontier = set(), [node]
        while frontier:
            current = frontier.pop()
            for source in current.all_input_nodes:
                if source in self._dynamic:
                    return True
                if source not in seen:
                    seen.add(source)
                    frontier.append(source)
        return False

    def _producer(self, node: fx.Node) -> fx.Node:
        """The node behind a chain of identity steps (``Identity``, dropout) that have no other consumer."""
        step = self.steps.get(node)
        while step is not None and _is_identity(step) and len(step.inputs) == 1 and self._consumers(node) == 1:
            node = step.inputs[0]
            step = self.steps.get(node)
        return node

    def _consumer_steps(self, node: fx.Node) -> list[Step] | None:
        """The steps that consume ``node``'s value, looking through identity steps; ``None`` if a non-step
        (the output) uses it."""
        found: list[Step] = []
        for user in node.users:
            step = self.steps.get(user)
            if step is None:
                if user.op == "output" or self.output is node:
                    return None
                continue  # a shape query
            if _is_identity(step):
                further = self._consumer_steps(user)
                if further is None:
                    return None
                found.extend(further)
            else:
                found.append(step)
        return None if self.output is node else found

    @staticmethod
    def _merged_into(layer: Step, folded: Step) -> None:
        owner_type = type(folded.module) if folded.node.op == "call_module" else owner(folded.node)[1]
        label = f"{folded.path} ({owner_type.__name__})" if folded.path and owner_type else folded.describe()
        if label not in layer.merged:
            layer.merged.append(label)

    def _consumers(self, node: fx.Node) -> int:
        """Steps that use ``node``'s value (shape queries such as ``x.ndim`` do not count)."""
        return sum(user in self.steps for user in node.users)

    def _bypass(self, node: fx.Node, source: fx.Node) -> None:
        for user in node.users:
            step = self.steps.get(user)
            if step is not None:
                step.inputs = [source if n is node else n for n in step.inputs]
        node.replace_all_uses_with(source)
        if self.output is node:
            self.output = source
        del self.steps[node]
        self.graph.erase_node(node)

    def _mark_nonnegative(self) -> None:
        for node, step in self.steps.items():
            module = self.module.get_submodule(node.target) if node.op == "call_module" else None
            if makes_nonnegative(node, module):
                step.nonnegative = True
            elif step.kind in _PASS_THROUGH_NONNEG and not _subtracts(node):
                step.nonnegative = all(self.nonnegative(n) for n in step.inputs) and _pads_nonnegative(node)

    def _mark_first_layers(self) -> None:
        frontier, seen = [self.input], set()
        while frontier:
            node = frontier.pop()
            for user in node.users:
                step = self.steps.get(user)
                if step is None or user in seen:
                    continue
                seen.add(user)
                if step.affine is not None:
                    step.first = True
                else:
                    frontier.append(user)

    # use -------------------------------------------------------------------------------------------
    def nonnegative(self, node: fx.Node) -> bool:
        """Whether the value of ``node`` is known to be >= 0 for every input."""
        step = self.steps.get(node)
        return step is not None and step.nonnegative

    def ordered(self) -> list[Step]:
        """Steps in topological (forward) order."""
        return [self.steps[n] for n in self.graph.nodes if n in self.steps]

    def evaluate(self, step: Step, env: dict[fx.Node, Any], overrides: dict[fx.Node, Any] | None = None) -> Any:
        """Run one step on the values in ``env`` (``overrides`` replace some inputs, e.g. for a vjp)."""
        node = step.node
        values = env if not overrides else {**env, **overrides}
        if overrides and step.region:  # a merged elementwise function: its inner steps see the overrides too
            for inner in step.region:
                values[inner.node] = self.evaluate(inner, values)
        if step.affine is not None:
            return step.affine(values[step.inputs[0]])
        return self._call(node, values)

    def _call(self, node: fx.Node, values: dict[fx.Node, Any]) -> Any:
        args = fx.node.map_arg(node.args, lambda n: self._lookup(n, values))
        kwargs = fx.node.map_arg(node.kwargs, lambda n: self._lookup(n, values))
        if node.op == "call_module":
            return self.module.get_submodule(node.target)(*args, **kwargs)
        if node.op == "call_function":
            return node.target(*args, **kwargs)
        return getattr(args[0], node.target)(*args[1:], **kwargs)

    def _lookup(self, node: fx.Node, values: dict[fx.Node, Any]) -> Any:
        if node in values:
            return values[node]
        if node in self._constants:
            return self._constants[node]
        if node in self._defaults:
            return self._defaults[node]
        return self._call(node, values)  # computed from constants only (e.g. a shape): on demand

    def forward(self, inputs: torch.Tensor) -> tuple[dict[Any, Any], torch.Tensor]:
        """Forward pass keeping every intermediate value: ``(values by node, output)``. A 2-d max pooling
        module also keeps its winners' indices, under ``(node, "indices")``, for its vjp."""
        env: dict[Any, Any] = {self.input: inputs}
        for step in self.ordered():
            pool = _max_pool_2d(step)
            if pool is not None and isinstance(env.get(step.inputs[0]), torch.Tensor) and env[step.inputs[0]].dim() == 4:
                env[step.node], env[(step.node, "indices")] = F.max_pool2d(
                    env[step.inputs[0]], pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode,
                    return_indices=True)
            else:
                env[step.node] = self.evaluate(step, env)
        return env, env[self.output]

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.forward(inputs)[1]


def _max_pool_2d(step: Step) -> nn.MaxPool2d | None:
    """The ``nn.MaxPool2d`` a step calls (one that does not return indices itself), else ``None``."""
    module = step.module
    if step.node.op == "call_module" and type(module) is nn.MaxPool2d and not module.return_indices:
        return module
    return None


_CONV_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_TCONV_ARGS = ("input", "weight", "bias", "stride", "padding", "output_padding", "groups", "dilation")


def _detach(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.detach()


def _get_attr(module: nn.Module, target: str) -> Any:
    value: Any = module
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _find(root: nn.Module, path: str) -> nn.Module | None:
    if not path:
        return None
    try:
        return root.get_submodule(path)
    except AttributeError:
        return None


def _mode_padding(module: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    padding = module._reversed_padding_repeated_twice
    mode = module.padding_mode
    return lambda x: F.pad(x, padding, mode=mode)


def _foldable_forward(affine: Affine) -> bool:
    if affine.kind == "linear":
        return True
    return (not affine.transposed and affine.padded is None and affine.pad is None
            and not isinstance(affine.padding, str)
            and all(p == 0 for p in affine.padding) and affine.groups == 1)


def _fold_forward(affine: Affine, scale: torch.Tensor, shift: torch.Tensor) -> Affine:
    """``f(a x + c)`` as one layer: ``W' = W diag(a)``, ``b' = b + W c`` (summed over the kernel)."""
    weight, dtype = affine.weight.double(), affine.weight.dtype  # in float64, rounded once
    channel = [1, -1] + [1] * (weight.dim() - 2)
    folded = weight * scale.double().reshape(channel)
    offset = (weight * shift.double().reshape(channel)).flatten(1).sum(1)
    bias = offset if affine.bias is None else affine.bias.double() + offset
    return Affine(affine.kind, folded.to(dtype), bias.to(dtype), affine.stride, affine.padding, affine.dilation,
                  affine.groups)


_ELEMENTWISE = {operator.mul: "mul", torch.mul: "mul", "mul": "mul", operator.truediv: "div", torch.div: "div",
                "div": "div", operator.add: "add", torch.add: "add", "add": "add", operator.sub: "sub",
                torch.sub: "sub", "sub": "sub"}
_IDENTITY_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
_IDENTITY_FUNCTIONS = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, torch.clone, "clone",
                       "contiguous"}


def _is_identity(step: Step) -> bool:
    """A step that returns its input unchanged in eval mode (identity, dropout, clone)."""
    node = step.node
    if node.op == "call_module":
        return isinstance(step.module, _IDENTITY_MODULES)
    return node.target in _IDENTITY_FUNCTIONS and not (node.kwargs.get("training") or (
        node.target in (F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout) and len(node.args) > 2
        and node.args[2]))


def _zero_pad_amounts(step: Step) -> list[int] | None:
    """The amounts of a constant-zero pad step (``nn.ZeroPad*d``, ``nn.ConstantPad*d(0)``, ``F.pad(value=0)``)."""
    node = step.node
    if node.op == "call_module":
        module = step.module
        zero = isinstance(module, (nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d)) or (
            isinstance(module, (nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d)) and module.value == 0)
        return list(module.padding) if zero else None
    if node.target is not F.pad or len(step.inputs) != 1:
        return None
    names = ("input", "pad", "mode", "value")
    bound = {**dict(zip(names, node.args)), **node.kwargs}
    amounts = bound.get("pad")
    if bound.get("mode", "constant") != "constant" or bound.get("value") not in (None, 0, 0.0):
        return None
    if not isinstance(amounts, (list, tuple)) or not all(isinstance(a, int) for a in amounts):
        return None  # computed from shapes in a symbolic trace
    return list(amounts)


def _per_channel(value: Any, affine: Affine, channels: int) -> torch.Tensor | None:
    """A constant as one value per output channel of ``affine``, or ``None`` if it varies otherwise."""
    weight = affine.weight
    t = torch.as_tensor(value, dtype=weight.dtype, device=weight.device)
    if t.dim() == 0:
        return t.expand(channels)
    if affine.kind == "linear":
        shape, axis = tuple(t.shape), t.dim() - 1
    else:
        if t.dim() > weight.dim():
            return None
        shape, axis = (1,) * (weight.dim() - t.dim()) + tuple(t.shape), 1
    if any(n != 1 for i, n in enumerate(shape) if i != axis) or shape[axis] not in (1, channels):
        return None
    return t.reshape(-1).expand(channels)


def _subtracts(node: fx.Node) -> bool:
    return node.target in (operator.sub, operator.isub, torch.sub, "sub", "sub_")


def _pads_nonnegative(node: fx.Node) -> bool:
    if node.target is F.pad:
        value = node.kwargs.get("value", node.args[3] if len(node.args) > 3 else 0)
        mode = node.kwargs.get("mode", node.args[2] if len(node.args) > 2 else "constant")
        return mode != "constant" or value is None or value >= 0
    return True
