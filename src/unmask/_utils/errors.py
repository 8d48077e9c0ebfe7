"""Errors every room may raise."""
from __future__ import annotations


class UsageError(Exception):
    """A problem with what the user asked for: one line on stderr, exit code 2, no traceback."""
