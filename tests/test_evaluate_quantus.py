"""unmask.evaluate against Quantus 0.6.0 (a test-only oracle) where the settings can be made equal:
a deterministic (constant) perturbation, no normalisation or abs in Quantus, logits, grids that divide
the image. Where Quantus departs from the paper, the paper's formula is tested in the other files."""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from unmask import evaluate as ev

sys.path.insert(0, str(Path(__file__).parent))
from zennit_oracle import import_zennit  # noqa: E402  (quantus imports zennit, which needs torchvision)

import_zennit()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import quantus  # noqa: E402

assert quantus.__version__ == "0.6.0"

COMMON = dict(normalise=False, abs=False, disable_warnings=True)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (OpenMP start-up dominates on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(6 * 9 * 9, 4)
    ).eval()
    x = torch.randn(3, 3, 18, 18)
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def _call(metric, model, x, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), softmax=False, device="cpu",
                                 channel_first=True, **kwargs), dtype=np.float64)


@pytest.mark.parametrize("order", ["morf", "lerf"])
def test_region_perturbation_agrees(case, order):
    model, x, y = case
    a = torch.rand(3, 1, 18, 18, generator=torch.Generator().manual_seed(1))
    theirs = _call(quantus.RegionPerturbation(patch_size=3, order=order, regions_evaluation=20, perturb_baseline=0.0,
                                              **COMMON), model, x, y, a_batch=a.numpy())
    ours = ev.region_perturbation(model, x, a, y, order=order, region=3, steps=20, perturbation="constant", value=0.0)
    assert theirs.shape == (3, 20)
    # Quantus's curve is f(x^0) - f(x^k) for k = 1..L; ours starts at k = 0 (always 0).
    np.testing.assert_allclose(ours.curves[:, 1:].numpy(), theirs, atol=1e-5)
    assert ours.curves[:, 0].abs().max() == 0
    # the AOPC is the paper's 1/(L+1) sum_{k=0..L}: Quantus's curve summed over k=1..L, divided by L+1
    assert ours.aopc == pytest.approx(theirs.sum(1).mean() / 21, abs=1e-5)


def test_region_perturbation_with_the_full_relevance_agrees(case):
    """Quantus sums an attribution of the inputs' shape over channels and patch; so do we (with the mean,
    which orders full regions the same way)."""
    model, x, y = case
    a = torch.randn(3, 3, 18, 18, generator=torch.Generator().manual_seed(2))
    theirs = _call(quantus.RegionPerturbation(patch_size=6, regions_evaluation=9, perturb_baseline=-0.5, **COMMON),
                   model, x, y, a_batch=a.numpy())
    ours = ev.region_perturbation(model, x, a, y, region=6, steps=9, perturbation="constant", value=-0.5)
    np.testing.assert_allclose(ours.curves[:, 1:].numpy(), theirs, atol=1e-5)


def test_pixel_flipping_agrees(case):
    model, x, y = case
    a = torch.rand(3, 1, 18, 18, generator=torch.Generator().manual_seed(3))
    # Quantus flips features of the attribution broadcast to (B, 3, H, W): 3 per step = one whole pixel.
    theirs = _call(quantus.PixelFlipping(features_in_step=3, perturb_baseline=0.0, **COMMON), model, x, y,
                   a_batch=a.numpy())
    ours = ev.pixel_flipping(model, x, a, y)
    assert theirs.shape == (3, 18 * 18)
    np.testing.assert_allclose(ours.scores[:, 1:].numpy(), theirs, atol=1e-5)  # Quantus reports f(x^k)


def _masks():
    generator = torch.Generator().manual_seed(4)
    a = torch.randn(4, 1, 18, 18, generator=generator)
    s = torch.rand(4, 1, 18, 18, generator=generator) > 0.6
    s[3] = False
    s[3, 0, 2:6, 10:15] = True
    return a, s


def test_relevance_mass_accuracy_agrees(case):
    model, x, y = case
    a, s = _masks()
    x4, y4 = torch.cat([x, x[:1]]), torch.cat([y, y[:1]])
    theirs = _call(quantus.RelevanceMassAccuracy(**COMMON), model, x4, y4, a_batch=a.numpy(), s_batch=s.numpy().astype(float))
    # Quantus sums signed relevance: positive=False. The paper's positive-only version agrees on R >= 0.
    np.testing.assert_allclose(ev.relevance_mass(a, s, positive=False).per_image.numpy(), theirs, rtol=1e-5)
    positive = a.abs()
    theirs = _call(quantus.RelevanceMassAccuracy(**COMMON), model, x4, y4, a_batch=positive.numpy(), s_batch=s.numpy().astype(float))
    np.testing.assert_allclose(ev.relevance_mass(positive, s).per_image.numpy(), theirs, rtol=1e-5)


def test_relevance_rank_accuracy_agrees(case):
    model, x, y = case
    a, s = _masks()
    x4, y4 = torch.cat([x, x[:1]]), torch.cat([y, y[:1]])
    theirs = _call(quantus.RelevanceRankAccuracy(**COMMON), model, x4, y4, a_batch=a.numpy(), s_batch=s.numpy().astype(float))
    np.testing.assert_allclose(ev.relevance_rank(a, s).per_image.numpy(), theirs, rtol=1e-6)
    assert 0 < theirs.min() and theirs.max() < 1


def test_pointing_game_agrees(case):
    model, x, y = case
    a, s = _masks()
    x4, y4 = torch.cat([x, x[:1]]), torch.cat([y, y[:1]])
    theirs = _call(quantus.PointingGame(**COMMON), model, x4, y4, a_batch=a.numpy(), s_batch=s.numpy().astype(float))
    ours = ev.pointing_game(a, s, tolerance=0).per_image.numpy()  # Quantus has no tolerance
    np.testing.assert_array_equal(ours, theirs)
    assert 0 < ours.sum() < 4  # both hits and misses occur


def test_continuity_agrees(case):
    model, x, y = case

    def explain(model, inputs, targets, **kwargs):
        relevance = ev._common.make_explainer("gradient_x_input")(model, torch.as_tensor(inputs), torch.as_tensor(targets))
        return relevance.sum(1, keepdim=True).numpy()

    steps = 4
    theirs = _call(quantus.Continuity(nr_steps=steps, **COMMON), model, x, y, a_batch=None, explain_func=explain)
    # Quantus translates along x by -W + dx * (i + 1), dx = (2W + 1) // nr_steps, filling with the image's
    # minimum, and compares each shifted input with the original only.
    width = x.shape[-1]
    dx = (2 * width + 1) // steps
    shifts = [-width + dx * (i + 1) for i in range(steps)]
    ours = ev.continuity(model, x, "gradient_x_input", y, shifts=shifts, pairs="origin", fill="min")
    np.testing.assert_allclose(ours.per_image.numpy(), theirs, rtol=1e-4)
    # the paper's max over all pairs of the path is at least as large
    full = ev.continuity(model, x, "gradient_x_input", y, shifts=shifts, pairs="all", fill="min")
    assert bool((full.per_image >= ours.per_image - 1e-9).all())
