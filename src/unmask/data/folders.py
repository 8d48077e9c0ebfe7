"""Data sets of image files with labels: class folders (like torchvision's ImageFolder) and file lists.

Each item is ``(input, label, path)``: the image preprocessed to a ``(C, H, W)`` tensor by ``transform``
(for example a zoo model's ``preprocessing``), the class index (``-1`` when unknown) and the file path.
Items of a file list with boxes are dicts that add ``box`` (x0, y0, x1, y1 in input pixels) for
context-use analysis (:func:`unmask.analyze.context.context_use`).

>>> net = unmask.zoo.load("efficientnet-lite0")
>>> data = ImageFolder("pets", transform=net.preprocessing)      # pets/cat/*.jpg, pets/dog/*.jpg
>>> x, label, path = data[0]; data.classes
(tensor of shape (3, 224, 224), 0, 'pets/cat/1.jpg'), ['cat', 'dog']
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .images import ImageLoadError, is_image_file, list_images, load_image

__all__ = ["FileList", "ImageFolder", "from_path", "to_tensor"]

Transform = Callable[[Any], torch.Tensor]


def to_tensor(image: Any) -> torch.Tensor:
    """A PIL image as a ``(3, H, W)`` float tensor in [0, 1] (the default transform)."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _apply(transform: Transform | None, image: Any, path: Path) -> torch.Tensor:
    x = (transform or to_tensor)(image)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{path}: the transform returned a {type(x).__name__}, not a tensor")
    if x.dim() == 4 and x.shape[0] == 1:  # a zoo Preprocessing returns a batch of one
        x = x[0]
    return x


def _scaled_box(box: Sequence[float], image: Any, transform: Transform | None) -> list[float]:
    """A box in original image pixels moved into the model input's frame (resize / centre crop of a zoo Preprocessing)."""
    size = getattr(transform, "size", None)
    if size is None:
        return [float(v) for v in box]
    width, height = image.size
    resize = getattr(transform, "resize", None)
    x0, y0, x1, y1 = (float(v) for v in box)
    if resize is None:
        sx, sy = size / width, size / height
        return [x0 * sx, y0 * sy, x1 * sx, y1 * sy]
    scale = resize / min(width, height)
    new_w, new_h = max(size, round(width * scale)), max(size, round(height * scale))
    left, top = (new_w - size) // 2, (new_h - size) // 2
    sx, sy = new_w / width, new_h / height
    clip = lambda v: float(min(max(v, 0.0), size))  # noqa: E731
    return [clip(x0 * sx - left), clip(y0 * sy - top), clip(x1 * sx - left), clip(y1 * sy - top)]


