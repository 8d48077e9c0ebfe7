"""Canonization of every BatchNorm form: folded into the weighted layer it follows (or precedes)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import unmask
from torchvision_standin import FrozenBatchNorm2d


class BatchNormAct(nn.BatchNorm2d):
    """timm's BatchNormAct2d pattern: a BatchNorm2d subclass whose forward adds an activation."""

    def __init__(self, channels: int):
        super().__init__(channels)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return self.act(x)


class FunctionalNorm(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.register_buffer("mean", torch.randn(channels))
        self.register_buffer("var", torch.rand(channels) + 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(self.conv(x), self.mean, self.var, None, None, False, 0.1, 1e-3)


def randomized(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for module in model.modules():
        for name in ("running_mean", "bias"):
            if isinstance(getattr(module, name, None), torch.Tensor):
                getattr(module, name).data.normal_()
        for name in ("running_var", "weight"):
            if isinstance(getattr(module, name, None), torch.Tensor) and getattr(module, name).dim() == 1:
                getattr(module, name).data.uniform_(0.5, 1.5)
    return model.double().eval()


def net() -> nn.Module:
    torch.manual_seed(0)
    return randomized(nn.Sequential(
        nn.Conv2d(3, 6, 3), BatchNormAct(6),
        nn.Conv2d(6, 6, 3), nn.Dropout(0.5), nn.BatchNorm2d(6), nn.ReLU(),
        FunctionalNorm(6), nn.ReLU(),
        nn.Conv2d(6, 4, 1), FrozenBatchNorm2d(4), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5), nn.BatchNorm1d(5),
    ))


def test_every_batchnorm_form_is_folded_and_the_function_kept():
    model = net()
    explainer = unmask.LRP(model, "epsilon_plus_flat")
    graph = explainer.graph
    assert [s.kind for s in graph.ordered() if s.kind in ("batchnorm", "scale", "sum")] == []
    x = torch.randn(2, 3, 12, 12, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(graph(x), model(x), rtol=1e-10, atol=1e-12)
    merged = {row[1]: row[4] for row in explainer.rules()}
    assert merged["0"] == "1 (BatchNormAct)"  # the activation of BatchNormAct stays its own step
    assert [row[2] for row in explainer.rules()][1] == "activation"
    assert merged["2"] == "4 (BatchNorm2d)"  # through the dropout
    assert merged["6.conv"] == "6 (FunctionalNorm)"
    assert merged["8"] == "9 (FrozenBatchNorm2d)"
    assert merged["13"] == "14 (BatchNorm1d)"


def test_preactivation_batchnorm_is_an_affine_step_with_a_chosen_rule():
    model = randomized(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.ReLU(),
                                     nn.Conv2d(4, 4, 3), nn.Flatten(), nn.Linear(4 * 8 * 8, 3)))
    table = unmask.LRP(model, "epsilon").rules()
    assert [(row[2], repr(row[3])) for row in table if row[1] == "2"] == [("batchnorm", "Epsilon(epsilon=1e-06)")]
    chosen = unmask.lrp.Composite({"batchnorm": unmask.lrp.rules.Pass()})
    assert [repr(row[3]) for row in unmask.LRP(model, chosen).rules() if row[1] == "2"] == ["Pass()"]


@pytest.mark.parametrize("shared", [False, True])
def test_batchnorm_after_a_shared_layer_is_not_folded_into_it(shared):
    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn, self.fc = nn.Conv2d(3, 3, 3), nn.BatchNorm2d(3), nn.Linear(3 * 6 * 6, 2)

        def forward(self, x):
            y = self.conv(x)
            z = self.bn(y) + y if shared else self.bn(y)
            return self.fc(z.flatten(1))

    model = randomized(Branch())
    graph = unmask.LRP(model, "epsilon").graph
    assert [s.kind for s in graph.ordered()].count("batchnorm") == int(shared)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(graph(x), model(x), rtol=1e-10, atol=1e-12)
