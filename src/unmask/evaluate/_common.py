"""What the metrics share: input checks, heatmaps from relevance, explainers, scores, JSON values."""
from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence, Union

import torch
from torch import nn

from .._io import json_safe
from ..checks import check_eval, check_inputs
from ..models.module import as_module
from ..explanation import Explanation
from ..targets import Target, resolve_target, selection

#: A method to evaluate: a registry name (``"lrp.epsilon_plus_flat"``) or a function
#: ``(model, inputs, target) -> relevance tensor or Explanation``.
Method = Union[str, Callable[[nn.Module, torch.Tensor, Any], Any]]
#: Relevance as a tensor ``(B, C, H, W)``, ``(B, 1, H, W)`` or ``(B, H, W)``, or an :class:`Explanation`.
Relevance = Union[torch.Tensor, Explanation]

SCORES = ("logit", "probability")


def check_model_inputs(model: Any, inputs: torch.Tensor, images: bool = True) -> tuple[nn.Module, torch.Tensor]:
    """The module (of a zoo model too) and the inputs, validated for it (eval mode, finite, same device
    and dtype); images are ``(B, C, H, W)``."""
    try:
        model = as_module(model)
    except TypeError as error:
        raise ValueError(str(error)) from None
    check_eval(model)
    inputs = check_inputs(model, inputs)
    if images and inputs.dim() != 4:
        raise ValueError(
            f"inputs must be images shaped (batch, channels, height, width), got shape {tuple(inputs.shape)}"
        )
    return model, inputs


def relevance_tensor(relevance: Relevance) -> torch.Tensor:
    if isinstance(relevance, Explanation):
        return relevance.relevance
    if not isinstance(relevance, torch.Tensor):
        raise ValueError(f"relevance must be a tensor or an Explanation, got {type(relevance).__name__}")
    return relevance


def explained_target(relevance: Relevance, target: Target) -> Target:
    """The target to score: the one given, else the class the explanation explained, else the prediction."""
    if target is None and isinstance(relevance, Explanation) and relevance.target is not None:
        return relevance.target
    return target


def heatmap(relevance: Relevance, shape: torch.Size | tuple[int, ...] | None = None,
            device: torch.device | None = None) -> torch.Tensor:
    """Pixel relevance ``(B, H, W)``: the relevance summed over channels.

    ``relevance`` is ``(B, C, H, W)``, ``(B, 1, H, W)`` or ``(B, H, W)``; with ``shape`` (the inputs'
    ``(B, C, H, W)``) its batch and spatial size must match. Non-finite values are refused.
    """
    tensor = relevance_tensor(relevance).detach()
    if not tensor.is_floating_point():
        tensor = tensor.float()
    if tensor.dim() == 4:
        if shape is not None and tensor.shape[1] not in (1, shape[1]):
            raise ValueError(
                f"relevance shaped {tuple(tensor.shape)} does not match inputs shaped {tuple(shape)}: "
                "expected (B, C, H, W), (B, 1, H, W) or (B, H, W)"
            )
        tensor = tensor.sum(1)
    elif tensor.dim() != 3:
        raise ValueError(
            f"relevance must be shaped (B, C, H, W), (B, 1, H, W) or (B, H, W), got {tuple(tensor.shape)}"
        )
    if shape is not None and (tensor.shape[0] != shape[0] or tuple(tensor.shape[1:]) != tuple(shape[-2:])):
        raise ValueError(
            f"relevance shaped {tuple(relevance_tensor(relevance).shape)} does not match inputs shaped "
            f"{tuple(shape)}: batch size and height x width must be equal"
        )
    if not torch.isfinite(tensor).all():
        raise ValueError("relevance contains NaN or Inf values")
    return tensor if device is None else tensor.to(device)


def forward_scores(model: nn.Module, inputs: torch.Tensor, score: str, batch_size: int) -> torch.Tensor:
    """The model's output for ``inputs`` in chunks of ``batch_size``, softmax-ed for ``score="probability"``."""
    outputs = []
    with torch.no_grad():
        for start in range(0, inputs.shape[0], batch_size):
            outputs.append(transform_output(model(inputs[start : start + batch_size]), score))
    return torch.cat(outputs)


