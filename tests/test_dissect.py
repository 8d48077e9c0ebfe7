"""Network dissection: IoU against a brute-force reference and a model whose answer
is known, the Broden format (a fixture written here), the generated concepts, the robustness and
axis-alignment experiments, errors, and the ``unmask dissect`` command on the small zoo model."""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from unmask.analyze import axis_alignment, dissect, robustness
from unmask.analyze.dissect import Perturbation, parse_perturbation, random_rotation
from test_dissect_quantiles import exact_threshold
from unmask.data.broden import BrodenDataset, BrodenFormatError, decode_mask, encode_mask, write_broden
from unmask.data.concepts import ConceptDataset, ConceptSample, GeneratedConcepts, load_concepts
from tolerance import assert_close_across_batches

IDENTITY = dict(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))


# --------------------------------------------------------------------------------------------------
# hand-built concept data and models with known answers

COLORS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 1.0, 0.0), "blue": (0.0, 0.0, 1.0)}


class Squares(ConceptDataset):
    """16 x 16 images, black background with a red, a green and a blue square (random places and sizes);
    label maps at 16 x 16 (``mask=16``) or 8 x 8; categories color and shape ('square' on every square)."""

    categories = ["color", "shape"]

    def __init__(self, n: int = 24, size: int = 16, mask: int = 16, seed: int = 0):
        self.n, self.size, self.seed = n, size, seed
        self.image_size, self.mask_size = (size, size), (mask, mask)
        self.labels = ["-", "red", "green", "blue", "square"]
        self.label_category = [None, "color", "color", "color", "shape"]
        self.description = "squares"

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        rng = np.random.default_rng([self.seed, index])
        image = np.zeros((3, self.size, self.size), dtype=np.float32)
        colour = np.zeros((self.size, self.size), dtype=np.int64)
        for number, rgb in enumerate(COLORS.values(), start=1):
            side = int(rng.integers(2, 6))
            y, x = rng.integers(0, self.size - side, 2)
            image[:, y : y + side, x : x + side] = np.array(rgb, dtype=np.float32)[:, None, None] * rng.uniform(0.6, 1.0)
            colour[y : y + side, x : x + side] = number
        shape = np.where(colour > 0, 4, 0)
        planes = np.stack([colour, shape])
        step = self.size // self.mask_size[0]
        planes = planes[:, step // 2 :: step, step // 2 :: step]
        return ConceptSample(torch.from_numpy(image), torch.from_numpy(planes), torch.zeros(0, dtype=torch.int64),
                             torch.ones(2, dtype=torch.bool), index, f"sq{index}")


def colour_model() -> nn.Sequential:
    """Unit 0 fires on green, 1 on blue, 3 exactly on red (R - G - B > 0), 2 on brightness, 4 never."""
    conv = nn.Conv2d(3, 5, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[0, :, 0, 0] = torch.tensor([-1.0, 1.0, -1.0])
        conv.weight[1, :, 0, 0] = torch.tensor([-1.0, -1.0, 1.0])
        conv.weight[2, :, 0, 0] = torch.tensor([1.0, 1.0, 1.0])
        conv.weight[3, :, 0, 0] = torch.tensor([1.0, -1.0, -1.0])
        conv.bias[4] = -1.0
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 2))


def test_a_unit_that_fires_exactly_on_red_is_a_red_detector_with_iou_one():
    data = Squares(n=24)
    # red covers at most 25 of 256 pixels: with a quantile of 0.2 the threshold falls between red and the rest
    result = dissect(colour_model(), "1", data, quantile=0.2, progress=False, batch_size=5, **IDENTITY)
    red = result.units[3]
    assert (red.unit, red.label, red.category) == (3, "red", "color")
    assert red.iou == pytest.approx(1.0)
    assert red.is_detector
    assert (result.units[0].label, result.units[1].label) == ("green", "blue")
    assert result.units[0].iou == pytest.approx(1.0) and result.units[1].iou == pytest.approx(1.0)
    assert not result.units[4].is_detector and result.units[4].iou == 0.0
    assert result.unique_detectors["color"] == 3
    assert len(result.units) == 5 and [u.unit for u in result.units] == list(range(5))
    assert result.iou.shape == (5, 4)
    json.dumps(result.to_dict(matrix=True))  # JSON-ready


