"""Layer-wise Relevance Propagation: rules, composites and the engine."""
from . import rules
from .composites import PRESETS, Composite, preset
from .engine import UnsupportedLayerError
from .method import LRP

__all__ = ["rules", "Composite", "preset", "PRESETS", "LRP", "UnsupportedLayerError"]
