"""The ``unmask`` command line: outputs, results.json, index.html, model specs, errors and exit codes.

Most tests run ``unmask explain`` in-process on a tiny model with a test method (input x gradient,
registered for the test only), so they take well under a second each; one runs the real default model.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from unmask import cli, report, viz, zoo
from unmask.cli import _params as cli_params
from unmask.explanation import Explanation
from unmask.targets import output_gradient
from tolerance import assert_close_across_batches

METHOD = "test.input_x_gradient"

TINY_MODULE = '''
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)
    )


def broken():
    raise RuntimeError("weights are missing")


def not_a_model():
    return 42


def packaged():
    from unmask.zoo import Preprocessing, ZooModel

    return ZooModel("tiny", build(), ["red", "green", "blue"], Preprocessing(size=40, resize=None, mean=(0.5,) * 3, std=(0.5,) * 3))
'''


class InputXGradient:
    """Stand-in attribution method: relevance = input * d f_c / d input (exact, simple)."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def explain(self, inputs: torch.Tensor, target=None) -> Explanation:
        x = inputs.detach().requires_grad_(True)
        with torch.enable_grad():
            output = self.model(x)
            seed, index = output_gradient(output.detach(), target)
            (grad,) = torch.autograd.grad(output, x, seed)
        return Explanation(grad * x.detach(), output.detach(), index, METHOD, x.detach(), {})


class Boom:
    def __init__(self, model: nn.Module) -> None:
        pass

    def explain(self, inputs, target=None):
        raise RuntimeError("this method always fails")


@pytest.fixture
def method(register_method):
    register_method(METHOD, InputXGradient)
    register_method("test.boom", Boom)
    return METHOD


@pytest.fixture
def tiny(tmp_path, monkeypatch) -> Path:
    """tiny_models.py in an importable folder; returns its path."""
    folder = tmp_path / "models"
    folder.mkdir()
    path = folder / "tiny_models.py"
    path.write_text(TINY_MODULE)
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("tiny_models", None)
    return path


def picture(path: Path, seed: int, size=(48, 40), mode="RGB") -> Path:
    rng = np.random.default_rng(seed)
    array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(array).convert(mode).save(path)
    return path


def run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def tiny_args(tiny: Path, out: Path, *extra):
    return ["--model", f"{tiny}:build", "--image-size", "32", "--out", out, "--no-progress", "--method", METHOD, *extra]


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [value for key, value in attrs if key in ("href", "src") and value]


