"""Loading images from files and folders, with errors that name the file and say what is wrong."""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Iterable, Union

from PIL import Image, ImageOps, UnidentifiedImageError

PathLike = Union[str, "os.PathLike[str]"]

#: File name endings treated as images when a folder is expanded (compared lower-case).
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm", ".pnm"}
)
#: Images smaller than this on either side are refused: there is nothing to explain.
MIN_SIDE = 32
#: Images larger than this many pixels are refused before they are decoded (memory).
MAX_PIXELS = 50_000_000
#: Key in ``image.info`` under which :func:`load_image` leaves a note about a conversion it made.
NOTE_KEY = "unmask_note"


class ImageLoadError(ValueError):
    """An image file could not be used; the message names the file and the problem."""

    def __init__(self, path: PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def load_image(path: PathLike) -> Image.Image:
    """Open ``path`` as an RGB PIL image, fully decoded.

    Grayscale, palette, CMYK, 16-bit and RGBA images are converted to RGB (transparency is flattened
    onto white) and EXIF orientation is applied; such a conversion leaves a one-line note in
    ``image.info["unmask_note"]``. Missing paths, folders, files that are not images, truncated files,
    images under 32 pixels on a side, images over 50 megapixels, float images with NaN or infinite
    pixels and paths that are not regular files (FIFOs, devices) raise :class:`ImageLoadError`.

    >>> image = load_image("cat.jpg")  # doctest: +SKIP
    >>> image.mode
    'RGB'
    """
    path = Path(path)
    if not path.exists():
        raise ImageLoadError(path, "no such file")
    if path.is_dir():
        raise ImageLoadError(path, "is a folder, not an image file (pass it to expand_inputs to list its images)")
    if not path.is_file():  # a FIFO, socket or device would block or never end: open regular files only
        raise ImageLoadError(path, "is not a regular file (a FIFO, socket or device); give an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            opened = Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        if isinstance(error, UnidentifiedImageError):
            raise ImageLoadError(path, "not an image file that Pillow can read") from None
        raise ImageLoadError(path, f"too large (over {MAX_PIXELS / 1e6:.0f} megapixels); downscale it first") from None
    except OSError as error:
        raise ImageLoadError(path, f"cannot be read ({error.strerror or error})") from None
    with opened:
        width, height = opened.size
        if width * height > MAX_PIXELS:
            raise ImageLoadError(
                path, f"too large ({width}x{height} = {width * height / 1e6:.0f} megapixels, the limit is "
                f"{MAX_PIXELS / 1e6:.0f}); downscale it first"
            )
        if min(width, height) < MIN_SIDE:
            raise ImageLoadError(path, f"too small ({width}x{height}); images need at least {MIN_SIDE} pixels a side")
        notes = []
        if getattr(opened, "n_frames", 1) > 1:
            notes.append(f"has {opened.n_frames} frames, the first is used")
        try:
            opened.load()
            image = ImageOps.exif_transpose(opened)
        except (OSError, SyntaxError, ValueError) as error:
            raise ImageLoadError(path, f"is damaged or truncated and cannot be decoded ({error})") from None
        mode = image.mode
        if mode == "F":
            import numpy as np

            bad = int(np.count_nonzero(~np.isfinite(np.asarray(image))))
            if bad:
                raise ImageLoadError(path, f"has {bad} NaN or infinite pixel{'s' if bad != 1 else ''} (a float image); "
                                           "replace them (e.g. numpy.nan_to_num) before explaining it")
        image = to_rgb(image)
        if mode != "RGB":
            notes.append(f"{describe_mode(mode)} image converted to RGB")
    if notes:
        image.info[NOTE_KEY] = "; ".join(notes)
    return image


def describe_mode(mode: str) -> str:
    """A few words for a PIL mode: ``"L"`` -> ``"grayscale"``, ``"RGBA"`` -> ``"RGBA (transparency flattened onto white)"``."""
    if mode in ("1",):
        return "black-and-white"
    if mode in ("L", "I", "I;16", "I;16B", "I;16L", "F"):
        return "grayscale"
    if mode in ("LA", "La"):
        return "grayscale with alpha (transparency flattened onto white)"
    if mode in ("RGBA", "RGBa"):
        return "RGBA (transparency flattened onto white)"
    if mode == "P":
        return "palette"
    return mode


def to_rgb(image: Image.Image) -> Image.Image:
    """``image`` as RGB: alpha is composited onto white, 16-bit and float grayscale are scaled to 8 bits."""
    if image.mode == "RGB":
        return image
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        import numpy as np

        array = np.asarray(image, dtype=np.float64)
        high = 65535.0 if image.mode.startswith("I") and array.max() > 255 else 255.0
        if image.mode == "F" and array.max() <= 1.0:
            high = 1.0
        array = np.clip(array / high * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(array, mode="L").convert("RGB")
    return image.convert("RGB")


def is_image_file(path: PathLike) -> bool:
    """Whether ``path``'s suffix is one of :data:`IMAGE_SUFFIXES` (the file itself is not opened)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: PathLike, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (by suffix), sorted by path; hidden files are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageLoadError(folder, "no such folder" if not folder.exists() else "is not a folder")
    pattern = "**/*" if recursive else "*"
    found = [
        p for p in folder.glob(pattern)
        if p.is_file() and is_image_file(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    ]
    return sorted(found)


def expand_inputs(
    paths: Iterable[PathLike], recursive: bool = False
) -> tuple[list[Path], list[ImageLoadError]]:
    """Files given directly are kept as they are; folders are replaced by their images (sorted).

    Returns the files and the problems found (a missing path, a folder without images), so a caller can
    report them and go on with the rest. Files are not opened here: :func:`load_image` checks them.
    """
    files: list[Path] = []
    problems: list[ImageLoadError] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            images = list_images(path, recursive=recursive)
            if not images:
                problems.append(ImageLoadError(path, f"folder holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"))
            files.extend(images)
        elif path.exists():
            files.append(path)
        else:
            problems.append(ImageLoadError(path, "no such file or folder"))
    return files, problems
