"""The bad-input corpus: every kind of broken, odd or hostile upload, generated (not committed).

:func:`build_corpus` writes each case into a folder and returns :class:`Case` entries with the
expected outcome: ``ok`` (the file must give a result) or a failure whose reason contains
``reason``. Good cases are derived from one real photo (or a synthetic one), so the entry-point
tests can check that the good files' detections equal a clean run of the same files.

Kinds: ``image`` (loose file), ``zip`` (an archive whose members become results under
``<zip member path>``), ``video``.
"""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class Case:
    """One corpus entry: ``name`` is the result name the run must report for it."""

    name: str
    path: Path
    kind: str  # "image" | "zip" | "video"
    ok: bool
    reason: str = ""  # a substring of the failure reason (lowercase), when not ok


def _photo(source: Path | None) -> Image.Image:
    if source is not None:
        im = Image.open(source).convert("RGB")
        im.thumbnail((640, 640))
        return im
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:360, 0:480]
    rgb = np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)
    rgb[100:250, 150:330] = rng.integers(0, 255, (150, 180, 3), dtype=np.uint8)
    return Image.fromarray(rgb)


def _jpeg(im: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90, **kw)
    return buf.getvalue()


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def png_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` 8-bit grey pixels (3.6 Gpx)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\x00" * (width + 1) * 64, 9)  # a few rows; the decoder never gets there
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


LOOPING_EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n{ } loop\n"  # Ghostscript never ends
LONG_NAME = "长" * 100 + ".jpg"  # 304 bytes in UTF-8: over any filesystem's 255-byte name limit


def overlapping_tags(n: int = 2000, data: int = 400_000, base: int = 0x1000) -> bytes:
    """A TIFF directory (as in a TIFF file or an EXIF block) whose ``n`` tags all point at the
    same ``data`` bytes: Pillow would copy them once per tag (here 800 MB from 424 kB)."""
    table_end = 8 + 2 + 12 * n + 4
    entries = b"".join(struct.pack("<HHLL", base + i, 7, data, table_end) for i in range(n))
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", n) + entries + b"\0\0\0\0" + b"A" * data


def tiff_tag_bomb() -> bytes:
    """A 424 kB TIFF (8x8, grey) whose tags claim 800 MB."""
    n, data = 2000, 400_000
    table_end = 8 + 2 + 12 * (n + 2) + 4
    entries = [struct.pack("<HHLL", 256, 3, 1, 8), struct.pack("<HHLL", 257, 3, 1, 8)]
    entries += [struct.pack("<HHLL", 0x1000 + i, 7, data, table_end) for i in range(n)]
    return (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", n + 2) + b"".join(entries) + b"\0\0\0\0"
            + b"A" * data)


def _exif_rotated(im: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    return _jpeg(im, exif=exif.tobytes())


def _video(path: Path, frames: int, size: tuple[int, int] = (96, 64)) -> Path:
    """An MPEG-4 video of ``frames`` noise frames at 5 fps (0: a header and no frame)."""
    import av

    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("mpeg4", rate=5)
        s.width, s.height = size
        s.pix_fmt = "yuv420p"
        c.start_encoding()
        rng = np.random.default_rng(1)
        for _ in range(frames):
            img = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def _zip_member_link(z: zipfile.ZipFile, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    z.writestr(info, target)


def build_corpus(dest: Path, source: Path | None = None, videos: bool = True) -> list[Case]:
    """Write every case into ``dest`` (created) and return them, good cases first.

    Args:
        source: a real photo the good cases are derived from (else a synthetic image).
        videos: also write the video cases (needs PyAV).
    """
    dest.mkdir(parents=True, exist_ok=True)
    im = _photo(source)
    good = _jpeg(im)
    cases: list[Case] = []

    def image(name: str, data: bytes, ok: bool, reason: str = "") -> None:
        (dest / name).write_bytes(data)
        cases.append(Case(name, dest / name, "image", ok, reason))

    # images a camera or a phone really makes: all must give results
    image("good.jpg", good, True)
    image("png-named.jpg", _png(im), True)
    image("cmyk.jpg", _jpeg(im.convert("CMYK")), True)
    image("grey.png", _png(im.convert("L")), True)
    image("palette.png", _png(im.convert("P", palette=Image.Palette.ADAPTIVE)), True)
    sixteen = Image.fromarray((np.asarray(im.convert("L"), dtype=np.uint16) * 257), "I;16")
    image("sixteen-bit.png", _png(sixteen), True)
    image("exif-rotated.jpg", _exif_rotated(im), True)
    # broken or hostile files: each a failure with its reason
    image("zero-bytes.jpg", b"", False, "empty file")
    image("truncated.jpg", good[: len(good) // 3], False, "truncated")
    image("corrupt-header.jpg", good[:2] + bytes(range(256)) * 4 + good[1030:], False, "image")
    png = _png(im)
    image("truncated.png", png[: len(png) // 2], False, "truncated")
    image("corrupt-crc.png", png[:33] + bytes(b ^ 0x5A for b in png[33:80]) + png[80:], False, "image")
    image("text.jpg", b"This is not a photo, it is a shopping list.\n" * 20, False, "not a readable image")
    image("html.png", b"<!doctype html><html><body>404</body></html>", False, "not a readable image")
    image("bomb.png", png_bomb(), False, "too large")
    image("eps-named.jpg", LOOPING_EPS, False, "not an accepted image format")
    image("strip-65000x2.png", _png(Image.new("L", (65000, 2))), False, "extreme aspect ratio")
    image("tiff-tag-bomb.tif", tiff_tag_bomb(), False, "metadata too large")
    buf = io.BytesIO()
    im.save(buf, "PNG", exif=b"Exif\x00\x00" + overlapping_tags())  # read without its EXIF
    image("exif-bomb.png", buf.getvalue(), True)

    z = dest / "hostile.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as f:
        f.writestr("card/ok.jpg", good)
        f.writestr("../escape.jpg", good)
        f.writestr("/abs/escape.jpg", good)
        _zip_member_link(f, "card/link.jpg", "/etc/passwd")
        inner = io.BytesIO()
        with zipfile.ZipFile(inner, "w") as g:
            g.writestr("inner.jpg", good)
        f.writestr("card/nested.zip", inner.getvalue())
        f.writestr("card/bomb.jpg", b"\0" * (20 * 2**20))  # 20 MB of zeros: ratio ~1000
        f.writestr("card/truncated.jpg", good[:2000])
    cases += [Case("card/ok.jpg", z, "zip", True),
              Case("../escape.jpg", z, "zip", False, "unsafe path"),
              Case("abs/escape.jpg", z, "zip", False, "unsafe path"),
              Case("card/link.jpg", z, "zip", False, "symbolic link"),
              Case("card/nested.zip", z, "zip", False, "nested archive"),
              Case("card/bomb.jpg", z, "zip", False, "zip bomb"),
              Case("card/truncated.jpg", z, "zip", False, "truncated")]
    names = dest / "names.zip"  # members whose names no disk takes as they are: all are read
    odd = "odd\x07name:?*.jpg"
    with zipfile.ZipFile(names, "w", zipfile.ZIP_DEFLATED) as f:
        for name in (LONG_NAME, "clash.jpg", "clash.jpg/inside.jpg", odd):
            f.writestr(name, good)
    cases += [Case(n, names, "zip", True) for n in (LONG_NAME, "clash.jpg", "clash.jpg/inside.jpg", odd)]
    (dest / "not-a-zip.zip").write_bytes(b"PK\x03\x04 but nothing more")
    cases.append(Case("not-a-zip.zip", dest / "not-a-zip.zip", "zip", False, "not a readable zip"))

    if videos:
        def video(name: str, ok: bool, reason: str = "", data: bytes | None = None,
                  frames: int = 0) -> None:
            p = dest / name
            if data is not None:
                p.write_bytes(data)
            else:
                _video(p, frames)
            cases.append(Case(name, p, "video", ok, reason))

        video("good.mp4", True, frames=10)
        video("mp4-named.avi", True, frames=10)
        video("zero-frames.mp4", False, "no video stream", frames=0)
        video("zero-bytes.mp4", False, "cannot open video", data=b"")
        video("garbage.mp4", False, "cannot open video", data=bytes(range(256)) * 64)
        whole = (dest / "good.mp4").read_bytes()
        video("truncated.mp4", False, "cannot open video", data=whole[: len(whole) // 4])
    return cases


def of_kind(cases: list[Case], *kinds: str) -> dict[str, Case]:
    """The cases of the given kinds, by result name."""
    return {c.name: c for c in cases if c.kind in kinds}


def uploads(cases: list[Case], *kinds: str) -> list[Path]:
    """The distinct files to upload for the cases of the given kinds (a zip once)."""
    return list(dict.fromkeys(c.path for c in cases if c.kind in kinds))


def check_results(results, cases: dict[str, Case]) -> dict[str, object]:
    """Assert one result per case: good ones without failure, bad ones with their reason.

    ``results`` are :class:`~wildspace.types.ImageResult` or MegaDetector image dicts.
    Returns the good results by name.
    """
    by_name = {}
    for r in results:
        name, failure = (r["file"], r.get("failure")) if isinstance(r, dict) else (r.file, r.failure)
        assert name not in by_name, f"{name} reported twice"
        by_name[name] = (r, failure)
    assert set(by_name) == set(cases), (sorted(set(cases) - set(by_name)), sorted(set(by_name) - set(cases)))
    for name, case in cases.items():
        failure = by_name[name][1]
        if case.ok:
            assert not failure, f"{name} should have worked, failed: {failure}"
        else:
            assert failure, f"{name} should have failed ({case.reason})"
            assert case.reason in failure.lower(), f"{name}: {failure!r} lacks {case.reason!r}"
    return {n: r for n, (r, f) in by_name.items() if cases[n].ok}
