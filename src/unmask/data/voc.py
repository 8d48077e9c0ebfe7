"""Pascal-VOC-style annotations: one XML file per image with its objects' classes and boxes.

The format of the PASCAL VOC challenge (Everingham et al. 2010) and of tools such as LabelImg::

    <annotation>
      <filename>000001.jpg</filename>
      <object><name>dog</name><difficult>0</difficult>
        <bndbox><xmin>48</xmin><ymin>240</ymin><xmax>195</xmax><ymax>371</ymax></bndbox></object>
    </annotation>

VOC coordinates are 1-based and inclusive; they become ``x0 = xmin - 1, y0 = ymin - 1, x1 = xmax,
y1 = ymax`` (0-based, ``x1``/``y1`` exclusive), the convention of :class:`unmask.data.FileList` and of
:func:`unmask.analyze.context.context_use`. Each image is one sample: its label and box are those of its
largest object that is not marked ``difficult`` (all objects are kept in :attr:`VOCAnnotations.objects`).

>>> data = VOCAnnotations("VOC2007/Annotations")          # images from VOC2007/JPEGImages
>>> data[0]["label"], data[0]["box"], data.classes[:3]
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .folders import Transform, _apply, _scaled_box
from .images import ImageLoadError, load_image

__all__ = ["VOCAnnotations", "VOCObject", "read_annotation"]


@dataclass(frozen=True)
class VOCObject:
    """One annotated object: class name, box ``(x0, y0, x1, y1)`` in image pixels (exclusive ends), flags."""

    name: str
    box: tuple[float, float, float, float]
    difficult: bool = False
    truncated: bool = False

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


def _text(element: ElementTree.Element, tag: str, path: Path) -> str:
    child = element.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise ImageLoadError(path, f"an annotation needs <{tag}>")
    return child.text.strip()


def _flag(element: ElementTree.Element, tag: str) -> bool:
    child = element.find(tag)
    return child is not None and (child.text or "").strip() in ("1", "true", "True")


def read_annotation(path: str | os.PathLike[str]) -> tuple[str, list[VOCObject]]:
    """The image file name and the objects of one VOC XML file."""
    path = Path(path)
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        raise ImageLoadError(path, f"is not a readable XML annotation ({error})") from None
    if root.tag != "annotation":
        raise ImageLoadError(path, f"the root element is <{root.tag}>, not <annotation>")
    filename = _text(root, "filename", path)
    objects = []
    for n, element in enumerate(root.findall("object"), start=1):
        box = element.find("bndbox")
        if box is None:
            raise ImageLoadError(path, f"object {n} has no <bndbox>")
        try:
            xmin, ymin, xmax, ymax = (float(_text(box, tag, path)) for tag in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            raise ImageLoadError(path, f"object {n}: box coordinates must be numbers") from None
        if xmax < xmin or ymax < ymin:
            raise ImageLoadError(path, f"object {n}: xmax/ymax lie before xmin/ymin")
        objects.append(
            VOCObject(_text(element, "name", path), (xmin - 1, ymin - 1, xmax, ymax), _flag(element, "difficult"), _flag(element, "truncated"))
        )
    return filename, objects


class VOCAnnotations:
    """Images with Pascal-VOC XML annotations, as a data set of ``{"input", "label", "path", "box"}``.

    ``annotations``: the folder of ``*.xml`` files. ``images``: where the images are (default: the
    sibling folder ``JPEGImages`` when there is one, else the annotation folder). ``transform`` as for
    :class:`unmask.data.FileList` (the box is moved into a zoo ``Preprocessing``'s frame).
    ``classes`` fixes the class list (default: the object names found, sorted); images whose chosen
    object is not among them are left out. Annotations without objects are left out too.
    """

    def __init__(
        self,
        annotations: str | os.PathLike[str],
        images: str | os.PathLike[str] | None = None,
        transform: Transform | None = None,
        *,
        classes: Sequence[str] | None = None,
    ) -> None:
        self.root = Path(annotations)
        if not self.root.is_dir():
            raise ImageLoadError(self.root, "no such annotation folder")
        files = sorted(self.root.glob("*.xml"))
        if not files:
            raise ImageLoadError(self.root, "holds no *.xml annotation files")
        if images is None:
            sibling = self.root.parent / "JPEGImages"
            images = sibling if sibling.is_dir() else self.root
        self.images = Path(images)
        self.transform = transform
        chosen: list[tuple[Path, VOCObject, list[VOCObject]]] = []
        for file in files:
            filename, objects = read_annotation(file)
            candidates = [o for o in objects if not o.difficult] or objects
            if candidates:
                chosen.append((self.images / filename, max(candidates, key=lambda o: o.area), objects))
        self.classes = list(classes) if classes is not None else sorted({o.name for _, o, _ in chosen})
        index = {name: i for i, name in enumerate(self.classes)}
        kept = [(p, o, all_) for p, o, all_ in chosen if o.name in index]
        if not kept:
            raise ImageLoadError(self.root, f"no annotated object of the classes {self.classes}")
        self.samples: list[tuple[Path, int]] = [(p, index[o.name]) for p, o, _ in kept]
        self.boxes: list[list[float]] = [list(o.box) for _, o, _ in kept]
        self.objects: list[list[VOCObject]] = [all_ for _, _, all_ in kept]
        self.has_boxes = True

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        path, label = self.samples[index]
        image = load_image(path)
        return {
            "input": _apply(self.transform, image, path),
            "label": label,
            "path": str(path),
            "box": _scaled_box(self.boxes[index], image, self.transform),
        }

    def describe(self) -> dict[str, Any]:
        import hashlib

        digest = hashlib.sha1("\n".join(f"{p}\t{label}\t{b}" for (p, label), b in zip(self.samples, self.boxes)).encode()).hexdigest()[:16]
        return {"type": "VOCAnnotations", "annotations": str(self.root), "size": len(self), "classes": self.classes, "files_sha1": digest}

    def __repr__(self) -> str:
        return f"VOCAnnotations({str(self.root)!r}, {len(self)} images, {len(self.classes)} classes)"
