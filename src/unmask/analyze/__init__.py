"""Analyses: what a model learned over a data set (SpRAy, context use, comparing models), what its units detect (network
dissection) and what classes look like (prototypes)."""
from .dissect import axis_alignment, dissect, robustness
from .compare import compare
from .context import context_use
from .prototypes import prototype
from .spray import SprayResult, spray

__all__ = ["SprayResult", "axis_alignment", "compare", "context_use", "dissect", "prototype", "robustness", "spray"]
