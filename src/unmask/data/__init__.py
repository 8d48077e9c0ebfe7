"""Images in: files, folders and the photos scikit-image ships."""
from .images import (
    IMAGE_SUFFIXES,
    MAX_PIXELS,
    MIN_SIDE,
    NOTE_KEY,
    ImageLoadError,
    expand_inputs,
    is_image_file,
    list_images,
    load_image,
)
from .photos import DEFAULT_PHOTOS, photo_names, sample_photos

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "MIN_SIDE",
    "NOTE_KEY",
    "DEFAULT_PHOTOS",
    "ImageLoadError",
    "expand_inputs",
    "is_image_file",
    "list_images",
    "load_image",
    "photo_names",
    "sample_photos",
]
