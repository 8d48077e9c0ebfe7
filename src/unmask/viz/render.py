"""Heatmap images, overlays on the input image, comparison grids and atomic PNG files."""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from . import colormaps
from .._io import write_png
from .normalize import as_array, normalize

Size = int | tuple[int, int]
ImageLike = Image.Image | np.ndarray | torch.Tensor


def resolve_cmap(heatmap: np.ndarray, cmap: str | None) -> str:
    """``cmap`` checked, or the default: ``bwr`` when any value is negative, else ``hot``."""
    if cmap is None:
        return "bwr" if (heatmap < 0).any() else "hot"
    colormaps.get(cmap)
    return cmap


def colorize(
    heatmap: Any, cmap: str | None = None, percentile: float | None = None, mode: str | None = None
) -> np.ndarray:
    """Colour a ``(H, W)`` or ``(B, H, W)`` heatmap: uint8 ``(..., H, W, 3)``, each map normalised on its own.

    ``mode`` defaults to ``symmetric`` for diverging maps (zero gets the centre colour) and ``maxabs``
    for sequential ones (zero gets the first colour, negative values too); see :func:`normalize`.
    """
    array = as_array(heatmap)
    cmap = resolve_cmap(array, cmap)
    return colormaps.apply(_unit(array, cmap, percentile, mode), cmap)


def heatmap(
    relevance: Any,
    cmap: str | None = None,
    percentile: float | None = None,
    mode: str | None = None,
    size: Size | None = None,
) -> Image.Image | list[Image.Image]:
    """Heatmap images: one per sample for ``(B, C, H, W)`` relevance (summed over channels) or a
    ``(B, H, W)`` heatmap, a single image for a ``(H, W)`` heatmap.

    The default colour map is chosen once for the whole batch (see :func:`resolve_cmap`). ``size`` is
    ``(width, height)`` or an int for the longer side; the normalised map is resized before colouring.
    """
    array = as_array(relevance)
    if array.ndim not in (2, 3, 4):
        raise ValueError(
            f"relevance must be (B, C, H, W), (B, H, W) or (H, W), got shape {array.shape}; "
            "a single (C, H, W) sample needs a batch axis: relevance[None]"
        )
    maps = array.sum(1) if array.ndim == 4 else array
    cmap = resolve_cmap(maps, cmap)
    unit = _unit(maps, cmap, percentile, mode)
    images = [_colour_image(u, cmap, size) for u in (unit if unit.ndim == 3 else [unit])]
    return images if maps.ndim == 3 else images[0]


#: ``overlay(alpha="relevance")``: per-pixel opacity ``min(1, RELEVANCE_GAIN * s) * RELEVANCE_OPACITY`` for a
#: relevance strength ``s`` in ``[0, 1]``: two thirds of the full strength already get the most opacity,
#: and even there the image shows through a little.
RELEVANCE_GAIN = 1.5
RELEVANCE_OPACITY = 0.85


def overlay(
    image: ImageLike,
    heatmap: Any,
    alpha: float | str = "relevance",
    cmap: str | None = None,
    percentile: float | None = None,
    mode: str | None = None,
    gray: bool = False,
) -> Image.Image:
    """Blend a heatmap over ``image``: ``(1 - a) * image + a * colours``, at the image's size.

    ``heatmap`` is a ``(H, W)`` relevance map (coloured as in :func:`colorize`, resized before
    colouring) or an already coloured PIL image. ``image`` is anything :func:`to_image` accepts.

    ``alpha`` is the opacity ``a`` of the colours: a number in ``[0, 1]`` for every pixel, or
    ``"relevance"`` (the default) for a per-pixel opacity that grows with the strength of the
    relevance there: ``a = min(1, 1.5 * s) * 0.85`` (:data:`RELEVANCE_GAIN`, :data:`RELEVANCE_OPACITY`),
    where ``s`` in ``[0, 1]`` is the normalised ``|R|`` for a diverging colour map (``0`` at its
    centre colour) and the position on the map for a sequential one (``0`` at its first colour). So
    pixels without relevance keep the image as it is and strong relevance shows in full colour; a
    constant ``alpha`` instead tints the whole image (with ``bwr`` it fades towards white). It needs
    the relevance values, not a coloured image. ``gray=True`` blends over a grayscale copy of the
    image, so that the colours stand out against any photo.
    """
    relevance_alpha = isinstance(alpha, str)
    if relevance_alpha and alpha != "relevance":
        raise ValueError(f"alpha must be a number in [0, 1] or 'relevance', got {alpha!r}")
    if not relevance_alpha and not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    base = to_image(image)
    if gray:
        base = base.convert("L").convert("RGB")
    if isinstance(heatmap, Image.Image):
        if relevance_alpha:
            raise ValueError("alpha='relevance' needs the (H, W) relevance, not a coloured image; pass a number alpha")
        colours = np.asarray(resize(heatmap.convert("RGB"), base.size), dtype=np.float32)
    else:
        array = as_array(heatmap)
        if array.ndim != 2:
            raise ValueError(f"overlay needs a (H, W) heatmap or a PIL image, got shape {array.shape}")
        cmap = resolve_cmap(array, cmap)
        unit = _resize_unit(_unit(array, cmap, percentile, mode), base.size)
        colours = colormaps.apply(unit, cmap).astype(np.float32)
        if relevance_alpha:
            strength = np.abs(2 * unit - 1) if colormaps.is_diverging(cmap) else unit
            alpha = (np.clip(RELEVANCE_GAIN * strength, 0, 1) * RELEVANCE_OPACITY)[..., None]
    blended = (1 - alpha) * np.asarray(base, dtype=np.float32) + alpha * colours
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8))


