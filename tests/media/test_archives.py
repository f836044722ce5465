"""Zip uploads: safe extraction, hostile members become failures, nothing escapes dest."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest
from PIL import Image

from wildspace.media.archives import UploadLimits, unpack_uploads


def _jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (32, 24), (1, 2, 3)).save(buf, "JPEG")
    return buf.getvalue()


def _zip(path, members):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            if isinstance(data, zipfile.ZipInfo):
                z.writestr(data, b"target.jpg")
            else:
                z.writestr(name, data)
    return path


def test_good_members_are_extracted_with_relative_names(tmp_path):
    z = _zip(tmp_path / "card.zip", [("site/a.jpg", _jpeg()), ("site/sub/b.JPG", _jpeg()),
                                     ("readme.txt", b"hi"), ("__MACOSX/site/._a.jpg", b"junk")])
    out = unpack_uploads([z], tmp_path / "dest")
    assert sorted(name for _, name in out.files) == ["site/a.jpg", "site/sub/b.JPG"]
    assert out.failures == []
    for path, _ in out.files:
        assert (tmp_path / "dest") in path.parents and path.read_bytes() == _jpeg()


def test_hostile_members_are_failures_and_nothing_escapes(tmp_path):
    link = zipfile.ZipInfo("link.jpg")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = _zip(tmp_path / "evil.zip", [("../../escape.jpg", _jpeg()), ("/abs/path.jpg", _jpeg()),
                                     ("link.jpg", link), ("inner.zip", b"PK..."),
                                     ("ok.jpg", _jpeg())])
    out = unpack_uploads([z], tmp_path / "dest")
    reasons = dict(out.failures)
    assert [name for _, name in out.files] == ["ok.jpg"]
    assert "outside the archive" in reasons["../../escape.jpg"]
    assert "outside the archive" in reasons["abs/path.jpg"]
    assert "symbolic link" in reasons["link.jpg"]
    assert "nested archive" in reasons["inner.zip"]
    assert not (tmp_path / "escape.jpg").exists() and not list(tmp_path.glob("**/escape.jpg"))


def test_zip_bomb_and_size_limits(tmp_path):
    z = _zip(tmp_path / "bomb.zip", [("zeros.jpg", b"\0" * 5_000_000), ("ok.jpg", _jpeg())])
    out = unpack_uploads([z], tmp_path / "dest", UploadLimits(max_ratio=50))
    assert "zip bomb" in dict(out.failures)["zeros.jpg"]
    out = unpack_uploads([z], tmp_path / "dest2", UploadLimits(max_file_bytes=1000, max_ratio=1e9))
    assert "too large" in dict(out.failures)["zeros.jpg"]
    with pytest.raises(ValueError, match="too many files"):
        unpack_uploads([z], tmp_path / "dest3", UploadLimits(max_files=1, max_ratio=1e9))


def test_loose_files_and_name_collisions(tmp_path):
    a = tmp_path / "x" / "IMG_1.jpg"
    b = tmp_path / "y" / "IMG_1.jpg"
    for p in (a, b):
        p.parent.mkdir()
        p.write_bytes(_jpeg())
    bad_zip = tmp_path / "broken.zip"
    bad_zip.write_bytes(b"not a zip")
    out = unpack_uploads([a, b, bad_zip, tmp_path / "x" / "IMG_1.jpg"], tmp_path / "dest")
    assert [n for _, n in out.files] == ["IMG_1.jpg", "IMG_1_1.jpg", "IMG_1_2.jpg"]
    assert "not a readable zip" in dict(out.failures)["broken.zip"]
