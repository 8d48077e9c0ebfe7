"""Concept data in the Broden format (NetDissect's), read and written.

A Broden-format folder holds::

    index.csv      image,split,ih,iw,sh,sw,<category>,<category>,...
                   one row per image: its file (relative to images/), its split, the image height and
                   width, the label-map height and width, then one cell per category: label-map PNG
                   files (relative to images/) and/or decimal label numbers that hold for the whole
                   image, several separated by ';', empty when the image has no annotation there
    label.csv      number,name,category,frequency,coverage,syns
                   one row per label number; category is e.g. "color(289)" or "material(36);object(3)"
                   (the category with the largest count is the label's own); number 0 is "no label"
    category.csv   name,first,last,count,frequency      (optional here)
    c_<cat>.csv    code,number,name,frequency,coverage   (optional here)
    images/        the images and the label maps

A label-map PNG stores the label number of each pixel as ``R + 256 * G`` (B is ignored); 0 means no
label. Images are resized (bilinear) to one size and label maps (nearest) to one mask size, by default
the size the first row of index.csv gives.

>>> concepts = BrodenDataset("broden1_224", categories=["color", "texture"], limit=2000)
>>> write_broden(GeneratedConcepts(n=100), "my_concepts")   # any concept data set, in this format
"""
from __future__ import annotations

import csv
import os
import re
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from .._utils.progress import Progress, progress_bar
from .._utils.validation import check_index
from .concepts import ConceptDataset, ConceptSample

__all__ = ["BrodenDataset", "BrodenFormatError", "decode_mask", "encode_mask", "write_broden"]

_FIXED = ("image", "split", "ih", "iw", "sh", "sw")
_COUNTED = re.compile(r"^\s*([^()]+?)\s*(?:\((\d+)\))?\s*$")


class BrodenFormatError(ValueError):
    """A Broden-format folder that cannot be read: which file, which row, what to do."""


def decode_mask(image: Image.Image, source: str = "mask") -> np.ndarray:
    """A label-map PNG -> ``(h, w)`` int64 label numbers ``R + 256 * G``.

    Only RGB (or RGBA) images encode labels this way; anything else is refused rather than guessed at.
    """
    if image.mode not in ("RGB", "RGBA"):
        raise BrodenFormatError(
            f"{source}: a Broden label map must be an RGB PNG with the label number of each pixel stored as "
            f"R + 256 * G, got a {image.mode!r} image; write label maps with unmask.data.broden.encode_mask"
        )
    array = np.asarray(image, dtype=np.int64)
    return array[..., 0] + 256 * array[..., 1]


