"""Worker and world size from the launcher's environment: torchrun, SLURM array jobs, srun tasks."""
from __future__ import annotations

import numpy as np
import pytest

from unmask.store import StoreError, open_store
from unmask.store._ranks import worker_from_env


def array(task: int, low: int, high: int, step: int = 1) -> dict[str, str]:
    count = (high - low) // step + 1
    return {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": str(low), "SLURM_ARRAY_TASK_MAX": str(high),
            "SLURM_ARRAY_TASK_STEP": str(step), "SLURM_ARRAY_TASK_COUNT": str(count)}


def test_ranks_from_torchrun_and_slurm():
    assert worker_from_env({}) is None
    assert worker_from_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"})[:2] == (3, 8)
    assert worker_from_env(array(3, 0, 7))[:2] == (3, 8)
    assert worker_from_env(array(4, 1, 8))[:2] == (3, 8)  # --array=1-8: ranks count from the first task
    assert worker_from_env(array(6, 0, 14, 2))[:2] == (3, 8)  # --array=0-14:2
    assert worker_from_env({"SLURM_PROCID": "2", "SLURM_NTASKS": "4"})[:2] == (2, 4)  # srun -n 4
    both = {**array(1, 0, 1), "SLURM_PROCID": "1", "SLURM_NTASKS": "2"}  # an array of 2, each running 2 tasks
    assert worker_from_env(both)[:2] == (3, 4)
    # torchrun inside a SLURM job numbers the processes itself
    assert worker_from_env({**array(1, 0, 1), "RANK": "5", "WORLD_SIZE": "6"}) == (5, 6, "RANK/WORLD_SIZE")


def test_unusable_environments_are_refused_with_the_variable_named():
    with pytest.raises(StoreError, match="RANK='x' is not an integer"):
        worker_from_env({"RANK": "x", "WORLD_SIZE": "2"})
    with pytest.raises(StoreError, match="not in 0 .. 1"):
        worker_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    listed = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "7", "SLURM_ARRAY_TASK_COUNT": "3"}
    with pytest.raises(StoreError, match="not evenly spaced"):  # --array=1,3,7
        worker_from_env(listed)


def test_the_attribute_command_takes_its_share_from_slurm(tmp_path, monkeypatch, capsys):
    from unmask.cli import main

    for name in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in array(1, 0, 1).items():
        monkeypatch.setenv(name, value)
    common = ["--shard-size", "4", "--batch-size", "4", "--no-progress"]
    assert main(["attribute", "cleverhans:test:16", "--out", str(tmp_path / "s"), *common]) == 0
    assert "worker 1 of 2 (from SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT)" in capsys.readouterr().err
    half = open_store(tmp_path / "s")
    np.testing.assert_array_equal(half.indices, [4, 5, 6, 7, 12, 13, 14, 15])  # shards 1 and 3 of 4
    # flags win over the environment: worker 0 of 2 completes the store
    assert main(["attribute", "cleverhans:test:16", "--out", str(tmp_path / "s"), "--worker", "0", "--workers", "2", *common]) == 0
    assert open_store(tmp_path / "s").complete
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "one")
    assert main(["attribute", "cleverhans:test:16", "--out", str(tmp_path / "t"), *common]) == 2
    assert "SLURM_ARRAY_TASK_ID='one' is not an integer" in capsys.readouterr().err
