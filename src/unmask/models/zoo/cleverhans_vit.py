"""CleverHansViT: a tiny vision transformer trained on :mod:`unmask.data.cleverhans`, shortcut included.

The transformer counterpart of :mod:`unmask.zoo.cleverhans_net` (same data, same planted tag), on which
``lrp.attnlrp`` heatmaps and SpRAy have to find the Clever Hans. Trained by
``scripts/train_cleverhans_vit.py`` in a few minutes on a CPU; the weights
(``weights/cleverhans_vit.pt``, float32) and what the script measured (``weights/cleverhans_vit.json``)
ship with unmask.

    32x32 image -> convolutional stem (3x3 stride 2, GELU, 3x3 stride 2, GELU, 2x2 stride 2: 16 tokens of
    8x8 pixels; early convolutions train a small ViT far better, Xiao et al. 2021) + class token + position
    embedding
    -> 3 pre-norm blocks (LayerNorm, 4-head attention by F.scaled_dot_product_attention, GELU MLP)
    -> LayerNorm -> class token -> linear head (4 classes)

>>> from unmask import zoo
>>> net = zoo.load("cleverhans-vit")
>>> unmask.explain(net.model, CleverHans("test").batch(range(4)), method="lrp.attnlrp")
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import Preprocessing, ZooModel, register
from ._shipped import load_weights, training_info, weights_folder

__all__ = ["CleverHansViT", "NAME", "build", "info", "load"]

NAME = "cleverhans-vit"
WEIGHTS = "cleverhans_vit.pt"


class Attention(nn.Module):
    """Multi-head self-attention with one ``qkv`` projection and the fused attention kernel."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(batch, tokens, dim))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CleverHansViT(nn.Module):
    """A ViT for 32 x 32 images: a convolutional stem to 4 x 4 tokens, width 64, 3 blocks of 4 heads,
    class-token readout."""

    def __init__(self, classes: int = 4, size: int = 32, patch: int = 8, dim: int = 64, depth: int = 3,
                 heads: int = 4, hidden: int = 128) -> None:
        super().__init__()
        self.patch_embed = nn.Sequential(
            nn.Conv2d(3, dim // 2, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(dim // 2, dim, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(dim, dim, patch // 4, stride=patch // 4),
        )
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*(Block(dim, heads, hidden) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def build() -> CleverHansViT:
    """An untrained CleverHansViT (for training and for ``--arch``)."""
    return CleverHansViT()


_weights = weights_folder  # the folder of the shipped weights (WEIGHTS is the file name in it)


def info() -> dict[str, Any]:
    """What the training script measured: data, epochs, accuracies, the shortcut's effect."""
    return training_info("cleverhans_vit")


@register(NAME)
def load() -> ZooModel:
    """The trained CleverHansViT in eval mode with its classes and preprocessing (32 x 32, mean 0.5, std 0.25)."""
    from ...data.cleverhans import CLASSES, MEAN, SIZE, STD

    model = load_weights(CleverHansViT(len(CLASSES)), "cleverhans_vit", "scripts/train_cleverhans_vit.py")
    accuracy = info().get("test_accuracy")
    note = f", {accuracy:.1%} test accuracy" if isinstance(accuracy, float) else ""
    return ZooModel(name=NAME, model=model, classes=list(CLASSES), preprocessing=Preprocessing(size=SIZE, resize=None, mean=MEAN, std=STD),
                    description=f"CleverHansViT: a tiny ViT on shapes with a planted tag on 30% of the circles (32x32, 4 classes{note})")
