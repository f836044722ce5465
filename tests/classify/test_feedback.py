"""Feedback: validated, stored durably with the image, survives a restart, exports to a
``datasets`` dataset that loads back."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from wildspace.classify.feedback import FeedbackStore
from wildspace.classify.products import PRODUCT_LABELS

TOP = (("elephant_ivory", 0.7), ("non_wildlife", 0.2), ("tiger_claw", 0.1))


def _photo(path, seed=0, size=(40, 30)):
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def test_right_and_wrong_answers_are_stored_with_the_image(tmp_path):
    store = FeedbackStore(tmp_path / "fb")
    photo = _photo(tmp_path / "bangle.png")
    right = store.add(photo, "tiny-products", TOP, "right", owner="browser:a", labels=PRODUCT_LABELS)
    wrong = store.add(photo, "tiny-products", TOP, "wrong", "non_wildlife", "  bone, not ivory ",
                      owner="browser:b", labels=PRODUCT_LABELS)
    assert right.label == "elephant_ivory" and wrong.label == "non_wildlife"
    assert wrong.comment == "bone, not ivory" and wrong.predicted == "elephant_ivory"
    assert right.image == wrong.image and right.image.read_bytes() == photo.read_bytes()  # stored once
    assert [p.name for p in (tmp_path / "fb" / "images").rglob("*") if p.is_file()] == [right.image.name]
    assert [r.id for r in store.records(owner="browser:b")] == [wrong.id]


def test_feedback_survives_a_restart(tmp_path):
    store = FeedbackStore(tmp_path / "fb")
    rec = store.add(_photo(tmp_path / "scale.png", 1), "m", TOP, "wrong", "pangolin_raw_scale", "x",
                    labels=PRODUCT_LABELS)
    (tmp_path / "scale.png").unlink()  # the upload is gone; the store has its own copy
    del store
    again = FeedbackStore(tmp_path / "fb")
    (back,) = again.records()
    assert back == rec and back.image.is_file() and len(again) == 1


@pytest.mark.parametrize("kwargs, message", [
    ({"verdict": "maybe"}, "verdict must be one of right, wrong"),
    ({"verdict": "wrong", "right_label": "rhino_horn"}, "not a label of this model; choose from elephant_"),
    ({"verdict": "right", "right_label": "tiger_claw"}, "mark it wrong instead"),
    ({"verdict": "wrong", "comment": "x" * 2001}, "at most 2000"),
])
def test_bad_feedback_is_a_clear_error(tmp_path, kwargs, message):
    store = FeedbackStore(tmp_path / "fb")
    with pytest.raises(ValueError, match=message):
        store.add(_photo(tmp_path / "p.png"), "m", TOP, labels=PRODUCT_LABELS, **kwargs)
    assert len(store) == 0


def test_a_non_image_is_refused(tmp_path):
    (tmp_path / "notes.jpg").write_text("not a photo")
    with pytest.raises(ValueError, match="cannot be stored"):
        FeedbackStore(tmp_path / "fb").add(tmp_path / "notes.jpg", "m", TOP, "right")


def test_export_loads_with_datasets(tmp_path):
    from datasets import load_from_disk

    store = FeedbackStore(tmp_path / "fb")
    store.add(_photo(tmp_path / "a.png", 1, (40, 30)), "m", TOP, "right")
    store.add(_photo(tmp_path / "b.jpg", 2, (50, 20)), "m", TOP, "wrong", "tiger_claw", "a claw")
    store.add(_photo(tmp_path / "c.png", 3, (10, 10)), "m", TOP, "wrong", None, "no idea what it is")
    out = store.export_dataset(tmp_path / "export", PRODUCT_LABELS)
    ds = load_from_disk(str(out))
    assert len(ds) == 3
    assert ds.features["label"].names == list(PRODUCT_LABELS)
    assert [ds.features["label"].int2str(i) if i >= 0 else None for i in ds["label"]] == \
        ["elephant_ivory", "tiger_claw", None]
    assert ds["verdict"] == ["right", "wrong", "wrong"] and ds["comment"][1] == "a claw"
    assert [ds[i]["image"].size for i in range(3)] == [(40, 30), (50, 20), (10, 10)]
    (tmp_path / "fb" / "images").rename(tmp_path / "moved")  # the export is self-contained
    assert load_from_disk(str(out))[1]["image"].size == (50, 20)


def test_export_without_feedback_or_with_unknown_labels_is_refused(tmp_path):
    store = FeedbackStore(tmp_path / "fb")
    with pytest.raises(ValueError, match="no feedback"):
        store.export_dataset(tmp_path / "x")
    store.add(_photo(tmp_path / "a.png"), "m", TOP, "right")
    with pytest.raises(ValueError, match="elephant_ivory are not in the label list"):
        store.export_dataset(tmp_path / "x", ["non_wildlife"])