def test_explain_writes_pictures_arrays_results_and_page(tmp_path, tiny, method, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    picture(folder / "b.png", 1)
    picture(folder / "a.jpg", 2)
    single = picture(tmp_path / "single.png", 3, size=(64, 64))
    classes = tmp_path / "classes.txt"
    classes.write_text("apple\nbanana\ncherry\n")
    out = tmp_path / "out"

    code, stdout, stderr = run(["explain", folder, single, *tiny_args(tiny, out, "--classes", classes)], capsys)
    assert code == 0, stderr
    assert stderr == ""
    assert re.search(r"explained 3 of 3 images with 1 method in [\d.]+ s; open .*index.html", stdout)

    results = json.loads((out / "results.json").read_text())
    assert results["methods"] == [METHOD] and results["failures"] == []
    assert [i["name"] for i in results["images"]] == ["a", "b", "single"]  # folder sorted, then the file
    assert results["summary"]["images"] == results["summary"]["explained"] == 3
    model = cli.load_model_spec(f"{tiny}:build", image_size=32).model
    for record in results["images"]:
        folder_out = out / record["dir"]
        for name in ("input.png", "grid.png", "overlay.png", f"{METHOD}.png", f"{METHOD}.overlay.png", f"{METHOD}.npy"):
            assert (folder_out / name).is_file(), name
        assert Image.open(folder_out / f"{METHOD}.png").size == (32, 32)
        top5 = record["top5"]
        assert len(top5) == 3  # the model has 3 classes
        assert [t["name"] for t in top5] == [["apple", "banana", "cherry"][t["index"]] for t in top5]
        probabilities = [t["probability"] for t in top5]
        assert probabilities == sorted(probabilities, reverse=True) and abs(sum(probabilities) - 1) < 1e-5
        assert record["target"]["index"] == top5[0]["index"]  # 'predicted'
        # the stored relevance is the method's output on the stored input
        relevance = np.load(folder_out / f"{METHOD}.npy")
        assert relevance.shape == (3, 32, 32) and relevance.dtype == np.float32
        crop = Image.open(folder_out / "input.png")
        x = zoo.Preprocessing(size=32, resize=37).to_tensor(crop)
        expected = InputXGradient(model).explain(x, target=record["target"]["index"])
        assert_close_across_batches(relevance, expected.relevance[0])
        # the pictures are unmask.viz's in the report's style, for the stored relevance and input
        heat = relevance.sum(0)
        for name, expected_picture in (
            (f"{METHOD}.png", viz.heatmap(heat, **viz.HEATMAP_STYLE)),
            (f"{METHOD}.overlay.png", viz.overlay(crop, heat, **viz.OVERLAY_STYLE)),
            ("overlay.png", viz.overlay(crop, heat, **viz.OVERLAY_STYLE)),
        ):
            written = np.asarray(Image.open(folder_out / name).convert("RGB"), dtype=int)
            assert np.abs(written - np.asarray(expected_picture, dtype=int)).max() <= 2, name
        assert Image.open(folder_out / "grid.png").size == viz.grid({"a": crop, "b": crop}, size=96).size
        entry = record["methods"][METHOD]
        assert entry["relevance_sum"] == pytest.approx(float(relevance.sum()), rel=1e-4, abs=1e-6)
        assert entry["explained_logit"] == pytest.approx(record["target"]["logit"], rel=1e-5)
        assert entry["npy"] == f"{record['dir']}/{METHOD}.npy"

    page = (out / "index.html").read_text()
    parser = Links()
    parser.feed(page)
    local = [link for link in parser.links if not link.startswith("#")]
    assert local and all((out / link).is_file() for link in local), local
    assert not any(link.startswith(("http:", "https:", "/")) for link in local)
    assert "grid.png" in page and "banana" in page or "apple" in page or "cherry" in page
    # no temporary files are left behind
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_bad_inputs_are_reported_and_the_rest_is_explained(tmp_path, tiny, method, capsys):
    good = picture(tmp_path / "good.png", 0)
    text = tmp_path / "text.png"
    text.write_text("not a picture")
    tiny_picture = picture(tmp_path / "tiny.png", 1, size=(8, 8))
    empty = tmp_path / "empty"
    empty.mkdir()
    gray = picture(tmp_path / "gray.png", 2, mode="L")
    out = tmp_path / "out"

    argv = ["explain", text, tmp_path / "missing.jpg", good, tiny_picture, empty, gray, *tiny_args(tiny, out, "--batch-size", "2")]
    code, stdout, stderr = run(argv, capsys)
    assert code == 2
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("unmask: error:")]
    assert len(errors) == 4
    assert any("missing.jpg" in line and "no such file" in line for line in errors)
    assert any("text.png" in line and "not an image" in line for line in errors)
    assert any("tiny.png" in line and "too small" in line for line in errors)
    assert any("empty" in line and "no images" in line for line in errors)
    assert "gray.png: grayscale image converted to RGB" in stderr

    results = json.loads((out / "results.json").read_text())
    assert [i["name"] for i in results["images"]] == ["good", "gray"]
    assert results["images"][1]["note"] == "grayscale image converted to RGB"
    assert len(results["failures"]) == 4 and all(f["method"] is None for f in results["failures"])
    assert results["summary"] == {**results["summary"], "images": 6, "explained": 2, "failed": 4}
    assert (out / "good" / f"{METHOD}.npy").is_file() and (out / "index.html").is_file()
    assert "too small" in (out / "index.html").read_text()
    assert "4 failure(s) listed in results.json" in stdout