class ImageFolder(torch.utils.data.Dataset):
    """Images in class sub-folders: ``root/<class>/**/<image>``; classes sorted by name, index = position.

    ``transform`` maps a PIL image to a tensor (default: :func:`to_tensor`, no resizing, so images of
    different sizes need a transform before they can be batched). ``classes`` fixes the class list (and
    so the indices) instead of taking the sub-folder names; sub-folders not in it are ignored.
    A folder with images and no sub-folders is read as one unlabelled set (labels ``-1``).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        transform: Transform | None = None,
        *,
        classes: Sequence[str] | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ImageLoadError(self.root, "no such folder" if not self.root.exists() else "is not a folder")
        self.transform = transform
        folders = sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        samples: list[tuple[Path, int]] = []
        if classes is not None:
            unknown = [c for c in classes if not (self.root / c).is_dir()]
            if unknown:
                raise ImageLoadError(self.root, f"has no class folder {unknown[0]!r} (it has: {', '.join(folders) or 'none'})")
            self.classes = list(classes)
        else:
            self.classes = [f for f in folders if list_images(self.root / f, recursive=True)]
        for label, name in enumerate(self.classes):
            samples.extend((path, label) for path in list_images(self.root / name, recursive=True))
        if not self.classes:
            samples = [(path, -1) for path in list_images(self.root)]
        if not samples:
            raise ImageLoadError(self.root, "holds no images (neither in class sub-folders nor at the top)")
        self.samples = samples
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        path, label = self.samples[index]
        return _apply(self.transform, load_image(path), path), label, str(path)

    def describe(self) -> dict[str, Any]:
        """What a results store records about the data set (so a resumed run can check it is the same)."""
        import hashlib

        digest = hashlib.sha1("\n".join(f"{p}\t{label}" for p, label in self.samples).encode()).hexdigest()[:16]
        return {"type": "ImageFolder", "root": str(self.root), "size": len(self), "classes": self.classes, "files_sha1": digest}

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r}, {len(self)} images, {len(self.classes)} classes)"


class FileList(torch.utils.data.Dataset):
    """Images named in a text or CSV file, with optional labels and boxes.

    Text (any suffix but ``.csv``): one image per line, ``PATH`` or ``PATH LABEL`` (tab or spaces; a
    path with spaces needs tabs); ``#`` starts a comment. CSV: a header with ``path`` and optional
    ``label``, ``x0``, ``y0``, ``x1``, ``y1`` (a box in the original image's pixels; it is moved into the
    model input's frame when ``transform`` is a zoo ``Preprocessing``). Labels are class indices or
    class names (names are numbered in sorted order unless ``classes`` is given). Relative paths are
    taken from the list file's folder.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        transform: Transform | None = None,
        *,
        classes: Sequence[str] | None = None,
        root: str | os.PathLike[str] | None = None,
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ImageLoadError(self.path, "no such file list")
        self.transform = transform
        base = Path(root) if root is not None else self.path.parent
        rows: list[tuple[str, str | None, list[float] | None]] = []
        text = self.path.read_text(encoding="utf-8")
        if self.path.suffix.lower() == ".csv":
            reader = csv.DictReader(text.splitlines())
            header = [h.strip() for h in (reader.fieldnames or [])]
            if "path" not in header:
                raise ImageLoadError(self.path, f"a CSV file list needs a 'path' column (it has: {', '.join(header)})")
            has_box = all(k in header for k in ("x0", "y0", "x1", "y1"))
            for n, row in enumerate(reader, start=2):
                row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
                box = None
                if has_box and all(row.get(k) for k in ("x0", "y0", "x1", "y1")):
                    try:
                        box = [float(row[k]) for k in ("x0", "y0", "x1", "y1")]
                    except ValueError:
                        raise ImageLoadError(self.path, f"line {n}: box values must be numbers") from None
                rows.append((row["path"], row.get("label") or None, box))
        else:
            for n, line in enumerate(text.splitlines(), start=1):
                line = line.split("#", 1)[0].rstrip()
                if not line.strip():
                    continue
                parts = line.split("\t") if "\t" in line else line.split()
                if len(parts) > 2:
                    raise ImageLoadError(self.path, f"line {n}: expected 'PATH [LABEL]', got {line!r} (use tabs for paths with spaces)")
                rows.append((parts[0].strip(), parts[1].strip() if len(parts) > 1 else None, None))
        if not rows:
            raise ImageLoadError(self.path, "lists no images")
        names = sorted({label for _, label, _ in rows if label is not None and not label.lstrip("-").isdigit()})
        self.classes = list(classes) if classes is not None else names
        index = {name: i for i, name in enumerate(self.classes)}
        self.samples: list[tuple[Path, int]] = []
        self.boxes: list[list[float] | None] = []
        for file, label, box in rows:
            full = Path(file) if Path(file).is_absolute() else base / file
            if label is None:
                value = -1
            elif label.lstrip("-").isdigit():
                value = int(label)
            elif label in index:
                value = index[label]
            else:
                raise ImageLoadError(self.path, f"label {label!r} of {file} is not one of the classes {self.classes}")
            self.samples.append((full, value))
            self.boxes.append(box)
        self.has_boxes = any(b is not None for b in self.boxes)

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Any:
        path, label = self.samples[index]
        image = load_image(path)
        x = _apply(self.transform, image, path)
        if not self.has_boxes:
            return x, label, str(path)
        box = self.boxes[index]
        return {
            "input": x,
            "label": label,
            "path": str(path),
            "box": [float("nan")] * 4 if box is None else _scaled_box(box, image, self.transform),
        }

    def describe(self) -> dict[str, Any]:
        import hashlib

        digest = hashlib.sha1("\n".join(f"{p}\t{label}\t{b}" for (p, label), b in zip(self.samples, self.boxes)).encode()).hexdigest()[:16]
        return {"type": "FileList", "list": str(self.path), "size": len(self), "classes": self.classes, "files_sha1": digest}

    def __repr__(self) -> str:
        return f"FileList({str(self.path)!r}, {len(self)} images)"


def from_path(path: str | os.PathLike[str], transform: Transform | None = None, **options: Any) -> torch.utils.data.Dataset:
    """A folder (class sub-folders, or images at the top) or a file list (``.txt``, ``.csv``, ...) as a data set."""
    path = Path(path)
    if path.is_dir():
        return ImageFolder(path, transform, **options)
    if path.is_file():
        if is_image_file(path):
            raise ImageLoadError(path, "is one image; give a folder of images or a file list")
        return FileList(path, transform, **options)
    raise ImageLoadError(path, "no such folder or file list")
