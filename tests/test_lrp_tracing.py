"""Tracing real model code: shape-dependent branches, parameter-only weights, value-dependent branches."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import unmask
from unmask.graph import TraceError
from unmask.lrp import Composite, rules


def lrp0(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    composite = unmask.lrp.preset("epsilon", epsilon=0.0, stabilizer=0.0)
    return unmask.LRP(model, composite=composite).explain(x, target=target).relevance


def gradient_x_input(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    model(x)[:, target].sum().backward()
    return x.grad * x


class SamePadConv(nn.Conv2d):
    """A TensorFlow-style "same" convolution: its padding is computed from the input's shape."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.size()[-2:]
        pad_h = max((math.ceil(ih / self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - ih, 0)
        pad_w = max((math.ceil(iw / self.stride[1]) - 1) * self.stride[1] + self.kernel_size[1] - iw, 0)
        if pad_h > 0 or pad_w > 0:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class StandardisedConv(nn.Conv2d):
    """Weight standardisation (as NFNets' ScaledStdConv2d): the weight is computed from parameters only."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gain = nn.Parameter(torch.rand(self.out_channels, 1, 1, 1) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, training=True,
                              momentum=0.0, eps=1e-5).reshape_as(self.weight) * self.gain
        return F.conv2d(x, weight, self.bias, self.stride, self.padding)


class ShapeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = SamePadConv(3, 6, 3, stride=2)
        self.std = StandardisedConv(6, 8, 3, padding=1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.std(F.relu(self.conv(x)))
        if x.shape[-1] > 4:  # shape-dependent branch, as timm's ConvMlp pre-logits
            x = F.adaptive_avg_pool2d(x, 4)
        return self.fc(F.relu(x).mean((2, 3)))


def seeded_shape_net() -> nn.Module:
    torch.manual_seed(0)
    return ShapeNet().double().eval()


@pytest.mark.parametrize("size", [15, 16, 7])
def test_shape_dependent_code_is_traced_for_each_input_shape(size):
    model = seeded_shape_net()
    x = torch.randn(2, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(size))
    expected = gradient_x_input(model, x, 1)
    assert torch.allclose(lrp0(model, x, 1), expected, rtol=1e-9, atol=1e-12)


def test_shape_specialised_graphs_are_cached_per_shape():
    model = seeded_shape_net()
    explainer = unmask.LRP(model, "epsilon")
    with pytest.raises(ValueError, match="depends on the input shape"):
        explainer.rules()
    small, large = torch.randn(2, 3, 15, 15).double(), torch.randn(3, 3, 20, 20).double()
    first = explainer.explain(small, target=0).relevance
    graph = explainer.graph
    explainer.explain(large, target=0)
    assert explainer.graph is not graph and explainer.graph.shape == (3, 3, 20, 20)
    assert torch.equal(explainer.explain(small, target=0).relevance, first)
    assert explainer.graph is graph  # the first shape's graph was reused, not traced again
    kinds = [row[2] for row in explainer.rules(small)]
    assert kinds.count("convolution (first)") == 1 and kinds.count("convolution") == 1
    with torch.no_grad():
        assert torch.allclose(explainer.graph(small), model(small), rtol=1e-12)


def test_parameter_only_weights_are_folded_into_the_layer():
    model = nn.Sequential(StandardisedConv(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    model = model.double().eval()
    explainer = unmask.LRP(model, "epsilon")  # shape-independent: traced once, symbolically
    assert explainer.graph.shape is None
    assert [row[2] for row in explainer.rules()][0] == "convolution (first)"
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    assert torch.allclose(lrp0(model, x, 2), gradient_x_input(model, x, 2), rtol=1e-9, atol=1e-12)


class ValueBranch(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.sum() > 0 else -x


class ValueBranchNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.branch = ValueBranch()
        self.out = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 100:  # shape-dependent: forces the trace specialised to the input
            x = x[:100]
        return self.out(self.branch(self.fc(x)))


def test_value_dependent_branch_names_the_module_and_the_fix():
    model = ValueBranchNet().eval()
    with pytest.raises(TraceError, match=r"branch \(ValueBranch\) branches on the values.*names=\{'branch'"):
        unmask.explain(model, torch.randn(2, 4), "lrp.epsilon")
    explainer = unmask.LRP(model, Composite({"linear": rules.Epsilon()}, names={"branch": rules.Pass()}))
    assert torch.isfinite(explainer.explain(torch.randn(2, 4)).relevance).all()
