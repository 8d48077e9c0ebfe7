"""unmask.data: loading images with clear errors, folders, scikit-image's sample photos."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unmask import data
from unmask.data import ImageLoadError, expand_inputs, load_image, sample_photos


def save(path: Path, image: Image.Image, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` (pixels are never decoded by the size check)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def test_rgb_image_loads_unchanged(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    image = load_image(save(tmp_path / "a.png", Image.fromarray(pixels)))
    assert image.mode == "RGB" and image.size == (50, 40)
    np.testing.assert_array_equal(np.asarray(image), pixels)
    assert data.NOTE_KEY not in image.info


def test_grayscale_is_converted_with_a_note(tmp_path):
    gray = np.tile(np.arange(64, dtype=np.uint8), (48, 1))
    image = load_image(save(tmp_path / "g.png", Image.fromarray(gray, mode="L")))
    assert image.mode == "RGB"
    array = np.asarray(image)
    np.testing.assert_array_equal(array[..., 0], gray)
    np.testing.assert_array_equal(array[..., 0], array[..., 2])
    assert "grayscale" in image.info[data.NOTE_KEY]


def test_16_bit_grayscale_is_scaled_to_8_bits(tmp_path):
    gray = (np.tile(np.linspace(0, 65535, 40), (40, 1))).astype(np.uint16)
    image = load_image(save(tmp_path / "g16.png", Image.fromarray(gray)))
    array = np.asarray(image)
    assert image.mode == "RGB" and array[0, 0, 0] == 0 and array[0, -1, 0] == 255


def test_rgba_transparency_is_flattened_onto_white(tmp_path):
    rgba = np.zeros((40, 40, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red ...
    rgba[:, :20, 3] = 255  # ... opaque on the left half, transparent on the right
    image = load_image(save(tmp_path / "t.png", Image.fromarray(rgba, mode="RGBA")))
    array = np.asarray(image)
    assert image.mode == "RGB"
    assert tuple(array[0, 0]) == (255, 0, 0)
    assert tuple(array[0, 39]) == (255, 255, 255)
    assert "RGBA" in image.info[data.NOTE_KEY] and "white" in image.info[data.NOTE_KEY]


def test_palette_and_animated_gif(tmp_path):
    frames = [Image.new("RGB", (40, 40), color).convert("P") for color in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    image = load_image(path)
    assert image.mode == "RGB"
    assert "2 frames" in image.info[data.NOTE_KEY] and "palette" in image.info[data.NOTE_KEY]


def test_missing_path_and_folder_are_refused(tmp_path):
    with pytest.raises(ImageLoadError, match="no such file") as error:
        load_image(tmp_path / "nope.jpg")
    assert error.value.path.endswith("nope.jpg")
    with pytest.raises(ImageLoadError, match="is a folder"):
        load_image(tmp_path)


def test_a_file_that_is_not_an_image_is_refused(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is text, not a picture")
    with pytest.raises(ImageLoadError, match="not an image file") as error:
        load_image(path)
    assert str(path) in str(error.value)


def test_a_truncated_image_is_refused(tmp_path):
    path = save(tmp_path / "full.png", Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)))
    cut = tmp_path / "cut.png"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ImageLoadError, match="damaged or truncated"):
        load_image(cut)


def test_tiny_images_are_refused_and_32_pixels_is_enough(tmp_path):
    with pytest.raises(ImageLoadError, match=r"too small \(31x100\)"):
        load_image(save(tmp_path / "thin.png", Image.new("RGB", (31, 100))))
    assert load_image(save(tmp_path / "ok.png", Image.new("RGB", (32, 32)))).size == (32, 32)


def test_huge_images_are_refused_before_decoding(tmp_path):
    with pytest.raises(ImageLoadError, match="too large .*8000x8000"):
        load_image(png_header_only(tmp_path / "big.png", 8000, 8000))  # 64 MP: our limit
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(png_header_only(tmp_path / "bomb.png", 20000, 20000))  # past Pillow's bomb limit too


def test_expand_inputs_lists_folder_images_sorted(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("b.png", "a.JPG", "c.txt", ".hidden.png"):
        (folder / name).write_bytes(b"x")
    (folder / "sub").mkdir()
    (folder / "sub" / "d.png").write_bytes(b"x")
    single = tmp_path / "single.png"
    single.write_bytes(b"x")
    files, problems = expand_inputs([folder, single])
    assert [f.name for f in files] == ["a.JPG", "b.png", "single.png"]
    assert problems == []
    files, _ = expand_inputs([folder], recursive=True)
    assert [f.name for f in files] == ["a.JPG", "b.png", "d.png"]


def test_expand_inputs_reports_missing_paths_and_empty_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    files, problems = expand_inputs([tmp_path / "missing.png", empty])
    assert files == []
    assert [type(p) for p in problems] == [ImageLoadError, ImageLoadError]
    assert "no such file" in str(problems[0]) and "missing.png" in str(problems[0])
    assert "no images" in str(problems[1])


def test_sample_photos():
    pytest.importorskip("skimage")
    photos = sample_photos()
    assert list(photos) == list(data.DEFAULT_PHOTOS) == ["chelsea", "coffee", "astronaut", "rocket"]
    assert all(p.mode == "RGB" for p in photos.values())
    assert photos["chelsea"].size == (451, 300)
    every = sample_photos("all")
    assert list(every) == data.photo_names() and len(every) >= 8
    assert all(p.mode == "RGB" and min(p.size) >= 224 for p in every.values())
    with pytest.raises(ValueError, match="unknown sample photo 'dog'"):
        sample_photos(["dog"])
