"""*Individual lookup* through gradio_client against the running app: a gallery built with the
CLI's service, a known animal found, a new one called new, then enrolled and found."""

from __future__ import annotations

import re

import pytest
from PIL import Image

from tests.reid.synthetic import coat, photo, write_set

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(running_app):
    from gradio_client import Client

    return Client(running_app.local_url, verbose=False)


@pytest.fixture(scope="module")
def cats_gallery(app_service, tmp_path_factory):
    from wildspace.services.galleries import GalleryService

    folder = tmp_path_factory.mktemp("cats")
    GalleryService(app_service.settings).build("cats", folder, write_set(folder))
    return "cats"


def _save(rgb, path):
    Image.fromarray(rgb).save(path)
    return str(path)


def test_lookup_enrol_lookup(client, cats_gallery, tmp_path):
    from gradio_client import handle_file

    info = client.view_api(print_info=False, return_format="dict")
    assert {"/lookup_individual", "/enrol_individual"} <= set(info["named_endpoints"])
    none = "none (the photo is already a crop)"
    known = _save(photo(coat(1002), seed=321), tmp_path / "cy.jpg")  # a new photo of 'cy'
    verdict, crop, thumbs, table = client.predict(cats_gallery, handle_file(known), "unknown", none,
                                                  "auto", api_name="/lookup_individual")
    assert "**cy**" in verdict
    assert table["data"][0][1] == "cy" and 1 <= len(table["data"]) <= 5
    assert len(thumbs) == len(table["data"]) and "cy" in thumbs[0]["caption"]

    stranger = _save(photo(coat(9001), seed=1), tmp_path / "x1.jpg")
    verdict, *_ = client.predict(cats_gallery, handle_file(stranger), "unknown", none, "auto",
                                 api_name="/lookup_individual")
    assert "new animal" in verdict
    for seed in (1, 2):
        msg = client.predict(cats_gallery, handle_file(_save(photo(coat(9001), seed), tmp_path / f"e{seed}.jpg")),
                             "Zed", "unknown", none, api_name="/enrol_individual")
    assert "Zed" in msg and "11 photos of 5 animals" in msg
    again = _save(photo(coat(9001), seed=3), tmp_path / "x3.jpg")
    verdict, *_ = client.predict(cats_gallery, handle_file(again), "unknown", none, "auto",
                                 api_name="/lookup_individual")
    assert "**Zed**" in verdict


