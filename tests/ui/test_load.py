"""Load: 20 concurrent ``gradio_client`` clients x 5 mixed requests (single image, batch,
individual lookup) against one app.

The app runs with the production queue settings (:func:`wildspace.ui.app.queue_options`):
a bounded number of handlers at once sharing one cached model, so memory does not grow with
the number of users. Every answer must equal the answer the same request gets alone.
"""

from __future__ import annotations

import csv
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.ui.conftest import MODEL
from wildspace.formats.megadetector import read_results

pytestmark = pytest.mark.slow
CLIENTS, REQUESTS = 20, 5
ZEBRA = "snapshot_serengeti_S5_U10_U10_R4_S5_U10_R4_IMAG3595.JPG"
NO_DETECTOR = "none (the photo is already a crop)"


@pytest.fixture(scope="module")
def loaded_app(app_service, tmp_path_factory, shared_data):
    from wildspace.media.images import load_image
    from wildspace.services.galleries import GalleryService
    from wildspace.ui.app import build_app, queue_options

    cats = shared_data / "reid" / "leopard-cat-camtrapR"
    with open(cats / "individuals.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    galleries = GalleryService(app_service.settings, detectors=app_service)
    enrol = [r for r in rows if r["individual"] == "1"][:2] + [r for r in rows if r["individual"] == "2"][:2]
    for r in enrol:
        galleries.enrol("cats", load_image(cats / r["file"]), r["individual"], create=True)
    assert galleries.wait_calibrated(timeout=300)  # answers must not change mid-test
    query = cats / [r for r in rows if r["individual"] == "1"][3]["file"]
    demo = build_app(app_service, tmp_path_factory.mktemp("load-out"), galleries=galleries)
    demo.queue(**queue_options(app_service.settings)).launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    yield demo, query
    demo.close()


def _requests(shared_data, query):
    from gradio_client import handle_file

    zebra = handle_file(str(shared_data / "camera-trap" / "megadetector-test" / ZEBRA))
    fox = handle_file(str(shared_data / "camera-trap" / "ena24-small" / "49.jpg"))
    cat = handle_file(str(query))
    return [
        ("detect zebra", (zebra, MODEL, 0.3), "/detect_image"),
        ("lookup cat", ("cats", cat, "unknown", NO_DETECTOR, "local"), "/lookup_individual"),
        ("detect fox", (fox, MODEL, 0.3), "/detect_image"),
        ("batch zebra+fox", ([zebra, fox], MODEL, 0.3), "/detect_batch"),
        ("lookup cat", ("cats", cat, "unknown", NO_DETECTOR, "local"), "/lookup_individual"),
    ]


def _answer(kind: str, out) -> object:
    """The part of an answer that must not change under load."""
    if kind.startswith("detect"):
        _, table, md = out
        return [row[:3] for row in table["data"]], read_results(md)["images"][0]["detections"]
    if kind.startswith("batch"):
        _, _, table, downloads = out
        md = next(p for p in downloads if p.endswith("_megadetector.json"))
        return ([row[:2] for row in table["data"]],
                sorted((im["file"], im["detections"]) for im in read_results(md)["images"]))
    verdict, _, thumbs, table = out
    return verdict, [row[:3] for row in table["data"]], len(thumbs)


def test_twenty_clients_five_mixed_requests_each(loaded_app, app_service, shared_data):
    from gradio_client import Client

    demo, query = loaded_app
    requests = _requests(shared_data, query)
    solo = Client(demo.local_url, verbose=False)
    expected = {kind: _answer(kind, solo.predict(*args, api_name=api)) for kind, args, api in requests}
    assert [row[0] for row in expected["detect zebra"][0]] == ["zebra"] * 3
    assert expected["lookup cat"][1][0][1] in ("1", "2")
    errors: list[str] = []
    answers: list[tuple[str, object]] = []
    lock = threading.Lock()

    def user(i: int) -> None:
        # twenty people: all on loopback here, so each says who it is (fair use is per visitor)
        client = Client(demo.local_url, verbose=False, headers={"X-Wildspace-Token": f"load-test-visitor-{i:04d}-xx"})
        for k in range(REQUESTS):
            kind, args, api = requests[(i + k) % len(requests)]
            try:
                got = _answer(kind, client.predict(*args, api_name=api))
            except Exception as exc:  # any error fails the test below, with its message
                with lock:
                    errors.append(f"client {i} request {k} ({kind}): {type(exc).__name__}: {exc}")
                continue
            with lock:
                answers.append((kind, got))

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(user, range(CLIENTS)))
    assert errors == []
    assert len(answers) == CLIENTS * REQUESTS
    wrong = [kind for kind, got in answers if got != expected[kind]]
    assert wrong == []
    assert len(app_service._cache) == 1  # one model instance served every request
