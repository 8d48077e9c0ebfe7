"""Analyses: what a model learned over a data set (SpRAy, context use)."""
from .context import context_use
from .spray import SprayResult, spray

__all__ = ["SprayResult", "context_use", "spray"]