def test_lookup_errors_are_messages(client, cats_gallery, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(AppError):  # Gradio's image component refuses it before our code runs
        client.predict(cats_gallery, handle_file(str(bad)), "unknown", "none (the photo is already a crop)",
                       "auto", api_name="/lookup_individual")
    ok = _save(photo(coat(1), seed=1), tmp_path / "ok.jpg")
    with pytest.raises(AppError, match="no gallery named 'no-such-gallery'"):
        client.predict("no-such-gallery", handle_file(ok), "unknown", "none (the photo is already a crop)",
                       "auto", api_name="/lookup_individual")
    with pytest.raises(AppError, match="cannot use method 'embed'"):
        client.predict(cats_gallery, handle_file(ok), "unknown", "none (the photo is already a crop)",
                       "embed", api_name="/lookup_individual")


def test_a_gallery_made_in_the_app_is_invisible_to_another_user(client, running_app, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    none = "none (the photo is already a crop)"
    first = _save(photo(coat(8101), seed=1), tmp_path / "p1.jpg")
    client.predict("private-a", handle_file(first), "Pip", "unknown", none, api_name="/enrol_individual")
    client.predict("private-a", handle_file(_save(photo(coat(8102), seed=1), tmp_path / "p2.jpg")),
                   "Pop", "unknown", none, api_name="/enrol_individual")
    client.predict("private-a", handle_file(_save(photo(coat(8101), seed=2), tmp_path / "p3.jpg")),
                   "Pip", "unknown", none, api_name="/enrol_individual")
    verdict, *_ = client.predict("private-a", handle_file(_save(photo(coat(8101), seed=3), tmp_path / "q.jpg")),
                                 "unknown", none, "auto", api_name="/lookup_individual")
    assert "**Pip**" in verdict
    other = Client(running_app.local_url, verbose=False)  # a second user (another session)
    with pytest.raises(AppError, match="no gallery named 'private-a'"):
        other.predict("private-a", handle_file(first), "unknown", none, "auto", api_name="/lookup_individual")
    # enrolling under that name makes the other user a gallery of their own; the first is untouched
    msg = other.predict("private-a", handle_file(first), "Mallory", "unknown", none, api_name="/enrol_individual")
    assert msg == "Enrolled **Mallory** in gallery 'private-a': 1 photos of 1 animals."
    verdict, *_ = client.predict("private-a", handle_file(_save(photo(coat(8101), seed=4), tmp_path / "q2.jpg")),
                                 "unknown", none, "auto", api_name="/lookup_individual")
    assert "**Pip**" in verdict


def test_a_foreign_gallery_and_a_missing_one_answer_byte_for_byte_the_same(client, running_app, tmp_path):
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    none = "none (the photo is already a crop)"
    pics = [handle_file(_save(photo(coat(8201 + i), seed=1), tmp_path / f"f{i}.jpg")) for i in range(3)]
    other = Client(running_app.local_url, verbose=False)

    def lookup_error(who, name):
        with pytest.raises(AppError) as err:
            who.predict(name, pics[0], "unknown", none, "auto", api_name="/lookup_individual")
        return str(err.value)

    missing = lookup_error(other, "field-notes")
    client.predict("field-notes", pics[0], "Ada", "unknown", none, api_name="/enrol_individual")
    client.predict("field-notes", pics[1], "Bea", "unknown", none, api_name="/enrol_individual")
    foreign = lookup_error(other, "field-notes")
    assert missing == foreign and "no gallery named 'field-notes'" in foreign
    # enrolments: the first into a name nobody has, the second into a name someone else has
    fresh = other.predict("ledger", pics[2], "Cy", "unknown", none, api_name="/enrol_individual")
    third = Client(running_app.local_url, verbose=False)
    taken = third.predict("ledger", pics[2], "Cy", "unknown", none, api_name="/enrol_individual")
    assert fresh == taken == "Enrolled **Cy** in gallery 'ledger': 1 photos of 1 animals."


def test_no_message_or_answer_names_a_server_path(client, app_service, cats_gallery, tmp_path):
    import os

    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    from tests.reid.synthetic import write_set
    from wildspace.reid.gallery import version_dir
    from wildspace.services.galleries import GalleryService

    home = str(app_service.settings.home)
    server_dirs = (home, os.environ["GRADIO_TEMP_DIR"], str(tmp_path.parent.parent))
    none = "none (the photo is already a crop)"
    folder = tmp_path / "set"
    folder.mkdir()
    galleries = GalleryService(app_service.settings)
    galleries.build("torn", folder, write_set(folder))
    (version_dir(galleries.root / "torn") / "gallery.json").write_text("{ half written")
    ok = handle_file(_save(photo(coat(1002), seed=321), tmp_path / "cy.jpg"))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    messages = []
    for args, api in ((("torn", ok, "unknown", none, "auto"), "/lookup_individual"),
                      (("torn", ok, "Zed", "unknown", none), "/enrol_individual"),
                      (("nowhere", ok, "unknown", none, "auto"), "/lookup_individual"),
                      (("cats", handle_file(str(bad)), "unknown", none, "auto"), "/lookup_individual"),
                      (("cats", handle_file(str(bad)), "Zed", "unknown", none), "/enrol_individual")):
        with pytest.raises(AppError) as err:
            client.predict(*args, api_name=api)
        messages.append(str(err.value))
    assert "gallery 'torn'" in messages[0] and "unreadable gallery.json" in messages[0]
    verdict, _, thumbs, table = client.predict("cats", ok, "unknown", none, "auto", api_name="/lookup_individual")
    answers = [verdict, str(table), *(t["caption"] or "" for t in thumbs)]
    for text in messages + answers:
        assert not any(d in text for d in server_dirs), text
        assert not re.search(r"(^|[\s'\"(])/(tmp|home|root|data|srv|var)\b", text), text
