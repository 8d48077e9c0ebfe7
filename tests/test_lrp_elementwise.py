"""Graph patterns of mobile CNNs: activations written as several steps, squeeze-excitation gates, mixed
convolutions (split -> convolutions -> cat -> BatchNorm), and z+ at outputs without positive contributions."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import unmask
from unmask.lrp import rules
from unmask.lrp.composites import Composite

HAND_WRITTEN = {
    "hard_swish": (lambda x: x * F.relu6(x + 3) / 6, nn.Hardswish),
    "swish": (lambda x: x * torch.sigmoid(x), nn.SiLU),
    "gelu_tanh": (lambda x: 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * torch.pow(x, 3)))),
                  lambda: nn.GELU(approximate="tanh")),
}


class Activated(nn.Module):
    """conv -> activation -> conv -> mean -> linear; the activation a module or written by hand."""

    def __init__(self, activation):
        super().__init__()
        self.conv1, self.conv2, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3), nn.Linear(8, 4)
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.activation(self.conv1(x))
        return self.fc(torch.relu(self.conv2(x)).mean((2, 3)))


class _Lambda(nn.Module):
    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)


def _zero_biases(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
            nn.init.zeros_(module.bias)
    return model


@pytest.mark.parametrize("name", list(HAND_WRITTEN))
def test_hand_written_activation_is_one_activation_step(name):
    """The hand-written form explains exactly like the torch module it spells out (one activation step)."""
    function, module = HAND_WRITTEN[name]
    torch.manual_seed(0)
    by_hand = _zero_biases(Activated(_Lambda(function))).double().eval()
    reference = Activated(module()).double().eval()
    reference.load_state_dict(by_hand.state_dict())
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    for method in ("lrp.epsilon_plus_flat", "lrp.epsilon_gamma_box"):
        ours = unmask.explain(by_hand, x, method, target=1, epsilon=1e-12, stabilizer=1e-12)
        expected = unmask.explain(reference, x, method, target=1, epsilon=1e-12, stabilizer=1e-12)
        torch.testing.assert_close(ours.relevance, expected.relevance, rtol=1e-9, atol=1e-12)
        assert ((ours.conserved_share() - 1).abs() < 1e-6).all()
    graph = unmask.LRP(by_hand).graph
    (activation,) = [s for s in graph.ordered() if s.region]
    assert activation.kind == "activation" and [n.name for n in activation.inputs] == ["conv1"]
    inner = {s.node for s in activation.region}  # kept for the forward pass, out of relevance's way
    assert all(s.node in inner for s in graph.ordered() if s.kind in ("gate", "sum", "other"))
    torch.testing.assert_close(graph(x), by_hand(x), rtol=1e-12, atol=1e-12)


def test_merged_activation_keeps_its_gradient_for_other_rules():
    """A rule that differentiates the step (here Gradient) sees the whole elementwise function."""
    function, _ = HAND_WRITTEN["hard_swish"]
    torch.manual_seed(0)
    model = Activated(_Lambda(function)).double().eval()
    x = torch.randn(1, 3, 8, 8, dtype=torch.float64)
    composite = Composite({"activation": rules.Gradient(), "convolution": rules.Gradient(),
                           "linear": rules.Gradient(), "avgpool": rules.Gradient()})
    relevance = unmask.LRP(model, composite=composite, init="onehot").explain(x, target=2).relevance
    leaf = x.clone().requires_grad_(True)
    model(leaf)[0, 2].backward()
    torch.testing.assert_close(relevance, leaf.grad, rtol=1e-9, atol=1e-12)


class SqueezeExcite(nn.Module):
    """x * sigmoid(conv(relu(conv(mean(x))))) after a convolution, as in EfficientNet and MobileNetV3."""

    def __init__(self):
        super().__init__()
        self.conv, self.reduce, self.expand = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 2, 1), nn.Conv2d(2, 8, 1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.conv(x))
        gate = torch.sigmoid(self.expand(torch.relu(self.reduce(x.mean((2, 3), keepdim=True)))))
        return self.fc((x * gate).mean((2, 3)))


def test_squeeze_excitation_gate_sends_all_relevance_to_the_signal():
    torch.manual_seed(0)
    model = _zero_biases(SqueezeExcite()).double().eval()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    explainer = unmask.LRP(model, "epsilon_plus_flat")
    (gate,) = [s for s in explainer.graph.ordered() if s.kind == "gate"]
    record = explainer.relevances(x, target=0)
    assert "reduce" not in record and "expand" not in record  # signal-take-all: nothing into the gate branch
    torch.testing.assert_close(record[gate.inputs[0].name], record[gate.name])  # the signal: x, not the gate
    explanation = unmask.explain(model, x, "lrp.epsilon_plus_flat", target=0, epsilon=1e-12, stabilizer=1e-12)
    share = explanation.conserved_share()
    assert ((share - 1).abs() < 1e-6).all()


class MixedConv(nn.Module):
    """MixNet's mixed convolution: split the channels, one kernel size per chunk, cat, BatchNorm."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.convs = nn.ModuleList([nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(4, 5, 5, padding=2)])
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        chunks = torch.split(torch.relu(self.stem(x)), [2, 4], dim=1)
        x = torch.cat([conv(chunk) for conv, chunk in zip(self.convs, chunks)], 1)
        return self.fc(torch.relu(self.bn(x)).mean((2, 3)))


