"""Class prototypes (activation maximisation): the prototype check on the small zoo model, targets,
parameterisations, regularisers, determinism, the model left untouched, errors, and ``unmask prototype``."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from torch import nn

from unmask.analyze import prototype
from unmask.analyze.prototypes import Channel, Direction, Logit, Unit, evaluate, parse_target, to_pixels
from unmask.zoo import concept_net as small

IDENTITY = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


@pytest.fixture(scope="module")
def concept_net():
    return small.load()


def tiny() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4),
    )


def test_prototypes_fed_back_are_classified_as_their_class(concept_net):
    # ConceptNet is multi-label: sigmoid(logit) is the probability that the concept is in the image
    classes = [concept_net.classes.index(c) for c in ("blue", "green", "pink", "brown", "white", "checkered")]
    x = prototype(concept_net, classes, steps=48, seed=0)
    assert x.shape == (6, 3, 64, 64)
    rows = torch.arange(6)
    with torch.no_grad():
        probabilities = concept_net.model(x).sigmoid()
        noise = concept_net.model(torch.randn(6, 3, 64, 64) * 0.5).sigmoid()  # a random image is not: the check means something
    assert (probabilities[rows, classes] > 0.9).all(), probabilities[rows, classes]
    assert (noise[rows, classes] < 0.5).all(), noise[rows, classes]


def test_output_is_in_the_models_input_space(concept_net):
    x = prototype(concept_net, 3, steps=2)
    pixels = x * 0.25 + 0.5  # ConceptNet's mean 0.5 and std 0.25
    assert x.shape == (1, 3, 64, 64) and 0 <= pixels.min() and pixels.max() <= 1
    torch.testing.assert_close(to_pixels(x, (0.5,) * 3, (0.25,) * 3), pixels)
    y = prototype(tiny(), [1, 2], steps=2, size=24, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    assert y.shape == (2, 3, 24, 24)
    raw = y * 0.5 + torch.tensor([0.1, 0.2, 0.3]).view(1, 3, 1, 1)
    assert 0 <= raw.min() and raw.max() <= 1


def test_deterministic_and_the_model_is_left_as_it_was():
    model = tiny()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a = prototype(model, [0, 3], steps=5, size=16, seed=1, **IDENTITY)
    b = prototype(model, [0, 3], steps=5, size=16, seed=1, **IDENTITY)
    assert torch.equal(a, b)
    assert not torch.equal(a, prototype(model, [0, 3], steps=5, size=16, seed=2, **IDENTITY))
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("param", ["fourier", "pixel"])
def test_layer_targets_grow(param):
    model = tiny()
    targets = [Channel("2", 5), Unit("2", 1), Unit("0", 2, 3, 4), Direction("3", torch.arange(8.0))]
    start = evaluate(model, prototype(model, targets, steps=0, size=16, **IDENTITY), targets)
    end = evaluate(model, prototype(model, targets, steps=30, size=16, param=param, lr=0.1, **IDENTITY), targets)
    assert (end > start + 0.005).all(), (start, end)


def test_a_one_hot_direction_is_its_channel():
    model = tiny()
    x = torch.rand(1, 3, 16, 16)
    onehot = torch.zeros(8)
    onehot[5] = 3.0
    torch.testing.assert_close(evaluate(model, x, [Direction("2", onehot)]), evaluate(model, x, [Channel("2", 5)]))


def test_regularisers_smooth_the_image():
    model = tiny()

    def variation(x):
        return float((x[..., 1:] - x[..., :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean())

    options = dict(steps=25, size=24, param="pixel", decorrelate=False, transforms=False, lr=0.2, **IDENTITY)
    plain = prototype(model, 1, **options)
    assert variation(prototype(model, 1, tv=5.0, **options)) < 0.5 * variation(plain)
    assert variation(prototype(model, 1, blur=50.0, **options)) < variation(plain)
    assert prototype(model, 1, l2=5.0, **options).pow(2).mean() < plain.pow(2).mean()


def test_pixel_parameterisation_reaches_the_class_too(concept_net):
    classes = [concept_net.classes.index(c) for c in ("blue", "checkered")]
    x = prototype(concept_net, classes, steps=32, param="pixel", lr=0.2, seed=3)
    with torch.no_grad():
        probabilities = concept_net.model(x).sigmoid()
    assert (probabilities[[0, 1], classes] > 0.9).all(), probabilities[[0, 1], classes]


def test_log_softmax_objective():
    model = tiny()
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x).log_softmax(1)[[0, 1], [2, 3]]
    torch.testing.assert_close(evaluate(model, x, [2, 3], objective="log_softmax"), expected)
    start = prototype(model, [2], steps=0, size=16, **IDENTITY)
    end = prototype(model, [2], steps=20, size=16, objective="log_softmax", lr=0.2, transforms=False, **IDENTITY)
    with torch.no_grad():
        assert model(end).softmax(1)[0, 2] > model(start).softmax(1)[0, 2]


def test_bad_targets_and_options_are_refused():
    model = tiny()
    with pytest.raises(ValueError, match="class 7 is out of range: the model has 4 outputs"):
        prototype(model, 7, steps=1, size=8, **IDENTITY)
    with pytest.raises(ValueError, match="no layer 'conv9'.*named_modules"):
        prototype(model, Channel("conv9", 0), steps=1, size=8, **IDENTITY)
    with pytest.raises(ValueError, match="channel 9 is out of range"):
        prototype(model, Channel("2", 9), steps=1, size=8, **IDENTITY)
    with pytest.raises(TypeError, match="class index, Logit"):
        prototype(model, "goose", steps=1, size=8, **IDENTITY)
    with pytest.raises(ValueError, match="param must be"):
        prototype(model, 1, steps=1, size=8, param="wavelet", **IDENTITY)
    with pytest.raises(ValueError, match="entries but layer"):
        prototype(model, Direction("2", torch.ones(3)), steps=1, size=8, **IDENTITY)


def test_parse_target():
    classes = ["tabby, tabby cat", "goose", "black swan"]
    assert parse_target("2") == Logit(2) and parse_target("logit:1") == Logit(1)
    assert parse_target("goose", classes) == Logit(1) and parse_target("Tabby Cat", classes) == Logit(0)
    assert parse_target("channel:_blocks.3:5") == Channel("_blocks.3", 5)
    assert parse_target("unit:features.4:3") == Unit("features.4", 3)
    assert parse_target("unit:features.4:3:1:2") == Unit("features.4", 3, 1, 2)
    with pytest.raises(ValueError, match="did you mean 2 black swan"):
        parse_target("swan", classes)
    with pytest.raises(ValueError, match="channel:LAYER:CHANNEL"):
        parse_target("channel:_blocks.3:x")


def _command(argv):
    from unmask.cli import prototype as command

    parser = argparse.ArgumentParser(prog="unmask prototype")
    command.configure(parser)
    return command.run(parser.parse_args(argv))


def test_prototype_command(tmp_path, capsys):
    out = tmp_path / "out"
    code = _command(["--model", "concept-net", "--target", "striped", "channel:conv6:3", "--steps", "6", "--out", str(out), "--no-progress"])
    assert code == 0
    data = json.loads((out / "prototypes.json").read_text())
    first, second = data["prototypes"]
    assert first["class_name"] == "striped" and 0 <= first["probability"] <= 1 and len(first["top5"]) == 5
    assert second["target"] == "channel:conv6:3" and "probability" not in second
    assert (out / first["image"]).exists() and (out / second["image"]).exists()
    assert np.load(out / "prototypes.npy").shape == (2, 3, 64, 64)
    page = (out / "index.html").read_text()
    assert "striped" in page and first["image"] in page
    assert "fed back" in capsys.readouterr().out
    assert _command(["--model", "concept-net", "--target", "zebra", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unmask: error: unknown target 'zebra'") and "Traceback" not in err


def test_a_layer_followed_by_an_in_place_activation_is_seen_before_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(inplace=True), nn.Conv2d(2, 2, 1))
    with torch.no_grad():
        model[0].bias[1] = -5.0  # channel 1 is negative everywhere before the ReLU
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        expected = model[0](x)[0, 1].mean()
    assert expected < 0
    torch.testing.assert_close(evaluate(model, x, [Channel("0", 1)])[0], expected)
