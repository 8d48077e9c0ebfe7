"""The result every attribution method returns."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    import os
    from pathlib import Path

    from PIL import Image


@dataclass
class Explanation:
    """Relevance of every input element for one explained output per sample.

    Attributes:
        relevance: tensor shaped like the inputs, ``(B, C, H, W)`` for images.
        output: the model's output for the inputs, ``(B, K)``.
        target: the explained class per sample, ``(B,)`` long; ``None`` when a callable target was used.
        method: the registry name of the method that produced it.
        inputs: the inputs that were explained (kept for overlays), detached.
        params: the method's parameters (its ``get_params()``; LRP adds the composite's name), for reports.
    """

    relevance: torch.Tensor
    output: torch.Tensor
    target: torch.Tensor | None
    method: str
    inputs: torch.Tensor | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.relevance.shape[0]

    @property
    def explained_output(self) -> torch.Tensor | None:
        """The explained logit per sample, ``output[i, target[i]]`` (``None`` for callable targets)."""
        if self.target is None or self.output.dim() != 2:
            return None
        return self.output.gather(1, self.target.view(-1, 1)).squeeze(1)

    def heatmap(self) -> torch.Tensor:
        """Relevance summed over channels: ``(B, H, W)`` for image inputs."""
        return self.relevance.sum(1) if self.relevance.dim() >= 3 else self.relevance

    def conservation_error(self) -> torch.Tensor | None:
        """Per sample ``sum(relevance) - explained logit`` (LRP conserves it where biases vanish)."""
        explained = self.explained_output
        if explained is None:
            return None
        return self.relevance.flatten(1).sum(1) - explained

    def conserved_share(self) -> torch.Tensor | None:
        """Per sample ``sum(relevance) / explained logit``: 1 for a conserving explanation; near 0 where biases
        (or stabilisers) absorbed the relevance (``None`` for callable targets)."""
        explained = self.explained_output
        if explained is None:
            return None
        return self.relevance.flatten(1).sum(1) / explained

    def render(
        self,
        index: int | None = None,
        *,
        cmap: str | None = None,
        percentile: float | None = None,
        mode: str | None = None,
        overlay: bool = False,
        alpha: float | str = "relevance",
        gray: bool = False,
        size: int | tuple[int, int] | None = None,
        image: Any = None,
    ) -> Image.Image | list[Image.Image]:
        """Heatmap images: one for ``index``, a list for the whole batch.

        ``cmap`` defaults to ``'bwr'`` for signed relevance and ``'hot'`` for non-negative relevance;
        ``percentile`` (e.g. 99.5) saturates the top values; ``overlay`` blends over ``image`` (the
        un-normalised image, one or one per sample), else over ``inputs`` min-max scaled per sample,
        with opacity growing with |relevance| (``alpha="relevance"``) or a constant ``alpha``, over a
        grayscale copy when ``gray``; ``size`` is ``(width, height)`` or the longer side. See :func:`unmask.viz.render_explanation`.
        """
        from .viz import render_explanation

        return render_explanation(
            self,
            index,
            cmap=cmap,
            percentile=percentile,
            mode=mode,
            overlay=overlay,
            alpha=alpha,
            gray=gray,
            size=size,
            image=image,
        )

    def save(self, path: str | os.PathLike[str], index: int | None = None, **options: Any) -> list[Path]:
        """Write heatmaps (``.png``) or raw relevance (``.npy``); returns the written paths.

        A batch of PNGs goes to one file per sample (``{i}`` in ``path``, else ``_<i>`` suffixes);
        ``.npy`` holds ``(H, W)`` for ``index`` or ``(B, H, W)``, ``full=True`` keeps the channels.
        ``options`` are :meth:`render`'s (PNG only). See :func:`unmask.viz.save_explanation`.
        """
        from .viz import save_explanation

        return save_explanation(self, path, index, **options)
