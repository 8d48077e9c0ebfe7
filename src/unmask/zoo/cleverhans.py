"""Deprecated alias of :mod:`unmask.zoo.cleverhans_net` (the module's old name, which was also the name of the
data set module :mod:`unmask.data.cleverhans`); removed in the next release."""
import warnings

from ..models.zoo.cleverhans_net import *  # noqa: F401,F403
from ..models.zoo.cleverhans_net import __all__, _weights, WEIGHTS  # noqa: F401

warnings.warn("unmask.zoo.cleverhans is now unmask.zoo.cleverhans_net", DeprecationWarning, stacklevel=2)
