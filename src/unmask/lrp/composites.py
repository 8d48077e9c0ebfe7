"""Composites: which rule each layer of a graph gets.

A :class:`Composite` matches, in this order: module paths (``names``, glob patterns), the first
weighted layers (``first``: the layers that consume the input in the traced graph), then ``rules``
keyed by module type (``nn.Conv2d``), by kind (``"convolution"``, ``"linear"``, ``"avgpool"``, ...,
see :mod:`unmask.graph.kinds`) or by function (``torch.cat``), and finally the defaults below.

Defaults: activations ``Pass``; reshapes, concatenations, paddings and max pooling ``Gradient``
(max pooling: winner-take-all); average pooling, means and residual sums ``Norm``; scalings ``Pass``;
products of two input-dependent tensors ``Gate`` (signal-take-all, Arras et al. 2017: a squeeze-excitation
``x * sigmoid(...)`` sends all relevance to ``x``); an elementwise function of one tensor written as several
steps (``x * relu6(x + 3) / 6``, ``x * sigmoid(x)``) is one activation, ``Pass``; BatchNorm that could not be folded, convolutions
and dense layers ``Epsilon``; the transformer kinds as AttnLRP (:mod:`unmask.lrp.transformer`):
LayerNorm / GroupNorm ``LayerNormEpsilon``, RMSNorm ``Pass``, softmax ``SoftmaxTaylor``, matrix
products ``MatMul``, fused attention ``Attention``. ``lrp.attnlrp`` also splits elementwise products of
two input-dependent tensors half and half (``Product``).
"""
from __future__ import annotations

import fnmatch
from typing import Any, Mapping, Sequence, Union

from ..graph.canonize import Step
from ..graph.kinds import type_kind
from . import rules as R
from . import transformer as T

Key = Union[type, str, Any]


def defaults(epsilon: float = 1e-6, stabilizer: float = 1e-6, maxpool: str = "winner") -> dict[str, R.Rule]:
    """Rules for every kind that a composite does not map itself."""
    if maxpool not in ("winner", "average"):
        raise ValueError(f"maxpool must be 'winner' or 'average', got {maxpool!r}")
    base = {
        "activation": R.Pass(), "structure": R.Gradient(), "scale": R.Pass(), "gate": R.Gate(),
        "maxpool": R.Gradient() if maxpool == "winner" else R.AveragePool(stabilizer),
        "avgpool": R.Norm(stabilizer), "sum": R.Norm(stabilizer), "batchnorm": R.Epsilon(stabilizer),
        "convolution": R.Epsilon(epsilon), "linear": R.Epsilon(epsilon),
    }
    base.update(T.defaults("attnlrp", stabilizer, R.Epsilon(epsilon)))
    return base


class Composite:
    """A mapping from layers to rules.

    >>> Composite({nn.Conv2d: rules.Gamma(0.25), nn.Linear: rules.Epsilon(0.25)}, first=rules.ZBox(-1, 1),
    ...           names={"classifier.*": rules.Epsilon(1e-6)})
    """

    def __init__(
        self,
        rules: Mapping[Key, R.Rule] | Sequence[tuple[Key, R.Rule]] = (),
        first: R.Rule | None = None,
        names: Mapping[str, R.Rule] | None = None,
        base: Mapping[str, R.Rule] | None = None,
        name: str = "custom",
    ):
        self.rules = list(rules.items()) if isinstance(rules, Mapping) else list(rules)
        self.first = first
        self.names = dict(names or {})
        self.base = dict(defaults() if base is None else base)
        self.name = name
        for key, rule in self.rules + list(self.names.items()) + [(None, first)] * (first is not None):
            if not isinstance(rule, R.Rule):
                raise ValueError(f"the rule for {key!r} must be an unmask.lrp.rules.Rule, got {rule!r}")

    def leaf_types(self) -> tuple[type, ...]:
        """Custom module types with their own rule: traced as single nodes."""
        return tuple(k for k, _ in self.rules if isinstance(k, type) and not _is_torch_layer(k))

    def leaf_names(self) -> tuple[str, ...]:
        """Module paths given a rule by exact name: traced as single nodes."""
        return tuple(k for k in self.names if not any(c in k for c in "*?["))

    def rule_for(self, step: Step) -> R.Rule | None:
        """The rule for one graph step, or ``None`` if nothing matches."""
        for pattern, rule in self.names.items():
            if step.path and (fnmatch.fnmatchcase(step.path, pattern) or fnmatch.fnmatchcase(step.name, pattern)):
                if step.node.op == "call_module" or step.affine is not None:
                    return rule
        if step.first and self.first is not None:
            return self.first
        for key, rule in self.rules:
            if _matches(key, step):
                return rule
        return self.base.get(step.kind)

    def __repr__(self) -> str:
        return f"Composite({self.name!r})"


def _is_torch_layer(cls: type) -> bool:
    return cls.__module__.startswith(("torch.nn", "torch.ao.nn"))


