"""Names of command-line inputs: relative, never clashing, and taken from where a file is
listed, not from where a symbolic link points (a folder of links is a common way to gather
images from several cards)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wildspace.media.inputs import InputError, expand_inputs

JPG = frozenset({".jpg"})


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_a_folder_of_links_to_files_elsewhere_is_named_by_the_links(tmp_path):
    src = _touch(tmp_path / "store" / "0001.jpg")
    _touch(tmp_path / "store" / "0002.jpg")
    gathered = tmp_path / "gathered"
    (gathered / "cam").mkdir(parents=True)
    (gathered / "a.jpg").symlink_to(src)
    (gathered / "cam" / "b.jpg").symlink_to(tmp_path / "store" / "0002.jpg")
    got = expand_inputs([gathered], JPG)
    assert [name for _, name in got] == ["a.jpg", "cam/b.jpg"]
    assert all(f.read_bytes() == b"x" for f, _ in got)


def test_linked_single_files_and_a_linked_folder(tmp_path):
    _touch(tmp_path / "store" / "x.jpg")
    (tmp_path / "here").mkdir()
    (tmp_path / "here" / "y.jpg").symlink_to(tmp_path / "store" / "x.jpg")
    (tmp_path / "cardlink").symlink_to(tmp_path / "store", target_is_directory=True)
    assert [n for _, n in expand_inputs([tmp_path / "here" / "y.jpg"], JPG)] == ["y.jpg"]
    assert [n for _, n in expand_inputs([tmp_path / "cardlink"], JPG)] == ["x.jpg"]


def test_two_links_to_one_file_are_two_inputs_and_clashing_names_are_refused(tmp_path):
    src = _touch(tmp_path / "store" / "x.jpg")
    for d in ("A", "B"):
        (tmp_path / "cards" / d).mkdir(parents=True)
        (tmp_path / "cards" / d / "IMG.jpg").symlink_to(src)
    got = expand_inputs([tmp_path / "cards" / "A", tmp_path / "cards" / "B"], JPG)
    assert [n for _, n in got] == ["A/IMG.jpg", "B/IMG.jpg"]
    link = tmp_path / "cards" / "A" / "IMG.jpg"
    with pytest.raises(InputError, match="more than one input"):
        expand_inputs([link, link], JPG)
