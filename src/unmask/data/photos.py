"""The colour photographs that ship inside scikit-image (no download needed), as PIL images."""
from __future__ import annotations

from PIL import Image

#: The photos the command line explains when it is given no images: quick, and the model knows them.
DEFAULT_PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")

#: Every colour photograph scikit-image ships in its wheel, mapped to its loader's name in ``skimage.data``.
_LOADERS = {
    "chelsea": "chelsea",  # a tabby cat
    "coffee": "coffee",  # a cup of espresso
    "astronaut": "astronaut",  # Eileen Collins
    "rocket": "rocket",  # a rocket on its launch pad
    "motorcycle": "stereo_motorcycle",  # the left image of a stereo pair
    "hubble_deep_field": "hubble_deep_field",
    "immunohistochemistry": "immunohistochemistry",
    "retina": "retina",
}


def photo_names() -> list[str]:
    """Names accepted by :func:`sample_photos`, the defaults first."""
    return list(_LOADERS)


def sample_photos(names: str | list[str] | tuple[str, ...] | None = None) -> dict[str, Image.Image]:
    """scikit-image's shipped colour photos as RGB PIL images, ``{name: image}`` in the order asked.

    ``names=None`` gives :data:`DEFAULT_PHOTOS` (chelsea, coffee, astronaut, rocket); ``"all"`` gives every
    name in :func:`photo_names`. Needs scikit-image (``pip install unmask[zoo]``).

    >>> photos = sample_photos(["chelsea"])
    >>> photos["chelsea"].size
    (451, 300)
    """
    if names is None:
        names = list(DEFAULT_PHOTOS)
    elif names == "all":
        names = photo_names()
    elif isinstance(names, str):
        names = [names]
    unknown = [name for name in names if name not in _LOADERS]
    if unknown:
        raise ValueError(f"unknown sample photo {unknown[0]!r}; known: {', '.join(_LOADERS)}")
    try:
        import skimage.data
    except ImportError:
        raise ImportError(
            "the sample photos come from scikit-image: pip install 'unmask[zoo]' (or scikit-image)"
        ) from None
    photos = {}
    for name in names:
        array = getattr(skimage.data, _LOADERS[name])()
        if isinstance(array, tuple):
            array = array[0]
        photos[name] = Image.fromarray(array).convert("RGB")
    return photos
