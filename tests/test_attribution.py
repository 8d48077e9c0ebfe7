"""Attribution methods: agreement with Captum 0.9.0, axioms, determinism, safety and errors."""

from __future__ import annotations

import captum.attr as ca
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import unmask
from unmask.attribution import GradCAM, IntegratedGradients, Occlusion, SmoothGrad
from unmask.attribution.integrated import quadrature

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:captum")  # Captum's notes on its own hooks

TOL = 1e-5
BATCH, SHAPE = 3, (3, 16, 16)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

# every method with small but non-trivial parameters
CONFIGS = {
    "gradient": {},
    "saliency": {},
    "sensitivity": {},
    "gradient_x_input": {},
    "integrated_gradients": {"steps": 8},
    "smoothgrad": {"samples": 4},
    "guided_backprop": {},
    "deconvnet": {},
    "gradcam": {},
    "occlusion": {"window": 4, "stride": 4},
    "random": {},
}


class Net(nn.Module):
    """conv-relu-maxpool-conv-relu-linear, ReLUs as modules (what Captum can hook)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding=1),
            nn.ReLU(inplace=inplace),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1),
            nn.ReLU(inplace=inplace),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(8 * 8 * 8, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class FunctionalNet(nn.Module):
    """The same network with functional ReLUs in three spellings (one of them in place)."""

    def __init__(self, net: Net) -> None:
        super().__init__()
        self.conv1, self.pool, self.conv2 = net.features[0], net.features[2], net.features[3]
        self.linear = net.classifier[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(F.relu(self.conv1(x))).relu()  # the second ReLU changes nothing
        x = self.conv2(x)
        x.relu_()  # in place: the result is unused, later readers of x see the ReLU's output
        return self.linear(x.flatten(1))


class Smooth(nn.Module):
    """A smooth model (softplus) for completeness of integrated gradients."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.linear = nn.Linear(4 * 16 * 16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(F.softplus(self.conv(x)).flatten(1))


