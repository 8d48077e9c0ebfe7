"""unmask.analyze.compare and unmask compare: models side by side on the same samples."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unmask import cli, zoo
from unmask.analyze.compare import compare, conductance, context_accuracy_correlation, context_table, contingency
from unmask.analyze.compare_report import write_report
from unmask.analyze.context import ContextResult
from unmask.data.images import ImageLoadError
from unmask.data.voc import VOCAnnotations, read_annotation

# ------------------------------------------------------------------------------ hand-computed tables


def test_contingency_table_against_hand_counts_and_sklearn():
    a = [0, 0, 1, 1, 1, 2]
    b = [5, 5, 5, 7, 7, 7]
    table = contingency(a, b)
    assert table.rows.tolist() == [0, 1, 2] and table.cols.tolist() == [5, 7]
    assert table.counts.tolist() == [[2, 0], [1, 2], [0, 1]]
    assert table.mapping == [
        {"cluster": 0, "size": 2, "to": 5, "share": 1.0},
        {"cluster": 1, "size": 3, "to": 7, "share": pytest.approx(2 / 3)},
        {"cluster": 2, "size": 1, "to": 7, "share": 1.0},
    ]
    # pairs: sum C(n_ij, 2) = 2; rows C(2,2)+C(3,2) = 4; columns 3 + 3 = 6; E = 4 * 6 / C(6, 2) = 1.6
    assert table.adjusted_rand_index == pytest.approx((2 - 1.6) / (5 - 1.6))
    from sklearn.metrics import adjusted_rand_score

    assert table.adjusted_rand_index == pytest.approx(adjusted_rand_score(a, b))
    assert contingency([3, 3, 1], [0, 0, 9]).adjusted_rand_index == pytest.approx(1.0)
    with pytest.raises(ValueError, match="different samples"):
        contingency([0, 1], [0, 1, 2])


def test_conductance_against_hand_values():
    import scipy.sparse as sparse

    # two triangles 0-1-2 and 3-4-5 joined by the edge 2-3 (weights 1, symmetric)
    edges = [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5), (2, 3)]
    rows, cols = zip(*(edges + [(j, i) for i, j in edges]))
    w = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(6, 6))
    # each triangle: volume 2 + 2 + 3 = 7, one edge leaves -> 1/7
    assert conductance(w, np.array([0, 0, 0, 1, 1, 1])) == pytest.approx([1 / 7, 1 / 7])
    # {0, 3} vs the rest: volume 2 + 3 = 5, edges leaving 0-1, 0-2, 3-4, 3-5, 2-3 -> 5/5
    assert conductance(w, np.array([0, 1, 1, 0, 1, 1])) == pytest.approx([1.0, 5 / 9])
    assert conductance(w, np.zeros(6, dtype=int)) == pytest.approx([0.0])


def _context(inside, outside, labels):
    n = len(inside)
    return ContextResult(np.array(inside, float), np.array(outside, float), np.full(n, 0.25), np.array(labels), "positive", ["cat", "dog"])


def test_context_table_per_class_against_hand_values():
    first = _context([3.0, 1.0, 2.0, 0.0], [1.0, 1.0, 6.0, 0.0], [0, 0, 1, 1])
    second = _context([1.0, 1.0, 1.0, 1.0], [0.0, 1.0, 3.0, 1.0], [0, 0, 1, 1])
    shares = context_table({"A": first, "B": second})
    # outside / (inside + outside) per sample, mean per class (the sample with no relevance is left out)
    assert shares["A"] == pytest.approx({"all": (0.25 + 0.5 + 0.75) / 3, "cat": (0.25 + 0.5) / 2, "dog": 0.75})
    assert shares["B"] == pytest.approx({"all": (0 + 0.5 + 0.75 + 0.5) / 4, "cat": 0.25, "dog": 0.625})
    ratios = context_table({"A": first, "B": second}, "context")  # sum outside / sum inside per class
    assert ratios["A"] == pytest.approx({"all": 8 / 6, "cat": 2 / 4, "dog": 6 / 2})
    assert ratios["B"] == pytest.approx({"all": 5 / 4, "cat": 1 / 2, "dog": 4 / 2})
    with pytest.raises(ValueError, match="measure"):
        context_table({"A": first}, "nonsense")


def test_context_accuracy_correlation_against_numpy():
    context = {"A": {"all": 0.1, "cat": 0.1, "dog": 0.3}, "B": {"all": 0.2, "cat": 0.25, "dog": 0.2}, "C": {"all": 0.6, "cat": 0.5, "dog": 0.8}}
    accuracy = {"A": {"all": 0.9, "cat": 0.95, "dog": 0.7}, "B": {"all": 0.85, "cat": 0.8, "dog": 0.9}, "C": {"all": 0.5, "cat": 0.6, "dog": 0.4}}
    result = context_accuracy_correlation(context, accuracy)
    models = result["across_models"]
    assert models["points"] == 3
    assert models["pearson"] == pytest.approx(np.corrcoef([0.1, 0.2, 0.6], [0.9, 0.85, 0.5])[0, 1])
    assert models["spearman"] == pytest.approx(-1.0)
    pairs = result["across_model_classes"]
    xs, ys = [0.1, 0.3, 0.25, 0.2, 0.5, 0.8], [0.95, 0.7, 0.8, 0.9, 0.6, 0.4]
    assert pairs["points"] == 6
    assert pairs["pearson"] == pytest.approx(np.corrcoef(xs, ys)[0, 1])
    two = context_accuracy_correlation({"A": {"all": 0.1}, "B": {"all": 0.2}}, {"A": {"all": 0.9}, "B": {"all": 0.8}})
    assert two["across_models"]["pearson"] is None and "3 points" in two["across_models"]["note"]


# ------------------------------------------------------------------------------ Pascal VOC


def _voc_xml(filename: str, objects: list[tuple[str, tuple[int, int, int, int], int]]) -> str:
    parts = [f"<annotation><folder>x</folder><filename>{filename}</filename><size><width>40</width><height>30</height></size>"]
    for name, (x0, y0, x1, y1), difficult in objects:
        parts.append(
            f"<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


def test_voc_annotations_boxes_labels_and_errors(tmp_path):
    from PIL import Image

    images, annotations = tmp_path / "JPEGImages", tmp_path / "Annotations"
    images.mkdir()
    annotations.mkdir()
    for name in ("a.png", "b.png"):
        Image.new("RGB", (48, 40), "gray").save(images / name)
    # a: a small dog and a large cat marked difficult -> the dog; b: a cat
    (annotations / "a.xml").write_text(_voc_xml("a.png", [("dog", (1, 1, 10, 10), 0), ("cat", (1, 1, 40, 30), 1)]))
    (annotations / "b.xml").write_text(_voc_xml("b.png", [("cat", (5, 6, 20, 30), 0)]))
    data = VOCAnnotations(annotations)
    assert data.classes == ["cat", "dog"] and data.targets == [1, 0]
    assert data.boxes == [[0.0, 0.0, 10.0, 10.0], [4.0, 5.0, 20.0, 30.0]]  # 1-based inclusive -> 0-based, end exclusive
    item = data[1]
    assert item["label"] == 0 and item["box"] == [4.0, 5.0, 20.0, 30.0] and item["input"].shape == (3, 40, 48)
    assert len(data.objects[0]) == 2 and data.objects[0][1].difficult
    (annotations / "c.xml").write_text("<annotation><filename>c.png")
    with pytest.raises(ImageLoadError, match="c.xml"):
        read_annotation(annotations / "c.xml")
    with pytest.raises(ImageLoadError, match="no such annotation folder"):
        VOCAnnotations(tmp_path / "missing")


# ------------------------------------------------------------------------------ models on photos


def test_efficientnet_against_concept_net_on_photos_with_boxes(tmp_path):
    """Different input sizes and normalisations (224 inception-style crop, 64 resized): every model gets
    its own input and its own box; the run goes through to the report."""
    from unmask.data import sample_photos

    photos = sample_photos(["chelsea", "coffee"])
    rows = ["path,x0,y0,x1,y1"]
    for name, image in photos.items():
        image.save(tmp_path / f"{name}.png")
        rows.append(f"{name}.png,{image.width // 4},{image.height // 4},{3 * image.width // 4},{3 * image.height // 4}")
    (tmp_path / "photos.csv").write_text("\n".join(rows) + "\n")
    lite, concepts = zoo.load("efficientnet-lite0"), zoo.load("concept-net")
    before = {k: v.clone() for k, v in concepts.model.state_dict().items()}
    result = compare({"lite0": lite, "concepts": concepts}, tmp_path / "photos.csv", "lrp.epsilon_plus_flat", steps=4, show=2)
    assert result.models["lite0"].heatmaps.shape == (2, 224, 224)
    assert result.models["concepts"].heatmaps.shape == (2, 64, 64)
    assert not result.has_labels and result.models["lite0"].accuracy is None
    assert result.agreement == {("lite0", "concepts"): None}  # different tasks: no agreement
    assert result.models["lite0"].predicted_names()[0] in ("tabby", "tiger cat", "Egyptian cat")
    for name, model in result.models.items():
        context = model.context
        assert context is not None and np.all(context.inside + context.outside > 0)
        # the box is the centre half of each side: inside area 1/4 of a resized (no crop) 64 x 64 input; the
        # 224 centre crop of 256 cuts the longer side, so the box covers more of it
        area = context.area
        if name == "concepts":
            assert area == pytest.approx(np.full(2, 0.25), abs=0.02)
        else:
            assert np.all(area > 0.26)
        assert model.morf.scores.shape == (2, 5) and model.lerf.scores.shape == (2, 5)
        assert model.strategies[-1]["n_strategies"] is None  # two samples are too few for SpRAy
    assert all(torch.equal(before[k], v) for k, v in concepts.model.state_dict().items())
    page = write_report(result, tmp_path / "out")
    data = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert data["models"]["lite0"]["input_size"] == [224, 224] and data["models"]["concepts"]["input_size"] == [64, 64]
    assert page.is_file() and len(list((tmp_path / "out" / "samples").glob("*.png"))) == 2


def test_compare_rejects_bad_input():
    net = zoo.load("cleverhans")
    from unmask.data.cleverhans import CleverHans

    with pytest.raises(ValueError, match="at least one model"):
        compare({}, CleverHans("test", 8))
    with pytest.raises(TypeError, match="data must be"):
        compare({"a": net}, 42)
    with pytest.raises(ValueError, match="separation"):
        compare({"a": net}, CleverHans("test", 8), separation=1.5)
    with pytest.raises(ValueError, match="boxes must be shaped"):
        compare({"a": net}, CleverHans("test", 8), boxes=np.zeros((3, 4)))
    net.model.train()
    with pytest.raises(ValueError, match="training mode"):
        compare({"a": net}, CleverHans("test", 8))


# ------------------------------------------------------------------------------ the Clever Hans pair, from the command


@pytest.fixture(scope="module")
def cleverhans_comparison(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    code = cli.main(["compare", "--model", "tagged=cleverhans", "--model", "clean=cleverhans-clean",
                     "cleverhans:test:300", "--out", str(out), "--no-progress"])
    return code, out


def test_compare_command_writes_page_and_one_json(cleverhans_comparison):
    code, out = cleverhans_comparison
    assert code == 0
    assert (out / "index.html").is_file()
    files = sorted(p.name for p in out.glob("*.json"))
    assert files == ["comparison.json"]
    data = json.loads((out / "comparison.json").read_text())
    assert data["samples"] == 300 and set(data["models"]) == {"tagged", "clean"}
    for model in data["models"].values():
        assert len(model["predictions"]) == 300 and model["accuracy"] > 0.9
        assert set(model["accuracy_per_class"]) == {"all", "circle", "square", "triangle", "cross"}
        assert model["morf"]["aopc"] > model["lerf"]["aopc"]  # LRP heatmaps are faithful for both
        assert len(model["morf"]["curve"]) == 65  # an 8 x 8 grid of 4-pixel regions on 32 x 32
        assert set(model["context"]["per_class"]) == {"0", "1", "2", "3"}
        assert all(model["strategies"][c]["n_strategies"] >= 1 for c in ("circle", "square", "triangle", "cross"))
    assert data["models"]["tagged"]["accuracy"] > 0.98
    # the clean model never saw the tag: on the tagged circles it mostly answers something else
    labels, tagged = np.array(data["labels"]), np.array(data["tagged"], dtype=bool)
    clean_right = np.array(data["models"]["clean"]["predictions"]) == labels
    assert clean_right[tagged].mean() < 0.6 and clean_right[~tagged].mean() > 0.97
    pair = data["pairs"]["tagged vs clean"]
    same = np.array(data["models"]["tagged"]["predictions"]) == np.array(data["models"]["clean"]["predictions"])
    assert pair["agreement"] == pytest.approx(same.mean()) and 0.9 <= pair["agreement"] < 1.0
    circle = pair["strategies"]["circle"]
    assert np.sum(circle["counts"]) == 75
    assert "context_accuracy_correlation" in data and "outside_share" in data["context_use"]
    page = (out / "index.html").read_text()
    assert "tagged vs clean" in page and "comparison.json" in page


def test_tagged_model_puts_more_relevance_on_the_tag_and_has_more_circle_strategies(cleverhans_comparison):
    code, out = cleverhans_comparison
    assert code == 0
    data = json.loads((out / "comparison.json").read_text())
    tagged, clean = data["models"]["tagged"], data["models"]["clean"]
    share_tagged = tagged["regions"]["tag"]["tagged"]  # positive relevance in the tag's box, tagged images
    share_clean = clean["regions"]["tag"]["tagged"]
    assert share_tagged > 3 * share_clean and share_tagged > 0.2
    assert tagged["regions"]["tag"]["per_class"]["circle"] > clean["regions"]["tag"]["per_class"]["circle"]
    assert tagged["strategies"]["circle"]["n_strategies"] > clean["strategies"]["circle"]["n_strategies"]
    # the tagged model's extra strategy is the tag: one of its circle clusters holds the tagged circles
    circles = [i for i, label in enumerate(data["labels"]) if label == 0]
    tagged_flags = np.array([data["tagged"][i] for i in circles], dtype=bool)
    labels = np.array(tagged["strategies"]["circle"]["labels"])
    purity = max(np.mean(labels[tagged_flags] == c) for c in np.unique(labels))
    assert purity > 0.8
    assert clean["strategies"]["circle"]["n_strategies"] == 1  # the clean model solves circles one way


def test_compare_command_usage_errors(tmp_path, capsys):
    assert cli.main(["compare", "--model", "cleverhans", "cleverhans:test:8", "--out", str(tmp_path)]) == 2
    assert "NAME=SPEC" in capsys.readouterr().err
    assert cli.main(["compare", "--model", "a=no-such-model", "cleverhans:test:8", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown model" in err and len(err.strip().splitlines()) == 1
    assert cli.main(["compare", "--model", "a=cleverhans", "--model", "a=cleverhans", "cleverhans:test:8", "--out", str(tmp_path)]) == 2
    assert "twice" in capsys.readouterr().err
