"""Helpers written once and used by every room: validation of numeric parameters."""
