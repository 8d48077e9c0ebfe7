"""The weights and training records that ship with unmask in ``unmask/models/zoo/weights/``: ``STEM.pt`` (a
state dict) and ``STEM.json`` (what the training script measured)."""
from __future__ import annotations

import json
from importlib import resources
from typing import Any

import torch
from torch import nn


def weights_folder() -> Any:
    """The package folder of the shipped weights (an importlib resource)."""
    return resources.files(__package__).joinpath("weights")


def training_info(stem: str) -> dict[str, Any]:
    """``weights/STEM.json``: data, epochs, accuracies; empty when the file is missing."""
    path = weights_folder().joinpath(f"{stem}.json")
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def load_weights(model: nn.Module, stem: str, script: str) -> nn.Module:
    """``model`` (a fresh network) with the state dict ``weights/STEM.pt`` (floats as float32), in eval mode;
    a missing file is a FileNotFoundError naming the ``script`` that trains it."""
    path = weights_folder().joinpath(f"{stem}.pt")
    if not path.is_file():
        raise FileNotFoundError(
            f"the {type(model).__name__} weights (unmask/models/zoo/weights/{stem}.pt) are missing; train them with {script}"
        )
    with resources.as_file(path) as file:
        state = torch.load(file, map_location="cpu", weights_only=True)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    return model.eval()
