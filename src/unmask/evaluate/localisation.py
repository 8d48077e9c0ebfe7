"""Deprecated alias of :mod:`unmask.evaluate.localization` (the module's British name); removed in the next release."""
import warnings

from .localization import *  # noqa: F401,F403
from .localization import __all__  # noqa: F401

warnings.warn("unmask.evaluate.localisation is now unmask.evaluate.localization", DeprecationWarning, stacklevel=2)
