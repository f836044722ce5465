"""*Individual lookup* through gradio_client against the running app: a gallery built with the
CLI's service, a known animal found, a new one called new, then enrolled and found."""

from __future__ import annotations

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
    from wildspace.lookup import GalleryService

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
    with pytest.raises(AppError, match="not a gallery|no CURRENT"):
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
    with pytest.raises(AppError, match="no gallery named 'private-a'"):
        other.predict("private-a", handle_file(first), "Mallory", "unknown", none, api_name="/enrol_individual")