def encode_mask(labels: np.ndarray) -> Image.Image:
    """``(h, w)`` label numbers (0 .. 65535) -> the RGB image Broden stores (R + 256 * G, B = 0)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"a label map must be (h, w), got shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 65535):
        raise ValueError("label numbers must be in 0 .. 65535 to fit R + 256 * G")
    labels = labels.astype(np.int64)
    rgb = np.zeros(labels.shape + (3,), dtype=np.uint8)
    rgb[..., 0] = labels % 256
    rgb[..., 1] = labels // 256
    return Image.fromarray(rgb, mode="RGB")


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except FileNotFoundError:
        raise BrodenFormatError(f"{path} is missing; a Broden-format folder needs index.csv and label.csv") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise BrodenFormatError(f"cannot read {path}: {error}") from None


def _primary_category(text: str, known: Sequence[str]) -> str | None:
    """``"material(36);object(3)"`` -> ``"material"`` (the largest count; the first when none are given)."""
    best: tuple[int, str] | None = None
    for position, part in enumerate(filter(None, (p.strip() for p in text.split(";")))):
        match = _COUNTED.match(part)
        if not match:
            continue
        name, count = match.group(1), match.group(2)
        if known and name not in known:
            continue
        score = int(count) if count is not None else -position
        if best is None or score > best[0]:
            best = (score, name)
    return best[1] if best else None


class BrodenDataset(ConceptDataset):
    """A Broden-format folder as a :class:`~unmask.data.concepts.ConceptDataset`.

    ``categories``: the categories to use (default: every category column of index.csv); labels of
    other categories are not scored. ``split``: keep only rows of this split (``"train"``, ``"val"``).
    ``image_size`` / ``mask_size``: ``(height, width)`` or an int, default the first row's ``ih, iw`` /
    ``sh, sw``. ``limit``: use only the first ``limit`` rows (after the split filter).

    index.csv and label.csv are checked when the data set is made; a label map is checked when it is
    read (format, size, label numbers), and every error names the file.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        categories: Sequence[str] | None = None,
        split: str | None = None,
        image_size: int | tuple[int, int] | None = None,
        mask_size: int | tuple[int, int] | None = None,
        limit: int | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            what = "is a file, not a folder" if self.root.exists() else "does not exist (no such folder)"
            raise BrodenFormatError(f"{self.root} {what}; give a Broden-format folder with index.csv, label.csv and images/")
        index_path = self.root / "index.csv"
        with_header = _read_csv(index_path)
        try:
            with open(index_path, newline="", encoding="utf-8") as handle:
                header = next(csv.reader(handle), [])
        except OSError as error:  # pragma: no cover - read just above
            raise BrodenFormatError(f"cannot read {index_path}: {error}") from None
        header = [h.strip() for h in header]
        missing = [c for c in _FIXED if c not in header]
        if missing:
            raise BrodenFormatError(
                f"{index_path}: missing column(s) {', '.join(missing)}; the header must start with "
                f"{','.join(_FIXED)} followed by one column per category"
            )
        columns = [h for h in header if h not in _FIXED]
        if not columns:
            raise BrodenFormatError(f"{index_path}: no category columns after {','.join(_FIXED)}")
        if categories is None:
            self.categories = columns
        else:
            unknown = [c for c in categories if c not in columns]
            if unknown:
                raise BrodenFormatError(f"{index_path}: no category {unknown[0]!r}; it has {', '.join(columns)}")
            self.categories = list(categories)

        # labels ------------------------------------------------------------------------------------
        label_path = self.root / "label.csv"
        label_rows = _read_csv(label_path)
        if label_rows and not {"number", "name"} <= set(label_rows[0]):
            raise BrodenFormatError(f"{label_path}: the header must be number,name,category,...")
        numbers: dict[int, tuple[str, str | None]] = {}
        for line, row in enumerate(label_rows, start=2):
            try:
                number = int(row["number"])
            except (TypeError, ValueError):
                raise BrodenFormatError(f"{label_path} line {line}: label number {row.get('number')!r} is not an integer") from None
            if number < 0 or number > 65535:
                raise BrodenFormatError(f"{label_path} line {line}: label number {number} is outside 0 .. 65535")
            category = _primary_category(row.get("category") or "", self.categories)
            numbers[number] = ((row.get("name") or "").strip() or f"label {number}", category)
        size = max(numbers, default=0) + 1
        self.labels = ["-"] * size
        self.label_category: list[str | None] = [None] * size
        for number, (name, category) in numbers.items():
            if number == 0:
                continue
            self.labels[number] = name
            self.label_category[number] = category
        self._scored = np.array([c is not None for c in self.label_category], dtype=bool)

        # rows --------------------------------------------------------------------------------------
        rows = []
        for line, row in enumerate(with_header, start=2):
            if split is not None and (row.get("split") or "").strip() != split:
                continue
            try:
                dims = tuple(int(row[key]) for key in ("ih", "iw", "sh", "sw"))
            except (TypeError, ValueError):
                raise BrodenFormatError(f"{index_path} line {line}: ih, iw, sh, sw must be integers") from None
            if min(dims) < 1:
                raise BrodenFormatError(f"{index_path} line {line}: sizes must be positive, got {dims}")
            if not (row.get("image") or "").strip():
                raise BrodenFormatError(f"{index_path} line {line}: empty image file name")
            cells = {c: [p.strip() for p in (row.get(c) or "").split(";") if p.strip()] for c in self.categories}
            rows.append((line, row["image"].strip(), dims, cells))
            if limit is not None and len(rows) >= limit:
                break
        if not rows:
            which = f" of split {split!r}" if split is not None else ""
            raise BrodenFormatError(f"{index_path} lists no images{which}")
        self._rows = rows
        first = rows[0][2]
        self.image_size = _pair(image_size) if image_size is not None else (first[0], first[1])
        self.mask_size = _pair(mask_size) if mask_size is not None else (first[2], first[3])
        self.split = split
        self.description = f"Broden-format {self.root} ({len(rows)} images{', split ' + split if split else ''})"

    def __len__(self) -> int:
        return len(self._rows)

    def _where(self, index: int) -> str:
        return f"{self.root / 'index.csv'} line {self._rows[index][0]}"

    def __getitem__(self, index: int) -> ConceptSample:
        index = check_index(index, len(self), "image")
        _, image_name, (ih, iw, sh, sw), cells = self._rows[index]
        image_path = self.root / "images" / image_name
        try:
            with Image.open(image_path) as opened:
                image = opened.convert("RGB")
        except (OSError, ValueError) as error:
            raise BrodenFormatError(f"{self._where(index)}: cannot read image {image_path}: {error}") from None
        if image.size != (self.image_size[1], self.image_size[0]):
            image = image.resize((self.image_size[1], self.image_size[0]), Image.BILINEAR)
        pixels = torch.from_numpy(np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0)

        planes: list[np.ndarray] = []
        image_labels: list[int] = []
        present = torch.zeros(len(self.categories), dtype=torch.bool)
        for k, category in enumerate(self.categories):
            for entry in cells[category]:
                present[k] = True
                if entry.isdigit():
                    number = int(entry)
                    self._check_numbers(np.array([number]), f"{self._where(index)} ({category})")
                    image_labels.append(number)
                    continue
                planes.append(self._read_mask(index, entry, (sh, sw)))
        mask_h, mask_w = self.mask_size
        stacked = (
            torch.from_numpy(np.stack(planes)) if planes else torch.zeros(0, mask_h, mask_w, dtype=torch.int64)
        )
        return ConceptSample(
            image=pixels.contiguous(),
            planes=stacked,
            image_labels=torch.tensor(image_labels, dtype=torch.int64),
            present=present,
            index=index,
            name=Path(image_name).stem,
        )

    def _read_mask(self, index: int, entry: str, size: tuple[int, int]) -> np.ndarray:
        path = self.root / "images" / entry
        try:
            with Image.open(path) as opened:
                opened.load()
                labels = decode_mask(opened, source=str(path))
        except BrodenFormatError:
            raise
        except (OSError, ValueError) as error:
            raise BrodenFormatError(f"{self._where(index)}: cannot read label map {path}: {error}") from None
        if labels.shape != size:
            raise BrodenFormatError(
                f"{path}: the label map is {labels.shape[0]}x{labels.shape[1]} (h x w) but index.csv "
                f"({self._where(index)}) gives sh, sw = {size[0]}, {size[1]}"
            )
        self._check_numbers(labels, str(path))
        labels = np.where(self._scored[labels], labels, 0)  # labels of categories not in use: "no label"
        if labels.shape != self.mask_size:
            labels = _nearest(labels, self.mask_size)
        return labels

    def _check_numbers(self, labels: np.ndarray, source: str) -> None:
        top = int(labels.max()) if labels.size else 0
        if top >= len(self.labels) or (labels < 0).any():
            bad = sorted(set(np.unique(labels[(labels >= len(self.labels)) | (labels < 0)]).tolist()))[:5]
            raise BrodenFormatError(
                f"{source}: label number(s) {bad} are not in label.csv (which goes up to {len(self.labels) - 1}); "
                "label maps store R + 256 * G, is the file encoded that way?"
            )


