"""Everything about a network and how to feed it, shared by the methods, dissection and prototypes:
what counts as a model (:func:`as_module`: a module or a zoo model), layer lookup (:func:`find_layer`), forward-hook capture (:class:`Capture`), device and mode policy
(:func:`model_device`, :func:`on_device`, :class:`eval_mode`: the user's model is never changed) and
the pixels-to-inputs recipe of a model (:func:`pixel_model`). The zoo is :mod:`unmask.models.zoo` (short name :mod:`unmask.zoo`)."""
from .capture import Capture
from .devices import eval_mode, model_device, on_device
from .layers import find_layer, resolve_layer
from .module import as_module
from .pixels import PixelModel, pixel_model

__all__ = [
    "Capture",
    "as_module",
    "PixelModel",
    "eval_mode",
    "find_layer",
    "model_device",
    "on_device",
    "pixel_model",
    "resolve_layer",
]
