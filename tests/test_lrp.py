"""The LRP engine: agreement with Zennit, invariants, generality, errors."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import unmask
from unmask.graph.canonize import ExplainableGraph
from unmask.lrp import Composite, rules

from models import VGG, DenseNet, ResNet, seeded
from zennit_oracle import import_zennit
from tolerance import assert_close_across_batches

zennit = import_zennit()


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def zennit_relevance(model, x, composite, target):
    from zennit.attribution import Gradient

    output = model(x)
    with Gradient(model=model, composite=composite) as attributor:
        _, relevance = attributor(x, torch.eye(output.shape[1])[target] * output)
    return relevance


@pytest.fixture(scope="module")
def batch():
    return torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


PAIRS = [
    ("epsilon_plus_flat", "EpsilonPlusFlat"),
    ("epsilon_gamma_box", "EpsilonGammaBox"),
    ("epsilon_alpha2_beta1", "EpsilonAlpha2Beta1"),
    ("epsilon_plus", "EpsilonPlus"),
    ("epsilon_alpha2_beta1_flat", "EpsilonAlpha2Beta1Flat"),
]


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("ours, theirs", PAIRS)
def test_same_relevance_as_zennit_on_vgg16(ours, theirs, batch_norm, batch):
    model = seeded(VGG, batch_norm=batch_norm)
    if batch_norm:
        # Zennit's merge leaves an identity BatchNorm that still divides by sqrt(1 + eps): a tiny eps
        # makes that identity exact, so both sides compute the same function.
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eps = 1e-12
    params = {}
    if ours == "epsilon_gamma_box":
        params = {"low": batch.amin((0, 2, 3), keepdim=True)[:1], "high": batch.amax((0, 2, 3), keepdim=True)[:1]}
    canonizers = [zennit.canonizers.SequentialMergeBatchNorm()] if batch_norm else None
    composite = getattr(zennit.composites, theirs)(canonizers=canonizers, **params)
    target = torch.tensor([0, 3, 7])
    expected = zennit_relevance(model, batch, composite, target)
    got = unmask.explain(model, batch, f"lrp.{ours}", target=target, **params).relevance
    assert got.shape == batch.shape
    assert relative(got, expected) < 1e-5


def test_gamma_and_epsilon_parameters_reach_the_rules(batch):
    model = seeded(VGG)
    low, high = -3.0, 3.0
    composite = zennit.composites.EpsilonGammaBox(low=low, high=high, gamma=0.7, epsilon=0.3)
    expected = zennit_relevance(model, batch, composite, torch.tensor([1, 1, 1]))
    got = unmask.explain(model, batch, "lrp.epsilon_gamma_box", target=1, gamma=0.7, epsilon=0.3, low=low, high=high)
    assert relative(got.relevance, expected) < 1e-5
    other = unmask.explain(model, batch, "lrp.epsilon_gamma_box", target=1, gamma=0.1, low=low, high=high)
    assert relative(other.relevance, expected) > 1e-3


class ReluNet(nn.Module):
    """Pads, concatenates, views, averages: functional operations the tracer must handle."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 6, 3)
        self.b = nn.Conv2d(3, 6, 1)
        self.head = nn.Linear(12 * 2, 5)

    def forward(self, x):
        left = F.relu(self.a(F.pad(x, (1, 1, 1, 1))))
        right = torch.relu(self.b(x))
        y = torch.cat([left, right], 1)
        y = F.max_pool2d(y, 2)
        y = y.view(y.size(0), 12, -1).mean(-1)
        y = torch.cat([y, y * 2.0], 1)
        return self.head(y)


def gradient_x_input(model, x, target):
    x = x.clone().requires_grad_(True)
    model(x)[torch.arange(len(x)), target].sum().backward()
    return x.grad * x


@pytest.mark.parametrize("make", [lambda: seeded(VGG), lambda: seeded(ResNet), lambda: seeded(ReluNet)])
def test_lrp0_equals_gradient_times_input_on_relu_networks(make, batch):
    torch.set_default_dtype(torch.float64)
    try:
        model = make().double()
        x = batch.double()
        composite = unmask.lrp.preset("epsilon", epsilon=0.0, stabilizer=0.0)
        explanation = unmask.LRP(model, composite=composite).explain(x, target=2)
        expected = gradient_x_input(model, x, torch.tensor([2, 2, 2]))
    finally:
        torch.set_default_dtype(torch.float32)
    assert relative(explanation.relevance, expected) < 1e-10


