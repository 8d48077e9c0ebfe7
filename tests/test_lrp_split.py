"""Multi-output operations conserve: relevance at the pieces of split/chunk/unbind/tensor_split reaches
their input, for pieces used once, twice or not at all."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import unmask


class Pieces(nn.Module):
    def __init__(self, how: str):
        super().__init__()
        self.how = how
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.mix = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv(x))
        if self.how == "split":
            a, b, c = torch.split(x, [2, 2, 4], dim=1)
            x = torch.cat([a + b, b, c[:, :2], a], 1)  # a used twice, c partly
        elif self.how == "chunk":
            a, b = x.chunk(2, dim=1)
            x = torch.cat([b, a * 2], 1)
        elif self.how == "unbind":
            rows = x.unbind(2)
            x = torch.stack([rows[i] for i in range(len(rows) - 1)] + [rows[0]], 2)  # last row unused
        elif self.how == "tensor_split":
            parts = torch.tensor_split(x, 3, dim=3)
            x = torch.cat([parts[2], parts[0], parts[2]], 3)  # parts[1] unused, parts[2] used twice
        return self.fc(torch.relu(self.mix(x)).mean((2, 3)))


@pytest.mark.parametrize("how", ["split", "chunk", "unbind", "tensor_split"])
def test_pieces_conserve_and_lrp0_is_gradient_times_input(how):
    torch.manual_seed(0)
    model = Pieces(how).double().eval()
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.zeros_(module.bias)
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    composite = unmask.lrp.preset("epsilon", epsilon=0.0, stabilizer=0.0)
    explanation = unmask.LRP(model, composite=composite).explain(x, target=1)
    leaf = x.clone().requires_grad_(True)
    model(leaf)[:, 1].sum().backward()
    assert torch.allclose(explanation.relevance, leaf.grad * x, rtol=1e-9, atol=1e-12)
    assert torch.allclose(explanation.relevance.flatten(1).sum(1), explanation.explained_output, rtol=1e-9)
