"""Tests for unmask.viz: colour maps, normalisation, images, grids, files and Explanation.render/save."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from unmask import Explanation
from unmask._io import atomic_write
from unmask.viz import (
    colorize,
    colormaps,
    grid,
    heatmap,
    normalize,
    overlay,
    to_image,
    to_npy,
    to_png,
)
from unmask.viz.render import RELEVANCE_OPACITY

WHITE, BLACK = (255, 255, 255), (0, 0, 0)


def signed_maps(seed: int = 0) -> np.ndarray:
    """Two signed (H, W) maps at very different scales, with exact zeros."""
    rng = np.random.default_rng(seed)
    maps = rng.normal(size=(2, 12, 16)).astype(np.float32)
    maps[1] *= 1e-6
    maps[:, :3, :3] = 0
    return maps


def explanation(batch: int = 2, channels: int = 3, height: int = 8, width: int = 10) -> Explanation:
    generator = torch.Generator().manual_seed(0)
    relevance = torch.randn(batch, channels, height, width, generator=generator)
    inputs = torch.randn(batch, channels, height, width, generator=generator)
    return Explanation(relevance, torch.randn(batch, 5), torch.zeros(batch, dtype=torch.long), "test", inputs)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


# ----------------------------------------------------------------------------------------------- normalise


def test_symmetric_normalisation_scales_each_sample_to_unit_max_abs_keeping_signs_and_zeros():
    maps = signed_maps()
    out = normalize(maps)
    assert out.dtype == np.float32 and out.shape == maps.shape
    np.testing.assert_array_equal(np.abs(out).max(axis=(1, 2)), [1.0, 1.0])
    np.testing.assert_array_equal(np.sign(out), np.sign(maps))
    for sample, original in zip(out, maps):
        np.testing.assert_allclose(sample, original / np.abs(original).max(), rtol=1e-6)
    np.testing.assert_array_equal(normalize(maps[0]), out[0])  # (H, W) gives the same as its batch row
    np.testing.assert_array_equal(normalize(torch.from_numpy(maps)), out)


def test_percentile_clipping_saturates_the_top_values_and_scales_the_rest_linearly():
    rng = np.random.default_rng(1)
    heat = rng.uniform(-1, 1, size=(40, 50))
    heat[0, 0] = 1000.0  # one outlier would make everything else look blank
    plain = normalize(heat)
    assert (np.abs(plain) >= 0.999).sum() == 1 and np.abs(plain[1:]).max() < 0.002
    clipped = normalize(heat, percentile=99.0)
    threshold = np.percentile(np.abs(heat), 99.0)
    saturated = np.abs(heat) >= threshold
    np.testing.assert_array_equal(np.abs(clipped[saturated]), 1.0)
    assert saturated.sum() >= 0.01 * heat.size
    np.testing.assert_allclose(clipped[~saturated], heat[~saturated] / threshold, rtol=1e-6)
    np.testing.assert_array_equal(np.sign(clipped), np.sign(heat))


def test_percentile_on_a_sparse_map_falls_back_to_the_maximum():
    heat = np.zeros((20, 20))
    heat[3, 4], heat[5, 6] = 0.5, -0.25
    out = normalize(heat, percentile=99.0)  # the 99th percentile of |R| is 0 here
    assert out[3, 4] == 1.0 and out[5, 6] == -0.5
    out = normalize(heat, mode="minmax", percentile=99.0)
    assert out.min() == 0.0 and out.max() == 1.0


@pytest.mark.parametrize("mode", ["symmetric", "maxabs", "minmax"])
@pytest.mark.parametrize("percentile", [None, 99.5])
def test_all_zero_maps_give_zeros_not_nan(mode, percentile):
    out = normalize(np.zeros((2, 5, 5)), mode=mode, percentile=percentile)
    assert np.isfinite(out).all() and (out == 0).all()


def test_unsigned_modes():
    heat = np.array([[0.0, 1.0], [2.0, 4.0]])
    np.testing.assert_array_equal(normalize(heat, mode="maxabs"), [[0, 0.25], [0.5, 1]])
    np.testing.assert_array_equal(normalize(heat + 2, mode="minmax"), [[0, 0.25], [0.5, 1]])
    np.testing.assert_array_equal(normalize(heat - 2, mode="maxabs"), [[0, 0], [0, 1]])  # negatives clip to 0


@pytest.mark.parametrize(
    "heat, kwargs, message",
    [
        (np.zeros(5), {}, "must be"),
        (np.zeros((1, 1, 3, 3)), {}, "must be"),
        (np.array([[0.0, np.nan]]), {}, "NaN"),
        (np.array([[0.0, np.inf]]), {}, "NaN or Inf"),
        (np.ones((3, 3)), {"mode": "log"}, "symmetric, maxabs, minmax"),
        (np.ones((3, 3)), {"percentile": 0}, "percentile"),
        (np.ones((3, 3)), {"percentile": 101}, "percentile"),
    ],
)
def test_normalize_rejects_bad_input(heat, kwargs, message):
    with pytest.raises(ValueError, match=message):
        normalize(heat, **kwargs)


# ----------------------------------------------------------------------------------------------- colour maps


def test_lookup_tables_have_shape_dtype_and_endpoints():
    for name in colormaps.names():
        lut = colormaps.get(name)
        assert lut.shape == (256, 3) and lut.dtype == np.uint8 and not lut.flags.writeable
    bwr, seismic, cold = colormaps.get("bwr"), colormaps.get("seismic"), colormaps.get("coldnhot")
    assert tuple(bwr[0]) == (0, 0, 255) and tuple(bwr[255]) == (255, 0, 0)
    assert tuple(bwr[127]) == tuple(bwr[128]) == WHITE
    assert tuple(seismic[127]) == tuple(seismic[128]) == WHITE
    assert tuple(seismic[0]) == (0, 0, 77) and tuple(seismic[255]) == (128, 0, 0)
    assert tuple(cold[127]) == tuple(cold[128]) == BLACK
    assert cold[0, 2] > cold[0, 0] and cold[255, 0] > cold[255, 2]  # cool negative end, warm positive end
    np.testing.assert_array_equal(bwr[::-1, ::-1], bwr)  # a mirror image: flipping swaps red and blue
    hot, gray = colormaps.get("hot"), colormaps.get("gray")
    assert tuple(hot[0]) == BLACK and tuple(hot[255]) == WHITE
    np.testing.assert_array_equal(gray[:, 0], np.arange(256))
    assert tuple(colormaps.get("viridis")[0]) == (68, 1, 84) and tuple(colormaps.get("viridis")[255]) == (253, 231, 37)
    assert [colormaps.is_diverging(n) for n in colormaps.names()] == [True, True, True, False, False, False]


def test_unknown_colormap_lists_the_names():
    with pytest.raises(ValueError, match="bwr, seismic, coldnhot, hot, gray, viridis"):
        colormaps.get("jet")
    with pytest.raises(ValueError, match="unknown colour map"):
        heatmap(np.ones((4, 4)), cmap="jet")


@pytest.mark.parametrize("cmap, centre", [("bwr", WHITE), ("seismic", WHITE), ("coldnhot", BLACK)])
def test_zero_relevance_gets_exactly_the_centre_colour(cmap, centre):
    maps = signed_maps()
    colours = colorize(maps, cmap=cmap)
    assert colours.shape == maps.shape + (3,) and colours.dtype == np.uint8
    assert (colours[maps == 0] == centre).all()
    lut = colormaps.get(cmap)
    for sample, coloured in zip(maps, colours):  # each sample's largest |R| reaches an end of the table
        peak = np.unravel_index(np.abs(sample).argmax(), sample.shape)
        np.testing.assert_array_equal(coloured[peak], lut[255] if sample[peak] > 0 else lut[0])
        np.testing.assert_array_equal(colorize(-sample, cmap=cmap)[peak], lut[0] if sample[peak] > 0 else lut[255])


def test_default_colormap_is_bwr_for_signed_and_hot_for_non_negative_relevance():
    signed = np.array([[-1.0, 0.0, 1.0]])
    np.testing.assert_array_equal(colorize(signed), [[(0, 0, 255), WHITE, (255, 0, 0)]])
    np.testing.assert_array_equal(colorize(np.array([[0.0, 1.0]])), [[BLACK, WHITE]])
    np.testing.assert_array_equal(colorize(np.zeros((2, 2))), np.zeros((2, 2, 3)))


# ----------------------------------------------------------------------------------------------- images


def test_heatmap_images_per_sample_sum_channels_and_resize():
    relevance = torch.randn(3, 3, 12, 20)
    images = heatmap(relevance)
    assert isinstance(images, list) and len(images) == 3 and images[0].size == (20, 12)
    np.testing.assert_array_equal(pixels(images[1]), colorize(relevance.sum(1).numpy())[1])
    single = heatmap(relevance[0].sum(0), size=40)
    assert isinstance(single, Image.Image) and single.size == (40, 24)
    assert heatmap(relevance, size=(7, 5))[0].size == (7, 5)
    # Resizing happens before colouring, so only colours of the table appear.
    lut_colours = {tuple(c) for c in colormaps.get("bwr")}
    assert {tuple(c) for c in pixels(single).reshape(-1, 3)} <= lut_colours


@pytest.mark.parametrize("shape", [(5,), (1, 1, 1, 4, 4)])
def test_heatmap_rejects_wrong_ranks(shape):
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        heatmap(np.ones(shape))


def test_heatmap_rejects_nan_relevance():
    relevance = torch.ones(1, 3, 4, 4)
    relevance[0, 1, 2, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        heatmap(relevance)


def test_to_image_accepts_the_usual_layouts():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, size=(6, 9, 3), dtype=np.uint8)
    as_float = rgb.astype(np.float32) / 255
    chw = torch.from_numpy(as_float).permute(2, 0, 1)
    for image in (rgb, as_float, chw, Image.fromarray(rgb)):
        np.testing.assert_array_equal(pixels(to_image(image)), rgb)
    gray = to_image(torch.from_numpy(as_float[..., 0])[None])
    np.testing.assert_array_equal(pixels(gray)[..., 1], rgb[..., 0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_image(chw * 2 - 1)
    with pytest.raises(ValueError, match="shape"):
        to_image(np.zeros((5, 5, 5)))


def test_overlay_alpha_zero_is_the_image_and_alpha_one_the_heatmap():
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    heat = rng.normal(size=(12, 16))
    np.testing.assert_array_equal(pixels(overlay(photo, heat, alpha=0.0)), photo)
    np.testing.assert_array_equal(pixels(overlay(photo, heat, alpha=1.0)), colorize(heat))
    half = pixels(overlay(photo, heat, alpha=0.5)).astype(int)
    expected = (photo.astype(int) + colorize(heat).astype(int)) / 2
    assert np.abs(half - expected).max() <= 0.5
    coloured = heatmap(heat, cmap="coldnhot")
    np.testing.assert_array_equal(pixels(overlay(photo, coloured, alpha=1.0)), pixels(coloured))


def test_overlay_resizes_the_heatmap_to_the_image():
    photo = np.full((30, 40, 3), 0.5, dtype=np.float32)
    out = overlay(photo, np.ones((6, 8)), alpha=1.0, cmap="hot")
    assert out.size == (40, 30) and (pixels(out) == WHITE).all()
    with pytest.raises(ValueError, match="alpha"):
        overlay(photo, np.ones((6, 8)), alpha=1.5)
    with pytest.raises(ValueError, match=r"\(H, W\) heatmap"):
        overlay(photo, np.ones((3, 6, 8)))


def test_relevance_alpha_keeps_the_photo_where_relevance_is_zero_and_colours_where_it_is_strong():
    rng = np.random.default_rng(4)
    photo = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    heat = np.zeros((12, 16))
    heat[0, :4] = [1.0, -1.0, 0.5, -0.25]  # full positive, full negative, half, quarter (max |R| = 1)
    out = pixels(overlay(photo, heat))  # alpha="relevance" is the default
    np.testing.assert_array_equal(out[1:], photo[1:])  # zero relevance: the photo pixel unchanged
    np.testing.assert_array_equal(out[0, 4:], photo[0, 4:])
    colours = colorize(heat)
    for column, opacity in ((0, RELEVANCE_OPACITY), (1, RELEVANCE_OPACITY), (2, 0.75 * RELEVANCE_OPACITY)):
        expected = (1 - opacity) * photo[0, column] + opacity * colours[0, column]
        assert np.abs(out[0, column] - expected).max() <= 0.5 + 1e-6
    # full relevance: the colour dominates (pure red / pure blue in bwr, whatever the photo)
    assert out[0, 0, 0] >= 0.85 * 255 and out[0, 0, 2] <= 0.15 * 255 + 1
    assert out[0, 1, 2] >= 0.85 * 255 and out[0, 1, 0] <= 0.15 * 255 + 1
    # more relevance, more colour: the pixel moves further from the photo
    distance = np.abs(out[0, :4].astype(int) - photo[0, :4].astype(int)).sum(-1)
    assert distance[0] > distance[2] > distance[3] > 0
    # a sequential map: its first colour (zero, and negative relevance under maxabs) is transparent
    hot = pixels(overlay(photo, np.clip(heat, 0, None), cmap="hot"))
    np.testing.assert_array_equal(hot[0, 1], photo[0, 1])
    assert (hot[0, 0] != photo[0, 0]).any()


def test_overlay_on_a_grayscale_copy_and_alpha_errors():
    rng = np.random.default_rng(5)
    photo = rng.integers(0, 256, size=(12, 16, 3), dtype=np.uint8)
    gray = pixels(Image.fromarray(photo).convert("L").convert("RGB"))
    heat = rng.normal(size=(12, 16))
    np.testing.assert_array_equal(pixels(overlay(photo, heat, alpha=0.0, gray=True)), gray)
    np.testing.assert_array_equal(pixels(overlay(photo, np.zeros((12, 16)), gray=True)), gray)
    with pytest.raises(ValueError, match="relevance"):
        overlay(photo, heatmap(heat))  # a coloured image has no relevance to weigh by
    with pytest.raises(ValueError, match="'relevance'"):
        overlay(photo, heat, alpha="strong")


def test_grid_size_follows_the_documented_arithmetic():
    tile = np.zeros((10, 20, 3), dtype=np.uint8)
    padding, font_size, label = 4, 10, 15  # label band = ceil(1.5 * font_size)
    out = grid({"a": [tile] * 3, "b": [tile] * 3}, padding=padding, font_size=font_size)
    assert out.size == (padding + 2 * (20 + padding), 2 * padding + label + 3 * (10 + padding))
    one_row = grid({"a": tile, "b": tile, "c": tile}, padding=padding, font_size=font_size)
    assert one_row.size == (padding + 3 * (20 + padding), 2 * padding + label + 10 + padding)
    resized = grid({"a": tile}, size=40, padding=0, font_size=font_size)
    assert resized.size == (40, label + 20)
    batch = grid({"a": torch.zeros(2, 3, 10, 20)}, padding=0, font_size=font_size)  # a 4-D batch is rows
    assert batch.size == (20, label + 2 * 10)


def test_grid_writes_each_name_above_its_column_and_places_tiles():
    tile = np.zeros((30, 60, 3), dtype=np.uint8)
    out = pixels(grid({"saliency": tile, "lrp": tile}, padding=5, font_size=12))
    band = out[5 : 5 + 18]
    left, right = band[:, 5 : 5 + 60], band[:, 70 : 70 + 60]
    assert (left != 255).any() and (right != 255).any()  # text drawn in both label cells
    assert not np.array_equal(left, right)  # different names, different pixels
    assert (out[28 : 28 + 30, 5 : 5 + 60] == 0).all()  # the tile sits below its label
    long = pixels(grid({"x" * 200: tile}, padding=5, font_size=12))
    assert long.shape[1] == 70  # long names are shortened, not widening the grid


def test_grid_rejects_ragged_or_empty_input():
    tile = np.zeros((4, 4, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="same number"):
        grid({"a": [tile, tile], "b": [tile]})
    with pytest.raises(ValueError, match="at least one"):
        grid({})


# ----------------------------------------------------------------------------------------------- files


def test_png_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, size=(7, 11, 3), dtype=np.uint8)
    path = to_png(rgb, tmp_path / "sub" / "a.png")
    assert path == tmp_path / "sub" / "a.png"
    np.testing.assert_array_equal(pixels(Image.open(path)), rgb)
    assert sorted(os.listdir(tmp_path / "sub")) == ["a.png"]
    with pytest.raises(ValueError, match=r"\.png"):
        to_png(rgb, tmp_path / "a.jpg")


def test_npy_round_trip_sums_channels_or_keeps_the_full_tensor(tmp_path):
    relevance = torch.randn(2, 3, 5, 6, dtype=torch.float64)
    summed = np.load(to_npy(relevance, tmp_path / "r.npy"))
    assert summed.dtype == np.float32 and summed.shape == (2, 5, 6)
    np.testing.assert_allclose(summed, relevance.sum(1).numpy(), rtol=1e-6)
    full = np.load(to_npy(relevance, tmp_path / "f.npy", full=True))
    assert full.dtype == np.float32 and full.shape == (2, 3, 5, 6)
    np.testing.assert_array_equal(full, relevance.numpy().astype(np.float32))
    one = np.load(to_npy(relevance[0], tmp_path / "one.npy"))
    assert one.shape == (5, 6)
    assert sorted(os.listdir(tmp_path)) == ["f.npy", "one.npy", "r.npy"]
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        to_npy(relevance[0, 0], tmp_path / "x.npy")
    with pytest.raises(ValueError, match="NaN"):
        to_npy(torch.full((1, 2, 2), float("nan")), tmp_path / "x.npy")
    with pytest.raises(ValueError, match=r"\.npy"):
        to_npy(relevance, tmp_path / "x.npz")


def test_atomic_write_keeps_the_old_file_until_the_new_one_is_complete(tmp_path):
    path = tmp_path / "out.png"
    path.write_bytes(b"old")
    seen = []

    def write(handle):
        handle.write(b"new")
        seen.append(path.read_bytes())  # mid-write, readers still see the old file

    atomic_write(path, write)
    assert seen == [b"old"] and path.read_bytes() == b"new"

    def fail(handle):
        handle.write(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["out.png"]  # no temporary file left behind


def test_failed_png_write_leaves_the_existing_file(tmp_path, monkeypatch):
    path = to_png(np.zeros((4, 4, 3), dtype=np.uint8), tmp_path / "a.png")
    before = path.read_bytes()

    def broken_save(self, fp, *args, **kwargs):
        fp.write(b"\x89PNG half")
        raise OSError("interrupted")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="interrupted"):
        to_png(np.ones((4, 4, 3), dtype=np.uint8), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["a.png"]


def test_atomic_write_keeps_permissions(tmp_path):
    path = tmp_path / "a.npy"
    to_npy(torch.ones(1, 2, 2), path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    path.chmod(0o640)
    to_npy(torch.zeros(1, 2, 2), path)
    assert path.stat().st_mode & 0o777 == 0o640


# ----------------------------------------------------------------------------------------------- Explanation


def test_explanation_render_one_or_all():
    e = explanation()
    images = e.render()
    assert isinstance(images, list) and len(images) == 2 and images[0].size == (10, 8)
    image = e.render(1, cmap="coldnhot", percentile=99.5, size=20)
    assert isinstance(image, Image.Image) and image.size == (20, 16)
    np.testing.assert_array_equal(pixels(e.render(-1)), pixels(images[1]))
    np.testing.assert_array_equal(pixels(images[0]), colorize(e.heatmap().numpy())[0])
    with pytest.raises(ValueError, match="index"):
        e.render(2)


def test_explanation_overlay_uses_the_given_image_or_min_max_scaled_inputs():
    e = explanation()
    scaled = pixels(e.render(0, overlay=True, alpha=0.0))
    x = e.inputs[0].numpy()
    expected = np.rint((x - x.min()) / (x.max() - x.min()) * 255).astype(np.uint8).transpose(1, 2, 0)
    np.testing.assert_array_equal(scaled, expected)
    photo = np.full((16, 20, 3), 7, dtype=np.uint8)  # larger than the relevance: the heatmap is resized
    out = e.render(overlay=True, alpha=0.0, image=photo)
    assert len(out) == 2 and all((pixels(o) == 7).all() for o in out)
    per_sample = [np.full((8, 10, 3), v, dtype=np.uint8) for v in (1, 2)]
    assert pixels(e.render(1, overlay=True, alpha=0.0, image=per_sample)).max() == 2
    full = e.render(0, overlay=True, alpha=1.0)
    np.testing.assert_array_equal(pixels(full), pixels(e.render(0)))
    with pytest.raises(ValueError, match="one per sample"):
        e.render(overlay=True, image=per_sample[:1])
    e.inputs = None
    with pytest.raises(ValueError, match="image="):
        e.render(overlay=True)


def test_explanation_render_rejects_non_image_relevance():
    e = Explanation(torch.randn(2, 5), torch.randn(2, 3), None, "test")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        e.render()


def test_explanation_save_png(tmp_path):
    e = explanation(batch=3)
    assert e.save(tmp_path / "one.png", index=2) == [tmp_path / "one.png"]
    np.testing.assert_array_equal(pixels(Image.open(tmp_path / "one.png")), pixels(e.render(2)))
    assert e.save(tmp_path / "all.png") == [tmp_path / f"all_{i}.png" for i in range(3)]
    assert e.save(tmp_path / "m{i}.png", cmap="seismic") == [tmp_path / f"m{i}.png" for i in range(3)]
    np.testing.assert_array_equal(pixels(Image.open(tmp_path / "m1.png")), pixels(e.render(1, cmap="seismic")))
    assert Explanation(e.relevance[:1], e.output[:1], None, "t").save(tmp_path / "b1.png") == [tmp_path / "b1.png"]
    assert len(os.listdir(tmp_path)) == 8  # no temporary files
    with pytest.raises(ValueError, match="full=True"):
        e.save(tmp_path / "x.png", full=True)


def test_explanation_save_npy(tmp_path):
    e = explanation(batch=3)
    one = np.load(e.save(tmp_path / "one.npy", index=1)[0])
    assert one.dtype == np.float32 and one.shape == (8, 10)
    np.testing.assert_allclose(one, e.heatmap()[1].numpy(), rtol=1e-6)
    full = np.load(e.save(tmp_path / "full.npy", index=1, full=True)[0])
    np.testing.assert_array_equal(full, e.relevance[1].numpy())
    batch = np.load(e.save(tmp_path / "batch.npy")[0])
    assert batch.shape == (3, 8, 10)
    paths = e.save(tmp_path / "s{i}.npy")
    assert paths == [tmp_path / f"s{i}.npy" for i in range(3)] and np.load(paths[2]).shape == (8, 10)
    with pytest.raises(ValueError, match="apply to .png"):
        e.save(tmp_path / "x.npy", cmap="bwr")
    with pytest.raises(ValueError, match=".png images or .npy"):
        e.save(tmp_path / "x.jpg")
