"""Import Zennit 0.5.1 without torchvision: its __init__ imports torchvision.models.resnet, which
cannot be imported beside the CPU torch wheel, so a minimal stand-in module is registered first."""
from __future__ import annotations

import sys
import types

from torch import nn


def import_zennit():
    if "torchvision.models.resnet" not in sys.modules:
        try:
            import torchvision.models.resnet  # noqa: F401  (present on the GPU machine)
        except Exception:
            resnet = types.ModuleType("torchvision.models.resnet")
            resnet.BasicBlock = type("BasicBlock", (nn.Module,), {})
            resnet.Bottleneck = type("Bottleneck", (nn.Module,), {})
            models = types.ModuleType("torchvision.models")
            models.resnet = resnet
            root = types.ModuleType("torchvision")
            root.models = models
            sys.modules.update({"torchvision": root, "torchvision.models": models,
                                "torchvision.models.resnet": resnet})
    import zennit.attribution
    import zennit.canonizers
    import zennit.composites
    import zennit.torchvision

    return zennit
