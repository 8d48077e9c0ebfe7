"""CleverHansViT, the project's tiny ViT trained on the Clever Hans shapes: it learned the planted tag,
SpRAy on its AttnLRP heatmaps finds the tagged circles, and region perturbation ranks AttnLRP above
gradient x input and random (MoRF AOPC)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import unmask
from unmask.analyze.spray import spray
from unmask.data.cleverhans import CleverHans, verify
from unmask.evaluate.perturbation import region_perturbation
from unmask.zoo import cleverhans_vit


@pytest.fixture(scope="module")
def net():
    return cleverhans_vit.load()


@pytest.fixture(scope="module")
def circles():
    data = CleverHans("test", 400)
    index = np.flatnonzero(data.labels == 0)
    return data.batch(index), data.tagged[index]


def test_model_is_small_accurate_and_uses_the_tag(net):
    info = cleverhans_vit.info()
    assert cleverhans_vit._weights().joinpath(cleverhans_vit.WEIGHTS).stat().st_size < 1_000_000
    assert info["test_accuracy"] > 0.8  # measured 0.853 (the CNN: see test_cleverhans.py)
    data = CleverHans("test", 400)
    numbers = verify(net, data)
    assert numbers["removal"]["logit_change"] < -1 and numbers["pasting"]["logit_change"] > 1


def test_spray_on_attnlrp_heatmaps_finds_the_tagged_circles(net, circles):
    x, tagged = circles
    heatmaps = unmask.explain(net.model, x, method="lrp.attnlrp", target=0).heatmap()
    result = spray(heatmaps, embedding=None)
    ari = result.adjusted_rand_index(tagged)
    print(f"SpRAy on AttnLRP heatmaps of {len(x)} circles ({int(tagged.sum())} tagged): "
          f"{result.n_clusters} clusters, ARI {ari:.3f}")
    assert result.n_clusters == 2 and ari >= 0.9


def test_region_perturbation_ranks_attnlrp_above_gradient_x_input_and_random(net):
    data = CleverHans("test", 400)
    x = data.batch(range(0, 400, 2))  # 200 images, 50 per class
    with torch.no_grad():
        target = net.model(x).argmax(1)
    aopc = {}
    for method, params in {"lrp.attnlrp": {}, "lrp.attnlrp cp": {"attention": "cp"}, "gradient_x_input": {},
                           "random": {"seed": 0}}.items():
        relevance = unmask.explain(net.model, x, method=method.split()[0], target=target, **params)
        aopc[method] = region_perturbation(net.model, x, relevance, target, region=4, steps=16, batch_size=128).aopc
    print("MoRF AOPC (region 4x4, 16 steps, uniform noise, 200 images):",
          {k: round(v, 3) for k, v in aopc.items()})
    # measured 4.24 (CP-LRP 4.22), gradient x input 4.02, random 3.49; AttnLRP first also with 64 steps,
    # 2 x 2 and 8 x 8 regions (see the closing note of issue 10)
    assert aopc["lrp.attnlrp"] > max(aopc["gradient_x_input"], aopc["random"])
