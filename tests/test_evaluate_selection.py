"""Explanation selection: sweep a method's parameter, score, keep the best (Montavon et al. 2018)."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from unmask import evaluate as ev
from unmask.explanation import Explanation


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (OpenMP start-up dominates on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def linear_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 2, bias=False)).eval()


class Mix:
    """A test method: alpha * (the exact contributions w * x) + (1 - alpha) * (their negation)."""

    def __init__(self, model: nn.Module, alpha: float = 1.0):
        self.model, self.alpha = model, alpha

    def explain(self, inputs, target=None):
        output = self.model(inputs).detach()
        index = output.argmax(1) if target is None else torch.as_tensor(target).expand(inputs.shape[0])
        w = self.model[1].weight.detach()[index].view_as(inputs)
        relevance = (2 * self.alpha - 1) * w * inputs
        return Explanation(relevance, output, index, "test.mix", inputs)


def test_the_faithful_setting_wins_by_aopc(register_method):
    register_method("test.mix", Mix)
    model = linear_model()
    x = torch.rand(3, 3, 6, 6)
    result = ev.select(model, x, "test.mix", "alpha", [0.0, 0.25, 1.0, 0.75], metric="morf",
                       metric_options=dict(region=2, steps=9, perturbation="constant"))
    assert result.best_value == 1.0 and result.higher_is_better
    assert result.scores[2] == max(result.scores) and result.scores[0] == min(result.scores)
    # alpha = 0.25 and 0.0 rank the regions the same way (both reversed): equal AOPC
    assert result.scores[0] == pytest.approx(result.scores[1])
    lerf = ev.select(model, x, "test.mix", "alpha", [0.0, 1.0], metric="lerf",
                     metric_options=dict(region=2, steps=9, perturbation="constant"))
    assert lerf.best_value == 1.0 and not lerf.higher_is_better and lerf.scores[1] < lerf.scores[0]
    data = json.loads(json.dumps(result.to_dict()))
    assert data["best"] == {"value": 1.0, "score": result.best_score}
    assert [row["value"] for row in data["table"]] == [0.0, 0.25, 1.0, 0.75]
    assert "<- best" in str(result) and result.table()[2] == {"alpha": 1.0, "morf": result.scores[2]}


def test_a_function_as_metric_and_lower_is_better(register_method):
    register_method("test.mix", Mix)
    model = linear_model()
    x = torch.rand(2, 3, 6, 6)

    def distance_to_half(model, inputs, explanation):
        return abs(explanation.params["alpha"] - 0.5)

    result = ev.select(model, x, "test.mix", "alpha", [0.0, 0.4, 0.9], metric=distance_to_half, higher_is_better=False)
    assert result.best_value == 0.4 and result.metric == "distance_to_half"


def test_choosing_gamma_of_lrp():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(4 * 8 * 8, 3)).eval()
    x = torch.rand(2, 3, 8, 8)
    result = ev.select(model, x, "lrp.epsilon_gamma_box", "gamma", [0.0, 0.25, 1.0],
                       params=dict(low=0.0, high=1.0), metric="selectivity",
                       metric_options=dict(region=2, steps=8))
    assert len(result.scores) == 3 and result.best_score == max(result.scores)
    conservation = ev.select(model, x, "lrp.epsilon_gamma_box", "gamma", [0.0, 1.0], params=dict(low=0.0, high=1.0),
                             metric="conservation")
    assert conservation.best_score == min(conservation.scores)


def test_selection_errors(register_method):
    register_method("test.mix", Mix)
    model, x = linear_model(), torch.rand(1, 3, 6, 6)
    with pytest.raises(ValueError, match="unknown metric"):
        ev.select(model, x, "test.mix", "alpha", [1.0], metric="beauty")
    with pytest.raises(ValueError, match="values must not be empty"):
        ev.select(model, x, "test.mix", "alpha", [])
    with pytest.raises(ValueError, match="do not also pass"):
        ev.select(model, x, "test.mix", "alpha", [1.0], params=dict(alpha=0.5))
    with pytest.raises(ValueError, match="unknown method"):
        ev.select(model, x, "no.such.method", "alpha", [1.0])
    with pytest.raises(ValueError, match="lower-is-better"):
        ev.select(model, x, "test.mix", "alpha", [1.0], metric="lerf", higher_is_better=True)
