"""The results store: exactly once and the same numbers after kill -9, shards from workers, merge, errors."""
from __future__ import annotations

import argparse
import importlib.util
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch


from unmask.store import StoreError, attribute, merge, open_store
from tolerance import assert_close_across_batches

# A tiny model and a slow data set, written to a file so that a child process builds exactly the same.
HELPER = textwrap.dedent(
    '''
    import sys, time
    import torch
    from torch import nn

    def build():
        torch.manual_seed(0)
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(4 * 4 * 4, 3),
        ).eval()

    class Slow(torch.utils.data.Dataset):
        def __init__(self, n=48, delay=0.0):
            self.n, self.delay = n, delay
        def __len__(self):
            return self.n
        def __getitem__(self, i):
            if self.delay:
                time.sleep(self.delay)
            g = torch.Generator().manual_seed(1000 + i)
            x = torch.randn(3, 8, 8, generator=g)
            return {"input": x, "label": i % 3, "path": f"sample/{i}", "box": (1, 1, 5, 6), "truth": i % 2}

    if __name__ == "__main__":
        from unmask.store import attribute
        attribute(build(), Slow(int(sys.argv[2]), float(sys.argv[3])), sys.argv[1], method="lrp.epsilon_plus",
                  batch_size=4, shard_size=8, progress=False)
    '''
)


