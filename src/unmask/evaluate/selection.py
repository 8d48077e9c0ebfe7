"""Explanation selection (Montavon et al. 2018, "Methods for interpreting and understanding deep neural networks"): try every value of a method's parameter (e.g. the
gamma of ``lrp.epsilon_gamma_box``), score each by a metric, keep the best."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import nn

from ..explanation import Explanation
from ..registry import get as get_method
from ..targets import Target
from .._utils.validation import check_int
from ._common import check_model_inputs, forward_scores, resolve, to_list

#: Built-in metrics: name -> (what it computes, whether higher is better).
METRICS = {
    "morf": ("AOPC of region perturbation, most relevant first", True),
    "lerf": ("AOPC of region perturbation, least relevant first", False),
    "selectivity": ("AOPC_MoRF - AOPC_LeRF", True),
    "conservation": ("mean |sum R - f(x)| / |f(x)|", False),
    "continuity": ("max ||R(x) - R(x')||_1 / ||x - x'||_2 over shifted inputs", False),
}


@dataclass
class SelectionResult:
    """The table of a parameter sweep and its best entry."""

    method: str
    parameter: str
    values: list[Any]
    scores: list[float]
    metric: str
    higher_is_better: bool
    results: list[Any] = field(default_factory=list, repr=False)

    @property
    def best_index(self) -> int:
        """Index of the best finite score (the first one on a tie)."""
        finite = [(i, s) for i, s in enumerate(self.scores) if math.isfinite(s)]
        if not finite:
            raise ValueError("no parameter value gave a finite score")
        key = (lambda item: -item[1]) if self.higher_is_better else (lambda item: item[1])
        return min(finite, key=lambda item: (key(item), item[0]))[0]

    @property
    def best_value(self) -> Any:
        return self.values[self.best_index]

    @property
    def best_score(self) -> float:
        return self.scores[self.best_index]

    def table(self) -> list[dict[str, Any]]:
        """One row per value: ``{parameter: value, metric: score}``."""
        return [{self.parameter: value, self.metric: score} for value, score in zip(self.values, self.scores)]

    def __str__(self) -> str:
        rows = [(repr(v) if not isinstance(v, float) else f"{v:g}", f"{s:.6g}") for v, s in zip(self.values, self.scores)]
        width = max(len(self.parameter), *(len(r[0]) for r in rows))
        best = self.best_index
        lines = [f"{self.parameter.ljust(width)}  {self.metric} ({'higher' if self.higher_is_better else 'lower'} is better)"]
        lines += [f"{v.ljust(width)}  {s}{'  <- best' if i == best else ''}" for i, (v, s) in enumerate(rows)]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "parameter": self.parameter,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "table": [{"value": to_list(_plain(v)), "score": to_list(s)} for v, s in zip(self.values, self.scores)],
            "best": {"value": to_list(_plain(self.best_value)), "score": to_list(self.best_score)},
        }


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


def _score(metric: str | Callable[..., Any], model: nn.Module, inputs: torch.Tensor, explanation: Explanation,
           index: torch.Tensor | None, target: Target, method: str, params: dict[str, Any],
           options: Mapping[str, Any]) -> Any:
    from .axioms import conservation, continuity, selectivity
    from .perturbation import region_perturbation

    chosen = target if index is None else index
    if callable(metric):
        return metric(model, inputs, explanation, **options)
    if metric in ("morf", "lerf"):
        return region_perturbation(model, inputs, explanation, chosen, order=metric, **options)
    if metric == "selectivity":
        return selectivity(model, inputs, explanation, chosen, **options)
    if metric == "conservation":
        return conservation(explanation)
    return continuity(model, inputs, method, chosen, params=params, **options)


def select(
    model: nn.Module,
    inputs: torch.Tensor,
    method: str,
    parameter: str,
    values: Sequence[Any],
    target: Target = None,
    *,
    metric: str | Callable[..., Any] = "morf",
    params: Mapping[str, Any] | None = None,
    higher_is_better: bool | None = None,
    metric_options: Mapping[str, Any] | None = None,
    batch_size: int = 16,
) -> SelectionResult:
    """Sweep ``parameter`` of the registered ``method`` over ``values``, explain ``inputs`` with each (the
    other parameters from ``params``) and score the explanations with ``metric``; the best value wins.

    ``metric`` is one of :data:`METRICS` (``"morf"`` by default: AOPC, higher is better) or a function
    ``(model, inputs, explanation, **metric_options) -> number or result with .value`` (then say
    ``higher_is_better``, default True). All candidates explain the same class: ``target``, by default the
    model's prediction. ``metric_options`` go to the metric (e.g. ``steps``, ``region``, ``seed``; the same
    seed for every value, so the candidates meet the same noise).

    >>> result = select(model, x, "lrp.epsilon_gamma_box", "gamma", [0.0, 0.1, 0.25, 1.0], low=..., high=...)
    >>> result.best_value, print(result)
    """
    model, inputs = check_model_inputs(model, inputs)
    if isinstance(metric, str):
        if metric not in METRICS:
            raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)} or pass a function")
        name, better = metric, METRICS[metric][1]
        if higher_is_better is not None and higher_is_better != better:
            raise ValueError(f"metric {metric!r} is {'higher' if better else 'lower'}-is-better; drop higher_is_better")
    elif callable(metric):
        name, better = getattr(metric, "__name__", "metric"), True if higher_is_better is None else bool(higher_is_better)
    else:
        raise ValueError(f"metric must be a name ({', '.join(METRICS)}) or a function, got {metric!r}")
    values = list(values)
    if not values:
        raise ValueError("values must not be empty")
    params = dict(params or {})
    if parameter in params:
        raise ValueError(f"{parameter!r} is swept; do not also pass it in params")
    cls = get_method(method)
    batch_size = check_int("batch_size", batch_size)
    index = resolve(forward_scores(model, inputs, "logit", batch_size), target)
    options = dict(metric_options or {})
    scores, results = [], []
    for value in values:
        explainer = cls(model, **params, **{parameter: value})
        pieces = [explainer.explain(inputs[s : s + batch_size], target=target if index is None else index[s : s + batch_size])
                  for s in range(0, inputs.shape[0], batch_size)]
        explanation = Explanation(
            relevance=torch.cat([p.relevance for p in pieces]),
            output=torch.cat([p.output for p in pieces]),
            target=None if index is None else index,
            method=method,
            inputs=inputs,
            params={**params, parameter: value},
        )
        result = _score(metric, model, inputs, explanation, index, target, method, {**params, parameter: value}, options)
        results.append(result)
        scores.append(float(getattr(result, "value", result)))
    return SelectionResult(method, parameter, values, scores, name, better, results)
