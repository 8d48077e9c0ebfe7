"""The Ray engine of the store: a 2-CPU local cluster writes the single-process store sample by sample;
a worker killed mid-shard (SIGKILL by its pid) loses and doubles nothing, within the run and on a rerun."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from unmask.store import StoreError, attribute, open_store

ray = pytest.importorskip("ray")
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this test file


class Samples(torch.utils.data.Dataset):
    """Random inputs seeded by index; with ``trap`` (a folder holding a file ``armed``), the process that
    reads sample ``trap_index`` writes its pid to ``trap/pid`` and waits to be killed."""

    def __init__(self, n: int = 48, delay: float = 0.0, trap: Path | None = None, trap_index: int = 20, log: Path | None = None) -> None:
        self.n, self.delay, self.trap, self.trap_index, self.log = n, delay, trap, trap_index, log

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        if self.log is not None:
            (self.log / str(os.getpid())).touch()
        if self.trap is not None and i == self.trap_index and (self.trap / "armed").exists():
            (self.trap / "pid").write_text(str(os.getpid()))
            time.sleep(120)
        if self.delay:
            time.sleep(self.delay)
        g = torch.Generator().manual_seed(1000 + i)
        return {"input": torch.randn(3, 8, 8, generator=g), "label": i % 3, "path": f"sample/{i}", "box": (1, 1, 5, 6), "truth": i % 2}


def build() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3)).eval()


SETTINGS = {"method": "lrp.epsilon_plus", "batch_size": 4, "shard_size": 8, "progress": False}
FIELDS = ("index", "prediction", "target", "label", "path", "box", "extra/truth")


@pytest.fixture(scope="module")
def cluster():
    """One local Ray cluster for the module: 2 CPUs (2 task slots), a small object store, no dashboard."""
    ray.init(num_cpus=2, object_store_memory=200 * 2**20, include_dashboard=False, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The single-process store the Ray runs must equal."""
    return attribute(build(), Samples(48), tmp_path_factory.mktemp("reference") / "store", **SETTINGS)


def assert_same(store, reference) -> None:
    """Every sample once, in order; the same integers and strings; relevance and logits within float32 noise."""
    assert store.complete and len(store) == reference.size
    np.testing.assert_array_equal(store.indices, np.arange(reference.size))
    for name in FIELDS:
        np.testing.assert_array_equal(store.field(name), reference.field(name), err_msg=name)
    scale = float(np.abs(reference.relevance()).max())
    np.testing.assert_allclose(store.relevance(), reference.relevance(), rtol=1e-4, atol=1e-6 * scale)
    np.testing.assert_allclose(store.target_logits, reference.target_logits, rtol=1e-5, atol=1e-6)
    assert not list((store.path / "shards").glob("*.tmp"))


def _kill_when_trapped(trap: Path, killed: list[int]) -> threading.Thread:
    """A thread that waits for the trapped worker's pid, disarms the trap and kills that process."""

    def watch() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (trap / "pid").exists():
            time.sleep(0.05)
        if not (trap / "pid").exists():
            return
        time.sleep(0.1)  # the pid is written completely
        pid = int((trap / "pid").read_text())
        assert pid != os.getpid()
        (trap / "armed").unlink()
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_two_ray_workers_write_the_single_process_store(cluster, reference, tmp_path):
    log = tmp_path / "pids"
    log.mkdir()
    finished: list[tuple[int, int]] = []
    store = attribute(build(), Samples(48, delay=0.01, log=log), tmp_path / "ray", engine="ray", on_shard=lambda a, b: finished.append((a, b)), **SETTINGS)
    assert_same(store, reference)
    assert sorted(finished) == [(s, s + 8) for s in range(0, 48, 8)]  # each shard written once
    workers = {int(p.name) for p in log.iterdir()} - {os.getpid()}
    assert workers, "the samples were read on Ray workers, not only here"
    assert ray.cluster_resources()["CPU"] == 2
    # a rerun of a complete store computes nothing
    again: list[tuple[int, int]] = []
    attribute(build(), Samples(48), tmp_path / "ray", engine="ray", on_shard=lambda a, b: again.append((a, b)), **SETTINGS)
    assert again == []