class Quadratic(nn.Module):
    """``f_0(x) = sum(x^2) / 2``: its gradient is ``x`` itself."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = 0.5 * x.square().flatten(1).sum(1)
        return torch.stack([half, -half], 1)


def make_net(dtype: torch.dtype = torch.float64, device: str = "cpu", inplace: bool = False) -> Net:
    torch.manual_seed(0)
    return Net(inplace).to(device=device, dtype=dtype).eval()


def make_inputs(dtype: torch.dtype = torch.float64, device: str = "cpu") -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.randn((BATCH,) + SHAPE, generator=generator, dtype=dtype).to(device)


def rel(ours: torch.Tensor, reference: torch.Tensor) -> float:
    """Largest deviation relative to the largest absolute reference value."""
    reference = reference.to(ours.dtype)
    return ((ours - reference).abs().max() / reference.abs().max()).item()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: one thread is faster than two, by far on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def net() -> Net:
    return make_net()


@pytest.fixture
def x() -> torch.Tensor:
    return make_inputs()


TARGET = torch.tensor([0, 3, 1])


# --- agreement with Captum ---------------------------------------------------------------------


def test_gradient_family_matches_captum(net: Net, x: torch.Tensor) -> None:
    grad = ca.Saliency(net).attribute(x, target=TARGET, abs=False)
    absolute = ca.Saliency(net).attribute(x, target=TARGET, abs=True)
    ours = unmask.explain(net, x, "gradient", target=TARGET)
    assert rel(ours.relevance, grad) < TOL
    saliency = unmask.explain(net, x, "saliency", target=TARGET).relevance
    assert saliency.shape == x.shape
    for channel in range(x.shape[1]):
        assert rel(saliency[:, channel], absolute.amax(1)) < TOL
    sensitivity = unmask.explain(net, x, "sensitivity", target=TARGET).relevance
    assert rel(sensitivity, grad.square()) < TOL
    gxi = unmask.explain(net, x, "gradient_x_input", target=TARGET).relevance
    assert rel(gxi, ca.InputXGradient(net).attribute(x, target=TARGET)) < TOL
    assert torch.equal(ours.target, TARGET)
    assert torch.allclose(ours.output, net(x))


@pytest.mark.parametrize(
    "rule", ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"]
)
def test_integrated_gradients_matches_captum(net: Net, x: torch.Tensor, rule: str) -> None:
    steps = 12
    baseline = torch.full_like(x, 0.25)
    reference = ca.IntegratedGradients(net).attribute(x, baselines=baseline, target=TARGET, n_steps=steps, method=rule)
    if rule == "riemann_trapezoid":  # Captum's cell width is 1/steps instead of 1/(steps-1)
        reference = reference * steps / (steps - 1)
    ours = unmask.explain(
        net, x, "integrated_gradients", target=TARGET, baseline=baseline, steps=steps, quadrature=rule
    )
    assert rel(ours.relevance, reference) < TOL
    chunked = unmask.explain(
        net,
        x,
        "integrated_gradients",
        target=TARGET,
        baseline=0.25,
        steps=steps,
        quadrature=rule,
        batch_size=5,
    )
    assert rel(chunked.relevance, reference) < TOL


def test_quadrature_rules_integrate_polynomials() -> None:
    for rule in ["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"]:
        points, weights = quadrature(rule, 7)
        assert abs(weights.sum() - 1.0) < 1e-12 and points.min() >= 0.0 and points.max() <= 1.0
    points, weights = quadrature("gausslegendre", 4)  # exact up to degree 7
    assert abs((weights * points**7).sum() - 1 / 8) < 1e-12
    points, weights = quadrature("riemann_trapezoid", 3)  # points 0, .5, 1 with weights .25, .5, .25
    assert points.tolist() == [0.0, 0.5, 1.0] and weights.tolist() == [0.25, 0.5, 0.25]


def test_guided_backprop_and_deconvnet_match_captum(net: Net, x: torch.Tensor) -> None:
    guided = unmask.explain(net, x, "guided_backprop", target=TARGET).relevance
    assert rel(guided, ca.GuidedBackprop(net).attribute(x, target=TARGET)) < TOL
    deconv = unmask.explain(net, x, "deconvnet", target=TARGET).relevance
    assert rel(deconv, ca.Deconvolution(net).attribute(x, target=TARGET)) < TOL
    plain = unmask.explain(net, x, "gradient", target=TARGET).relevance
    assert rel(guided, plain) > 0.1 and rel(deconv, plain) > 0.1  # the rules did change the backward


def test_guided_backprop_covers_functional_and_in_place_relus(net: Net, x: torch.Tensor) -> None:
    functional = FunctionalNet(net).eval()
    assert torch.allclose(functional(x), net(x))
    for name in ["guided_backprop", "deconvnet"]:
        modules = unmask.explain(net, x, name, target=TARGET).relevance
        assert rel(unmask.explain(functional, x, name, target=TARGET).relevance, modules) < 1e-12
    inplace = make_net(inplace=True)
    guided = unmask.explain(inplace, x, "guided_backprop", target=TARGET).relevance
    assert rel(guided, unmask.explain(net, x, "guided_backprop", target=TARGET).relevance) < 1e-12


def test_gradcam_matches_captum(net: Net, x: torch.Tensor) -> None:
    layer = net.features[3]
    captum_map = ca.LayerGradCam(net, layer).attribute(x, target=TARGET, relu_attributions=True)
    reference = ca.LayerAttribution.interpolate(captum_map, x.shape[2:], "bilinear")
    method = GradCAM(net)  # default: the last Conv2d, features.3
    ours = method.explain(x, target=TARGET)
    assert ours.params["layer"] == "features.3"
    assert ours.relevance.shape == x.shape
    assert rel(ours.relevance[:, :1], reference) < TOL
    assert torch.equal(ours.relevance[:, 0], ours.relevance[:, 2])
    assert rel(method.cam_, captum_map) < TOL
    raw = ca.LayerGradCam(net, layer).attribute(x, target=TARGET)
    assert (
        rel(
            unmask.explain(net, x, "gradcam", target=TARGET, layer="features.3", relu=False).relevance[:, :1],
            ca.LayerAttribution.interpolate(raw, x.shape[2:], "bilinear"),
        )
        < TOL
    )
    assert (raw < 0).any()  # so relu=False is tested on negative values
    by_module = unmask.explain(net, x, "gradcam", target=TARGET, layer=layer).relevance
    assert torch.equal(by_module, ours.relevance)


def test_gradcam_with_in_place_relu_after_layer(net: Net, x: torch.Tensor) -> None:
    reference = unmask.explain(net, x, "gradcam", target=TARGET, relu=False).relevance
    inplace = unmask.explain(make_net(inplace=True), x, "gradcam", target=TARGET, relu=False).relevance
    assert rel(inplace, reference) < 1e-12


@pytest.mark.parametrize("window,stride,fill", [(4, 2, 0.5), ((3, 5), (2, 3), 0.0), (16, 1, -1.0)])
def test_occlusion_matches_captum(net: Net, x: torch.Tensor, window, stride, fill) -> None:
    window2 = (window, window) if isinstance(window, int) else window
    stride2 = (stride, stride) if isinstance(stride, int) else stride
    reference = ca.Occlusion(net).attribute(
        x,
        sliding_window_shapes=(3,) + window2,
        strides=(3,) + stride2,
        baselines=fill,
        target=TARGET,
        perturbations_per_eval=16,
    )
    ours = unmask.explain(net, x, "occlusion", target=TARGET, window=window, stride=stride, fill=fill, batch_size=10)
    assert ours.relevance.dtype == x.dtype
    assert rel(ours.relevance, reference) < TOL


def test_occlusion_default_window_and_tensor_fill(net: Net, x: torch.Tensor) -> None:
    mean = x.mean((0, 2, 3)).view(3, 1, 1)
    ours = unmask.explain(net, x, "occlusion", target=TARGET, fill=mean).relevance
    reference = ca.Occlusion(net).attribute(
        x,
        sliding_window_shapes=(3, 8, 8),
        strides=(3, 8, 8),
        baselines=mean.expand_as(x[0]).unsqueeze(0),
        target=TARGET,
    )
    assert rel(ours, reference) < TOL


# --- properties ---------------------------------------------------------------------------------


def test_integrated_gradients_completeness() -> None:
    torch.manual_seed(0)
    model = Smooth().double().eval()
    x, baseline = make_inputs(), torch.full(SHAPE, -0.5, dtype=torch.float64)
    explanation = unmask.explain(model, x, "integrated_gradients", target=TARGET, baseline=baseline, steps=50)
    with torch.no_grad():
        expected = explanation.explained_output - model(baseline.expand_as(x)).gather(1, TARGET.view(-1, 1)).squeeze(1)
    total = explanation.relevance.flatten(1).sum(1)
    assert (total - expected).abs().max() < 1e-8 * expected.abs().max()
    coarse = (
        unmask.explain(
            model, x, "integrated_gradients", target=TARGET, baseline=baseline, steps=2, quadrature="riemann_left"
        )
        .relevance.flatten(1)
        .sum(1)
    )
    assert (coarse - expected).abs().max() > 1e-4  # the comparison above is sensitive


def test_smoothgrad_is_reproducible_and_batch_size_free(net: Net, x: torch.Tensor) -> None:
    first = unmask.explain(net, x, "smoothgrad", target=TARGET, samples=6, seed=3).relevance
    assert torch.equal(first, unmask.explain(net, x, "smoothgrad", target=TARGET, samples=6, seed=3).relevance)
    assert not torch.allclose(first, unmask.explain(net, x, "smoothgrad", target=TARGET, samples=6, seed=4).relevance)
    chunked = unmask.explain(net, x, "smoothgrad", target=TARGET, samples=6, seed=3, batch_size=4).relevance
    assert rel(chunked, first) < 1e-12


def test_smoothgrad_with_tiny_noise_is_the_gradient(net: Net, x: torch.Tensor) -> None:
    gradient = unmask.explain(net, x, "gradient", target=TARGET).relevance
    smooth = unmask.explain(net, x, "smoothgrad", target=TARGET, noise_level=1e-9, samples=8).relevance
    assert rel(smooth, gradient) < 1e-6
    noisy = unmask.explain(net, x, "smoothgrad", target=TARGET, noise_level=0.3, samples=8).relevance
    assert rel(noisy, gradient) > 1e-2
    captum = ca.NoiseTunnel(ca.Saliency(net)).attribute(
        x, nt_type="smoothgrad", nt_samples=8, stdevs=1e-9, target=TARGET, abs=False
    )
    assert rel(smooth, captum) < 1e-6


def test_smoothgrad_noise_statistics() -> None:
    model = Quadratic().eval()  # gradient of class 0 is the noisy input itself
    generator = torch.Generator().manual_seed(5)
    x = torch.rand((3,) + SHAPE, generator=generator, dtype=torch.float64) * torch.tensor([1.0, 10.0, 0.1]).view(
        3, 1, 1, 1
    )
    sigma = 0.2 * (x.flatten(1).amax(1) - x.flatten(1).amin(1))
    samples = 100
    mean = unmask.explain(model, x, "smoothgrad", target=0, noise_level=0.2, samples=samples).relevance
    z = ((mean - x) / sigma.view(3, 1, 1, 1)).flatten(1) * samples**0.5  # ~ N(0, 1) per element
    assert z.mean(1).abs().max() < 0.2
    assert ((z.std(1) - 1).abs() < 0.1).all()
    squared = unmask.explain(model, x, "smoothgrad", target=0, noise_level=0.2, samples=samples, squared=True).relevance
    variance = (squared - x.square()).flatten(1).mean(1)  # E[(x + e)^2] - x^2 = sigma^2
    assert ((variance / sigma.square() - 1).abs() < 0.1).all()


def test_smoothgrad_forwards_method_and_params(net: Net, x: torch.Tensor) -> None:
    ig = unmask.explain(net, x, "integrated_gradients", target=TARGET, steps=5, quadrature="riemann_middle").relevance
    smooth = unmask.explain(
        net,
        x,
        "smoothgrad",
        target=TARGET,
        base_method="integrated_gradients",
        noise_level=0.0,
        samples=2,
        steps=5,
        quadrature="riemann_middle",
    )
    assert rel(smooth.relevance, ig) < 1e-12
    assert smooth.params["base_method"] == "integrated_gradients" and smooth.params["steps"] == 5
    guided = unmask.explain(net, x, "guided_backprop", target=TARGET).relevance
    squared = unmask.explain(
        net, x, "smoothgrad", target=TARGET, base_method="guided_backprop", noise_level=0.0, samples=3, squared=True
    ).relevance
    assert rel(squared, guided.square()) < 1e-12


def test_random_baseline_is_seeded(net: Net, x: torch.Tensor) -> None:
    first = unmask.explain(net, x, "random", seed=7)
    assert torch.equal(first.relevance, unmask.explain(net, x, "random", seed=7).relevance)
    assert not torch.equal(first.relevance, unmask.explain(net, x, "random", seed=8).relevance)
    assert first.relevance.min() >= 0 and first.relevance.max() < 1 and abs(first.relevance.mean() - 0.5) < 0.05
    gaussian = unmask.explain(net, x, "random", distribution="gaussian").relevance
    assert abs(gaussian.mean()) < 0.05 and abs(gaussian.std() - 1) < 0.05
    assert torch.equal(first.target, net(x).argmax(1))


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_model_is_unchanged(name: str, x: torch.Tensor) -> None:
    model = make_net(inplace=True)
    model.features[0].weight.requires_grad_(False)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    flags = [
        (m.training, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()
    ]
    grads = [p.requires_grad for p in model.parameters()]
    explanation = unmask.explain(model, x, name, **CONFIGS[name])
    assert explanation.relevance.shape == x.shape and explanation.method == name
    assert torch.isfinite(explanation.relevance).all()
    assert torch.equal(explanation.inputs, x) and explanation.params == CONFIGS[name] | explanation.params
    assert all(torch.equal(state[key], value) for key, value in model.state_dict().items())
    assert flags == [
        (m.training, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks)) for m in model.modules()
    ]
    assert grads == [p.requires_grad for p in model.parameters()]
    assert all(p.grad is None for p in model.parameters())


def test_gradcam_removes_its_hook_on_errors(x: torch.Tensor) -> None:
    shared = nn.Conv2d(3, 3, 3, padding=1)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.Flatten(), nn.Linear(3 * 16 * 16, 4)).double().eval()
    with pytest.raises(ValueError, match="ran 2 times"):
        unmask.explain(model, x, "gradcam")
    assert not shared._forward_hooks
    with pytest.raises(ValueError, match="Grad-CAM needs a layer"):
        unmask.explain(model, x, "gradcam", layer="4")
    assert not model[4]._forward_hooks


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_callable_target_equals_class_target(name: str, net: Net, x: torch.Tensor) -> None:
    by_class = unmask.explain(net, x, name, target=2, **CONFIGS[name])
    by_callable = unmask.explain(net, x, name, target=lambda out: out[:, 2], **CONFIGS[name])
    assert by_callable.target is None and torch.equal(by_class.target, torch.full((BATCH,), 2))
    assert rel(by_callable.relevance, by_class.relevance) < 1e-12


def test_callable_target_is_linear_for_gradients(net: Net, x: torch.Tensor) -> None:
    difference = unmask.explain(net, x, "gradient", target=lambda out: out[:, 1] - 2 * out[:, 4]).relevance
    one, four = (unmask.explain(net, x, "gradient", target=k).relevance for k in (1, 4))
    assert rel(difference, one - 2 * four) < 1e-12


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_device_and_dtype_follow_inputs(name: str, dtype: torch.dtype, device: str) -> None:
    model, x = make_net(dtype, device), make_inputs(dtype, device)
    explanation = unmask.explain(model, x, name, **CONFIGS[name])
    for tensor in (explanation.relevance, explanation.output):
        assert tensor.dtype == dtype and tensor.device.type == device
    assert explanation.relevance.shape == x.shape
    assert torch.equal(explanation.target, model(x).argmax(1))  # default target: the prediction


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_bad_inputs_and_targets_raise(name: str, net: Net, x: torch.Tensor) -> None:
    method = unmask.get_method(name)(net, **CONFIGS[name])
    bad = x.clone()
    bad[1, 0, 2, 2] = float("nan")
    cases = {
        "NaN": (bad, None),
        "rank": (x[0, 0, 0], None),
        "dtype": (x.float(), None),
        "class out of range": (x, 5),
        "float target": (x, torch.tensor([0.0, 1.0, 2.0])),
        "wrong length": (x, torch.tensor([0, 1])),
        "string": (x, "largest"),
        "callable shape": (x, lambda out: out),
    }
    for case, (inputs, target) in cases.items():
        try:
            method.explain(inputs, target=target)
        except ValueError:
            continue
        pytest.fail(f"{case}: no ValueError")
    net.train()
    with pytest.raises(ValueError, match="training mode"):
        method.explain(x)


@pytest.mark.parametrize(
    "name,params,message",
    [
        ("integrated_gradients", {"quadrature": "simpson"}, "unknown quadrature"),
        ("integrated_gradients", {"steps": 0}, "steps"),
        ("integrated_gradients", {"steps": 1, "quadrature": "riemann_trapezoid"}, "steps"),
        ("integrated_gradients", {"baseline": float("nan")}, "baseline"),
        ("integrated_gradients", {"batch_size": 0}, "batch_size"),
        ("smoothgrad", {"noise_level": -0.1}, "noise_level"),
        ("smoothgrad", {"samples": 0}, "samples"),
        ("smoothgrad", {"base_method": "no_such_method"}, "unknown method"),
        ("smoothgrad", {"base_method": "integrated_gradients", "quadrature": "bogus"}, "unknown quadrature"),
        ("smoothgrad", {"squared": "yes"}, "squared"),
        ("gradcam", {"layer": "features.99"}, "no layer 'features.99'"),
        ("gradcam", {"layer": nn.Conv2d(1, 1, 1)}, "not a submodule"),
        ("gradcam", {"relu": 1}, "relu"),
        ("occlusion", {"window": 0}, "window"),
        ("occlusion", {"batch_size": -1}, "batch_size"),
        ("random", {"distribution": "cauchy"}, "distribution"),
        ("random", {"seed": -1}, "seed"),
    ],
)
def test_bad_parameters_raise(name: str, params: dict, message: str, net: Net) -> None:
    with pytest.raises(ValueError, match=message):
        unmask.get_method(name)(net, **params)


def test_bad_parameters_for_the_input_raise(net: Net, x: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="baseline"):
        IntegratedGradients(net, baseline=torch.zeros(2, 16, 16, dtype=torch.float64)).explain(x)
    with pytest.raises(ValueError, match="stride"):
        Occlusion(net, window=3, stride=4).explain(x)
    with pytest.raises(ValueError, match="entries"):
        Occlusion(net, window=(3, 3, 3)).explain(x)
    with pytest.raises(ValueError, match="fill"):
        Occlusion(net, fill=torch.zeros(5, dtype=torch.float64)).explain(x)
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        GradCAM(nn.Sequential(nn.Flatten(), nn.Linear(768, 2)))
    with pytest.raises(ValueError, match="unknown method"):
        SmoothGrad(net, base_method="lrp.nonexistent")


def test_smoothgrad_smooths_any_registered_method(net: Net, x: torch.Tensor) -> None:
    lrp = unmask.explain(net, x, "lrp.epsilon_plus_flat", target=TARGET).relevance
    smooth = unmask.explain(
        net, x, "smoothgrad", target=TARGET, base_method="lrp.epsilon_plus_flat", noise_level=0.0, samples=2
    )
    assert rel(smooth.relevance, lrp) < 1e-12
    noisy = unmask.explain(net, x, "smoothgrad", target=TARGET, base_method="lrp.epsilon_plus_flat", samples=3)
    assert noisy.relevance.shape == x.shape and rel(noisy.relevance, lrp) > 1e-3
