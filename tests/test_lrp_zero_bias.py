"""``zero_bias=True``: biases left out of the rules' denominators (Zennit's ``zero_params="bias"``)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import unmask
from unmask.lrp import rules

from models import VGG, seeded
from zennit_oracle import import_zennit

zennit = import_zennit()


def biased_vgg() -> nn.Module:
    model = seeded(VGG, batch_norm=True).double()
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps = 1e-12  # Zennit's merged BatchNorm divides by sqrt(1 + eps): make it the identity
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.uniform_(module.bias, 0.0, 0.5)
    return model


@pytest.mark.parametrize("ours, theirs", [("epsilon_plus_flat", "EpsilonPlusFlat"),
                                          ("epsilon_alpha2_beta1", "EpsilonAlpha2Beta1"),
                                          ("epsilon_gamma_box", "EpsilonGammaBox")])
def test_zero_bias_agrees_with_zennit_zero_params(ours, theirs):
    model = biased_vgg()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    params = {"low": -3.0, "high": 3.0} if ours == "epsilon_gamma_box" else {}
    target = torch.tensor([1, 4])
    composite = getattr(zennit.composites, theirs)(canonizers=[zennit.canonizers.SequentialMergeBatchNorm()],
                                                   zero_params="bias", **params)
    output = model(x)
    with zennit.attribution.Gradient(model=model, composite=composite) as attributor:
        _, expected = attributor(x, torch.eye(output.shape[1], dtype=x.dtype)[target] * output)
    got = unmask.explain(model, x, f"lrp.{ours}", target=target, zero_bias=True, **params)
    error = ((got.relevance - expected).abs().max() / expected.abs().max()).item()
    assert error < 1e-7, error


def test_zero_bias_conserves_where_biases_absorb_relevance():
    model = biased_vgg()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    biased = unmask.explain(model, x, "lrp.epsilon_plus_flat")
    unbiased = unmask.explain(model, x, "lrp.epsilon_plus_flat", zero_bias=True)
    assert (biased.conserved_share() < 0.9).all()
    torch.testing.assert_close(unbiased.conserved_share(), torch.ones(2, dtype=x.dtype), rtol=1e-3, atol=1e-3)
    assert repr(rules.ZPlus(zero_bias=True)) == "ZPlus(stabilizer=1e-06, zero_bias=True)"
    assert repr(rules.ZPlus()) == "ZPlus(stabilizer=1e-06)"


def test_explain_command_reports_the_conserved_share_with_a_hint():
    from unmask.cli.explain import conservation_lines

    lines = conservation_lines({"lrp.epsilon_plus_flat": [0.0002, 0.0004, 0.001], "lrp.epsilon": [0.98],
                                "gradient": [0.01]})
    assert lines[0].startswith("unmask: lrp.epsilon_plus_flat: relevance sums to 0.0% of the explained logit")
    assert "-p lrp.epsilon_plus_flat:zero_bias=True" in lines[0]
    assert lines[1] == "unmask: lrp.epsilon: relevance sums to 98.0% of the explained logit (median of 1)"
    assert "zero_bias" not in lines[2]  # a hint for LRP presets only