def _reference_iou(acts: np.ndarray, planes: np.ndarray, present: np.ndarray, label_cat: list[int], quantile: float,
                   mask: tuple[int, int], image_labels: np.ndarray | None = None) -> np.ndarray:
    """IoU by the paper's definition, one unit and one label at a time (slow and obvious)."""
    n, units = acts.shape[:2]
    values = acts.transpose(1, 0, 2, 3).reshape(units, -1)
    thresholds = exact_threshold(values, quantile)
    up = F.interpolate(torch.from_numpy(acts), size=mask, mode="bilinear", align_corners=False).numpy()
    labels = len(label_cat)
    iou = np.zeros((units, labels))
    for u in range(units):
        m = up[:, u] > thresholds[u]
        for c in range(1, labels):
            region = (planes == c).any(1)
            if image_labels is not None:
                region |= (image_labels == c).any(1)[:, None, None]
            counted = present[:, label_cat[c]]
            inter = (m & region).sum()
            union = (m[counted].sum() + region.sum() - inter)
            iou[u, c] = inter / union if union else 0.0
    return iou[:, 1:]


class Recorded(ConceptDataset):
    """Random images and random label maps (two planes, a missing category, whole-image labels)."""

    categories = ["a", "b", "scene"]

    def __init__(self, n=10, size=16, mask=(12, 10)):
        rng = np.random.default_rng(3)
        self.image_size, self.mask_size = (size, size), mask
        self.labels = ["-", "a1", "a2", "a3", "b1", "b2", "s1"]
        self.label_category = [None, "a", "a", "a", "b", "b", "scene"]
        self.images = rng.uniform(0, 1, (n, 3, size, size)).astype(np.float32)
        self.planes = np.stack([rng.integers(0, 4, (n,) + mask), rng.choice([0, 4, 5], (n,) + mask)], axis=1)
        self.present = np.ones((n, 3), dtype=bool)
        self.present[::3, 1] = False  # these images are not annotated for b
        self.planes[::3, 1] = 0
        self.image_labels = np.zeros((n, 1), dtype=np.int64)
        self.image_labels[1::2, 0] = 6
        self.present[::2, 2] = False

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        labels = self.image_labels[i][self.image_labels[i] > 0]
        return ConceptSample(torch.from_numpy(self.images[i]), torch.from_numpy(self.planes[i]),
                             torch.from_numpy(labels), torch.from_numpy(self.present[i]), i)


def strided_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 6, 3, stride=2, padding=1), nn.Tanh(), nn.Conv2d(6, 2, 1))


