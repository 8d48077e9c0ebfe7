"""Which share of a store this process writes, read from what the launcher put in the environment.

``torchrun`` sets ``RANK`` and ``WORLD_SIZE``; SLURM sets ``SLURM_ARRAY_TASK_ID`` with
``SLURM_ARRAY_TASK_MIN``, ``SLURM_ARRAY_TASK_STEP`` and ``SLURM_ARRAY_TASK_COUNT`` for an array job
(``sbatch --array=0-15``) and ``SLURM_PROCID`` / ``SLURM_NTASKS`` for the tasks of one step
(``srun -n 4``). An array job whose every element runs several tasks gets
``rank = array_rank * ntasks + procid`` of ``world = array_count * ntasks``.
"""
from __future__ import annotations

import os
from typing import Mapping

from ._format import StoreError


def _integer(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise StoreError(f"the environment variable {name}={raw!r} is not an integer; unset it or pass --worker/--workers") from None


def _slurm_array(environ: Mapping[str, str]) -> tuple[int, int] | None:
    task, count = _integer(environ, "SLURM_ARRAY_TASK_ID"), _integer(environ, "SLURM_ARRAY_TASK_COUNT")
    if task is None or count is None:
        return None
    low = _integer(environ, "SLURM_ARRAY_TASK_MIN")
    high = _integer(environ, "SLURM_ARRAY_TASK_MAX")
    step = _integer(environ, "SLURM_ARRAY_TASK_STEP") or 1
    low = 0 if low is None else low
    if high is not None and (high - low) // step + 1 != count:
        raise StoreError(
            f"the SLURM array {low}-{high} (step {step}) has {count} tasks that are not evenly spaced, so task "
            f"{task} has no rank: use --array=A-B[:STEP] or pass --worker/--workers"
        )
    if (task - low) % step:
        raise StoreError(f"SLURM_ARRAY_TASK_ID={task} is not on the array's step {step} from {low}; pass --worker/--workers")
    return (task - low) // step, count


def worker_from_env(environ: Mapping[str, str] | None = None) -> tuple[int, int, str] | None:
    """``(worker, workers, source)`` from torchrun's or SLURM's variables, or ``None`` when neither is set.

    ``source`` names the variables used (for a message). torchrun's ``RANK``/``WORLD_SIZE`` win over
    SLURM's (torchrun started inside a SLURM job numbers the processes itself).
    """
    environ = os.environ if environ is None else environ
    found: tuple[int, int, str] | None = None
    rank, world = _integer(environ, "RANK"), _integer(environ, "WORLD_SIZE")
    if rank is not None and world is not None:
        found = (rank, world, "RANK/WORLD_SIZE")
    else:
        array = _slurm_array(environ)
        procid, ntasks = _integer(environ, "SLURM_PROCID"), _integer(environ, "SLURM_NTASKS")
        tasks = (procid, ntasks) if procid is not None and ntasks is not None else None
        if array and tasks:
            found = (array[0] * tasks[1] + tasks[0], array[1] * tasks[1], "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT x SLURM_PROCID/SLURM_NTASKS")
        elif array:
            found = (array[0], array[1], "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT")
        elif tasks:
            found = (tasks[0], tasks[1], "SLURM_PROCID/SLURM_NTASKS")
    if found is not None and not (found[1] >= 1 and 0 <= found[0] < found[1]):
        raise StoreError(f"{found[2]} give worker {found[0]} of {found[1]}, which is not in 0 .. {found[1] - 1}")
    return found
