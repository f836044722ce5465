"""Decoders: the format allowlist (no EPS, no Ghostscript), degenerate shapes, our pixel limit
as the real one, bounded metadata, and a letterbox that never asks OpenCV for 0 pixels."""

from __future__ import annotations

import io
import shutil
import subprocess
import zlib

import numpy as np
import pytest
from PIL import Image

from tests.corpus import LOOPING_EPS, overlapping_tags, png_bomb, tiff_tag_bomb
from wildspace.media import exif as exif_mod
from wildspace.media.images import (
    IMAGE_FORMATS,
    MAX_EXIF_BYTES,
    ImageReadError,
    load_image,
    load_image_sized,
    open_image,
)


@pytest.fixture
def no_ghostscript(monkeypatch):
    """Fail the test if anything starts a program or runs Pillow's EPS plugin."""
    from PIL import EpsImagePlugin

    calls = []

    def forbidden(name):
        def f(*a, **k):
            calls.append(name)
            raise AssertionError(f"{name} was called")
        return f

    for name in ("Popen", "run", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, forbidden(f"subprocess.{name}"))
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", forbidden("EpsImageFile._open"))
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", forbidden("EpsImagePlugin.Ghostscript"))
    monkeypatch.setattr(EpsImagePlugin, "has_ghostscript", forbidden("EpsImagePlugin.has_ghostscript"))
    return calls


def test_a_looping_eps_named_jpg_is_refused_by_its_format_before_any_plugin_runs(tmp_path, no_ghostscript):
    p = tmp_path / "holiday.jpg"
    p.write_bytes(LOOPING_EPS)
    with pytest.raises(ImageReadError, match="not an accepted image format .looks like EPS"):
        load_image(p)
    with pytest.raises(ImageReadError, match="not an accepted image format"):
        open_image(io.BytesIO(LOOPING_EPS))
    assert exif_mod.capture_time(p) is None and exif_mod.image_size(p) is None
    assert no_ghostscript == []


@pytest.mark.skipif(shutil.which("gs") is None, reason="Ghostscript (gs) is not installed")
def test_with_ghostscript_installed_the_eps_still_fails_at_once(tmp_path):
    p = tmp_path / "x.jpg"
    p.write_bytes(LOOPING_EPS)
    with pytest.raises(ImageReadError, match="not an accepted image format"):
        load_image(p)


@pytest.mark.parametrize("fmt", ["GIF", "PPM", "ICO", "PCX", "TGA"])
def test_other_formats_are_refused(tmp_path, fmt):
    p = tmp_path / "x.jpg"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(p, format=fmt)
    # the format is named when its signature says so (TGA has none)
    named = "" if fmt == "TGA" else f".looks like {fmt};"
    with pytest.raises(ImageReadError, match=f"not an accepted image format {named}"):
        load_image(p)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "WEBP", "BMP", "MPO"])
def test_accepted_formats_decode(tmp_path, fmt):
    p = tmp_path / "x.img"
    im = Image.new("RGB", (24, 16), (200, 10, 30))
    if fmt == "MPO":  # a phone's multi-picture JPEG: two frames
        im.save(p, format="MPO", save_all=True, append_images=[Image.new("RGB", (24, 16))])
    else:
        im.save(p, format=fmt)
    with open_image(p) as opened:
        assert opened.format == fmt
    assert load_image(p).shape == (16, 24, 3)
    assert fmt in IMAGE_FORMATS or fmt == "MPO"


@pytest.mark.parametrize("size, reason", [((65000, 2), "extreme aspect ratio: 65000x2"),
                                          ((2, 300), "extreme aspect ratio: 2x300"),
                                          ((3, 3), "image too small: 3x3")])
def test_degenerate_shapes_are_failures(tmp_path, size, reason):
    p = tmp_path / "x.png"
    Image.new("L", size).save(p)
    with pytest.raises(ImageReadError, match=reason):
        load_image(p)


def test_shapes_at_the_bounds_are_read(tmp_path):
    for size in ((400, 4), (4, 4)):
        p = tmp_path / f"{size[0]}x{size[1]}.png"
        Image.new("L", size).save(p)
        assert load_image(p).shape == (size[1], size[0], 3)


def _solid_png(w: int, h: int) -> bytes:
    """A real, fully decodable grey PNG of ``w`` x ``h`` (rows of zeros compress to nothing)."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = b"\x00" * (w + 1)
    body = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", body) + chunk(b"IEND", b""))


@pytest.mark.slow
def test_the_documented_pixel_limit_is_the_real_one(tmp_path):
    """100 MP is above Pillow's own bomb warning (89.5 MP): under our 200 MP limit it decodes."""
    p = tmp_path / "100mp.png"
    p.write_bytes(_solid_png(10_000, 10_000))
    arr, hw = load_image_sized(p, max_pixels=200_000_000)
    assert hw == (10_000, 10_000) and arr.shape == (10_000, 10_000, 3) and arr[5000, 5000, 0] == 0
    del arr
    with pytest.raises(ImageReadError, match="exceeds the limit of 50000000 pixels"):
        load_image(p, max_pixels=50_000_000)


