"""A data set with a planted shortcut: find the Clever Hans with SpRAy (Lapuschkin et al. 2019).

Four classes of shapes (circle, square, triangle, cross) at 32 x 32 pixels on noisy, coloured
backgrounds. In a known fraction of one class's images (default: 30 % of the circles, in the training
and the test split alike) a small tag is stamped into the bottom-left corner, the way a copyright tag
marks many horse images of PASCAL VOC. A network trained on it learns that the tag means "circle";
heatmaps of the tagged circles show it, and SpRAy separates those samples from the rest.

Everything is generated from the seed, so every sample can be regenerated exactly, with or without
the tag: removing the tag from tagged images and pasting it into images of other classes is exact,
which is how :func:`verify` confirms the shortcut (Lapuschkin et al. 2019: "changing borders ... destroys aeroplane
scores" / "improves aeroplane score"). Ground truth per sample: ``tagged``, the object's ``mask`` and
``box``.

>>> test = CleverHans("test")                  # 2,000 samples; CleverHans("train") has 8,000
>>> item = test[0]                            # {"input", "label", "path", "box", "mask", "tagged"}
>>> test.tagged.sum(), test.labels[:8]
>>> test.image(5, tag=False)                   # the PIL image without the tag
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from .._utils.validation import check_index

__all__ = [
    "CLASSES",
    "CleverHans",
    "MEAN",
    "SIZE",
    "STD",
    "TAG_BOX",
    "export",
    "verify",
]

CLASSES = ("circle", "square", "triangle", "cross")
SIZE = 32
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)
#: Where the tag goes: x0, y0, x1, y1 (x1, y1 exclusive) in 32 x 32 pixels.
TAG_BOX = (1, 25, 8, 31)
_SUPER = 4  # supersampling for smooth shape edges
_SPLITS = {"train": 1, "test": 2, "val": 3}
_DEFAULT_SIZES = {"train": 8000, "test": 2000, "val": 1000}


@lru_cache(maxsize=1)
def _grid() -> tuple[np.ndarray, np.ndarray]:
    n = SIZE * _SUPER
    coords = (np.arange(n, dtype=np.float32) + 0.5) / _SUPER
    return np.meshgrid(coords, coords)  # x, y in pixel units


@lru_cache(maxsize=1)
def _tag_pattern() -> tuple[np.ndarray, np.ndarray]:
    """The tag: a light frame with a dark 'c'-like mark inside, and its opacity."""
    x0, y0, x1, y1 = TAG_BOX
    h, w = y1 - y0, x1 - x0
    pattern = np.full((h, w, 3), 0.95, dtype=np.float32)
    pattern[1:-1, 1:-1] = (0.08, 0.08, 0.12)
    pattern[2:-2, 3:-1] = (0.95, 0.85, 0.2)
    alpha = np.full((h, w, 1), 0.92, dtype=np.float32)
    return pattern, alpha


def _shape_mask(kind: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    x, y = _grid()
    dx, dy = x - cx, y - cy
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    if kind == 0:  # circle
        inside = dx * dx + dy * dy <= r * r
    elif kind == 1:  # square
        half = r * 0.82
        inside = (np.abs(u) <= half) & (np.abs(v) <= half)
    elif kind == 2:  # equilateral triangle
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            a = angle + k * 2 * np.pi / 3
            inside &= (np.cos(a) * dx + np.sin(a) * dy) <= r * 0.55
    else:  # cross (plus sign)
        arm = r * 0.34
        inside = ((np.abs(u) <= arm) & (np.abs(v) <= r)) | ((np.abs(v) <= arm) & (np.abs(u) <= r))
    return inside.reshape(SIZE, _SUPER, SIZE, _SUPER).mean(axis=(1, 3)).astype(np.float32)


class CleverHans(torch.utils.data.Dataset):
    """The shapes data set with a planted tag (see the module docstring).

    ``split``: ``"train"``, ``"test"`` or ``"val"`` (independent samples); ``size``: number of samples
    (defaults 8,000 / 2,000 / 1,000); ``tag_class``: the class whose images carry the tag;
    ``tag_fraction``: the exact fraction of that class's images tagged; ``seed``: everything else.
    Labels cycle through the classes, so each class has a quarter of the samples.
    """

    classes = list(CLASSES)

    def __init__(
        self,
        split: str = "test",
        size: int | None = None,
        *,
        tag_class: int = 0,
        tag_fraction: float = 0.3,
        seed: int = 0,
    ) -> None:
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {', '.join(_SPLITS)}, got {split!r}")
        if not 0 <= tag_class < len(CLASSES):
            raise ValueError(f"tag_class must be a class index 0..{len(CLASSES) - 1}, got {tag_class}")
        if not 0.0 <= tag_fraction <= 1.0:
            raise ValueError(f"tag_fraction must be in [0, 1], got {tag_fraction}")
        self.split = split
        self.size = _DEFAULT_SIZES[split] if size is None else int(size)
        if self.size < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.tag_class = tag_class
        self.tag_fraction = float(tag_fraction)
        self.seed = int(seed)
        index = np.arange(self.size)
        self.labels = (index % len(CLASSES)).astype(np.int64)
        within = index // len(CLASSES)  # j-th sample of its class
        spread = np.floor((within + 1) * self.tag_fraction) > np.floor(within * self.tag_fraction)
        self.tagged = (self.labels == tag_class) & spread

    def __len__(self) -> int:
        return self.size

    def describe(self) -> dict[str, Any]:
        return {
            "type": "cleverhans",
            "split": self.split,
            "size": self.size,
            "tag_class": self.tag_class,
            "tag_fraction": self.tag_fraction,
            "seed": self.seed,
        }

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> "CleverHans":
        return cls(
            description.get("split", "test"),
            description.get("size"),
            tag_class=int(description.get("tag_class", 0)),
            tag_fraction=float(description.get("tag_fraction", 0.3)),
            seed=int(description.get("seed", 0)),
        )

    def path(self, index: int) -> str:
        return f"cleverhans/{self.split}/{CLASSES[self.labels[index]]}/{index:05d}.png"

    def _index(self, index: int) -> int:
        return check_index(index, self.size)

    def render(self, index: int, tag: bool | None = None) -> tuple[np.ndarray, np.ndarray, tuple[float, ...]]:
        """``(pixels, mask, box)``: RGB float32 in [0, 1] (32, 32, 3), the object's coverage and its box.

        ``tag=None`` follows the ground truth; ``True``/``False`` forces the tag on or off (the rest of
        the image is identical).
        """
        index = self._index(index)
        rng = np.random.default_rng([self.seed, _SPLITS[self.split], index])
        label = int(self.labels[index])
        # background: a gradient between two colours, low-frequency blotches and pixel noise
        c0, c1 = rng.uniform(0.1, 0.9, size=(2, 3)).astype(np.float32)
        direction = rng.uniform(0, 2 * np.pi)
        x, y = np.meshgrid(np.arange(SIZE, dtype=np.float32), np.arange(SIZE, dtype=np.float32))
        t = ((np.cos(direction) * (x - 15.5) + np.sin(direction) * (y - 15.5)) / 44.0 + 0.5)[..., None]
        image = c0 * (1 - t) + c1 * t
        for _ in range(int(rng.integers(1, 4))):
            bx, by = rng.uniform(0, SIZE, size=2)
            radius = rng.uniform(3, 8)
            blot = np.exp(-((x - bx) ** 2 + (y - by) ** 2) / (2 * radius * radius))[..., None]
            image = image * (1 - 0.6 * blot) + 0.6 * blot * rng.uniform(0, 1, size=3).astype(np.float32)
        # the object: a shape of the class, random size, place, rotation and colour
        r = rng.uniform(6.0, 10.0)
        cx, cy = rng.uniform(11.0, 21.0, size=2)
        angle = rng.uniform(0, 2 * np.pi)
        coverage = _shape_mask(label, cx, cy, r, angle)
        background = image[coverage > 0.5].mean(axis=0) if (coverage > 0.5).any() else image.mean(axis=(0, 1))
        colour = rng.uniform(0, 1, size=3).astype(np.float32)
        for _ in range(20):  # enough contrast to be seen, not always much
            if np.linalg.norm(colour - background) >= 0.35:
                break
            colour = rng.uniform(0, 1, size=3).astype(np.float32)
        image = image * (1 - coverage[..., None]) + colour * coverage[..., None]
        image = image + rng.normal(0, 0.06, size=image.shape).astype(np.float32)
        if tag is None:
            tag = bool(self.tagged[index])
        if tag:
            x0, y0, x1, y1 = TAG_BOX
            pattern, alpha = _tag_pattern()
            image[y0:y1, x0:x1] = image[y0:y1, x0:x1] * (1 - alpha) + pattern * alpha
        image = np.clip(image, 0.0, 1.0).astype(np.float32)
        ys, xs = np.nonzero(coverage > 0.5)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)) if len(xs) else (0.0, 0.0, 0.0, 0.0)
        return image, coverage > 0.5, box

    def tensor(self, index: int, tag: bool | None = None) -> torch.Tensor:
        """The normalised model input ``(3, 32, 32)`` (mean 0.5, std 0.25 per channel)."""
        pixels, _, _ = self.render(index, tag)
        return normalize(torch.from_numpy(pixels).permute(2, 0, 1))

    def batch(self, indices: Iterable[int], tag: bool | None = None) -> torch.Tensor:
        return torch.stack([self.tensor(i, tag) for i in indices])

    def image(self, index: int, tag: bool | None = None) -> Any:
        """The sample as a 32 x 32 PIL image."""
        from PIL import Image

        pixels, _, _ = self.render(index, tag)
        return Image.fromarray((pixels * 255).round().astype(np.uint8))

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = self._index(index)
        pixels, mask, box = self.render(index)
        return {
            "input": normalize(torch.from_numpy(pixels).permute(2, 0, 1)),
            "label": int(self.labels[index]),
            "path": self.path(index),
            "box": box,
            "mask": mask,
            "tagged": int(self.tagged[index]),
        }

    def __repr__(self) -> str:
        return (
            f"CleverHans({self.split!r}, {self.size} samples, tag on {self.tagged.sum()} of the "
            f"{(self.labels == self.tag_class).sum()} {CLASSES[self.tag_class]}s)"
        )


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN, dtype=pixels.dtype).view(-1, 1, 1)
    std = torch.tensor(STD, dtype=pixels.dtype).view(-1, 1, 1)
    return (pixels - mean) / std


def export(dataset: CleverHans, folder: str | os.PathLike[str]) -> Path:
    """Write the images as ``folder/<class>/<index>.png`` (an image folder for ``unmask attribute``) and
    the ground truth as ``folder/truth.csv`` (path, label, tagged, x0, y0, x1, y1)."""
    from ..viz import to_png

    folder = Path(folder)
    rows = ["path,label,tagged,x0,y0,x1,y1"]
    for i in range(len(dataset)):
        name = f"{CLASSES[dataset.labels[i]]}/{i:05d}.png"
        pixels, _, box = dataset.render(i)
        to_png((pixels * 255).round().astype(np.uint8), folder / name)
        rows.append(f"{name},{CLASSES[dataset.labels[i]]},{int(dataset.tagged[i])}," + ",".join(f"{v:g}" for v in box))
    (folder / "truth.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@torch.no_grad()
def _scores(model: torch.nn.Module, dataset: CleverHans, indices: np.ndarray, tag: bool | None, cls: int, batch_size: int, device: Any) -> dict[str, np.ndarray]:
    logits, probabilities, predictions = [], [], []
    for start in range(0, len(indices), batch_size):
        x = dataset.batch(indices[start : start + batch_size], tag).to(device)
        out = model(x).float()
        logits.append(out[:, cls].cpu())
        probabilities.append(out.softmax(1)[:, cls].cpu())
        predictions.append(out.argmax(1).cpu())
    cat = lambda parts: torch.cat(parts).numpy() if parts else np.zeros(0)  # noqa: E731
    return {"logit": cat(logits), "probability": cat(probabilities), "prediction": cat(predictions)}


def verify(
    model: Any,
    dataset: CleverHans | None = None,
    *,
    limit: int | None = None,
    batch_size: int = 128,
    device: str | None = None,
) -> dict[str, Any]:
    """Confirm the shortcut, as Lapuschkin et al. (2019) do, on exact counterfactual images.

    * removal: the tag-class images that carry the tag, re-rendered without it: the tag class's logit,
      probability and the share still predicted as that class, before and after;
    * pasting: images of the other classes, re-rendered with the tag: the same numbers for the tag class.

    ``model``: an ``nn.Module`` or a zoo model; ``dataset`` defaults to the test split; ``limit`` caps
    the images per experiment. Returns plain numbers (JSON-ready).
    """
    net = getattr(model, "model", model)
    dataset = dataset if dataset is not None else CleverHans("test")
    if device is None:
        device = next(iter(net.parameters())).device if any(True for _ in net.parameters()) else "cpu"
    net.eval()
    cls = dataset.tag_class
    tagged = np.flatnonzero(dataset.tagged)
    others = np.flatnonzero(dataset.labels != cls)
    if limit is not None:
        tagged, others = tagged[:limit], others[:limit]
    out: dict[str, Any] = {"class": cls, "class_name": CLASSES[cls]}
    for name, indices, before_tag, after_tag in (("removal", tagged, True, False), ("pasting", others, False, True)):
        before = _scores(net, dataset, indices, before_tag, cls, batch_size, device)
        after = _scores(net, dataset, indices, after_tag, cls, batch_size, device)
        out[name] = {
            "images": int(len(indices)),
            "logit_before": float(before["logit"].mean()) if len(indices) else None,
            "logit_after": float(after["logit"].mean()) if len(indices) else None,
            "logit_change": float((after["logit"] - before["logit"]).mean()) if len(indices) else None,
            "probability_before": float(before["probability"].mean()) if len(indices) else None,
            "probability_after": float(after["probability"].mean()) if len(indices) else None,
            "predicted_as_class_before": float((before["prediction"] == cls).mean()) if len(indices) else None,
            "predicted_as_class_after": float((after["prediction"] == cls).mean()) if len(indices) else None,
        }
    return out
