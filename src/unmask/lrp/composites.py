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
import warnings
from typing import Any, Mapping, Sequence, Union

from ..graph.canonize import Step
from .._utils.params import Parameters
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


class Preset(Parameters, Composite):
    """A named composite built from a few numbers, with Zennit's defaults (``epsilon=1e-6``,
    ``gamma=0.25``, ``alpha=2, beta=1``, ``stabilizer=1e-6``): each subclass's signature is the one list of
    its parameters (:meth:`get_params`, the command line's ``--param`` keys).

    Every preset takes ``stabilizer`` (added to denominators), ``maxpool`` (``"winner"``: winner-take-all,
    ``"average"``: as an average pool) and ``zero_bias``: ``True`` leaves biases (including those folded
    from BatchNorm) out of every convolution's and dense layer's rule (Zennit's ``zero_params="bias"``),
    so relevance is not absorbed by them.
    """

    name: str = ""

    def _common(self, stabilizer: float, maxpool: str, zero_bias: bool) -> None:
        self.stabilizer, self.maxpool, self.zero_bias = stabilizer, maxpool, zero_bias

    def _compose(self, conv: R.Rule, dense: R.Rule | None = None, first: R.Rule | None = None,
                 epsilon: float = 1e-6) -> None:
        """Convolutions get ``conv``, dense layers ``dense`` (default: epsilon), the first layer ``first``."""
        dense = R.Epsilon(epsilon, bool(self.zero_bias)) if dense is None else dense
        base = defaults(epsilon, self.stabilizer, self.maxpool)
        Composite.__init__(self, {"convolution": conv, "linear": dense}, first=first, base=base, name=self.name)


class _EpsilonOnly(Preset):
    """The presets whose one parameter of their own is the dense layers' ``epsilon``; each subclass picks
    the convolutions' rule and the first layer's."""

    def __init__(self, epsilon: float = 1e-6, stabilizer: float = 1e-6, maxpool: str = "winner",
                 zero_bias: bool = False) -> None:
        self.epsilon = epsilon
        self._common(stabilizer, maxpool, zero_bias)
        self._compose(self._convolution(), first=self._first(), epsilon=epsilon)

    def _convolution(self) -> R.Rule:
        return R.ZPlus(self.stabilizer, bool(self.zero_bias))

    def _first(self) -> R.Rule | None:
        return None


class Epsilon(_EpsilonOnly):
    """``epsilon``: LRP-epsilon on every convolution and dense layer."""

    name = "epsilon"

    def _convolution(self) -> R.Rule:
        return R.Epsilon(self.epsilon, bool(self.zero_bias))


class EpsilonPlus(_EpsilonOnly):
    """``epsilon_plus``: z+ on convolutions, epsilon on dense layers."""

    name = "epsilon_plus"


class EpsilonPlusFlat(_EpsilonOnly):
    """``epsilon_plus_flat``: as ``epsilon_plus`` with flat on the first layer."""

    name = "epsilon_plus_flat"

    def _first(self) -> R.Rule | None:
        return R.Flat(self.stabilizer, bool(self.zero_bias))


class EpsilonGammaBox(Preset):
    """``epsilon_gamma_box``: gamma on convolutions, epsilon on dense layers, z^B on the first layer with
    bounds ``low``/``high`` (default: each sample's per-channel range)."""

    name = "epsilon_gamma_box"

    def __init__(self, epsilon: float = 1e-6, gamma: float = 0.25, low: Any = None, high: Any = None,
                 stabilizer: float = 1e-6, maxpool: str = "winner", zero_bias: bool = False) -> None:
        self.epsilon, self.gamma, self.low, self.high = epsilon, gamma, low, high
        self._common(stabilizer, maxpool, zero_bias)
        self._compose(R.Gamma(gamma, stabilizer, bool(zero_bias)),
                      first=R.ZBox(low, high, stabilizer, bool(zero_bias)), epsilon=epsilon)