def transform_output(output: torch.Tensor, score: str) -> torch.Tensor:
    if not isinstance(output, torch.Tensor) or not output.is_floating_point():
        raise ValueError("the model's output is not a floating tensor")
    if score == "probability":
        if output.dim() != 2:
            raise ValueError(f"score='probability' needs an output shaped (batch, classes), got {tuple(output.shape)}")
        return output.softmax(1)
    return output


def pick(output: torch.Tensor, target: Target, index: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
    """The scored value per row: ``output[i, index[rows[i]]]`` for class targets, ``target(output)`` otherwise."""
    if index is None:
        value, _ = selection(output, target)
        return value
    return output.gather(1, index[rows].view(-1, 1)).squeeze(1)


def resolve(output: torch.Tensor, target: Target) -> torch.Tensor | None:
    """Class index per sample (``None`` for a callable target); ``target`` may be a tensor on another device."""
    if isinstance(target, torch.Tensor):
        target = target.to(output.device)
    return resolve_target(output, target)


def make_explainer(method: Method, params: Mapping[str, Any] | None = None) -> Callable[[nn.Module, torch.Tensor, Any], torch.Tensor]:
    """A function ``(model, inputs, target) -> relevance`` for a registry name or a user function.

    A registered method is built once per model (LRP traces the model when it is built) with ``params``.
    """
    params = dict(params or {})
    if isinstance(method, str):
        from ..registry import get

        cls = get(method)
        cache: dict[int, Any] = {}

        def run(model: nn.Module, inputs: torch.Tensor, target: Any) -> torch.Tensor:
            key = id(model)
            if key not in cache:
                cache.clear()  # one model at a time: a randomised copy replaces the previous one
                cache[key] = (model, cls(model, **params))
            return cache[key][1].explain(inputs, target=target).relevance.detach()

        return run
    if callable(method):
        if params:
            raise ValueError("params are for registered methods; bind them into your function instead")

        def call(model: nn.Module, inputs: torch.Tensor, target: Any) -> torch.Tensor:
            result = method(model, inputs, target)
            return relevance_tensor(result).detach()

        return call
    raise ValueError(f"method must be a registered name or a function (model, inputs, target) -> relevance, got {method!r}")


def method_name(method: Method) -> str:
    return method if isinstance(method, str) else getattr(method, "__name__", type(method).__name__)


def explain_batched(explainer: Callable[[nn.Module, torch.Tensor, Any], torch.Tensor], model: nn.Module,
                    inputs: torch.Tensor, target: torch.Tensor | None, batch_size: int,
                    callable_target: Target = None) -> torch.Tensor:
    """Relevance for ``inputs`` explained in chunks of ``batch_size``; ``target`` holds one class per row."""
    pieces = []
    for start in range(0, inputs.shape[0], batch_size):
        chunk = inputs[start : start + batch_size]
        chunk_target = callable_target if target is None else target[start : start + batch_size]
        relevance = explainer(model, chunk, chunk_target)
        if relevance.shape[0] != chunk.shape[0]:
            raise ValueError(f"the method returned relevance for {relevance.shape[0]} samples, expected {chunk.shape[0]}")
        pieces.append(relevance.to(inputs.device))
    return torch.cat(pieces)


def to_list(value: Any) -> Any:
    """Tensors and arrays as (nested) lists of finite floats/ints; NaN/Inf become ``None`` (valid JSON):
    :func:`unmask._io.json_safe` with tensors and arrays written out as lists."""
    return json_safe(value, default=_as_lists)


def result_dict(result: Any, metric: str, names: Sequence[str] = (), /, **computed: Any) -> dict[str, Any]:
    """The JSON form of a metric's result: ``{"metric": metric}``, then the attributes ``names`` of ``result``
    and the ``computed`` values, in that order, each through :func:`to_list`."""
    return to_list({"metric": metric, **{name: getattr(result, name) for name in names}, **computed})


def _as_lists(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return value.double().tolist() if value.is_floating_point() else value.tolist()
    return value.tolist() if hasattr(value, "tolist") else value


def finite_mean(values: torch.Tensor) -> float:
    """Mean of the finite entries (NaN when there are none)."""
    values = values.detach().double().flatten()
    values = values[torch.isfinite(values)]
    return float(values.mean()) if values.numel() else math.nan