@pytest.mark.parametrize("onehot", [True, False])
def test_iou_matches_a_brute_force_reference(onehot, monkeypatch):
    if not onehot:  # intersections by scatter-add instead of one-hot matrix products
        monkeypatch.setattr(sys.modules["unmask.analyze.dissect.tally"], "_ONEHOT_LABELS", 0)
    data = Recorded()
    model = strided_model()
    quantile = 0.1
    # one batch of all images, so that the reference's activations are bit for bit the same
    result = dissect(model, "1", data, quantile=quantile, progress=False, batch_size=len(data), cache_bytes=0, **IDENTITY)
    with torch.no_grad():
        acts = model[:2](torch.from_numpy(data.images)).numpy()
    label_cat = [0, 0, 0, 0, 1, 1, 2]
    expected = _reference_iou(acts, data.planes, data.present, label_cat, quantile, data.mask_size, data.image_labels)
    np.testing.assert_allclose(result.iou, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(result.thresholds, exact_threshold(acts.transpose(1, 0, 2, 3).reshape(6, -1), quantile))
    # top images: the images with the largest maximum activation, best first
    maxima = acts.max(axis=(2, 3))
    for unit in result.units:
        assert unit.top_images == list(np.argsort(-maxima[:, unit.unit], kind="stable")[:8])
    np.testing.assert_allclose(result.top_maps[2, 0], acts[result.units[2].top_images[0], 2])


def test_batching_and_caching_do_not_change_the_answer():
    data = Recorded()
    runs = [
        dissect(strided_model(), "1", data, quantile=0.1, progress=False, batch_size=b, cache_bytes=c, **IDENTITY)
        for b, c in [(1, 0), (4, 1 << 30), (10, 0)]
    ]
    for other in runs[1:]:
        np.testing.assert_allclose(other.iou, runs[0].iou, rtol=1e-6)
        assert_close_across_batches(other.thresholds, runs[0].thresholds)  # convolutions round by batch size


def test_several_layers_in_one_pass_equal_separate_runs():
    data = Recorded()
    both = dissect(strided_model(), ["0", "2"], data, quantile=0.1, progress=False, **IDENTITY)
    alone = dissect(strided_model(), "2", data, quantile=0.1, progress=False, **IDENTITY)
    assert [r.layer for r in both] == ["0", "2"]
    np.testing.assert_allclose(both[1].iou, alone.iou)
    assert len(both[0].units) == 6 and len(both[1].units) == 2


def test_zoo_model_preprocessing_is_used_and_the_model_is_left_as_it_was():
    from unmask.zoo import concept_net as small

    net = small.load()
    net.model.train()
    before = {k: v.clone() for k, v in net.model.state_dict().items()}
    data = GeneratedConcepts(n=8, size=64, seed=5)
    result = dissect(net, "conv2", data, progress=False, batch_size=4)
    assert net.model.training and all(m.training for m in net.model.modules())
    assert all(torch.equal(before[k], v) for k, v in net.model.state_dict().items())  # BN statistics untouched
    assert not any(m._forward_hooks for m in net.model.modules())
    assert len(result.units) == 32 and result.activation_size == (32, 32)
    assert result.model == "concept-net"


# --------------------------------------------------------------------------------------------------
# the robustness and axis-alignment experiments (Bau et al. 2017)


def test_axis_alignment_returns_mean_and_std_over_rotations():
    result = axis_alignment(colour_model(), "1", Squares(n=16), repeats=3, seed=0, quantile=0.2, progress=False, **IDENTITY)
    assert result.counts == {"color": 3, "shape": 1, "total": 4}  # unit 2 (brightness) detects the squares
    assert len(result.rotated) == 3 and set(result.mean) == set(result.std) == {"color", "shape", "total"}
    assert all(np.isfinite(v) for v in list(result.mean.values()) + list(result.std.values()))
    assert result.mean["total"] < result.counts["total"]  # mixing the units destroys exact colour detectors
    counts = [r["total"] for r in result.rotated_counts]
    assert result.mean["total"] == pytest.approx(np.mean(counts))
    assert result.std["total"] == pytest.approx(np.std(counts, ddof=1))
    assert set(result.to_dict()) >= {"unit_basis", "mean", "std", "rotated"}
    # the same seed gives the same rotations
    again = axis_alignment(colour_model(), "1", Squares(n=16), repeats=3, seed=0, quantile=0.2, progress=False, **IDENTITY)
    assert again.rotated_counts == result.rotated_counts


def test_random_rotation_is_orthogonal():
    q = random_rotation(7, torch.Generator().manual_seed(1))
    torch.testing.assert_close(q @ q.T, torch.eye(7), atol=1e-5, rtol=0)


def test_perturbations():
    images = torch.rand(2, 3, 8, 8)
    planes = torch.arange(2 * 64).view(2, 1, 8, 8)
    indices = torch.tensor([4, 9])
    noisy, same = Perturbation("noise", 100).apply(images, planes, indices)
    again, _ = Perturbation("noise", 100).apply(images, planes, indices)
    assert torch.equal(noisy, again) and torch.equal(same, planes)
    assert 0 < (noisy - images).abs().max() <= 100 / 255 + 1e-6 and noisy.max() <= 1
    _, turned = Perturbation("rotate", 90).apply(images, planes.float(), indices)
    assert torch.equal(turned.long(), torch.rot90(planes, 1, dims=(2, 3))) or torch.equal(turned.long(), torch.rot90(planes, -1, dims=(2, 3)))
    shuffled_images, shuffled = Perturbation("shuffle", 4).apply(images, planes, indices)
    assert sorted(shuffled[0].flatten().tolist()) == sorted(planes[0].flatten().tolist())
    assert not torch.equal(shuffled, planes)
    # images and labels move together: the top-left tile of both came from the same place
    value = int(shuffled[0, 0, 0, 0])  # planes[0] holds row * 8 + col
    row, col = value // 8 // 2, value % 8 // 2
    assert torch.equal(shuffled_images[0, :, :2, :2], images[0, :, row * 2 : row * 2 + 2, col * 2 : col * 2 + 2])
    with pytest.raises(ValueError, match="divide by 3"):
        Perturbation("shuffle", 3).apply(images, planes, indices)
    assert str(parse_perturbation("rearrange:8")) == "shuffle:8"
    with pytest.raises(ValueError, match="noise:AMOUNT"):
        parse_perturbation("blur:3")


def test_robustness_reports_detectors_kept():
    result = robustness(colour_model(), "1", Squares(n=16), perturbations=["noise:0", "shuffle:4"], quantile=0.2, progress=False, **IDENTITY)
    assert result.kept["noise:0"] == 1.0  # no noise: every detector stays
    assert result.kept["shuffle:4"] == 1.0  # colour does not care where the patches go
    assert set(result.to_dict()["perturbed"]) == {"noise:0", "shuffle:4"}


# --------------------------------------------------------------------------------------------------
# Broden format


def _write_fixture(root: Path, mask_mode: str = "RGB") -> Path:
    """Two 8 x 8 images, 4 x 4 label maps; label 300 ('rust') needs the green channel; a scene label."""
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.jpg", "b.png"):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(root / "images" / name)
    colour = np.array([[0, 1, 1, 300], [0, 1, 300, 300], [0, 0, 0, 0], [1, 1, 1, 1]])
    stuff = np.array([[5, 5, 0, 0]] * 4)
    if mask_mode == "RGB":
        encode_mask(colour).save(root / "images" / "a_color.png")
    else:
        Image.fromarray(colour.astype(np.uint8), mode="L").save(root / "images" / "a_color.png")
    encode_mask(stuff).save(root / "images" / "a_material.png")
    encode_mask(colour[::-1]).save(root / "images" / "b_color.png")
    with open(root / "index.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "split", "ih", "iw", "sh", "sw", "color", "material", "scene"])
        writer.writerow(["a.jpg", "train", 8, 8, 4, 4, "a_color.png", "a_material.png", "7"])
        writer.writerow(["b.png", "val", 8, 8, 4, 4, "b_color.png", "", ""])
    with open(root / "label.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["number", "name", "category", "frequency", "coverage", "syns"])
        writer.writerow([0, "-", "", 0, 0, ""])
        writer.writerow([1, "red", "color(2)", 2, 1, ""])
        writer.writerow([5, "wood", "material(1);object(3)", 1, 1, ""])
        writer.writerow([7, "kitchen", "scene(1)", 1, 1, ""])
        writer.writerow([300, "rust", "color(2)", 2, 1, ""])
    return root


def test_broden_fixture_reads_back(tmp_path):
    data = BrodenDataset(_write_fixture(tmp_path / "broden"))
    assert len(data) == 2 and data.categories == ["color", "material", "scene"]
    assert (data.image_size, data.mask_size) == ((8, 8), (4, 4))
    assert data.labels[300] == "rust" and data.label_category[300] == "color"
    assert data.label_category[5] == "material"  # object(3) is not a category of this folder
    assert data.scored_labels() == [1, 5, 7, 300]
    a = data[0]
    assert a.planes.shape == (2, 4, 4)
    assert a.planes[0, 0, 3] == 300 and a.planes[0, 3, 0] == 1 and a.planes[1, 0, 0] == 5
    assert a.image_labels.tolist() == [7] and a.present.tolist() == [True, True, True]
    b = data[1]
    assert b.present.tolist() == [True, False, False] and b.image_labels.numel() == 0
    np.testing.assert_allclose(b.image.permute(1, 2, 0).numpy() * 255, np.asarray(Image.open(tmp_path / "broden/images/b.png")), atol=1e-4)
    assert len(BrodenDataset(tmp_path / "broden", split="val")) == 1
    only = BrodenDataset(tmp_path / "broden", categories=["color"])
    assert only.label_category[5] is None and only[0].planes.shape == (1, 4, 4)
    # a dissection runs straight from the folder path
    result = dissect(strided_model(), "1", str(tmp_path / "broden"), quantile=0.2, progress=False, **IDENTITY)
    assert result.labels == ["red", "wood", "kitchen", "rust"]


def test_mask_codec_round_trip():
    labels = np.array([[0, 1, 255, 256], [257, 1000, 65535, 7]])
    image = encode_mask(labels)
    assert image.mode == "RGB"
    np.testing.assert_array_equal(decode_mask(image), labels)


def test_wrong_mask_format_is_refused_with_the_file_and_the_encoding(tmp_path):
    data = BrodenDataset(_write_fixture(tmp_path / "broden", mask_mode="L"))
    with pytest.raises(BrodenFormatError, match=r"a_color\.png.*R \+ 256 \* G"):
        data[0]


def test_broden_errors_name_the_problem(tmp_path):
    root = _write_fixture(tmp_path / "broden")
    encode_mask(np.full((4, 4), 4000)).save(root / "images" / "b_color.png")
    with pytest.raises(BrodenFormatError, match=r"b_color\.png.*not in label\.csv"):
        BrodenDataset(root)[1]
    encode_mask(np.zeros((5, 4), dtype=int)).save(root / "images" / "b_color.png")
    with pytest.raises(BrodenFormatError, match="5x4"):
        BrodenDataset(root)[1]
    with pytest.raises(BrodenFormatError, match="no category 'object'"):
        BrodenDataset(root, categories=["object"])
    (root / "index.csv").write_text("image,split,ih,iw,color\na.jpg,train,8,8,\n")
    with pytest.raises(BrodenFormatError, match="missing column.*sh, sw"):
        BrodenDataset(root)
    (root / "index.csv").write_text("image,split,ih,iw,sh,sw,color\na.jpg,train,8,8,4,4,\n")
    (root / "label.csv").unlink()
    with pytest.raises(BrodenFormatError, match="label.csv is missing"):
        BrodenDataset(root)
    with pytest.raises(BrodenFormatError, match="no such folder"):
        BrodenDataset(tmp_path / "nowhere")


def test_generated_concepts_round_trip_through_the_broden_format(tmp_path):
    generated = GeneratedConcepts(n=6, size=32, seed=2)
    folder = write_broden(generated, tmp_path / "g")
    broden = load_concepts(str(folder))
    assert isinstance(broden, BrodenDataset) and len(broden) == 6
    for i in range(6):
        a, b = generated[i], broden[i]
        torch.testing.assert_close(b.image, torch.round(a.image * 255) / 255, rtol=0, atol=1e-6)
        for k in range(3):
            mine = a.planes[k]
            theirs = torch.zeros_like(mine)
            for plane in b.planes:
                in_category = torch.tensor([broden.label_category[int(v)] == generated.categories[k] for v in plane.flatten()]).view_as(plane)
                theirs = torch.where(in_category, plane, theirs)
            assert torch.equal(mine, theirs)
    model = strided_model()
    ours = dissect(model, "1", generated, quantile=0.05, progress=False, **IDENTITY)
    rounded = dissect(model, "1", broden, quantile=0.05, progress=False, **IDENTITY)
    assert [u.label for u in ours.units] == [u.label for u in rounded.units]
    np.testing.assert_allclose(ours.iou, rounded.iou, atol=0.02)


# --------------------------------------------------------------------------------------------------
# the generated concept set


def test_generated_concepts_are_deterministic_and_labelled():
    data = GeneratedConcepts(n=5, size=64, seed=3)
    a, b = data[2], GeneratedConcepts(n=5, size=64, seed=3)[2]
    assert torch.equal(a.image, b.image) and torch.equal(a.planes, b.planes)
    assert not torch.equal(a.image, GeneratedConcepts(n=5, size=64, seed=4)[2].image)
    assert a.image.shape == (3, 64, 64) and a.planes.shape == (3, 64, 64) and 0 <= a.image.min() and a.image.max() <= 1
    colour, texture, shape = a.planes
    assert torch.equal(colour > 0, shape > 0)  # object pixels have a colour and a shape, the background neither
    assert ((texture > 0) <= (shape > 0)).all() and (shape > 0).any() and (shape == 0).any()
    assert set(colour.unique().tolist()) - {0} <= {data.labels.index(c) for c in ("black", "blue", "brown", "green", "grey", "orange", "pink", "purple", "red", "white", "yellow")}
    assert all(data.label_category[int(v)] == "texture" for v in texture.unique() if v)
    assert all(data.label_category[int(v)] == "shape" for v in shape.unique() if v)
    surface, kind = data.classes[a.target].split()
    assert data.labels.index(kind) in shape.unique().tolist()
    big = GeneratedConcepts(n=1)
    assert big.image_size == (224, 224) and big.mask_size == (112, 112)
    assert len(data) == 5 and data[-1].index == 4
    with pytest.raises(IndexError):
        data[5]


def test_load_concepts_specs():
    data = load_concepts("generated:n=7,size=32,seed=1")
    assert isinstance(data, GeneratedConcepts) and (len(data), data.size, data.seed) == (7, 32, 1)
    assert load_concepts(data) is data
    with pytest.raises(ValueError, match="generated:n=500"):
        load_concepts("generated:count=3")
    with pytest.raises(ValueError, match="no such folder"):
        load_concepts("/nonexistent/broden")
    with pytest.raises(TypeError, match="ConceptDataset"):
        load_concepts(42)


# --------------------------------------------------------------------------------------------------
# errors


def test_unknown_layer_lists_the_valid_names():
    with pytest.raises(ValueError) as error:
        dissect(colour_model(), "conv9", Squares(n=4), progress=False, **IDENTITY)
    message = str(error.value)
    assert "no layer 'conv9'" in message and "named_modules" in message
    for name in ("0", "1", "2", "3", "4"):
        assert f" {name}," in message or message.rstrip().endswith(f" {name}")


def test_bad_layers_and_options_are_refused():
    with pytest.raises(ValueError, match=r"shape \(4, 2\).*feature maps"):
        dissect(colour_model(), "4", Squares(n=4), progress=False, **IDENTITY)

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.act = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1), nn.ReLU()

        def forward(self, x):
            return self.act(self.b(self.act(self.a(x))))

    with pytest.raises(ValueError, match="runs 2 times"):
        dissect(Shared(), "act", Squares(n=4), progress=False, **IDENTITY)
    with pytest.raises(ValueError, match="quantile must be in"):
        dissect(colour_model(), "1", Squares(n=4), quantile=0, progress=False)
    with pytest.raises(ValueError, match="iou_threshold"):
        dissect(colour_model(), "1", Squares(n=4), iou_threshold=2, progress=False)
    with pytest.raises(TypeError, match="nn.Module"):
        dissect("resnet", "1", Squares(n=4), progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            dissect(colour_model(), "1", Squares(n=4), device="cuda", progress=False)


# --------------------------------------------------------------------------------------------------
# the command


def _command(module, argv):
    parser = argparse.ArgumentParser(prog=f"unmask {module.__name__.rsplit('.', 1)[-1]}")
    module.configure(parser)
    return module.run(parser.parse_args(argv))


def test_dissect_command_writes_json_pictures_and_page(tmp_path, capsys):
    from unmask.cli import dissect as command

    out = tmp_path / "out"
    code = _command(command, [
        "--model", "concept-net", "--layer", "conv1", "conv5", "--concepts", "generated:n=12", "--out", str(out),
        "--units-shown", "2", "--top-images", "3", "--axis-alignment", "2", "--perturb", "noise:20", "--no-progress",
    ])
    assert code == 0
    data = json.loads((out / "dissect.json").read_text())
    assert [layer["layer"] for layer in data["layers"]] == ["conv1", "conv5"]
    assert data["images"] == 12 and len(data["layers"][0]["units"]) == 24
    assert set(data["layers"][0]["unique_detectors"]) == {"color", "texture", "shape"}
    assert {"mean", "std"} <= set(data["axis_alignment"][0]) and "noise:20" in data["robustness"][1]["perturbed"]
    pictures = sorted(p.relative_to(out).as_posix() for p in out.glob("*/unit_*.png"))
    assert len(pictures) == 4
    assert Image.open(out / pictures[0]).size[0] > Image.open(out / pictures[0]).size[1]  # a strip of 3 images
    page = (out / "index.html").read_text()
    assert "unique detectors" in page and pictures[0] in page and "Axis alignment" in page and "Robustness" in page
    assert (out / "detectors.png").exists() or 'class="bars"' in page
    assert "conv1:" in capsys.readouterr().out


def test_dissect_command_errors_are_one_line(tmp_path, capsys):
    from unmask.cli import dissect as command

    assert _command(command, ["--model", "concept-net", "--layer", "conv9", "--concepts", "generated:n=4", "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("unmask: error:") and "conv9" in err and "conv1" in err and "Traceback" not in err
    assert _command(command, ["--model", "concept-net", "--concepts", str(tmp_path / "none"), "--out", str(tmp_path), "--no-progress"]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert _command(command, ["--model", "concept-net", "--quantile", "2", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "--quantile" in capsys.readouterr().err


def test_a_layer_followed_by_an_in_place_activation_is_seen_before_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(inplace=True), nn.Conv2d(2, 2, 1))
    data = Recorded(n=4)
    result = dissect(model, "0", data, quantile=0.9, progress=False, **IDENTITY)
    with torch.no_grad():
        acts = model[0](torch.from_numpy(data.images)).numpy()
    np.testing.assert_allclose(result.thresholds, exact_threshold(acts.transpose(1, 0, 2, 3).reshape(2, -1), 0.9), rtol=1e-5)
    assert (result.thresholds < 0).any()  # the ReLU after the layer did not change what dissection saw