@pytest.fixture()
def helper(tmp_path):
    path = tmp_path / "helper_model.py"
    path.write_text(HELPER)
    spec = importlib.util.spec_from_file_location("helper_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return path, module


FIELDS = ("index", "prediction", "target", "target_logit", "target_probability", "label", "path", "box", "extra/truth")


def assert_same(a, b):
    assert len(a) == len(b) == a.size
    for name in FIELDS:
        np.testing.assert_array_equal(a.field(name), b.field(name), err_msg=name)
    np.testing.assert_array_equal(a.relevance(), b.relevance())


def test_kill_9_then_resume_gives_every_sample_once_and_the_same_numbers(tmp_path, helper):
    script, module = helper
    reference = attribute(module.build(), module.Slow(48), tmp_path / "reference", method="lrp.epsilon_plus",
                          batch_size=4, shard_size=8, progress=False)
    store = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, str(script), str(store), "48", "0.03"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    shards = store / "shards"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until some but not all shards are finished
        done = list(shards.glob("*.h5")) if shards.exists() else []
        if len(done) >= 2:
            break
        assert child.poll() is None, child.stderr.read().decode()
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    partial = open_store(store)
    assert 0 < len(partial) < 48, "the kill should land mid-run"
    assert partial.missing() and not partial.complete
    np.testing.assert_array_equal(partial.relevance(), reference.relevance(partial.indices))  # finished shards are intact

    finished_shards = []
    resumed = attribute(module.build(), module.Slow(48), store, method="lrp.epsilon_plus", batch_size=4,
                        shard_size=8, progress=False, on_shard=lambda a, b: finished_shards.append((a, b)))
    assert resumed.complete and resumed.missing() == []
    np.testing.assert_array_equal(resumed.indices, np.arange(48))  # each sample exactly once, in order
    assert not list(shards.glob("*.tmp")), "temporary files of the killed run are cleaned up"
    assert len(finished_shards) == 6 - len(partial) // 8  # only the missing shards were computed
    assert_same(resumed, reference)


def test_workers_share_the_shards_and_merge_to_the_single_run(tmp_path, helper):
    _, module = helper
    data = module.Slow(40)
    single = attribute(module.build(), data, tmp_path / "single", batch_size=4, shard_size=8, progress=False)
    parts = [attribute(module.build(), data, tmp_path / f"part{w}", batch_size=4, shard_size=8, worker=w, workers=2, progress=False) for w in range(2)]
    assert [len(p) for p in parts] == [24, 16] and not parts[0].complete
    with pytest.raises(StoreError, match="16 of 40"):
        merge(tmp_path / "part1", tmp_path / "bad.h5")
    merged = merge([tmp_path / "part0", tmp_path / "part1"], tmp_path / "all.h5")
    assert merged.complete and merged.merged
    assert_same(merged, single)
    # two workers writing into the same folder
    for w in range(2):
        attribute(module.build(), data, tmp_path / "shared", batch_size=4, shard_size=8, worker=w, workers=2, progress=False)
    assert_same(open_store(tmp_path / "shared"), single)


def test_store_contents_and_reading(tmp_path, helper):
    _, module = helper
    model, data = module.build(), module.Slow(20)
    store = attribute(model, data, tmp_path / "s", method="gradient_x_input", batch_size=6, shard_size=8,
                      relevance="full", save_logits=True, progress=False)
    x = torch.stack([data[i]["input"] for i in range(20)])
    expected = unmask_explain(model, x)
    assert_close_across_batches(store.relevance(), expected.relevance)  # batches of 6 vs 20
    output = model(x).detach()
    np.testing.assert_array_equal(store.predictions, output.argmax(1).numpy())
    assert_close_across_batches(store.target_logits, output.max(1).values)
    assert_close_across_batches(store.field("logits"), output)
    assert store.labels.tolist() == [i % 3 for i in range(20)]
    assert list(store.paths[:2]) == ["sample/0", "sample/1"]
    assert store.extra("truth").tolist() == [i % 2 for i in range(20)]
    assert store.boxes.shape == (20, 4)
    assert store.settings["method"] == "gradient_x_input" and store.fields["input"] == [3, 8, 8]
    order = [7, 3, 19, 3]
    np.testing.assert_array_equal(store.relevance(order), expected.relevance.numpy()[order])
    pooled = store.heatmaps(size=4)
    manual = torch.nn.functional.adaptive_avg_pool2d(expected.relevance.sum(1, keepdim=True), 4)[:, 0].numpy()
    assert_close_across_batches(pooled, manual)
    small = attribute(model, data, tmp_path / "pooled", method="gradient_x_input", relevance="pooled", pool=2, progress=False)
    assert small.relevance_shape == (2, 2)
    # complete already: nothing to do, same store back
    again = attribute(model, data, tmp_path / "s", method="gradient_x_input", batch_size=6, shard_size=8,
                      relevance="full", save_logits=True, progress=False)
    assert again.complete


def unmask_explain(model, x):
    import unmask

    return unmask.explain(model, x, method="gradient_x_input")


def test_errors_speak_to_the_user(tmp_path, helper):
    _, module = helper
    model, data = module.build(), module.Slow(12)
    attribute(model, data, tmp_path / "s", batch_size=4, shard_size=8, progress=False)
    with pytest.raises(StoreError, match="batch_size: store has 4, this run 2"):
        attribute(model, data, tmp_path / "s", batch_size=2, shard_size=8, progress=False)
    with pytest.raises(StoreError, match="method"):
        attribute(model, data, tmp_path / "s", method="saliency", batch_size=4, shard_size=8, progress=False)
    with pytest.raises(StoreError, match="relevance must be one of"):
        attribute(model, data, tmp_path / "x", relevance="half", progress=False)
    with pytest.raises(StoreError, match="empty"):
        attribute(model, module.Slow(0), tmp_path / "x", progress=False)
    with pytest.raises(StoreError, match="worker must be"):
        attribute(model, data, tmp_path / "x", worker=2, workers=2, progress=False)

    class Mixed(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return torch.zeros(3, 8 + (i == 3), 8), 0

    with pytest.raises(StoreError, match="one size"):
        attribute(model, Mixed(), tmp_path / "mixed", batch_size=4, progress=False)
    with pytest.raises(StoreError, match="no such store"):
        open_store(tmp_path / "nothing")
    with pytest.raises(StoreError, match="not a results store"):
        (tmp_path / "empty").mkdir()
        open_store(tmp_path / "empty")


def _command(module, argv):
    parser = argparse.ArgumentParser()
    module.configure(parser)
    return module.run(parser.parse_args(argv))


def test_attribute_command_on_an_image_folder_and_a_file_list(tmp_path, capsys):
    from PIL import Image

    from unmask.cli import attribute as command
    from unmask.data.folders import FileList, ImageFolder

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (tmp_path / "img" / label).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 255, size=(40, 36, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "img" / label / f"{i}.png")
    (tmp_path / "model.py").write_text(textwrap.dedent(
        '''
        import torch
        from torch import nn
        def build():
            torch.manual_seed(0)
            return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 2))
        '''
    ))
    folder = ImageFolder(tmp_path / "img")
    assert folder.classes == ["cat", "dog"] and folder.targets == [0, 0, 0, 1, 1, 1]
    x, label, path = folder[4]
    assert x.shape == (3, 40, 36) and label == 1 and path.endswith("dog/1.png")
    code = _command(command, [str(tmp_path / "img"), "--out", str(tmp_path / "store"), "--model", f"{tmp_path / 'model.py'}:build",
                              "--image-size", "32", "--batch-size", "4", "--shard-size", "4", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    store = open_store(tmp_path / "store")
    assert store.complete and store.labels.tolist() == [0, 0, 0, 1, 1, 1] and store.relevance_shape == (32, 32)
    assert store.classes == ["cat", "dog"]

    (tmp_path / "list.csv").write_text("path,label,x0,y0,x1,y1\nimg/cat/0.png,cat,0,0,18,20\nimg/dog/2.png,dog,,,,\n")
    listed = FileList(tmp_path / "list.csv")
    assert listed.classes == ["cat", "dog"] and listed.targets == [0, 1]
    assert listed[0]["box"] == [0.0, 0.0, 18.0, 20.0] and np.isnan(listed[1]["box"]).all()
    (tmp_path / "list.txt").write_text("# comment\nimg/cat/1.png 0\nimg/dog/0.png\t1\n")
    assert FileList(tmp_path / "list.txt").targets == [0, 1]

    assert _command(command, [str(tmp_path / "missing"), "--out", str(tmp_path / "x"), "--model", f"{tmp_path / 'model.py'}:build"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert _command(command, ["cleverhans:test", "--out", str(tmp_path / "x"), "--method", "nope"]) == 2
    assert "unknown method" in capsys.readouterr().err
    assert _command(command, ["--merge", str(tmp_path / "store"), "--out", str(tmp_path / "merged.h5")]) == 0
    assert open_store(tmp_path / "merged.h5").complete


def test_store_positions_of_a_selection(tmp_path, helper):
    _, module = helper
    store = attribute(module.build(), module.Slow(6), tmp_path / "s", method="gradient", batch_size=3, shard_size=4, progress=False)
    np.testing.assert_array_equal(store.positions(), np.arange(6))
    np.testing.assert_array_equal(store.positions([0, -1, 2]), [0, 5, 2])
    np.testing.assert_array_equal(store.positions(np.arange(6) % 2 == 1), [1, 3, 5])
    with pytest.raises(StoreError, match="out of range"):
        store.positions([6])
    with pytest.raises(StoreError, match="boolean selection needs 6"):
        store.positions([True, False])


def test_attribute_never_changes_the_users_model(tmp_path, helper):
    _, module = helper
    model = module.build().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    store = attribute(model, module.Slow(8), tmp_path / "s", method="gradient", batch_size=4, shard_size=8, progress=False)
    assert len(store) == 8
    assert all(m.training for m in model.modules())  # still in training mode: the store explained a copy
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
