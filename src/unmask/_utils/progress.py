"""One progress bar for every long loop: ``progress`` is ``True`` (a tqdm bar on stderr, when tqdm is
installed: the ``cli`` extra), ``False`` (nothing), or a callable that receives each increment, as
``tqdm.update`` does (for a caller's own bar or log)."""
from __future__ import annotations

import sys
from typing import Any, Callable, Iterator, Sequence, TypeVar, Union

__all__ = ["Progress", "progress_bar", "track"]

T = TypeVar("T")

Progress = Union[bool, Callable[[int], Any]]


class _Bar:
    """``update(n)``, ``set_postfix(**values)``, ``clear()``/``refresh()`` and ``close()`` on a tqdm bar, a
    callable, or nothing."""

    def __init__(self, bar: Any = None, callback: Callable[[int], Any] | None = None) -> None:
        self._bar, self._callback = bar, callback

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)
        if self._callback is not None:
            self._callback(n)

    def set_postfix(self, **values: Any) -> None:
        if self._bar is not None:
            self._bar.set_postfix(**values)

    def clear(self) -> None:
        """Take the bar off the terminal (before printing a line); :meth:`refresh` puts it back."""
        if self._bar is not None:
            self._bar.clear()

    def refresh(self) -> None:
        if self._bar is not None:
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "_Bar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress_bar(progress: Progress, total: int | None, desc: str = "", unit: str = "it", *, initial: int = 0, leave: bool = False) -> _Bar:
    """A bar for ``total`` items (``initial`` already done; ``None``: not known) as ``progress`` asks for;
    always safe to use."""
    if callable(progress):
        return _Bar(callback=progress)
    if not progress:
        return _Bar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with the cli and analyze extras; without it, no bar
        return _Bar()
    return _Bar(tqdm(total=total, initial=initial, desc=desc or None, unit=unit, file=sys.stderr, dynamic_ncols=True, leave=leave))


def track(items: Sequence[T], progress: Progress, desc: str = "", unit: str = "it") -> Iterator[T]:
    """The ``items`` one by one, with a bar as ``progress`` asks for that counts each one (closed when the
    loop ends or stops early): the ``tqdm(items)`` of :func:`progress_bar`."""
    with progress_bar(progress, len(items), desc, unit) as bar:
        for item in items:
            yield item
            bar.update(1)
