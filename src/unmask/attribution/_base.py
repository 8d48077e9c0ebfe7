"""What every attribution method shares: registration, validation, the explain template."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import torch
from torch import nn

from .._utils.deprecation import renamed_attribute
from .._utils.params import Parameters
from .._utils.validation import ParameterError, check_float
from ..checks import check_eval, check_inputs
from ..models.module import as_module
from ..explanation import Explanation
from ..registry import register
from ..targets import Target

T = TypeVar("T", bound=type)


def registered(name: str) -> Callable[[T], T]:
    """Register a method class under ``name`` and record the name on the class as ``method``."""

    def decorate(cls: T) -> T:
        cls.method = name  # type: ignore[attr-defined]
        return register(name)(cls)

    return decorate


def check_fill(name: str, value: Any) -> float | torch.Tensor:
    """A finite scalar or a finite floating tensor (broadcast against the inputs later)."""
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point() or not torch.isfinite(value).all():
            raise ParameterError(f"{name} must be a finite floating tensor, got dtype {value.dtype}")
        return value.detach()
    return check_float(name, value, minimum=-math.inf)


def broadcast_like(name: str, value: float | torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """``value`` on the inputs' device and dtype, broadcast to their full shape."""
    tensor = torch.as_tensor(value, dtype=inputs.dtype, device=inputs.device)
    try:
        return tensor.expand_as(inputs)
    except RuntimeError:
        raise ValueError(
            f"{name} of shape {tuple(tensor.shape)} does not broadcast to the inputs' shape {tuple(inputs.shape)}"
        ) from None


class Attribution(Parameters):
    """Base of every method: ``Method(model, **params).explain(inputs, target) -> Explanation``.

    ``explain`` refuses models in training mode and invalid inputs, then calls ``_attribute`` on the
    detached inputs; subclasses return ``(relevance, output, class index or None)``. A subclass keeps each
    constructor parameter as an attribute of the same name: :meth:`get_params` (recorded in every
    explanation), :meth:`set_params` and ``repr`` read them from there.
    """

    method: ClassVar[str] = ""
    name = renamed_attribute("method")
    params = renamed_attribute("get_params", call=True)
    _data_args = ("model",)

    def __init__(self, model: nn.Module) -> None:
        try:
            self.model = as_module(model)
        except TypeError as error:
            raise ValueError(str(error)) from None

    def explain(self, inputs: torch.Tensor, target: Target = None) -> Explanation:
        """Relevance of every input element for the ``target`` output, shaped like ``inputs``."""
        check_eval(self.model)
        inputs = check_inputs(self.model, inputs)
        relevance, output, index = self._attribute(inputs, target)
        return Explanation(
            relevance=relevance.detach(),
            output=output.detach(),
            target=index,
            method=self.method,
            inputs=inputs,
            params=self.get_params(),
        )

    def _attribute(
        self, inputs: torch.Tensor, target: Target
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        raise NotImplementedError
