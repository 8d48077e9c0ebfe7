"""Perturbations of the concept images for the robustness of detectors (Bau et al. 2017, section 3.3):
added noise, rotation, patch rearrangement."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["Perturbation", "parse_perturbation"]


@dataclass(frozen=True)
class Perturbation:
    """A change to every image (and its label maps, where geometry changes) before dissection.

    ``noise``: add ``amount * U[0, 1]`` on the 0..255 pixel scale (Bau et al. add ``5 * U[0, 1]``),
    then clip; ``rotate``: rotate by ``amount`` degrees about the centre (labels follow, the corners
    become unlabelled black); ``shuffle``: cut into ``amount`` x ``amount`` patches and put them back in
    a random order (labels follow). Random draws depend only on ``(seed, image index)``.
    """

    kind: str
    amount: float
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("noise", "rotate", "shuffle"):
            raise ValueError(f"unknown perturbation {self.kind!r}; use noise:AMOUNT, rotate:DEGREES or shuffle:GRID")
        if not math.isfinite(self.amount):
            raise ValueError(f"{self.kind} amount must be a finite number, got {self.amount}")
        if self.kind == "noise" and self.amount < 0:
            raise ValueError(f"noise amount must be >= 0, got {self.amount}")
        if self.kind == "shuffle" and (self.amount != int(self.amount) or self.amount < 1):
            raise ValueError(f"shuffle needs a whole number of patches per side, got {self.amount}")

    def __str__(self) -> str:
        amount = int(self.amount) if float(self.amount).is_integer() else self.amount
        return f"{self.kind}:{amount}"

    def apply(self, images: torch.Tensor, planes: torch.Tensor, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``images`` (B, 3, H, W) in [0, 1], ``planes`` (B, P, h, w) labels -> both perturbed."""
        if self.kind == "noise":
            noise = torch.stack([torch.rand(images.shape[1:], generator=self._generator(i)) for i in indices.tolist()])
            return (images + noise.to(images) * (self.amount / 255.0)).clamp(0, 1), planes
        if self.kind == "rotate":
            return _rotate(images, self.amount, "bilinear"), _rotate(planes.float(), self.amount, "nearest").round().long()
        grid = int(self.amount)
        for tensor, what in ((images, "images"), (planes, "label maps")):
            h, w = tensor.shape[-2:]
            if h % grid or w % grid:
                raise ValueError(f"shuffle:{grid} needs {what} whose sides divide by {grid}, got {h}x{w}")
        orders = torch.stack([
            torch.from_numpy(np.random.default_rng([self.seed, int(i), 0x5A1F]).permutation(grid * grid)) for i in indices.tolist()
        ])
        return _shuffle(images, grid, orders.to(images.device)), _shuffle(planes, grid, orders.to(planes.device))

    def _seed(self, index: int) -> int:
        return (self.seed * 1_000_003 + int(index) * 7919 + 17) % (2**63)

    def _generator(self, index: int) -> torch.Generator:
        generator = torch.Generator()
        generator.manual_seed(self._seed(index))
        return generator


def _rotate(tensor: torch.Tensor, degrees: float, mode: str) -> torch.Tensor:
    b, _, h, w = tensor.shape
    angle = math.radians(degrees)
    c, s = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[c, -s * h / w, 0.0], [s * w / h, c, 0.0]], dtype=tensor.dtype, device=tensor.device)
    grid = F.affine_grid(theta.expand(b, 2, 3), list(tensor.shape), align_corners=False)
    return F.grid_sample(tensor, grid, mode=mode, padding_mode="zeros", align_corners=False)


def _shuffle(tensor: torch.Tensor, grid: int, orders: torch.Tensor) -> torch.Tensor:
    b, c, h, w = tensor.shape
    th, tw = h // grid, w // grid
    tiles = tensor.reshape(b, c, grid, th, grid, tw).permute(0, 2, 4, 1, 3, 5).reshape(b, grid * grid, c, th, tw)
    tiles = tiles[torch.arange(b, device=tensor.device)[:, None], orders]
    return tiles.reshape(b, grid, grid, c, th, tw).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def parse_perturbation(spec: str | Perturbation | None, seed: int = 0) -> Perturbation | None:
    """``"noise:10"``, ``"rotate:45"``, ``"shuffle:4"`` (``"rearrange:4"``), a :class:`Perturbation` or None."""
    if spec is None or isinstance(spec, Perturbation):
        return spec
    kind, sep, amount = str(spec).partition(":")
    kind = {"rearrange": "shuffle", "rotation": "rotate", "patches": "shuffle"}.get(kind.strip(), kind.strip())
    try:
        value = float(amount)
    except ValueError:
        raise ValueError(f"bad perturbation {spec!r}: use noise:AMOUNT, rotate:DEGREES or shuffle:GRID") from None
    if not sep:
        raise ValueError(f"bad perturbation {spec!r}: use noise:AMOUNT, rotate:DEGREES or shuffle:GRID")
    return Perturbation(kind, value, seed)
