"""Forward-hook capture of layer outputs."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import nn

from .layers import resolve_layer

__all__ = ["Capture"]


class _Stop(Exception):
    """Raised by a capture hook once every wanted layer has run: the rest of the forward pass is skipped."""


class Capture:
    """Forward hooks that keep the outputs of the layers ``names`` of ``model``.

    ``detach=True`` keeps detached copies (a later in-place module cannot change them); ``detach=False``
    keeps clones that stay in the autograd graph (for objectives on a layer). ``once=True`` raises when
    a layer runs more than once in a forward pass. :meth:`run` can end the forward pass as soon as the
    wanted layers have run (``stop_early``). ``calls[name]`` counts how often each layer ran. Use as a
    context manager, or call :meth:`close` to remove the hooks."""

    def __init__(self, model: nn.Module, names: Sequence[str], detach: bool = True, once: bool = False) -> None:
        self.names = list(dict.fromkeys(names))
        self.detach, self.once = detach, once
        self.outputs: dict[str, torch.Tensor] = {}
        self.calls: dict[str, int] = {n: 0 for n in self.names}
        self.stop_early = False
        self.wanted: set[str] = set(self.names)
        self.handles = [resolve_layer(model, n).register_forward_hook(self._hook(n)) for n in self.names]

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            self.calls[name] += 1
            if self.once and name in self.outputs:
                raise ValueError(f"layer {name!r} runs more than once per forward pass; pick a module that runs once")
            tensor = output[0] if isinstance(output, (tuple, list)) and output else output
            if isinstance(tensor, torch.Tensor):
                self.outputs[name] = tensor.detach().clone() if self.detach else tensor.clone()
            if self.stop_early and all(n in self.outputs for n in self.wanted):
                raise _Stop

        return hook

    def run(self, model: nn.Module, inputs: torch.Tensor, wanted: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Run ``model(inputs)`` and return the kept outputs of ``wanted`` (default: every layer)."""
        self.outputs = {}
        self.wanted = set(self.names if wanted is None else wanted)
        try:
            model(inputs)
        except _Stop:
            pass
        missing = [n for n in self.wanted if n not in self.outputs]
        if missing:
            raise RuntimeError(f"layer(s) {', '.join(missing)} did not run (or gave no tensor) in the forward pass")
        return self.outputs

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def __enter__(self) -> "Capture":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
