"""Class prototypes: the input a network finds most typical of a class, unit, channel or direction.

Activation maximisation (Erhan et al. 2009; Simonyan et al. 2014): ``argmax_x f(x) - R(x)`` by gradient
ascent on the input, where ``f`` is a class logit or an internal activation and ``R`` a regulariser.
Plain pixel ascent finds high-frequency patterns; what makes prototypes readable (Olah et al.,
"Feature Visualization", Distill 2017) is used here:

- **parameterisation**: ``param="fourier"`` optimises a spectrum scaled by ``1 / frequency`` (so all
  frequencies learn at similar speed) in decorrelated colour; ``param="pixel"`` optimises pixels
  (optionally in decorrelated colour too). Either way a sigmoid keeps pixels in [0, 1].
- **transformation robustness**: every step sees the image randomly jittered, scaled and rotated, so
  only patterns that survive small transformations grow.
- **regularisers**: ``l2`` (Simonyan et al.: penalise the squared norm of the normalised input),
  ``tv`` (total variation of the pixels), ``blur`` (penalise the difference to a blurred copy).

Several targets are optimised at once, one image each, in one batch.

>>> from unmask import zoo
>>> from unmask.analyze import prototype
>>> net = zoo.load("efficientnet-lite0")
>>> x = prototype(net, 99, steps=256)                  # goose (ImageNet index 99, 0-based); (1, 3, 224, 224)
>>> net.predict(x)[0][0]                               # fed back: (99, 'goose', 0.99...)
>>> x = prototype(net, [99, 281, Channel("_blocks.5", 7)])    # three at once, one image each
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._utils.validation import finite
from .._utils.progress import Progress, progress_bar
from ..models import Capture, eval_mode, on_device, pixel_model, resolve_layer

__all__ = [
    "Channel",
    "Direction",
    "Logit",
    "Unit",
    "evaluate",
    "parse_target",
    "prototype",
    "to_pixels",
]


@dataclass(frozen=True)
class Logit:
    """Class ``index``'s output (the logit; ``objective="log_softmax"`` in :func:`prototype` for its log-probability)."""

    index: int

    def __str__(self) -> str:
        return f"logit:{self.index}"


@dataclass(frozen=True)
class Channel:
    """The mean activation of ``channel`` over all positions of ``layer``."""

    layer: str
    channel: int

    def __str__(self) -> str:
        return f"channel:{self.layer}:{self.channel}"


@dataclass(frozen=True)
class Unit:
    """One neuron: ``channel`` of ``layer`` at position ``(y, x)`` (default: the centre)."""

    layer: str
    channel: int
    y: int | None = None
    x: int | None = None

    def __str__(self) -> str:
        where = "" if self.y is None else f":{self.y}:{self.x}"
        return f"unit:{self.layer}:{self.channel}{where}"


@dataclass(frozen=True, eq=False)
class Direction:
    """A direction in ``layer``'s channel space: the mean over positions of ``<a(y, x), v> / |v|``."""

    layer: str
    vector: Any

    def __str__(self) -> str:
        return f"direction:{self.layer}"


Target = Any  # int, Logit, Channel, Unit, Direction, or a list of them


