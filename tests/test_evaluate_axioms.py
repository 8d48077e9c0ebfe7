"""Conservation, continuity, implementation and input invariance, selectivity; and the blind spot of seed
004: a uniform heatmap passes the axioms but is not selective."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import unmask
from unmask import evaluate as ev


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (OpenMP start-up dominates on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def relu_net(seed: int = 0, bias: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1, bias=bias), nn.ReLU(), nn.Conv2d(6, 8, 3, padding=1, bias=bias), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 4, bias=bias),
    ).eval()


def uniform(model: nn.Module, inputs: torch.Tensor, target) -> torch.Tensor:
    """The trivial explanation of Montavon et al. (2018): the explained logit spread evenly over all input elements."""
    with torch.no_grad():
        output = model(inputs)
    index = output.argmax(1) if target is None else torch.as_tensor(target).expand(inputs.shape[0])
    score = output.gather(1, index.view(-1, 1)).view(-1, 1, 1, 1)
    return (score / inputs[0].numel()).expand_as(inputs).clone()


# --------------------------------------------------------------------------------------------------
# conservation


def test_conservation_of_lrp_and_of_gradients():
    model = relu_net()
    x = torch.rand(2, 3, 8, 8)
    lrp = ev.conservation(unmask.explain(model, x, "lrp.epsilon", epsilon=1e-9))
    assert lrp.passes(rtol=1e-4) and lrp.value < 1e-4  # bias-free ReLU net: LRP-0 conserves
    assert torch.allclose(lrp.relevance_sum, lrp.output, rtol=1e-4)
    sensitivity = ev.conservation(unmask.explain(model, x, "sensitivity"))
    assert not sensitivity.passes() and sensitivity.value > 0.1
    relevance = torch.ones(2, 3, 4, 4)
    by_hand = ev.conservation(relevance, torch.tensor([48.0, 40.0]))
    assert by_hand.error.tolist() == [0.0, 8.0] and by_hand.relative.tolist() == [0.0, 0.2]
    assert by_hand.mean_abs_error == 4.0 and not by_hand.passes() and by_hand.passes(rtol=0.25)
    assert by_hand.to_dict()["metric"] == "conservation"


def test_conservation_errors():
    with pytest.raises(ValueError, match="pass output"):
        ev.conservation(torch.ones(2, 3))
    with pytest.raises(ValueError, match="3 values for 2 samples"):
        ev.conservation(torch.ones(2, 3), torch.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        ev.conservation(torch.full((2, 3), math.nan), torch.ones(2))


# --------------------------------------------------------------------------------------------------
# continuity


def test_translate():
    x = torch.arange(1.0, 5.0).view(1, 1, 1, 4)
    assert ev.translate(x, 1).flatten().tolist() == [1.0, 1.0, 2.0, 3.0]  # "min" fill
    assert ev.translate(x, -2, fill=0.0).flatten().tolist() == [3.0, 4.0, 0.0, 0.0]
    assert ev.translate(x, 2, fill="edge").flatten().tolist() == [1.0, 1.0, 1.0, 2.0]
    assert ev.translate(x, 7).flatten().tolist() == [1.0] * 4
    column = x.view(1, 1, 4, 1)
    assert ev.translate(column, 1, direction="y", fill=9.0).flatten().tolist() == [9.0, 1.0, 2.0, 3.0]


def test_continuity_by_hand():
    """R = w * x on a linear model: ||R(x) - R(x')||_1 = sum |w| |x - x'|, ||x - x'||_2 by hand."""
    w = torch.tensor([1.0, -2.0, 3.0, 0.5])
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 1, bias=False)).eval()
    with torch.no_grad():
        model[1].weight.copy_(w.view(1, 4))
    x = torch.arange(1.0, 5.0).view(1, 1, 1, 4)
    result = ev.continuity(model, x, "gradient_x_input", 0, shifts=[1])
    # x' = [1, 1, 2, 3]: |x - x'| = [0, 1, 1, 1] -> (0 + 2 + 3 + 0.5) / sqrt(3)
    assert result.per_image.item() == pytest.approx(5.5 / math.sqrt(3))
    two = ev.continuity(model, x, "gradient_x_input", 0, shifts=[1, 2], pairs="all")
    # x'' = [1, 1, 1, 2]; pairs: (x, x') 5.5/sqrt(3), (x, x'') (0+2+6+1)/sqrt(0+1+4+4), (x', x'') (0+0+3+0.5)/sqrt(2)
    assert two.per_image.item() == pytest.approx(max(5.5 / math.sqrt(3), 9.0 / 3.0, 3.5 / math.sqrt(2)))
    origin = ev.continuity(model, x, "gradient_x_input", 0, shifts=[1, 2], pairs="origin")
    assert origin.per_image.item() == pytest.approx(max(5.5 / math.sqrt(3), 3.0))
    gradient = ev.continuity(model, x, "gradient", 0, shifts=[1, 2])
    assert gradient.per_image.item() == 0.0  # the gradient of a linear model does not change
    assert gradient.to_dict()["shifts"] == [0, 1, 2]


def test_continuity_errors():
    model = relu_net()
    with pytest.raises(ValueError, match="non-zero shift"):
        ev.continuity(model, torch.rand(1, 3, 8, 8), "gradient", shifts=[0])
    with pytest.raises(ValueError, match="unknown pairs"):
        ev.continuity(model, torch.rand(1, 3, 8, 8), "gradient", pairs="some")
    with pytest.raises(ValueError, match="unknown method"):
        ev.continuity(model, torch.rand(1, 3, 8, 8), "no.such.method")


