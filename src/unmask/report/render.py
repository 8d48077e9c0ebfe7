"""Pictures for the report: heatmap, overlay and comparison grid as PIL images.

This is the one seam between the report and the heatmap drawing; it keeps to numpy and Pillow so the
command line works with the core dependencies alone. When ``unmask.viz`` offers the same pictures,
these functions should call it.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

#: Percentile of |relevance| that maps to full colour; a few extreme pixels then saturate instead of
#: washing out the rest of the map.
PERCENTILE = 99.5


def heatmap_values(relevance: torch.Tensor | np.ndarray) -> np.ndarray:
    """``(C, H, W)`` or ``(H, W)`` relevance -> ``(H, W)`` float32 in [-1, 1], channels summed, zero kept at zero."""
    array = relevance.detach().cpu().float().numpy() if isinstance(relevance, torch.Tensor) else np.asarray(relevance)
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 3:
        array = array.sum(0)
    if array.ndim != 2:
        raise ValueError(f"relevance must be (C, H, W) or (H, W), got shape {array.shape}")
    array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    magnitude = np.abs(array)
    scale = float(np.percentile(magnitude, PERCENTILE)) if magnitude.size else 0.0
    if scale <= 0:
        scale = float(magnitude.max()) if magnitude.size else 0.0
    if scale <= 0:
        return np.zeros_like(array)
    return np.clip(array / scale, -1.0, 1.0)


def colorize(values: np.ndarray) -> np.ndarray:
    """Values in [-1, 1] -> uint8 RGB, blue (negative) - white (zero) - red (positive)."""
    v = np.asarray(values, dtype=np.float32)[..., None]
    white = np.ones(3, dtype=np.float32)
    red = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    blue = np.array([0.0, 0.0, 1.0], dtype=np.float32)
    rgb = np.where(v >= 0, white + v * (red - white), white - v * (blue - white))
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


def heatmap_image(relevance: torch.Tensor | np.ndarray) -> Image.Image:
    """The relevance of one sample as an RGB heatmap the size of the input."""
    return Image.fromarray(colorize(heatmap_values(relevance)), mode="RGB")


def overlay_image(relevance: torch.Tensor | np.ndarray, image: Image.Image) -> Image.Image:
    """The heatmap over a grayscale copy of ``image`` (which must have the input's size); strong relevance is opaque."""
    values = heatmap_values(relevance)
    if image.size != (values.shape[1], values.shape[0]):
        image = image.resize((values.shape[1], values.shape[0]), Image.BILINEAR)
    gray = np.asarray(image.convert("L").convert("RGB"), dtype=np.float32)
    colour = colorize(values).astype(np.float32)
    alpha = np.clip(np.abs(values) * 1.5, 0.0, 1.0)[..., None] * 0.85
    blended = gray * (1 - alpha) + colour * alpha
    return Image.fromarray(np.clip(np.rint(blended), 0, 255).astype(np.uint8), mode="RGB")


def grid_image(tiles: list[tuple[str, Image.Image]], tile_size: int = 224, columns: int | None = None) -> Image.Image:
    """Labelled tiles side by side (``columns`` per row; one row by default) on a white background."""
    if not tiles:
        raise ValueError("grid_image needs at least one tile")
    columns = columns or len(tiles)
    rows = -(-len(tiles) // columns)
    try:
        font = ImageFont.load_default(size=13)  # Pillow >= 10.1 with FreeType
    except (TypeError, AttributeError, OSError):
        font = ImageFont.load_default()
    label_height, pad = 20, 6
    width = columns * (tile_size + pad) + pad
    height = rows * (tile_size + label_height + pad) + pad
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for k, (label, tile) in enumerate(tiles):
        row, column = divmod(k, columns)
        x = pad + column * (tile_size + pad)
        y = pad + row * (tile_size + label_height + pad)
        draw.text((x, y + 2), _fit(draw, label, font, tile_size), fill="black", font=font)
        canvas.paste(tile.convert("RGB").resize((tile_size, tile_size), Image.BILINEAR), (x, y + label_height))
    return canvas


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."