def test_pixel_limit_from_headers_and_our_message_above_pillows(tmp_path):
    between = tmp_path / "180mp.png"  # Pillow alone refuses above 2 x 89.5 MP
    between.write_bytes(png_bomb(15_000, 12_000))
    with open_image(between, max_pixels=200_000_000) as im:
        assert im.size == (15_000, 12_000)
    huge = tmp_path / "3.6gp.png"
    huge.write_bytes(png_bomb())
    with pytest.raises(ImageReadError, match="3600000000 pixels exceeds the limit of 200000000 pixels"):
        load_image(huge)
    with pytest.raises(ImageReadError, match="WILDSPACE_MAX_PIXELS"):
        load_image(between, max_pixels=100_000_000)


def _rotated_png(tmp_path, name, extra: int) -> "tuple":
    """A 40x20 PNG whose EXIF says 'rotate 90' and carries ``extra`` bytes of other data."""
    ex = Image.Exif()
    ex[0x0112] = 6
    ex[0x010E] = "x" * extra  # ImageDescription
    ex.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"
    p = tmp_path / name
    Image.new("RGB", (40, 20)).save(p, exif=ex.tobytes())
    return p


def test_big_exif_is_skipped_small_exif_is_used(tmp_path):
    small = _rotated_png(tmp_path, "small.png", 100)
    assert load_image(small).shape == (40, 20, 3)  # rotated
    assert exif_mod.capture_time(small).isoformat() == "2024-05-06T07:08:09"
    big = _rotated_png(tmp_path, "big.png", MAX_EXIF_BYTES + 10)
    assert load_image(big).shape == (20, 40, 3)  # EXIF skipped: upright
    assert exif_mod.capture_time(big) is None and exif_mod.image_size(big) == (40, 20)


def test_exif_whose_tags_overlap_is_skipped(tmp_path):
    p = tmp_path / "bomb.png"
    Image.new("RGB", (16, 8)).save(p, exif=b"Exif\x00\x00" + overlapping_tags())
    assert load_image(p).shape == (8, 16, 3)
    assert exif_mod.capture_time(p) is None
    from wildspace.media.images import _exif_block_ok

    assert not _exif_block_ok(overlapping_tags()) and not _exif_block_ok(overlapping_tags(n=2, data=1000))
    assert _exif_block_ok(overlapping_tags(n=1, data=1000)) and _exif_block_ok(Image.Exif().tobytes())


def test_a_tiff_whose_tags_claim_more_than_the_file_is_refused(tmp_path):
    p = tmp_path / "bomb.tif"
    p.write_bytes(tiff_tag_bomb())
    with pytest.raises(ImageReadError, match="metadata too large"):
        load_image(p)
    ok = tmp_path / "ok.tif"
    Image.new("RGB", (12, 10), (5, 6, 7)).save(ok, compression="tiff_lzw")
    assert load_image(ok)[0, 0].tolist() == [5, 6, 7]


def test_png_text_chunks_are_capped(tmp_path):
    from PIL import PngImagePlugin

    from wildspace.media.images import MAX_PNG_TEXT_BYTES

    info = PngImagePlugin.PngInfo()
    for i in range(MAX_PNG_TEXT_BYTES // (1 << 20) + 1):
        info.add_text(f"k{i}", "x" * (1 << 20))
    p = tmp_path / "text.png"
    Image.new("RGB", (8, 8)).save(p, pnginfo=info)
    with pytest.raises(ImageReadError, match="metadata too large"):
        load_image(p)


def test_an_unknown_file_never_reaches_the_heif_plugin_install(tmp_path, monkeypatch):
    """ultralytics wraps Image.open to pip-install a HEIF plugin for unknown files: not ours."""
    import ultralytics.utils.checks as checks

    import wildspace.media.images as images

    monkeypatch.setattr(checks, "check_requirements", lambda *a, **k: pytest.fail("tried to install"))
    import ultralytics.utils.patches  # noqa: F401  (the wrapper is installed)

    assert Image.open is not images._PIL_OPEN
    p = tmp_path / "x.jpg"
    p.write_bytes(b"hello, not an image at all")
    with pytest.raises(ImageReadError, match="not a readable image"):
        load_image(p)


@pytest.mark.parametrize("shape", [(2, 65000, 3), (65000, 2, 3), (1, 1, 3), (1, 5000, 3)])
def test_letterboxes_never_resize_to_zero_pixels(shape):
    from wildspace.detect.letterbox import letterbox, letterbox_shape, stride_letterbox, unletterbox_boxes

    image = np.full(shape, 7, np.uint8)
    padded, geom = letterbox(image, 640, 32)
    assert padded.shape[:2] == geom.input_hw == letterbox_shape(*shape[:2], 640, 32)
    assert min(padded.shape[:2]) >= 32 and all(s % 32 == 0 for s in padded.shape[:2])
    padded2 = stride_letterbox(image, 640, 32)
    assert min(padded2.shape[:2]) >= 32
    boxes = unletterbox_boxes(np.array([[0, 0, 10, 10]], np.float32), padded2.shape[:2], shape[:2])
    assert np.isfinite(boxes).all()
    with pytest.raises(ValueError, match="empty image"):
        letterbox(np.zeros((0, 5, 3), np.uint8), 640)


def test_a_truncated_jpeg_fails_even_if_another_library_allowed_truncated_images(tmp_path):
    from PIL import ImageFile

    from wildspace.media.images import ImageReadError, load_image

    good = tmp_path / "good.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(good, quality=95)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:3000])
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # what `import megadetector` does to the whole process
    try:
        with pytest.raises(ImageReadError, match="truncated"):
            load_image(cut)
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
