"""Image reading: orientation, modes, limits, and clear failures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from wildspace.media.images import ImageReadError, list_images, load_image


def _save(tmp_path, name, im, **kw):
    p = tmp_path / name
    im.save(p, **kw)
    return p


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 10, 20))  # blue stripe on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    arr = load_image(_save(tmp_path, "r.jpg", im, exif=exif, quality=95))
    assert arr.shape == (40, 20, 3)
    assert arr[2, 10, 2] > 200 and arr[-3, 10, 0] > 200  # blue now on top


@pytest.mark.parametrize("orientation", [None, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
def test_every_orientation_matches_pillows_transpose(tmp_path, orientation):
    from PIL import ImageOps

    from wildspace.media.images import load_image_sized

    rng = np.random.default_rng(1)
    im = Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8))
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    path = _save(tmp_path, "o.jpg", im, exif=exif, quality=95)
    arr, full_hw = load_image_sized(path)
    want = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert np.array_equal(arr, want)
    assert full_hw == arr.shape[:2] == ((40, 24) if orientation in (5, 6, 7, 8) else (24, 40))


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "CMYK", "I;16", "LA"])
def test_modes_become_rgb(tmp_path, mode):
    ext = "tif" if mode in ("CMYK", "I;16") else "png"
    im = Image.new("RGB", (16, 8), (10, 200, 30))
    im = im.convert(mode) if mode != "I;16" else Image.fromarray(np.full((8, 16), 40000, np.uint16))
    arr = load_image(_save(tmp_path, f"x.{ext}", im))
    assert arr.shape == (8, 16, 3) and arr.dtype == np.uint8


def test_png_named_jpg_is_read(tmp_path):
    p = _save(tmp_path, "really-png.jpg", Image.new("RGB", (8, 8)), format="PNG")
    assert load_image(p).shape == (8, 8, 3)


@pytest.mark.parametrize("content, reason", [
    (b"", "empty file"),
    (b"hello, not an image", "not a readable image"),
    (b"\xff\xd8\xff\xe0" + b"\x00" * 50, "corrupt|not a readable"),
])
def test_bad_files_are_clear_errors(tmp_path, content, reason):
    p = tmp_path / "bad.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason):
        load_image(p)


def test_truncated_jpeg(tmp_path):
    p = _save(tmp_path, "t.jpg", Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), np.uint8)))
    p.write_bytes(p.read_bytes()[:2000])
    with pytest.raises(ImageReadError, match="truncated|corrupt"):
        load_image(p)


def test_pixel_limit(tmp_path):
    p = _save(tmp_path, "big.png", Image.new("L", (300, 300)))
    with pytest.raises(ImageReadError, match="too large"):
        load_image(p, max_pixels=10_000)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="cannot open"):
        load_image(tmp_path / "nope.jpg")


def test_list_images_recurses_and_names_relative(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/1.jpg", "a/b/2.PNG", "a/notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    found = [name for _, name in list_images([tmp_path / "a"])]
    assert found == ["1.jpg", "b/2.PNG"]
    with pytest.raises(FileNotFoundError):
        list(list_images([tmp_path / "missing"]))
