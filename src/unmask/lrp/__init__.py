"""Layer-wise Relevance Propagation: rules, composites and the engine."""
from . import rules, transformer
from .composites import (
    PRESETS,
    AttnLRP,
    Composite,
    Epsilon,
    EpsilonAlpha2Beta1,
    EpsilonAlpha2Beta1Flat,
    EpsilonGammaBox,
    EpsilonPlus,
    EpsilonPlusFlat,
    ExcitationBackprop,
    Preset,
    preset,
)
from .engine import UnsupportedLayerError
from .method import LRP

__all__ = [
    "rules", "transformer", "Composite", "preset", "PRESETS", "LRP", "UnsupportedLayerError", "Preset",
    "Epsilon", "EpsilonPlus", "EpsilonPlusFlat", "EpsilonGammaBox", "EpsilonAlpha2Beta1", "EpsilonAlpha2Beta1Flat",
    "ExcitationBackprop", "AttnLRP",
]
