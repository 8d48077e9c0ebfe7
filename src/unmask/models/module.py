"""What counts as a model: a ``torch.nn.Module``, or a zoo model that wraps one."""
from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["as_module"]


def as_module(model: Any) -> nn.Module:
    """``model`` itself when it is an ``nn.Module``; the module inside a zoo model (anything with an
    ``nn.Module`` as ``.model``, as :class:`unmask.zoo.ZooModel`); else a TypeError."""
    if isinstance(model, nn.Module):
        return model
    inner = getattr(model, "model", None)
    if isinstance(inner, nn.Module):
        return inner
    raise TypeError(f"model must be a torch.nn.Module or a unmask.zoo.ZooModel, got {type(model).__name__}")
