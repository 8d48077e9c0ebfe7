"""Concept data: images with per-pixel concept labels, for network dissection.

Two sources share one interface, :class:`ConceptDataset`:

- :class:`GeneratedConcepts`, a data set unmask draws itself: every image is an unlabelled, dull
  background (a tinted grey with smooth gradients, like clutter in a photo) and two to four objects
  (circle, square, triangle, cross, star), each filled with a solid colour or a texture (striped,
  dotted, checkered, grid, wavy) in two of the eleven Broden colour names. Every object pixel carries
  three labels: its colour, the texture of its object (none where the fill is solid) and its shape;
  the background carries none. Concepts cover a few percent of all pixels each, so that a unit's top
  0.5% of activations can match one well. Image ``i`` depends only on ``(seed, i)``, so a data set is
  deterministic, needs no disk and no download, and can be read in any order or in parallel.
- :class:`unmask.data.broden.BrodenDataset`, any folder in the Broden format (NetDissect's), so users
  can bring Broden itself or their own annotated images; :func:`unmask.data.broden.write_broden` writes
  any concept data set in that format.

>>> concepts = GeneratedConcepts(n=500)                 # 224 x 224 images, 112 x 112 label maps
>>> sample = concepts[0]
>>> sample.image.shape, sample.planes.shape              # (3, 224, 224) float in [0, 1]; (3, 112, 112) int64
>>> concepts.labels[int(sample.planes[0, 50, 50])]      # a colour name on an object, '-' on the background

Label index 0 is "no label" (``"-"``), as in Broden; ``planes`` hold label indices into ``labels``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .._utils.deprecation import renamed
from .._utils.validation import check_index

__all__ = [
    "COLORS",
    "SHAPES",
    "TEXTURES",
    "ConceptBatch",
    "ConceptDataset",
    "ConceptSample",
    "GeneratedConcepts",
    "collate_concepts",
    "load_concepts",
]

#: The eleven colour names of Broden's ``color`` category with the sRGB value unmask paints for each
#: (every use is jittered a little, so a colour is a small cluster, not one value).
COLORS: dict[str, tuple[int, int, int]] = {
    "black": (22, 22, 24),
    "blue": (35, 75, 205),
    "brown": (125, 75, 35),
    "green": (45, 155, 55),
    "grey": (128, 128, 128),
    "orange": (245, 140, 25),
    "pink": (245, 155, 195),
    "purple": (125, 45, 160),
    "red": (210, 30, 35),
    "white": (240, 240, 238),
    "yellow": (240, 220, 45),
}
TEXTURES = ("striped", "dotted", "checkered", "grid", "wavy")
SHAPES = ("circle", "square", "triangle", "cross", "star")
#: What an object's surface can be; the class of a generated image is "<surface> <shape>" of its main object.
SURFACES = ("solid",) + TEXTURES


@dataclass
class ConceptSample:
    """One image and its labels.

    ``image``: ``(3, H, W)`` float32 in [0, 1]. ``planes``: ``(P, h, w)`` int64 label maps at mask
    resolution (0 = no label; one plane per annotation layer, several may cover the same pixel).
    ``image_labels``: ``(J,)`` int64 labels that hold for the whole image (Broden's scene/texture
    columns). ``present``: ``(K,)`` bool, whether the image is annotated for each category (the union
    of a unit and a label only counts images annotated for the label's category, as in NetDissect).
    ``target``: an image-level class for training (-1 when the data set has none).
    """

    image: torch.Tensor
    planes: torch.Tensor
    image_labels: torch.Tensor
    present: torch.Tensor
    index: int
    name: str = ""
    target: int = -1


@dataclass
class ConceptBatch:
    """Samples stacked: images ``(B, 3, H, W)``, planes ``(B, P, h, w)`` (missing planes are 0),
    image_labels ``(B, J)`` (padded with 0), present ``(B, K)``, indices ``(B,)``, targets ``(B,)``."""

    images: torch.Tensor
    planes: torch.Tensor
    image_labels: torch.Tensor
    present: torch.Tensor
    indices: torch.Tensor
    targets: torch.Tensor
    names: list[str] = field(default_factory=list)

    def to(self, device: torch.device | str) -> "ConceptBatch":
        return ConceptBatch(
            self.images.to(device),
            self.planes.to(device),
            self.image_labels.to(device),
            self.present.to(device),
            self.indices,
            self.targets,
            self.names,
        )

    def __len__(self) -> int:
        return int(self.indices.shape[0])


def collate_concepts(samples: Sequence[ConceptSample]) -> ConceptBatch:
    """Stack samples into a :class:`ConceptBatch` (the ``collate_fn`` for a torch ``DataLoader``)."""
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    sizes = {tuple(s.image.shape) for s in samples}
    if len(sizes) != 1:
        raise ValueError(f"images in one batch must have one size, got {sorted(sizes)}")
    mask_sizes = {tuple(s.planes.shape[1:]) for s in samples}
    if len(mask_sizes) != 1:
        raise ValueError(f"label maps in one batch must have one size, got {sorted(mask_sizes)}")
    planes_n = max(int(s.planes.shape[0]) for s in samples)
    h, w = mask_sizes.pop()
    planes = torch.zeros(len(samples), max(planes_n, 1), h, w, dtype=torch.int64)
    labels_n = max(int(s.image_labels.numel()) for s in samples)
    image_labels = torch.zeros(len(samples), labels_n, dtype=torch.int64)
    for i, s in enumerate(samples):
        planes[i, : s.planes.shape[0]] = s.planes
        image_labels[i, : s.image_labels.numel()] = s.image_labels
    return ConceptBatch(
        images=torch.stack([s.image for s in samples]),
        planes=planes,
        image_labels=image_labels,
        present=torch.stack([s.present for s in samples]),
        indices=torch.tensor([s.index for s in samples], dtype=torch.int64),
        targets=torch.tensor([s.target for s in samples], dtype=torch.int64),
        names=[s.name for s in samples],
    )


class ConceptDataset(torch.utils.data.Dataset):
    """What dissection needs from concept data (a torch ``Dataset`` of :class:`ConceptSample`).

    Subclasses set ``labels`` (names, index 0 = ``"-"``), ``label_category`` (the category of each
    label, ``None`` for labels that are not scored), ``categories``, ``image_size`` and ``mask_size``
    (``(height, width)``), and implement ``__len__`` and ``__getitem__``.
    """

    labels: list[str]
    label_category: list[str | None]
    categories: list[str]
    image_size: tuple[int, int]
    mask_size: tuple[int, int]
    description: str = ""

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def __getitem__(self, index: int) -> ConceptSample:  # pragma: no cover - abstract
        raise NotImplementedError

    def scored_labels(self) -> list[int]:
        """Label indices dissection scores: every label with a category."""
        return [i for i, c in enumerate(self.label_category) if i > 0 and c is not None]

    def labels_of(self, category: str) -> list[str]:
        return [n for n, c in zip(self.labels, self.label_category) if c == category]

    def batch(self, indices: Sequence[int]) -> ConceptBatch:
        """The samples ``indices`` as one :class:`ConceptBatch`."""
        return collate_concepts([self[int(i)] for i in indices])

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({len(self)} images {self.image_size[0]}x{self.image_size[1]}, "
            f"masks {self.mask_size[0]}x{self.mask_size[1]}, {len(self.scored_labels())} labels in "
            f"{', '.join(self.categories)})"
        )


# --------------------------------------------------------------------------------------------------
# the generated data set


class GeneratedConcepts(ConceptDataset):
    """Images unmask draws: colours, textures and shapes with exact per-pixel labels.

    ``n`` images of ``size`` x ``size`` pixels, label maps at ``mask_size`` (default ``size // 2`` for
    images of 128 pixels or more, like Broden's 224 / 112, else ``size``). ``seed`` picks the data set:
    image ``i`` depends only on ``(seed, i)``. ``objects`` is the (min, max) number of objects per image;
    the last one drawn (on top, the largest) is the main object, and ``target`` / :attr:`classes` name
    its surface and shape (``"striped star"``), 30 classes. ``textured``: the probability that an object
    is textured (else solid). ``noise``: the standard deviation of pixel noise (0..255 scale).

    Categories: ``color`` (11 Broden colour names, object pixels), ``texture`` (5 textures, pixels of
    textured objects), ``shape`` (5 shapes, object pixels). The default 500 images at 224 pixels
    make a dissection of eight EfficientNet-Lite0 layers take about 35 s on two idle CPU cores
    (rendering costs about 5 ms per image).
    """

    categories = ["color", "texture", "shape"]

    def __init__(
        self,
        n: int = 500,
        size: int = 224,
        mask_size: int | None = None,
        seed: int = 0,
        objects: tuple[int, int] = (2, 4),
        noise: float = 3.0,
        textured: float = 0.6,
    ) -> None:
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if size < 16:
            raise ValueError(f"size must be at least 16 pixels, got {size}")
        mask_size = mask_size if mask_size is not None else (size // 2 if size >= 128 else size)
        if not 1 <= mask_size <= size:
            raise ValueError(f"mask_size must be in [1, size], got {mask_size} for size {size}")
        if not (1 <= objects[0] <= objects[1]):
            raise ValueError(f"objects must be (min, max) with 1 <= min <= max, got {objects}")
        self.n = int(n)
        self.size = int(size)
        self.seed = int(seed)
        self.objects = (int(objects[0]), int(objects[1]))
        self.noise = float(noise)
        if not 0 <= textured <= 1:
            raise ValueError(f"textured must be a probability, got {textured}")
        self.textured = float(textured)
        self.image_size = (self.size, self.size)
        self.mask_size = (int(mask_size), int(mask_size))
        self.labels = ["-", *COLORS, *TEXTURES, *SHAPES]
        self.label_category = [None] + ["color"] * len(COLORS) + ["texture"] * len(TEXTURES) + ["shape"] * len(SHAPES)
        self.classes = [f"{surface} {shape}" for surface in SURFACES for shape in SHAPES]
        self.description = f"generated concepts (n={self.n}, size={self.size}, seed={self.seed})"
        self._colour_index = {name: 1 + i for i, name in enumerate(COLORS)}
        self._texture_index = {name: 1 + len(COLORS) + i for i, name in enumerate(TEXTURES)}
        self._shape_index = {name: 1 + len(COLORS) + len(TEXTURES) + i for i, name in enumerate(SHAPES)}

    def __len__(self) -> int:
        return self.n

    def spec(self) -> str:
        """The string :func:`load_concepts` turns back into this data set."""
        return f"generated:n={self.n},size={self.size},mask_size={self.mask_size[0]},seed={self.seed}"

    def __getitem__(self, index: int) -> ConceptSample:
        index = check_index(index, self.n, "image")
        image, planes, target = self.render(index)
        pick = _nearest_indices(self.size, self.mask_size[0])
        planes = planes[:, pick][:, :, pick]
        return ConceptSample(
            image=torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            planes=torch.from_numpy(planes.astype(np.int64)),
            image_labels=torch.zeros(0, dtype=torch.int64),
            present=torch.ones(len(self.categories), dtype=torch.bool),
            index=index,
            name=f"generated_{self.seed}_{index:06d}",
            target=target,
        )

    def render(self, index: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Image ``index`` at full resolution: ``(H, W, 3)`` float32 in [0, 1], ``(3, H, W)`` int16 label
        maps (colour, texture, shape) and the class index of the main object."""
        rng = np.random.default_rng([self.seed, index, 0x5EED])
        size = self.size
        yy, xx = _grid(size)
        rgb = _clutter(rng, xx, yy, size)
        planes = np.zeros((3, size, size), dtype=np.int16)
        n_objects = int(rng.integers(self.objects[0], self.objects[1] + 1))
        target = -1
        for k in range(n_objects):
            main = k == n_objects - 1
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            radius = size * (rng.uniform(0.15, 0.24) if main else rng.uniform(0.08, 0.16))
            margin = radius * 0.7
            cy, cx = rng.uniform(margin, size - margin, 2)
            angle = rng.uniform(0, 2 * math.pi)
            mask = _shape_mask(shape, xx - cx, yy - cy, radius, angle)
            if not mask.any():
                continue
            surface = self._fill(rng, mask, rgb, planes, xx=xx, yy=yy)
            planes[2][mask] = self._shape_index[shape]
            if main:
                target = SURFACES.index(surface) * len(SHAPES) + SHAPES.index(shape)
        image = _soften(rgb) if size >= 96 else rgb  # the edges of a camera picture are never one pixel sharp
        if self.noise > 0:
            image += self.noise * rng.standard_normal(image.shape, dtype=np.float32)
        image *= 1.0 / 255.0
        return np.clip(image, 0.0, 1.0, out=image), planes, target

    def _fill(
        self, rng: np.random.Generator, mask: np.ndarray, rgb: np.ndarray, planes: np.ndarray, xx: np.ndarray, yy: np.ndarray
    ) -> str:
        """Paint ``mask`` in a solid colour or a texture of two colours and label it; the surface name."""
        names = list(COLORS)
        first = names[int(rng.integers(len(names)))]
        if rng.random() >= self.textured:
            rgb[mask] = _jitter(rng, first)
            planes[0][mask] = self._colour_index[first]
            planes[1][mask] = 0
            return "solid"
        second_choices = [c for c in names if c != first and _distinct(first, c)]
        second = second_choices[int(rng.integers(len(second_choices)))]
        texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
        pattern = _texture(texture, rng, xx, yy, self.size)
        on, off = mask & pattern, mask & ~pattern
        rgb[on] = _jitter(rng, first)
        rgb[off] = _jitter(rng, second)
        planes[0][on] = self._colour_index[first]
        planes[0][off] = self._colour_index[second]
        planes[1][mask] = self._texture_index[texture]
        return texture


def _clutter(rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, size: int) -> np.ndarray:
    """An unlabelled background: a dull, slightly tinted grey with smooth light and colour gradients."""
    level = rng.uniform(60, 190)
    tint = rng.normal(0, 10, 3)
    angle, hue_angle = rng.uniform(0, 2 * math.pi, 2)
    light = (np.cos(angle) * xx + np.sin(angle) * yy) / size - 0.5
    shade = (np.cos(hue_angle) * xx + np.sin(hue_angle) * yy) / size - 0.5
    drift = rng.normal(0, 12, 3)
    rgb = level + tint + rng.uniform(20, 60) * light[..., None] + shade[..., None] * drift
    return np.clip(rgb, 0, 255).astype(np.float32)


def _soften(rgb: np.ndarray) -> np.ndarray:
    """A separable [1, 2, 1] / 4 blur of an ``(H, W, 3)`` image (edges repeated)."""
    padded = np.pad(rgb, ((1, 1), (0, 0), (0, 0)), mode="edge")
    out = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    padded = np.pad(out, ((0, 0), (1, 1), (0, 0)), mode="edge")
    return 0.25 * padded[:, :-2] + 0.5 * padded[:, 1:-1] + 0.25 * padded[:, 2:]


def _distinct(a: str, b: str) -> bool:
    """Two colours far enough apart that a texture made of them is visible."""
    ca, cb = np.array(COLORS[a], dtype=np.float32), np.array(COLORS[b], dtype=np.float32)
    return float(np.abs(ca - cb).sum()) > 150


def _jitter(rng: np.random.Generator, colour: str) -> np.ndarray:
    base = np.array(COLORS[colour], dtype=np.float32)
    return np.clip(base + rng.normal(0.0, 10.0, 3), 0, 255).astype(np.float32)


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    coords = np.arange(size, dtype=np.float32) + 0.5
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    yy.setflags(write=False)
    xx.setflags(write=False)
    return yy, xx


def _nearest_indices(size: int, out: int) -> np.ndarray:
    """Pixel centres of ``out`` cells spread over ``size`` pixels (nearest-neighbour downsampling)."""
    return np.minimum(((np.arange(out) + 0.5) * size / out).astype(np.int64), size - 1)


def _rotate(dx: np.ndarray, dy: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(angle), math.sin(angle)
    return c * dx + s * dy, -s * dx + c * dy


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """Pixels inside ``shape`` centred at offset (0, 0), of circumradius ``radius``, rotated by ``angle``."""
    u, v = _rotate(dx / radius, dy / radius, angle)
    if shape == "circle":
        return u * u + v * v <= 0.85
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.75
    if shape == "triangle":  # equilateral, circumradius 1
        return (v >= -0.5) & (math.sqrt(3.0) * np.abs(u) + v <= 1.0)
    if shape == "cross":
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 0.95)) | ((np.abs(v) <= 0.3) & (np.abs(u) <= 0.95))
    if shape == "star":  # five points, inner radius 0.45
        rho = np.sqrt(u * u + v * v)
        sector = 2 * math.pi / 5
        phi = np.mod(np.arctan2(v, u) + sector / 2, sector) - sector / 2  # angle to the nearest point
        alpha = np.abs(phi)
        px, py = rho * np.cos(alpha), rho * np.sin(alpha)
        inner = 0.45
        qx, qy = inner * math.cos(sector / 2), inner * math.sin(sector / 2)
        # inside when on the origin's side of the edge from the point (1, 0) to the inner vertex q
        nx, ny = qy, 1.0 - qx
        return nx * (px - 1.0) + ny * py <= 0
    raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")


def _texture(texture: str, rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, size: int) -> np.ndarray:
    """A boolean pattern over the image: True where the texture's first colour goes."""
    period = max(5.0, size * rng.uniform(0.05, 0.1))
    angle = rng.uniform(0, math.pi)
    offset = rng.uniform(0, period, 2)
    u, v = _rotate(xx + offset[0], yy + offset[1], angle)
    if texture == "striped":
        return np.mod(u / period, 1.0) < 0.5
    if texture == "dotted":
        du = np.mod(u, period) - period / 2
        dv = np.mod(v, period) - period / 2
        return du * du + dv * dv <= (0.3 * period) ** 2
    if texture == "checkered":
        return (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    if texture == "grid":
        width = max(1.5, 0.2 * period) / period
        return (np.mod(u / period, 1.0) < width) | (np.mod(v / period, 1.0) < width)
    if texture == "wavy":
        wave = 0.3 * period * np.sin(2 * math.pi * u / (2.5 * period))
        return np.mod((v + wave) / period, 1.0) < 0.5
    raise ValueError(f"unknown texture {texture!r}; known: {', '.join(TEXTURES)}")


# --------------------------------------------------------------------------------------------------
# one front door for concept data


_SPEC = re.compile(r"^generated(?::(?P<params>.*))?$")


def load_concepts(concepts: Any, **options: Any) -> ConceptDataset:
    """A :class:`ConceptDataset` from what a user has.

    - a :class:`ConceptDataset` (returned as is);
    - a folder in the Broden format (it holds ``index.csv``): a :class:`~unmask.data.broden.BrodenDataset`,
      ``options`` go to it (``categories``, ``split``, ``limit``, ...);
    - ``"generated"`` or ``"generated:n=500,size=224,seed=0"``: a :class:`GeneratedConcepts`
      (``options`` fill in parameters the string leaves out).
    """
    if isinstance(concepts, ConceptDataset):
        if options:
            raise ValueError(f"options {sorted(options)} cannot change an existing concept data set")
        return concepts
    if isinstance(concepts, (str, Path)):
        text = str(concepts)
        match = _SPEC.match(text)
        if match and not Path(text).exists():
            params = dict(options)
            for part in filter(None, (match.group("params") or "").split(",")):
                key, sep, value = part.partition("=")
                key = key.strip()
                if not sep or key not in ("n", "size", "mask_size", "seed"):
                    raise ValueError(
                        f"bad generated concept spec {text!r}: expected generated:n=500,size=224,mask_size=112,seed=0"
                    )
                try:
                    params[key] = int(value)
                except ValueError:
                    raise ValueError(f"bad generated concept spec {text!r}: {key} must be an integer") from None
            return GeneratedConcepts(**params)
        path = Path(text)
        if path.is_dir():
            from .broden import BrodenDataset

            return BrodenDataset(path, **options)
        if path.exists():
            raise ValueError(f"concepts {text!r} is a file; give a Broden-format folder (with index.csv) or 'generated'")
        raise ValueError(f"concepts {text!r}: no such folder; give a Broden-format folder (with index.csv) or 'generated'")
    raise TypeError(
        f"concepts must be a ConceptDataset, a Broden-format folder or 'generated', got {type(concepts).__name__}"
    )

__getattr__ = renamed(__name__, {"COLOURS": "COLORS"}, globals())