def test_batchnorm_after_mixed_convolution_is_folded_slice_by_slice():
    torch.manual_seed(0)
    model = MixedConv().double().eval()
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1), model.bn.running_var.uniform_(0.5, 2)
        model.bn.weight.uniform_(0.5, 2), model.bn.bias.uniform_(-1, 1)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    explainer = unmask.LRP(model, unmask.lrp.preset("epsilon", epsilon=0.0, stabilizer=0.0))
    explainer.explain(x, target=1)  # iterating over the chunks: traced for the input's shape
    graph = explainer.graph
    assert [s.kind for s in graph.ordered()].count("batchnorm") == 0
    assert [s.merged for s in graph.ordered() if s.path.startswith("convs")] == [["bn (BatchNorm2d)"]] * 2
    torch.testing.assert_close(graph(x), model(x), rtol=1e-12, atol=1e-12)
    # with every shift zero, LRP-0 is gradient x input through the folded layers
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)):
                module.bias.zero_()
        model.bn.running_mean.zero_()
    relevance = unmask.LRP(model, unmask.lrp.preset("epsilon", epsilon=0.0, stabilizer=0.0)).explain(x, 1).relevance
    leaf = x.clone().requires_grad_(True)
    model(leaf)[:, 1].sum().backward()
    torch.testing.assert_close(relevance, leaf.grad * x, rtol=1e-9, atol=1e-12)


class TwoLayers(nn.Module):
    def __init__(self, relu: bool):
        super().__init__()
        self.relu = relu
        self.hidden, self.out = nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False)
        with torch.no_grad():
            self.hidden.weight.copy_(torch.tensor([[1.0, 1.0], [-1.0, -2.0]]))
            self.out.weight.copy_(torch.tensor([[1.0, -1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(torch.relu(x) if self.relu else x))


@pytest.mark.parametrize("relu", [True, False])
def test_zplus_sends_relevance_of_outputs_without_positive_contributions_to_the_negative_ones(relu):
    """hidden = (x1 + x2, -x1 - 2 x2) at x = (1, 1): (2, -3); out = 2 + 3 = 5 gives R = (2, 3) by epsilon.
    z+ splits R_1 = 2 as (1, 1); output 2 has no positive contribution, so R_2 = 3 follows the negative ones,
    (1/3, 2/3) of it: (1, 2). With a ReLU in front (inputs known >= 0) the shortcut path must agree."""
    model = TwoLayers(relu).double().eval()
    composite = Composite({nn.Linear: rules.ZPlus(stabilizer=0.0)}, names={"out": rules.Epsilon(0.0)})
    explainer = unmask.LRP(model, composite=composite)
    assert explainer.graph.nonnegative(explainer.graph.steps[next(iter(explainer.graph.steps))].node) is relu
    x = torch.tensor([[1.0, 1.0]], dtype=torch.float64)
    relevance = explainer.explain(x, target=0).relevance
    torch.testing.assert_close(relevance, torch.tensor([[2.0, 3.0]], dtype=torch.float64))