def test_a_failing_method_does_not_lose_the_others(tmp_path, tiny, method, capsys):
    out = tmp_path / "out"
    image = picture(tmp_path / "x.png", 0)
    code, _, stderr = run(["explain", image, *tiny_args(tiny, out, "--method", "test.boom")], capsys)
    assert code == 1
    assert "test.boom failed" in stderr and "this method always fails" in stderr and "Traceback" not in stderr
    results = json.loads((out / "results.json").read_text())
    record = results["images"][0]
    assert list(record["methods"]) == [METHOD]
    assert record["errors"][0]["method"] == "test.boom"
    assert results["failures"][0]["method"] == "test.boom"
    assert (out / "x" / f"{METHOD}.png").is_file() and not (out / "x" / "test.boom.png").exists()


def test_non_finite_relevance_is_stored_drawn_as_zero_and_not_counted_as_explained(tmp_path, tiny, register_method, capsys):
    class Holes(InputXGradient):
        def explain(self, inputs, target=None):
            explanation = super().explain(inputs, target)
            explanation.relevance[:, :, 0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
            return explanation

    register_method(METHOD, Holes)
    out = tmp_path / "out"
    code, _, stderr = run(["explain", picture(tmp_path / "x.png", 0), *tiny_args(tiny, out)], capsys)
    assert code == 1 and "9 of 3072 relevance values are NaN or infinite" in stderr  # 3 in each of 3 channels, stderr
    results = json.loads((out / "results.json").read_text())
    assert results["summary"]["explained"] == 0 and results["images"][0]["errors"][0]["method"] == METHOD
    relevance = np.load(out / "x" / f"{METHOD}.npy")
    assert np.isnan(relevance[0, 0, 0]) and np.isinf(relevance[0, 0, 1:3]).all()
    heat = np.nan_to_num(relevance.sum(0), nan=0.0, posinf=0.0, neginf=0.0)
    written = np.asarray(Image.open(out / "x" / f"{METHOD}.png"), dtype=int)
    assert np.abs(written - np.asarray(viz.heatmap(heat, **viz.HEATMAP_STYLE), dtype=int)).max() <= 2
    assert (written[0, :3] == 255).all()  # zero relevance is white in bwr
    assert json.loads((out / "results.json").read_text())["images"][0]["methods"][METHOD]["relevance_sum"] is None


def test_a_method_that_cannot_take_the_model_is_skipped(tmp_path, tiny, method, register_method, capsys):
    class NoRule:
        def __init__(self, model):
            raise ValueError("no rule for layer '0' (Conv2d)")

    register_method("test.norule", NoRule)
    out = tmp_path / "out"
    image = picture(tmp_path / "x.png", 0)
    code, _, stderr = run(["explain", image, *tiny_args(tiny, out, "--method", "test.norule")], capsys)
    assert code == 1
    assert "method 'test.norule' cannot explain this model: ValueError: no rule for layer '0' (Conv2d)" in stderr
    results = json.loads((out / "results.json").read_text())
    assert list(results["images"][0]["methods"]) == [METHOD]
    assert results["failures"] == [{"source": None, "method": "test.norule", "error": stderr.strip().split("error: ", 1)[1]}]
    code, _, stderr = run(["explain", image, *tiny_args(tiny, out)[:-2], "--method", "test.norule"], capsys)
    assert code == 2 and "none of the methods can explain this model" in stderr


def test_batching_does_not_change_results(tmp_path, tiny, method, capsys):
    images = [picture(tmp_path / f"{k}.png", k) for k in range(3)]
    for batch in ("1", "2", "8"):
        code, _, err = run(["explain", *images, *tiny_args(tiny, tmp_path / f"out{batch}", "--batch-size", batch)], capsys)
        assert code == 0, err
    for k in range(3):
        reference = np.load(tmp_path / "out8" / str(k) / f"{METHOD}.npy")
        for batch in ("1", "2"):
            assert_close_across_batches(np.load(tmp_path / f"out{batch}" / str(k) / f"{METHOD}.npy"), reference)


def test_same_stems_get_distinct_folders(tmp_path, tiny, method, capsys):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    a = picture(tmp_path / "one" / "cat.png", 0)
    b = picture(tmp_path / "two" / "cat.png", 1)
    code, _, err = run(["explain", a, b, *tiny_args(tiny, tmp_path / "out")], capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [i["dir"] for i in results["images"]] == ["cat", "cat-2"]


def test_targets_by_index_and_name(tmp_path, tiny, method, capsys):
    image = picture(tmp_path / "x.png", 0)
    classes = tmp_path / "classes.txt"
    classes.write_text("apple\nbanana\ncherry\n")
    for target, index in (("2", 2), ("Banana", 1)):
        out = tmp_path / f"out-{index}"
        code, _, err = run(["explain", image, *tiny_args(tiny, out, "--classes", classes, "--target", target)], capsys)
        assert code == 0, err
        record = json.loads((out / "results.json").read_text())["images"][0]
        assert record["target"]["index"] == index
        assert record["methods"][METHOD]["explained_logit"] == pytest.approx(record["target"]["logit"])
    code, _, err = run(["explain", image, *tiny_args(tiny, tmp_path / "o", "--target", "7")], capsys)
    assert code == 2 and "out of range for a model with 3 classes" in err
    code, _, err = run(["explain", image, *tiny_args(tiny, tmp_path / "o", "--target", "durian")], capsys)
    assert code == 2 and "'durian'" in err


def test_unknown_method_is_a_usage_error(tmp_path, tiny, method, capsys):
    image = picture(tmp_path / "x.png", 0)
    out = tmp_path / "out"
    code, stdout, stderr = run(["explain", image, *tiny_args(tiny, out, "--method", "lrp.nonsense")], capsys)
    assert code == 2
    assert stderr.strip().splitlines() == [stderr.strip()]  # one line
    assert "unknown method 'lrp.nonsense'" in stderr and "unmask methods" in stderr
    assert not out.exists()


def test_params_reach_the_method_and_are_checked(tmp_path, tiny, register_method, capsys):
    seen = {}

    class WithScale(InputXGradient):
        def __init__(self, model, scale: float = 1.0, batch_size=None) -> None:
            super().__init__(model)
            seen.update(scale=scale, batch_size=batch_size)

    register_method("test.scaled", WithScale)
    image = picture(tmp_path / "x.png", 0)
    base = ["explain", image, "--model", f"{tiny}:build", "--image-size", "32", "--no-progress", "--method", "test.scaled"]
    code, _, err = run([*base, "--out", tmp_path / "a", "--param", "test.scaled:scale=2.5"], capsys)
    assert code == 0, err
    assert seen == {"scale": 2.5, "batch_size": cli_params.CLI_DEFAULT_PARAMS["batch_size"]}
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert results["params"]["test.scaled"]["scale"] == 2.5
    code, _, err = run([*base, "--out", tmp_path / "b", "--param", "nonsense=1"], capsys)
    assert code == 2 and "no parameter 'nonsense'" in err.replace("has a parameter", "no parameter")
    code, _, err = run([*base, "--out", tmp_path / "b", "--param", "oops"], capsys)
    assert code == 2 and "KEY=VALUE" in err


def test_preset_parameters_come_from_the_preset_signature(tmp_path, tiny, capsys):
    image = picture(tmp_path / "x.png", 0)
    base = ["explain", image, "--model", f"{tiny}:build", "--image-size", "32", "--no-progress", "--method", "lrp.epsilon_plus_flat"]
    code, _, err = run([*base, "--out", tmp_path / "a", "-p", "lrp.epsilon_plus_flat:epsilon=0.1"], capsys)
    assert code == 0, err
    results = json.loads((tmp_path / "a" / "results.json").read_text())
    assert results["params"]["lrp.epsilon_plus_flat"]["epsilon"] == 0.1
    code, _, err = run([*base, "--out", tmp_path / "b", "-p", "lrp.epsilon_plus_flat:gamma=0.5"], capsys)
    assert code == 2 and not (tmp_path / "b").exists()
    assert [line for line in err.splitlines() if "gamma" in line] == [
        "unmask: error: --param lrp.epsilon_plus_flat:gamma: method 'lrp.epsilon_plus_flat' has no parameter 'gamma'; "
        "it takes epsilon, init, maxpool, stabilizer, zero_bias"]


# ---------------------------------------------------------------------------------------------- model specs


def _check_loads(spec, tmp_path, capsys, *extra):
    image = picture(tmp_path / "x.png", 0)
    out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
    code, _, err = run(["explain", image, "--model", spec, "--image-size", "32", "--out", out, "--no-progress", "--method", METHOD, *extra], capsys)
    return code, err, out


def test_model_from_importable_module_and_from_file(tmp_path, tiny, method, capsys):
    for spec in ("tiny_models:build", f"{tiny}:build"):
        code, err, out = _check_loads(spec, tmp_path, capsys)
        assert code == 0, err
        results = json.loads((out / "results.json").read_text())
        assert results["model"]["spec"] == spec
        assert results["images"][0]["top5"][0]["name"].startswith("class ")  # no --classes given


def test_model_function_may_return_a_zoo_model_with_its_preprocessing(tmp_path, tiny, method, capsys):
    code, err, out = _check_loads("tiny_models:packaged", tmp_path, capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["name"] == "tiny" and results["model"]["mean"] == [0.5] * 3
    assert results["images"][0]["top5"][0]["name"] in ("red", "green", "blue")
    assert Image.open(out / "x" / "input.png").size == (40, 40)  # its own size, not --image-size 32
    assert np.load(out / "x" / f"{METHOD}.npy").shape == (3, 40, 40)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_model_from_torchscript(tmp_path, tiny, method, capsys):
    import tiny_models

    path = tmp_path / "scripted.pt"
    torch.jit.script(tiny_models.build()).save(str(path))
    code, err, out = _check_loads(path, tmp_path, capsys)
    assert code == 0, err


def test_model_from_state_dict_with_arch(tmp_path, tiny, method, capsys):
    import tiny_models

    model = tiny_models.build()
    with torch.no_grad():
        model[-1].bias.copy_(torch.tensor([0.0, 0.0, 50.0]))  # not the weights build() makes: class 2 wins
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    code, err, out = _check_loads(path, tmp_path, capsys, "--arch", "tiny_models:build")
    assert code == 0, err
    record = json.loads((out / "results.json").read_text())["images"][0]
    assert record["target"]["index"] == 2 and record["top5"][0]["probability"] > 0.99  # the saved weights were used
    nested = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": model.state_dict(), "epoch": 3}, nested)
    code, err, _ = _check_loads(nested, tmp_path, capsys, "--arch", "tiny_models:build")
    assert code == 0, err


def test_model_spec_errors_are_one_line_usage_errors(tmp_path, tiny, method, capsys):
    import tiny_models

    weights = tmp_path / "weights.pt"
    torch.save(tiny_models.build().state_dict(), weights)
    pickled = tmp_path / "whole.pt"
    torch.save(tiny_models.build(), pickled)
    wrong = tmp_path / "wrong.pt"
    torch.save(nn.Linear(2, 2).state_dict(), wrong)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 10)
    cases = [
        (["no-such-model"], "unknown model 'no-such-model'"),
        ([weights], "is a state dict; name the network it belongs to with --arch"),
        ([pickled], "full pickle"),
        ([wrong, "--arch", "tiny_models:build"], "does not fit --arch"),
        ([junk], "cannot load"),
        (["tiny_models:broken"], "RuntimeError: weights are missing"),
        (["tiny_models:not_a_model"], "returned a int, not a torch.nn.Module"),
        (["tiny_models:nothing_here"], "cannot load 'tiny_models:nothing_here'"),
        (["no_such_module_xyz:build"], "ModuleNotFoundError"),
        ([tmp_path / "absent.py:build"], "no such file"),
    ]
    for spec, message in cases:
        code, err, out = _check_loads(spec[0], tmp_path, capsys, *spec[1:])
        assert code == 2, (spec, err)
        assert message in err, (spec, err)
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert not (out / "results.json").exists()
    # a whole pickled model loads only when trusted
    code, err, _ = _check_loads(pickled, tmp_path, capsys, "--trust-pickle")
    assert code == 0, err


def test_out_that_is_a_file_is_a_usage_error(tmp_path, tiny, method, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err, _ = _check_loads("tiny_models:build", tmp_path, capsys, "--out", blocker / "sub")
    assert code == 2 and "cannot create --out" in err and "Traceback" not in err


def test_cuda_device_when_absent(tmp_path, tiny, method, capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    code, err, _ = _check_loads("tiny_models:build", tmp_path, capsys, "--device", "cuda")
    assert code == 2 and "CUDA is not available" in err


# ---------------------------------------------------------------------------------------------- surfaces


def test_help_and_python_m(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    assert exit_.value.code == 0 and "explain" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        cli.main(["explain", "--help"])
    text = capsys.readouterr().out
    assert exit_.value.code == 0 and "--batch-size" in text and "--arch" in text
    assert cli.main([]) == 2
    with pytest.raises(SystemExit) as exit_:
        cli.main(["explain", "--batch-size", "0"])
    assert exit_.value.code == 2
    env = {**os.environ, "PYTHONPATH": str(Path(cli.__file__).parents[2])}
    done = subprocess.run([sys.executable, "-m", "unmask", "--help"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0 and "explain" in done.stdout


def test_methods_command_lists_the_registry(method, capsys):
    assert cli.main(["methods"]) == 0
    assert METHOD in capsys.readouterr().out.split()


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    report.write_json(path, {"old": True})

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        report.write_json(path, {"new": True})
    assert json.loads(path.read_text()) == {"old": True}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_page_escapes_what_it_shows():
    results = {
        "model": {"name": "<script>alert(1)</script>"},
        "methods": ["m"],
        "summary": {"images": 1, "explained": 1, "seconds": 0.1},
        "failures": [{"source": "a", "method": None, "error": "a<b>: broken & bad"}],
        "images": [{
            "name": "x<y", "dir": "x", "source": "x<y.png", "grid": "x/grid.png",
            "top5": [{"index": 1, "name": "<i>cls</i>", "probability": 0.5}],
            "target": {"index": 1, "name": "<i>cls</i>"}, "methods": {"m": {"png": "x/m.png", "relevance_sum": 1.0}},
            "errors": [],
        }],
    }
    page = report.render_index(results)
    assert "<script>" not in page and "<i>cls</i>" not in page and "a<b>" not in page
    assert "&lt;script&gt;" in page and "x&lt;y" in page and "50.0%" in page


def test_default_model_on_chelsea(tmp_path, method, efficientnet, capsys):
    """The real ImageNet EfficientNet-Lite0 end to end (zoo default model, sample photo)."""
    pytest.importorskip("skimage")
    out = tmp_path / "out"
    code, stdout, err = run(["explain", "--photos", "chelsea", "--method", METHOD, "--out", out, "--no-progress"], capsys)
    assert code == 0, err
    results = json.loads((out / "results.json").read_text())
    assert results["model"]["name"] == "efficientnet-lite0"
    record = results["images"][0]
    assert record["source"] == "skimage.data: chelsea"
    assert record["top5"][0]["index"] in range(281, 286) and record["top5"][0]["name"] in ("tabby", "tiger cat", "Egyptian cat")
    relevance = np.load(out / "chelsea" / f"{METHOD}.npy")
    assert relevance.shape == (3, 224, 224) and np.abs(relevance).sum() > 0
    assert "chelsea" in (out / "index.html").read_text()
