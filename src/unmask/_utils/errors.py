"""Errors every room may raise."""
from __future__ import annotations


class UsageError(Exception):
    """A problem with what the user asked for: one line on stderr, exit code 2, no traceback."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """``error``'s message on one line (whitespace collapsed, at most ``limit`` characters), or its type's name."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