class EpsilonAlpha2Beta1(Preset):
    """``epsilon_alpha2_beta1``: alpha-beta on convolutions, epsilon on dense layers."""

    name = "epsilon_alpha2_beta1"

    def __init__(self, epsilon: float = 1e-6, alpha: float = 2.0, beta: float = 1.0, stabilizer: float = 1e-6,
                 maxpool: str = "winner", zero_bias: bool = False) -> None:
        self.epsilon, self.alpha, self.beta = epsilon, alpha, beta
        self._common(stabilizer, maxpool, zero_bias)
        self._compose(R.AlphaBeta(alpha, beta, stabilizer, bool(zero_bias)), first=self._first(), epsilon=epsilon)

    def _first(self) -> R.Rule | None:
        return None


class EpsilonAlpha2Beta1Flat(EpsilonAlpha2Beta1):
    """``epsilon_alpha2_beta1_flat``: as ``epsilon_alpha2_beta1`` with flat on the first layer."""

    name = "epsilon_alpha2_beta1_flat"

    def _first(self) -> R.Rule | None:
        return R.Flat(self.stabilizer, bool(self.zero_bias))


class ExcitationBackprop(Preset):
    """``excitation_backprop``: z+ everywhere (Zhang et al. 2016, marginal winning probability)."""

    name = "excitation_backprop"

    def __init__(self, stabilizer: float = 1e-6, maxpool: str = "winner", zero_bias: bool = False) -> None:
        self._common(stabilizer, maxpool, zero_bias)
        self._compose(R.ZPlus(stabilizer, bool(zero_bias)), R.ZPlus(stabilizer, bool(zero_bias)))


class AttnLRP(Preset):
    """``attnlrp``: AttnLRP (Achtibat et al. 2024) for transformers and modern CNNs: epsilon on convolutions
    and dense layers (``gamma=`` puts the gamma rule there instead), the transformer rules of
    :mod:`unmask.lrp.transformer`, products of two tensors half each; ``attention="cp"`` is CP-LRP
    (Ali et al. 2022): attention weights held constant, all relevance through the values."""

    name = "attnlrp"

    def __init__(self, attention: str = "attnlrp", epsilon: float = 1e-6, gamma: float | None = None,
                 stabilizer: float = 1e-6, maxpool: str = "winner", zero_bias: bool = False) -> None:
        self.attention, self.epsilon, self.gamma = attention, epsilon, gamma
        self._common(stabilizer, maxpool, zero_bias)
        zero = bool(zero_bias)
        weighted = R.Epsilon(epsilon, zero) if gamma is None else R.Gamma(gamma, stabilizer, zero)
        self._compose(weighted, weighted, epsilon=epsilon)
        self.base.update(T.defaults(attention, stabilizer, weighted))
        self.base["gate"] = T.Product()


#: The presets by name, in the order the documentation lists them.
PRESETS: dict[str, type[Preset]] = {cls.name: cls for cls in (
    Epsilon, EpsilonPlus, EpsilonPlusFlat, EpsilonGammaBox, EpsilonAlpha2Beta1, EpsilonAlpha2Beta1Flat,
    ExcitationBackprop, AttnLRP,
)}


def preset(name: str, **params: Any) -> Preset:
    """The preset composite ``name`` (a key of :data:`PRESETS`) with ``params``:
    ``preset("epsilon_gamma_box", gamma=0.5)`` is ``EpsilonGammaBox(gamma=0.5)``. Unknown names and
    parameters are refused with the allowed ones listed."""
    if name not in PRESETS:
        raise ValueError(f"unknown LRP composite {name!r}; presets: {', '.join(PRESETS)}")
    allowed = PRESETS[name]._signature()
    unknown = set(params) - set(allowed)
    if unknown:
        raise ValueError(f"lrp.{name} does not take {', '.join(sorted(unknown))}; its parameters: {', '.join(allowed)}")
    return PRESETS[name](**params)


def __getattr__(name: str) -> Any:
    if name == "COMMON":  # deprecated: the tuple of parameters every preset takes, now in each preset's signature
        warnings.warn("unmask.lrp.composites.COMMON is deprecated: a preset's parameters are its signature "
                      "(unmask.lrp.PRESETS[name]().get_params())", DeprecationWarning, stacklevel=2)
        return ("stabilizer", "maxpool", "zero_bias")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
