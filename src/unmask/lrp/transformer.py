"""Relevance rules for transformers: AttnLRP (Achtibat et al., ICML 2024) and CP-LRP (Ali et al., ICML 2022).

Notation as in :mod:`unmask.lrp.rules`; ``stab(z) = z + eps * sign(z)``.

- :class:`LayerNormEpsilon`: the epsilon rule on ``y = (x - mean) / [std] * w + b`` with the standard
  deviation ``[std]`` held constant (AttnLRP Prop. 3.4): ``R_x = x * J^T (R / stab(y))`` where
  ``J^T g = (g w - mean(g w)) / std`` over each normalised group. Conserves when ``b = 0``. RMSNorm,
  whose output is ``x / [rms] * w``, gets the identity (``Pass``).
- :class:`SoftmaxTaylor`: the Taylor decomposition of softmax at ``x`` with bias (Prop. 3.1),
  ``R_x = x * (R - s * sum(R))`` over the softmax dimension, ``s = softmax(x)``; ``-inf`` logits
  (masks) count as 0.
- :class:`MatMul`: a product ``O = A B`` of two input-dependent tensors (``matmul``, ``bmm``, ``@``,
  ``einsum``), epsilon and uniform (Prop. 3.3): ``R_A = A * ((R / stab(2 O)) B^T)``,
  ``R_B = B * (A^T (R / stab(2 O)))``; with one input-dependent operand the epsilon rule. In CP-LRP mode
  an operand computed by a softmax (the attention weights) is a constant: all relevance goes to the other
  by the epsilon rule.
- :class:`Product`: an elementwise product (or quotient) of two input-dependent tensors: half each
  (Prop. 3.2).
- :class:`Attention`: ``F.scaled_dot_product_attention`` and ``nn.MultiheadAttention`` taken apart into
  the operations above (projections by the composite's dense-layer rule).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..graph.linear import Affine
from .._utils.validation import finite
from .rules import Epsilon, Pass, Relevances, Rule, divide

if TYPE_CHECKING:
    from .engine import Layer

MODES = ("attnlrp", "cp")


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"attention must be 'attnlrp' or 'cp', got {mode!r}")
    return mode


class LayerNormEpsilon(Rule):
    """LayerNorm / GroupNorm by the epsilon rule with the standard deviation as a constant (AttnLRP).

    ``y = (x - mean(x)) / [std(x)] * w + b``; ``R_x = x * (g w - mean(g w)) / std`` with ``g = R / stab(y)``,
    means and standard deviations over each normalised group (the last dimensions for LayerNorm, channel
    groups for GroupNorm). Applies to ``nn.LayerNorm``, ``nn.GroupNorm``, ``F.layer_norm`` and
    ``F.group_norm`` (and subclasses that call them, such as timm's ``LayerNorm2d``).
    """

    def __init__(self, epsilon: float = 1e-6):
        self.epsilon = finite("epsilon", epsilon, minimum=0)

    def __call__(self, layer: "Layer", relevance: torch.Tensor) -> Relevances:
        x = layer.inputs[0]
        groups, weight, eps = _norm_parameters(layer)
        g = divide(relevance, layer.output, self.epsilon)
        if weight is not None:
            g = g * weight
        if groups is None:  # layer norm over the last `dims` dimensions
            dims = tuple(range(x.dim() - _normalized_dims(layer), x.dim()))
            std = (x.var(dim=dims, unbiased=False, keepdim=True) + eps).sqrt()
            centred = g - g.mean(dim=dims, keepdim=True)
            return [centred.div_(std).mul_(x)]
        shape = x.shape
        xs, gs = x.reshape(shape[0], groups, -1), g.reshape(shape[0], groups, -1)
        std = (xs.var(dim=-1, unbiased=False, keepdim=True) + eps).sqrt()
        centred = gs - gs.mean(dim=-1, keepdim=True)
        return [centred.div_(std).reshape(shape).mul_(x)]


def _normalized_dims(layer: "Layer") -> int:
    """How many trailing dimensions a layer norm normalises."""
    module, node = layer.module, layer.node
    if node.op == "call_module":
        return len(module.normalized_shape)
    args, kwargs = layer.arguments()
    shape = kwargs.get("normalized_shape", args[1] if len(args) > 1 else None)
    return len(shape) if isinstance(shape, (tuple, list, torch.Size)) else 1


def _norm_parameters(layer: "Layer") -> tuple[int | None, torch.Tensor | None, float]:
    """``(groups or None for layer norm, weight broadcastable to x or None, eps)``."""
    module, node, x = layer.module, layer.node, layer.inputs[0]
    if node.op == "call_module":
        if isinstance(module, nn.GroupNorm):
            weight = None if module.weight is None else _channel(module.weight, x)
            return module.num_groups, weight, module.eps
        if isinstance(module, nn.LayerNorm):
            return None, module.weight, module.eps
        raise ValueError(f"{layer.describe()}: LayerNormEpsilon applies to LayerNorm and GroupNorm")
    args, kwargs = layer.arguments()
    if node.target in (F.group_norm, torch.group_norm):
        names = ("input", "num_groups", "weight", "bias", "eps")
        bound = {**dict(zip(names, args)), **kwargs}
        weight = bound.get("weight")
        return int(bound["num_groups"]), None if weight is None else _channel(weight, x), bound.get("eps", 1e-5)
    if node.target in (F.layer_norm, torch.layer_norm):
        names = ("input", "normalized_shape", "weight", "bias", "eps")
        bound = {**dict(zip(names, args)), **kwargs}
        return None, bound.get("weight"), bound.get("eps", 1e-5)
    raise ValueError(f"{layer.describe()}: LayerNormEpsilon applies to layer_norm and group_norm")


def _channel(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return weight.reshape(1, -1, *([1] * (x.dim() - 2)))


class SoftmaxTaylor(Rule):
    """Softmax by its Taylor decomposition at ``x`` with bias (AttnLRP Prop. 3.1):
    ``R_x = x * (R - s * sum(R))``, ``s = softmax(x)``, sums over the softmax dimension; ``-inf`` logits
    count as 0 (they receive nothing)."""

    def __call__(self, layer: "Layer", relevance: torch.Tensor) -> Relevances:
        x, s = layer.inputs[0], layer.output
        dim = _softmax_dim(layer)
        if s.dtype != x.dtype:
            s = s.to(x.dtype)
        return [_softmax_relevance(x, s, relevance, dim)]


def _softmax_relevance(x: torch.Tensor, s: torch.Tensor, relevance: torch.Tensor, dim: int) -> torch.Tensor:
    logits = torch.where(torch.isneginf(x), torch.zeros((), dtype=x.dtype, device=x.device), x)
    return (relevance - s * relevance.sum(dim, keepdim=True)).mul_(logits)


def _softmax_dim(layer: "Layer") -> int:
    if layer.node.op == "call_module":
        dim = layer.module.dim
    else:
        args, kwargs = layer.arguments()
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
    if dim is None:
        raise ValueError(f"{layer.describe()}: softmax without an explicit dim cannot be explained")
    return int(dim)


class MatMul(Rule):
    """A product ``O = A B`` (``matmul``, ``bmm``, ``@``, ``einsum``) by epsilon and uniform (AttnLRP Prop. 3.3).

    Two input-dependent operands: ``R_A = A * J_A^T (R / stab(2 O))``, ``R_B = B * J_B^T (R / stab(2 O))``
    (for a matrix product ``J_A^T g = g B^T`` and ``J_B^T g = A^T g``); one: the epsilon rule.
    ``constant_softmax=True`` (CP-LRP): an operand computed by a softmax, through reshapes and dropout,
    is a constant, so the other operand takes all relevance by the epsilon rule.
    """

    def __init__(self, epsilon: float = 1e-6, constant_softmax: bool = False):
        self.epsilon = finite("epsilon", epsilon, minimum=0)
        self.constant_softmax = bool(constant_softmax)

    def __call__(self, layer: "Layer", relevance: torch.Tensor) -> Relevances:
        carriers = list(range(len(layer.inputs)))
        if self.constant_softmax:
            carriers = [i for i, n in enumerate(layer.step.inputs) if not _from_softmax(layer, n)]
            if not carriers:
                return [None] * len(layer.inputs)
        output = layer.output
        denominator = output * len(carriers) if len(carriers) > 1 else output
        grads = _vjp(layer, divide(relevance, denominator, self.epsilon), carriers)
        return [None if g is None else g.mul_(x) for x, g in zip(layer.inputs, grads)]


def _vjp(layer: "Layer", grad: torch.Tensor, carriers: list[int]) -> list[torch.Tensor | None]:
    """``J^T grad`` for the inputs in ``carriers`` only (the others held constant)."""
    with torch.enable_grad():
        leaves = {layer.step.inputs[i]: layer.inputs[i].detach().requires_grad_(True) for i in carriers}
        out = layer.graph.evaluate(layer.step, layer.values, leaves)
        found = torch.autograd.grad(out, list(leaves.values()), grad, allow_unused=True)
    result: list[torch.Tensor | None] = [None] * len(layer.inputs)
    for i, g in zip(carriers, found):
        result[i] = g
    return result


def _from_softmax(layer: "Layer", node: fx.Node) -> bool:
    """Whether ``node`` is a softmax's output, possibly reshaped or dropped out (attention weights)."""
    steps = layer.graph.steps
    while node in steps:
        step = steps[node]
        if step.kind == "softmax":
            return True
        if step.kind != "structure" or len(step.inputs) != 1:
            return False
        node = step.inputs[0]
    return False


class Product(Rule):
    """An elementwise product ``a * b`` (or quotient ``a / b``) of two input-dependent tensors: half each
    (AttnLRP Prop. 3.2, uniform rule); a broadcast operand receives the sum over its broadcast dimensions.
    (``Gate`` sends everything to one factor instead, as for squeeze-excitation.)"""

    def __call__(self, layer: "Layer", relevance: torch.Tensor) -> Relevances:
        share = relevance / len(layer.inputs)
        return [share.sum_to_size(x.shape) if x.shape != share.shape else share for x in layer.inputs]


class Attention(Rule):
    """Fused attention decomposed into AttnLRP's (or CP-LRP's) rules.

    ``F.scaled_dot_product_attention(q, k, v)``: ``S = q k^T * scale (+ mask)``, ``A = softmax(S)``,
    ``O = A v``. AttnLRP: ``O = A v`` and ``q k^T`` by :class:`MatMul`, the softmax by
    :class:`SoftmaxTaylor`, the scale by identity and an additive float mask (a relative position bias)
    as a bias (proportional, its share absorbed). CP-LRP (``mode="cp"``): ``A`` constant,
    ``R_v = v * A^T (R / stab(O))``.

    ``nn.MultiheadAttention``: the same core between its input and output projections, which get
    ``linear`` (the composite's dense-layer rule; epsilon by default).
    """

    def __init__(self, mode: str = "attnlrp", epsilon: float = 1e-6, linear: Rule | None = None):
        self.mode = _check_mode(mode)
        self.epsilon = finite("epsilon", epsilon, minimum=0)
        self.linear = linear if linear is not None else Epsilon(epsilon)

    def __call__(self, layer: "Layer", relevance: Any) -> Relevances:
        if layer.node.op == "call_module" and isinstance(layer.module, nn.MultiheadAttention):
            return self._multihead(layer, relevance)
        if layer.node.op == "call_function" and layer.node.target is F.scaled_dot_product_attention:
            return self._fused(layer, relevance)
        raise ValueError(f"{layer.describe()}: Attention applies to scaled_dot_product_attention and "
                         "nn.MultiheadAttention")

    # scaled_dot_product_attention ----------------------------------------------------------------
    def _fused(self, layer: "Layer", relevance: torch.Tensor) -> Relevances:
        args, kwargs = layer.arguments()
        names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale")
        bound = {**dict(zip(names, args)), **kwargs}
        if bound.get("enable_gqa"):
            raise ValueError(f"{layer.describe()}: grouped-query attention (enable_gqa=True) is not supported")
        q, k, v = bound["query"], bound["key"], bound["value"]
        mask = _additive_mask(bound.get("attn_mask"), bound.get("is_causal", False), q, k, keep_true=True)
        scale = bound.get("scale")
        scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
        r_q, r_k, r_v = self._core(q, k, v, scale, mask, relevance)
        return _collect(layer, _argument_nodes(layer, names[:3]), [r_q, r_k, r_v])

    def _core(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, mask: torch.Tensor | None,
              relevance: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]:
        """Relevance of ``q``, ``k``, ``v`` for ``O = softmax(q k^T * scale + mask) v``."""
        products = q @ k.transpose(-2, -1)
        scores = products * scale
        if mask is not None:
            scores = scores + mask
        weights = scores.softmax(-1)
        output = weights @ v
        if self.mode == "cp":
            s = divide(relevance, output, self.epsilon)
            return None, None, (weights.transpose(-2, -1) @ s).mul_(v)
        s = divide(relevance, output * 2, self.epsilon)
        r_weights = (s @ v.transpose(-2, -1)).mul_(weights)
        r_v = (weights.transpose(-2, -1) @ s).mul_(v)
        r_scores = _softmax_relevance(scores, weights, r_weights, -1)
        if mask is not None:  # scores = scaled products + a constant: proportional, the mask's share absorbed
            finite = torch.isfinite(scores)
            r_scores = torch.where(finite, divide(r_scores, torch.where(finite, scores, 1.0), self.epsilon)
                                   * products * scale, 0.0)
        t = divide(r_scores, products * 2, self.epsilon)
        r_q = (t @ k).mul_(q)
        r_k = (t.transpose(-2, -1) @ q).mul_(k)
        return r_q, r_k, r_v

    # nn.MultiheadAttention ------------------------------------------------------------------------
    def _multihead(self, layer: "Layer", relevance: Any) -> Relevances:
        module: nn.MultiheadAttention = layer.module
        if isinstance(relevance, (tuple, list)):
            if len(relevance) > 1 and relevance[1] is not None:
                raise ValueError(f"{layer.describe()}: relevance reached the attention weights output; explain "
                                 "the attention output only")
            relevance = relevance[0]
        if module.bias_k is not None or module.add_zero_attn:
            raise ValueError(f"{layer.describe()}: MultiheadAttention with add_bias_kv or add_zero_attn is not "
                             "supported")
        args, kwargs = layer.arguments()
        names = ("query", "key", "value", "key_padding_mask", "need_weights", "attn_mask", "average_attn_weights",
                 "is_causal")
        bound = {**dict(zip(names, args)), **kwargs}
        query, key, value = bound["query"], bound.get("key", bound["query"]), bound.get("value", bound["query"])
        if query.dim() != 3:
            raise ValueError(f"{layer.describe()}: MultiheadAttention is explained on batched (3-d) inputs only")
        if not module.batch_first:
            query, key, value, relevance = (t.transpose(0, 1) for t in (query, key, value, relevance))
        embed, heads = module.embed_dim, module.num_heads
        if module._qkv_same_embed_dim:
            w_q, w_k, w_v = module.in_proj_weight.chunk(3)
        else:
            w_q, w_k, w_v = module.q_proj_weight, module.k_proj_weight, module.v_proj_weight
        b_q, b_k, b_v = module.in_proj_bias.chunk(3) if module.in_proj_bias is not None else (None,) * 3
        projections = [Affine.dense(w.detach(), None if b is None else b.detach())
                       for w, b in ((w_q, b_q), (w_k, b_k), (w_v, b_v))]
        q, k, v = (f(x) for f, x in zip(projections, (query, key, value)))
        batch, length, source = query.shape[0], query.shape[1], key.shape[1]

        def split(t: torch.Tensor, n: int) -> torch.Tensor:
            return t.reshape(batch, n, heads, -1).transpose(1, 2)

        mask = _multihead_mask(bound, batch, heads, length, source, q)
        scale = 1.0 / math.sqrt(embed // heads)
        q, k, v = split(q, length), split(k, source), split(v, source)
        scores = q @ k.transpose(-2, -1) * scale
        attended = ((scores if mask is None else scores + mask).softmax(-1) @ v).transpose(1, 2)
        attended = attended.reshape(batch, length, embed)
        out_proj = Affine.dense(module.out_proj.weight.detach(), _detach(module.out_proj.bias))
        r_attended = self._dense(layer, out_proj, attended, relevance)
        r_q, r_k, r_v = self._core(q, k, v, scale, mask, split(r_attended, length))
        parts = []
        for f, x, r, n in zip(projections, (query, key, value), (r_q, r_k, r_v), (length, source, source)):
            parts.append(None if r is None else self._dense(layer, f, x, r.transpose(1, 2).reshape(batch, n, embed)))
        if not module.batch_first:
            parts = [None if p is None else p.transpose(0, 1) for p in parts]
        nodes = _argument_nodes(layer, names[:3])
        return _collect(layer, [n if n is not None else nodes[0] for n in nodes], parts)

    def _dense(self, layer: "Layer", affine: Affine, x: torch.Tensor, relevance: torch.Tensor) -> torch.Tensor:
        view = _DenseLayer(affine, [x], affine(x), [False], layer.describe())
        (result,) = self.linear(view, relevance)
        return result


@dataclass
class _DenseLayer:
    """What a dense-layer rule needs of a projection inside an attention module (see engine.Layer)."""

    affine: Affine
    inputs: list[torch.Tensor]
    output: torch.Tensor
    nonnegative: list[bool]
    where: str

    def vjp(self, grad: torch.Tensor) -> list[torch.Tensor]:
        return [self.affine.transpose(grad, self.inputs[0])]

    def describe(self) -> str:
        return f"a projection inside {self.where}"


def _detach(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach()


def _argument_nodes(layer: "Layer", names: tuple[str, ...]) -> list[fx.Node | None]:
    """The input-dependent node passed as each named argument (``None`` for constants and absent ones)."""
    node = layer.node
    found = [node.args[i] if i < len(node.args) else node.kwargs.get(name) for i, name in enumerate(names)]
    return [a if isinstance(a, fx.Node) and a in layer.step.inputs else None for a in found]


def _collect(layer: "Layer", nodes: list[fx.Node | None], parts: list[torch.Tensor | None]) -> Relevances:
    """Sum the relevance of each argument onto the step's input nodes (self-attention passes one node thrice)."""
    result: list[torch.Tensor | None] = [None] * len(layer.step.inputs)
    for node, part in zip(nodes, parts):
        if node is None or part is None:
            continue
        i = layer.step.inputs.index(node)
        result[i] = part if result[i] is None else result[i] + part
    return result


def _additive_mask(mask: torch.Tensor | None, causal: bool, q: torch.Tensor, k: torch.Tensor,
                   keep_true: bool) -> torch.Tensor | None:
    """A float mask to add to the scores; boolean masks keep ``True`` (SDPA) or drop ``True`` (MHA)."""
    if causal:
        keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
        causal_mask = torch.zeros(keep.shape, dtype=q.dtype, device=q.device).masked_fill_(~keep, float("-inf"))
        mask = causal_mask if mask is None else causal_mask + _additive_mask(mask, False, q, k, keep_true)
        return mask
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        drop = ~mask if keep_true else mask
        return torch.zeros(mask.shape, dtype=q.dtype, device=q.device).masked_fill_(drop, float("-inf"))
    return mask.to(q.dtype)


def _multihead_mask(bound: dict[str, Any], batch: int, heads: int, length: int, source: int,
                    like: torch.Tensor) -> torch.Tensor | None:
    """``attn_mask`` and ``key_padding_mask`` of ``nn.MultiheadAttention`` as one additive (B, H, L, S) mask."""
    mask = None
    attn_mask = bound.get("attn_mask")
    if attn_mask is not None:
        attn_mask = _additive_mask(attn_mask, False, like, like, keep_true=False)
        mask = attn_mask.reshape(batch, heads, length, source) if attn_mask.dim() == 3 else attn_mask
    elif bound.get("is_causal"):
        mask = torch.zeros(length, source, dtype=like.dtype, device=like.device).masked_fill_(
            torch.ones(length, source, dtype=torch.bool, device=like.device).triu(1), float("-inf"))
    padding = bound.get("key_padding_mask")
    if padding is not None:
        padding = _additive_mask(padding, False, like, like, keep_true=False).reshape(batch, 1, 1, source)
        mask = padding if mask is None else mask + padding
    return mask


def defaults(mode: str = "attnlrp", epsilon: float = 1e-6, linear: Rule | None = None) -> dict[str, Rule]:
    """Rules for the transformer kinds: norms, softmax, matrix and elementwise products, fused attention."""
    _check_mode(mode)
    return {
        "layernorm": LayerNormEpsilon(epsilon), "rmsnorm": Pass(), "softmax": SoftmaxTaylor(),
        "matmul": MatMul(epsilon, constant_softmax=mode == "cp"),
        "attention": Attention(mode, epsilon, linear),
    }


__all__ = ["LayerNormEpsilon", "SoftmaxTaylor", "MatMul", "Product", "Attention", "MODES", "defaults"]