def _pair(size: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    h, w = size
    return (int(h), int(w))


def _nearest(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = labels.shape
    rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(np.int64), w - 1)
    return labels[rows][:, cols]


def write_broden(
    dataset: ConceptDataset,
    folder: str | os.PathLike[str],
    indices: Sequence[int] | None = None,
    split: str = "train",
    image_format: str = "png",
    progress: Progress = False,
) -> Path:
    """Write ``dataset`` (or its ``indices``) as a Broden-format folder and return its path.

    Label numbers are the data set's label indices. Each plane of a sample goes to one label-map PNG in
    the column of the category its labels belong to (an empty plane ``p`` to category ``p`` when the
    sample is annotated for it, so "annotated, nothing there" survives); image-level labels go in as
    numbers. Images are
    written as PNG by default (lossless, so reading the folder back gives the same pixels up to 8-bit
    rounding); ``image_format="jpg"`` makes a smaller folder.
    """
    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    categories = list(dataset.categories)
    indices = range(len(dataset)) if indices is None else indices
    frequency: Counter[int] = Counter()
    coverage: Counter[int] = Counter()
    category_images: Counter[str] = Counter()
    index_rows = []
    with progress_bar(progress, len(indices), "write Broden", "image", leave=True) as bar:
        for index in indices:
            sample = dataset[int(index)]
            stem = f"{int(index):06d}"
            pixels = np.clip(np.rint(sample.image.permute(1, 2, 0).numpy() * 255), 0, 255).astype(np.uint8)
            image_name = f"{stem}.{image_format}"
            options = {"quality": 95} if image_format == "jpg" else {}
            Image.fromarray(pixels).save(folder / "images" / image_name, **options)
            cells: dict[str, list[str]] = {c: [] for c in categories}
            seen: set[int] = set()
            for p, plane in enumerate(sample.planes.numpy()):
                numbers = np.unique(plane[plane > 0])
                owners = {dataset.label_category[int(n)] for n in numbers}
                owners.discard(None)
                if owners:
                    category = sorted(owners, key=categories.index)[0]
                elif p < len(categories) and bool(sample.present[p]) and not cells[categories[p]]:
                    category = categories[p]  # an empty plane: "annotated, nothing there" (kept for the union)
                else:
                    continue
                name = f"{stem}_{category}_{p}.png"
                encode_mask(plane).save(folder / "images" / name)
                cells[category].append(name)
                for n in numbers.tolist():
                    seen.add(int(n))
                    coverage[int(n)] += int((plane == n).sum())
            for number in sample.image_labels.tolist():
                if number <= 0:
                    continue
                category = dataset.label_category[number] or categories[0]
                cells[category].append(str(number))
                seen.add(number)
            for k, category in enumerate(categories):
                if bool(sample.present[k]) or cells[category]:
                    category_images[category] += 1
            frequency.update(seen)
            ih, iw = pixels.shape[:2]
            sh, sw = sample.planes.shape[1:]
            index_rows.append([image_name, split, ih, iw, sh, sw] + [";".join(cells[c]) for c in categories])
            bar.update(1)

    with open(folder / "index.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(_FIXED) + categories)
        writer.writerows(index_rows)
    with open(folder / "label.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["number", "name", "category", "frequency", "coverage", "syns"])
        writer.writerow([0, "-", "", 0, 0, ""])
        for number in range(1, len(dataset.labels)):
            category = dataset.label_category[number]
            if category is None:
                continue
            writer.writerow([number, dataset.labels[number], f"{category}({frequency[number]})", frequency[number], coverage[number], ""])
    with open(folder / "category.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "first", "last", "count", "frequency"])
        for category in categories:
            numbers = [n for n, c in enumerate(dataset.label_category) if c == category]
            writer.writerow([category, min(numbers, default=""), max(numbers, default=""), len(numbers), category_images[category]])
    for category in categories:
        with open(folder / f"c_{category}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["code", "number", "name", "frequency", "coverage"])
            numbers = [n for n, c in enumerate(dataset.label_category) if c == category]
            for code, number in enumerate(numbers, start=1):
                writer.writerow([code, number, dataset.labels[number], frequency[number], coverage[number]])
    return folder
