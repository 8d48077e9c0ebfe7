"""unmask.models: layer lookup, hook capture, device and mode policy (the user's model never changes)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from unmask import zoo
from unmask.models import Capture, eval_mode, find_layer, model_device, on_device, pixel_model, resolve_layer


def _net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Conv2d(4, 2, 3), nn.Dropout(), nn.Flatten())


def test_find_layer_by_name_module_and_default():
    net = _net()
    assert find_layer(net, "0") == ("0", net[0])
    assert find_layer(net, net[2]) == ("2", net[2])
    assert find_layer(net, None) == ("2", net[2])  # the last Conv2d
    assert resolve_layer(net, "4") is net[4]
    with pytest.raises(ValueError, match=r"no layer '5'.*named_modules"):
        find_layer(net, "5")
    with pytest.raises(ValueError, match="no nn.Linear"):
        find_layer(net, None, default=nn.Linear)
    with pytest.raises(ValueError, match="not a submodule"):
        find_layer(net, nn.ReLU())


def test_capture_keeps_copies_that_later_in_place_layers_cannot_change():
    net = _net().eval()
    x = torch.randn(2, 3, 8, 8)
    with Capture(net, ["0", "2"]) as capture:
        outputs = capture.run(net, x)
        assert capture.calls == {"0": 1, "2": 1}
    assert torch.equal(outputs["0"], net[0](x))  # ReLU(inplace=True) ran after it
    assert (outputs["0"] < 0).any()
    assert not net[0]._forward_hooks  # hooks removed


def test_capture_can_stop_the_forward_pass_early_and_keep_gradients():
    net = _net().eval()
    capture = Capture(net, ["0"])
    capture.stop_early = True
    ran = []
    handle = net[2].register_forward_hook(lambda *args: ran.append(True))
    capture.run(net, torch.randn(1, 3, 8, 8))
    assert not ran
    handle.remove()
    capture.close()
    with Capture(net, ["2"], detach=False, once=True) as capture:
        x = torch.randn(1, 3, 8, 8, requires_grad=True)
        net(x)
        capture.outputs["2"].sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0
    twice = nn.Sequential(nn.Identity())
    twice.add_module("again", twice[0])
    with Capture(twice, ["0"], once=True) as capture, pytest.raises(ValueError, match="more than once"):
        capture.run(twice, torch.zeros(1))


def test_eval_mode_restores_every_flag_and_on_device_never_moves_the_model():
    net = _net().train()
    net[3].eval()
    with eval_mode(net):
        assert not any(m.training for m in net.modules())
    assert net.training and net[0].training and not net[3].training
    same, device = on_device(net, "cpu")
    assert same is net and device == torch.device("cpu") == model_device(net)
    assert model_device(nn.ReLU()) == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            on_device(net, "cuda")


def test_pixel_model_uses_the_zoo_recipe_or_imagenet_defaults():
    net = _net()
    plain = pixel_model(net)
    assert plain.mean == zoo.IMAGENET_MEAN and plain.size is None
    x = torch.rand(1, 3, 10, 12)
    expected = (x - torch.tensor(zoo.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(zoo.IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(plain.inputs(x), expected)
    sized = pixel_model(net, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), image_size=8)
    assert sized.inputs(x).shape == (1, 3, 8, 8)
    with pytest.raises(ValueError, match="std > 0"):
        pixel_model(net, std=(1.0, 0.0, 1.0))
    with pytest.raises(TypeError, match="nn.Module"):
        pixel_model("resnet")


def test_a_zoo_model_is_accepted_wherever_a_module_is():
    import unmask
    from unmask import evaluate
    from unmask.models import as_module

    net = zoo.load("cleverhans")
    assert as_module(net) is net.model and as_module(net.model) is net.model
    with pytest.raises(TypeError, match="ZooModel"):
        as_module(object())
    size = net.preprocessing.size
    x = torch.rand(2, 3, size, size)
    for method in ("gradient", "lrp.epsilon_plus_flat"):
        from_zoo = unmask.explain(net, x, method).relevance
        torch.testing.assert_close(from_zoo, unmask.explain(net.model, x, method).relevance)
    assert unmask.LRP(net).model is net.model
    curve = evaluate.region_perturbation(net, x, unmask.explain(net, x, "gradient"), steps=4, region=8)
    assert curve.curve.shape[-1] == 5
