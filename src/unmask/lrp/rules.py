"""Relevance rules: each maps a layer's output relevance ``R_k`` to its inputs' relevance ``R_j``.

Notation: ``x`` the layer input, ``z = f(x; W, b)`` its output, ``J^T`` the transposed layer (the
vector-Jacobian product), ``s = R / stab(z)`` with ``stab(z) = z + eps * sign(z)`` (sign(0) = +1).
``W+ = max(W, 0)``, ``W- = min(W, 0)``, likewise ``x+``, ``x-``, ``b+``, ``b-``. Rules that need
weights (all but Epsilon, Basic, Norm, Pass, Gradient, AveragePool, Gate) apply to convolutions and
dense layers only. When the engine knows that ``x >= 0`` (it follows a ReLU), rules skip the terms
that multiply ``x-``, which are zero.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from .._utils.validation import finite, finite_values

if TYPE_CHECKING:
    from .engine import Layer

Relevances = list  # list[torch.Tensor | None], one entry per input-dependent input of the layer


def stabilize(z: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``z + epsilon * sign(z)`` with ``sign(0) = +1`` (a new tensor)."""
    step = torch.where(z >= 0, _scalar(epsilon, z), _scalar(-epsilon, z))
    return step.add_(z)


def divide(relevance: torch.Tensor, z: torch.Tensor, epsilon: float) -> torch.Tensor:
    """``relevance / stab(z)``; with ``epsilon == 0`` a zero denominator gives 0 instead of NaN."""
    if epsilon > 0:
        denominator = stabilize(z, epsilon)
        return torch.div(relevance, denominator, out=denominator) if relevance.shape == z.shape else \
            relevance / denominator
    return torch.where(z == 0, _scalar(0.0, z), relevance / torch.where(z == 0, _scalar(1.0, z), z))


def divide_signed(relevance: torch.Tensor, z: torch.Tensor, epsilon: float, sign: float) -> torch.Tensor:
    """``relevance / (z + sign * epsilon)`` for a fresh ``z`` known to have that sign everywhere (or be 0,
    where the numerators vanish too); reuses ``z``'s memory instead of testing signs."""
    z.add_(sign * epsilon)
    return torch.div(relevance, z, out=z)