def test_basic_rule_is_lrp0(batch):
    model = seeded(VGG).double()
    x = batch.double()
    composite = Composite({"convolution": rules.Basic(), "linear": rules.Basic()},
                          base=unmask.lrp.composites.defaults(stabilizer=0.0))
    expected = gradient_x_input(model, x, model(x).argmax(1))
    assert relative(unmask.LRP(model, composite=composite).explain(x).relevance, expected) < 1e-10


def zero_biases(model):
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)) and module.bias is not None:
            nn.init.zeros_(module.bias)
    return model


def test_zplus_conserves_relevance_layer_by_layer(batch):
    model = zero_biases(seeded(VGG)).double()
    x = batch.double()
    explainer = unmask.LRP(model, composite="excitation_backprop", stabilizer=1e-12)
    record = explainer.relevances(x)
    logits = model(x).gather(1, model(x).argmax(1, keepdim=True)).squeeze(1)
    assert (logits > 0).all()
    totals = {name: r.flatten(1).sum(1) for name, r in record.items()}
    assert len(totals) > 30  # every layer of the VGG
    for name, total in totals.items():
        torch.testing.assert_close(total, logits, rtol=1e-6, atol=0, msg=name)


def test_flat_and_epsilon_plus_conserve_without_biases(batch):
    model = zero_biases(seeded(VGG)).double()
    explanation = unmask.explain(model, batch.double(), "lrp.epsilon_plus_flat", epsilon=1e-12, stabilizer=1e-12)
    assert explanation.conservation_error().abs().max() < 1e-5 * explanation.explained_output.abs().max()


@pytest.mark.parametrize("cls", [VGG, ResNet, DenseNet])
def test_batchnorm_folding_keeps_the_function(cls, batch):
    model = seeded(cls, **({"batch_norm": True} if cls is VGG else {}))
    graph = ExplainableGraph(model)
    kinds = [s.kind for s in graph.ordered()]
    assert kinds.count("batchnorm") < sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    torch.testing.assert_close(graph(batch), model(batch), rtol=0, atol=1e-5)


