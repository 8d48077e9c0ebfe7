"""Which output to explain: class indices, the prediction, or a callable."""
from __future__ import annotations

from typing import Callable, Union

import torch

from .checks import check_output

Target = Union[None, str, int, torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]


def resolve_target(output: torch.Tensor, target: Target) -> torch.Tensor | None:
    """Class index per sample as a ``(B,)`` long tensor on the output's device.

    ``None`` or ``"predicted"`` selects the arg-max class; an int is used for every sample; a tensor or
    sequence gives one index per sample. A callable target returns ``None`` here (see :func:`selection`).
    """
    if callable(target) and not isinstance(target, torch.Tensor):
        return None
    batch, classes = check_output(output).shape
    if target is None or (isinstance(target, str) and target == "predicted"):
        return output.argmax(1)
    if isinstance(target, str):
        raise ValueError(f"target must be an int, a tensor of ints, 'predicted' or a callable, got {target!r}")
    index = torch.as_tensor(target, device=output.device)
    if index.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices, not booleans, got {target!r}")
    if index.is_floating_point() or index.is_complex():
        raise ValueError(f"target must hold integer class indices, got dtype {index.dtype}")
    index = index.long().reshape(-1)
    if index.numel() == 1:
        index = index.expand(batch)
    if index.numel() != batch:
        raise ValueError(f"target has {index.numel()} entries for a batch of {batch}")
    if (index < 0).any() or (index >= classes).any():
        raise ValueError(f"target {index.tolist()} out of range for {classes} classes")
    return index.clone()


def selection(output: torch.Tensor, target: Target) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The explained score per sample ``(B,)`` and the resolved class index (``None`` for callables).

    The score is differentiable with respect to ``output``: ``output[i, target[i]]`` or ``target(output)``.
    """
    index = resolve_target(output, target)
    if index is None:
        score = target(output)  # type: ignore[operator]
        if not isinstance(score, torch.Tensor) or score.shape != (output.shape[0],):
            raise ValueError("a callable target must return one score per sample, shaped (batch,)")
        return score, None
    return output.gather(1, index.view(-1, 1)).squeeze(1), index


def output_gradient(output: torch.Tensor, target: Target) -> tuple[torch.Tensor, torch.Tensor | None]:
    """d score / d output per sample: a one-hot for class targets, the callable's gradient otherwise."""
    index = resolve_target(output, target)
    if index is not None:
        onehot = torch.zeros_like(output)
        onehot.scatter_(1, index.view(-1, 1), 1.0)
        return onehot, index
    with torch.enable_grad():
        out = output.detach().requires_grad_(True)
        score, _ = selection(out, target)
        (grad,) = torch.autograd.grad(score.sum(), out)
    return grad, None
