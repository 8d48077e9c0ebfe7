"""LRP as a method of the registry: ``unmask.LRP`` and ``lrp.<preset>``."""
from __future__ import annotations

import inspect
from collections import OrderedDict
from typing import Any, ClassVar

import torch
from torch import nn

from .._utils.deprecation import renamed_attribute
from .._utils.params import Parameters
from ..checks import check_eval, check_inputs
from ..explanation import Explanation
from ..graph.canonize import ExplainableGraph
from ..graph.trace import TraceError, frozen_copy
from ..models.module import as_module
from ..registry import register
from ..targets import Target, output_gradient
from .composites import PRESETS, Composite, Preset, preset
from .engine import Engine


_CACHED_SHAPES = 4  # shape-specialised graphs kept (a dataset's full and last batch, a few sizes)


class RuleTable(list):
    """Which rule each graph step got: a list of ``(node, module path, kind, rule, merged)`` rows, printable;
    ``merged`` names the BatchNorms (and constant per-channel scalings) folded into that layer."""

    def __str__(self) -> str:
        rows = [("node", "module", "kind", "rule", "merged")] + [tuple(map(str, row)) for row in self]
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


class LRP(Parameters):
    """Layer-wise Relevance Propagation (Bach et al. 2015) with a composite of rules.

    The model is traced and canonized once (on a copy: BatchNorm folded, in-place ops removed), or once
    per input shape where its code branches on shapes (see :func:`unmask.graph.trace`); each
    :meth:`explain` runs one forward pass keeping activations and one reverse pass. Relevance at the
    output starts as the explained logit times a one-hot (``init="logit"``, as Zennit and the seeds do),
    so that a conserving composite gives ``sum(R) = f_c(x)``; ``init="onehot"`` starts from the plain
    one-hot. Callable targets start from ``output * d target / d output``.

    >>> explainer = unmask.LRP(model, composite="epsilon_gamma_box", gamma=0.5, low=low, high=high)
    >>> explanation = explainer.explain(images, target=281)
    >>> print(explainer.rules())

    ``get_params()`` gives ``composite`` (a preset's name, or your :class:`Composite`), ``init`` and a
    preset's own parameters; each registered ``lrp.<preset>`` class takes the latter as keywords.
    """

    method: ClassVar[str] = "lrp"
    params = renamed_attribute("get_params", call=True)
    _data_args = ("model",)

    def __init__(self, model: nn.Module, composite: str | Composite = "epsilon_plus_flat", init: str = "logit",
                 **params: Any):
        if init not in ("logit", "onehot"):
            raise ValueError(f"init must be 'logit' or 'onehot', got {init!r}")
        if isinstance(composite, str):
            composite = preset(composite, **params)
        elif params:
            raise ValueError(f"rule parameters {sorted(params)} only apply to preset composites; set them on the "
                             "rules of your Composite")
        model = as_module(model)
        check_eval(model)
        self.model = model
        self.composite = composite
        self.init = init
        self._copy = frozen_copy(model)
        self._engines: OrderedDict[tuple, Engine] = OrderedDict()  # by input shape, for shape-specialised traces
        try:
            self.engine: Engine | None = self._build(None)
        except TraceError as error:  # shape-dependent code: traced per input shape, on first use
            self.engine, self._symbolic_error = None, error

    def get_params(self) -> dict[str, Any]:
        """``composite`` (the preset's name or your Composite), ``init`` and the preset's parameters."""
        if not isinstance(self.composite, Preset):
            return {"composite": self.composite, "init": self.init}
        return {"composite": self.composite.name, "init": self.init, **self.composite.get_params()}

    def set_params(self, **params: Any) -> "LRP":
        """As :meth:`Parameters.set_params`; a new ``composite`` starts from its own defaults (the old preset's
        parameters do not carry over)."""
        if "composite" not in params or "composite" not in self._signature():
            return super().set_params(**params)
        LRP.__init__(self, self.model, **{"init": self.init, **params})
        return self

    def _defaults(self) -> dict[str, Any]:
        preset_defaults = self.composite._defaults() if isinstance(self.composite, Preset) else {}
        return {**super()._defaults(), **preset_defaults}

    @property
    def graph(self) -> ExplainableGraph | None:
        """The explainable graph: valid for every shape, else the one of the last explained input shape."""
        if self.engine is not None:
            return self.engine.graph
        return next(reversed(self._engines.values())).graph if self._engines else None

    def _build(self, example: torch.Tensor | None) -> Engine:
        graph = ExplainableGraph(self._copy, self.composite.leaf_types(), self.composite.leaf_names(),
                                 example=example, copy_model=False)
        return Engine(graph, self.composite)

    def _engine_for(self, inputs: torch.Tensor) -> Engine:
        """The shape-independent engine, or one traced for ``inputs``' shape (cached, the last few kept)."""
        if self.engine is not None:
            return self.engine
        key = (tuple(inputs.shape), inputs.dtype, inputs.device)
        engine = self._engines.pop(key, None)
        if engine is None:
            engine = self._build(inputs)
        self._engines[key] = engine
        while len(self._engines) > _CACHED_SHAPES:
            self._engines.popitem(last=False)
        return engine

    def rules(self, inputs: torch.Tensor | None = None) -> RuleTable:
        """The rule of every step that can receive relevance, in forward order.

        ``inputs`` is needed only for models whose graph depends on the input shape (it is traced for it).
        """
        if inputs is not None:
            engine = self._engine_for(check_inputs(self.model, inputs))
        elif self.engine is not None or self._engines:
            engine = self.engine or next(reversed(self._engines.values()))
        else:
            raise ValueError(f"{type(self.model).__name__}'s graph depends on the input shape "
                             f"({self._symbolic_error}); pass an example batch: rules(inputs)")
        graph = engine.graph
        return RuleTable(
            (s.name, s.path or "-", s.kind + (" (first)" if s.first else ""), engine.rules[s.node],
             ", ".join(s.merged) or "-")
            for s in graph.ordered() if engine.rules[s.node] is not None or s.kind == "other"
        )

    def explain(self, inputs: torch.Tensor, target: Target = None) -> Explanation:
        """Relevance of every input element for ``target`` (class index per sample, or a callable)."""
        return self._run(inputs, target, None)

    def relevances(self, inputs: torch.Tensor, target: Target = None) -> dict[str, torch.Tensor]:
        """Relevance at the output of every graph step (keyed by node name, see :meth:`rules`) and at
        the input (key ``"input"``): for per-layer conservation checks and concept-level analyses."""
        record: dict[str, torch.Tensor] = {}
        record["input"] = self._run(inputs, target, record).relevance
        return record

    def _run(self, inputs: torch.Tensor, target: Target, record: dict[str, Any] | None) -> Explanation:
        check_eval(self.model)
        inputs = check_inputs(self.model, inputs)
        engine = self._engine_for(inputs)
        with torch.no_grad():
            values, output = engine.graph.forward(inputs)
            if not isinstance(output, torch.Tensor) or not output.is_floating_point():
                raise ValueError("the model's output is not a floating tensor")
            seed, index = output_gradient(output, target)
            relevance = seed if self.init == "onehot" and index is not None else seed * output
            result = engine.backward(values, relevance, record)
        name = self.method if self.composite.name == "custom" else f"lrp.{self.composite.name}"
        params = self.get_params()
        params.pop("composite", None)
        return Explanation(result, output.detach(), index, name, inputs, {"composite": self.composite.name, **params})


