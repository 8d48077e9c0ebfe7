"""Network dissection: which units of a layer detect which concepts (Bau et al., CVPR 2017).

For a layer with ``U`` units (channels) and a concept data set (images with per-pixel labels):

1. The activations ``a_u`` of every unit over the whole data set give a per-unit threshold ``T_u``, the
   top ``quantile`` (default 0.005) of its activation values: ``P(a_u > T_u) = quantile``. Computed in
   one streaming pass (:class:`TailQuantile`, exact, or :class:`HistogramQuantile` when the exact
   tail would not fit in memory; see there for the error).
2. In a second pass each activation map is upsampled (bilinear) to the resolution of the label maps
   and thresholded, ``M_u = up(a_u) > T_u``, and for every unit ``u`` and label ``c``
   ``IoU(u, c) = sum |M_u & L_c| / sum |M_u | L_c|`` is accumulated over the data set (the union only over
   images annotated for the label's category, as NetDissect does).
3. Each unit gets its best label; it is a *detector* when that IoU exceeds ``iou_threshold`` (0.04).
   A layer's interpretability is its number of *unique detectors* per category: the number of
   distinct labels that some unit detects.

Everything is batched and streaming: memory does not grow with the data set (activations of a layer
are kept between the passes only when they fit ``cache_bytes``, which saves the second forward pass),
and it runs on the model's device. The robustness experiments are options: :func:`robustness` (added
noise, rotation, patch rearrangement) and :func:`axis_alignment` (random rotations of the unit basis).

>>> from unmask import zoo
>>> from unmask.analyze import dissect
>>> result = dissect(zoo.load("efficientnet-lite0"), "_blocks.7", "generated")
>>> result.unique_detectors                 # {'color': 4, 'texture': 4, 'shape': 0}
>>> [(u.unit, u.label, round(u.iou, 2)) for u in result.detectors][:3]   # [(13, 'dotted', 0.22), (24, 'dotted', 0.18), (35, 'yellow', 0.17)]
"""

from __future__ import annotations

from ...models import resolve_layer
from .activations import activation_maps
from .api import axis_alignment, dissect, robustness
from .perturbations import Perturbation, parse_perturbation
from .quantiles import EXACT_LIMIT, HISTOGRAM_BINS, HistogramQuantile, TailQuantile, streaming_quantile
from .results import AxisAlignmentResult, DissectionResult, RobustnessResult, UnitRecord
from .tally import DEFAULT_IOU_THRESHOLD, DEFAULT_QUANTILE, random_rotation

__all__ = [
    "DEFAULT_IOU_THRESHOLD",
    "DEFAULT_QUANTILE",
    "EXACT_LIMIT",
    "HISTOGRAM_BINS",
    "AxisAlignmentResult",
    "DissectionResult",
    "HistogramQuantile",
    "Perturbation",
    "RobustnessResult",
    "TailQuantile",
    "UnitRecord",
    "activation_maps",
    "axis_alignment",
    "dissect",
    "parse_perturbation",
    "random_rotation",
    "resolve_layer",
    "robustness",
    "streaming_quantile",
]
