"""Tracing models into graphs and canonizing them for explanation (no knowledge of rules)."""
from .trace import TraceError, owner, trace

__all__ = ["TraceError", "owner", "trace"]
