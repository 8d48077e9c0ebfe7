"""The LRP engine on real architectures: timm 1.0.31 models (random weights, code untouched) as the test bed.

A few models per property keep the suite fast; ``benchmarks/zoo.py`` runs the long list.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import unmask
from models import calibrate_batchnorm, zero_shifts
from torchvision_standin import install
from zennit_oracle import (efficientnet_lite_batchnorms, efficientnet_lite_canonizers, fold_batchnorms_in_float64,
                           import_zennit)

install()
timm = pytest.importorskip("timm")


def create(name: str, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, num_classes=10).to(dtype).eval()


def unfolded_batchnorms(graph) -> list[str]:
    """BatchNorm steps left in the graph whose input comes from a weighted layer."""
    return [s.describe() for s in graph.ordered() if s.kind == "batchnorm"
            and graph.steps.get(s.inputs[0]) is not None and graph.steps[s.inputs[0]].affine is not None]


# the ten architectures (about 1-5 s each at 64 px, inception_v3 at its smallest input, 75 px)
LRP0_MODELS = ["resnet50", "densenet121", "res2net50_26w_4s", "cspresnet50", "regnetx_016", "repvgg_a0", "dla34",
               "hrnet_w18_small", "inception_v3", "vgg16_bn"]


@pytest.mark.parametrize("name", LRP0_MODELS)
def test_lrp0_is_gradient_times_input_on_timm_models(name):
    model = zero_shifts(create(name, torch.float64))
    size = 75 if name == "inception_v3" else 64  # the smallest input inception_v3 takes
    x = torch.randn(1, 3, size, size, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    explainer = unmask.LRP(model, unmask.lrp.preset("epsilon", epsilon=0.0, stabilizer=0.0))
    relevance = explainer.explain(x, target=3).relevance
    leaf = x.clone().requires_grad_(True)
    model(leaf)[0, 3].backward()
    torch.testing.assert_close(relevance, leaf.grad * x, rtol=1e-9, atol=1e-9 * (leaf.grad * x).abs().max().item())
    assert unfolded_batchnorms(explainer.graph) == []
    if name == "regnetx_016":  # BatchNormAct2d everywhere: every norm folded, every activation kept
        kinds = [s.kind for s in explainer.graph.ordered()]
        assert kinds.count("batchnorm") == 0 and kinds.count("activation") > 0
        assert sum(len(s.merged) for s in explainer.graph.ordered()) == 59


CONSERVING = ["efficientnet_b0", "mobilenetv3_large_100", "ghostnet_100", "mixnet_m", "tf_efficientnet_lite0",
              "nfnet_l0", "regnety_016", "rexnet_100"]


@pytest.mark.parametrize("name", CONSERVING)
def test_presets_conserve_without_biases_on_timm_models(name):
    """Random weights, BatchNorm statistics estimated on a random batch (so activations have a trained network's
    scale, not 1e-5, where the stabilisers' 1e-6 would take a visible share), then every bias and BatchNorm mean
    zero: z+ and gamma must send the whole logit to the input through SiLU / hard-swish, squeeze-excitation
    gates, linear bottlenecks, mixed and ghost convolutions."""
    model = create(name)
    generator = torch.Generator().manual_seed(0)
    zero_shifts(calibrate_batchnorm(model, torch.randn(8, 3, 64, 64, generator=generator)))
    x = torch.randn(1, 3, 64, 64, generator=generator)
    for method in ("lrp.epsilon_plus_flat", "lrp.epsilon_gamma_box"):
        share = unmask.explain(model, x, method, target=3, zero_bias=True).conserved_share()
        assert ((share - 1).abs() < 0.05).all(), (method, share)


@pytest.mark.parametrize("name", ["tf_efficientnet_lite0"])
def test_zero_bias_presets_conserve_on_timm_models(name):
    model = create(name)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    for method in ("lrp.epsilon_plus_flat", "lrp.epsilon_gamma_box"):
        explanation = unmask.explain(model, x, method, zero_bias=True)
        share = explanation.conserved_share()
        assert ((share - 1).abs() < 0.05).all(), (method, share)


@pytest.fixture(scope="module")
def lite0():
    pytest.importorskip("efficientnet_lite_pytorch", reason="needs unmask[zoo]")
    from unmask import zoo
    from unmask.data import sample_photos

    net = zoo.load("efficientnet-lite0")
    return net.model, net.preprocess(sample_photos(["chelsea"])["chelsea"])


LITE0_PAIRS = [("epsilon_plus_flat", "EpsilonPlusFlat"), ("epsilon_alpha2_beta1", "EpsilonAlpha2Beta1")]


def zennit_lite0(model, x, theirs, target):
    """Zennit's relevance for a Lite0 whose BatchNorms are identities already (the skip adds as Sum)."""
    zennit = import_zennit()
    composite = getattr(zennit.composites, theirs)(canonizers=efficientnet_lite_canonizers(model, merge=False))
    output = model(x)
    with zennit.attribution.Gradient(model=model, composite=composite) as attributor:
        _, relevance = attributor(x, torch.eye(1000, dtype=x.dtype)[target] * output)
    return relevance


def relative_error(got, expected):
    return ((got - expected).abs().max() / expected.abs().max()).item()


@pytest.mark.parametrize("ours, theirs", LITE0_PAIRS)
def test_efficientnet_lite0_agrees_with_zennit_in_float32(lite0, ours, theirs):
    """float32 against Zennit running the same float32 network: its BatchNorms folded in float64 and rounded
    once, as unmask folds them, and the skip adds as ``zennit.layer.Sum``. The forward passes are then
    identical, so the test measures the rules' round-off: 4.3e-7 / 4.4e-7 of max |R| measured (3.7e-7 / 5.0e-7
    with zero_bias). Our side sees the model as it is (padded convolutions, functional adds, BatchNorms).

    With Zennit's own float32 merge instead, the two float32 sides are 1.5e-4 / 1.7e-5 apart: each alone is up
    to 1.25e-4 from its float64 result (the float64 sides agree to 2e-13), because forward round-off is
    amplified where a residual sum nearly cancels (|a + b| = 1.4e-6 beside a stabiliser of 1e-6 in block 10).
    ``benchmarks/lite0_agreement.py`` measures every setting."""
    model, x = lite0
    folded = copy.deepcopy(model)
    fold_batchnorms_in_float64(folded, efficientnet_lite_batchnorms(folded))
    explanation = unmask.explain(model, x, f"lrp.{ours}")
    expected = zennit_lite0(folded, x, theirs, explanation.target)
    assert relative_error(explanation.relevance, expected) < 2e-5
