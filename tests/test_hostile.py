"""Hostile and careless input, from the user's side: one attempt of each class of scripts/hostile.py run as
a real ``unmask`` subprocess (one-line error, exit code, finished outputs intact), and the API checks
behind them (parameter validation, batch-independent SmoothGrad, the store's lock, the last-resort handler)."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import unmask
from unmask.cli._run import run_command
from unmask.store import StoreError, attribute, merge
from tolerance import assert_close_across_batches

_SPEC = importlib.util.spec_from_file_location("hostile", Path(__file__).resolve().parents[1] / "scripts" / "hostile.py")
hostile = importlib.util.module_from_spec(_SPEC)
sys.modules["hostile"] = hostile  # dataclasses look their module up
_SPEC.loader.exec_module(hostile)

#: One attempt per class of the issue (the whole catalogue: scripts/hostile.py).
CHOSEN = [
    "nan logits for some images",            # finished work lost
    "report names and non-UTF-8 file name",
    "attribute bad parameter, then the corrected command",
    "attribute a damaged image among good ones",
    "dissect unwritable --out",
    "merge onto store.json",                 # data destroyed
    "folder labels that are not model classes",  # silent wrong answers (the API tests below: parameters, SmoothGrad, SpRAy)
    "--device meta",                         # tracebacks
    "a FIFO as an image",                    # hangs
]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    hostile.prepare(root)
    return root


@pytest.mark.parametrize("name", CHOSEN)
def test_hostile_input_gets_one_line_the_right_exit_code_and_keeps_outputs(workspace, name):
    attempt = next(a for a in hostile.CATALOGUE if a.name == name)
    row = hostile.run_attempt(workspace, attempt)
    assert row.code in attempt.codes, (name, row.code)
    assert not row.traceback and row.one_line and row.message_ok, name
    assert row.outputs_ok is not False, f"{name}: finished outputs lost or changed"


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)).eval()


@pytest.mark.parametrize("method, params, message", [
    ("lrp.epsilon", {"epsilon": math.inf}, "epsilon must be a finite number"),
    ("lrp.epsilon", {"epsilon": math.nan}, "epsilon must be a finite number"),
    ("lrp.epsilon_gamma_box", {"gamma": math.nan, "low": -1.0, "high": 1.0}, "gamma must be a finite number"),
    ("lrp.epsilon_gamma_box", {"low": -math.inf, "high": 1.0}, "low must be finite"),
    ("smoothgrad", {"noise_level": math.inf}, "noise_level"),
])
def test_non_finite_parameters_are_refused_by_the_api(method, params, message):
    with pytest.raises(ValueError, match=message):
        unmask.explain(tiny(), torch.rand(1, 3, 8, 8), method, **params)


def test_rule_and_perturbation_constructors_refuse_non_finite_values():
    from unmask.analyze.dissect import parse_perturbation
    from unmask.lrp import rules

    for make in (lambda: rules.Gamma(math.inf), lambda: rules.AlphaBeta(math.nan, 1.0), lambda: rules.ZPlus(stabilizer=math.nan),
                 lambda: rules.Norm(math.inf), lambda: parse_perturbation("rotate:nan"), lambda: parse_perturbation("noise:1e999")):
        with pytest.raises(ValueError, match="finite"):
            make()


def test_inputs_targets_and_outputs_are_checked_with_a_message():
    model, x = tiny(), torch.rand(3, 8, 8)
    with pytest.raises(ValueError, match=r"add a batch dimension: x.unsqueeze\(0\)"):
        unmask.explain(model, x, "gradient")
    with pytest.raises(ValueError, match="not booleans"):
        unmask.explain(model, x[None], "gradient", target=True)

    class Pair(nn.Module):
        def forward(self, x):
            return model(x), model(x)

    with pytest.raises(ValueError, match="returns a tuple"):
        unmask.explain(Pair().eval(), x[None], "gradient")


def test_smoothgrad_of_a_sample_does_not_depend_on_its_batch():
    model, x = tiny(), torch.rand(5, 3, 8, 8)
    together = unmask.explain(model, x, "smoothgrad", target=1, samples=6, seed=3).relevance
    for k in (0, 3):
        alone = unmask.explain(model, x[k : k + 1], "smoothgrad", target=1, samples=6, seed=3).relevance
        scale = together[k].abs().max()
        assert (alone[0] - together[k]).abs().max() <= 1e-4 * scale  # was a relative difference of 1.22


def test_density_clusterers_report_the_groups_they_found():
    from unmask.analyze.spray import spray

    rng = np.random.default_rng(0)
    heatmaps = np.concatenate([rng.normal(c, 0.05, (20, 4, 4)) for c in (0.0, 1.0, 2.0)]).astype(np.float32)
    result = spray(heatmaps, clusterer="dbscan", embedding=None)
    assert result.n_clusters == len(set(result.labels.tolist()) - {-1})


def test_a_second_writer_is_refused_by_name_and_the_first_ones_files_survive(tmp_path):
    from unmask.store._guard import acquire_writer_lock

    data = [(torch.rand(3, 8, 8), 0) for _ in range(4)]
    store = tmp_path / "s"
    attribute(tiny(), data[:0] + data, store, method="gradient", shard_size=2, progress=False)  # a finished store
    held = acquire_writer_lock(store, 0, 1)  # as if a first writer were running
    try:
        (store / "shards" / ".00000000-00000002.h5.abcd.tmp").write_bytes(b"in progress")
        (store / "shards" / "00000000-00000002.h5").unlink()
        with pytest.raises(StoreError, match=r"being written as worker 0 of 1 by pid \d+"):
            attribute(tiny(), data, store, method="gradient", shard_size=2, progress=False)
        assert (store / "shards" / ".00000000-00000002.h5.abcd.tmp").read_bytes() == b"in progress"
    finally:
        held.close()
    assert len(attribute(tiny(), data, store, method="gradient", shard_size=2, progress=False)) == 4  # the lock is gone with its holder


def test_merge_never_overwrites_what_it_did_not_make(tmp_path):
    data = [(torch.rand(3, 8, 8), 0) for _ in range(4)]
    attribute(tiny(), data, tmp_path / "s", method="gradient", shard_size=2, progress=False)
    manifest = (tmp_path / "s" / "store.json").read_bytes()
    for target in (tmp_path / "s" / "store.json", tmp_path / "s" / "shards" / "new.h5"):
        with pytest.raises(StoreError, match="inside the store"):
            merge(tmp_path / "s", target)
    (tmp_path / "mine.h5").write_bytes(b"not a store")
    with pytest.raises(StoreError, match="not a merged unmask store"):
        merge(tmp_path / "s", tmp_path / "mine.h5")
    assert (tmp_path / "mine.h5").read_bytes() == b"not a store"
    assert (tmp_path / "s" / "store.json").read_bytes() == manifest
    merge(tmp_path / "s", tmp_path / "all.h5")
    assert len(merge(tmp_path / "s", tmp_path / "all.h5")) == 4  # its own earlier output may be replaced


def test_an_unexpected_failure_is_one_line_and_a_saved_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UNMASK_TRACEBACK_DIR", str(tmp_path))

    def broken(args):
        return {}["missing"]

    assert run_command("explain", broken, None) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "explain failed: KeyError: 'missing'" in err
    saved = Path(err.split("traceback saved to ")[1].split(";")[0])
    assert saved.parent == tmp_path and "Traceback (most recent call last)" in saved.read_text()
    disk_full = OSError(28, "No space left on device", "out/x.npy")
    assert run_command("attribute", lambda args: (_ for _ in ()).throw(disk_full), None) == 1
    assert "out/x.npy: no space left on device" in capsys.readouterr().err


def test_nan_tiff_and_fifo_are_refused_when_loaded(tmp_path):
    import os

    from PIL import Image

    from unmask.data import ImageLoadError, load_image

    pixels = np.ones((40, 40), np.float32)
    pixels[3, 4] = np.nan
    Image.fromarray(pixels, mode="F").save(tmp_path / "nan.tif")
    with pytest.raises(ImageLoadError, match="1 NaN or infinite pixel"):
        load_image(tmp_path / "nan.tif")
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(ImageLoadError, match="not a regular file"):
        load_image(tmp_path / "pipe.png")


def test_a_sample_that_cannot_be_loaded_is_skipped_and_listed(tmp_path):
    from unmask.data import ImageLoadError

    class OneDamaged:
        def __len__(self):
            return 5

        def __getitem__(self, index):
            if index == 2:
                raise ImageLoadError(f"img{index}.png", "is damaged or truncated and cannot be decoded")
            torch.manual_seed(index)
            return torch.rand(3, 8, 8), index % 2, f"img{index}.png"

    with pytest.raises(ImageLoadError):
        attribute(tiny(), OneDamaged(), tmp_path / "strict", method="gradient", shard_size=2, progress=False)
    store = attribute(tiny(), OneDamaged(), tmp_path / "s", method="gradient", shard_size=2, progress=False, skip_bad=True)
    assert store.complete and len(store) == 5
    assert store.skipped == [{"index": 2, "path": "img2.png", "error": "img2.png: is damaged or truncated and cannot be decoded"}]
    assert store.predictions[2] == -1 and np.isnan(store.relevance([2])).all()
    good = [0, 1, 3, 4]
    assert (store.predictions[good] >= 0).all() and np.isfinite(store.relevance(good)).all()
    x = torch.stack([OneDamaged()[i][0] for i in good])
    expected = unmask.explain(tiny(), x, "gradient").relevance.sum(1)
    assert_close_across_batches(store.relevance(good), expected)
    assert merge(tmp_path / "s", tmp_path / "m.h5").skipped == store.skipped


def test_folder_labels_are_mapped_to_model_classes_by_name_or_refused(tmp_path):
    from unmask.cli._args import UsageError
    from unmask.cli.attribute import _labels_as_model_classes

    class Folder:
        classes = ["cat", "dog"]

        def __len__(self):
            return 2

        def __getitem__(self, index):
            return torch.zeros(3, 8, 8), index, f"{self.classes[index]}/0.png"

    mapped = _labels_as_model_classes(Folder(), ["circle", "dog", "cat"], "label")
    assert [mapped[i][1] for i in range(2)] == [2, 1] and mapped.classes == ["circle", "dog", "cat"]
    assert _labels_as_model_classes(Folder(), ["cat", "dog", "circle"], "label").__class__ is Folder  # same order: as it is
    unknown = _labels_as_model_classes(Folder(), ["circle", "square", "cross"], "predicted")
    assert unknown.__class__ is Folder  # labels keep their own names (store.label_classes)
    with pytest.raises(UsageError, match="not the model's class names"):
        _labels_as_model_classes(Folder(), ["circle", "square", "cross"], "label")


def test_an_interrupted_explain_keeps_the_finished_images(tmp_path, register_method, capsys):
    from unmask import cli
    from unmask.attribution import GradientXInput

    calls = []

    class StopsOnTheSecondBatch(GradientXInput):
        def explain(self, inputs, target=None):
            calls.append(len(inputs))
            if len(calls) == 2:
                raise KeyboardInterrupt
            return super().explain(inputs, target)

    register_method("test.stops", StopsOnTheSecondBatch)
    (tmp_path / "models.py").write_text(hostile.MODELS, encoding="utf-8")
    images = [str(hostile._picture(tmp_path / f"{k}.png", k)) for k in range(4)]
    out = tmp_path / "out"
    code = cli.main(["explain", *images, "--model", f"{tmp_path / 'models.py'}:build", "--image-size", "32", "--no-progress",
                     "--batch-size", "2", "--out", str(out), "--method", "test.stops"])
    err = capsys.readouterr().err
    assert code == 130 and "unmask: error: interrupted" in err
    results = json.loads((out / "results.json").read_text())
    assert [image["name"] for image in results["images"]] == ["0", "1"]  # the first batch, finished before Ctrl-C
    assert (out / "index.html").is_file() and (out / "0" / "test.stops.npy").is_file()
    assert "the run stopped early: KeyboardInterrupt" in results["failures"][-1]["error"]


def test_samples_with_non_finite_relevance_are_listed_in_the_store(tmp_path, register_method):
    from unmask.attribution import Gradient

    class HolesInOdd(Gradient):
        def explain(self, inputs, target=None):
            explanation = super().explain(inputs, target)
            explanation.relevance[1::2, 0, 0, 0] = float("nan")
            return explanation

    register_method("test.holes", HolesInOdd)
    data = [(torch.rand(3, 8, 8), 0) for _ in range(6)]
    store = attribute(tiny(), data, tmp_path / "s", method="test.holes", batch_size=2, shard_size=4, progress=False)
    assert store.non_finite == [1, 3, 5]
    assert merge(tmp_path / "s", tmp_path / "m.h5").non_finite == [1, 3, 5]