def _scalar(value: float, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(value, dtype=like.dtype, device=like.device)


class Rule:
    """Base class: ``rule(layer, relevance) -> [relevance per input]``."""

    needs_weights = False

    def __call__(self, layer: "Layer", relevance: Any) -> Relevances:
        raise NotImplementedError

    def _params(self) -> dict[str, Any]:
        params = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        if params.get("zero_bias") is False:
            del params["zero_bias"]  # the default: not shown
        return params

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={_short(v)}" for k, v in self._params().items())
        return f"{type(self).__name__}({params})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and repr(self) == repr(other)

    def __hash__(self) -> int:
        return hash(repr(self))


def _short(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}" if value.numel() > 1 else f"{value.item():g}"
    return repr(value)


class Epsilon(Rule):
    """LRP-epsilon (Bach et al. 2015): ``R_j = x_j * [J^T (R / stab(z))]_j``, ``z`` including the bias.

    Works on any layer (for a convolution ``J^T`` is the transposed convolution); the stabiliser takes the
    sign of ``z``, so it absorbs relevance where ``|z|`` is small.
    """

    def __init__(self, epsilon: float = 1e-6, zero_bias: bool = False):
        self.epsilon = finite("epsilon", epsilon, minimum=0)
        self.zero_bias = bool(zero_bias)

    def __call__(self, layer: "Layer", relevance: torch.Tensor) -> Relevances:
        z = layer.output
        if self.zero_bias and layer.affine is not None and layer.affine.bias is not None:
            z = layer.affine(layer.inputs[0], bias=None)
        grads = layer.vjp(divide(relevance, z, self.epsilon))
        if layer.affine is not None:  # a fresh transpose: scale it in place
            return [grads[0].mul_(layer.inputs[0])]
        return [None if g is None else x * g for x, g in zip(layer.inputs, grads)]


class Basic(Epsilon):
    """LRP-0 (Bach et al. 2015): ``R_j = sum_k x_j w_jk / z_k R_k``; equals gradient x input on ReLU nets."""

    def __init__(self, zero_bias: bool = False) -> None:
        super().__init__(0.0, zero_bias)

    def _params(self) -> dict[str, Any]:
        return {"zero_bias": True} if self.zero_bias else {}


class Norm(Epsilon):
    """Proportional redistribution for sums and average pooling: ``R_j = x_j / stab(sum_i x_i) * R``.

    The epsilon rule with a tiny stabiliser; a residual add ``z = a + b`` splits ``R`` in proportion to
    each branch's contribution, ``R_a = a / z * R``.
    """

    def __init__(self, stabilizer: float = 1e-6):
        super().__init__(stabilizer)

    def _params(self) -> dict[str, Any]:
        return {"stabilizer": self.epsilon}


class Pass(Rule):
    """``R_in = R_out`` for elementwise layers (activations, scalings): relevance passes unchanged."""

    def __call__(self, layer: "Layer", relevance: torch.Tensor) -> Relevances:
        if len(layer.inputs) != 1 or layer.inputs[0].shape != relevance.shape:
            raise ValueError(f"{layer.describe()}: Pass needs one input shaped like the output")
        return [relevance]


class Gradient(Rule):
    """``R_in = J^T R``: routes relevance through reshapes, concatenations, paddings and slices, and
    through max pooling to the winning input (winner-take-all)."""

    def __call__(self, layer: "Layer", relevance: Any) -> Relevances:
        return layer.vjp(relevance)


class AveragePool(Rule):
    """Max pooling explained as average pooling over the same windows: ``R_j = x_j / stab(sum_window x) R``.

    Spreads relevance over the whole window instead of the winner only.
    """

    def __init__(self, stabilizer: float = 1e-6):
        self.stabilizer = finite("stabilizer", stabilizer, minimum=0)

    def __call__(self, layer: "Layer", relevance: torch.Tensor) -> Relevances:
        average = _average_pool_of(layer)
        (x,) = layer.inputs
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            z = average(leaf)
            (grad,) = torch.autograd.grad(z, leaf, divide(relevance, z.detach(), self.stabilizer))
        return [x * grad]


def _average_pool_of(layer: "Layer") -> Callable[[torch.Tensor], torch.Tensor]:
    module, node = layer.module, layer.node
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)) and node.op == "call_module":
        dims = int(type(module).__name__[-2])
        if module.dilation not in (1, (1,) * dims):
            raise ValueError(f"{layer.describe()}: AveragePool does not support dilated max pooling")
        function = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[dims]
        return lambda x: function(x, module.kernel_size, module.stride, module.padding, module.ceil_mode, False)
    if isinstance(module, (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)) \
            and node.op == "call_module":
        dims = int(type(module).__name__[-2])
        function = {1: F.adaptive_avg_pool1d, 2: F.adaptive_avg_pool2d, 3: F.adaptive_avg_pool3d}[dims]
        return lambda x: function(x, module.output_size)
    functional = {F.max_pool1d: F.avg_pool1d, F.max_pool2d: F.avg_pool2d, F.max_pool3d: F.avg_pool3d,
                  torch.max_pool2d: F.avg_pool2d}
    if node.op == "call_function" and node.target in functional:
        names = ("input", "kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
        args = {**dict(zip(names, node.args)), **node.kwargs}
        if args.get("dilation", 1) not in (1, (1, 1), [1, 1], (1,), (1, 1, 1)):
            raise ValueError(f"{layer.describe()}: AveragePool does not support dilated max pooling")
        kernel = args["kernel_size"]
        stride = args.get("stride") or kernel
        return lambda x: functional[node.target](x, kernel, stride, args.get("padding", 0),
                                                 args.get("ceil_mode", False), False)
    raise ValueError(f"{layer.describe()}: AveragePool applies to max pooling layers only")


class Gate(Rule):
    """A product ``signal * gate`` (squeeze-excitation, attention masks): all relevance goes to the signal
    (signal-take-all, Arras et al. 2017).

    ``signal`` picks the input index; by default the input with the output's shape when the other one
    broadcasts (fewer elements).
    """

    def __init__(self, signal: int | None = None):
        self.signal = signal

    def __call__(self, layer: "Layer", relevance: torch.Tensor) -> Relevances:
        inputs = layer.inputs
        signal = self.signal
        if signal is None:
            sizes = [x.numel() for x in inputs]
            if len(inputs) != 2 or sizes[0] == sizes[1]:
                raise ValueError(
                    f"{layer.describe()}: a product of two input-dependent tensors of equal size; say which "
                    "factor carries the signal with a name rule, e.g. names={'<module path>': rules.Gate(signal=0)}"
                )
            signal = sizes.index(max(sizes))
        if inputs[signal].shape != relevance.shape:
            raise ValueError(f"{layer.describe()}: the signal input of a Gate must have the output's shape")
        return [relevance if i == signal else None for i in range(len(inputs))]


class _Weighted(Rule):
    """A rule for convolutions and dense layers (needs ``W`` and ``b``).

    ``zero_bias=True`` leaves the bias out of the rule's denominators (Zennit's ``zero_params="bias"``):
    relevance is then shared among the inputs only, instead of being absorbed by the bias.
    """

    needs_weights = True

    def __init__(self, stabilizer: float = 1e-6, zero_bias: bool = False):
        self.stabilizer = finite("stabilizer", stabilizer, minimum=0)
        self.zero_bias = bool(zero_bias)

    def _bias(self, f: Any) -> torch.Tensor | None:
        return None if self.zero_bias else f.bias

    def _output(self, layer: "Layer") -> torch.Tensor:
        """``z = f(x; W, b)``, without ``b`` under ``zero_bias``."""
        if self.zero_bias and layer.affine.bias is not None:
            return layer.affine(layer.inputs[0], bias=None)
        return layer.output

    def _check(self, layer: "Layer") -> None:
        if layer.affine is None:
            raise ValueError(f"{layer.describe()}: {type(self).__name__} applies to convolutions and dense layers")

    def _signed_weights(self, layer: "Layer") -> tuple[Any, torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """``(f, x, b, W+, W-)`` of a weighted layer (``b`` is ``None`` under ``zero_bias``)."""
        self._check(layer)
        f, (x,) = layer.affine, layer.inputs
        w = f.weight
        return f, x, self._bias(f), w.clamp(min=0), w.clamp(max=0)


def _plus(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.clamp(min=0)


def _minus(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.clamp(max=0)


def _signed(x: torch.Tensor, nonnegative: bool, weights: list[list[torch.Tensor]]
            ) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """The input blocks ``[x+, x-]`` of a rule that treats the two signs apart, and its weights per block;
    for ``x >= 0`` only ``x`` with the first weight column (the ``x-`` terms are zero)."""
    if nonnegative:
        return [x], [row[:1] for row in weights]
    return [x.clamp(min=0), x.clamp(max=0)], weights


def _ratio_into(relevance: torch.Tensor, z: torch.Tensor, stabilizer: float,
                denominator: torch.Tensor | None = None) -> torch.Tensor:
    """``s = R / z`` written into ``z`` (``z`` already stabilised with its known sign, or ``denominator`` if
    given); with a zero stabiliser a zero denominator gives 0, as in :func:`divide`."""
    denominator = z if denominator is None else denominator
    if stabilizer > 0:
        return torch.div(relevance, denominator, out=z)
    return z.copy_(divide(relevance, denominator, 0.0))


def _divide_into(relevance: torch.Tensor, z: torch.Tensor, epsilon: float) -> torch.Tensor:
    """:func:`divide` written into ``z``'s memory: ``R / stab(z)`` for ``z`` of either sign."""
    if epsilon > 0:
        return torch.div(relevance, stabilize(z, epsilon), out=z)
    return z.copy_(divide(relevance, z, 0.0))


class ZPlus(_Weighted):
    """LRP-z+ (Montavon et al. 2017), alpha=1, beta=0 generalised to negative inputs:
    ``z+ = f(x+; W+, b+) + f(x-; W-)``, ``R_j = x+_j [W+^T s]_j + x-_j [W-^T s]_j``, ``s = R / stab(z+)``.

    An output with no positive contribution at all (``z+ = 0``, so ``z <= 0``) would drop the relevance it
    receives: there, and only there, relevance goes to the negative contributions
    ``z- = f(x+; W-, b-) + f(x-; W+)`` instead (the limit gamma -> inf of the generalised gamma rule, see
    :class:`Gamma`). In ReLU networks such outputs receive no relevance; after linear bottlenecks, hard-swish
    or SiLU (MobileNetV3, GhostNet, MixNet) they do, and the rule conserves only with this completion.
    """

    def __call__(self, layer: "Layer", relevance: torch.Tensor) -> Relevances:
        f, x, b, wp, wn = self._signed_weights(layer)
        parts, weights = _signed(x, layer.nonnegative[0], [[wp, wn]])
        blocks = f.blocks(parts, weights)
        (z,) = blocks.evaluate([_plus(b)], [self.stabilizer])  # z+ >= 0: stabilised through the bias
        lost = None
        if z.numel() and bool(z.amin() <= self.stabilizer):  # some output may lack positive contributions
            if bool(torch.where(z <= self.stabilizer, relevance, _scalar(0.0, relevance)).any()):  # ... and receives relevance: test exactly
                lost = _without_contributions(relevance, f.blocks(parts, weights).evaluate([_plus(b)])[0])
        _ratio_into(relevance, z, self.stabilizer)
        result = blocks.gather()
        if lost is not None:  # z- = f(x+; W-, b-) + f(x-; W+) takes the relevance of those outputs
            negative = f.blocks(parts, [[wn, wp][:len(parts)]])
            (z_neg,) = negative.evaluate([_minus(b)])
            _divide_into(lost, z_neg, self.stabilizer)
            result.add_(negative.gather())
        return [result]


def _without_contributions(relevance: torch.Tensor, z: torch.Tensor) -> torch.Tensor | None:
    """The relevance at outputs where ``z == 0`` (zero elsewhere), or ``None`` if there is none."""
    empty = z == 0
    if not bool(empty.any()):
        return None
    lost = torch.where(empty, relevance, _scalar(0.0, relevance))
    return lost if bool(lost.any()) else None


class AlphaBeta(_Weighted):
    """LRP-alpha-beta (Bach et al. 2015): ``R_j = alpha * R+_j - beta * R-_j`` with alpha - beta = 1, where
    ``R+`` redistributes ``R`` over the positive contributions ``z+ = f(x+; W+, b+) + f(x-; W-)`` and
    ``R-`` over the negative ones ``z- = f(x+; W-, b-) + f(x-; W+)``.
    """

    def __init__(self, alpha: float = 2.0, beta: float = 1.0, stabilizer: float = 1e-6, zero_bias: bool = False):
        finite("alpha", alpha), finite("beta", beta)
        if alpha < 0 or beta < 0:
            raise ValueError(f"alpha and beta must be >= 0, got alpha={alpha}, beta={beta}")
        if abs(alpha - beta - 1) > 1e-9:
            raise ValueError(f"alpha - beta must be 1, got alpha={alpha}, beta={beta}")
        self.alpha, self.beta = float(alpha), float(beta)
        super().__init__(stabilizer, zero_bias)

    def __call__(self, layer: "Layer", relevance: torch.Tensor) -> Relevances:
        f, x, b, wp, wn = self._signed_weights(layer)
        parts, weights = _signed(x, layer.nonnegative[0], [[wp, wn], [wn, wp]])
        blocks = f.blocks(parts, weights)  # z+ >= 0 and z- <= 0, stabilised through the biases
        z_pos, z_neg = blocks.evaluate([_plus(b), _minus(b)], [self.stabilizer, -self.stabilizer])
        r = blocks.block(relevance)
        _ratio_into(r, z_pos, self.stabilizer).mul_(self.alpha)
        _ratio_into(r, z_neg, self.stabilizer).mul_(-self.beta)
        return [blocks.gather()]


class Gamma(_Weighted):
    """Generalised LRP-gamma (Montavon et al. 2019; Andéol et al. 2021, as in Zennit).

    With ``W^ = W + gamma W+`` and ``W_ = W + gamma W-`` (biases alike): where ``z > 0``,
    ``s = R / stab(f(x+; W^, b^) + f(x-; W_))`` is sent back through ``W^`` to ``x+`` and ``W_`` to ``x-``;
    where ``z < 0``, ``s = R / stab(f(x+; W_, b_) + f(x-; W^))`` through ``W_`` to ``x+`` and ``W^`` to ``x-``.
    For ``x >= 0`` this is the original ``R_j = sum_k x_j (w_jk + gamma w+_jk) / z^_k R_k``.
    With ``zero_bias`` the denominators leave the bias out and the signs stay those of the layer's output
    ``z`` (with its bias), as Zennit's ``zero_params="bias"``.
    """

    def __init__(self, gamma: float = 0.25, stabilizer: float = 1e-6, zero_bias: bool = False):
        self.gamma = finite("gamma", gamma, minimum=0)
        super().__init__(stabilizer, zero_bias)

    def __call__(self, layer: "Layer", relevance: torch.Tensor) -> Relevances:
        self._check(layer)
        f, (x,), z = layer.affine, layer.inputs, layer.output  # the signs: of the layer's own output (as Zennit)
        g, w, b = self.gamma, f.weight, self._bias(f)
        w_up = w + g * w.clamp(min=0)
        b_up = None if b is None else b + g * b.clamp(min=0)
        if layer.nonnegative[0] and not self.zero_bias:  # the shortcut needs the biases the signs come from
            return [self._nonnegative(f, x, z, relevance, w_up, b_up)]
        w_down = w + g * w.clamp(max=0)
        b_down = None if b is None else b + g * b.clamp(max=0)
        parts, weights = _signed(x, layer.nonnegative[0], [[w_up, w_down], [w_down, w_up]])
        blocks = f.blocks(parts, weights)
        z_up, z_down = blocks.evaluate([b_up, b_down])
        r, signs = blocks.block(relevance), blocks.block(z)
        _divide_into(r, z_up, self.stabilizer).masked_fill_(signs <= 0, 0.0)
        _divide_into(r, z_down, self.stabilizer).masked_fill_(signs >= 0, 0.0)
        return [blocks.gather()]

    def _nonnegative(self, f: Any, x: torch.Tensor, z: torch.Tensor, relevance: torch.Tensor,
                     w_up: torch.Tensor, b_up: torch.Tensor | None) -> torch.Tensor:
        """``x >= 0``: since ``W^ + W_ = (2 + gamma) W``, ``f(x; W_, b_) = (2 + gamma) z - f(x; W^, b^)``, so
        one modified forward and two transposes suffice. Where ``z > 0`` the denominator ``f(x; W^, b^) >= z``
        is positive, where ``z < 0`` the other one is ``<= z``: the stabiliser comes in through the bias
        (``(2 + gamma) z - (f(x; W^, b^) + eps) = f(x; W_, b_) - eps``) and each is masked in place, without
        temporaries the size of the activations."""
        g = self.gamma
        z_up = f(x, w_up, f.shifted_bias(b_up, self.stabilizer))
        z_down = torch.mul(z, 2 + g).sub_(z_up)
        sp = torch.div(relevance, z_up, out=z_up).masked_fill_(z <= 0, 0.0)
        sn = torch.div(relevance, z_down, out=z_down).masked_fill_(z >= 0, 0.0)
        grad = f.transpose(sp.sub_(sn), x, w_up).add_(f.transpose(sn, x, f.weight), alpha=2 + g)
        return grad.mul_(x)


class ZBox(_Weighted):
    """LRP-z^B (Montavon et al. 2017) for inputs bounded by ``low <= x <= high``:
    ``R_j = [x_j W^T s - l_j W+^T s - h_j W-^T s]_j``, ``s = R / stab(f(x; W, b) - f(l; W+, b+) - f(h; W-, b-))``.

    ``low``/``high``: scalars, per-channel sequences or tensors broadcastable to the input (e.g. the
    normalised image range ``(0 - mean) / std`` and ``(1 - mean) / std``). ``None`` takes each sample's
    per-channel minimum / maximum of the explained input.
    """

    def __init__(self, low: Any = None, high: Any = None, stabilizer: float = 1e-6, zero_bias: bool = False):
        self.low, self.high = finite_values("low", low), finite_values("high", high)
        super().__init__(stabilizer, zero_bias)

    def __call__(self, layer: "Layer", relevance: torch.Tensor) -> Relevances:
        f, x, b, wp, wn = self._signed_weights(layer)
        low = _bound(self.low, x, torch.amin)
        high = _bound(self.high, x, torch.amax)
        bounds = f.blocks([low, high], [[wp, wn]])
        (z,) = bounds.evaluate([b])  # f(l; W+, b+) + f(h; W-, b-), as b+ + b- = b
        s = divide(relevance, torch.sub(self._output(layer), z, out=z), self.stabilizer)
        return [f.blocks([x, low, high], [[f.weight, -wp, -wn]]).gather(s)]


def _bound(value: Any, x: torch.Tensor, reduce: Callable[..., torch.Tensor]) -> torch.Tensor:
    """Expand a box bound to ``x``'s shape; ``None`` is each sample's per-channel min or max."""
    if value is None:
        dims = tuple(range(2, x.dim()))
        bound = reduce(x, dim=dims, keepdim=True) if dims else x
        return bound.expand_as(x)
    bound = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if bound.dim() == 1 and x.dim() >= 2 and bound.numel() == x.shape[1]:
        bound = bound.reshape(1, -1, *([1] * (x.dim() - 2)))
    try:
        return bound.expand_as(x)
    except RuntimeError:
        raise ValueError(f"box bound of shape {tuple(bound.shape)} does not broadcast to the input "
                         f"{tuple(x.shape)}; give a scalar, one value per channel, or a broadcastable tensor") from None


class Flat(_Weighted):
    """LRP-flat (Lapuschkin et al. 2019): relevance spread uniformly over each output's receptive field,
    ``R_j = sum_k 1 / (sum_i 1) R_k`` (weights and inputs set to one, no bias).

    The denominator counts the inputs in a receptive field: the same for every output channel of a group and
    every sample, so it is computed once for one output channel per group, and the relevance of a group's
    output channels is summed before its one transposed pass.
    """

    def __call__(self, layer: "Layer", relevance: torch.Tensor) -> Relevances:
        self._check(layer)
        f, (x,) = layer.affine, layer.inputs
        if f.transposed:
            ones = torch.ones_like(f.weight)
            s = divide_signed(relevance, f(torch.ones_like(x), ones, None), self.stabilizer, 1.0)
            return [f.transpose(s, x, ones)]
        groups = 1 if f.kind == "linear" else f.groups
        ones = torch.ones((groups, *f.weight.shape[1:]), dtype=f.weight.dtype, device=f.weight.device)
        count = f(torch.ones_like(x[:1]), ones, None)
        dim = -1 if f.kind == "linear" else 1
        total = relevance.unflatten(dim, (groups, -1)).sum(dim % relevance.dim() + 1)
        s = _ratio_into(total, total, self.stabilizer, count.add_(self.stabilizer))
        return [f.transpose(s, x, ones)]


class WSquare(_Weighted):
    """LRP-w^2 (Montavon et al. 2017): ``R_j = sum_k w_jk^2 / (sum_i w_ik^2 + b_k^2) R_k`` (inputs ignored;
    the squared bias is in the denominator, as in Zennit)."""

    def __call__(self, layer: "Layer", relevance: torch.Tensor) -> Relevances:
        self._check(layer)
        f, (x,) = layer.affine, layer.inputs
        squared = f.weight ** 2
        bias = None if self._bias(f) is None else f.bias ** 2
        s = divide_signed(relevance, f(torch.ones_like(x), squared, bias), self.stabilizer, 1.0)
        return [f.transpose(s, x, squared)]


__all__ = [
    "Rule", "Epsilon", "Basic", "Norm", "Pass", "Gradient", "AveragePool", "Gate", "ZPlus", "AlphaBeta", "Gamma",
    "ZBox", "Flat", "WSquare", "stabilize", "divide", "divide_signed",
]

