"""What a dissection returns: one record per unit, per layer, and the axis-alignment and robustness
experiments built on them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ..._io import json_safe

__all__ = ["AxisAlignmentResult", "DissectionResult", "RobustnessResult", "UnitRecord"]


@dataclass
class UnitRecord:
    """One unit of a dissected layer: its best label and how well it matches."""

    unit: int
    label: str
    category: str
    iou: float
    is_detector: bool
    threshold: float
    top_images: list[int] = field(default_factory=list)
    top_activations: list[float] = field(default_factory=list)
    candidates: list[tuple[str, str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN and infinities as ``None``)."""
        return json_safe({
            "unit": self.unit,
            "label": self.label,
            "category": self.category,
            "iou": self.iou,
            "is_detector": self.is_detector,
            "threshold": self.threshold,
            "top_images": list(self.top_images),
            "top_activations": list(self.top_activations),
            "candidates": [{"label": l, "category": c, "iou": v} for l, c, v in self.candidates],
        })


@dataclass
class DissectionResult:
    """The dissection of one layer: ``units`` (one :class:`UnitRecord` per unit, 0-based), the full
    ``iou`` matrix ``(units, labels)``, per-unit ``thresholds`` and the settings that produced them.
    ``top_maps[u, j]`` is unit ``u``'s activation map on its ``j``-th top image (``units[u].top_images[j]``)."""

    layer: str
    units: list[UnitRecord]
    labels: list[str]
    label_categories: list[str]
    categories: list[str]
    iou: np.ndarray
    thresholds: np.ndarray
    quantile: float
    iou_threshold: float
    n_images: int
    activation_size: tuple[int, int]
    mask_size: tuple[int, int]
    quantile_method: str
    concepts: str = ""
    top_maps: np.ndarray | None = field(default=None, repr=False)
    model: str = ""
    perturbation: str | None = None
    basis: str = "units"
    seconds: float = 0.0

    @property
    def detectors(self) -> list[UnitRecord]:
        """Units whose best IoU exceeds ``iou_threshold``, best first."""
        return sorted((u for u in self.units if u.is_detector), key=lambda u: -u.iou)

    @property
    def unique_detectors(self) -> dict[str, int]:
        """Per category, how many distinct labels some detector unit detects (the paper's measure)."""
        seen: dict[str, set[str]] = {c: set() for c in self.categories}
        for unit in self.units:
            if unit.is_detector:
                seen.setdefault(unit.category, set()).add(unit.label)
        return {c: len(labels) for c, labels in seen.items()}

    @property
    def detector_units(self) -> dict[str, int]:
        """Per category, how many units are detectors of one of its labels."""
        counts = {c: 0 for c in self.categories}
        for unit in self.units:
            if unit.is_detector:
                counts[unit.category] = counts.get(unit.category, 0) + 1
        return counts

    def top(self, n: int = 10) -> list[UnitRecord]:
        """The ``n`` units with the highest IoU."""
        return sorted(self.units, key=lambda u: -u.iou)[:n]

    def summary(self) -> str:
        unique = ", ".join(f"{c} {n}" for c, n in self.unique_detectors.items())
        return (
            f"{self.layer}: {len(self.detectors)} of {len(self.units)} units are detectors "
            f"(IoU > {self.iou_threshold:g}); unique detectors: {unique}"
        )

    def to_dict(self, matrix: bool = False) -> dict[str, Any]:
        """JSON-ready (NaN and infinities as ``None``): settings, counts and one entry per unit (and the whole
        IoU matrix with ``matrix=True``)."""
        data: dict[str, Any] = {
            "layer": self.layer,
            "model": self.model,
            "concepts": self.concepts,
            "basis": self.basis,
            "perturbation": self.perturbation,
            "quantile": self.quantile,
            "quantile_method": self.quantile_method,
            "iou_threshold": self.iou_threshold,
            "n_images": self.n_images,
            "n_units": len(self.units),
            "activation_size": list(self.activation_size),
            "mask_size": list(self.mask_size),
            "seconds": round(self.seconds, 3),
            "categories": list(self.categories),
            "n_detectors": len(self.detectors),
            "unique_detectors": self.unique_detectors,
            "detector_units": self.detector_units,
            "units": [u.to_dict() for u in self.units],
        }
        if matrix:
            data["labels"] = list(self.labels)
            data["label_categories"] = list(self.label_categories)
            data["iou"] = self.iou.tolist()
        return json_safe(data)

    def __repr__(self) -> str:
        return f"<DissectionResult {self.summary()}>"


def _mean_std(counts: list[dict[str, int]], keys: Iterable[str]) -> tuple[dict[str, float], dict[str, float]]:
    mean, std = {}, {}
    for key in keys:
        values = np.array([c.get(key, 0) for c in counts], dtype=np.float64)
        mean[key] = float(values.mean()) if values.size else float("nan")
        std[key] = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return mean, std


def _with_total(counts: dict[str, int]) -> dict[str, int]:
    return {**counts, "total": sum(counts.values())}


@dataclass
class AxisAlignmentResult:
    """The axis-alignment test: unique detectors of the layer's own units versus the same representation
    in randomly rotated bases (``repeats`` random orthogonal matrices), with mean and std over repeats."""

    layer: str
    identity: DissectionResult
    rotated: list[DissectionResult]
    seed: int

    @property
    def counts(self) -> dict[str, int]:
        return _with_total(self.identity.unique_detectors)

    @property
    def rotated_counts(self) -> list[dict[str, int]]:
        return [_with_total(r.unique_detectors) for r in self.rotated]

    @property
    def mean(self) -> dict[str, float]:
        return _mean_std(self.rotated_counts, self.counts)[0]

    @property
    def std(self) -> dict[str, float]:
        return _mean_std(self.rotated_counts, self.counts)[1]

    def summary(self) -> str:
        parts = [f"{k} {self.counts[k]} vs {self.mean[k]:.1f} +/- {self.std[k]:.1f}" for k in self.counts]
        return f"{self.layer} unique detectors, unit basis vs {len(self.rotated)} random rotations: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "repeats": len(self.rotated),
            "seed": self.seed,
            "unit_basis": self.counts,
            "rotated": self.rotated_counts,
            "mean": self.mean,
            "std": self.std,
        }


@dataclass
class RobustnessResult:
    """Detectors of one layer on the original images and under each perturbation.

    ``kept[p]``: the fraction of the original detector units that are still detectors of the same
    label under perturbation ``p``."""

    layer: str
    baseline: DissectionResult
    perturbed: dict[str, DissectionResult]

    @property
    def kept(self) -> dict[str, float]:
        base = {u.unit: u.label for u in self.baseline.units if u.is_detector}
        out = {}
        for name, result in self.perturbed.items():
            same = sum(1 for u in result.units if u.is_detector and base.get(u.unit) == u.label)
            out[name] = same / len(base) if base else float("nan")
        return out

    def summary(self) -> str:
        lines = [f"{self.layer}: original unique detectors {_with_total(self.baseline.unique_detectors)}"]
        kept = self.kept
        for name, result in self.perturbed.items():
            lines.append(f"  {name}: {_with_total(result.unique_detectors)}, detectors kept {kept[name]:.0%}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        kept = self.kept
        return json_safe({
            "layer": self.layer,
            "original": _with_total(self.baseline.unique_detectors),
            "perturbed": {
                name: {"unique_detectors": _with_total(r.unique_detectors), "kept": kept[name]}
                for name, r in self.perturbed.items()
            },
        })
