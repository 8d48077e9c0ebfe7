"""A constant-zero pad in front of a convolution is part of that convolution's affine map."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import unmask
from unmask.lrp import Composite, rules


class FunctionalPad(nn.Module):
    def __init__(self, amounts):
        super().__init__()
        self.amounts = amounts

    def forward(self, x):
        return F.pad(x, self.amounts, value=0.0)


def pair(pad: nn.Module) -> tuple[nn.Module, nn.Module]:
    """The same convolution with its zero padding as a separate step, and built in (``padding=1``)."""
    torch.manual_seed(0)
    inner = nn.Conv2d(3, 4, 3, padding=1)
    head = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    outer = nn.Conv2d(3, 4, 3)
    outer.load_state_dict(inner.state_dict())
    return nn.Sequential(pad, outer, head).eval(), nn.Sequential(inner, head).eval()


@pytest.mark.parametrize("pad", [nn.ZeroPad2d(1), nn.ConstantPad2d(1, 0.0), FunctionalPad([1, 1, 1, 1])])
@pytest.mark.parametrize("first", [rules.Flat(), rules.WSquare(), rules.ZBox(-2.0, 2.0)])
def test_padding_step_explains_as_the_padded_convolution(pad, first):
    padded, builtin = pair(pad)
    composite = Composite({"convolution": rules.ZPlus(), "linear": rules.Epsilon()}, first=first)
    x = torch.randn(2, 3, 6, 6).clamp(-2, 2)
    ours = unmask.LRP(padded, composite=composite)
    assert [row[2] for row in ours.rules()][0] == "convolution (first)"  # no padding step left
    assert [row[4] for row in ours.rules()][0] == f"0 ({type(pad).__name__})"
    expected = unmask.LRP(builtin, composite=composite).explain(x, target=1).relevance
    torch.testing.assert_close(ours.explain(x, target=1).relevance, expected, rtol=1e-5, atol=1e-6)


def test_asymmetric_same_padding_sends_nothing_to_the_padded_zeros():
    torch.manual_seed(0)
    model = nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(3, 4, 3, stride=2, bias=False), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 4 * 4, 3, bias=False)).eval()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    model = model.double()
    for method in ("lrp.epsilon_plus_flat", "lrp.epsilon_gamma_box"):
        explanation = unmask.explain(model, x, method, epsilon=1e-12, stabilizer=1e-12)
        torch.testing.assert_close(explanation.relevance.flatten(1).sum(1), explanation.explained_output,
                                   rtol=1e-6, atol=1e-9)
    with torch.no_grad():
        graph = unmask.LRP(model).graph
        torch.testing.assert_close(graph(x), model(x))