def test_a_killed_worker_loses_and_doubles_nothing(cluster, reference, tmp_path):
    trap = tmp_path / "trap"
    trap.mkdir()
    # 1. no retries: the killed worker's shard is reported lost, every other shard is in the store
    (trap / "armed").touch()
    killed: list[int] = []
    watcher = _kill_when_trapped(trap, killed)
    with pytest.raises(StoreError, match=r"1 shard\(s\) were lost on the Ray cluster \(\[16, 24\).*run the same call again"):
        attribute(build(), Samples(48, trap=trap), tmp_path / "store", engine="ray", ray_options={"max_retries": 0}, **SETTINGS)
    watcher.join()
    assert killed, "the trapped worker was killed"
    partial = open_store(tmp_path / "store")
    assert len(partial) == 40 and partial.missing() == [(16, 24)]
    # 2. the rerun computes only that shard, and the store equals the single-process one
    finished: list[tuple[int, int]] = []
    resumed = attribute(build(), Samples(48), tmp_path / "store", engine="ray", on_shard=lambda a, b: finished.append((a, b)), **SETTINGS)
    assert finished == [(16, 24)]
    assert_same(resumed, reference)
    # 3. with Ray's retries (the default) the killed worker's shard is redone within the run
    (trap / "pid").unlink()
    (trap / "armed").touch()
    killed.clear()
    watcher = _kill_when_trapped(trap, killed)
    retried = attribute(build(), Samples(48, trap=trap), tmp_path / "retried", engine="ray", **SETTINGS)
    watcher.join()
    assert killed
    assert_same(retried, reference)


def test_errors_in_a_task_reach_the_caller_and_bad_engines_are_refused(cluster, tmp_path):
    class Bad(Samples):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            if i >= 8:
                item["input"] = torch.zeros(3, 6, 6)
            return item

    with pytest.raises(StoreError, match="input shapes"):
        attribute(build(), Bad(16), tmp_path / "bad", engine="ray", **SETTINGS)
    assert len(open_store(tmp_path / "bad")) in (0, 8)  # the good shard may have landed, the bad one did not
    with pytest.raises(StoreError, match="engine must be"):
        attribute(build(), Samples(8), tmp_path / "x", engine="dask", **SETTINGS)


def test_attribute_command_on_ray(cluster, tmp_path, capsys):
    from unmask.cli import main

    local = tmp_path / "local"
    assert main(["attribute", "cleverhans:test:24", "--out", str(local), "--shard-size", "8", "--batch-size", "8", "--no-progress"]) == 0
    on_ray = tmp_path / "ray"
    assert main(["attribute", "cleverhans:test:24", "--out", str(on_ray), "--shard-size", "8", "--batch-size", "8", "--no-progress", "--engine", "ray"]) == 0
    a, b = open_store(local), open_store(on_ray)
    assert b.complete
    np.testing.assert_array_equal(a.predictions, b.predictions)
    np.testing.assert_allclose(b.relevance(), a.relevance(), rtol=1e-4, atol=1e-6 * float(np.abs(a.relevance()).max()))
    capsys.readouterr()


class Damaged(Samples):
    """Sample 5 cannot be read, as a damaged image file."""

    def __getitem__(self, i: int):
        if i == 5:
            raise OSError("image file is truncated")
        return super().__getitem__(i)


def test_ray_skips_damaged_samples_as_the_local_engine_does(cluster, tmp_path):
    local = attribute(build(), Damaged(16), tmp_path / "local", skip_bad=True, **SETTINGS)
    on_ray = attribute(build(), Damaged(16), tmp_path / "ray", skip_bad=True, engine="ray", **SETTINGS)
    assert [s["index"] for s in on_ray.skipped] == [s["index"] for s in local.skipped] == [5]
    np.testing.assert_array_equal(on_ray.field("prediction"), local.field("prediction"))
    good = np.arange(16) != 5
    np.testing.assert_allclose(on_ray.relevance()[good], local.relevance()[good], rtol=1e-4, atol=1e-6)
