"""``unmask evaluate`` run directly: configure() on a fresh parser, then run() with a tiny model."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unmask.cli import evaluate as command

MODEL_FILE = '''
import torch
from torch import nn


def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4), nn.Conv2d(6, 8, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 5))
'''


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (OpenMP start-up dominates on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def setup(tmp_path: Path):
    (tmp_path / "tiny.py").write_text(MODEL_FILE)
    images = []
    for i in range(3):
        rng = np.random.default_rng(i)
        path = tmp_path / f"image{i}.png"
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(path)
        images.append(str(path))
    return tmp_path, images


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    command.configure(parser)
    return command.run(parser.parse_args(argv))


def base(tmp_path: Path) -> list[str]:
    return ["--model", f"{tmp_path / 'tiny.py'}:make", "--image-size", "32", "--region", "4", "--steps", "10",
            "--batch-size", "16", "--no-progress", "--out", str(tmp_path / "out")]


def test_writes_json_plot_and_page(setup, capsys):
    tmp_path, images = setup
    code = run(images + base(tmp_path) + ["--method", "gradient_x_input", "sensitivity", "random",
                                          "--metric", "morf", "lerf", "selectivity", "conservation"])
    assert code == 0
    out = tmp_path / "out"
    data = json.loads((out / "evaluation.json").read_text())
    settings = data["settings"]
    assert settings["steps"] == 10 and settings["region"] == 4 and settings["score"] == "logit"
    assert settings["perturbation"] == "uniform" and settings["images"] == ["image0", "image1", "image2"]
    assert list(data["methods"]) == ["gradient_x_input", "sensitivity", "random"]
    for name, entry in data["methods"].items():
        for order in ("morf", "lerf"):
            assert isinstance(entry[order]["aopc"], float) and len(entry[order]["curve"]) == 11
            assert entry[order]["curve"][0] == 0.0
            assert entry[order]["aopc"] == pytest.approx(sum(entry[order]["curve"]) / 11)
        assert entry["selectivity"]["value"] == pytest.approx(entry["morf"]["aopc"] - entry["lerf"]["aopc"])
        assert math.isfinite(entry["conservation"]["value"])
    # gradient x input of a ReLU net with biases does not conserve exactly, but far better than random
    assert data["methods"]["gradient_x_input"]["conservation"]["value"] < data["methods"]["random"]["conservation"]["value"]
    with Image.open(out / "aopc_curves.png") as png:
        assert png.format == "PNG" and png.size[0] > 400
    page = (out / "index.html").read_text()
    assert "gradient_x_input" in page and "aopc_curves.png" in page and "evaluation.json" in page
    printed = capsys.readouterr().out
    assert "gradient_x_input" in printed and "evaluated 3 methods on 3 images" in printed


def test_same_seed_same_numbers(setup):
    tmp_path, images = setup
    args = images[:1] + base(tmp_path) + ["--method", "gradient"]
    assert run(args) == 0
    first = json.loads((tmp_path / "out" / "evaluation.json").read_text())["methods"]
    assert run(args) == 0
    second = json.loads((tmp_path / "out" / "evaluation.json").read_text())["methods"]
    assert first == second
    assert run(args + ["--seed", "1"]) == 0
    third = json.loads((tmp_path / "out" / "evaluation.json").read_text())["methods"]
    assert third["gradient"]["morf"]["curve"] != first["gradient"]["morf"]["curve"]


def test_default_methods_and_extra_metrics(setup):
    tmp_path, images = setup
    code = run(images[:2] + base(tmp_path) + ["--metric", "continuity", "randomisation", "--randomisation-layers", "2",
                                              "--score", "probability", "--perturbation", "blur"])
    assert code == 0
    data = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert list(data["methods"]) == list(command.DEFAULT_METHODS)
    assert data["settings"]["score"] == "probability"
    for entry in data["methods"].values():
        assert set(entry) == {"continuity", "randomisation"}
        assert len(entry["randomisation"]["layers"]) == 2
    assert data["methods"]["random"]["randomisation"]["value"] == pytest.approx(1.0)  # ignores the model


def test_usage_errors_exit_2_with_one_line(setup, capsys):
    tmp_path, images = setup
    assert run(images + base(tmp_path) + ["--method", "no.such.method"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("unmask: error: unknown method 'no.such.method'") and "\n" not in err
    assert run(images + base(tmp_path) + ["--steps", "65"]) == 2
    assert "exceeds the 64 regions" in capsys.readouterr().err
    assert run(images + ["--model", "no_such_module_xyz:make", "--no-progress"]) == 2
    assert "unmask: error: cannot load" in capsys.readouterr().err
    assert run([str(tmp_path / "missing.png")] + base(tmp_path)) == 2
    assert "no usable images" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        run(images + base(tmp_path) + ["--metric", "beauty"])
    assert exit_info.value.code == 2


def test_a_missing_image_is_reported_and_the_rest_evaluated(setup, capsys):
    tmp_path, images = setup
    code = run(images[:1] + [str(tmp_path / "missing.png")] + base(tmp_path) + ["--method", "gradient"])
    assert code == 2
    data = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert data["settings"]["images"] == ["image0"] and "missing.png" in data["failures"][0]["error"]
    assert "missing.png" in capsys.readouterr().err


def test_a_failing_method_exits_1_and_keeps_the_others(setup, register_method, capsys):
    tmp_path, images = setup

    class Broken:
        def __init__(self, model):
            pass

        def explain(self, inputs, target=None):
            raise RuntimeError("no rule for this layer")

    register_method("test.broken", Broken)
    code = run(images[:1] + base(tmp_path) + ["--method", "test.broken", "gradient"])
    assert code == 1
    data = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    assert list(data["methods"]) == ["gradient"] and "no rule for this layer" in data["failures"][0]["error"]
    assert "test.broken failed" in capsys.readouterr().err


def test_page_marks_the_best_real_method():
    from unmask.evaluate.report import render_page

    page = render_page({"settings": {"model": "m"}, "methods": {
        "a": {"morf": {"aopc": 1.0}, "lerf": {"aopc": 0.5}},
        "b": {"morf": {"aopc": 2.0}, "lerf": {"aopc": 0.7}},
        "random": {"morf": {"aopc": 3.0}, "lerf": {"aopc": 0.1}},
    }}, curves=None)
    assert '<td class="num best">2</td>' in page and '<td class="num best">0.5</td>' in page
    assert "<img" not in page
