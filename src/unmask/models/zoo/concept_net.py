"""ConceptNet: a small CNN unmask trains on its own generated concept images (weights ship with unmask).

The task: which of the 21 concepts of :class:`unmask.data.concepts.GeneratedConcepts` (11 colours,
5 textures, 5 shapes) appear in a 64 x 64 image (each on at least 1% of its pixels): multi-label, one
logit per concept, ``sigmoid(logit)`` is the probability that the concept is there. It is trained on
exactly the concepts dissection looks for, which makes it a model whose dissection can be checked
against what it learnt, and a fast model for tests.

    conv1 (24, 64x64) -> conv2 (32, 32x32) -> conv3 (48, 32x32) -> conv4 (64, 16x16)
    -> conv5 (96, 16x16) -> conv6 (128, 8x8) -> global average pool -> fc (21 concept logits)

Each ``convN`` is convolution 3x3, BatchNorm and ReLU (dissect ``"conv1"`` .. ``"conv6"``). The weights
(``weights/concept_net.pt``, float16, under 1 MB) come from ``scripts/train_concept_net.py``; its
accuracy on held-out images is in ``weights/concept_net.json``.

>>> from unmask.zoo import concept_net
>>> net = concept_net.load()              # the same as unmask.zoo.load("concept-net")
>>> x = net.preprocessing.to_tensor(image)   # 64 x 64 RGB, mean 0.5 and std 0.25 per channel
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import Preprocessing, ZooModel, register
from ._shipped import load_weights, training_info

__all__ = ["CLASSES", "ConceptNet", "MEAN", "NAME", "SIZE", "STD", "build", "info", "load"]

NAME = "concept-net"
SIZE = 64
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)
WIDTHS = (24, 32, 48, 64, 96, 128)
STRIDES = (1, 2, 1, 2, 1, 2)


def _classes() -> list[str]:
    from ...data.concepts import COLORS, SHAPES, TEXTURES

    return [*COLORS, *TEXTURES, *SHAPES]


CLASSES = _classes()


class ConceptNet(nn.Module):
    """Six 3x3 convolution blocks (conv, BatchNorm, ReLU), global average pooling, one linear layer.

    ``multi_label = True``: the outputs are independent logits (sigmoid), not a softmax over classes."""

    multi_label = True

    def __init__(self, classes: int = len(CLASSES), widths: tuple[int, ...] = WIDTHS, strides: tuple[int, ...] = STRIDES) -> None:
        super().__init__()
        channels = 3
        for i, (width, stride) in enumerate(zip(widths, strides), start=1):
            block = nn.Sequential(
                nn.Conv2d(channels, width, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            )
            self.add_module(f"conv{i}", block)
            channels = width
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, classes)
        self.depth = len(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, self.depth + 1):
            x = getattr(self, f"conv{i}")(x)
        return self.fc(torch.flatten(self.pool(x), 1))


def build() -> ConceptNet:
    """An untrained ConceptNet (for ``--arch`` and for training)."""
    return ConceptNet()


def info() -> dict[str, Any]:
    """What the training script recorded: data, epochs, held-out accuracy."""
    return training_info("concept_net")


@register(NAME)
def load() -> ZooModel:
    """The trained ConceptNet in eval mode, with its class names and preprocessing (64 x 64, no crop)."""
    model = load_weights(ConceptNet(), "concept_net", "scripts/train_concept_net.py")
    accuracy = info().get("val_accuracy")
    note = f", {accuracy:.1%} of held-out labels right" if isinstance(accuracy, float) else ""
    return ZooModel(name=NAME, model=model, classes=list(CLASSES), preprocessing=Preprocessing(size=SIZE, resize=None, mean=MEAN, std=STD),
                    description=f"ConceptNet: which of 21 colours, textures and shapes appear in unmask's generated concept images (64x64, multi-label{note})")