class PresetLRP(LRP):
    """LRP with one preset composite: ``LRP_<preset>(model, init="logit", *, <the preset's parameters>)``.

    The keyword parameters are the preset class's signature (:data:`unmask.lrp.PRESETS`), not a copy."""

    preset: ClassVar[type[Preset]]

    def __init__(self, model: nn.Module, init: str = "logit", **params: Any) -> None:
        LRP.__init__(self, model, composite=self.preset.name, init=init, **params)

    def get_params(self) -> dict[str, Any]:
        return {"init": self.init, **self.composite.get_params()}


def _preset_method(cls: type[Preset], method: str) -> type[PresetLRP]:
    """The registered method ``method`` for the preset ``cls``, its signature ``(model, init, *, cls's)``."""

    def __init__(self: PresetLRP, model: nn.Module, init: str = "logit", **params: Any) -> None:
        PresetLRP.__init__(self, model, init, **params)

    own = list(inspect.signature(PresetLRP.__init__).parameters.values())[:3]  # self, model, init
    keywords = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in inspect.signature(cls).parameters.values()]
    __init__.__signature__ = inspect.Signature(own + keywords)  # type: ignore[attr-defined]
    return type(f"LRP_{cls.name}", (PresetLRP,), {
        "__init__": __init__, "preset": cls, "method": method, "__module__": __name__,
        "__doc__": f"LRP with the :class:`~unmask.lrp.composites.{cls.__name__}` composite "
                   f"(``{method}``).\n\n{cls.__doc__}",
    })


for _cls in PRESETS.values():
    register(f"lrp.{_cls.name}")(_preset_method(_cls, f"lrp.{_cls.name}"))
register("excitation_backprop")(_preset_method(PRESETS["excitation_backprop"], "excitation_backprop"))
register("lrp")(LRP)
