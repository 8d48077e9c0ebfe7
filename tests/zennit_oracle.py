"""Import Zennit 0.5.1 without torchvision: its __init__ imports torchvision.models.resnet, which
cannot be imported beside the CPU torch wheel, so the tests' stand-in is registered first."""
from __future__ import annotations

from torchvision_standin import install


def import_zennit():
    install()
    import zennit.attribution
    import zennit.canonizers
    import zennit.composites
    import zennit.torchvision

    return zennit
