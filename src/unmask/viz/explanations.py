"""Rendering and saving an :class:`~unmask.Explanation` (what its ``render`` and ``save`` call)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .arrays import to_npy
from .normalize import as_array
from .render import ImageLike, Size, heatmap, is_batch, resize, resolve_cmap, to_image, to_png
from .render import overlay as blend


def render_explanation(
    explanation: Any,
    index: int | None = None,
    *,
    cmap: str | None = None,
    percentile: float | None = None,
    mode: str | None = None,
    overlay: bool = False,
    alpha: float | str = "relevance",
    gray: bool = False,
    size: Size | None = None,
    image: ImageLike | list[ImageLike] | None = None,
) -> Image.Image | list[Image.Image]:
    """Heatmap (or overlay) images of an explanation: one image for ``index``, a list for all samples.

    The default colour map is chosen over the rendered samples: ``bwr`` if any relevance is negative,
    else ``hot``. Overlays use ``image`` (one image for every sample, or one per sample of the batch:
    a list or a 4-D array/tensor), else the explanation's ``inputs`` min-max scaled per sample;
    ``alpha`` (a number, or ``"relevance"`` for opacity growing with ``|R|``) and ``gray`` (a grayscale
    background) are :func:`~unmask.viz.overlay`'s.
    """
    relevance = _image_relevance(explanation)
    indices = _indices(len(relevance), index)
    maps = relevance[indices].sum(1)
    cmap = resolve_cmap(maps, cmap)
    if overlay:
        bases = _backgrounds(explanation, indices, image)
        options = {"alpha": alpha, "cmap": cmap, "percentile": percentile, "mode": mode, "gray": gray}
        images = [resize(blend(b, m, **options), size) for b, m in zip(bases, maps)]
    else:
        images = heatmap(maps, cmap=cmap, percentile=percentile, mode=mode, size=size)
    return images if index is None else images[0]


def save_explanation(
    explanation: Any, path: str | os.PathLike[str], index: int | None = None, *, full: bool = False, **options: Any
) -> list[Path]:
    """Write an explanation to ``path``; returns the written paths.

    ``.png``: the rendered images (``options`` as in :func:`render_explanation`). One sample goes to
    ``path``; several go to one file each, ``{i}`` in ``path`` replaced by the sample index, or else
    ``_<i>`` appended to the stem (indices zero-padded to the same width).
    ``.npy``: the raw float32 relevance, summed over channels unless ``full``: ``(H, W)`` for
    ``index``, the whole batch ``(B, H, W)`` otherwise, or one file per sample when ``path`` has ``{i}``.
    """
    relevance = _image_relevance(explanation)
    indices = _indices(len(relevance), index)
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        if full:
            raise ValueError("full=True applies to .npy files only")
        images = render_explanation(explanation, index, **options)
        images = images if isinstance(images, list) else [images]
        single = len(indices) == 1 and "{i}" not in str(path)
        paths = [Path(path)] if single else _sample_paths(path, indices, len(relevance))
        return [to_png(picture, p) for picture, p in zip(images, paths)]
    if suffix == ".npy":
        if options:
            raise ValueError(f"rendering options {sorted(options)} apply to .png files only")
        if "{i}" in str(path):
            paths = _sample_paths(path, indices, len(relevance))
            return [to_npy(relevance[i], p, full) for i, p in zip(indices, paths)]
        return [to_npy(relevance if index is None else relevance[indices[0]], path, full)]
    raise ValueError(f"save writes .png images or .npy arrays, got {str(path)!r}")


def _image_relevance(explanation: Any) -> np.ndarray:
    relevance = as_array(explanation.relevance)
    if relevance.ndim != 4:
        raise ValueError(f"rendering needs image relevance (B, C, H, W), got shape {relevance.shape}")
    return relevance


def _indices(batch: int, index: int | None) -> list[int]:
    if index is None:
        return list(range(batch))
    if not isinstance(index, (int, np.integer)) or not -batch <= index < batch:
        raise ValueError(f"index must be an int in [{-batch}, {batch}), got {index!r}")
    return [int(index) % batch]


def _sample_paths(path: str | os.PathLike[str], indices: list[int], batch: int) -> list[Path]:
    """One path per sample: ``{i}`` filled in, else ``_<i>`` before the suffix (zero-padded indices)."""
    text = str(path)
    width = len(str(batch - 1))
    if "{i}" in text:
        return [Path(text.replace("{i}", f"{i:0{width}d}")) for i in indices]
    base = Path(path)
    return [base.with_name(f"{base.stem}_{i:0{width}d}{base.suffix}") for i in indices]


def _backgrounds(explanation: Any, indices: list[int], image: Any) -> list[Image.Image]:
    batch = len(explanation.relevance)
    if image is not None:
        if not is_batch(image):
            return [to_image(image)] * len(indices)
        if len(image) != batch:
            raise ValueError(
                f"image holds {len(image)} images for a batch of {batch}; pass one per sample or one for all"
            )
        return [to_image(image[i]) for i in indices]
    if explanation.inputs is None:
        raise ValueError("overlay needs the input image: pass image=, or keep inputs in the Explanation")
    inputs = as_array(explanation.inputs)
    if inputs.ndim != 4 or inputs.shape[1] not in (1, 3):
        raise ValueError(
            f"inputs of shape {inputs.shape} are not (B, 1|3, H, W) images; pass the image to overlay with image="
        )
    picked = inputs[indices]
    low = picked.min(axis=(1, 2, 3), keepdims=True)
    span = picked.max(axis=(1, 2, 3), keepdims=True) - low
    scaled = (picked - low) / np.where(span > 0, span, 1)
    return [to_image(s) for s in scaled]
