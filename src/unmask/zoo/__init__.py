"""``unmask.zoo``, the short name of :mod:`unmask.models.zoo`: ``from unmask import zoo; zoo.load(name)``.

Every name and submodule is the one of :mod:`unmask.models.zoo` (the same objects, so registering a model
here registers it there): ``import unmask.zoo.concept_net`` is ``unmask.models.zoo.concept_net``.
"""
import sys as _sys

from ..models import zoo as _zoo
from ..models.zoo import *  # noqa: F401,F403
from ..models.zoo import __all__  # noqa: F401
from ..models.zoo import cleverhans_net, cleverhans_vit, concept_net

for _module in (cleverhans_net, cleverhans_vit, concept_net):
    _sys.modules[f"{__name__}.{_module.__name__.rsplit('.', 1)[1]}"] = _module


def __getattr__(name: str) -> object:
    return getattr(_zoo, name)
