"""LRP as a method of the registry: ``unmask.LRP`` and ``lrp.<preset>``."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..checks import check_eval, check_inputs
from ..explanation import Explanation
from ..graph.canonize import ExplainableGraph
from ..registry import register
from ..targets import Target, output_gradient
from .composites import COMMON, PRESETS, Composite, preset
from .engine import Engine


class RuleTable(list):
    """Which rule each graph step got: a list of ``(node, module path, kind, rule)`` rows, printable."""

    def __str__(self) -> str:
        rows = [("node", "module", "kind", "rule")] + [tuple(map(str, row)) for row in self]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


class LRP:
    """Layer-wise Relevance Propagation (Bach et al. 2015) with a composite of rules.

    The model is traced and canonized once (on a copy: BatchNorm folded, in-place ops removed); each
    :meth:`explain` runs one forward pass keeping activations and one reverse pass. Relevance at the
    output starts as the explained logit times a one-hot (``init="logit"``, as Zennit and the seeds do),
    so that a conserving composite gives ``sum(R) = f_c(x)``; ``init="onehot"`` starts from the plain
    one-hot. Callable targets start from ``output * d target / d output``.

    >>> explainer = unmask.LRP(model, composite="epsilon_gamma_box", gamma=0.5, low=low, high=high)
    >>> explanation = explainer.explain(images, target=281)
    >>> print(explainer.rules())
    """

    method = "lrp"

    def __init__(self, model: nn.Module, composite: str | Composite = "epsilon_plus_flat", init: str = "logit",
                 **params: Any):
        if init not in ("logit", "onehot"):
            raise ValueError(f"init must be 'logit' or 'onehot', got {init!r}")
        if isinstance(composite, str):
            composite = preset(composite, **params)
        elif params:
            raise ValueError(f"rule parameters {sorted(params)} only apply to preset composites; set them on the "
                             "rules of your Composite")
        check_eval(model)
        self.model = model
        self.composite = composite
        self.init = init
        self.params = dict(params)
        self.graph = ExplainableGraph(model, composite.leaf_types(), composite.leaf_names())
        self.engine = Engine(self.graph, composite)

    def rules(self) -> RuleTable:
        """The rule of every step that can receive relevance, in forward order."""
        return RuleTable(
            (s.name, s.path or "-", s.kind + (" (first)" if s.first else ""), self.engine.rules[s.node])
            for s in self.graph.ordered() if self.engine.rules[s.node] is not None or s.kind == "other"
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
        with torch.no_grad():
            values, output = self.graph.forward(inputs)
            if not isinstance(output, torch.Tensor) or not output.is_floating_point():
                raise ValueError("the model's output is not a floating tensor")
            seed, index = output_gradient(output, target)
            relevance = seed if self.init == "onehot" and index is not None else seed * output
            result = self.engine.backward(values, relevance, record)
        name = self.method if self.composite.name == "custom" else f"lrp.{self.composite.name}"
        return Explanation(result, output.detach(), index, name, inputs,
                           {"composite": self.composite.name, "init": self.init, **self.params})


def _preset_class(name: str) -> type:
    def __init__(self, model: nn.Module, init: str = "logit", **params: Any) -> None:
        LRP.__init__(self, model, composite=name, init=init, **params)

    return type(f"LRP_{name}", (LRP,), {
        "__init__": __init__,
        "__doc__": f"LRP with the ``{name}`` composite.",
        "parameters": PRESETS[name] + COMMON,
    })


for _name in PRESETS:
    register(f"lrp.{_name}")(_preset_class(_name))
register("excitation_backprop")(_preset_class("excitation_backprop"))
register("lrp")(LRP)
