"""Device and mode policy: a model is used where it lives or copied to where it is asked for, never
moved, and its training flags are restored after use."""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

__all__ = ["eval_mode", "model_device", "on_device"]


def model_device(module: nn.Module) -> torch.device:
    """Where ``module``'s first parameter (or buffer) lives; the CPU for a module without tensors."""
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def on_device(module: nn.Module, device: str | torch.device | None) -> tuple[nn.Module, torch.device]:
    """``module`` on ``device`` and that device: the module itself when it is there already (or
    ``device`` is None), else a copy there. The user's module is never moved."""
    current = model_device(module)
    if device is None:
        return module, current
    target = torch.device(device)
    if target.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {target} asked for, but CUDA is not available (torch {torch.__version__})")
    if target == current or (target.type == current.type and target.index is None):
        return module, current
    return copy.deepcopy(module).to(target), target


class eval_mode:
    """Context manager: eval mode for the duration, then every module's training flag back as it was."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.flags = [(m, m.training) for m in model.modules()]

    def __enter__(self) -> nn.Module:
        self.model.eval()
        return self.model

    def __exit__(self, *exc: Any) -> None:
        for module, flag in self.flags:
            module.training = flag
