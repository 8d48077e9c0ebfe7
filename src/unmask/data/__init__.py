"""Images in: files, folders, labelled data sets and the photos scikit-image ships."""
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
from .folders import FileList, ImageFolder
from .photos import DEFAULT_PHOTOS, photo_names, sample_photos
from .voc import VOCAnnotations

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_PIXELS",
    "MIN_SIDE",
    "NOTE_KEY",
    "DEFAULT_PHOTOS",
    "FileList",
    "ImageFolder",
    "ImageLoadError",
    "VOCAnnotations",
    "expand_inputs",
    "is_image_file",
    "list_images",
    "load_image",
    "photo_names",
    "sample_photos",
]