def to_image(image: ImageLike) -> Image.Image:
    """An RGB PIL image from a PIL image, a uint8 array ``(H, W)`` / ``(H, W, 3)``, or a float
    array / tensor in ``[0, 1]`` shaped ``(H, W)``, ``(H, W, 1|3)`` or ``(1|3, H, W)``."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim == 3 and array.shape[-1] not in (1, 3) and array.shape[0] in (1, 3):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] != 3):
        raise ValueError(f"image must be (H, W), (H, W, 1|3) or (1|3, H, W), got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"image must be uint8 or floating point in [0, 1], got {array.dtype}")
        if not np.isfinite(array).all() or array.min() < 0 or array.max() > 1:
            raise ValueError(
                "a floating point image must lie in [0, 1] "
                f"(got [{np.nanmin(array):.3g}, {np.nanmax(array):.3g}]); pass the un-normalised image"
            )
        array = np.rint(array * 255).astype(np.uint8)
    return Image.fromarray(array).convert("RGB")


def grid(
    images_by_name: Mapping[str, ImageLike | Sequence[ImageLike]],
    size: Size | None = None,
    padding: int = 8,
    font_size: int | None = None,
    background: str = "white",
) -> Image.Image:
    """A comparison grid: one column per name, written above it; one row per sample.

    A value is one image or a list of images (all lists the same length, one per sample). Tiles are
    resized to ``size`` when given (as in :func:`heatmap`) and centred in cells of the largest tile's
    size. With ``L = ceil(1.5 * font_size)`` the result is
    ``(padding + columns * (cell_w + padding), 2 * padding + L + rows * (cell_h + padding))`` pixels.
    ``font_size`` defaults to ``cell_w // 14`` within ``[12, 32]``.
    """
    if not images_by_name:
        raise ValueError("grid needs at least one named image")
    columns = {
        str(name): list(value) if is_batch(value) else [value] for name, value in images_by_name.items()
    }
    rows = {len(tiles) for tiles in columns.values()}
    if len(rows) != 1 or 0 in rows:
        lengths = {name: len(tiles) for name, tiles in columns.items()}
        raise ValueError(f"every name needs the same number of images (one per sample), got {lengths}")
    tiles = {name: [resize(to_image(t), size) for t in ts] for name, ts in columns.items()}
    cell_w = max(t.width for ts in tiles.values() for t in ts)
    cell_h = max(t.height for ts in tiles.values() for t in ts)
    font_size = font_size or min(max(cell_w // 14, 12), 32)
    label_h = math.ceil(1.5 * font_size)
    n_rows = rows.pop()
    canvas = Image.new(
        "RGB",
        (padding + len(tiles) * (cell_w + padding), 2 * padding + label_h + n_rows * (cell_h + padding)),
        background,
    )
    draw = ImageDraw.Draw(canvas)
    font = _font(font_size)
    for col, (name, column) in enumerate(tiles.items()):
        x = padding + col * (cell_w + padding)
        label = _fit(draw, name, font, cell_w)
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        origin = (x + (cell_w - left - right) / 2, padding + (label_h - top - bottom) / 2)
        draw.text(origin, label, fill="black", font=font)
        for row, tile in enumerate(column):
            y = 2 * padding + label_h + row * (cell_h + padding)
            canvas.paste(tile, (x + (cell_w - tile.width) // 2, y + (cell_h - tile.height) // 2))
    return canvas


def to_png(image: ImageLike, path: str | os.PathLike[str]) -> Path:
    """Write ``image`` as PNG atomically (temporary file in the same folder, then ``os.replace``)."""
    if Path(path).suffix.lower() != ".png":
        raise ValueError(f"a PNG path must end in .png, got {str(path)!r}")
    picture = to_image(image)
    return write_png(path, picture)


def target_size(size: Size, width: int, height: int) -> tuple[int, int]:
    """``(width, height)`` for ``size``: a pair as is, an int as the longer side keeping the aspect ratio."""
    if isinstance(size, int):
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        scale = size / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"size must be an int or a (width, height) pair of positive ints, got {size}")
    return int(size[0]), int(size[1])


def resize(image: Image.Image, size: Size | None) -> Image.Image:
    """``image`` resized (bilinear) to ``size`` as in :func:`target_size`; unchanged for ``None``."""
    if size is None:
        return image
    return image.resize(target_size(size, image.width, image.height), Image.Resampling.BILINEAR)


def is_batch(value: Any) -> bool:
    """Whether ``value`` holds several images: a list, a tuple, or a 4-D array or tensor."""
    return isinstance(value, (list, tuple)) or (isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 4)


def _unit(array: np.ndarray, cmap: str, percentile: float | None, mode: str | None) -> np.ndarray:
    """Normalised values as positions in ``[0, 1]`` on the colour map (zero at 0.5 when symmetric)."""
    mode = mode or ("symmetric" if colormaps.is_diverging(cmap) else "maxabs")
    values = normalize(array, mode=mode, percentile=percentile)
    return (values + 1) / 2 if mode == "symmetric" else values


def _colour_image(unit: np.ndarray, cmap: str, size: Size | None) -> Image.Image:
    return Image.fromarray(colormaps.apply(_resize_unit(unit, size), cmap))


def _resize_unit(unit: np.ndarray, size: Size | None) -> np.ndarray:
    """Colour map positions resized (bilinear) to ``size`` as in :func:`target_size`; unchanged for ``None``."""
    if size is None:
        return unit
    height, width = unit.shape
    if target_size(size, width, height) == (width, height):
        return unit
    return np.asarray(resize(Image.fromarray(unit.astype(np.float32)), size))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the small bitmap font
        return ImageFont.load_default()


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """``text``, shortened with '...' until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."
