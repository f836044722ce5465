"""Zip uploads: safe extraction, hostile members become failures, nothing escapes dest."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest
from PIL import Image

from wildspace.media.archives import unpack_uploads
from wildspace.settings.limits import UploadLimits


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


def test_members_no_disk_takes_as_named_are_read_under_safe_names(tmp_path):
    """Names over 255 bytes, a file and a folder of the same name, control and reserved
    characters: every member is extracted under a safe name and reported by its own."""
    long_name = "长" * 100 + ".jpg"  # 304 bytes
    deep = "a" * 200 + "/" + "b" * 200 + "/c.jpg"
    names = [long_name, "clash.jpg", "clash.jpg/inside.jpg", "odd\x07na:me?.jpg", deep, "site/plain.jpg",
             "nul\x00.jpg.exe"]  # zipfile cuts a name at NUL: "nul", no image extension, skipped
    z = _zip(tmp_path / "names.zip", [(n, _jpeg()) for n in names])
    dest = tmp_path / "dest"
    out = unpack_uploads([z], dest)
    assert out.failures == []
    assert sorted(n for _, n in out.files) == sorted(names[:-1])
    by_name = {n: p for p, n in out.files}
    for path in by_name.values():
        assert dest in path.parents and path.read_bytes() == _jpeg()
        assert all(len(part.encode()) <= 255 for part in path.relative_to(dest).parts)
        assert not any(c in str(path.relative_to(dest)) for c in '\x00\x07:?')
    assert by_name["site/plain.jpg"].relative_to(dest).parts[1:] == ("site", "plain.jpg")  # tree kept
    assert by_name[long_name].suffix == ".jpg"
    assert ".renamed" in by_name["clash.jpg/inside.jpg"].parts  # "clash.jpg" is a file already
    assert len({p for p in by_name.values()}) == len(by_name)


def test_safe_disk_names():
    from wildspace.media.archives import MAX_NAME_BYTES, disk_name

    assert disk_name("card/DCIM/IMG_0001.JPG") == "card/DCIM/IMG_0001.JPG"  # plain names unchanged
    long_a, long_b = "x" * 300 + "a.jpg", "x" * 300 + "b.jpg"
    assert disk_name(long_a) != disk_name(long_b)  # shortened names stay distinct
    assert len(disk_name(long_a).encode()) <= MAX_NAME_BYTES and disk_name(long_a).endswith(".jpg")
    for name in ("a?.jpg", ".hidden.jpg", "trailing. ", "tab\t.png", "back\\slash.jpg", "nul\x00.jpg"):
        safe = disk_name(name)
        assert safe != name and not safe.startswith(".") and not any(c in safe for c in '?\t\\\x00')
    assert disk_name("a?.jpg") != disk_name("a_.jpg")


def test_a_member_that_cannot_be_written_at_all_is_its_failure(tmp_path, monkeypatch):
    import builtins

    z = _zip(tmp_path / "z.zip", [("ok.jpg", _jpeg()), ("full.jpg", _jpeg())])
    real_open = builtins.open

    def disk_full(file, mode="r", *a, **k):
        if "x" in mode and str(file).endswith(".jpg") and "full" in str(file) or ".renamed" in str(file):
            raise OSError(28, "No space left on device", str(file))
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", disk_full)
    out = unpack_uploads([z], tmp_path / "dest")
    assert [n for _, n in out.files] == ["ok.jpg"]
    reason = dict(out.failures)["full.jpg"]
    assert "No space left on device" in reason and str(tmp_path) not in reason  # no server path


def test_an_upload_refused_as_a_whole_leaves_nothing_behind(tmp_path):
    from wildspace.settings.limits import LimitError

    first = _zip(tmp_path / "first.zip", [(f"a{i}.jpg", _jpeg()) for i in range(3)])
    many = _zip(tmp_path / "many.zip", [(f"b{i}.jpg", _jpeg()) for i in range(10)])
    dest = tmp_path / "dest"
    with pytest.raises(LimitError, match="too many files"):
        unpack_uploads([first, many], dest, UploadLimits(max_files=5))
    assert not dest.exists() or [p for p in dest.rglob("*") if p.is_file()] == []
    loose = tmp_path / "loose.jpg"
    loose.write_bytes(_jpeg())
    with pytest.raises(LimitError):
        unpack_uploads([first, loose, loose, loose], dest, UploadLimits(max_files=3))
    assert loose.is_file()  # loose files are the caller's: never deleted
    assert [p for p in dest.rglob("*") if p.is_file()] == []


def test_a_member_with_an_empty_name_is_skipped_by_every_zip_reader(tmp_path):
    """A corrupt central directory can give a member an empty name (``ZipInfo.is_dir()`` raises on it)."""
    from wildspace.media.archives import count_inputs

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.jpg", _jpeg())
    data = bytearray(buf.getvalue())
    cd = data.rindex(b"PK\x01\x02")
    data[cd + 28:cd + 30] = (0).to_bytes(2, "little")  # name length 0 ...
    data[cd + 32:cd + 34] = (5).to_bytes(2, "little")  # ... and "a.jpg" read as the comment
    up = tmp_path / "up.zip"
    up.write_bytes(bytes(data))
    with zipfile.ZipFile(up) as z:
        assert [i.filename for i in z.infolist()] == [""]
    assert count_inputs([up]) == 0
    out = unpack_uploads([up], tmp_path / "dest")
    assert out.files == []
