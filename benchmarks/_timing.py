"""Timing shared by the benchmarks: methods interleaved within each repeat, so machine noise hits them alike."""
from __future__ import annotations

import statistics
import time
from typing import Callable

from torch import nn

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer measures it."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def interleaved_medians(runs: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """Seconds per call of each run: one warm-up each, then ``repeats`` rounds of every run in turn; medians."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run()  # warm-up
    for _ in range(repeats):
        for name, run in runs.items():
            synchronize(device)
            start = time.perf_counter()
            run()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def baseline_runs(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> dict[str, Callable[[], object]]:
    """The two references every method is timed against: the forward pass alone, and the plain input
    gradient of the ``target`` logits (forward + backward, parameters frozen by the caller)."""

    def forward() -> None:
        with torch.no_grad():
            model(x)

    def gradient() -> None:
        leaf = x.clone().requires_grad_(True)
        out = model(leaf)
        torch.autograd.grad(out[torch.arange(len(x)), target].sum(), leaf)

    return {"forward": forward, "gradient": gradient}


def print_medians(title: str, medians: dict[str, float], width: int = 34) -> None:
    """One table: milliseconds per batch and the multiple of the ``gradient`` run."""
    base = medians["gradient"]
    print(f"\n{title}:")
    print(f"  {'':{width}s} {'ms/batch':>10s} {'x gradient':>11s}")
    for name, value in medians.items():
        print(f"  {name:{width}s} {value * 1e3:10.1f} {value / base:11.2f}")
