"""Compare models on the same samples: accuracy, agreement, faithfulness, context use and strategies.

Model comparisons as in Lapuschkin et al. (CVPR 2016, "Analyzing classifiers: Fisher vectors and deep
neural networks") and Samek et al. (IEEE TNNLS 2017): two classifiers with the same accuracy can solve
a task differently; GoogleNet and CaffeNet heatmaps differ; the importance of context (relevance outside
the object's box over relevance inside it, Lapuschkin et al., CVPR 2016) is anti-correlated with
performance across models; and SpRAy (Lapuschkin et al., Nat. Commun. 2019) counts the strategies of
each. :func:`compare` runs every model on the same samples, each with its own preprocessing (input size,
resize or crop, normalisation), and reports per model

* ``accuracy`` (overall and per class) when labels are known, and the pairwise ``agreement`` of the
  predictions (share of samples on which two models predict the same class, by class name);
* the heatmaps (relevance summed over channels, in each model's input frame) for a side-by-side grid;
* MoRF and LeRF AOPC of region perturbation (Samek et al. 2017, :mod:`unmask.evaluate`) with the same
  method and settings: by default each model's image is cut into the same ``grid x grid`` regions (so a
  step destroys the same share of the image whatever the input size) and ``f`` is the target's softmax
  probability (logits of different models have different scales);
* context use per class (:func:`unmask.analyze.context.context_use`) with the object's mask or box moved
  into each model's frame, and the share of relevance in fixed ``regions`` (e.g. a watermark's place);
* the number of SpRAy strategies per class (:func:`count_strategies`: the most clusters SpRAy splits the
  class into while each stays separated in its kNN graph, one when no split is), and a
  :class:`Contingency` table per pair of models showing how one model's clusters map onto the other's;
* the Pearson and Spearman correlation between context use and accuracy, across models and across
  (model, class) pairs.

>>> from unmask import zoo
>>> from unmask.data.cleverhans import CleverHans, TAG_BOX
>>> result = compare({"tagged": zoo.load("cleverhans"), "clean": zoo.load("cleverhans-clean")},
...                  CleverHans("test", 300), regions={"tag": TAG_BOX})
>>> result.models["tagged"].accuracy, result.models["tagged"].strategies[0], result.agreement
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from .._utils.progress import Progress, progress_bar
from .context import ContextResult, context_use

__all__ = [
    "Comparison",
    "Contingency",
    "ModelComparison",
    "compare",
    "context_accuracy_correlation",
    "conductance",
    "context_table",
    "contingency",
    "count_strategies",
]

TARGETS = ("label", "predicted")
MEASURES = ("outside_share", "context", "density_ratio")
#: The smallest group SpRAy is run on.
MIN_SPRAY_SAMPLES = 4


# ------------------------------------------------------------------------------------------ tables


@dataclass
class Contingency:
    """How the clusters of model A (rows) map onto those of model B (columns) on the same samples.

    ``counts[i, j]``: the samples in A's cluster ``rows[i]`` and B's cluster ``cols[j]``.
    """

    rows: np.ndarray
    cols: np.ndarray
    counts: np.ndarray

    @property
    def row_shares(self) -> np.ndarray:
        """``counts[i, j] / sum_j counts[i, j]``: where the samples of A's cluster ``i`` went in B."""
        totals = self.counts.sum(1, keepdims=True)
        return self.counts / np.maximum(totals, 1)

    @property
    def mapping(self) -> list[dict[str, Any]]:
        """For every cluster of A: the cluster of B holding most of its samples and that share."""
        shares = self.row_shares
        out = []
        for i, row in enumerate(self.rows):
            j = int(np.argmax(self.counts[i]))
            out.append({"cluster": int(row), "size": int(self.counts[i].sum()), "to": int(self.cols[j]), "share": float(shares[i, j])})
        return out

    @property
    def adjusted_rand_index(self) -> float:
        """Adjusted Rand index of the two partitions (Hubert and Arabie 1985), from the table:
        ``(sum_ij C(n_ij, 2) - E) / (mean(sum_i C(a_i, 2), sum_j C(b_j, 2)) - E)`` with
        ``E = sum_i C(a_i, 2) * sum_j C(b_j, 2) / C(n, 2)``; 1 for identical partitions."""
        pairs = lambda v: (v * (v - 1) / 2.0).sum()  # noqa: E731
        n = self.counts.sum()
        if n < 2:
            return 1.0
        index, a, b = pairs(self.counts.astype(np.float64)), pairs(self.counts.sum(1).astype(np.float64)), pairs(self.counts.sum(0).astype(np.float64))
        expected = a * b / (n * (n - 1) / 2.0)
        top = (a + b) / 2.0
        return 1.0 if top == expected else float((index - expected) / (top - expected))

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows.tolist(),
            "cols": self.cols.tolist(),
            "counts": self.counts.tolist(),
            "mapping": self.mapping,
            "adjusted_rand_index": self.adjusted_rand_index,
        }