def parse_target(text: str, classes: Sequence[str] = ()) -> Logit | Channel | Unit | Direction:
    """A target from the command line: ``100``, ``goose`` (a class name), ``logit:100``,
    ``channel:LAYER:C``, ``unit:LAYER:C`` or ``unit:LAYER:C:Y:X``, ``direction:LAYER:FILE.npy``."""
    text = text.strip()
    kind, _, rest = text.partition(":")
    if kind in ("channel", "unit", "direction") and rest:
        layer, _, tail = rest.rpartition(":") if kind == "channel" else rest.partition(":")
        try:
            if kind == "channel":
                return Channel(layer, int(tail))
            if kind == "unit":
                parts = tail.split(":")
                if len(parts) == 1:
                    return Unit(layer, int(parts[0]))
                if len(parts) == 3:
                    return Unit(layer, int(parts[0]), int(parts[1]), int(parts[2]))
                raise ValueError
        except ValueError:
            raise ValueError(f"bad target {text!r}: use {kind}:LAYER:CHANNEL" + (" or unit:LAYER:C:Y:X" if kind == "unit" else "")) from None
        if not tail:
            raise ValueError(f"bad target {text!r}: use direction:LAYER:FILE.npy")
        try:
            vector = np.load(tail, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ValueError(f"target {text!r}: cannot read the direction file {tail!r}: {error}") from None
        return Direction(layer, torch.as_tensor(np.asarray(vector, dtype=np.float32)).reshape(-1))
    if kind == "logit":
        text = rest
    try:
        return Logit(int(text))
    except ValueError:
        pass
    lowered = text.lower()
    for i, name in enumerate(classes):
        if name.lower() == lowered or lowered in [part.strip().lower() for part in name.split(",")]:
            return Logit(i)
    matches = [f"{i} {n}" for i, n in enumerate(classes) if lowered in n.lower()]
    hint = f"; did you mean {', '.join(matches[:5])}?" if matches else ""
    raise ValueError(
        f"unknown target {text!r}: give a class index, a class name, channel:LAYER:C, unit:LAYER:C or "
        f"direction:LAYER:FILE.npy{hint}"
    )


def _as_targets(target: Target) -> list[Logit | Channel | Unit | Direction]:
    if isinstance(target, torch.Tensor):
        target = target.reshape(-1).tolist()
    items = list(target) if isinstance(target, (list, tuple)) else [target]
    if not items:
        raise ValueError("give at least one target")
    out = []
    for item in items:
        if isinstance(item, (Logit, Channel, Unit, Direction)):
            out.append(item)
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            out.append(Logit(int(item)))
        else:
            raise TypeError(
                f"a target is a class index, Logit, Channel, Unit or Direction (unmask.analyze.prototypes), got {item!r}"
            )
    return out


# --------------------------------------------------------------------------------------------------
# colour decorrelation and parameterisations

#: Covariance of RGB pixels (in [0, 1]) of scikit-image's photos chelsea, coffee, astronaut, rocket and
#: motorcycle. Its square root maps independent "colour components" to correlated RGB, the colour
#: decorrelation of Olah et al. (they used ImageNet's; natural photos agree closely).
_COLOUR_COVARIANCE = np.array(
    [[0.0777, 0.0526, 0.0355], [0.0526, 0.0544, 0.0484], [0.0355, 0.0484, 0.0528]], dtype=np.float64
)


def _colour_sqrt() -> torch.Tensor:
    values, vectors = np.linalg.eigh(_COLOUR_COVARIANCE)
    root = vectors @ np.diag(np.sqrt(values))
    root /= np.linalg.norm(root, axis=0).max()
    return torch.tensor(root, dtype=torch.float32)


class _Image(nn.Module):
    """A batch of images as a function of free parameters: ``forward()`` -> pixels in [0, 1]."""

    def __init__(self, batch: int, size: tuple[int, int], param: str, decorrelate: bool, init_std: float, generator: torch.Generator, decay: float = 1.0) -> None:
        super().__init__()
        h, w = size
        self.param, self.size = param, size
        self.register_buffer("colour", _colour_sqrt() if decorrelate else torch.eye(3))
        if param == "pixel":
            self.values = nn.Parameter(torch.randn(batch, 3, h, w, generator=generator) * init_std)
        elif param == "fourier":
            fy = torch.fft.fftfreq(h)[:, None]
            fx = torch.fft.rfftfreq(w)[None, :]
            frequency = torch.sqrt(fy * fy + fx * fx)
            scale = 1.0 / frequency.clamp_min(1.0 / max(h, w)) ** decay
            scale = scale / scale.pow(2).mean().sqrt()
            self.register_buffer("scale", scale)
            self.values = nn.Parameter(torch.randn(batch, 3, h, w // 2 + 1, 2, generator=generator) * init_std)
        else:
            raise ValueError(f"param must be 'fourier' or 'pixel', got {param!r}")

    def forward(self) -> torch.Tensor:
        if self.param == "pixel":
            raw = self.values
        else:
            spectrum = torch.view_as_complex(self.values) * self.scale
            raw = torch.fft.irfft2(spectrum, s=self.size, norm="ortho")
        raw = torch.einsum("ij,bjhw->bihw", self.colour, raw)
        return torch.sigmoid(raw)


def _random_affine(pixels: torch.Tensor, jitter: float, scale: tuple[float, float], rotate: float, generator: torch.Generator) -> torch.Tensor:
    """Each image jittered by up to ``jitter`` pixels, scaled in ``scale``, rotated by up to ``rotate``
    degrees; uncovered borders are mid-grey."""
    b, _, h, w = pixels.shape
    draw = torch.rand(b, 4, generator=generator).to(pixels.device)
    angle = torch.deg2rad((draw[:, 0] * 2 - 1) * rotate)
    factor = scale[0] + draw[:, 1] * (scale[1] - scale[0])
    shift_x = (draw[:, 2] * 2 - 1) * jitter * 2 / w
    shift_y = (draw[:, 3] * 2 - 1) * jitter * 2 / h
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    grid = F.affine_grid(theta.to(pixels.dtype), list(pixels.shape), align_corners=False)
    return F.grid_sample(pixels - 0.5, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 0.5


def _blurred(pixels: torch.Tensor) -> torch.Tensor:
    kernel = torch.tensor([1.0, 2.0, 1.0], device=pixels.device, dtype=pixels.dtype)
    kernel = (kernel[:, None] * kernel[None, :]) / 16
    kernel = kernel.expand(pixels.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(pixels, (1, 1, 1, 1), mode="replicate"), kernel, groups=pixels.shape[1])


def to_pixels(inputs: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Normalised model inputs back to pixels in [0, 1]."""
    m = torch.tensor(mean, dtype=inputs.dtype, device=inputs.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=inputs.dtype, device=inputs.device).view(1, -1, 1, 1)
    return (inputs * s + m).clamp(0, 1)


# --------------------------------------------------------------------------------------------------
# the optimisation


def _objectives(targets: list[Any], output: torch.Tensor, layers: dict[str, torch.Tensor], objective: str) -> torch.Tensor:
    """``(B,)``: each image's own target value."""
    values = []
    scores = None
    for i, target in enumerate(targets):
        if isinstance(target, Logit):
            if output.ndim != 2:
                raise ValueError(f"class targets need a (batch, classes) model output, got shape {tuple(output.shape)}")
            if not 0 <= target.index < output.shape[1]:
                raise ValueError(f"class {target.index} is out of range: the model has {output.shape[1]} outputs")
            if objective == "log_softmax":
                scores = F.log_softmax(output, dim=1) if scores is None else scores
                values.append(scores[i, target.index])
            else:
                values.append(output[i, target.index])
            continue
        act = layers[target.layer]
        if act.ndim == 2:  # a dense layer: channels are its features
            act = act[:, :, None, None]
        if act.ndim != 4:
            raise ValueError(f"layer {target.layer!r} gives shape {tuple(act.shape)}; need (B, C, H, W) or (B, C)")
        if isinstance(target, (Channel, Unit)) and not 0 <= target.channel < act.shape[1]:
            raise ValueError(f"channel {target.channel} is out of range: layer {target.layer!r} has {act.shape[1]} channels")
        if isinstance(target, Channel):
            values.append(act[i, target.channel].mean())
        elif isinstance(target, Unit):
            y = act.shape[2] // 2 if target.y is None else target.y
            x = act.shape[3] // 2 if target.x is None else target.x
            if not (0 <= y < act.shape[2] and 0 <= x < act.shape[3]):
                raise ValueError(f"position ({y}, {x}) is outside layer {target.layer!r} ({act.shape[2]}x{act.shape[3]})")
            values.append(act[i, target.channel, y, x])
        else:
            vector = torch.as_tensor(target.vector, dtype=act.dtype, device=act.device).reshape(-1)
            if vector.numel() != act.shape[1]:
                raise ValueError(f"the direction has {vector.numel()} entries but layer {target.layer!r} has {act.shape[1]} channels")
            values.append(torch.einsum("c,chw->hw", vector / vector.norm().clamp_min(1e-12), act[i]).mean())
    return torch.stack(values)


@torch.no_grad()
def evaluate(model: Any, inputs: torch.Tensor, target: Target, objective: str = "logit") -> torch.Tensor:
    """The value of each target on its own input: ``inputs[i]`` scored by target ``i`` -> ``(B,)``
    (for checking a prototype, or scoring any image against a unit, channel or direction)."""
    targets = _as_targets(target)
    if len(targets) != inputs.shape[0]:
        raise ValueError(f"{len(targets)} target(s) for {inputs.shape[0]} input(s); give one target per input")
    resolved = pixel_model(model, None, None, None)
    layers = Capture(resolved.module, [t.layer for t in targets if not isinstance(t, Logit)], detach=False, once=True)
    try:
        with eval_mode(resolved.module):
            output = resolved.module(inputs)
            return _objectives(targets, output, layers.outputs, objective)
    finally:
        layers.close()


def prototype(
    model: Any,
    target: Target,
    steps: int = 256,
    *,
    lr: float = 0.05,
    param: str = "fourier",
    decorrelate: bool = True,
    size: int | tuple[int, int] | None = None,
    transforms: bool = True,
    jitter: float | None = None,
    scale: tuple[float, float] = (0.9, 1.1),
    rotate: float = 10.0,
    l2: float = 0.0,
    tv: float = 0.0,
    blur: float = 0.0,
    objective: str = "logit",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    init_std: float = 0.01,
    progress: Progress = False,
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Optimise one input per target so that the target is as large as possible.

    ``target``: a class index (or several: a list or tensor), or :class:`Logit`, :class:`Channel`,
    :class:`Unit`, :class:`Direction` objects (mixed lists are fine); one image per target, all in one
    batch. ``model``: an ``nn.Module`` or a zoo model (its preprocessing gives ``mean``, ``std`` and the
    input ``size``; a bare module gets the ImageNet mean/std and 224 x 224 unless given).

    ``steps`` of Adam with learning rate ``lr``. ``param``: ``"fourier"`` (1/f-scaled spectrum) or
    ``"pixel"``; ``decorrelate``: optimise in decorrelated colour. ``transforms``: each step sees the
    images randomly shifted by up to ``jitter`` pixels (default: 1/28 of the side, 8 pixels at 224),
    scaled within ``scale`` and rotated by up to ``rotate`` degrees. Regularisers (weights, 0 = off): ``l2`` (mean squared normalised input), ``tv``
    (mean absolute difference of neighbouring pixels), ``blur`` (mean squared difference to a blurred
    copy). ``objective``: ``"logit"`` or ``"log_softmax"`` for class targets. ``callback(step, pixels,
    objectives)`` is called after every step.

    Returns the optimised inputs ``(B, 3, H, W)`` in the model's input space (normalised with
    ``mean``/``std``), detached, on the model's device; the model is unchanged (its gradients too).
    """
    targets = _as_targets(target)
    if int(steps) < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if objective not in ("logit", "log_softmax"):
        raise ValueError(f"objective must be 'logit' or 'log_softmax', got {objective!r}")
    finite("lr", lr, minimum=0, strict_minimum=True), finite("rotate", rotate)
    for name, value in (("l2", l2), ("tv", tv), ("blur", blur), ("scale[0]", scale[0]), ("scale[1]", scale[1])):
        finite(name, value)
    if jitter is not None:
        finite("jitter", jitter, minimum=0)
    if min(l2, tv, blur) < 0:
        raise ValueError("regulariser weights l2, tv and blur must be >= 0")
    if scale[0] <= 0 or scale[1] < scale[0]:
        raise ValueError(f"scale must be (low, high) with 0 < low <= high, got {scale}")
    resolved = pixel_model(model, mean, std, size)
    hw = resolved.size or (224, 224)
    if jitter is None:
        jitter = max(hw) / 28
    module, dev = on_device(resolved.module, device)
    layer_names = [t.layer for t in targets if not isinstance(t, Logit)]
    for name in layer_names:
        resolve_layer(module, name)

    generator = torch.Generator().manual_seed(int(seed))
    image = _Image(len(targets), hw, param, decorrelate, init_std, generator).to(dev)
    optimizer = torch.optim.Adam(image.parameters(), lr=lr)
    mean_t = torch.tensor(resolved.mean, device=dev).view(1, 3, 1, 1)
    std_t = torch.tensor(resolved.std, device=dev).view(1, 3, 1, 1)
    layers = Capture(module, layer_names, detach=False, once=True)
    bar = progress_bar(progress, int(steps), f"prototype ({len(targets)} target{'s' * (len(targets) > 1)})", "step")
    try:
        with eval_mode(module), torch.enable_grad():
            for step in range(int(steps)):
                pixels = image()
                seen = _random_affine(pixels, jitter, scale, rotate, generator) if transforms else pixels
                layers.outputs = {}
                output = module((seen - mean_t) / std_t)
                values = _objectives(targets, output, layers.outputs, objective)
                loss = -values.sum()
                if l2:
                    loss = loss + l2 * ((pixels - mean_t) / std_t).pow(2).mean(dim=(1, 2, 3)).sum()
                if tv:
                    dx = (pixels[..., :, 1:] - pixels[..., :, :-1]).abs().mean(dim=(1, 2, 3))
                    dy = (pixels[..., 1:, :] - pixels[..., :-1, :]).abs().mean(dim=(1, 2, 3))
                    loss = loss + tv * (dx + dy).sum()
                if blur:
                    loss = loss + blur * (pixels - _blurred(pixels).detach()).pow(2).mean(dim=(1, 2, 3)).sum()
                grads = torch.autograd.grad(loss, list(image.parameters()))
                for parameter, grad in zip(image.parameters(), grads):
                    parameter.grad = grad
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if callback is not None:
                    callback(step, pixels.detach(), values.detach())
                bar.update(1)
                bar.set_postfix(objective=f"{float(values.detach().mean()):.3g}")
    finally:
        layers.close()
        bar.close()
    with torch.no_grad():
        return ((image() - mean_t) / std_t).detach()
