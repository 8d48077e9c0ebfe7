"""Region perturbation / pixel flipping and AOPC: cases computed by hand on a linear model, invariants,
batching, seeding and errors. Agreement with Quantus is in test_evaluate_quantus.py."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

import unmask
from unmask import evaluate as ev
from tolerance import assert_close_across_batches


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (OpenMP start-up dominates on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# A linear model on 1 x 4 x 4 images: f_0(x) = sum_i w_i x_i with w constant on each 2x2 region,
# region weights 1, 4 (top row), 2, 3 (bottom row); f_1 = -f_0 / 2.
REGION_WEIGHTS = torch.tensor([[1.0, 4.0], [2.0, 3.0]])


def linear_model() -> nn.Module:
    w = REGION_WEIGHTS.repeat_interleave(2, 0).repeat_interleave(2, 1).reshape(1, 16)
    layer = nn.Linear(16, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.cat([w, -w / 2]))
    return nn.Sequential(nn.Flatten(), layer).eval()


def region_relevance(values: list[float]) -> torch.Tensor:
    """A (1, 1, 4, 4) heatmap constant on each 2x2 region (row-major region order)."""
    grid = torch.tensor(values, dtype=torch.float32).view(2, 2)
    return grid.repeat_interleave(2, 0).repeat_interleave(2, 1).view(1, 1, 4, 4)


def small_cnn(seed: int = 0, classes: int = 5) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, classes),
    ).eval()


def test_morf_and_lerf_curves_and_aopc_by_hand():
    model, x = linear_model(), torch.ones(1, 1, 4, 4)
    relevance = region_relevance([1.0, 4.0, 2.0, 3.0])  # the exact contributions' order (w_i x_i per region)
    morf = ev.region_perturbation(model, x, relevance, 0, order="morf", region=2, steps=4, perturbation="constant")
    lerf = ev.region_perturbation(model, x, relevance, 0, order="lerf", region=2, steps=4, perturbation="constant")
    # f(x) = 4 * (1 + 4 + 2 + 3) = 40. MoRF removes the regions worth 16, 12, 8, 4; LeRF 4, 8, 12, 16.
    assert morf.scores[0].tolist() == [40.0, 24.0, 12.0, 4.0, 0.0]
    assert morf.curve.tolist() == [0.0, 16.0, 28.0, 36.0, 40.0]
    assert lerf.curve.tolist() == [0.0, 4.0, 12.0, 24.0, 40.0]
    assert morf.aopc == pytest.approx(120.0 / 5)  # 1/(L+1) * sum_{k=0..L} f(x^0) - f(x^k)
    assert lerf.aopc == pytest.approx(80.0 / 5)
    assert ev.aopc(morf.scores) == pytest.approx(morf.aopc)
    assert morf.higher_is_better and not lerf.higher_is_better
    assert morf.score == "logit" and morf.region == 2 and morf.steps == 4 and morf.target.tolist() == [0]


def test_morf_is_the_best_ordering_and_lerf_the_worst():
    """For a linear model, removing regions by decreasing contribution makes the score fall fastest."""
    model, x = linear_model(), torch.ones(1, 1, 4, 4)
    truth = ev.region_perturbation(model, x, region_relevance([1.0, 4.0, 2.0, 3.0]), 0, region=2, steps=4,
                                   perturbation="constant")
    worst = ev.region_perturbation(model, x, region_relevance([1.0, 4.0, 2.0, 3.0]), 0, order="lerf", region=2,
                                   steps=4, perturbation="constant")
    values = []
    for permutation in itertools.permutations(range(4)):
        relevance = region_relevance([float(4 - permutation.index(r)) for r in range(4)])
        values.append(ev.region_perturbation(model, x, relevance, 0, region=2, steps=4, perturbation="constant").aopc)
    assert max(values) == pytest.approx(truth.aopc) and min(values) == pytest.approx(worst.aopc)
    assert sorted(values)[-2] < truth.aopc


def test_uniform_noise_matches_the_formula_and_the_seed():
    model = linear_model()
    torch.manual_seed(1)
    x = torch.rand(3, 1, 4, 4)
    relevance = torch.randn(3, 1, 4, 4)
    result = ev.region_perturbation(model, x, relevance, 0, region=1, steps=16, seed=7)
    fill = ev.replacement(x, "uniform", seed=7)
    assert bool(((fill >= x.amin()) & (fill <= x.amax())).all())  # default range: the batch's min..max
    w = model[1].weight[0].double()
    ranks = ev.region_ranks(relevance.sum(1), 1, "morf")
    for k in range(17):
        xk = torch.where(ranks.unsqueeze(1) < k, fill, x).flatten(1).double()
        assert torch.allclose(result.scores[:, k], xk @ w, atol=1e-5)
    again = ev.region_perturbation(model, x, relevance, 0, region=1, steps=16, seed=7)
    other = ev.region_perturbation(model, x, relevance, 0, region=1, steps=16, seed=8)
    assert torch.equal(result.scores, again.scores)
    assert not torch.allclose(result.scores[:, 1:], other.scores[:, 1:])


def test_uniform_range_follows_low_and_high():
    x = torch.zeros(2, 3, 5, 5)
    low, high = torch.tensor([-1.0, 0.0, 2.0]).view(1, 3, 1, 1), torch.tensor([0.0, 0.5, 3.0]).view(1, 3, 1, 1)
    fill = ev.replacement(x, "uniform", low=low, high=high, seed=0)
    assert bool(((fill >= low) & (fill <= high)).all())
    assert fill.std() > 0


def test_other_perturbations():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 12, 12)
    assert torch.allclose(ev.replacement(x, "mean"), x.mean((2, 3), keepdim=True).expand_as(x))
    assert torch.equal(ev.replacement(x, "constant", value=0.25), torch.full_like(x, 0.25))
    blurred = ev.replacement(x, "blur", sigma=2.0)
    assert blurred.shape == x.shape and blurred.std() < x.std()
    flat = torch.full_like(x, 0.3)
    assert torch.allclose(ev.replacement(flat, "blur", sigma=2.0), flat)  # blur keeps a constant image
    custom = ev.replacement(x, lambda inputs: 1 - inputs)
    assert torch.equal(custom, 1 - x)
    model = small_cnn()
    result = ev.region_perturbation(model, x, torch.rand(2, 12, 12), region=3, steps=5, perturbation=lambda t: 1 - t)
    assert result.perturbation == "<lambda>"


def test_batching_does_not_change_the_result():
    model = small_cnn()
    torch.manual_seed(3)
    x, relevance = torch.randn(3, 3, 12, 12), torch.randn(3, 3, 12, 12)
    results = [ev.region_perturbation(model, x, relevance, region=3, steps=16, batch_size=b).scores for b in (1, 7, 1000)]
    assert_close_across_batches(results[1], results[0])
    assert_close_across_batches(results[2], results[0])


def test_perturbation_curves_batches_methods_and_orders_together():
    model = small_cnn()
    torch.manual_seed(4)
    x = torch.randn(2, 3, 12, 12)
    maps = {"a": torch.randn(2, 3, 12, 12), "b": torch.rand(2, 12, 12)}
    together = ev.perturbation_curves(model, x, maps, region=4, steps=9)
    for name, relevance in maps.items():
        for order in ("morf", "lerf"):
            alone = ev.region_perturbation(model, x, relevance, order=order, region=4, steps=9)
            assert_close_across_batches(together[name][order].scores, alone.scores)


def test_explanation_target_and_probability_score():
    model, x = linear_model(), torch.ones(2, 1, 4, 4)
    explanation = unmask.explain(model, x, "gradient_x_input", target=1)
    result = ev.region_perturbation(model, x, explanation, region=2, steps=4, perturbation="constant")
    assert result.target.tolist() == [1, 1]  # the explained class, not the prediction (class 0)
    probability = ev.region_perturbation(model, x, explanation, region=2, steps=4, perturbation="constant",
                                         score="probability")
    # f_0 = s, f_1 = -s/2 -> p_1 = 1 / (1 + exp(1.5 s))
    s = torch.tensor([40.0, 40 - 4, 40 - 12, 40 - 24, 0.0], dtype=torch.float64)  # class 1 relevance: LeRF of class 0
    assert probability.score == "probability"
    assert torch.allclose(probability.scores[0], 1 / (1 + torch.exp(1.5 * s)), atol=1e-6)
    assert probability.to_dict()["score"] == "probability"


def test_callable_target():
    model = small_cnn()
    x = torch.randn(2, 3, 8, 8)
    result = ev.region_perturbation(model, x, torch.rand(2, 8, 8), lambda out: out[:, 2] - out[:, 0], region=2, steps=4)
    with torch.no_grad():
        out = model(x)
    assert torch.allclose(result.scores[:, 0], (out[:, 2] - out[:, 0]).double(), atol=1e-6)
    assert result.target is None


def test_pixel_flipping_is_single_pixel_regions():
    model = small_cnn()
    torch.manual_seed(5)
    x, relevance = torch.randn(2, 3, 6, 6), torch.randn(2, 6, 6)
    flipped = ev.pixel_flipping(model, x, relevance)
    assert flipped.region == 1 and flipped.steps == 36 and flipped.perturbation == "constant"
    same = ev.region_perturbation(model, x, relevance, region=1, steps=None, perturbation="constant", value=0.0)
    assert torch.equal(flipped.scores, same.scores)
    with torch.no_grad():
        assert torch.allclose(flipped.scores[:, -1], model(torch.zeros_like(x))[torch.arange(2), flipped.target].double(), atol=1e-6)


def test_partial_regions_and_ties():
    ranks = ev.region_ranks(torch.ones(1, 5, 5), 2, "morf")  # a 3 x 3 grid, cut short at the right and bottom
    assert ranks[0].tolist() == [[0, 0, 1, 1, 2], [0, 0, 1, 1, 2], [3, 3, 4, 4, 5], [3, 3, 4, 4, 5], [6, 6, 7, 7, 8]]
    assert torch.equal(ranks, ev.region_ranks(torch.ones(1, 5, 5), 2, "lerf"))  # ties: grid order both ways
    ranks = ev.region_ranks(torch.tensor([[[0.0, 1.0], [3.0, 2.0]]]), 1, "morf")
    assert ranks[0].tolist() == [[3, 2], [0, 1]]


def test_to_dict_is_json():
    import json

    model = small_cnn()
    result = ev.region_perturbation(model, torch.randn(2, 3, 8, 8), torch.rand(2, 8, 8), region=2, steps=3)
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["order"] == "morf" and len(data["curve"]) == 4 and data["curve"][0] == 0.0
    assert data["aopc"] == pytest.approx(result.aopc) and len(data["aopc_per_image"]) == 2


def test_model_is_not_modified():
    model = small_cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ev.region_perturbation(model, torch.randn(1, 3, 8, 8), torch.rand(1, 8, 8), region=2, steps=3)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(relevance=torch.rand(2, 3, 9, 8)), "does not match"),
        (dict(relevance=torch.rand(3, 8, 8)), "does not match"),
        (dict(relevance=torch.rand(2, 2, 8, 8)), "does not match"),
        (dict(relevance=torch.rand(8, 8)), "must be shaped"),
        (dict(relevance=torch.full((2, 8, 8), float("nan"))), "NaN"),
        (dict(inputs=torch.full((2, 3, 8, 8), float("nan"))), "NaN"),
        (dict(inputs=torch.rand(2, 3, 8)), "shaped"),
        (dict(perturbation="salt"), "unknown perturbation"),
        (dict(perturbation=lambda t: t[:, :1]), "shaped like the inputs"),
        (dict(order="random"), "unknown order"),
        (dict(score="softmax"), "unknown score"),
        (dict(steps=17), "exceeds the 16 regions"),
        (dict(steps=0), "steps must be"),
        (dict(region=0), "region must be"),
        (dict(batch_size=0), "batch_size must be"),
        (dict(low=torch.zeros(2)), "does not broadcast"),
    ],
)
def test_bad_input_is_refused(change, message):
    model = small_cnn()
    arguments = dict(inputs=torch.rand(2, 3, 8, 8), relevance=torch.rand(2, 8, 8), region=2, steps=4)
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        ev.region_perturbation(model, arguments.pop("inputs"), arguments.pop("relevance"), **arguments)


def test_training_mode_is_refused():
    model = small_cnn().train()
    with pytest.raises(ValueError, match="training mode"):
        ev.region_perturbation(model, torch.rand(1, 3, 8, 8), torch.rand(1, 8, 8), region=2, steps=2)