def contingency(labels_a: Sequence[int] | np.ndarray, labels_b: Sequence[int] | np.ndarray) -> Contingency:
    """The contingency table of two cluster labellings of the same samples (rows: ``labels_a``)."""
    a, b = np.asarray(labels_a).reshape(-1), np.asarray(labels_b).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"the labellings cover different samples: {a.size} and {b.size} labels")
    rows, row_index = np.unique(a, return_inverse=True)
    cols, col_index = np.unique(b, return_inverse=True)
    counts = np.zeros((len(rows), len(cols)), dtype=np.int64)
    np.add.at(counts, (row_index, col_index), 1)
    return Contingency(rows, cols, counts)


def context_table(results: Mapping[str, ContextResult], measure: str = "outside_share") -> dict[str, dict[str, float | None]]:
    """Context use per model and class: ``{model: {"all": value, class name or index: value}}``.

    ``measure``: ``"outside_share"`` (mean over samples of ``outside / (inside + outside)``), ``"context"``
    (``sum outside / sum inside`` over the class's samples, the seed's importance of context) or
    ``"density_ratio"`` (median relevance per pixel outside over inside); see :class:`ContextResult`.
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    key = "density_ratio_median" if measure == "density_ratio" else measure
    table: dict[str, dict[str, float | None]] = {}
    for name, result in results.items():
        row = {"all": result.summary()[key]}
        for label, summary in result.per_class.items():
            if label >= 0:  # -1: samples without a label
                row[str(summary.get("name", label))] = summary[key]
        table[name] = row
    return table


def _correlations(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    pairs = [(float(a), float(b)) for a, b in zip(x, y) if a is not None and b is not None and math.isfinite(a) and math.isfinite(b)]
    out: dict[str, Any] = {"points": len(pairs), "pearson": None, "spearman": None}
    if len(pairs) < 3:
        out["note"] = "needs at least 3 points"
        return out
    xs, ys = np.array(pairs).T
    if xs.std() == 0 or ys.std() == 0:
        out["note"] = "one of the two is constant"
        return out
    from scipy.stats import pearsonr, spearmanr

    out["pearson"] = float(pearsonr(xs, ys)[0])
    out["spearman"] = float(spearmanr(xs, ys)[0])
    return out


def context_accuracy_correlation(
    context: Mapping[str, Mapping[str, float | None]], accuracy: Mapping[str, Mapping[str, float | None]]
) -> dict[str, Any]:
    """Correlation of context use with accuracy: ``across_models`` pairs each model's ``"all"`` entries,
    ``across_model_classes`` every (model, class) present in both tables. Pearson's r and Spearman's
    rho (scipy); ``None`` with a ``note`` under 3 points or when either side is constant."""
    models = [m for m in context if m in accuracy]
    across_models = _correlations([context[m].get("all") for m in models], [accuracy[m].get("all") for m in models])
    xs, ys = [], []
    for m in models:
        for key, value in context[m].items():
            if key != "all" and key in accuracy[m]:
                xs.append(value)
                ys.append(accuracy[m][key])
    return {"across_models": across_models, "across_model_classes": _correlations(xs, ys)}


# ------------------------------------------------------------------------------------------ samples


@dataclass
class _Sample:
    """One sample as the source gives it: an RGB image (PIL) and, when known, exact float pixels, the
    label (-1: unknown), box (x0, y0, x1, y1 in source pixels), object mask (H, W) and flags."""

    load: Callable[[], Any]
    label: int = -1
    box: Sequence[float] | None = None
    mask: np.ndarray | None = None
    path: str = ""
    tagged: bool | None = None
    pixels: torch.Tensor | None = None


class _Source:
    """The samples of ``data`` with their class names, read lazily a batch at a time."""

    def __init__(self, data: Any, labels: Any = None, boxes: Any = None, classes: Sequence[str] | None = None) -> None:
        self.samples, self.classes = _read(data)
        if classes is not None:
            self.classes = list(classes)
        n = len(self.samples)
        if n == 0:
            raise ValueError("no samples to compare")
        if labels is not None:
            values = list(labels)
            if len(values) != n:
                raise ValueError(f"labels has {len(values)} entries for {n} samples")
            for sample, value in zip(self.samples, values):
                sample.label = self._label(value)
        if boxes is not None:
            for sample, box in zip(self.samples, _boxes_for(self.samples, boxes)):
                sample.box = box

    def _label(self, value: Any) -> int:
        if isinstance(value, str):
            if value not in self.classes:
                self.classes.append(value)
            return self.classes.index(value)
        return int(value)

    def __len__(self) -> int:
        return len(self.samples)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=np.int64)

    @property
    def has_labels(self) -> bool:
        return bool((self.labels >= 0).all())


def _read(data: Any) -> tuple[list[_Sample], list[str]]:
    from PIL import Image

    from ..data.cleverhans import CleverHans
    from ..data.folders import FileList, ImageFolder
    from ..data.images import load_image
    from ..data.voc import VOCAnnotations

    if isinstance(data, (str, os.PathLike)):
        data = _open_path(Path(data))
    if isinstance(data, CleverHans):
        def render(i: int) -> Callable[[], Any]:
            return lambda: data.render(i)

        samples = []
        for i in range(len(data)):
            samples.append(_Sample(render(i), int(data.labels[i]), None, None, data.path(i), bool(data.tagged[i])))
        return samples, list(data.classes)
    if isinstance(data, (FileList, ImageFolder, VOCAnnotations)):
        boxes = getattr(data, "boxes", None) or [None] * len(data.samples)
        return [
            _Sample((lambda p=path: load_image(p)), int(label), box, None, str(path))
            for (path, label), box in zip(data.samples, boxes)
        ], list(data.classes)
    if isinstance(data, Mapping):
        items = list(data.items())
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        items = [(f"sample {i}", value) for i, value in enumerate(data)]
    else:
        raise TypeError(
            f"data must be a path (folder, file list, VOC annotation folder), a CleverHans, ImageFolder, FileList or "
            f"VOCAnnotations data set, or a list / dict of PIL images; got a {type(data).__name__}"
        )
    samples = []
    for name, value in items:
        if isinstance(value, (str, os.PathLike)):
            samples.append(_Sample((lambda p=value: load_image(p)), path=str(value)))
        elif isinstance(value, Image.Image):
            samples.append(_Sample((lambda v=value: v.convert("RGB")), path=str(name)))
        else:
            raise TypeError(f"{name}: expected a PIL image or an image path, got a {type(value).__name__}")
    return samples, []


def _open_path(path: Path) -> Any:
    from ..data.folders import from_path
    from ..data.voc import VOCAnnotations

    if path.is_dir() and (path / "Annotations").is_dir():
        return VOCAnnotations(path / "Annotations")
    if path.is_dir() and any(path.glob("*.xml")):
        return VOCAnnotations(path)
    return from_path(path)


def _boxes_for(samples: list[_Sample], boxes: Any) -> list[Sequence[float] | None]:
    """``boxes`` as one box per sample: an (N, 4) array, or a CSV file list / VOC folder matched by file name."""
    if isinstance(boxes, (str, os.PathLike)):
        source = _open_path(Path(boxes))
        by_name = {Path(p).name: b for (p, _), b in zip(source.samples, getattr(source, "boxes", []))}
        return [by_name.get(Path(s.path).name) for s in samples]
    array = np.asarray(boxes, dtype=np.float64)
    if array.shape != (len(samples), 4):
        raise ValueError(f"boxes must be shaped (N, 4) = ({len(samples)}, 4) as x0, y0, x1, y1, or a CSV / VOC path; got {array.shape}")
    return [None if np.isnan(row).any() else row.tolist() for row in array]


# ------------------------------------------------------------------------------------------ models


def _as_zoo_model(name: str, model: Any) -> Any:
    from ..models import zoo

    if isinstance(model, str):
        return zoo.load(model)
    if isinstance(model, zoo.ZooModel):
        return model
    if isinstance(model, torch.nn.Module):
        return zoo.ZooModel(name=name, model=model, classes=[], description=f"{type(model).__name__} (ImageNet preprocessing)")
    raise TypeError(f"model {name!r}: expected a zoo model, its name or an nn.Module, got a {type(model).__name__}")


def _view(preprocessing: Any, sample: _Sample, loaded: Any) -> tuple[torch.Tensor, Any]:
    """The model input ``(3, H, W)`` and the PIL image the sample's geometry is measured on."""
    from PIL import Image

    if isinstance(loaded, tuple):  # CleverHans.render: float pixels (H, W, 3), mask, box
        pixels, mask, box = loaded
        sample.mask, sample.box = mask, box
        height, width = pixels.shape[:2]
        image = Image.fromarray((pixels * 255).round().astype(np.uint8))
        if preprocessing.size == height == width and preprocessing.resize in (None, preprocessing.size):
            tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).unsqueeze(0)
            return preprocessing.normalize(tensor)[0], image
        return preprocessing(image)[0], image
    return preprocessing(loaded)[0], loaded


