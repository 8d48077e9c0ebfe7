"""What the explorer shows, read from a store and SpRAy results: one file per URL of the app.

The app (``unmask/explore/static``) asks for a handful of paths, the same whether a server answers them
(:mod:`unmask.explore.server`) or they were written as files (:func:`Explorer.write_static`):

    data/meta.json                 stores (settings, classes), analyses (eigenvalues, clusters, class)
    data/s<k>/samples.bin          store k: int32 index, label, prediction of every sample (3 x N, little endian)
    data/s<k>/rows/<b>.json        store k: per-sample details of the indices in [256 b, 256 b + 256)
    data/a<k>/points.bin           analysis k: float32 x, y (2-D embedding) and int32 cluster, index (4 x N)
    img/s<k>/<index>/<kind>.png    store k, data set index: kind in input, heatmap, overlay

Relevance share (the ``share`` of a row): with boxes or masks in the store, the share of the positive
relevance inside the object, ``R+_in / (R+_in + R+_out)`` (:mod:`unmask.analyze.context`); otherwise the
positive share of the relevance, ``sum(R+) / sum(|R|)``.
"""
from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .._io import json_safe
from .._utils.progress import Progress, progress_bar

__all__ = ["Analysis", "ExploreError", "Explorer", "ROW_BLOCK", "IMAGE_KINDS"]

ROW_BLOCK = 256
IMAGE_KINDS = ("input", "heatmap", "overlay")
_MIN_IMAGE_SIDE = 64  # smaller pictures (32 x 32 inputs, 20 x 20 pooled relevance) are enlarged, pixels kept sharp


class ExploreError(ValueError):
    """A store or SpRAy result cannot be shown: the message names the file and what to do."""


def _finite(value: Any, digits: int = 6) -> float | None:
    """``value`` rounded to ``digits`` decimals (the browser needs no more); NaN and infinities as ``None``."""
    return json_safe(round(float(value), digits))


@dataclass
class Analysis:
    """One SpRAy result (``spray.json`` of ``unmask spray --out``) and the store it was made from."""

    path: Path
    store: int
    data: dict[str, Any]
    x: np.ndarray
    y: np.ndarray
    clusters: np.ndarray
    indices: np.ndarray

    def describe(self, number: int) -> dict[str, Any]:
        data = self.data
        sizes = {int(c["label"]): int(c["size"]) for c in data.get("clusters", [])}
        noise = int((self.clusters < 0).sum())
        if noise:
            sizes[-1] = noise
        return {
            "id": number,
            "name": (self.path.parent if self.path.is_file() else self.path).resolve().name,  # the folder, also for .../spray.json
            "path": str(self.path),
            "store": self.store,
            "class": data.get("class"),
            "selection": data.get("selection"),
            "method": data.get("method"),
            "model": data.get("model"),
            "n_samples": int(len(self.indices)),
            "n_clusters": data.get("n_clusters"),
            "suggested_n_clusters": data.get("suggested_n_clusters"),
            "eigenvalues": [_finite(v) for v in data.get("eigenvalues", [])],
            "eigengap": data.get("eigengap"),
            "clusters": [{"label": label, "size": size} for label, size in sorted(sizes.items())],
            "embedding": (data.get("settings") or {}).get("embedding"),
            "has_embedding": bool(data.get("embedding") is not None),
            "truth": data.get("truth"),
            "scores": data.get("scores"),
        }

    def points(self) -> bytes:
        """float32 x, y then int32 cluster, index: what the scatter draws."""
        return b"".join(
            np.ascontiguousarray(a, dtype=dtype).astype(dtype.newbyteorder("<")).tobytes()
            for a, dtype in ((self.x, np.dtype(np.float32)), (self.y, np.dtype(np.float32)),
                             (self.clusters, np.dtype(np.int32)), (self.indices, np.dtype(np.int32)))
        )


def load_analysis(path: str | Path) -> dict[str, Any]:
    """The ``spray.json`` of a folder written by ``unmask spray --out`` (or the file itself)."""
    path = Path(path)
    file = path / "spray.json" if path.is_dir() else path
    if not file.is_file():
        raise ExploreError(f"{path}: not a SpRAy result (no spray.json); make one with 'unmask spray STORE --out DIR'")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ExploreError(f"{file}: cannot be read ({error})") from None
    if not isinstance(data, dict) or "labels" not in data or "indices" not in data:
        raise ExploreError(f"{file}: not a SpRAy result with per-sample labels and indices")
    return data


