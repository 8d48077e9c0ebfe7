"""Localisation metrics on cases computed by hand (the Quantus agreement is in test_evaluate_quantus.py)."""
from __future__ import annotations

import math

import pytest
import torch

import unmask
from unmask import evaluate as ev


def test_box_mask():
    mask = ev.box_mask(torch.tensor([[1, 0, 3, 2], [2, 2, 10, 10]]), (4, 5))
    assert mask.shape == (2, 4, 5) and mask.dtype == torch.bool
    assert mask[0].int().tolist() == [[0, 1, 1, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    assert mask[1].sum() == 2 * 3  # clipped to the image
    assert ev.box_mask([0, 0, 1, 1], (2, 2)).shape == (1, 2, 2)
    with pytest.raises(ValueError, match=r"\(B, 4\)"):
        ev.box_mask(torch.zeros(2, 3), (4, 4))


def test_box_mask_counts_pixel_centres_scales_from_a_frame_and_leaves_missing_boxes_empty():
    # x from 0.6 to 2.4: the centres 1.5 is inside, 0.5 and 2.5 are not
    assert ev.box_mask([0.6, 0, 2.4, 1], (1, 4))[0, 0].tolist() == [False, True, False, False]
    # a box in a 4 x 4 frame on a 2 x 2 heatmap: the top-left quarter of the frame is one heatmap pixel
    assert ev.box_mask([0, 0, 2, 2], (2, 2), frame=(4, 4))[0].int().tolist() == [[1, 0], [0, 0]]
    masks = ev.box_mask(torch.tensor([[0.0, 0.0, 3.0, 3.0], [math.nan, 0.0, 3.0, 3.0]]), (3, 3))
    assert masks[0].all() and not masks[1].any()


def test_relevance_mass_counts_positive_relevance_as_the_paper():
    relevance = torch.tensor([[[2.0, -1.0], [1.0, 0.0]]])
    mask = torch.tensor([[[True, False], [False, False]]])
    assert ev.relevance_mass(relevance, mask).per_image.item() == pytest.approx(2 / 3)  # R+ inside / R+ total
    assert ev.relevance_mass(relevance, mask, positive=False).per_image.item() == pytest.approx(1.0)  # Quantus
    channels = relevance.unsqueeze(1).expand(1, 3, 2, 2)  # relevance is summed over channels first
    assert ev.relevance_mass(channels, mask).per_image.item() == pytest.approx(2 / 3)
    empty = ev.relevance_mass(relevance, torch.zeros(1, 2, 2, dtype=torch.bool))
    assert math.isnan(empty.per_image.item()) and math.isnan(empty.value)


def test_relevance_rank_by_hand():
    relevance = torch.tensor([[[5.0, 1.0, 4.0], [0.0, 3.0, 2.0]]])
    mask = torch.tensor([[[True, True, False], [False, True, False]]])
    # |GT| = 3; the top 3 are 5 (in), 4 (out), 3 (in) -> 2 / 3
    assert ev.relevance_rank(relevance, mask).per_image.item() == pytest.approx(2 / 3)
    assert ev.relevance_rank(relevance, mask[0]).per_image.item() == pytest.approx(2 / 3)  # one mask for all


def test_pointing_game_tolerance():
    relevance = torch.zeros(1, 8, 8)
    relevance[0, 0, 0] = 1.0
    mask = torch.zeros(1, 8, 8, dtype=torch.bool)
    mask[0, 0, 3:] = True  # 3 pixels to the right of the maximum
    assert ev.pointing_game(relevance, mask, tolerance=0).per_image.item() == 0.0
    assert ev.pointing_game(relevance, mask, tolerance=2).per_image.item() == 0.0
    assert ev.pointing_game(relevance, mask, tolerance=3).per_image.item() == 1.0
    assert ev.pointing_game(relevance, mask).per_image.item() == 1.0  # the paper's 15 pixels
    mask[0] = False
    mask[0, 5, 4] = True  # distance sqrt(25 + 16) = 6.4
    assert ev.pointing_game(relevance, mask, tolerance=6).per_image.item() == 0.0
    assert ev.pointing_game(relevance, mask, tolerance=6.5).per_image.item() == 1.0


def test_context_density_by_hand():
    relevance = torch.zeros(1, 4, 4)
    relevance[0, 1:3, 1:3] = 2.0  # 4 pixels inside, 2 per pixel
    relevance[0, 0, :] = 1.5  # 4 of the 12 outside pixels, 6 in total -> 0.5 per pixel
    relevance[0, 3, 0] = -1.0
    box = ev.box_mask([1, 1, 3, 3], (4, 4))
    assert ev.context_density(relevance, box).per_image.item() == pytest.approx((5.0 / 12) / 2.0)
    assert ev.context_density(relevance, box, positive=True).per_image.item() == pytest.approx((6.0 / 12) / 2.0)
    result = ev.context_density(relevance, box)
    assert not result.higher_is_better and result.to_dict()["metric"] == "context_density"


def test_explanations_are_accepted():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2)).eval()
    explanation = unmask.explain(model, torch.rand(2, 3, 4, 4), "gradient_x_input")
    mask = ev.box_mask([0, 0, 2, 2], (4, 4))
    for metric in (ev.relevance_mass, ev.relevance_rank, ev.pointing_game, ev.context_density):
        assert metric(explanation, mask).per_image.shape == (2,)


def test_bad_masks():
    relevance = torch.rand(2, 4, 4)
    with pytest.raises(ValueError, match="does not match"):
        ev.relevance_mass(relevance, torch.ones(2, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="boolean"):
        ev.relevance_rank(relevance, torch.full((2, 4, 4), 0.5))
    with pytest.raises(ValueError, match="NaN"):
        ev.pointing_game(torch.full((2, 4, 4), math.nan), torch.ones(2, 4, 4, dtype=torch.bool))


def test_the_british_module_name_still_imports_with_a_warning():
    import importlib
    import sys

    from unmask.evaluate import localization

    sys.modules.pop("unmask.evaluate.localisation", None)
    with pytest.warns(DeprecationWarning, match="localization"):
        old = importlib.import_module("unmask.evaluate.localisation")
    assert old.box_mask is localization.box_mask and old.LocalizationResult is localization.LocalizationResult
