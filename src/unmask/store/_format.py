"""The on-disk layout of a results store, and the reader for it.

Why HDF5 (h5py) and not zarr: a store is written by a process that may be killed at any moment and read
by tools that are not Python (HDF5 reads in MATLAB, Julia, R, ``h5dump``; CoRelAy and ViRelAy, the peers
for SpRAy, exchange HDF5 too). HDF5 keeps one shard in one file, so a shard can be written to a temporary
file and moved into place with a single ``os.replace``: a shard on disk is complete or absent, never
half-written, which is what makes the store resumable after ``kill -9`` without a journal. zarr would
spread every array of a shard over many chunk files, so "complete" would need a separate commit marker
and a directory rename, and its on-disk format changed between zarr 2 and 3. HDF5's weakness, a file
left corrupt when a writer dies inside it, never applies here: a writer only ever writes its own
temporary file. h5py is mature, ships wheels with HDF5 included, and reads slices lazily, so memory
stays bounded when a store holds more than fits in memory.

Layout of a store folder (``STORE``)::

    STORE/store.json                     what the store holds: size, shard size, settings, fields
    STORE/shards/00000000-00000256.h5    one complete shard: samples [0, 256)
    STORE/shards/.00000256-...h5.<id>.tmp  a shard being written (ignored by readers, removed on resume)

Every shard file holds the same datasets, one row per sample, in index order:

    index         int64            the sample's index in the data set
    relevance     float32 (...)    full (C, H, W), summed over channels (H, W), or pooled (P, P)
    prediction    int64            arg-max class of the model's output
    target        int64            the explained class
    target_logit  float32          the model's output for the explained class (the explained logit)
    target_probability float32     its softmax probability
    label         int64            the data set's label (-1 when it has none)
    path          str (UTF-8)      where the sample came from
    logits        float32 (K)      the whole output (only with ``save_logits``)
    box           float32 (4)      x0, y0, x1, y1 in input pixels (only when the data set gives boxes; NaN if none)
    mask          uint8 (H, W)     object mask (only when the data set gives masks)
    extra/<name>  float64          any other numeric value the data set gives per sample (e.g. ground truth)

A merged store is one HDF5 file with the same datasets at its root over all samples and the contents of
``store.json`` in the root attribute ``unmask_store``. :func:`open_store` reads both kinds the same way.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

FORMAT = "unmask.store"
VERSION = 1
MANIFEST = "store.json"
SHARDS = "shards"
_SHARD_RE = re.compile(r"^(\d{8,})-(\d{8,})\.h5$")

#: Fields every store has (one value per sample), besides ``relevance`` and ``path``.
SCALAR_FIELDS = ("index", "prediction", "target", "target_logit", "target_probability", "label")


def _column(name: str, doc: str) -> property:
    """A read-only property giving the per-sample field ``name`` (``Store.field(name)``)."""
    return property(lambda self: self.field(name), doc=doc)


class StoreError(ValueError):
    """A store cannot be used as asked: the message names the store and says what to do."""


def _h5py() -> Any:
    try:
        import h5py
    except ImportError:
        raise ImportError("the results store needs h5py: pip install 'unmask[analyze]' (or h5py)") from None
    return h5py


def shard_name(start: int, stop: int) -> str:
    return f"{start:08d}-{stop:08d}.h5"


def parse_shard_name(name: str) -> tuple[int, int] | None:
    match = _SHARD_RE.match(name)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2))


def shard_ranges(size: int, shard_size: int) -> list[tuple[int, int]]:
    """The fixed sample ranges of a store: ``[0, s), [s, 2s), ...``."""
    return [(start, min(start + shard_size, size)) for start in range(0, size, shard_size)]


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StoreError(f"{folder}: not a results store (no {MANIFEST}); make one with 'unmask attribute'") from None
    except (OSError, json.JSONDecodeError) as error:
        raise StoreError(f"{path}: cannot be read ({error})") from None
    if manifest.get("format") != FORMAT:
        raise StoreError(f"{path}: not an unmask results store manifest")
    if manifest.get("version", 0) > VERSION:
        raise StoreError(f"{path}: written by a newer unmask (store version {manifest['version']}); upgrade unmask")
    return manifest


@dataclass(frozen=True)
class _Part:
    """One HDF5 file holding samples ``[start, stop)`` of the store."""

    path: Path
    start: int
    stop: int

    @property
    def count(self) -> int:
        return self.stop - self.start


class Store:
    """A results store opened for reading: per-sample relevance, predictions, labels and paths.

    Samples are presented in index order. A complete store holds every index ``0 .. size - 1``; an
    incomplete one (a run still going, or killed) holds the finished shards only: ``len(store)`` counts
    what is there and :attr:`indices` says which. Scalar fields are small and read whole; relevance is
    read in slices (:meth:`relevance`, :meth:`iter_relevance`, :meth:`heatmaps`) so memory stays bounded.

    >>> store = unmask.store.open_store("runs/cleverhans")
    >>> store.labels[:5], store.relevance([0, 1]).shape
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            self.manifest = read_manifest(self.path)
            parts = []
            for file in sorted((self.path / SHARDS).glob("*.h5")):
                span = parse_shard_name(file.name)
                if span is not None:
                    parts.append(_Part(file, *span))
            self.merged = False
        elif self.path.is_file():
            h5py = _h5py()
            try:
                with h5py.File(self.path, "r") as handle:
                    raw = handle.attrs.get("unmask_store")
                    count = int(handle["index"].shape[0]) if "index" in handle else 0
            except OSError as error:
                raise StoreError(f"{self.path}: not an HDF5 file ({error})") from None
            if raw is None:
                raise StoreError(f"{self.path}: an HDF5 file but not an unmask results store")
            self.manifest = json.loads(raw)
            parts = [_Part(self.path, 0, count)] if count else []
            self.merged = True
        else:
            raise StoreError(f"{self.path}: no such store (a folder written by 'unmask attribute' or a merged .h5 file)")
        parts.sort(key=lambda p: p.start)
        for a, b in zip(parts, parts[1:]):
            if b.start < a.stop:
                raise StoreError(f"{self.path}: shards {a.path.name} and {b.path.name} overlap")
        self._parts = parts
        self._cache: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ description
    @property
    def size(self) -> int:
        """How many samples the data set has (all of them once the store is complete)."""
        return int(self.manifest["size"])

    @property
    def settings(self) -> dict[str, Any]:
        """Model, method, parameters, target and relevance format the store was made with."""
        return dict(self.manifest.get("settings", {}))

    @property
    def fields(self) -> dict[str, Any]:
        """Per-sample fields and their shapes: ``{"relevance": [20, 20], "box": [4], ...}``."""
        return dict(self.manifest.get("fields", {}))

    @property
    def extra_fields(self) -> list[str]:
        """Names of the data set's extra per-sample values (``store.extra(name)``)."""
        return list(self.manifest.get("fields", {}).get("extra", []))

    @property
    def relevance_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest["fields"]["relevance"])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.manifest.get("fields", {}).get("input", ()))

    @property
    def classes(self) -> list[str]:
        return list(self.settings.get("classes") or [])

    @property
    def skipped(self) -> list[dict[str, Any]]:
        """Samples that could not be loaded (``attribute(..., skip_bad=True)``): ``{"index", "path", "error"}``."""
        return self._listed("skipped")

    @property
    def non_finite(self) -> list[int]:
        """Indices of samples whose relevance holds NaN or infinite values (as the method computed it)."""
        return self._listed("non_finite")

    def _listed(self, key: str) -> list[Any]:
        """The JSON list ``key`` of the merged file's manifest, or of every shard's attributes joined."""
        if self.merged:
            return list(self.manifest.get(key, []))
        h5py = _h5py()
        found: list[Any] = []
        for part in self._parts:
            with h5py.File(part.path, "r") as handle:
                found.extend(json.loads(handle.attrs.get(key, "[]")))
        return found

    @property
    def label_classes(self) -> list[str]:
        """Names of the data set's labels: its own (e.g. the class folders) when it has them, else :attr:`classes`."""
        dataset = self.settings.get("dataset")
        own = dataset.get("classes") if isinstance(dataset, dict) else None
        return list(own) if isinstance(own, list) and own else self.classes

    def __len__(self) -> int:
        return sum(p.count for p in self._parts)

    @property
    def complete(self) -> bool:
        return len(self) == self.size

    def missing(self) -> list[tuple[int, int]]:
        """Index ranges not in the store yet."""
        spans = [(p.start, p.stop) for p in self._parts]
        if self.merged:  # a merged file made with allow_incomplete: its rows are not indices
            present = np.zeros(self.size, bool)
            present[self.indices] = True
            edges = np.flatnonzero(np.diff(np.concatenate([[1], present.astype(np.int8), [1]])))
            return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2])]
        gaps, at = [], 0
        for start, stop in spans:
            if start > at:
                gaps.append((at, start))
            at = stop
        if at < self.size:
            gaps.append((at, self.size))
        return gaps

    def __repr__(self) -> str:
        settings = self.settings
        return (
            f"Store({str(self.path)!r}: {len(self)}/{self.size} samples, method={settings.get('method')!r}, "
            f"model={settings.get('model')!r}, relevance {self.relevance_shape})"
        )

    # ------------------------------------------------------------------ fields
    def field(self, name: str) -> np.ndarray:
        """A per-sample field for every sample present, in index order (read whole; cached)."""
        if name == "relevance":
            raise StoreError("relevance is read in slices: use store.relevance(indices) or store.iter_relevance()")
        if name not in self._cache:
            if name != "index" and name not in SCALAR_FIELDS and name not in ("path", "logits", "box", "mask") and not name.startswith("extra/"):
                raise StoreError(f"{self.path}: no field {name!r}; fields: {', '.join(self.available_fields())}")
            arrays = [self._read(part, name) for part in self._parts]
            if not arrays:
                shape = tuple(self.fields.get(name, ()))
                value = np.zeros((0, *shape))
            else:
                value = np.concatenate(arrays)
            if name == "path":
                value = np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value], dtype=object)
            self._cache[name] = value
        return self._cache[name]

    def available_fields(self) -> list[str]:
        names = list(SCALAR_FIELDS) + ["path", "relevance"]
        fields = self.fields
        names += [n for n in ("logits", "box", "mask") if n in fields]
        names += [f"extra/{n}" for n in fields.get("extra", [])]
        return names

    def _read(self, part: _Part, name: str, rows: slice | np.ndarray | None = None) -> np.ndarray:
        h5py = _h5py()
        with h5py.File(part.path, "r") as handle:
            if name not in handle:
                raise StoreError(f"{part.path}: has no dataset {name!r}")
            data = handle[name]
            if isinstance(rows, np.ndarray) and len(rows) and rows[-1] - rows[0] + 1 == len(rows) and np.all(np.diff(rows) == 1):
                rows = slice(int(rows[0]), int(rows[-1]) + 1)  # a run of rows: one hyperslab, not a point list
            return data[()] if rows is None else data[rows]

    indices = _column("index", "The data set index of every sample, in store order.")
    labels = _column("label", "The data set's label of every sample (-1 where it gave none).")
    predictions = _column("prediction", "The class the model predicted for every sample (-1 for a skipped sample).")
    targets = _column("target", "The class whose relevance was computed for every sample.")
    target_logits = _column("target_logit", "The explained logit of every sample.")
    paths = _column("path", "The data set's path (or name) of every sample.")

    @property
    def boxes(self) -> np.ndarray | None:
        return self.field("box") if "box" in self.fields else None

    def extra(self, name: str) -> np.ndarray:
        """An extra per-sample value the data set gave (e.g. ``"tagged"`` for the Clever Hans set)."""
        if name not in self.extra_fields:
            raise StoreError(f"{self.path}: no extra field {name!r}; the data set gave: {', '.join(self.extra_fields) or 'none'}")
        return self.field(f"extra/{name}")

    # ------------------------------------------------------------------ relevance
    def positions(self, select: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Store positions (0 .. len - 1, int64) of ``select``: every sample for ``None``, a boolean mask
        with one entry per sample, or integer positions (negative ones count from the end)."""
        positions = select
        n = len(self)
        if positions is None:
            return np.arange(n)
        array = np.asarray(positions)
        if array.dtype == bool:
            if array.shape != (n,):
                raise StoreError(f"a boolean selection needs {n} entries (one per sample in the store), got {array.shape}")
            return np.flatnonzero(array)
        if array.size and not np.issubdtype(array.dtype, np.integer):
            raise StoreError(f"select samples with integer positions or a boolean mask, got dtype {array.dtype}")
        array = array.astype(np.int64).reshape(-1)
        if array.size and (array.min() < -n or array.max() >= n):
            raise StoreError(f"sample position out of range for a store of {n} samples")
        return np.where(array < 0, array + n, array)

    def read(self, name: str, positions: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Rows of a per-sample dataset (``"relevance"``, ``"mask"``, ``"box"``, ...) at ``positions``, in that order."""
        wanted = self.positions(positions)
        if name == "relevance":
            shape, dtype = self.relevance_shape, np.float32
        else:
            if name not in self.fields and name not in SCALAR_FIELDS and name != "path":
                raise StoreError(f"{self.path}: no field {name!r}; fields: {', '.join(self.available_fields())}")
            shape, dtype = tuple(self.fields.get(name, ())), None
        starts = np.cumsum([0] + [p.count for p in self._parts])
        out: np.ndarray | None = np.empty((len(wanted), *shape), dtype=dtype) if dtype is not None else None
        which = np.searchsorted(starts, wanted, side="right") - 1
        for part_id in np.unique(which):
            rows = np.flatnonzero(which == part_id)
            local = wanted[rows] - starts[part_id]
            unique, inverse = np.unique(local, return_inverse=True)
            values = self._read(self._parts[part_id], name, unique)[inverse]
            if out is None:
                out = np.empty((len(wanted), *values.shape[1:]), dtype=values.dtype)
            out[rows] = values
        if out is None:
            out = np.empty((0, *shape))
        return out

    def iter_relevance(
        self, positions: Sequence[int] | np.ndarray | None = None, chunk: int = 1024
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(positions, relevance)`` in slices of at most ``chunk`` samples, in the order asked."""
        wanted = self.positions(positions)
        for begin in range(0, len(wanted), chunk):
            block = wanted[begin : begin + chunk]
            yield block, self.read("relevance", block)

    def relevance(self, positions: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Relevance of the samples at ``positions`` (all when ``None``) as one float32 array."""
        wanted = self.positions(positions)
        out = np.empty((len(wanted), *self.relevance_shape), dtype=np.float32)
        at = 0
        for _, values in self.iter_relevance(wanted):
            out[at : at + len(values)] = values
            at += len(values)
        return out

    def heatmaps(
        self, positions: Sequence[int] | np.ndarray | None = None, size: int | None = 20, chunk: int = 2048
    ) -> np.ndarray:
        """Heatmaps summed over channels and average-pooled to ``size`` x ``size`` (``None``: keep the size).

        Read and pooled a slice at a time, so only the pooled result is held in memory.
        """
        import torch

        wanted = self.positions(positions)
        shape = self.relevance_shape
        spatial = shape[-2:] if len(shape) >= 2 else shape
        out_hw = spatial if size is None else (size, size)
        out = np.empty((len(wanted), *out_hw), dtype=np.float32)
        chunk = max(1, min(chunk, (64 << 20) // max(1, 4 * int(np.prod(shape)))))  # at most about 64 MB read at once
        at = 0
        for _, values in self.iter_relevance(wanted, chunk=chunk):
            maps = torch.from_numpy(values)
            if maps.dim() == 4:
                maps = maps.sum(1)
            if size is not None and tuple(maps.shape[-2:]) != out_hw:
                maps = torch.nn.functional.adaptive_avg_pool2d(maps.unsqueeze(1), out_hw).squeeze(1)
            out[at : at + len(values)] = maps.numpy()
            at += len(values)
        return out
