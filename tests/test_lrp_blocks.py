"""Rules evaluated on stacked blocks (``Affine.blocks``): the same numbers as separate calls, on grouped,
depthwise, transposed, mode-padded and dense layers, with signed and non-negative inputs; Zennit as the oracle."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

import unmask
from unmask.graph.linear import Affine
from unmask.lrp import rules

from zennit_oracle import import_zennit

zennit = import_zennit()


def affines() -> list[tuple[str, Affine, tuple[int, ...]]]:
    """(name, layer, input shape) with float64 weights."""
    g = torch.Generator().manual_seed(0)
    w = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    return [
        ("conv", Affine.convolution(w(6, 4, 3, 3), w(6), padding=1), (2, 4, 7, 7)),
        ("grouped", Affine.convolution(w(6, 2, 3, 3), w(6), stride=2, groups=2), (2, 4, 7, 7)),
        ("depthwise", Affine.convolution(w(4, 1, 3, 3), None, padding=1, groups=4), (2, 4, 5, 5)),
        ("same-padded", Affine.convolution(w(6, 4, 3, 3), w(6)).zero_padded([0, 1, 1, 2]), (2, 4, 6, 6)),
        ("transposed", Affine.convolution(w(4, 3, 2, 2), w(6), stride=2, groups=2, transposed=True), (2, 4, 5, 5)),
        ("dense", Affine.dense(w(5, 8), w(5)), (3, 8)),
    ]


@pytest.mark.parametrize("name, f, shape", affines(), ids=[a[0] for a in affines()])
def test_blocks_equal_separate_calls(name, f, shape):
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(*shape, generator=g, dtype=torch.float64) for _ in range(2)]
    ws = [[f.weight.clamp(min=0), f.weight.clamp(max=0)], [f.weight, f.weight * 2]]
    biases = [None if f.bias is None else f.bias.clamp(min=0), f.bias]
    blocks = f.blocks(xs, ws)
    outputs = blocks.evaluate(biases, [0.5, -0.25])
    expected = [f(xs[0], row[0], b) + f(xs[1], row[1], None) + shift
                for row, b, shift in zip(ws, biases, [0.5, -0.25])]
    for out, want in zip(outputs, expected):
        torch.testing.assert_close(out, blocks.block(want), rtol=1e-12, atol=1e-12)
    ratios = [torch.randn(want.shape, generator=g, dtype=torch.float64) for want in expected]
    for out, s in zip(outputs, ratios):
        out.copy_(blocks.block(s))
    gathered = blocks.gather()
    want = sum(x * sum(f.transpose(s, x, row[j]) for s, row in zip(ratios, ws)) for j, x in enumerate(xs))
    torch.testing.assert_close(gathered, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, f, shape", affines(), ids=[a[0] for a in affines()])
def test_flat_counts_once_per_group_as_the_full_formula(name, f, shape):
    """Flat's shortcut (one receptive-field count per group, relevance summed over a group's outputs first)
    against ``R_j = sum_k 1 / (sum_i 1) R_k`` with every weight and input set to one."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    out = f(x)
    relevance = torch.randn(out.shape, generator=g, dtype=torch.float64)
    layer = SimpleNamespace(affine=f, inputs=[x], output=out, nonnegative=[False], describe=lambda: name)
    ones = torch.ones_like(f.weight)
    expected = f.transpose(relevance / (f(torch.ones_like(x), ones, None) + 1e-6), x, ones)
    torch.testing.assert_close(rules.Flat()(layer, relevance)[0], expected, rtol=1e-12, atol=1e-12)


class Mixed(nn.Module):
    """Convolutions of every kind, some on signed inputs (no activation before them), so every rule takes both
    its general and its non-negative form. Every layer whose outputs can lack positive contributions
    (``z+ = 0``) is followed by a ReLU, so no relevance reaches those outputs and z+ needs no completion."""

    def __init__(self):
        super().__init__()
        self.first = nn.Conv2d(3, 8, 3, padding=1)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)  # signed input
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2, groups=2)  # signed input
        self.depthwise = nn.Conv2d(4, 4, 3, padding=1, groups=4, padding_mode="reflect")
        self.pool = nn.AvgPool2d(4)
        self.fc = nn.Linear(4 * 8 * 8, 16)
        self.head = nn.Linear(16, 5)  # signed input

    def forward(self, x):
        x = torch.relu(self.up(self.grouped(self.first(x))))
        x = self.pool(torch.relu(self.depthwise(x)))
        return self.head(self.fc(x.flatten(1)))


@pytest.mark.parametrize("ours, theirs", [
    ("epsilon_plus_flat", "EpsilonPlusFlat"), ("epsilon_gamma_box", "EpsilonGammaBox"),
    ("epsilon_alpha2_beta1", "EpsilonAlpha2Beta1"), ("epsilon_alpha2_beta1_flat", "EpsilonAlpha2Beta1Flat"),
])
def test_grouped_transposed_and_signed_layers_agree_with_zennit(ours, theirs):
    torch.manual_seed(0)
    model = Mixed().double().eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    params = {"low": -3.0, "high": 3.0} if ours == "epsilon_gamma_box" else {}
    composite = getattr(zennit.composites, theirs)(**params)
    output = model(x)
    target = torch.tensor([1, 4])
    with zennit.attribution.Gradient(model=model, composite=composite) as attributor:
        _, expected = attributor(x, torch.eye(5, dtype=torch.float64)[target] * output)
    got = unmask.explain(model, x, f"lrp.{ours}", target=target, **params).relevance
    assert ((got - expected).abs().max() / expected.abs().max()).item() < 1e-10
