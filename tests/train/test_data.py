from __future__ import annotations

import pytest

from wildspace.train import data as D


def test_image_folder_and_stratified_split(image_folder):
    samples = D.load_samples(image_folder)
    assert len(samples) == 20 and D.class_names(samples) == ["blue", "red"]
    split = D.split_samples(samples, "random", test_fraction=0.2, val_fraction=0.25, seed=1)
    assert sorted(split.train + split.val + split.test) == list(range(20))
    assert D.class_counts(samples, split.test, ["blue", "red"]) == [2, 2]  # stratified
    assert D.split_samples(samples, "random", 0.2, 0.25, seed=1) == split  # deterministic


def test_csv_with_groups_keeps_each_group_on_one_side(tmp_path, image_folder):
    files = sorted(image_folder.rglob("*.png"))
    table = tmp_path / "labels.csv"
    table.write_text("file,label,location,sequence\n" + "\n".join(
        f"{p.relative_to(tmp_path)},{p.parent.name},cam{i % 5},seq{i // 2}" for i, p in enumerate(files)))
    samples = D.load_samples(table, images_dir=tmp_path)
    for method in ("location", "sequence"):
        split = D.split_samples(samples, method, 0.2, 0.2, seed=0)
        sides = [set(getattr(samples[i], method) for i in part) for part in (split.train, split.val, split.test)]
        assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
        assert split.test and split.train


def test_bad_inputs_are_clear_errors(tmp_path, image_folder):
    with pytest.raises(FileNotFoundError, match="not found"):
        D.load_samples(tmp_path / "nope")
    (tmp_path / "one" / "only").mkdir(parents=True)
    with pytest.raises(ValueError, match="no images"):
        D.load_samples(tmp_path / "one")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,cls\na.jpg,x\n")
    with pytest.raises(ValueError, match="'label' column"):
        D.load_samples(bad)
    samples = D.load_samples(image_folder)
    with pytest.raises(ValueError, match="needs a CSV with a 'location' column"):
        D.split_samples(samples, "location")
    with pytest.raises(ValueError, match="random, location, sequence"):
        D.split_samples(samples, "by-moon")
    with pytest.raises(ValueError, match="not a class of the data"):
        D.rename_labels(samples, {"purple": "x"})


def test_balance_weights_are_inverse_frequency(tmp_path):
    from tests.train.conftest import make_image_folder

    samples = D.load_samples(make_image_folder(tmp_path / "d", per_class=2) and tmp_path / "d")
    samples = samples + [s for s in samples if s.label == "red"] * 2  # red: 6, blue: 2
    w = D.balance_weights(samples, range(len(samples)), ["blue", "red"])
    assert w == pytest.approx([8 / (2 * 2), 8 / (2 * 6)])
