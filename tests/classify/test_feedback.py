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


def test_one_answer_is_judged_once_per_owner(tmp_path):
    store = FeedbackStore(tmp_path / "fb")
    photo = _photo(tmp_path / "p.png")
    first = store.add(photo, "m", TOP, "right", owner="browser:a", answer_id="ans-1")
    for i in range(50):  # the same answer submitted 51 times in all: still one row
        last = store.add(photo, "m", TOP, "wrong", "tiger_claw", f"try {i}", owner="browser:a",
                         answer_id="ans-1", labels=PRODUCT_LABELS)
        assert last.id == first.id
    (row,) = store.records()
    assert (row.verdict, row.label, row.comment, row.answer_id) == ("wrong", "tiger_claw", "try 49", "ans-1")
    assert row == last and store.answer("browser:a", "ans-1") == row
    # per owner: another owner's verdict on an answer with that id is their own row
    other = store.add(photo, "m", TOP, "right", owner="browser:b", answer_id="ans-1")
    assert other.id != first.id and len(store) == 2 and store.answer("browser:c", "ans-1") is None
    # without an answer id (CLI imports) every verdict is a row
    store.add(photo, "m", TOP, "right")
    store.add(photo, "m", TOP, "right")
    assert len(store) == 4


def test_concurrent_submissions_of_one_answer_store_one_row(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    store = FeedbackStore(tmp_path / "fb")
    photo = _photo(tmp_path / "p.png")
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda i: store.add(photo, "m", TOP, "right", comment=str(i), owner="o",
                                               answer_id="same").id, range(24)))
    assert len(ids) == 1 and len(store) == 1


def test_an_older_store_gains_answer_ids(tmp_path):
    import sqlite3

    (tmp_path / "fb").mkdir()
    db = sqlite3.connect(tmp_path / "fb" / "feedback.sqlite")
    db.execute("""CREATE TABLE feedback (id TEXT PRIMARY KEY, created TEXT NOT NULL, owner TEXT NOT NULL,
        model TEXT NOT NULL, image TEXT NOT NULL, image_sha256 TEXT NOT NULL, predicted TEXT NOT NULL,
        predicted_conf REAL NOT NULL, top TEXT NOT NULL, verdict TEXT NOT NULL, label TEXT,
        comment TEXT NOT NULL DEFAULT '')""")
    db.execute("INSERT INTO feedback VALUES ('old', '2024-01-01T00:00:00+00:00', 'o', 'm', 'images/x.png', "
               "'x', 'elephant_ivory', 0.7, '[[\"elephant_ivory\", 0.7]]', 'right', 'elephant_ivory', '')")
    db.commit()
    db.close()
    store = FeedbackStore(tmp_path / "fb")
    (old,) = store.records()
    assert old.id == "old" and old.answer_id is None
    photo = _photo(tmp_path / "p.png")
    store.add(photo, "m", TOP, "right", owner="o", answer_id="a")
    store.add(photo, "m", TOP, "wrong", owner="o", answer_id="a")
    assert len(store) == 2 and store.answer("o", "a").verdict == "wrong"


def test_the_products_tab_replaces_a_second_submission(tmp_path):
    import gradio as gr

    from wildspace.ui.products_tab import PendingAnswer, PendingAnswers, submit_product_feedback

    store, pending = FeedbackStore(tmp_path / "fb"), PendingAnswers()
    key = pending.put(PendingAnswer(str(_photo(tmp_path / "p.png")), "m", TOP, PRODUCT_LABELS, "browser:a"))
    first = submit_product_feedback(store, pending, key, "right", None, "", "browser:a")
    again = submit_product_feedback(store, pending, key, "wrong", "tiger_claw", "a claw", "browser:a")
    assert first.startswith("Thank you: saved as **right**")
    assert again.startswith("Thank you: updated your feedback on this answer as **wrong; right label:")
    assert "1 in the store" in again and len(store) == 1
    with pytest.raises(gr.Error, match="someone else"):
        submit_product_feedback(store, pending, key, "right", None, "", "browser:b")