def test_batchnorm_before_dense_layer_is_folded_forward():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(12), nn.Linear(12, 4))
    seeded_bn = model[1]
    seeded_bn.running_mean.normal_()
    seeded_bn.running_var.uniform_(0.5, 2)
    seeded_bn.weight.data.uniform_(0.5, 2)
    model.eval()
    graph = ExplainableGraph(model)
    assert [s.kind for s in graph.ordered()] == ["structure", "linear"]
    x = torch.randn(5, 3, 2, 2)
    torch.testing.assert_close(graph(x), model(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("cls", [ResNet, DenseNet])
@pytest.mark.parametrize("method", [f"lrp.{p}" for p in unmask.lrp.PRESETS])
def test_residual_and_dense_networks_explain(cls, method, batch):
    model = seeded(cls)
    explanation = unmask.explain(model, batch, method)
    assert explanation.relevance.shape == batch.shape
    assert torch.isfinite(explanation.relevance).all()
    error = explanation.conservation_error()
    assert error.shape == (3,) and torch.isfinite(error).all()


def test_residual_add_splits_in_proportion():
    class Split(nn.Module):
        def forward(self, x):
            a = x[:, :2] * 1.0
            return (a + x[:, 2:]).sum(1, keepdim=True)

    x = torch.tensor([[1.0, 3.0, 2.0, 2.0]])
    explanation = unmask.explain(Split().eval(), x, "lrp.epsilon", target=0)
    # z = (1 + 2) + (3 + 2) = 8; each element keeps its share of its sum
    torch.testing.assert_close(explanation.relevance, x * 8 / 8, rtol=1e-5, atol=1e-5)


def test_max_pooling_winner_or_average():
    model = nn.Sequential(nn.MaxPool2d(2), nn.Flatten()).eval()
    x = torch.tensor([[[[1.0, 3.0], [2.0, 2.0]]]])
    winner = unmask.explain(model, x, "lrp.epsilon", target=0).relevance
    average = unmask.explain(model, x, "lrp.epsilon", target=0, maxpool="average").relevance
    torch.testing.assert_close(winner, torch.tensor([[[[0.0, 3.0], [0.0, 0.0]]]]))
    torch.testing.assert_close(average, x / 8 * 3, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pool", [nn.MaxPool2d(2), nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.MaxPool2d(3, 1, 1, dilation=2)])
def test_max_pooling_routes_relevance_to_the_winners_autograd_picks(pool):
    """The winners' indices kept by the forward pass route relevance as max pooling's own backward does,
    ties (the constant block) and overlapping, padded, dilated and ceil-mode windows included."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.ReLU(), pool, nn.Flatten()).double().eval()
    x = torch.randn(2, 2, 9, 9, dtype=torch.float64)
    x[:, :, :4, :4] = 1.0
    explainer = unmask.LRP(model, unmask.lrp.preset("epsilon", epsilon=0.0, stabilizer=0.0))
    relevance = explainer.explain(x, target=4).relevance
    leaf = x.clone().requires_grad_(True)
    model(leaf)[:, 4].sum().backward()
    torch.testing.assert_close(relevance, leaf.grad * x, rtol=1e-12, atol=1e-12)


def test_first_layer_is_the_one_that_consumes_the_input():
    class Reordered(nn.Module):
        def __init__(self):
            super().__init__()
            self.classifier = nn.Linear(8, 3)  # registered first, used last
            self.features = nn.Conv2d(3, 8, 3)

        def forward(self, x):
            return self.classifier(F.relu(self.features(x)).mean((2, 3)))

    torch.manual_seed(0)
    model = Reordered().eval()
    explainer = unmask.LRP(model, composite="epsilon_plus_flat")
    table = {row[1]: (row[2], row[3]) for row in explainer.rules()}
    assert table["features"] == ("convolution (first)", rules.Flat())
    assert table["classifier"] == ("linear", rules.Epsilon())
    by_name = Composite({"convolution": rules.ZPlus(), "linear": rules.Epsilon()}, names={"features": rules.Flat()})
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(explainer.explain(x).relevance, unmask.LRP(model, by_name).explain(x).relevance)


def test_user_composite_by_type_and_name(batch):
    model = seeded(VGG)
    composite = Composite({nn.Conv2d: rules.Gamma(0.5), nn.Linear: rules.Epsilon(0.1)},
                          names={"classifier.6": rules.Basic()}, first=rules.ZBox(-3.0, 3.0))
    table = unmask.LRP(model, composite=composite).rules()
    rows = {row[1]: row[3] for row in table}
    assert rows["features.0"] == rules.ZBox(-3.0, 3.0)
    assert rows["features.2"] == rules.Gamma(0.5)
    assert rows["classifier.0"] == rules.Epsilon(0.1)
    assert rows["classifier.6"] == rules.Basic()
    assert "Gamma(gamma=0.5" in str(table)


def test_custom_module_with_its_own_rule_stays_one_node():
    class Scale(nn.Module):
        def forward(self, x):
            return x * torch.sigmoid(x.sum())  # data-dependent gate the engine cannot split

    model = nn.Sequential(nn.Linear(4, 4), Scale(), nn.Linear(4, 2)).eval()
    explainer = unmask.LRP(model, Composite({Scale: rules.Pass()}))
    assert [row[2] for row in explainer.rules()] == ["linear (first)", "other", "linear"]
    assert torch.isfinite(explainer.explain(torch.randn(3, 4)).relevance).all()


def test_unsupported_operation_names_node_and_module():
    class Sorting(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return torch.cumsum(self.fc(x), 1)

    with pytest.raises(unmask.lrp.UnsupportedLayerError, match=r"cumsum.*Composite"):
        unmask.explain(Sorting().eval(), torch.randn(2, 4), "lrp.epsilon")


def test_bad_inputs_are_refused_clearly(batch):
    model = seeded(VGG)
    with pytest.raises(ValueError, match="NaN"):
        unmask.explain(model, batch * float("nan"), "lrp.epsilon")
    with pytest.raises(ValueError, match="batch first"):
        unmask.explain(model, torch.randn(5), "lrp.epsilon")
    with pytest.raises(ValueError, match="float64"):
        unmask.explain(model, batch.double(), "lrp.epsilon")
    with pytest.raises(ValueError, match="out of range"):
        unmask.explain(model, batch, "lrp.epsilon", target=10)
    with pytest.raises(ValueError, match="training mode"):
        unmask.explain(seeded(VGG).train(), batch, "lrp.epsilon")
    with pytest.raises(ValueError, match="does not take gamma"):
        unmask.explain(model, batch, "lrp.epsilon", gamma=0.5)
    with pytest.raises(ValueError, match="alpha - beta"):
        unmask.explain(model, batch, "lrp.epsilon_alpha2_beta1", alpha=2.0, beta=2.0)
    with pytest.raises(ValueError, match="unknown method"):
        unmask.explain(model, batch, "lrp.nonsense")


def test_the_model_is_not_changed(batch):
    model = seeded(VGG, batch_norm=True)
    model.features[0].register_forward_hook(lambda *args: None)
    before = copy.deepcopy(model.state_dict())
    hooks = len(model.features[0]._forward_hooks)
    flags = [p.requires_grad for p in model.parameters()]
    for method in ("lrp.epsilon_gamma_box", "lrp.epsilon_plus_flat"):
        unmask.explain(model, batch, method)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert len(model.features[0]._forward_hooks) == hooks
    assert [p.requires_grad for p in model.parameters()] == flags
    assert not model.training
    assert model.features[2].inplace is True


def test_deterministic_and_batch_independent(batch):
    model = seeded(ResNet)
    explainer = unmask.LRP(model, composite="epsilon_gamma_box")
    first = explainer.explain(batch, target=4).relevance
    assert torch.equal(first, explainer.explain(batch, target=4).relevance)
    assert_close_across_batches(explainer.explain(batch[1:2], target=4).relevance, first[1:2])


def test_onehot_init_and_callable_target(batch):
    model = seeded(VGG)
    explainer = unmask.LRP(model, composite="epsilon")
    logit = explainer.explain(batch, target=1)
    onehot = unmask.LRP(model, composite="epsilon", init="onehot").explain(batch, target=1)
    scale = logit.explained_output.view(-1, 1, 1, 1)
    torch.testing.assert_close(onehot.relevance * scale, logit.relevance, rtol=1e-4, atol=1e-7)
    called = explainer.explain(batch, target=lambda out: out[:, 1])
    torch.testing.assert_close(called.relevance, logit.relevance)
    assert called.target is None


def test_excitation_backprop_is_zplus_everywhere(batch):
    model = seeded(VGG)
    composite = Composite({"convolution": rules.ZPlus(), "linear": rules.ZPlus()})
    expected = unmask.LRP(model, composite=composite).explain(batch, target=3).relevance
    for name in ("excitation_backprop", "lrp.excitation_backprop"):
        torch.testing.assert_close(unmask.explain(model, batch, name, target=3).relevance, expected)


def test_inplace_relu_module_reused_and_relu6_clamps():
    class Reused(nn.Module):
        def __init__(self):
            super().__init__()
            self.act = nn.ReLU6(inplace=True)
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 3)

        def forward(self, x):
            h = self.act(self.a(x))
            h += x  # in-place functional residual
            return self.b(self.act(h))

    torch.manual_seed(0)
    model = Reused().eval()
    x = torch.randn(6, 4) * 5
    graph = ExplainableGraph(model)
    torch.testing.assert_close(graph(x), model(x.clone()))
    explanation = unmask.explain(model, x, "lrp.epsilon_plus")
    assert torch.isfinite(explanation.relevance).all()
    assert sum(1 for s in graph.ordered() if s.kind == "activation") == 2


def test_real_efficientnet_lite0_on_chelsea():
    from unmask import zoo
    from unmask.data import sample_photos

    model = zoo.load("efficientnet-lite0")
    image = sample_photos(["chelsea"])["chelsea"]
    x = model.preprocess(image)
    graph = ExplainableGraph(model.model)
    torch.testing.assert_close(graph(x), model.model(x), rtol=0, atol=1e-4)
    assert sum(s.kind == "batchnorm" for s in graph.ordered()) == 0  # all folded
    for method in ("lrp.epsilon_plus_flat", "lrp.epsilon_gamma_box"):
        params = {"low": model.low, "high": model.high} if method == "lrp.epsilon_gamma_box" else {}
        explanation = unmask.explain(model.model, x, method, **params)
        assert 281 <= explanation.target.item() <= 285  # tabby, tiger cat, Persian, Siamese, Egyptian cat
        assert torch.isfinite(explanation.relevance).all()
        assert torch.isfinite(explanation.conservation_error()).all()


def test_functional_max_pool_average_redistribution_conserves():
    torch.manual_seed(0)
    model = zero_biases(ReluNet().eval())
    x = torch.rand(2, 3, 8, 8)
    explanation = unmask.explain(model, x, "lrp.epsilon", maxpool="average", epsilon=0.0, stabilizer=0.0)
    torch.testing.assert_close(explanation.relevance.sum((1, 2, 3)), explanation.explained_output)
    winner = unmask.explain(model, x, "lrp.epsilon", epsilon=0.0, stabilizer=0.0).relevance
    assert not torch.allclose(winner, explanation.relevance)
