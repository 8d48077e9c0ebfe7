"""Evaluate many perturbed copies of a batch in a few big forward passes.

Copies are stacked copy-major: row ``r`` of the stacked batch belongs to sample ``r % batch``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

from ..targets import Target


def row_chunks(total: int, size: int | None, device: torch.device) -> Iterator[torch.Tensor]:
    """Indices ``0 .. total-1`` in consecutive chunks of at most ``size`` (all at once for ``None``)."""
    size = total if size is None else size
    for start in range(0, total, size):
        yield torch.arange(start, min(start + size, total), device=device)


def rebatch(blocks: Iterable[torch.Tensor], size: int | None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Concatenate a stream of batches and cut it into chunks of at most ``size`` rows.

    Yields ``(rows, index)`` where ``index`` numbers the rows across the whole stream.
    """
    buffer: list[torch.Tensor] = []
    buffered = start = 0
    for block in blocks:
        buffer.append(block)
        buffered += block.shape[0]
        while size is not None and buffered >= size:
            joined = torch.cat(buffer)
            yield joined[:size], torch.arange(start, start + size, device=block.device)
            start += size
            buffer, buffered = [joined[size:]], buffered - size
    if buffered:
        joined = torch.cat(buffer)
        yield joined, torch.arange(start, start + buffered, device=joined.device)


def row_target(target: Target, index: torch.Tensor | None, sample: torch.Tensor) -> Target:
    """The target for stacked rows: the resolved class of each row's sample, or the callable itself."""
    return target if index is None else index[sample]


def per_row(values: torch.Tensor, dims: int) -> torch.Tensor:
    """A ``(rows,)`` tensor shaped ``(rows, 1, ..., 1)`` to scale rows of ``dims``-dimensional tensors."""
    return values.reshape((-1,) + (1,) * (dims - 1))
