"""Model parameter randomisation (Adebayo et al. 2018), its similarity measures against SciPy and
scikit-image, and the random-heatmap baseline."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import rankdata, spearmanr
from skimage.metrics import structural_similarity
from torch import nn

from unmask import evaluate as ev
from unmask.evaluate import sanity


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (OpenMP start-up dominates on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 3),
    ).eval()


def test_rank_and_spearman_agree_with_scipy():
    generator = torch.Generator().manual_seed(0)
    a = torch.randint(0, 6, (3, 40), generator=generator).double()  # many ties
    b = torch.randn(3, 40, generator=generator).double()
    np.testing.assert_allclose(sanity.rank(a).numpy(), rankdata(a.numpy(), axis=1))
    ours = ev.spearman(a, b).numpy()
    theirs = [spearmanr(a[i].numpy(), b[i].numpy()).statistic for i in range(3)]
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    assert ev.spearman(b, b).tolist() == pytest.approx([1.0] * 3)
    assert ev.spearman(b, -b).tolist() == pytest.approx([-1.0] * 3)
    assert torch.isnan(ev.spearman(torch.ones(1, 5), b[:1, :5])).all()


def test_ssim_agrees_with_scikit_image():
    generator = torch.Generator().manual_seed(1)
    a = torch.rand(2, 20, 17, generator=generator).double()
    b = (a + 0.3 * torch.rand(2, 20, 17, generator=generator)).clamp(0, 1).double()
    ours = ev.ssim(a, b, data_range=1.0).numpy()
    theirs = [structural_similarity(a[i].numpy(), b[i].numpy(), data_range=1.0) for i in range(2)]
    np.testing.assert_allclose(ours, theirs, atol=1e-10)
    assert ev.ssim(a, a).tolist() == pytest.approx([1.0, 1.0])
    with pytest.raises(ValueError, match="smaller than"):
        ev.ssim(torch.rand(1, 5, 5), torch.rand(1, 5, 5))


def test_randomisation_lowers_similarity_for_gradients():
    model = cnn()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    result = ev.model_randomization(model, x, "gradient", absolute=True)
    assert result.layers == ["9", "7", "3", "1", "0"]  # from the output down
    assert result.spearman.shape == (5, 3) and result.ssim.shape == (5, 3)
    # fully randomised: the heatmap no longer resembles the original
    assert result.spearman[-1].mean() < 0.5 and result.ssim[-1].mean() < 0.5
    assert result.value < 0.7
    # the user's model is untouched: same parameters, buffers, mode and no hooks left behind
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training and all(not m._forward_hooks for m in model.modules())
    counted: list[int] = []  # progress: a callable gets one increment per randomised layer
    again = ev.model_randomization(model, x, "gradient", absolute=True, progress=counted.append)
    assert torch.equal(result.spearman, again.spearman)  # same seed, same result
    assert counted == [1] * 5
    data = result.to_dict()
    assert data["layers"] == result.layers and len(data["spearman"]) == 5


def test_a_model_independent_explanation_fails_the_check():
    model = cnn()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    edges = lambda model, inputs, target: inputs.abs()  # noqa: E731  (an "edge detector": ignores the model)
    result = ev.model_randomization(model, x, edges, layers=3)
    assert result.spearman.allclose(torch.ones(3, 2, dtype=torch.float64))
    assert result.ssim.allclose(torch.ones(3, 2, dtype=torch.float64))
    assert result.value == pytest.approx(1.0)


def test_cascading_and_independent_share_the_top_layer():
    model = cnn()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    cascading = ev.model_randomization(model, x, "gradient", layers=["9", "7"])
    independent = ev.model_randomization(model, x, "gradient", layers=["9", "7"], mode="independent")
    assert torch.allclose(cascading.spearman[0], independent.spearman[0])
    assert not torch.allclose(cascading.spearman[1], independent.spearman[1])
    with pytest.raises(ValueError, match="unknown layer 'fc'"):
        ev.model_randomization(model, x, "gradient", layers=["fc"])
    with pytest.raises(ValueError, match="unknown mode"):
        ev.model_randomization(model, x, "gradient", mode="sometimes")


def test_randomise_layer_is_seeded_and_changes_the_weights():
    layer = nn.Linear(5, 4)
    original = layer.weight.detach().clone()
    sanity.randomize_layer(layer, 3)
    first = layer.weight.detach().clone()
    sanity.randomize_layer(layer, 3)
    assert torch.equal(first, layer.weight) and not torch.equal(first, original)


def test_random_baseline_is_the_chance_level():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 6 * 6, 2)).eval()
    x = torch.rand(2, 3, 6, 6)
    weights = model[1].weight[0].detach().view(1, 3, 6, 6)
    truth = weights * x  # exact contributions of class 0
    options = dict(region=2, steps=9, perturbation="constant")
    morf = ev.region_perturbation(model, x, truth, 0, **options).aopc
    lerf = ev.region_perturbation(model, x, truth, 0, order="lerf", **options).aopc
    baseline = ev.random_baseline(model, x, 0, seeds=(0, 1, 2, 3), **options)
    assert len(baseline.values) == 4 and len(set(baseline.values)) > 1
    assert baseline.value == pytest.approx(sum(baseline.values) / 4)
    assert lerf < baseline.value < morf
    assert baseline.to_dict()["metric"] == "region_perturbation" and baseline.std > 0
    assert torch.equal(ev.random_heatmap(x, 5), ev.random_heatmap(x, 5))
