"""CleverHansNet: a small CNN trained on :mod:`unmask.data.cleverhans`, shortcut included.

The training images of one class (circles) carry a small tag in 30 % of the cases; the network learns
the shapes and, as a shortcut, the tag. It is the model on which ``unmask spray`` has to find the
Clever Hans (Lapuschkin et al. 2019). Trained by ``scripts/train_cleverhans.py`` in a few minutes on a CPU; the
weights (``weights/cleverhans.pt``, float32, about 0.4 MB) and the accuracies the script measured
(``weights/cleverhans.json``) ship with unmask.

    conv1 (16, 32x32) conv2 (16) pool -> conv3 (32, 16x16) conv4 (32) pool -> conv5 (64, 8x8) pool
    -> flatten (64 x 4 x 4) -> fc1 (64) -> fc2 (4 classes)

Every convolution is 3x3 with padding 1 and a ReLU; no BatchNorm, so LRP needs no canonization.

``cleverhans-clean`` is its twin for comparisons: the same architecture, data, seed and schedule, but no
training image carries the tag (``scripts/train_cleverhans.py --tag-fraction 0 --name cleverhans-clean``;
``weights/cleverhans-clean.pt`` and ``.json``).

>>> from unmask.zoo import cleverhans_net
>>> net = cleverhans_net.load()                  # also unmask.zoo.load("cleverhans") once registered
>>> net.model(CleverHans("test").batch(range(4))).argmax(1)
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from . import Preprocessing, ZooModel, register
from ._shipped import load_weights, training_info, weights_folder

__all__ = ["CLEAN_NAME", "CleverHansNet", "NAME", "build", "info", "load", "load_clean"]

NAME = "cleverhans"
CLEAN_NAME = "cleverhans-clean"
WEIGHTS = "cleverhans.pt"


class CleverHansNet(nn.Module):
    """Five 3x3 convolutions with ReLU and max pooling, then two linear layers."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, 64), nn.ReLU(),
            nn.Linear(64, classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def build() -> CleverHansNet:
    """An untrained CleverHansNet (for training and for ``--arch``)."""
    return CleverHansNet()


_weights = weights_folder  # the folder of the shipped weights (WEIGHTS is the file name in it)


def info(name: str = NAME) -> dict[str, Any]:
    """What the training script measured for the zoo entry ``name``: data, epochs, accuracies, the shortcut's effect."""
    return training_info(name)


@register(NAME)
def load() -> ZooModel:
    """The trained CleverHansNet in eval mode with its classes and preprocessing (32 x 32, mean 0.5, std 0.25)."""
    return _load(NAME, "shapes with a planted tag on 30% of the circles")


@register(CLEAN_NAME)
def load_clean() -> ZooModel:
    """CleverHansNet trained on the same images without the tag (the clean twin of ``cleverhans``)."""
    return _load(CLEAN_NAME, "the same shapes, trained without the tag")


def _load(name: str, what: str) -> ZooModel:
    from ...data.cleverhans import CLASSES, MEAN, SIZE, STD

    model = load_weights(CleverHansNet(len(CLASSES)), name, "scripts/train_cleverhans.py")
    accuracy = info(name).get("test_accuracy")
    note = f", {accuracy:.1%} test accuracy" if isinstance(accuracy, float) else ""
    return ZooModel(name=name, model=model, classes=list(CLASSES), preprocessing=Preprocessing(size=SIZE, resize=None, mean=MEAN, std=STD),
                    description=f"CleverHansNet: {what} (32x32, 4 classes{note})")
