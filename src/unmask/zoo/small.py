"""Deprecated alias of :mod:`unmask.zoo.concept_net` (the module's old name); removed in the next release."""
import warnings

from ..models.zoo.concept_net import *  # noqa: F401,F403
from ..models.zoo.concept_net import __all__  # noqa: F401

warnings.warn("unmask.zoo.small is now unmask.zoo.concept_net", DeprecationWarning, stacklevel=2)