# --------------------------------------------------------------------------------------------------
# implementation invariance


def twin_networks() -> tuple[nn.Module, nn.Module]:
    """Two functionally equal networks: b duplicates every hidden unit of a and halves the outgoing weights."""
    torch.manual_seed(0)
    a = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    b = nn.Sequential(nn.Flatten(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 3)).eval()
    with torch.no_grad():
        b[1].weight.copy_(torch.cat([a[1].weight, a[1].weight]))
        b[1].bias.copy_(torch.cat([a[1].bias, a[1].bias]))
        b[3].weight.copy_(torch.cat([a[3].weight, a[3].weight], 1) / 2)
        b[3].bias.copy_(a[3].bias)
    return a, b


def test_implementation_invariance():
    a, b = twin_networks()
    x = torch.randn(4, 3, 2, 2)
    result = ev.implementation_invariance(a, b, x, "gradient")
    assert result.output_difference < 1e-5 and result.passes() and result.value < 1e-6
    torch.manual_seed(5)
    different = nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    other = ev.implementation_invariance(a, different, x, "gradient")
    assert other.output_difference > 1e-3 and not other.passes() and other.value > 0.1
    assert result.to_dict()["metric"] == "implementation_invariance"


# --------------------------------------------------------------------------------------------------
# input invariance


def test_absorb_input_shift_keeps_the_function_and_the_model():
    model = relu_net(bias=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 8, 8)
    shifted = ev.absorb_input_shift(model, 0.7, x)
    with torch.no_grad():
        assert torch.allclose(model(x), shifted(x + 0.7), atol=1e-5)  # also at the zero-padded borders
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert isinstance(model[0], nn.Conv2d) and model[0].padding == (1, 1)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(12, 2)).eval()
    per_channel = torch.tensor([0.5, -1.0, 2.0]).view(1, 3, 1, 1)
    z = torch.randn(3, 3, 2, 2)
    with torch.no_grad():
        assert torch.allclose(linear(z), ev.absorb_input_shift(linear, per_channel, z)(z + per_channel), atol=1e-5)


def test_input_invariance_separates_gradient_from_gradient_x_input():
    model = relu_net(bias=True)
    x = torch.randn(2, 3, 8, 8)
    gradient = ev.input_invariance(model, x, "gradient", shift=0.5)
    assert gradient.output_difference < 1e-4 and gradient.passes(rtol=1e-4)
    times_input = ev.input_invariance(model, x, "gradient_x_input", shift=0.5)
    assert not times_input.passes() and times_input.value > 0.05
    lrp = ev.input_invariance(model, x, "lrp.epsilon", shift=0.5)  # the ConstantPad2d copy can be traced
    assert math.isfinite(lrp.value)


def test_input_invariance_errors():
    model = relu_net()
    with pytest.raises(ValueError, match="per-channel shift"):
        ev.absorb_input_shift(model, torch.tensor([0.1, 0.2, 0.3]), torch.randn(1, 3, 8, 8))

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)

        def forward(self, x):
            return self.conv(2 * x).flatten(1)

    with pytest.raises(ValueError, match="does not receive the raw input"):
        ev.absorb_input_shift(Scaled().eval(), 1.0, torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="does not broadcast to one input sample"):
        ev.absorb_input_shift(model, torch.ones(4), torch.randn(1, 3, 8, 8))


# --------------------------------------------------------------------------------------------------
# selectivity and the uniform heatmap


def test_selectivity_by_hand_on_a_linear_model():
    weights = torch.tensor([[1.0, 4.0], [2.0, 3.0]]).repeat_interleave(2, 0).repeat_interleave(2, 1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 1, bias=False)).eval()
    with torch.no_grad():
        model[1].weight.copy_(weights.view(1, 16))
    x = torch.ones(1, 1, 4, 4)
    result = ev.selectivity(model, x, unmask.explain(model, x, "gradient_x_input", target=0), region=2, steps=4,
                            perturbation="constant")
    assert result.morf.aopc == pytest.approx(24.0) and result.lerf.aopc == pytest.approx(16.0)
    assert result.value == pytest.approx(8.0) and result.passes()


def test_uniform_heatmap_passes_the_axioms_but_not_selectivity():
    """Seed 004, "a blind spot in explanation selection": uniform redistribution is conservative, continuous
    and implementation invariant, yet uninformative."""
    model = relu_net(bias=True)
    torch.manual_seed(1)
    x = torch.rand(2, 3, 12, 12)
    with torch.no_grad():
        output = model(x)
    target = output.argmax(1)
    relevance = uniform(model, x, target)
    assert ev.conservation(relevance, output.gather(1, target.view(-1, 1)).squeeze(1)).passes(rtol=1e-5)
    smooth = ev.continuity(model, x, uniform, target, shifts=[-2, 2])
    gradient_x_input = ev.continuity(model, x, "gradient_x_input", target, shifts=[-2, 2])
    assert smooth.value < gradient_x_input.value
    a, b = twin_networks()
    z = torch.randn(3, 3, 2, 2)
    assert ev.implementation_invariance(a, b, z, uniform).passes()
    selective = ev.selectivity(model, x, relevance, target, region=3, steps=16)
    assert selective.value == 0.0 and not selective.passes()  # ties: MoRF and LeRF take the same order
    assert torch.equal(selective.morf.scores, selective.lerf.scores)
