"""Fixtures shared by the test files."""
from __future__ import annotations

from typing import Callable

import pytest

from unmask import registry


@pytest.fixture
def register_method(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, type], type]:
    """Register a method class under a name for one test only (the registry is restored afterwards)."""
    registry._load()

    def register(name: str, cls: type) -> type:
        monkeypatch.setitem(registry._METHODS, name, cls)
        return cls

    return register


@pytest.fixture(scope="session")
def efficientnet():
    """The zoo's ImageNet EfficientNet-Lite0, loaded once for the session (do not modify it)."""
    pytest.importorskip("efficientnet_lite_pytorch", reason="needs unmask[zoo]")
    from unmask import zoo

    return zoo.load("efficientnet-lite0")
