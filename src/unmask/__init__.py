"""unmask: explain, evaluate and audit PyTorch vision models."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .explanation import Explanation
from .registry import get as get_method
from .registry import methods
from .targets import Target

__all__ = ["Explanation", "explain", "methods", "get_method", "LRP"]
__version__ = "0.1.0"


def explain(
    model: nn.Module,
    inputs: torch.Tensor,
    method: str = "lrp.epsilon_plus_flat",
    target: Target = None,
    **params: Any,
) -> Explanation:
    """Explain ``model``'s decision on a batch ``inputs`` with the registered ``method``.

    ``target`` is a class index, a tensor of indices (one per sample), ``None``/``"predicted"`` for the
    arg-max class, or a callable mapping the output to one score per sample. ``params`` are the method's
    parameters (for LRP presets: ``epsilon``, ``gamma``, ``alpha``/``beta``, ``low``/``high``, ...).

    >>> explanation = unmask.explain(model, images, method="lrp.epsilon_gamma_box", gamma=0.5)
    >>> explanation.relevance.shape == images.shape
    True
    """
    return get_method(method)(model, **params).explain(inputs, target=target)


_SUBMODULES = {"lrp", "attribution", "graph", "viz", "zoo", "data", "cli", "evaluate", "analyze", "store"}


def __getattr__(name: str) -> Any:
    import importlib

    if name == "LRP":
        from .lrp.method import LRP

        return LRP
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module 'unmask' has no attribute {name!r}")
