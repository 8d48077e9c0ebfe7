"""Input validation shared by every method: clear errors instead of deep tracebacks."""
from __future__ import annotations

import torch
from torch import nn


def model_device_dtype(model: nn.Module) -> tuple[torch.device | None, torch.dtype | None]:
    """Device and floating dtype of the model's first parameter or buffer (``None`` if it has none)."""
    for tensor in list(model.parameters()) + list(model.buffers()):
        if tensor.is_floating_point():
            return tensor.device, tensor.dtype
    return None, None


def check_inputs(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Validate a batch for ``model``: a floating tensor, batch first, finite, on the model's device and dtype."""
    if not isinstance(inputs, torch.Tensor):
        raise ValueError(f"inputs must be a torch.Tensor shaped (batch, ...), got {type(inputs).__name__}")
    if not inputs.is_floating_point():
        raise ValueError(f"inputs must be floating point, got {inputs.dtype}")
    if inputs.dim() < 2:
        raise ValueError(
            f"inputs must be batch first with at least 2 dimensions, got shape {tuple(inputs.shape)}; "
            "a single image is a batch of one: use inputs.unsqueeze(0)"
        )
    if inputs.dim() == 3 and any(isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d, nn.BatchNorm2d)) for m in model.modules()):
        raise ValueError(
            f"inputs shaped {tuple(inputs.shape)} look like one (C, H, W) image, but the model takes batches "
            "(B, C, H, W): add a batch dimension: x.unsqueeze(0)"
        )
    if inputs.shape[0] == 0:
        raise ValueError("inputs hold an empty batch")
    if not torch.isfinite(inputs).all():
        raise ValueError("inputs contain NaN or Inf values")
    device, dtype = model_device_dtype(model)
    if device is not None and inputs.device != device:
        raise ValueError(f"inputs are on {inputs.device} but the model is on {device}; move one of them")
    if dtype is not None and inputs.dtype != dtype:
        raise ValueError(f"inputs are {inputs.dtype} but the model's parameters are {dtype}; cast one of them")
    return inputs.detach()


def check_eval(model: nn.Module) -> None:
    """Refuse models in training mode: dropout and batch statistics would make explanations random."""
    training = [name or type(model).__name__ for name, m in model.named_modules() if m.training]
    if training:
        raise ValueError(
            f"the model is in training mode ({training[0]!r}{' and others' if len(training) > 1 else ''}); "
            "call model.eval() before explaining it"
        )


def check_output(output: object) -> torch.Tensor:
    """The model's output if it is a floating ``(batch, classes)`` tensor with at least one class; else a ValueError."""
    if not isinstance(output, torch.Tensor):
        raise ValueError(
            f"the model returns a {type(output).__name__}, not a tensor of logits; explain a wrapper that "
            "returns one tensor (e.g. lambda x: model(x)[0] inside an nn.Module), or pass a callable target"
        )
    if output.dim() != 2:
        raise ValueError(
            f"class targets need a model output shaped (batch, classes), got {tuple(output.shape)}; "
            "pass a callable target that maps the output to one score per sample"
        )
    if output.shape[1] == 0:
        raise ValueError(f"the model's output has no classes (shape {tuple(output.shape)})")
    if not output.is_floating_point():
        raise ValueError(f"the model's output is {output.dtype}; explanations need floating-point logits")
    return output
