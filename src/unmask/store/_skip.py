"""Skipping samples that cannot be loaded (``attribute(..., skip_bad=True)``) instead of losing the run.

A skipped sample keeps its row in its shard, so shards stay dense and resumable: ``prediction`` and
``target`` are -1 (a real sample never has that), relevance, logit and probability are NaN, the path and
the reason go to the shard's ``skipped`` attribute. Readers find them with ``Store.skipped``. Samples whose
relevance came out NaN or infinite are kept as computed and listed in ``non_finite`` (``Store.non_finite``).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ._format import StoreError

#: What a damaged or unreadable sample raises while it is loaded (ImageLoadError is a ValueError).
LOAD_ERRORS = (OSError, ValueError, SyntaxError)


@dataclass(frozen=True)
class Skipped:
    """A sample whose loading failed: its index, where it came from and why."""

    index: int
    path: str
    error: str


class Tolerant:
    """``dataset`` whose items that fail to load come back as :class:`Skipped` instead of raising."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        for name in ("classes", "describe"):
            if hasattr(dataset, name):
                setattr(self, name, getattr(dataset, name))

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except LOAD_ERRORS as error:
            if isinstance(error, StoreError):
                raise
            return Skipped(int(index), str(getattr(error, "path", "") or ""), " ".join(str(error).split()) or type(error).__name__)


def first_loadable(dataset: Any, order: range) -> tuple[Any, int]:
    """The first item in ``order`` that is not :class:`Skipped`, and its index."""
    for index in order:
        item = dataset[index]
        if not isinstance(item, Skipped):
            return item, index
    raise StoreError("no sample of the data set could be loaded (all were skipped)")


def explain_tolerant(explain: Callable[[list[Any], int], dict[str, Any]], raw: list[Any], first_index: int,
                     rel_shape: tuple[int, ...], fields: dict[str, Any]) -> dict[str, Any]:
    """Rows for ``raw``: ``explain(items, first_index)`` on the loadable items, placeholder rows for the skipped."""
    good = [j for j, item in enumerate(raw) if not isinstance(item, Skipped)]
    if len(good) == len(raw):
        return _flag_non_finite(explain(raw, first_index))
    n = len(raw)
    rows: dict[str, Any] = {
        "index": np.arange(first_index, first_index + n, dtype=np.int64),
        "relevance": np.full((n, *rel_shape), np.nan, np.float32),
        "prediction": np.full(n, -1, np.int64),
        "target": np.full(n, -1, np.int64),
        "target_logit": np.full(n, np.nan, np.float32),
        "target_probability": np.full(n, np.nan, np.float32),
        "label": np.full(n, -1, np.int64),
        "path": [item.path if isinstance(item, Skipped) else "" for item in raw],
        "logits": None,
        "extra": {name: np.full(n, np.nan) for name in fields.get("extra", [])},
        "skipped": [{"index": item.index, "path": item.path, "error": item.error} for item in raw if isinstance(item, Skipped)],
    }
    if "box" in fields:
        rows["box"] = np.full((n, 4), np.nan, np.float32)
    if "mask" in fields:
        rows["mask"] = np.zeros((n, *fields["mask"]), np.uint8)
    if good:
        done = explain([raw[j] for j in good], first_index + good[0])
        for key in ("relevance", "prediction", "target", "target_logit", "target_probability", "label", "box", "mask"):
            if key in rows:
                rows[key][good] = done[key]
        for j, path in zip(good, done["path"]):
            rows["path"][j] = path
        for name, values in done["extra"].items():
            rows["extra"][name][good] = values
        logits = np.full((n, done["logits"].shape[1]), np.nan, np.float32)
        logits[good] = done["logits"]
        rows["logits"] = logits
        rows["non_finite"] = [int(rows["index"][good[j]]) for j in _non_finite_rows(done["relevance"])]
    return rows


def _non_finite_rows(relevance: np.ndarray) -> list[int]:
    return np.flatnonzero(~np.isfinite(relevance.reshape(len(relevance), -1)).all(1)).tolist()


def _flag_non_finite(rows: dict[str, Any]) -> dict[str, Any]:
    """Note the samples whose relevance holds NaN or Inf (kept as computed, but listed)."""
    rows["non_finite"] = [int(rows["index"][j]) for j in _non_finite_rows(rows["relevance"])]
    return rows


def record_skipped(handle: Any, skipped: list[dict[str, Any]], non_finite: list[int] | None = None) -> None:
    """Keep the skipped samples of a shard in its ``skipped`` attribute (JSON), and the indices of samples
    whose relevance is not finite in ``non_finite``."""
    if skipped:
        handle.attrs["skipped"] = json.dumps(skipped)
    if non_finite:
        handle.attrs["non_finite"] = json.dumps(non_finite)
