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


def _plus(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.clamp(min=0)


def _minus(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.clamp(max=0)


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
        self._check(layer)
        f, (x,) = layer.affine, layer.inputs
        w, b = f.weight, self._bias(f)
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        if layer.nonnegative[0]:
            zp = f(x, wp, _plus(b))
            lost = _without_contributions(relevance, zp)
            s = divide_signed(relevance, zp, self.stabilizer, 1.0) if self.stabilizer > 0 else divide(relevance, zp, 0)
            result = f.transpose(s, x, wp).mul_(x)
            if lost is not None:
                sn = divide(lost, f(x, wn, _minus(b)), self.stabilizer)
                result.add_(f.transpose(sn, x, wn).mul_(x))
            return [result]
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        zp = f(xp, wp, _plus(b)) + f(xn, wn, None)
        lost = _without_contributions(relevance, zp)
        s = divide(relevance, zp, self.stabilizer)
        result = xp * f.transpose(s, x, wp) + xn * f.transpose(s, x, wn)
        if lost is not None:
            sn = divide(lost, f(xp, wn, _minus(b)) + f(xn, wp, None), self.stabilizer)
            result += xp * f.transpose(sn, x, wn) + xn * f.transpose(sn, x, wp)
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
        self._check(layer)
        f, (x,) = layer.affine, layer.inputs
        w, b = f.weight, self._bias(f)
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        if layer.nonnegative[0]:
            sp = divide_signed(relevance, f(x, wp, _plus(b)), self.stabilizer, 1.0)
            sn = divide_signed(relevance, f(x, wn, _minus(b)), self.stabilizer, -1.0)
            combined = f.transpose(sp, x, wp).mul_(self.alpha).sub_(f.transpose(sn, x, wn), alpha=self.beta)
            return [combined.mul_(x)]
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        sp = divide(relevance, f(xp, wp, _plus(b)) + f(xn, wn, None), self.stabilizer)
        sn = divide(relevance, f(xp, wn, _minus(b)) + f(xn, wp, None), self.stabilizer)
        positive = xp * f.transpose(sp, x, wp) + xn * f.transpose(sp, x, wn)
        negative = xp * f.transpose(sn, x, wn) + xn * f.transpose(sn, x, wp)
        return [self.alpha * positive - self.beta * negative]


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
        zero = _scalar(0.0, relevance)
        r_pos, r_neg = torch.where(z > 0, relevance, zero), torch.where(z < 0, relevance, zero)
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        sp = divide(r_pos, f(xp, w_up, b_up) + f(xn, w_down, None), self.stabilizer)
        sn = divide(r_neg, f(xp, w_down, b_down) + f(xn, w_up, None), self.stabilizer)
        up_from_p, down_from_p = f.transpose(sp, x, w_up), f.transpose(sp, x, w_down)
        up_from_n, down_from_n = f.transpose(sn, x, w_up), f.transpose(sn, x, w_down)
        return [xp * (up_from_p + down_from_n) + xn * (down_from_p + up_from_n)]

    def _nonnegative(self, f: Any, x: torch.Tensor, z: torch.Tensor, relevance: torch.Tensor,
                     w_up: torch.Tensor, b_up: torch.Tensor | None) -> torch.Tensor:
        """``x >= 0``: since ``W^ + W_ = (2 + gamma) W``, ``f(x; W_, b_) = (2 + gamma) z - f(x; W^, b^)``, so
        one modified forward and two transposes suffice. Where ``z > 0`` the denominator ``f(x; W^, b^) >= z``
        is positive, where ``z < 0`` the other one is ``<= z``: each is stabilised by its known sign and
        masked in place, without temporaries the size of the activations."""
        g = self.gamma
        z_up = f(x, w_up, b_up)
        z_down = torch.mul(z, 2 + g).sub_(z_up)
        sp = torch.div(relevance, z_up.add_(self.stabilizer), out=z_up).masked_fill_(z <= 0, 0.0)
        sn = torch.div(relevance, z_down.sub_(self.stabilizer), out=z_down).masked_fill_(z >= 0, 0.0)
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
        self._check(layer)
        f, (x,) = layer.affine, layer.inputs
        w, b = f.weight, self._bias(f)
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        low = _bound(self.low, x, torch.amin)
        high = _bound(self.high, x, torch.amax)
        z = self._output(layer) - f(low, wp, _plus(b)) - f(high, wn, _minus(b))
        s = divide(relevance, z, self.stabilizer)
        return [x * f.transpose(s, x, w) - low * f.transpose(s, x, wp) - high * f.transpose(s, x, wn)]


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
    ``R_j = sum_k 1 / (sum_i 1) R_k`` (weights and inputs set to one, no bias)."""

    def __call__(self, layer: "Layer", relevance: torch.Tensor) -> Relevances:
        self._check(layer)
        f, (x,) = layer.affine, layer.inputs
        ones = torch.ones_like(f.weight)
        s = divide_signed(relevance, f(torch.ones_like(x), ones, None), self.stabilizer, 1.0)
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