def _matches(key: Key, step: Step) -> bool:
    if isinstance(key, str):
        return step.kind == key
    if isinstance(key, type):
        if step.module is None or not isinstance(step.module, key):
            return False
        if step.node.op == "call_module":
            return True
        # a functional call traced inside a subclass of a standard layer (e.g. F.conv2d in a padded Conv2d)
        return type_kind(key) == step.kind
    return step.node.op == "call_function" and step.node.target is key


# presets ------------------------------------------------------------------------------------------

PRESETS: dict[str, tuple[str, ...]] = {
    "epsilon": ("epsilon",),
    "epsilon_plus": ("epsilon",),
    "epsilon_plus_flat": ("epsilon",),
    "epsilon_gamma_box": ("epsilon", "gamma", "low", "high"),
    "epsilon_alpha2_beta1": ("epsilon", "alpha", "beta"),
    "epsilon_alpha2_beta1_flat": ("epsilon", "alpha", "beta"),
    "excitation_backprop": (),
    "attnlrp": ("attention", "epsilon", "gamma"),
}
COMMON = ("stabilizer", "maxpool", "zero_bias")


def preset(name: str, **params: Any) -> Composite:
    """A named composite (Zennit's presets, same defaults: ``epsilon=1e-6``, ``gamma=0.25``,
    ``alpha=2, beta=1``, ``stabilizer=1e-6``; ``low``/``high`` default to each sample's per-channel range).
    ``zero_bias=True`` leaves biases (including those folded from BatchNorm) out of every convolution's and
    dense layer's rule (Zennit's ``zero_params="bias"``), so relevance is not absorbed by them.

    - ``epsilon``: LRP-epsilon on every convolution and dense layer.
    - ``epsilon_plus``: z+ on convolutions, epsilon on dense layers.
    - ``epsilon_plus_flat``: as ``epsilon_plus`` with flat on the first layer.
    - ``epsilon_gamma_box``: gamma on convolutions, epsilon on dense layers, z^B on the first layer.
    - ``epsilon_alpha2_beta1`` / ``..._flat``: alpha-beta on convolutions (flat first layer).
    - ``excitation_backprop``: z+ everywhere (Zhang et al. 2016, marginal winning probability).
    - ``attnlrp``: AttnLRP (Achtibat et al. 2024) for transformers and modern CNNs: epsilon on convolutions
      and dense layers (``gamma=`` puts the gamma rule there instead), the transformer rules of
      :mod:`unmask.lrp.transformer`, products of two tensors half each; ``attention="cp"`` is CP-LRP
      (Ali et al. 2022): attention weights held constant, all relevance through the values.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown LRP composite {name!r}; presets: {', '.join(PRESETS)}")
    unknown = set(params) - set(PRESETS[name]) - set(COMMON)
    if unknown:
        allowed = ", ".join(PRESETS[name] + COMMON)
        raise ValueError(f"lrp.{name} does not take {', '.join(sorted(unknown))}; its parameters: {allowed}")
    epsilon = params.get("epsilon", 1e-6)
    stabilizer = params.get("stabilizer", 1e-6)
    zero_bias = bool(params.get("zero_bias", False))
    base = defaults(epsilon, stabilizer, params.get("maxpool", "winner"))
    if name == "attnlrp":
        return _attnlrp(params.get("attention", "attnlrp"), epsilon, params.get("gamma"), stabilizer, zero_bias, base)
    dense = R.Epsilon(epsilon, zero_bias)
    first = None
    if name == "epsilon":
        conv = R.Epsilon(epsilon, zero_bias)
    elif name in ("epsilon_plus", "epsilon_plus_flat", "excitation_backprop"):
        conv = R.ZPlus(stabilizer, zero_bias)
        if name == "excitation_backprop":
            dense = R.ZPlus(stabilizer, zero_bias)
    elif name == "epsilon_gamma_box":
        conv = R.Gamma(params.get("gamma", 0.25), stabilizer, zero_bias)
        first = R.ZBox(params.get("low"), params.get("high"), stabilizer, zero_bias)
    else:
        conv = R.AlphaBeta(params.get("alpha", 2.0), params.get("beta", 1.0), stabilizer, zero_bias)
    if name.endswith("_flat"):
        first = R.Flat(stabilizer, zero_bias)
    return Composite({"convolution": conv, "linear": dense}, first=first, base=base, name=name)


def _attnlrp(mode: str, epsilon: float, gamma: float | None, stabilizer: float, zero_bias: bool,
             base: dict[str, R.Rule]) -> Composite:
    weighted = R.Epsilon(epsilon, zero_bias) if gamma is None else R.Gamma(gamma, stabilizer, zero_bias)
    base.update(T.defaults(mode, stabilizer, weighted))
    base["gate"] = T.Product()
    return Composite({"convolution": weighted, "linear": weighted}, base=base, name="attnlrp")
