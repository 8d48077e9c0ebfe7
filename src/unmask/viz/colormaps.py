"""Colour maps as ``(256, 3)`` uint8 lookup tables, built from a few anchor colours.

Diverging maps (``bwr``, ``seismic``, ``coldnhot``) are for signed relevance: index 0 is the most
negative value, 255 the most positive, and indices 127 and 128 both hold the centre colour, so zero
relevance (position 0.5) gets exactly the centre colour. Sequential maps (``hot``, ``gray``,
``viridis``) are for unsigned relevance: index 0 is zero, 255 the maximum.
"""
from __future__ import annotations

import numpy as np

Anchors = list[tuple[float, tuple[int, int, int]]]


def _interpolate(anchors: Anchors, positions: np.ndarray) -> np.ndarray:
    stops = np.array([p for p, _ in anchors], dtype=np.float64)
    colours = np.array([c for _, c in anchors], dtype=np.float64)
    channels = [np.interp(positions, stops, colours[:, k]) for k in range(3)]
    lut = np.clip(np.rint(np.stack(channels, axis=1)), 0, 255).astype(np.uint8)
    lut.flags.writeable = False
    return lut


def _sequential(anchors: Anchors) -> np.ndarray:
    return _interpolate(anchors, np.linspace(0.0, 1.0, 256))


def _diverging(anchors: Anchors) -> np.ndarray:
    # Two halves of 128 entries that both end on the centre anchor at 0.5.
    half = np.linspace(0.0, 0.5, 128)
    return _interpolate(anchors, np.concatenate([half, 1.0 - half[::-1]]))


DIVERGING: dict[str, np.ndarray] = {
    "bwr": _diverging([(0.0, (0, 0, 255)), (0.5, (255, 255, 255)), (1.0, (255, 0, 0))]),
    "seismic": _diverging(
        [
            (0.0, (0, 0, 77)),
            (0.25, (0, 0, 255)),
            (0.5, (255, 255, 255)),
            (0.75, (255, 0, 0)),
            (1.0, (128, 0, 0)),
        ]
    ),
    # Black centre: small relevance fades into the dark, strong relevance glows cyan (negative)
    # or yellow (positive).
    "coldnhot": _diverging(
        [
            (0.0, (210, 255, 255)),
            (0.12, (0, 255, 255)),
            (0.32, (0, 90, 255)),
            (0.5, (0, 0, 0)),
            (0.68, (255, 30, 0)),
            (0.88, (255, 255, 0)),
            (1.0, (255, 255, 210)),
        ]
    ),
}

SEQUENTIAL: dict[str, np.ndarray] = {
    "hot": _sequential([(0.0, (0, 0, 0)), (0.375, (255, 0, 0)), (0.75, (255, 255, 0)), (1.0, (255, 255, 255))]),
    "gray": _sequential([(0.0, (0, 0, 0)), (1.0, (255, 255, 255))]),
    "viridis": _sequential(
        [
            (0.0, (68, 1, 84)),
            (0.125, (72, 36, 117)),
            (0.25, (59, 82, 139)),
            (0.375, (44, 114, 142)),
            (0.5, (33, 145, 140)),
            (0.625, (40, 174, 128)),
            (0.75, (94, 201, 98)),
            (0.875, (173, 220, 48)),
            (1.0, (253, 231, 37)),
        ]
    ),
}

def names() -> list[str]:
    """All colour map names, diverging first."""
    return [*DIVERGING, *SEQUENTIAL]


def get(name: str) -> np.ndarray:
    """The read-only ``(256, 3)`` uint8 table of the colour map ``name``."""
    lut = DIVERGING.get(name, SEQUENTIAL.get(name)) if isinstance(name, str) else None
    if lut is None:
        raise ValueError(f"unknown colour map {name!r}; choose one of {', '.join(names())}")
    return lut


def is_diverging(name: str) -> bool:
    """Whether ``name`` is a diverging map (for signed relevance, zero at the centre)."""
    get(name)
    return name in DIVERGING


def apply(values: np.ndarray, cmap: str) -> np.ndarray:
    """Colour ``values`` in ``[0, 1]`` (any shape) with ``cmap``: uint8 array of shape ``values.shape + (3,)``."""
    index = np.clip(np.floor(np.asarray(values, dtype=np.float64) * 256), 0, 255).astype(np.intp)
    return get(cmap)[index]