@dataclass
class _StoreView:
    """A store and what the explorer derives from it (input images, shares), computed once per block."""

    store: Any
    image: Callable[[int], Any] | None
    positions: dict[int, int] = field(default_factory=dict)
    rows: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def describe(self, number: int) -> dict[str, Any]:
        store = self.store
        settings = store.settings
        with_object = "box" in store.fields or "mask" in store.fields
        return {
            "id": number,
            "path": str(store.path),
            "name": store.path.name,
            "size": store.size,
            "count": len(store),
            "model": settings.get("model"),
            "method": settings.get("method"),
            "relevance": settings.get("relevance"),
            "classes": store.classes,
            "has_images": self.image is not None,
            "share": "positive relevance inside the object" if with_object else "positive share of |relevance|",
            "extra": store.extra_fields,
        }


class Explorer:
    """The data of one explorer session: stores and SpRAy results, answered per app path.

    >>> explorer = Explorer(["runs/ch"], ["runs/ch-spray"])
    >>> explorer.get("data/meta.json")          # (content type, bytes), or None for an unknown path
    """

    def __init__(self, stores: Sequence[str | Path], analyses: Sequence[str | Path] = ()) -> None:
        from ..store import StoreError, open_store

        self._views: list[_StoreView] = []
        self._store_paths: dict[Path, int] = {}
        for path in stores:
            self._add_store(path, open_store, StoreError)
        if not self._views:
            raise ExploreError("no store given: name a store written by 'unmask attribute'")
        self.analyses: list[Analysis] = []
        for path in analyses:
            data = load_analysis(path)
            store = self._store_of(Path(path), data, open_store, StoreError)
            try:
                self.analyses.append(self._analysis(Path(path), store, data))
            except ExploreError:
                raise
            except (ValueError, TypeError) as error:  # labels, indices or embedding of the wrong type or shape
                raise ExploreError(f"{path}: not a readable SpRAy result ({error})") from None
        self._cache: dict[str, bytes] = {}
        self._cache_lock = threading.Lock()

    # ------------------------------------------------------------------ opening
    def _add_store(self, path: str | Path, open_store: Any, store_error: Any) -> int:
        key = Path(path).resolve()
        if key in self._store_paths:
            return self._store_paths[key]
        try:
            store = open_store(path)
        except store_error as error:
            raise ExploreError(str(error)) from None
        if len(store) == 0:
            raise ExploreError(f"{path} holds no samples yet; run 'unmask attribute' first")
        from ..cli.spray import _images

        try:
            image = _images(store)
            if image is not None and image(int(store.indices[0])) is None:  # paths that are not on this machine
                image = None
        except Exception:  # noqa: BLE001 - no input pictures, the heatmaps are still shown
            image = None
        view = _StoreView(store, image, {int(i): p for p, i in enumerate(store.indices)})
        self._views.append(view)
        self._store_paths[key] = len(self._views) - 1
        return len(self._views) - 1

    def _store_of(self, path: Path, data: dict[str, Any], open_store: Any, store_error: Any) -> int:
        """The store a SpRAy result was made from: the one it names if it is open or can be found, else the
        first store, if that one was made with the same method."""
        candidates = [data.get("store_path"), data.get("store")]
        base = path if path.is_dir() else path.parent
        for name in [c for c in candidates if c]:
            for where in (Path(name), base / name, base.parent / Path(name).name):
                if where.exists():
                    return self._add_store(where, open_store, store_error)
        first = self._views[0].store
        made_with, shown_with = data.get("method"), first.settings.get("method")
        if made_with and shown_with and made_with != shown_with:  # its store is gone, and the first is another
            raise ExploreError(f"{path}: made from a store of method {made_with} (not found: {data.get('store')}), "
                               f"but {first.path} holds {shown_with}; give the store the analysis was made from")
        return 0

    def _analysis(self, path: Path, store: int, data: dict[str, Any]) -> Analysis:
        labels = np.asarray(data["labels"], dtype=np.int64)
        indices = np.asarray(data["indices"], dtype=np.int64)
        if labels.shape != indices.shape:
            raise ExploreError(f"{path}: {len(labels)} cluster labels for {len(indices)} indices")
        missing = indices[~np.isin(indices, np.asarray(self._views[store].store.indices))]
        if len(missing):
            raise ExploreError(
                f"{path}: data set index {missing[0]} (and {len(missing) - 1} more) is not in the store "
                f"{self._views[store].store.path}; give the store the analysis was made from"
            )
        embedding = data.get("embedding")
        if embedding is not None:
            coords = np.asarray(embedding, dtype=np.float64).reshape(len(indices), -1)
            if coords.shape[1] < 2:
                raise ExploreError(f"{path}: the embedding has {coords.shape[1]} dimension(s), not 2")
            x, y = coords[:, 0], coords[:, 1]
        else:  # no 2-D embedding was made (--embedding none): clusters side by side, members on a spiral
            x, y = _placeholder_layout(labels)
        return Analysis(path, store, data, x.astype(np.float32), y.astype(np.float32), labels, indices)

    # ------------------------------------------------------------------ answers
    @property
    def stores(self) -> list[Any]:
        return [view.store for view in self._views]

    def meta(self) -> dict[str, Any]:
        from .. import __version__

        return {
            "unmask_version": __version__,
            "row_block": ROW_BLOCK,
            "stores": [view.describe(k) for k, view in enumerate(self._views)],
            "analyses": [analysis.describe(k) for k, analysis in enumerate(self.analyses)],
        }

    def samples(self, store: int) -> bytes:
        s = self._views[store].store
        return b"".join(np.asarray(a, dtype="<i4").tobytes() for a in (s.indices, s.labels, s.predictions))

    def rows(self, store: int, block: int) -> list[dict[str, Any]]:
        """Details of the samples with data set indices in ``[ROW_BLOCK * block, ROW_BLOCK * (block + 1))``."""
        view = self._views[store]
        with view.lock:
            if block in view.rows:
                return view.rows[block]
            s = view.store
            wanted = [view.positions[i] for i in range(block * ROW_BLOCK, (block + 1) * ROW_BLOCK) if i in view.positions]
            rows: list[dict[str, Any]] = []
            if wanted:
                positions = np.asarray(wanted)
                shares = _shares(s, positions)
                classes = s.classes
                fields = {name: s.field(name)[positions] for name in ("index", "label", "prediction", "target", "target_logit", "target_probability", "path")}
                extras = {name: s.extra(name)[positions] for name in s.extra_fields}
                for row in range(len(positions)):
                    rows.append({
                        "index": int(fields["index"][row]),
                        "label": int(fields["label"][row]),
                        "prediction": int(fields["prediction"][row]),
                        "target": int(fields["target"][row]),
                        "label_name": _name(classes, fields["label"][row]),
                        "prediction_name": _name(classes, fields["prediction"][row]),
                        "logit": _finite(fields["target_logit"][row]),
                        "probability": _finite(fields["target_probability"][row]),
                        "share": _finite(shares[row], 4),
                        "path": str(fields["path"][row]),
                        "extra": {name: _finite(values[row]) for name, values in extras.items()},
                    })
            if rows:  # a block of no sample is not kept: requests for made-up blocks cannot fill the memory
                view.rows[block] = rows
            return rows

    def picture(self, store: int, index: int, kind: str) -> bytes | None:
        """The PNG of one sample: its input, its heatmap or the heatmap over the input (None: no such picture)."""
        from .. import viz

        view = self._views[store]
        position = view.positions.get(index)
        if position is None or kind not in IMAGE_KINDS:
            return None
        image = None
        if kind != "heatmap" and view.image is not None:
            try:
                image = view.image(index)
            except Exception:  # noqa: BLE001 - a missing or unreadable file: no picture
                image = None
            if image is None:
                return None
        elif kind != "heatmap":
            return None
        if kind == "input":
            picture = viz.to_image(image)
        else:
            relevance = np.nan_to_num(view.store.read("relevance", [position])[0], nan=0.0, posinf=0.0, neginf=0.0)
            heat = relevance.sum(0) if relevance.ndim == 3 else relevance
            if kind == "heatmap":
                picture = viz.heatmap(heat, **viz.HEATMAP_STYLE)
            else:
                picture = viz.overlay(image, heat, **viz.OVERLAY_STYLE)
        side = max(picture.size)
        if side < _MIN_IMAGE_SIDE:
            from PIL import Image

            scale = math.ceil(_MIN_IMAGE_SIDE / side)
            picture = picture.resize((picture.size[0] * scale, picture.size[1] * scale), Image.NEAREST)
        buffer = BytesIO()
        picture.save(buffer, format="PNG")
        return buffer.getvalue()

    def get(self, path: str) -> tuple[str, bytes] | None:
        """Content type and body for an app path (see the module docstring), or None when there is none."""
        import re

        if path == "data/meta.json":
            return "application/json", _json(self.meta())
        if match := re.fullmatch(r"data/s([0-9]{1,10})/samples\.bin", path):
            k = int(match.group(1))
            return None if k >= len(self._views) else ("application/octet-stream", self._cached(path, lambda: self.samples(k)))
        if match := re.fullmatch(r"data/s([0-9]{1,10})/rows/([0-9]{1,10})\.json", path):
            k, block = int(match.group(1)), int(match.group(2))
            return None if k >= len(self._views) else ("application/json", _json(self.rows(k, block)))
        if match := re.fullmatch(r"data/a([0-9]{1,10})/points\.bin", path):
            k = int(match.group(1))
            return None if k >= len(self.analyses) else ("application/octet-stream", self._cached(path, self.analyses[k].points))
        if match := re.fullmatch(r"img/s([0-9]{1,10})/([0-9]{1,10})/(input|heatmap|overlay)\.png", path):
            k, index, kind = int(match.group(1)), int(match.group(2)), match.group(3)
            if k >= len(self._views):
                return None
            body = self.picture(k, index, kind)
            return None if body is None else ("image/png", body)
        return None

    def _cached(self, key: str, make: Callable[[], bytes]) -> bytes:
        with self._cache_lock:
            if key not in self._cache:
                self._cache[key] = make()
            return self._cache[key]

    # ------------------------------------------------------------------ static copy
    def write_static(self, folder: str | Path, progress: Progress = False) -> Path:
        """Write the app and every file it asks for under ``folder`` (host it with any static web server).

        ``folder`` must be new, empty or an earlier copy written here (it has ``index.html`` and
        ``data/meta.json``): the files of any other folder are never overwritten.
        """
        from .._io import write_bytes
        from .static import files as app_files

        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise ExploreError(f"{folder}: a file, not a folder; give a new or empty folder to --static")
        earlier_copy = (folder / "index.html").is_file() and (folder / "data" / "meta.json").is_file()
        if folder.is_dir() and any(folder.iterdir()) and not earlier_copy:
            raise ExploreError(f"{folder}: a folder with other files in it; give a new or empty folder to --static "
                               "(nothing was written)")
        for name, body in app_files().items():
            write_bytes(folder / name, body)
        paths = ["data/meta.json"]
        paths += [f"data/a{k}/points.bin" for k in range(len(self.analyses))]
        shown: dict[int, set[int]] = {k: set() for k in range(len(self._views))}
        for analysis in self.analyses:
            shown[analysis.store].update(int(i) for i in analysis.indices)
        for k, view in enumerate(self._views):
            paths.append(f"data/s{k}/samples.bin")
            indices = sorted(view.positions) if not shown[k] else sorted(shown[k])
            paths += [f"data/s{k}/rows/{b}.json" for b in sorted({i // ROW_BLOCK for i in view.positions})]
            paths += [f"img/s{k}/{i}/{kind}.png" for i in indices for kind in IMAGE_KINDS]
        bar = progress_bar(progress, len(paths), unit="file")
        for path in paths:
            answer = self.get(path)
            if answer is not None:
                write_bytes(folder / path, answer[1])
            bar.update(1)
        bar.close()
        return folder / "index.html"


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _name(classes: list[str], value: Any) -> str | None:
    value = int(value)
    return str(classes[value]) if 0 <= value < len(classes) else None


def _shares(store: Any, positions: np.ndarray) -> np.ndarray:
    """The relevance share of each sample at ``positions`` (see the module docstring)."""
    if "box" in store.fields or "mask" in store.fields:
        from ..analyze.context import context_use

        return 1.0 - context_use(store, select=positions).outside_share
    out = np.empty(len(positions))
    for at, (_, values) in zip(range(0, len(positions), 256), store.iter_relevance(positions, chunk=256)):
        flat = values.reshape(len(values), -1).astype(np.float64)
        total = np.abs(flat).sum(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[at : at + len(values)] = np.where(total > 0, np.clip(flat, 0, None).sum(1) / np.where(total > 0, total, 1), np.nan)
    return out


def _placeholder_layout(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clusters in a row, each a sunflower spiral of its members (for results without a 2-D embedding)."""
    x = np.zeros(len(labels))
    y = np.zeros(len(labels))
    for column, label in enumerate(np.unique(labels)):
        members = np.flatnonzero(labels == label)
        j = np.arange(len(members))
        radius = np.sqrt(j + 0.5) / math.sqrt(max(len(members), 1))
        angle = j * math.pi * (3 - math.sqrt(5))
        x[members] = 2.5 * column + radius * np.cos(angle)
        y[members] = radius * np.sin(angle)
    return x, y