def _mask_in_frame(preprocessing: Any, mask: np.ndarray) -> np.ndarray:
    from PIL import Image

    image = Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255)
    if preprocessing.size == mask.shape[0] == mask.shape[1] and preprocessing.resize in (None, preprocessing.size):
        return np.asarray(mask, dtype=bool)
    return np.asarray(preprocessing.crop(image).convert("L")) >= 128


def _label_index(model_classes: list[str], data_classes: list[str]) -> np.ndarray | None:
    """For each data class, the model's class index (-1 when the model lacks it); ``None``: unknown mapping."""
    if not data_classes:
        return None
    if not model_classes:
        return np.arange(len(data_classes))
    index = {name: i for i, name in enumerate(model_classes)}
    return np.array([index.get(name, -1) for name in data_classes], dtype=np.int64)


# ------------------------------------------------------------------------------------------ results


@dataclass
class ModelComparison:
    """One model's numbers on the compared samples.

    ``predictions``/``targets``: class indices in the model's outputs; ``correct``: prediction equals the
    label (``None`` without labels); ``heatmaps``: ``(N, H, W)`` float32 in the model's frame;
    ``views``: the first samples as the model sees them (for the grid); ``morf``/``lerf``: region
    perturbation results; ``context``: :class:`ContextResult` (``None`` without boxes or masks);
    ``regions``: per region name the share of positive relevance in it, per sample; ``strategies``:
    per group (class index, or -1 for all samples without labels) the SpRAy count, eigenvalues and labels.
    """

    name: str
    description: str
    input_size: tuple[int, int]
    classes: list[str]
    predictions: np.ndarray
    targets: np.ndarray
    target_probability: np.ndarray
    correct: np.ndarray | None
    heatmaps: np.ndarray
    views: list[Any] = field(default_factory=list)
    morf: Any = None
    lerf: Any = None
    context: ContextResult | None = None
    regions: dict[str, np.ndarray] = field(default_factory=dict)
    strategies: dict[int, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def accuracy(self) -> float | None:
        return None if self.correct is None else float(self.correct.mean())

    def predicted_names(self) -> list[str]:
        return [self.classes[p] if 0 <= p < len(self.classes) else str(int(p)) for p in self.predictions]


@dataclass
class Comparison:
    """What :func:`compare` found: per model a :class:`ModelComparison`, and what relates them."""

    models: dict[str, ModelComparison]
    labels: np.ndarray
    classes: list[str]
    paths: list[str]
    tagged: np.ndarray | None
    shown: np.ndarray
    settings: dict[str, Any]

    @property
    def names(self) -> list[str]:
        return list(self.models)

    @property
    def has_labels(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels >= 0).all())

    def groups(self) -> dict[int, np.ndarray]:
        """Sample positions per class label (``{-1: all}`` without labels)."""
        if not self.has_labels:
            return {-1: np.arange(len(self.labels))}
        return {int(c): np.flatnonzero(self.labels == c) for c in np.unique(self.labels)}

    def group_name(self, group: int) -> str:
        if group < 0:
            return "all"
        return self.classes[group] if group < len(self.classes) else str(group)

    def accuracy_table(self) -> dict[str, dict[str, float | None]]:
        """``{model: {"all": accuracy, class name: accuracy}}`` (empty without labels)."""
        if not self.has_labels:
            return {}
        table = {}
        for name, model in self.models.items():
            if model.correct is None:
                continue
            row: dict[str, float | None] = {"all": model.accuracy}
            for group, members in self.groups().items():
                row[self.group_name(group)] = float(model.correct[members].mean()) if len(members) else None
            table[name] = row
        return table

    @property
    def agreement(self) -> dict[tuple[str, str], float | None]:
        """Share of samples on which two models predict the same class name (``None`` when neither model's
        classes contain the other's: their predictions do not answer the same question)."""
        out: dict[tuple[str, str], float | None] = {}
        names = self.names
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                ma, mb = self.models[a], self.models[b]
                ca, cb = set(ma.classes), set(mb.classes)
                if ca and cb and not (ca <= cb or cb <= ca):
                    out[(a, b)] = None
                    continue
                same = np.array(ma.predicted_names()) == np.array(mb.predicted_names())
                out[(a, b)] = float(same.mean())
        return out

    def context_table(self, measure: str = "outside_share") -> dict[str, dict[str, float | None]]:
        return context_table({n: m.context for n, m in self.models.items() if m.context is not None}, measure)

    def correlation(self, measure: str = "outside_share") -> dict[str, Any]:
        """Correlation of context use (``measure``) with accuracy across models and (model, class) pairs."""
        return context_accuracy_correlation(self.context_table(measure), self.accuracy_table())

    def region_share(self, model: str, region: str, members: Any = None) -> float | None:
        """Mean share of positive relevance in ``region`` over the selected samples (all by default)."""
        values = self.models[model].regions[region]
        values = values if members is None else values[np.asarray(members)]
        finite = values[np.isfinite(values)]
        return float(finite.mean()) if len(finite) else None

    def contingencies(self) -> dict[int, dict[tuple[str, str], Contingency]]:
        """Per group, for every pair of models with SpRAy labels there, their :class:`Contingency`."""
        out: dict[int, dict[tuple[str, str], Contingency]] = {}
        names = self.names
        for group in self.groups():
            tables = {}
            for i, a in enumerate(names):
                for b in names[i + 1 :]:
                    sa, sb = self.models[a].strategies.get(group), self.models[b].strategies.get(group)
                    if sa and sb and sa.get("labels") is not None and sb.get("labels") is not None:
                        tables[(a, b)] = contingency(sa["labels"], sb["labels"])
            out[group] = tables
        return out

    def to_dict(self) -> dict[str, Any]:
        """Every number, JSON-ready (pairs keyed ``"A vs B"``)."""
        groups = self.groups()
        models = {}
        accuracy_per_class = self.accuracy_table()
        for name, m in self.models.items():
            entry: dict[str, Any] = {
                "description": m.description,
                "input_size": list(m.input_size),
                "classes": m.classes if len(m.classes) <= 100 else f"{len(m.classes)} classes",
                "settings": m.settings,
                "accuracy": m.accuracy,
                "accuracy_per_class": accuracy_per_class.get(name),
                "predictions": m.predictions.tolist(),
                "predicted_names": m.predicted_names(),
                "targets": m.targets.tolist(),
                "target_probability": np.round(m.target_probability, 6).tolist(),
            }
            for order in ("morf", "lerf"):
                result = getattr(m, order)
                if result is not None:
                    entry[order] = {
                        "aopc": result.aopc,
                        "curve": result.curve.tolist(),
                        "aopc_per_image": result.aopc_per_image.tolist(),
                        "aopc_per_class": {
                            self.group_name(g): float(result.aopc_per_image[torch.as_tensor(members)].mean())
                            for g, members in groups.items() if len(members)
                        },
                        "region": result.region,
                        "steps": result.steps,
                    }
            if m.morf is not None and m.lerf is not None:
                entry["selectivity"] = m.morf.aopc - m.lerf.aopc
            if m.context is not None:
                entry["context"] = m.context.to_dict(arrays=True)
            if m.regions:
                entry["regions"] = {}
                for region, values in m.regions.items():
                    summary: dict[str, Any] = {
                        "all": self.region_share(name, region),
                        "per_class": {self.group_name(g): self.region_share(name, region, members) for g, members in groups.items()},
                        "per_sample": [None if not math.isfinite(v) else float(v) for v in values],
                    }
                    if self.tagged is not None and self.tagged.any():
                        summary["tagged"] = self.region_share(name, region, np.flatnonzero(self.tagged))
                        summary["untagged"] = self.region_share(name, region, np.flatnonzero(~self.tagged))
                    entry["regions"][region] = summary
            entry["strategies"] = {
                self.group_name(g): {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                for g, s in m.strategies.items()
            }
            models[name] = entry
        pairs = {}
        for (a, b), value in self.agreement.items():
            pairs[f"{a} vs {b}"] = {"agreement": value}
        for group, tables in self.contingencies().items():
            for (a, b), table in tables.items():
                pairs.setdefault(f"{a} vs {b}", {}).setdefault("strategies", {})[self.group_name(group)] = table.to_dict()
        out = {
            "settings": self.settings,
            "samples": len(self.labels),
            "classes": self.classes,
            "labels": self.labels.tolist(),
            "paths": self.paths,
            "shown": self.shown.tolist(),
            "models": models,
            "pairs": pairs,
        }
        if self.tagged is not None:
            out["tagged"] = self.tagged.astype(int).tolist()
        contexts = [m for m in self.models.values() if m.context is not None]
        if contexts:
            out["context_use"] = {measure: self.context_table(measure) for measure in MEASURES}
            out["context_accuracy_correlation"] = {measure: self.correlation(measure) for measure in MEASURES}
        from ..evaluate._common import to_list

        return to_list(out)  # NaN and infinities (e.g. a context ratio with nothing inside) become null


# ------------------------------------------------------------------------------------------ compare


def _batches(n: int, size: int) -> Iterator[np.ndarray]:
    for start in range(0, n, size):
        yield np.arange(start, min(n, start + size))


def _pick_shown(labels: np.ndarray, show: int, tagged: np.ndarray | None) -> np.ndarray:
    """Up to ``show`` samples for the grid, spread over the classes (tagged samples among them when known)."""
    n = len(labels)
    if show <= 0:
        return np.zeros(0, dtype=np.int64)
    if (labels < 0).any():
        return np.arange(min(n, show))
    chosen: list[int] = []
    if tagged is not None and tagged.any():
        chosen.extend(np.flatnonzero(tagged)[: max(1, show // 4)].tolist())
    classes = np.unique(labels)
    per_class = [np.setdiff1d(np.flatnonzero(labels == c), chosen) for c in classes]
    depth = 0
    while len(chosen) < min(show, n):
        added = False
        for members in per_class:
            if depth < len(members) and len(chosen) < show:
                chosen.append(int(members[depth]))
                added = True
        if not added:
            break
        depth += 1
    return np.array(sorted(chosen), dtype=np.int64)


def conductance(w: Any, labels: np.ndarray) -> np.ndarray:
    """Per cluster the share of its edge weight that leaves it: ``cut(A, not A) / vol(A)`` in the graph
    ``w`` (Kannan, Vempala and Vetta 2004); 0 for a cluster no edge leaves, near 1 for a random subset."""
    import scipy.sparse as sparse

    w = sparse.csr_matrix(w)
    degree = np.asarray(w.sum(1)).ravel()
    out = []
    for label in np.unique(labels):
        members = labels == label
        volume = degree[members].sum()
        inner = w[members][:, members].sum()
        out.append(float((volume - inner) / volume) if volume > 0 else 0.0)
    return np.array(out)


def count_strategies(
    heatmaps: Any, max_clusters: int = 8, separation: float = 0.05, *, seed: int = 0, **spray_options: Any
) -> dict[str, Any]:
    """How many distinct strategies SpRAy sees in one class's heatmaps.

    SpRAy (:func:`unmask.analyze.spray`) clusters the heatmaps into ``c = 2, 3, ...`` groups; ``c`` groups
    count as ``c`` strategies while every group is separated in SpRAy's kNN graph: at most ``separation``
    of its edge weight leaves it (:func:`conductance`). The count is the last ``c`` that passes, 1 when
    already the split in two does not (one homogeneous strategy). SpRAy's own eigengap suggestion, which
    never says 1, is reported beside it. ``spray_options`` (``size``, ``normalize``, ``k``, ...) go to
    :func:`unmask.analyze.spray`; the graph is built with the same ``size``, ``normalize`` and ``k``.
    """
    from .spray import affinity, default_k, eigengap_clusters, preprocess, spray

    maps = heatmaps.detach().cpu().numpy() if isinstance(heatmaps, torch.Tensor) else np.asarray(heatmaps)
    n = len(maps)
    if n < MIN_SPRAY_SAMPLES:
        return {"samples": n, "n_strategies": None, "note": f"SpRAy needs at least {MIN_SPRAY_SAMPLES} samples"}
    options = {"embedding": None, **spray_options}
    if "random_state" not in options:  # the deprecated name, passed on to spray (which warns)
        options.setdefault("seed", seed)
    k = options.get("k") or default_k(n)
    options["k"] = k
    w = affinity(preprocess(maps, size=options.get("size", 20), normalize=options.get("normalize")), k, seed=seed)
    top = int(min(max_clusters, n - 1))
    count, labels, separations = 1, np.zeros(n, dtype=np.int64), {}
    first = None
    for clusters in range(2, top + 1):
        result = spray(maps, clusters, max_clusters=max(2, min(top, n - 2)), **options)
        first = first or result
        leaving = float(conductance(w, result.labels).max())
        separations[clusters] = leaving
        if leaving > separation:
            break
        count, labels = clusters, result.labels
    eigenvalues = first.eigenvalues if first is not None else np.zeros(0)
    return {
        "samples": n,
        "n_strategies": int(count),
        "separation": separation,
        "max_conductance": {str(c): v for c, v in separations.items()},
        "eigengap_suggestion": int(eigengap_clusters(eigenvalues, max_clusters=max(2, top))) if len(eigenvalues) > 2 else None,
        "eigenvalues": np.round(eigenvalues, 8),
        "cluster_sizes": np.bincount(labels).tolist(),
        "labels": labels,
        "k": int(k),
    }


def compare(
    models: Mapping[str, Any],
    data: Any,
    method: str = "lrp.epsilon_plus_flat",
    boxes: Any = None,
    *,
    labels: Sequence[Any] | None = None,
    classes: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    target: str | None = None,
    regions: Mapping[str, Sequence[float]] | None = None,
    faithfulness: bool = True,
    grid: int = 8,
    region: int | None = None,
    steps: int | None = None,
    perturbation: str = "uniform",
    score: str = "probability",
    strategies: bool = True,
    max_clusters: int = 8,
    separation: float = 0.05,
    spray_options: Mapping[str, Any] | None = None,
    context_sign: str = "positive",
    show: int = 8,
    batch_size: int = 32,
    perturbation_batch_size: int | None = None,
    seed: int = 0,
    progress: Progress = False,
) -> Comparison:
    """Run every model on the same samples and measure how they differ (see the module docstring).

    ``models``: ``{name: zoo model, zoo name or nn.Module}`` (at least one; an ``nn.Module`` gets the
    ImageNet preprocessing at 224 x 224). ``data``: a :class:`~unmask.data.cleverhans.CleverHans` set,
    an :class:`~unmask.data.ImageFolder`, :class:`~unmask.data.FileList` (a CSV with ``x0, y0, x1, y1``
    gives boxes) or :class:`~unmask.data.voc.VOCAnnotations`, a path to one of them, or a list / dict
    of PIL images. ``boxes``: one box per sample in source pixels (``(N, 4)``) or a CSV file list / VOC
    folder whose boxes are matched by file name (masks of the CleverHans set win over boxes).
    ``labels``/``classes`` override the data's. ``target``: ``"label"`` (default when every sample has
    a label the models know) or ``"predicted"``. ``params``: the method's parameters (the ``*_box``
    LRP presets get each model's ``low``/``high``). ``regions``: fixed boxes in source pixels (e.g.
    ``{"tag": TAG_BOX}``) whose share of positive relevance is reported.

    Faithfulness (``faithfulness=False`` skips it): region perturbation with regions of ``region``
    pixels (default: ``ceil(side / grid)``, the same ``grid x grid`` cut for every input size), ``steps``
    (default: all regions), ``perturbation`` and ``score`` as in
    :func:`unmask.evaluate.region_perturbation`; the noise is drawn with ``seed`` per batch of
    ``batch_size`` samples, and the perturbed images go through a model ``perturbation_batch_size`` at a time
    (default: as many as hold 2^22 input values, at most 256: 256 at 32 x 32, 27 at 224 x 224).
    ``strategies=False`` skips SpRAy; ``max_clusters``, ``separation`` and ``spray_options`` go to
    :func:`count_strategies`.
    ``show`` samples are kept as each model sees them for the side-by-side grid. ``progress``: ``True``
    for a bar over the batches, or a callable given each batch done.
    """
    from .. import get_method
    from ..evaluate.perturbation import perturbation_curves

    if not models:
        raise ValueError("compare needs at least one model")
    if target is not None and target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS} or None, got {target!r}")
    for name, value in (("batch_size", batch_size), ("perturbation_batch_size", perturbation_batch_size or 1),
                        ("grid", grid), ("max_clusters", max_clusters)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0 < separation < 1:
        raise ValueError(f"separation must lie in (0, 1), got {separation!r}")
    get_method(method)  # validates the name
    nets = {str(name): _as_zoo_model(str(name), model) for name, model in models.items()}
    for name, net in nets.items():
        if net.model.training:
            raise ValueError(f"model {name!r} is in training mode; call .eval() first (compare does not change it)")
    source = _Source(data, labels, boxes, classes)
    n = len(source)
    data_classes = list(source.classes)
    mappings = {name: _label_index(list(net.classes), data_classes) for name, net in nets.items()}
    if target is None:
        usable = source.has_labels and all(m is not None and (m[source.labels] >= 0).all() for m in mappings.values())
        target = "label" if usable else "predicted"
    if target == "label":
        if not source.has_labels:
            raise ValueError("target='label' needs a label for every sample")
        for name, mapping in mappings.items():
            if mapping is None or (mapping[source.labels] < 0).any():
                raise ValueError(f"model {name!r} does not know every class of the data ({data_classes}); use target='predicted'")
    region_boxes = {str(k): [float(v) for v in box] for k, box in (regions or {}).items()}
    for key, box in region_boxes.items():
        if len(box) != 4:
            raise ValueError(f"region {key!r} must be x0, y0, x1, y1, got {box}")
    collected: dict[str, dict[str, list[Any]]] = {
        name: {k: [] for k in ("pred", "target", "prob", "maps", "scores_morf", "scores_lerf", "masks", "boxes", "views", "regions")}
        for name in nets
    }
    settings_per_model: dict[str, dict[str, Any]] = {}
    explainers: dict[str, Any] = {}
    labels_array = source.labels
    tagged = np.array([bool(s.tagged) for s in source.samples]) if source.samples[0].tagged is not None else None
    shown = _pick_shown(labels_array, show, tagged)
    shown_set = set(shown.tolist())
    with progress_bar(progress, -(-n // batch_size), "compare", "batch") as bar:
        for batch in _batches(n, batch_size):
            samples = [source.samples[i] for i in batch]
            loaded = [s.load() for s in samples]
            for name, net in nets.items():
                prep, device = net.preprocessing, net.device
                pairs = [_view(prep, s, item) for s, item in zip(samples, loaded)]
                x = torch.stack([p[0] for p in pairs]).to(device)
                images = [p[1] for p in pairs]
                if name not in explainers:  # built once per model (LRP traces and canonizes it here)
                    method_params = dict(params or {})
                    if method.endswith("_box"):
                        method_params.setdefault("low", net.low)
                        method_params.setdefault("high", net.high)
                    explainers[name] = get_method(method)(net.model, **method_params)
                wanted: Any = "predicted"
                if target == "label":
                    wanted = torch.as_tensor(mappings[name][labels_array[batch]], device=device)
                explanation = explainers[name].explain(x, target=wanted)
                output = explanation.output.detach().float()
                chosen = explanation.target.detach()
                probabilities = output.softmax(1)
                store = collected[name]
                store["pred"].append(output.argmax(1).cpu().numpy())
                store["target"].append(chosen.cpu().numpy())
                store["prob"].append(probabilities.gather(1, chosen.view(-1, 1)).squeeze(1).cpu().numpy())
                maps = explanation.relevance.detach().sum(1).float().cpu().numpy()
                store["maps"].append(maps)
                height, width = maps.shape[-2:]
                for s, image in zip(samples, images):
                    store["masks"].append(None if s.mask is None else _mask_in_frame(prep, s.mask))
                    store["boxes"].append(None if s.box is None else _scaled(s.box, image, prep))
                    store["regions"].append({k: _scaled(b, image, prep) for k, b in region_boxes.items()})
                for i, position in enumerate(batch):
                    if int(position) in shown_set:
                        store["views"].append((int(position), prep.denormalize(x[i : i + 1].detach().cpu())[0]))
                if faithfulness:
                    side = min(height, width)
                    size = region if region is not None else max(1, math.ceil(side / grid))
                    settings_per_model[name] = {"region": size, "steps": steps, "perturbation": perturbation, "score": score}
                    curves = perturbation_curves(
                        net.model, x, {"r": explanation}, chosen, orders=("morf", "lerf"), region=size, steps=steps,
                        perturbation=perturbation, score=score, low=net.low, high=net.high, seed=seed,
                        batch_size=perturbation_batch_size or min(256, max(1, 2**22 // x[0].numel())),
                    )["r"]
                    store["scores_morf"].append(curves["morf"])
                    store["scores_lerf"].append(curves["lerf"])
            bar.update()
    results: dict[str, ModelComparison] = {}
    for name, net in nets.items():
        store = collected[name]
        heatmaps = np.concatenate(store["maps"])
        predictions = np.concatenate(store["pred"])
        correct = None
        mapping = mappings[name]
        if source.has_labels and mapping is not None:
            correct = predictions == mapping[labels_array]
        morf = lerf = None
        if faithfulness:
            morf, lerf = (_joined(store[f"scores_{order}"]) for order in ("morf", "lerf"))
        context = None
        if any(m is not None for m in store["masks"]):
            masks = np.stack([m if m is not None else np.zeros(heatmaps.shape[-2:], bool) for m in store["masks"]])
            context = context_use(heatmaps, masks=masks, labels=labels_array, sign=context_sign, classes=data_classes)
        elif any(b is not None for b in store["boxes"]):
            box_array = np.array([b if b is not None else [np.nan] * 4 for b in store["boxes"]], dtype=np.float64)
            context = context_use(heatmaps, boxes=box_array, labels=labels_array, sign=context_sign, classes=data_classes)
        region_shares = {}
        for key in region_boxes:
            inside = np.array([_box_sum(h, r[key]) for h, r in zip(heatmaps, store["regions"])])
            total = np.maximum(heatmaps, 0).reshape(n, -1).sum(1)
            with np.errstate(divide="ignore", invalid="ignore"):
                region_shares[key] = np.where(total > 0, inside / np.where(total > 0, total, 1), np.nan)
        views = [view for _, view in sorted(store["views"], key=lambda item: item[0])]
        results[name] = ModelComparison(
            name=name,
            description=net.description,
            input_size=tuple(heatmaps.shape[-2:]),
            classes=list(net.classes),
            predictions=predictions,
            targets=np.concatenate(store["target"]),
            target_probability=np.concatenate(store["prob"]),
            correct=correct,
            heatmaps=heatmaps,
            views=views,
            morf=morf,
            lerf=lerf,
            context=context,
            regions=region_shares,
            settings=settings_per_model.get(name, {}),
        )
    comparison = Comparison(
        models=results,
        labels=labels_array,
        classes=data_classes,
        paths=[s.path for s in source.samples],
        tagged=tagged,
        shown=shown,
        settings={
            "method": method,
            "params": {k: v for k, v in (params or {}).items() if isinstance(v, (int, float, str, bool))},
            "target": target,
            "faithfulness": faithfulness,
            "grid": grid,
            "region": region,
            "steps": steps,
            "perturbation": perturbation,
            "score": score,
            "context_sign": context_sign,
            "max_clusters": max_clusters,
            "separation": separation,
            "regions": region_boxes,
            "batch_size": batch_size,
            "seed": seed,
        },
    )
    if strategies:
        for name, model in results.items():
            for group, members in comparison.groups().items():
                model.strategies[group] = count_strategies(
                    model.heatmaps[members], max_clusters, separation, seed=seed, **dict(spray_options or {})
                )
    return comparison


def _scaled(box: Sequence[float], image: Any, preprocessing: Any) -> list[float]:
    from ..data.folders import _scaled_box

    return _scaled_box(box, image, preprocessing)


def _box_sum(heatmap: np.ndarray, box: Sequence[float]) -> float:
    """Positive relevance of the pixels whose centres lie in ``box`` (x1, y1 exclusive)."""
    height, width = heatmap.shape
    ys = (np.arange(height) + 0.5)[:, None]
    xs = (np.arange(width) + 0.5)[None, :]
    x0, y0, x1, y1 = box
    inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    return float(np.maximum(heatmap, 0)[inside].sum())


def _joined(parts: list[Any]) -> Any:
    """One PerturbationResult from the per-batch ones (scores and targets concatenated)."""
    from dataclasses import replace

    first = parts[0]
    target = None if first.target is None else torch.cat([p.target.cpu() for p in parts])
    return replace(first, scores=torch.cat([p.scores for p in parts]), target=target)
