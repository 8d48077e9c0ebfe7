"""Layer-wise Relevance Propagation: rules, composites and the engine."""
from . import rules, transformer
from .composites import PRESETS, Composite, preset
from .engine import UnsupportedLayerError
from .method import LRP

__all__ = ["rules", "transformer", "Composite", "preset", "PRESETS", "LRP", "UnsupportedLayerError"]
